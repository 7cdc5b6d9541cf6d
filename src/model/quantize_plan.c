/*
 * quantize_plan.c - which type every tensor of an output GGUF gets
 * (quantize.h): llama.cpp's conversion rules (convert_hf_to_gguf.py:
 * vectors and routers F32), llama-quantize's type rules
 * (llama-quant.cpp, llama_tensor_get_type and tensor_type_fallback) and
 * the per-expert mixed plan, greedy under a size budget.
 */
#include "model/quantize.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "formats/gguf.h"
#include "model/model.h"

/* ---------------------------------------------------------------- types */

int qz_type_from_name(const char *s) {
    static const struct { const char *name; int type; } k[] = {
        {"f32", GGUF_TYPE_F32},   {"f16", GGUF_TYPE_F16},   {"bf16", GGUF_TYPE_BF16},
        {"q4_0", GGUF_TYPE_Q4_0}, {"q8_0", GGUF_TYPE_Q8_0}, {"q4_k", GGUF_TYPE_Q4_K},
        {"q5_k", GGUF_TYPE_Q5_K}, {"q6_k", GGUF_TYPE_Q6_K}, {"mxfp4", GGUF_TYPE_MXFP4},
        {"q4_1", GGUF_TYPE_Q4_1}, {"q5_0", GGUF_TYPE_Q5_0}, {"q5_1", GGUF_TYPE_Q5_1},
        {"q2_k", GGUF_TYPE_Q2_K}, {"q3_k", GGUF_TYPE_Q3_K}, {"iq4_nl", GGUF_TYPE_IQ4_NL},
        {"iq4_xs", GGUF_TYPE_IQ4_XS},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcasecmp(s, k[i].name)) return k[i].type;
    return -1;
}

/* llama_ftype values (llama.h). A K-quant is the "_M" variant, as
 * `llama-quantize Q4_K_M` (with or without --pure) names its files; Q2_K
 * has none (its ftype is plain Q2_K). */
int qz_file_type(int type, int pure) {
    (void)pure;
    switch (type) {
    case GGUF_TYPE_F32: return 0;
    case GGUF_TYPE_F16: return 1;
    case GGUF_TYPE_Q4_0: return 2;
    case GGUF_TYPE_Q8_0: return 7;
    case GGUF_TYPE_Q4_K: return 15; /* Q4_K_M */
    case GGUF_TYPE_Q5_K: return 17; /* Q5_K_M */
    case GGUF_TYPE_Q6_K: return 18;
    case GGUF_TYPE_BF16: return 32;
    case GGUF_TYPE_MXFP4: return 38; /* MOSTLY_MXFP4_MOE */
    case GGUF_TYPE_Q4_1: return 3;
    case GGUF_TYPE_Q5_0: return 8;
    case GGUF_TYPE_Q5_1: return 9;
    case GGUF_TYPE_Q2_K: return 10;
    case GGUF_TYPE_Q3_K: return 12; /* Q3_K_M */
    case GGUF_TYPE_IQ4_NL: return 25;
    case GGUF_TYPE_IQ4_XS: return 30;
    default: return 0;
    }
}

static int is_quant(int type) {
    return type == GGUF_TYPE_Q4_0 || type == GGUF_TYPE_Q8_0 || type == GGUF_TYPE_Q4_K ||
           type == GGUF_TYPE_Q5_K || type == GGUF_TYPE_Q6_K ||
           type == GGUF_TYPE_Q4_1 || type == GGUF_TYPE_Q5_0 || type == GGUF_TYPE_Q5_1 ||
           type == GGUF_TYPE_Q2_K || type == GGUF_TYPE_Q3_K || type == GGUF_TYPE_IQ4_NL ||
           type == GGUF_TYPE_IQ4_XS;
}

/* llama.cpp's tensor_type_fallback: Q2_K / Q3_K -> Q4_0, Q4_K -> Q5_0,
 * Q5_K -> Q5_1, Q6_K -> Q8_0, IQ4_XS -> IQ4_NL; F16 when the fallback's
 * block (32) does not divide the row either, or the type is a 32-block one. */
