/*
 * model_load.c - from a Hugging Face checkpoint directory to a moe_model:
 * read config.json, map the safetensors files, and point every weight of
 * the model at its bytes, checking each tensor's presence, shape and dtype.
 *
 * Tensor names follow transformers' checkpoints:
 *   model.embed_tokens.weight, model.norm.weight, lm_head.weight
 *   model.layers.N.{input_layernorm,post_attention_layernorm}.weight
 *   model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias}, .{q,k}_norm.weight
 *   dense:   model.layers.N.mlp.{gate,up,down}_proj.weight
 *   mixtral: model.layers.N.block_sparse_moe.gate.weight,
 *            ....block_sparse_moe.experts.J.{w1,w3,w2}.weight (gate, up, down)
 *   others:  model.layers.N.mlp.gate.weight, mlp.experts.J.{gate,up,down}_proj.weight,
 *            mlp.shared_expert.*_proj.weight, mlp.shared_expert_gate.weight
 * Stacked expert tensors (PREFIX.experts.gate_up_proj [E][2F][D] and
 * PREFIX.experts.down_proj [E][D][F], as transformers 5 holds them in memory)
 * are accepted too; per-expert pointers then point into the stack.
 */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"

typedef struct loader {
    moe_model *m;
    const char *dir;
    moe_err *err;
    float *f32_next;  /* bump pointer into m->f32 */
    float *f32_end;
} loader;

static const char *shape_str(char *buf, size_t n, const int64_t *shape, int nd) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < nd && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

/* Find `name` with exactly the given shape (nd dims). */
static const st_tensor *need(loader *L, const char *name, int nd, const int64_t *shape) {
    const st_tensor *t = st_find(&L->m->st, name);
    if (!t) {
        moe_fail(L->err, "%s: tensor %s is missing", L->dir, name);
        return NULL;
    }
    int ok = t->n_dims == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char a[96], b[96];
        moe_fail(L->err, "%s: tensor %s has shape %s, expected %s", L->dir, name,
                 shape_str(a, sizeof a, t->shape, t->n_dims), shape_str(b, sizeof b, shape, nd));
        return NULL;
    }
    return t;
}

static int get_mat(loader *L, mat *out, const char *name, int64_t rows, int64_t cols) {
    int64_t shape[2] = {rows, cols};
    const st_tensor *t = need(L, name, 2, shape);
    if (!t) return -1;
    *out = (mat){t->data, t->type, rows, cols};
    return 0;
}

/* A 1-D vector as f32: in place if stored so, else widened into the arena. */
static int get_vec(loader *L, const float **out, const char *name, int64_t n) {
    const st_tensor *t = need(L, name, 1, &n);
    if (!t) return -1;
    if (t->type == DT_F32) { /* use it where it lies (training updates it there) */
        *out = t->data;
        return 0;
    }
    if (L->f32_next + n > L->f32_end)
        return moe_fail(L->err, "%s: internal: vector arena too small at %s", L->dir, name);
    float *dst = L->f32_next;
    L->f32_next += n;
    mat row = {t->data, t->type, 1, n};
    mat_row_f32(dst, &row, 0);
    *out = dst;
    return 0;
}

static int get_vec_opt(loader *L, const float **out, const char *name, int64_t n, int want) {
    *out = NULL;
    if (!want) return 0;
    return get_vec(L, out, name, n);
}

static int get_ffn(loader *L, ffn_w *f, const char *prefix, const char *g, const char *u,
                   const char *d, int64_t F) {
    int64_t D = L->m->cfg.dim;
    char name[256];
    snprintf(name, sizeof name, "%s.%s.weight", prefix, g);
    if (get_mat(L, &f->gate, name, F, D)) return -1;
    snprintf(name, sizeof name, "%s.%s.weight", prefix, u);
    if (get_mat(L, &f->up, name, F, D)) return -1;
    snprintf(name, sizeof name, "%s.%s.weight", prefix, d);
    if (get_mat(L, &f->down, name, D, F)) return -1;
    return 0;
}

