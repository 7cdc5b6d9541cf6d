/*
 * lora.c - see lora.h: the adapter's layout on a model, its math (delta,
 * gradients), and peft's two files (lora_io.c reads and writes them).
 */
#include "train/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/rng.h"
#include "kernels/gemm.h"
#include "model/tensor_map.h"

int lora_parse_targets(const char *list, unsigned *bits, moe_err *err) {
    static const struct {
        const char *name;
        unsigned bits;
    } k[] = {{"q_proj", LORA_T_Q},         {"k_proj", LORA_T_K},       {"v_proj", LORA_T_V},
             {"o_proj", LORA_T_O},         {"attn", LORA_T_ATTN},      {"gate", LORA_T_ROUTER},
             {"gate_up_proj", LORA_T_GATE_UP}, {"down_proj", LORA_T_DOWN},
             {"experts", LORA_T_EXPERTS},  {"all", LORA_T_ATTN | LORA_T_ROUTER | LORA_T_EXPERTS}};
    *bits = 0;
    const char *s = list;
    while (s && *s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        unsigned b = 0;
        for (size_t i = 0; i < sizeof k / sizeof k[0] && !b; i++)
            if (strlen(k[i].name) == n && !strncmp(k[i].name, s, n)) b = k[i].bits;
        if (!b)
            return moe_fail(err, "LoRA targets: '%.*s' is not one of q_proj, k_proj, v_proj, o_proj, "
                            "attn, gate, gate_up_proj, down_proj, experts, all", (int)n, s);
        *bits |= b;
        s = e ? e + 1 : NULL;
    }
    if (!*bits) return moe_fail(err, "LoRA targets: the list is empty");
    return 0;
}

int64_t lora_w_rows(const lora_target *t) {
    return t->kind == LORA_T_GATE_UP ? t->out / 2 : t->out;
}

/* The model's weight of a role (expert j, or -1), with a message if absent. */
static mat *weight(moe_model *m, tm_role role, int layer, int j, moe_err *err) {
    tm_entry e = {role, layer, j, 1, 0, 0};
    mat *w = tm_slot_mat(m, &e, 0);
    if (!w || !w->data) {
        moe_fail(err, "LoRA: the model has no %s weight in layer %d%s", tm_role_of(role)->hf, layer,
                 j >= 0 ? " (an expert)" : "");
        return NULL;
    }
    return w;
}

/* Fill t's weights (t->kind, t->layer set); E, in, out from them. */
static int resolve(lora_target *t, moe_model *m, moe_err *err) {
    static const tm_role attn[4] = {TM_ATTN_Q, TM_ATTN_K, TM_ATTN_V, TM_ATTN_O};
    const moe_layer_config *lc = &m->cfg.layer[t->layer];
    int l = t->layer;
    t->E = t->kind & LORA_T_EXPERTS ? lc->n_experts : 1;
    t->n_w = t->kind == LORA_T_GATE_UP ? 2 * t->E : t->E;
    t->w = calloc((size_t)t->n_w, sizeof *t->w);
    if (!t->w) return moe_fail(err, "out of memory");
    if (t->kind & LORA_T_ATTN) {
        int i = t->kind == LORA_T_Q ? 0 : t->kind == LORA_T_K ? 1 : t->kind == LORA_T_V ? 2 : 3;
        if (!(t->w[0] = weight(m, attn[i], l, -1, err))) return -1;
    } else if (t->kind == LORA_T_ROUTER) {
        if (!(t->w[0] = weight(m, TM_ROUTER, l, -1, err))) return -1;
    } else {
        for (int j = 0; j < t->E; j++) {
            if (t->kind == LORA_T_GATE_UP) {
                if (!(t->w[j] = weight(m, TM_EXP_GATE, l, j, err)) ||
                    !(t->w[t->E + j] = weight(m, TM_EXP_UP, l, j, err)))
                    return -1;
            } else if (!(t->w[j] = weight(m, TM_EXP_DOWN, l, j, err))) {
                return -1;
            }
        }
    }
    int64_t rows = t->w[0]->rows, cols = t->w[0]->cols;
    for (int j = 1; j < t->n_w; j++)
        if (t->w[j]->rows != rows || t->w[j]->cols != cols)
            return moe_fail(err, "LoRA: layer %d: the experts' weights differ in shape", l);
    t->in = cols;
    t->out = t->kind == LORA_T_GATE_UP ? 2 * rows : rows;
    return 0;
}