int qz_fallback(int type, int64_t cols) {
    int block = gguf_type_block(type);
    if (block <= 1 || cols % block == 0) return type;
    int f = type == GGUF_TYPE_Q2_K || type == GGUF_TYPE_Q3_K ? GGUF_TYPE_Q4_0
          : type == GGUF_TYPE_Q4_K                         ? GGUF_TYPE_Q5_0
          : type == GGUF_TYPE_Q5_K                         ? GGUF_TYPE_Q5_1
          : type == GGUF_TYPE_Q6_K                         ? GGUF_TYPE_Q8_0
          : type == GGUF_TYPE_IQ4_XS                       ? GGUF_TYPE_IQ4_NL
                                                           : type;
    return cols % gguf_type_block(f) == 0 ? f : GGUF_TYPE_F16;
}

/* llama-quant.cpp's use_more_bits: the first and last eighth of the layers
 * and every third one between. */
static int more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int n_expert(const moe_config *c) {
    for (int i = 0; i < c->n_layers; i++)
        if (c->layer[i].moe) return c->layer[i].n_experts;
    return 0;
}

int qz_tensor_type(const moe_config *c, const tm_entry *e, int type, int pure, int *fallback) {
    /* never quantized (the role table's rule): vectors (norms, biases) and
     * the routers, as the converter writes them (F32) and llama-quantize
     * leaves them */
    if (tm_keep_f32(e->role) || e->rows == 0) return GGUF_TYPE_F32;
    int t = type;
    /* llama-quantize's MXFP4_MOE: routed experts MXFP4, every other 2-D weight Q8_0 */
    if (type == GGUF_TYPE_MXFP4 && !pure) t = tm_is_expert(e->role) ? type : GGUF_TYPE_Q8_0;
    if (is_quant(type) && !pure) {
        int K = type == GGUF_TYPE_Q4_K || type == GGUF_TYPE_Q5_K; /* the _M mixtures */
        int IQ4 = type == GGUF_TYPE_IQ4_NL || type == GGUF_TYPE_IQ4_XS;
        int Q2 = type == GGUF_TYPE_Q2_K, Q3 = type == GGUF_TYPE_Q3_K; /* Q2_K, Q3_K_M */
        int gqa4 = c->n_kv_heads > 0 && c->n_heads / c->n_kv_heads >= 4; /* hparams.n_gqa() >= 4 */
        int e8 = n_expert(c) == 8, L = c->n_layers;
        tm_role r = e->role;
        if (r == TM_OUTPUT || (r == TM_EMBED && c->tied_embeddings)) {
            /* output.weight (or a tied token_embd): Q6_K, Q8_0 stays Q8_0 */
            if (e->cols % gguf_type_block(type)) t = GGUF_TYPE_Q8_0;
            else if (type != GGUF_TYPE_Q8_0) t = GGUF_TYPE_Q6_K;
        } else if (r == TM_ATTN_V || r == TM_LIN_QKV) {
            /* attn_qkv counts as attn_v (category_is_attn_v); qwen3next has
             * one of the two per layer, so the layer is its index */
            if (Q2) t = gqa4 ? GGUF_TYPE_Q4_K : GGUF_TYPE_Q3_K;
            else if (Q3) t = e->layer < 2 ? GGUF_TYPE_Q5_K : GGUF_TYPE_Q4_K;
            else if (IQ4 && gqa4) t = GGUF_TYPE_Q5_K;
            else if (K && more_bits(e->layer, L)) t = GGUF_TYPE_Q6_K;
            if (e8) t = GGUF_TYPE_Q8_0; /* "bumping this to Q8_0 trades just ~128MB" */
        } else if (r == TM_ATTN_K) {
            if (e8) t = GGUF_TYPE_Q8_0;
        } else if (r == TM_FFN_DOWN || r == TM_EXP_DOWN || r == TM_SHEXP_DOWN) {
            if (Q2) t = GGUF_TYPE_Q3_K;
            else if (Q3) t = e->layer < L / 16 ? GGUF_TYPE_Q5_K : GGUF_TYPE_Q4_K;
            else if (K && more_bits(e->layer, L)) t = GGUF_TYPE_Q6_K;
            else if (IQ4 && e->layer < L / 8) t = GGUF_TYPE_Q5_K;
        } else if (r == TM_ATTN_O) {
            if (e8 && (type == GGUF_TYPE_Q4_K || Q2 || Q3 || IQ4)) t = GGUF_TYPE_Q5_K;
            else if (!e8 && (Q2 || Q3)) t = Q2 ? GGUF_TYPE_Q3_K : GGUF_TYPE_Q4_K;
        }
    }
    int f = qz_fallback(t, e->cols);
    if (fallback) *fallback = f != t;
    return f;
}