/* Experts of one layer: one tensor per expert, or stacked. */
static int get_experts(loader *L, layer_w *lw, const char *moe_prefix, const moe_layer_config *lc) {
    const moe_config *c = &L->m->cfg;
    int64_t D = c->dim, F = lc->expert_dim, E = lc->n_experts;
    int mixtral = c->arch == MOE_ARCH_MIXTRAL;
    char name[256];
    snprintf(name, sizeof name, "%s.experts.gate_up_proj", moe_prefix);
    const st_tensor *gu = st_find(&L->m->st, name);
    if (gu) {
        int64_t s_gu[3] = {E, 2 * F, D}, s_dn[3] = {E, D, F};
        if (!need(L, name, 3, s_gu)) return -1;
        snprintf(name, sizeof name, "%s.experts.down_proj", moe_prefix);
        const st_tensor *dn = need(L, name, 3, s_dn);
        if (!dn) return -1;
        size_t gr = (size_t)dtype_row_bytes(gu->type, D), dr = (size_t)dtype_row_bytes(dn->type, F);
        for (int64_t e = 0; e < E; e++) {
            const char *gp = (const char *)gu->data + (size_t)(e * 2 * F) * gr;
            lw->experts[e].gate = (mat){gp, gu->type, F, D};
            lw->experts[e].up = (mat){gp + (size_t)F * gr, gu->type, F, D};
            lw->experts[e].down =
                (mat){(const char *)dn->data + (size_t)(e * D) * dr, dn->type, D, F};
        }
        return 0;
    }
    for (int64_t e = 0; e < E; e++) {
        char p[200];
        snprintf(p, sizeof p, "%s.experts.%lld", moe_prefix, (long long)e);
        int r = mixtral ? get_ffn(L, &lw->experts[e], p, "w1", "w3", "w2", F)
                        : get_ffn(L, &lw->experts[e], p, "gate_proj", "up_proj", "down_proj", F);
        if (r) return -1;
    }
    return 0;
}