/* The module path peft gives target t (t->kind, t->layer set). */
static void name_target(lora_target *t, unsigned bits) {
    static const char *proj[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    const char *pre = "base_model.model.model.layers";
    if (t->kind & LORA_T_ATTN) {
        int i = t->kind == LORA_T_Q ? 0 : t->kind == LORA_T_K ? 1 : t->kind == LORA_T_V ? 2 : 3;
        snprintf(t->key, sizeof t->key, "%s.%d.self_attn.%s", pre, t->layer, proj[i]);
    } else if (t->kind == LORA_T_ROUTER) {
        snprintf(t->key, sizeof t->key, "%s.%d.mlp.gate", pre, t->layer);
    } else {
        /* peft wraps gate_up_proj first (the module's parameter order); the
         * down_proj wrapper then holds it as its base_layer */
        int nested = t->kind == LORA_T_GATE_UP && (bits & LORA_T_DOWN);
        snprintf(t->key, sizeof t->key, "%s.%d.mlp.experts%s", pre, t->layer,
                 nested ? ".base_layer" : "");
    }
    snprintf(t->name_a, sizeof t->name_a, "%s.lora_A.weight", t->key);
    snprintf(t->name_b, sizeof t->name_b, "%s.lora_B.weight", t->key);
}

int lora_check_model(const moe_config *c, moe_err *err) {
    if (c->arch != MOE_ARCH_MIXTRAL && c->arch != MOE_ARCH_QWEN2_MOE &&
        c->arch != MOE_ARCH_QWEN3_MOE && c->arch != MOE_ARCH_OLMOE)
        return moe_fail(err, "LoRA adapters are supported on mixtral, qwen2_moe, qwen3_moe and "
                        "olmoe models (peft's layout of them in transformers 5), not on %s",
                        tm_arch_of(c->arch) ? tm_arch_of(c->arch)->model_type : "?");
    return 0;
}

int lora_plan(lora_adapter *a, moe_model *m, int r, double alpha, int rslora, unsigned bits,
              moe_err *err) {
    memset(a, 0, sizeof *a);
    const moe_config *c = &m->cfg;
    if (lora_check_model(c, err)) return -1;
    if (r < 1 || r > 65536) return moe_fail(err, "LoRA rank r = %d is out of range [1, 65536]", r);
    if (!(alpha > 0) || !isfinite(alpha))
        return moe_fail(err, "LoRA alpha = %g must be a positive number", alpha);
    if (!bits) return moe_fail(err, "LoRA: no targets");
    a->r = r;
    a->alpha = alpha;
    a->rslora = rslora;
    a->scale = (float)(rslora ? alpha / sqrt((double)r) : alpha / r);
    a->targets = bits;
    static const unsigned order[] = {LORA_T_Q, LORA_T_K, LORA_T_V, LORA_T_O,
                                     LORA_T_ROUTER, LORA_T_GATE_UP, LORA_T_DOWN};
    const int n_kinds = (int)(sizeof order / sizeof order[0]);
    a->t = calloc((size_t)c->n_layers * (size_t)n_kinds, sizeof *a->t);
    if (!a->t) return moe_fail(err, "out of memory");
    int64_t off = 0;
    for (int l = 0; l < c->n_layers; l++) {
        for (int k = 0; k < n_kinds; k++) {
            unsigned kind = order[k];
            if (!(bits & kind)) continue;
            if (!(kind & LORA_T_ATTN) && !c->layer[l].moe) continue; /* a dense layer */
            lora_target *t = &a->t[a->n++];
            t->kind = kind;
            t->layer = l;
            if (resolve(t, m, err)) {
                lora_free(a);
                return -1;
            }
            name_target(t, bits);
            t->a_off = off;
            off += (int64_t)t->E * r * t->in;
            t->b_off = off;
            off += t->out * (int64_t)t->E * r;
        }
    }
    if (a->n == 0) {
        lora_free(a);
        return moe_fail(err, "LoRA: the model has none of the targeted weights");
    }
    a->n_params = off;
    a->p = calloc((size_t)off, sizeof *a->p);
    if (!a->p) {
        lora_free(a);
        return moe_fail(err, "out of memory for %lld LoRA parameters", (long long)off);
    }
    return 0;
}

void lora_free(lora_adapter *a) {
    for (int i = 0; i < a->n; i++) free(a->t[i].w);
    free(a->t);
    free(a->p);
    memset(a, 0, sizeof *a);
}

void lora_init_weights(lora_adapter *a, uint64_t seed) {
    rng g;
    rng_init(&g, seed ^ 0x10a4ull);
    for (int i = 0; i < a->n; i++) {
        const lora_target *t = &a->t[i];
        float bound = (float)(1.0 / sqrt((double)t->in));
        float *A = a->p + t->a_off;
        for (int64_t k = 0; k < (int64_t)t->E * a->r * t->in; k++)
            A[k] = (float)((2.0 * rng_uniform01(&g) - 1.0) * bound);
        memset(a->p + t->b_off, 0, sizeof(float) * (size_t)(t->out * t->E * a->r));
    }
}

/* Expert e and first row (within B's out rows) of weight j of t. */
static void weight_at(const lora_target *t, int j, int *e, int64_t *row0) {
    *e = j % t->E;
    *row0 = (j / t->E) * lora_w_rows(t);
}

void lora_add_delta(const lora_adapter *a, const lora_target *t, int j, float *W) {
    int e, r = a->r, Er = t->E * a->r;
    int64_t row0, rows = lora_w_rows(t), in = t->in;
    weight_at(t, j, &e, &row0);
    const float *A = a->p + t->a_off + (int64_t)e * r * in; /* [r][in] */
    const float *B = a->p + t->b_off;                       /* [out][E*r] */
    for (int64_t o = 0; o < rows; o++) {
        float *w = W + o * in;
        for (int k = 0; k < r; k++) {
            float c = a->scale * B[(row0 + o) * Er + (int64_t)k * t->E + e];
            if (c == 0.0f) continue;
            const float *ak = A + (int64_t)k * in;
            for (int64_t i = 0; i < in; i++) w[i] += c * ak[i];
        }
    }
}

void lora_add_grads(const lora_adapter *a, const lora_target *t, int j, const float *dW,
                    float *g) {
    int e, r = a->r, Er = t->E * a->r;
    int64_t row0, rows = lora_w_rows(t), in = t->in;
    weight_at(t, j, &e, &row0);
    const float *A = a->p + t->a_off + (int64_t)e * r * in;
    const float *B = a->p + t->b_off;
    float *gA = g + t->a_off + (int64_t)e * r * in, *gB = g + t->b_off;
    for (int64_t o = 0; o < rows; o++) {
        const float *d = dW + o * in;
        for (int k = 0; k < r; k++) {
            const float *ak = A + (int64_t)k * in;
            float *gak = gA + (int64_t)k * in;
            int64_t bi = (row0 + o) * Er + (int64_t)k * t->E + e;
            float c = a->scale * B[bi];
            double dot = 0;
            for (int64_t i = 0; i < in; i++) {
                dot += (double)d[i] * ak[i];
                gak[i] += c * d[i];
            }
            gB[bi] += a->scale * (float)dot;
        }
    }
}

int64_t lora_scratch(const lora_target *t, int r) {
    return 2 * lora_w_rows(t) * (int64_t)r;
}

/* scale * B_e's rows of weight j, [rows][r] contiguous, into sb. */
static void scaled_b(const lora_adapter *a, const lora_target *t, int j, float *sb) {
    int e, r = a->r, Er = t->E * a->r;
    int64_t row0, rows = lora_w_rows(t);
    weight_at(t, j, &e, &row0);
    const float *B = a->p + t->b_off;
    for (int64_t o = 0; o < rows; o++)
        for (int k = 0; k < r; k++)
            sb[o * r + k] = a->scale * B[(row0 + o) * Er + (int64_t)k * t->E + e];
}

void lora_add_delta_gemm(struct pool *p, const lora_adapter *a, const lora_target *t, int j,
                         float *W, float *scratch) {
    int r = a->r, e = j % t->E;
    int64_t rows = lora_w_rows(t), in = t->in;
    scaled_b(a, t, j, scratch);
    /* W[rows][in] += sB[rows][r] A_e[r][in] */
    gemm_op op = {W, in, scratch, r, 1, a->p + t->a_off + (int64_t)e * r * in, in, 1,
                  rows, in, r, 0, NULL, 0};
    gemm_run(p, &op, 1);
}

void lora_add_grads_gemm(struct pool *p, const lora_adapter *a, const lora_target *t, int j,
                         const float *dW, float *g, float *scratch) {
    int e, r = a->r, Er = t->E * a->r;
    int64_t row0, rows = lora_w_rows(t), in = t->in;
    weight_at(t, j, &e, &row0);
    float *sb = scratch, *db = scratch + rows * r;
    scaled_b(a, t, j, sb);
    const float *Ae = a->p + t->a_off + (int64_t)e * r * in;
    /* dA_e[r][in] += sB^T[r][rows] dW[rows][in];  dB_rows[rows][r] = dW A_e^T */
    gemm_op ops[2] = {
        {g + t->a_off + (int64_t)e * r * in, in, sb, 1, r, dW, in, 1, r, in, rows, 0, NULL, 0},
        {db, r, dW, in, 1, Ae, 1, in, rows, r, in, 1, NULL, 0},
    };
    gemm_run(p, ops, 2);
    float *gB = g + t->b_off;
    for (int64_t o = 0; o < rows; o++)
        for (int k = 0; k < r; k++)
            gB[(row0 + o) * Er + (int64_t)k * t->E + e] += a->scale * db[o * r + k];
}