/* --------------------------------------------------------------- budget */

int qz_parse_budget(const char *s, int64_t params, int64_t *bytes) {
    if (!s || !*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v <= 0) return -1;
    if (!strcasecmp(end, "bpw")) {
        if (v > 64 || params <= 0) return -1;
        *bytes = (int64_t)floor(v * (double)params / 8);
        return 0;
    }
    double mul = 1;
    const char *u = end;
    if (*u) {
        const char *units = "KMGT";
        const char *p = strchr(units, toupper((unsigned char)*u));
        if (!p) return -1;
        int k = (int)(p - units) + 1;
        u++;
        int dec = 0;
        if (*u == 'i' || *u == 'I') { /* KiB = K */
            u++;
            if (*u != 'B' && *u != 'b') return -1;
            u++;
        } else if (*u == 'B' || *u == 'b') { /* KB: decimal */
            dec = 1;
            u++;
        }
        if (*u) return -1;
        for (int i = 0; i < k; i++) mul *= dec ? 1000.0 : 1024.0;
    }
    double b = v * mul;
    if (b >= 9.0e18) return -1;
    *bytes = (int64_t)floor(b);
    return *bytes > 0 ? 0 : -1;
}

/* ----------------------------------------------------------------- plan */

void qz_plan_free(qz_plan *p) {
    free(p->t);
    free(p->type);
    free(p->split);
    free(p->expert_type);
    memset(p, 0, sizeof *p);
}

/* deepseek2 / glm4moe (llama.cpp's DeepSeek-V2/V3 and GLM-4.5 files): what
 * their keys can say. One routing for every MoE layer and the dense layers
 * first (leading_dense_block_count), shared experts of the routed width
 * (expert_shared_count), no gate on them; latent attention for deepseek2
 * with YaRN as llama.cpp computes it (cos/sin unscaled: mscale =
 * mscale_all_dim), GQA with optional q/k/v biases and per-head q/k norms
 * for glm4moe; llama.cpp requires exp_probs_b in glm4moe's MoE layers. */
static int check_ds(const moe_config *c, moe_err *err) {
    const char *a = tm_gguf_arch(c->arch);
    int glm = c->arch == MOE_ARCH_GLM4_MOE;
    const moe_layer_config *m0 = NULL, *d0 = NULL;
    for (int i = 0; i < c->n_layers; i++) {
        const moe_layer_config *lc = &c->layer[i];
        if (!lc->moe) {
            if (m0)
                return moe_fail(err, "layer %d is dense after MoE layers: %s files have the "
                                "dense layers first (leading_dense_block_count)", i, a);
            if (d0 && lc->ffn_dim != d0->ffn_dim)
                return moe_fail(err, "layer %d: dense width %d differs from layer 0's %d (%s "
                                "files have one feed_forward_length)", i, lc->ffn_dim,
                                d0->ffn_dim, a);
            if (!d0) d0 = lc;
            continue;
        }
        if (!m0) m0 = lc;
        const char *what =
            lc->n_experts != m0->n_experts || lc->top_k != m0->top_k ||
                    lc->expert_dim != m0->expert_dim || lc->n_shared != m0->n_shared ||
                    lc->shared_dim != m0->shared_dim || lc->score != m0->score ||
                    lc->norm_topk != m0->norm_topk || lc->routed_scale != m0->routed_scale ||
                    lc->select_bias != m0->select_bias || lc->group != m0->group ||
                    lc->n_group != m0->n_group || lc->topk_group != m0->topk_group
                ? "routing or sizes that differ from the first MoE layer's"
            : lc->score != MOE_SCORE_SOFTMAX && lc->score != MOE_SCORE_SIGMOID
                ? "a router score other than softmax or sigmoid"
            : lc->kind != MOE_ROUTE_TOKEN_CHOICE ? "routing other than token choice"
            : lc->shared_gate                    ? "a gate on the shared expert"
            : lc->router_bias || lc->expert_bias ? "router or expert biases"
            : lc->act != MOE_ACT_SILU            ? "an activation other than SwiGLU"
            : lc->n_shared < 0 || lc->shared_dim != lc->n_shared * lc->expert_dim
                ? "a shared expert width that is not expert_shared_count x the expert width"
            : glm && !lc->select_bias ? "no selection bias (llama.cpp requires exp_probs_b)"
                                      : NULL;
        if (what)
            return moe_fail(err, "layer %d has %s, which the GGUF format of %s models cannot "
                            "express", i, what, a);
    }
    if (c->o_bias || c->attn_sinks || c->attn_out_gate || c->norm_offset)
        return moe_fail(err, "%s: an output bias, sinks, an output gate or zero-centred norms, "
                        "which %s files cannot express", c->model_type, a);
    if (glm) {
        if (c->kv_lora_rank || c->qk_norm == MOE_QKNORM_FULL || c->rope_kind != MOE_ROPE_DEFAULT)
            return moe_fail(err, "%s: latent attention, whole-projection q/k norms or a RoPE "
                            "other than the default, which %s files cannot express",
                            c->model_type, a);
        return 0;
    }
    if (!c->kv_lora_rank || c->qkv_bias || c->qk_norm != MOE_QKNORM_NONE)
        return moe_fail(err, "%s: %s files hold latent attention without q/k/v biases or "
                        "norms", c->model_type, a);
    if (c->rope_kind == MOE_ROPE_YARN && (c->rope_attn_factor != 1.0f || !c->rope_truncate))
        return moe_fail(err, "%s: YaRN with cos/sin scaled by %g%s: llama.cpp's %s scales "
                        "them by 1 (mscale = mscale_all_dim) and truncates the correction "
                        "range", c->model_type, c->rope_attn_factor,
                        c->rope_truncate ? "" : " without truncation", a);
    return 0;
}