static int load_layer(loader *L, int i) {
    moe_model *m = L->m;
    const moe_config *c = &m->cfg;
    const moe_layer_config *lc = &c->layer[i];
    layer_w *lw = &m->layers[i];
    int64_t D = c->dim, H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim;
    char p[128], name[256];
    snprintf(p, sizeof p, "model.layers.%d", i);

#define NAME(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
    if (get_vec(L, &lw->attn_norm, NAME("%s.input_layernorm.weight", p), D)) return -1;
    if (get_vec(L, &lw->ffn_norm, NAME("%s.post_attention_layernorm.weight", p), D)) return -1;
    if (get_mat(L, &lw->wq, NAME("%s.self_attn.q_proj.weight", p), H * Dh, D)) return -1;
    if (get_mat(L, &lw->wk, NAME("%s.self_attn.k_proj.weight", p), G * Dh, D)) return -1;
    if (get_mat(L, &lw->wv, NAME("%s.self_attn.v_proj.weight", p), G * Dh, D)) return -1;
    if (get_mat(L, &lw->wo, NAME("%s.self_attn.o_proj.weight", p), D, H * Dh)) return -1;
    if (get_vec_opt(L, &lw->bq, NAME("%s.self_attn.q_proj.bias", p), H * Dh, c->qkv_bias)) return -1;
    if (get_vec_opt(L, &lw->bk, NAME("%s.self_attn.k_proj.bias", p), G * Dh, c->qkv_bias)) return -1;
    if (get_vec_opt(L, &lw->bv, NAME("%s.self_attn.v_proj.bias", p), G * Dh, c->qkv_bias)) return -1;
    if (get_vec_opt(L, &lw->bo, NAME("%s.self_attn.o_proj.bias", p), D, c->o_bias)) return -1;
    if (c->qk_norm != MOE_QKNORM_NONE) {
        int full = c->qk_norm == MOE_QKNORM_FULL;
        if (get_vec(L, &lw->q_norm, NAME("%s.self_attn.q_norm.weight", p), full ? H * Dh : Dh))
            return -1;
        if (get_vec(L, &lw->k_norm, NAME("%s.self_attn.k_norm.weight", p), full ? G * Dh : Dh))
            return -1;
    }

    if (!lc->moe) {
        return get_ffn(L, &lw->dense, NAME("%s.mlp", p), "gate_proj", "up_proj", "down_proj",
                       lc->ffn_dim);
    }
    char mp[160];
    snprintf(mp, sizeof mp, "%s.%s", p, c->arch == MOE_ARCH_MIXTRAL ? "block_sparse_moe" : "mlp");
    if (c->arch == MOE_ARCH_MIXTRAL && !st_find(&m->st, NAME("%s.gate.weight", mp)) &&
        st_find(&m->st, NAME("%s.mlp.gate.weight", p)))
        snprintf(mp, sizeof mp, "%s.mlp", p); /* transformers 5 in-memory naming */
    if (get_mat(L, &lw->router, NAME("%s.gate.weight", mp), lc->n_experts, D)) return -1;
    if (lc->noise > 0 &&
        get_mat(L, &lw->router_noise, NAME("%s.gate_noise.weight", mp), lc->n_experts, D))
        return -1;
    if (get_experts(L, lw, mp, lc)) return -1;
    if (lc->n_shared > 0) {
        if (get_ffn(L, &lw->shared, NAME("%s.shared_expert", mp), "gate_proj", "up_proj",
                    "down_proj", lc->shared_dim))
            return -1;
        if (lc->shared_gate &&
            get_mat(L, &lw->shared_gate, NAME("%s.shared_expert_gate.weight", mp), 1, D))
            return -1;
    }
    if (lc->select_bias &&
        get_vec(L, &lw->sel_bias, NAME("%s.gate.e_score_correction_bias", mp), lc->n_experts))
        return -1;
#undef NAME
    return 0;
}

/* Number of f32 values the small vectors need (upper bound). */
static int64_t f32_needed(const moe_config *c) {
    int64_t D = c->dim, H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim;
    int64_t per = 2 * D + (H + 2 * G) * Dh + D + (H + G) * Dh;
    int64_t n = D + (int64_t)c->n_layers * per;
    for (int i = 0; i < c->n_layers; i++) n += c->layer[i].n_experts;
    return n;
}

static int64_t mat_bytes(const mat *w) { return w->rows * dtype_row_bytes(w->type, w->cols); }
static int64_t ffn_bytes(const ffn_w *f) {
    return mat_bytes(&f->gate) + mat_bytes(&f->up) + mat_bytes(&f->down);
}
static int64_t ffn_params(const ffn_w *f) {
    return f->gate.rows * f->gate.cols + f->up.rows * f->up.cols + f->down.rows * f->down.cols;
}

static void add_dtype(int *counts, dtype t, int64_t n) {
    if ((int)t >= 0 && t < DT_COUNT) counts[t] += (int)n;
}