/* What a GGUF file cannot say: llama.cpp has no field for these. */
static int check_gguf_expressible(const moe_config *c, moe_err *err) {
    const tm_arch_info *ai = tm_arch_of(c->arch);
    if (!ai || ai->no_gguf)
        return moe_fail(err, "%s: writing GGUF files of this architecture is not supported",
                        c->model_type);
    if (c->mod_capacity > 0)
        return moe_fail(err, "%s: Mixture-of-Depths layers, which GGUF files cannot express "
                        "(llama.cpp has no field for their routers); write safetensors",
                        c->model_type);
    int n_moe = 0;
    for (int i = 0; i < c->n_layers; i++) n_moe += c->layer[i].moe;
    if (!n_moe)
        return moe_fail(err, "no MoE layer: a dense model has no %s.expert_count to write",
                        tm_gguf_arch(c->arch));
    if (c->arch == MOE_ARCH_DEEPSEEK_V2 || c->arch == MOE_ARCH_DEEPSEEK_V3 ||
        c->arch == MOE_ARCH_GLM4_MOE)
        return check_ds(c, err);
    if (c->arch == MOE_ARCH_GPT_OSS && c->tied_embeddings)
        return moe_fail(err, "tied embeddings: llama.cpp's %s needs output.weight",
                        tm_gguf_arch(c->arch));
    for (int i = 0; i < c->n_layers; i++) {
        const moe_layer_config *lc = &c->layer[i];
        if (!lc->moe) continue;
        /* gpt-oss: top-k of the logits, then softmax (llama.cpp's SOFTMAX_WEIGHT) */
        moe_score want = c->arch == MOE_ARCH_GPT_OSS ? MOE_SCORE_TOPK_SOFTMAX : MOE_SCORE_SOFTMAX;
        const char *what = lc->score == MOE_SCORE_SIGMOID          ? "a sigmoid router"
                           : lc->score != want                     ? "another router score"
                           : lc->select_bias                       ? "a selection bias"
                           : lc->kind == MOE_ROUTE_EXPERT_CHOICE   ? "expert-choice routing"
                           : lc->kind == MOE_ROUTE_HASH            ? "hash routing"
                           : lc->routed_scale != 1.0f              ? "a routed scaling factor"
                                                                   : NULL;
        if (what)
            return moe_fail(err, "layer %d has %s, which the GGUF format of %s models cannot "
                            "express (llama.cpp has no field for it)", i, what,
                            tm_gguf_arch(c->arch));
    }
    return 0;
}

static int64_t tensor_bytes(int type, const tm_entry *e) {
    int64_t ne[3];
    int nd = tm_gguf_dims(e, ne);
    return gguf_nbytes((gguf_type)type, nd, ne);
}

/* Bytes of one expert (gate, up, down) of layer i at type t (with fallbacks). */
static int64_t expert_bytes(const moe_config *c, int i, int t) {
    const moe_layer_config *lc = &c->layer[i];
    int64_t D = c->dim, F = lc->expert_dim;
    tm_entry g = {TM_EXP_GATE, i, 0, 1, F, D}, d = {TM_EXP_DOWN, i, 0, 1, D, F};
    return 2 * tensor_bytes(qz_fallback(t, D), &g) + tensor_bytes(qz_fallback(t, F), &d);
}

typedef struct rank {
    double count;
    int layer, expert;
} rank;

static int by_count(const void *a, const void *b) {
    const rank *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    if (x->layer != y->layer) return x->layer - y->layer;
    return x->expert - y->expert;
}

/* Greedy: every expert at low, then the most routed ones up to high while
 * the budget holds (an expert that does not fit is skipped, a smaller one
 * later may still fit). */
static int plan_mixed(qz_plan *p, const moe_config *c, const qz_opts *o, int64_t fixed,
                      moe_err *err) {
    int L = c->n_layers, S = o->stride;
    p->stride = S;
    p->expert_type = malloc(sizeof(int) * (size_t)L * (size_t)(S > 0 ? S : 1));
    rank *rk = malloc(sizeof *rk * (size_t)L * (size_t)(S > 0 ? S : 1));
    if (!p->expert_type || !rk) {
        free(rk);
        return moe_fail(err, "out of memory");
    }
    int n = 0;
    int64_t lo = fixed, hi = fixed;
    for (int i = 0; i < L; i++) {
        const moe_layer_config *lc = &c->layer[i];
        for (int e = 0; e < S; e++) p->expert_type[i * S + e] = o->low;
        if (!lc->moe) continue;
        if (lc->n_experts > S)
            return free(rk), moe_fail(err, "routing counts have %d experts per layer, layer %d "
                                      "has %d", S, i, lc->n_experts);
        for (int e = 0; e < lc->n_experts; e++) {
            rk[n++] = (rank){o->counts ? o->counts[i * S + e] : 0, i, e};
            lo += expert_bytes(c, i, o->low);
            hi += expert_bytes(c, i, o->high);
        }
    }
    p->min_bytes = lo;
    p->max_bytes = hi;
    p->n_experts = n;
    if (o->budget < lo) {
        free(rk);
        return moe_fail(err, "budget of %lld bytes is below the smallest mixed file: %lld bytes "
                        "with every expert at the low type", (long long)o->budget,
                        (long long)lo);
    }
    qsort(rk, (size_t)n, sizeof *rk, by_count);
    int64_t size = lo;
    for (int k = 0; k < n; k++) {
        int i = rk[k].layer, e = rk[k].expert;
        int64_t extra = expert_bytes(c, i, o->high) - expert_bytes(c, i, o->low);
        if (size + extra > o->budget) continue;
        size += extra;
        p->expert_type[i * S + e] = o->high;
        p->n_high++;
    }
    free(rk);
    /* a layer whose experts all share a type stays stacked (llama.cpp's layout) */
    for (int i = 0; i < L; i++) {
        const moe_layer_config *lc = &c->layer[i];
        if (!lc->moe) continue;
        for (int e = 1; e < lc->n_experts; e++)
            if (p->expert_type[i * S + e] != p->expert_type[i * S]) p->split[i] = 1;
    }
    return 0;
}

/* What the plan knows of the source: a loaded model, or (m NULL) a model
 * not made yet whose 2-D weights will be stored as `weights` and routed
 * experts as `experts` (gguf types; vectors are F32 once loaded). */
typedef struct plan_src {
    const moe_model *m;
    const moe_config *c;
    int weights, experts;
} plan_src;