/* Parameter and byte counts, total and per decoded token. */
static void compute_stats(moe_model *m) {
    const moe_config *c = &m->cfg;
    moe_model_stats *s = &m->stats;
    memset(s, 0, sizeof *s);
    int64_t tot_p = 0, tot_b = 0, act_p = 0, act_b = 0;
    for (int i = 0; i < m->st.n_tensors; i++) {
        tot_p += m->st.tensors[i].n_elems;
        tot_b += (int64_t)m->st.tensors[i].nbytes;
    }
    act_p = tot_p;
    act_b = tot_b;
    /* Decode reads one embedding row, unless the matrix is also the head. */
    if (!c->tied_embeddings) act_b -= mat_bytes(&m->embed);
    for (int i = 0; i < c->n_layers; i++) {
        const moe_layer_config *lc = &c->layer[i];
        if (!lc->moe || lc->n_experts == 0) continue;
        int64_t idle = lc->n_experts - lc->top_k;
        act_p -= idle * ffn_params(&m->layers[i].experts[0]);
        act_b -= idle * ffn_bytes(&m->layers[i].experts[0]);
    }
    s->params_total = tot_p;
    s->params_active = act_p;
    s->bytes_total = tot_b;
    s->bytes_active = act_b;
    int counts[DT_COUNT] = {0};
    for (int i = 0; i < m->st.n_tensors; i++) add_dtype(counts, m->st.tensors[i].type, 1);
    size_t o = 0;
    for (int t = 0; t < DT_COUNT; t++) {
        if (!counts[t] || o >= sizeof s->dtypes) continue;
        o += (size_t)snprintf(s->dtypes + o, sizeof s->dtypes - o, "%s%s (%d)", o ? ", " : "",
                              dtype_name((dtype)t), counts[t]);
    }
}

int moe_model_load(moe_model **out, const char *path, moe_err *err) {
    *out = NULL;
    kernels_init();
    moe_model *m = calloc(1, sizeof *m);
    if (!m) return moe_fail(err, "out of memory");
    size_t pl = strlen(path);
    if (pl > 5 && strcmp(path + pl - 5, ".gguf") == 0) { /* a single GGUF file */
        if (model_gguf_load(m, path, err)) goto fail;
        *out = m;
        return 0;
    }
    if (hf_config_load(&m->cfg, path, err)) goto fail;
    if (st_open_dir(&m->st, path, err)) goto fail;
    const moe_config *c = &m->cfg;
    int64_t V = c->vocab, D = c->dim;

    if (c->n_layers < 1 || c->n_layers > MOE_MAX_LAYERS) {
        moe_fail(err, "%s: %d layers, expected 1..%d", path, c->n_layers, MOE_MAX_LAYERS);
        goto fail;
    }
    int64_t n_exp = 0;
    for (int i = 0; i < c->n_layers; i++)
        if (c->layer[i].moe) n_exp += c->layer[i].n_experts;
    m->layers = calloc((size_t)(unsigned)c->n_layers, sizeof *m->layers);
    m->expert_table = calloc((size_t)(n_exp ? n_exp : 1), sizeof *m->expert_table);
    m->f32 = malloc((size_t)f32_needed(c) * sizeof(float));
    if (!m->layers || !m->expert_table || !m->f32) {
        moe_fail(err, "%s: out of memory for the weight tables", path);
        goto fail;
    }
    loader L = {m, path, err, m->f32, m->f32 + f32_needed(c)};
    if (get_mat(&L, &m->embed, "model.embed_tokens.weight", V, D)) goto fail;
    if (get_vec(&L, &m->final_norm, "model.norm.weight", D)) goto fail;
    if (c->tied_embeddings) {
        m->lm_head = m->embed;
    } else if (get_mat(&L, &m->lm_head, "lm_head.weight", V, D)) {
        goto fail;
    }
    ffn_w *next = m->expert_table;
    for (int i = 0; i < c->n_layers; i++) {
        if (c->layer[i].moe) {
            m->layers[i].experts = next;
            next += c->layer[i].n_experts;
        }
        if (load_layer(&L, i)) goto fail;
    }
    compute_stats(m);
    *out = m;
    return 0;
fail:
    moe_model_free(m);
    return -1;
}

void moe_model_free(moe_model *m) {
    if (!m) return;
    st_close(&m->st);
    if (m->gguf) {
        gguf_close(m->gguf);
        free(m->gguf);
    }
    free(m->owned);
    free(m->layers);
    free(m->expert_table);
    free(m->f32);
    free(m);
}

const moe_config *moe_model_config(const moe_model *m) { return &m->cfg; }

void moe_model_stats_get(const moe_model *m, moe_model_stats *st) { *st = m->stats; }