/* The stored type of e's weight (plane 0) as a gguf type; -1: none. */
static int source_type(const plan_src *s, const tm_entry *e) {
    if (!s->m) {
        /* qwen3_next's attn_qkv / attn_gate are rows of in_proj_qkvz: the loaded
         * model has no weight of their own (tm_source fails: kept as F32) */
        if ((e->role == TM_LIN_QKV || e->role == TM_LIN_Z) && !tm_lin_split(s->c)) return -1;
        return e->rows == 0 ? GGUF_TYPE_F32 : tm_is_expert(e->role) ? s->experts : s->weights;
    }
    mat w;
    if (!tm_source(s->m, e, 0, &w)) return dtype_to_ggml(w.type);
    /* attn_k_b / attn_v_b of a model loaded from transformers' kv_b_proj */
    const layer_w *lw = e->layer >= 0 ? &s->m->layers[e->layer] : NULL;
    if ((e->role == TM_ATTN_K_B || e->role == TM_ATTN_V_B) && lw && lw->wkv_b.data)
        return dtype_to_ggml(lw->wkv_b.type);
    return -1;
}

/* Marks the layers whose experts do not all have one type; how many. */
static int keep_split(const moe_model *m, unsigned char *split) {
    int n = 0;
    if (!m) return 0;
    for (int i = 0; i < m->cfg.n_layers; i++) {
        const moe_layer_config *lc = &m->cfg.layer[i];
        if (!lc->moe) continue;
        const ffn_w *x = m->layers[i].experts;
        for (int e = 1; e < lc->n_experts && !split[i]; e++)
            split[i] = x[e].gate.type != x[0].gate.type || x[e].up.type != x[0].up.type ||
                       x[e].down.type != x[0].down.type;
        n += split[i];
    }
    return n;
}

/* The type of e in the plan. */
static int entry_type(const qz_plan *p, const plan_src *s, const tm_entry *e,
                      const qz_opts *o, int *fb) {
    const moe_config *c = s->c;
    *fb = 0;
    if (tm_keep_f32(e->role) || e->rows == 0) return GGUF_TYPE_F32;
    switch (o->mode) {
    case QZ_KEEP: {
        int t = source_type(s, e);
        return t < 0 ? GGUF_TYPE_F32 : t;
    }
    case QZ_FLOAT: return o->type;
    case QZ_QUANT: {
        int src = tm_is_expert(e->role) ? source_type(s, e) : -1;
        if (src >= 0 && (o->experts == QZ_EXPERTS_KEEP ||
                         (o->experts == 0 && src == GGUF_TYPE_MXFP4)))
            return src; /* kept as they are */
        if (tm_is_expert(e->role) && o->experts > 0) {
            int f = qz_fallback(o->experts, e->cols);
            *fb = f != o->experts;
            return f;
        }
        return qz_tensor_type(c, e, o->type, o->pure, fb);
    }
    case QZ_MIXED:
        if (tm_is_expert(e->role)) {
            int t = p->expert_type[e->layer * p->stride + (e->expert >= 0 ? e->expert : 0)];
            int f = qz_fallback(t, e->cols);
            *fb = f != t;
            return f;
        }
        return qz_tensor_type(c, e, o->high, 0, fb);
    }
    return GGUF_TYPE_F32;
}

static int plan_make(qz_plan *p, const plan_src *s, const qz_opts *o, moe_err *err) {
    memset(p, 0, sizeof *p);
    const moe_model *m = s->m;
    const moe_config *c = s->c;
    if (check_gguf_expressible(c, err)) return -1;
    if ((o->mode == QZ_FLOAT || o->mode == QZ_QUANT) && !gguf_type_block(o->type))
        return moe_fail(err, "unsupported output type %d", o->type);
    if (o->mode == QZ_MIXED && (!is_quant(o->high) || !is_quant(o->low) || !o->counts ||
                                o->stride <= 0))
        return moe_fail(err, "mixed: high and low must be quantized types, with routing counts");
    int L = c->n_layers;
    p->split = calloc((size_t)L + 1, 1);
    if (!p->split) return moe_fail(err, "out of memory");
    /* the fixed part (everything but routed experts) decides the mixed budget */
    int n = tm_list(c, TM_GGUF, NULL, NULL, 0);
    p->t = malloc(sizeof *p->t * (size_t)n);
    p->type = malloc(sizeof *p->type * (size_t)n);
    if (!p->t || !p->type) {
        qz_plan_free(p);
        return moe_fail(err, "out of memory");
    }
    p->n = tm_list(c, TM_GGUF, NULL, p->t, n);
    /* keeping types: a layer whose experts differ (a mixed source) stays split */
    if (o->mode == QZ_KEEP && keep_split(m, p->split)) {
        n = tm_list(c, TM_GGUF, p->split, NULL, 0);
        tm_entry *t = realloc(p->t, sizeof *t * (size_t)n);
        int *ty = t ? realloc(p->type, sizeof *ty * (size_t)n) : NULL;
        if (t) p->t = t;
        if (ty) p->type = ty;
        if (!t || !ty) {
            qz_plan_free(p);
            return moe_fail(err, "out of memory");
        }
        p->n = tm_list(c, TM_GGUF, p->split, p->t, n);
    }
    if (o->mode == QZ_MIXED) {
        int64_t fixed = 0;
        for (int i = 0; i < p->n; i++) {
            if (tm_is_expert(p->t[i].role)) continue;
            int fb;
            fixed += tensor_bytes(qz_tensor_type(c, &p->t[i], o->high, 0, &fb), &p->t[i]);
        }
        if (plan_mixed(p, c, o, fixed, err)) {
            qz_plan_free(p);
            return -1;
        }
        n = tm_list(c, TM_GGUF, p->split, NULL, 0);
        tm_entry *t = realloc(p->t, sizeof *t * (size_t)n);
        int *ty = t ? realloc(p->type, sizeof *ty * (size_t)n) : NULL;
        if (t) p->t = t;
        if (ty) p->type = ty;
        if (!t || !ty) {
            qz_plan_free(p);
            return moe_fail(err, "out of memory");
        }
        p->n = tm_list(c, TM_GGUF, p->split, p->t, n);
    }
    for (int i = 0; i < p->n; i++) {
        const tm_entry *e = &p->t[i];
        int fb = 0;
        p->type[i] = entry_type(p, s, e, o, &fb);
        p->n_fallback += fb;
        if (!gguf_type_block(p->type[i])) {
            qz_plan_free(p);
            return moe_fail(err, "tensor %d: no GGUF type for its source", i);
        }
        int64_t b = tensor_bytes(p->type[i], e);
        if (b < 0) {
            char name[96];
            tm_gguf_name(name, sizeof name, e);
            qz_plan_free(p);
            return moe_fail(err, "%s: row length %lld does not suit %s", name,
                            (long long)e->cols, gguf_type_name(p->type[i]));
        }
        p->bytes += b;
        p->params += (e->rows ? e->rows : 1) * e->cols * e->planes;
    }
    switch (o->mode) {
    case QZ_KEEP: { /* the type of the 2-D weights, as the converter's "auto" names it */
        p->file_type = 0;
        for (int i = 0; i < p->n; i++)
            if (p->t[i].rows > 0 && !tm_keep_f32(p->t[i].role)) {
                p->file_type = qz_file_type(p->type[i], 0);
                break;
            }
        break;
    }
    case QZ_FLOAT: p->file_type = qz_file_type(o->type, 0); break;
    case QZ_QUANT: p->file_type = qz_file_type(o->type, o->pure); break;
    case QZ_MIXED: p->file_type = qz_file_type(o->low, 0); break;
    }
    /* float weights around MXFP4 experts: MOSTLY_MXFP4_MOE, as the converter names it */
    if (o->mode == QZ_KEEP || o->mode == QZ_FLOAT)
        for (int i = 0; i < p->n; i++)
            if (p->type[i] == GGUF_TYPE_MXFP4) p->file_type = qz_file_type(GGUF_TYPE_MXFP4, 0);
    return 0;
}

int qz_plan_make(qz_plan *p, const moe_model *m, const qz_opts *o, moe_err *err) {
    plan_src s = {m, &m->cfg, -1, -1};
    return plan_make(p, &s, o, err);
}

int qz_plan_make_cfg(qz_plan *p, const moe_config *c, int weights, int experts, const qz_opts *o,
                     moe_err *err) {
    if (o->mode == QZ_MIXED) return moe_fail(err, "a mixed plan needs a loaded model");
    plan_src s = {NULL, c, weights, experts};
    return plan_make(p, &s, o, err);
}
