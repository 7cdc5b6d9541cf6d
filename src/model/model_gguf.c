/*
 * model_gguf.c - from a llama.cpp GGUF file to a moe_model: build moe_config
 * from the ARCH.* metadata and point every weight at its bytes in the
 * mapping, checking each tensor's presence, shape and type.
 *
 * Architectures (general.architecture): "llama" with ARCH.expert_count > 0
 * (Mixtral), "qwen2moe", "qwen3moe", "olmoe". Tensor names and metadata
 * keys are llama.cpp's and come from the table in tensor_map.h (the GGUF
 * writers use the same table). Routed experts are read stacked
 * (blk.N.ffn_gate_exps, GGUF ne = [in, out, E], i.e. [E][out][in]) or, for
 * layers written one tensor per expert (blk.N.ffn_gate.J: the split layout
 * `moe quantize --type mixed` uses when a layer's experts have different
 * types, docs/QUANT.md), expert by expert, each with its own type.
 *
 * llama.cpp's converter permutes the q and k rows of "llama" models to the
 * interleaved (GPT-J) RoPE layout that llama.cpp's llama graph uses:
 *   permute(w, n_head) = w.reshape(n_head, 2, Dh/2, in).swapaxes(1, 2)
 * (convert_hf_to_gguf.py, LlamaModel.permute; k uses the kv head count). Our
 * forward applies NeoX RoPE as transformers does, so the rows are put back
 * at load into an owned copy: hf row h*Dh + j*Dh/2 + i = gguf row h*Dh + 2i + j.
 * Whole rows move, so this works for quantized rows too. qwen2moe, qwen3moe
 * and olmoe are stored unpermuted (NeoX in llama.cpp).
 *
 * Keys llama.cpp does not have for these architectures but moe writes when
 * a model needs them (llama.cpp ignores them): ARCH.expert_weights_norm
 * (top-k renormalization other than the architecture's default),
 * ARCH.attention.clamp_kqv (OLMoE clip_qkv), ARCH.attention.sliding_window.
 *
 * The tokenizer in the GGUF metadata is read by src/tokenizer/tokenizer_gguf.c
 * (moe_tokenizer_load on the same path).
 */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "formats/gguf.h"
#include "model/tensor_map.h"

typedef struct gloader {
    moe_model *m;
    const gguf_file *g;
    const char *path;
    moe_err *err;
    char *own_next, *own_end; /* bump pointer into m->owned */
} gloader;

/* Tensor `name` as [rows][cols] (cols = ne[0]); planes > 0: [planes][rows][cols]. */
static const gguf_tensor *gneed(gloader *L, const char *name, int64_t planes, int64_t rows,
                                int64_t cols) {
    const gguf_tensor *t = gguf_find(L->g, name);
    if (!t) {
        moe_fail(L->err, "%s: tensor %s is missing", L->path, name);
        return NULL;
    }
    int nd = planes > 0 ? 3 : rows > 0 ? 2 : 1;
    int64_t want[3] = {cols, rows > 0 ? rows : 1, planes > 0 ? planes : 1};
    /* A [1][D] matrix may be stored 1-D and the reverse: compare ne padded with 1s. */
    int ok = t->n_dims <= 3 && (t->n_dims == nd || (nd <= 2 && t->n_dims <= 2 && want[1] == 1));
    for (int i = 0; ok && i < 3; i++) ok = t->ne[i] == want[i];
    if (!ok) {
        moe_fail(L->err,
                 "%s: tensor %s has ne [%lld, %lld, %lld] (%d dims), expected [%lld, %lld, %lld]",
                 L->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                 t->n_dims, (long long)want[0], (long long)want[1], (long long)want[2]);
        return NULL;
    }
    dtype dt = dtype_from_ggml((int)t->type);
    if (dt == DT_COUNT || dtype_row_bytes(dt, cols) == 0) {
        moe_fail(L->err, "%s: tensor %s: type %s is not supported here", L->path, name,
                 gguf_type_name((int)t->type) ? gguf_type_name((int)t->type) : "?");
        return NULL;
    }
    return t;
}

static int gmat(gloader *L, mat *out, const char *name, int64_t rows, int64_t cols) {
    const gguf_tensor *t = gneed(L, name, 0, rows, cols);
    if (!t) return -1;
    *out = (mat){t->data, dtype_from_ggml((int)t->type), rows, cols};
    return 0;
}

/* A 1-D vector as f32 (norm weights, biases): in place when F32, else widened. */
static int gvec(gloader *L, const float **out, const char *name, int64_t n) {
    const gguf_tensor *t = gneed(L, name, 0, 0, n);
    if (!t) return -1;
    if (t->type == GGUF_TYPE_F32) {
        *out = t->data;
        return 0;
    }
    size_t bytes = (size_t)n * sizeof(float);
    if (L->own_next + bytes > L->own_end)
        return moe_fail(L->err, "%s: internal: owned arena too small at %s", L->path, name);
    float *dst = (float *)(void *)L->own_next;
    L->own_next += (bytes + 63) & ~(size_t)63;
    mat row = {t->data, dtype_from_ggml((int)t->type), 1, n};
    mat_row_f32(dst, &row, 0);
    *out = dst;
    return 0;
}

/* q or k of a llama-arch file: copy with the rows put back in HF order. */
static int gmat_unpermute(gloader *L, mat *out, const char *name, int64_t heads, int64_t Dh,
                          int64_t cols) {
    if (gmat(L, out, name, heads * Dh, cols)) return -1;
    if (Dh % 2) return moe_fail(L->err, "%s: %s: odd head_dim %lld", L->path, name, (long long)Dh);
    size_t rb = (size_t)dtype_row_bytes(out->type, cols), bytes = rb * (size_t)(heads * Dh);
    if (L->own_next + bytes > L->own_end)
        return moe_fail(L->err, "%s: internal: owned arena too small at %s", L->path, name);
    char *dst = L->own_next;
    L->own_next += (bytes + 63) & ~(size_t)63;
    const char *src = out->data;
    int64_t half = Dh / 2;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < half; i++)
                memcpy(dst + (size_t)(h * Dh + j * half + i) * rb,
                       src + (size_t)(h * Dh + 2 * i + j) * rb, rb);
    out->data = dst;
    return 0;
}

/* A role's tensor name at a layer (expert -1: stacked or not an expert). */
static const char *gname(char *buf, size_t n, tm_role r, int layer, int expert) {
    if (tm_gguf_name_of(buf, n, r, layer, expert)) snprintf(buf, n, "?");
    return buf;
}

/* A SwiGLU FFN from three roles (dense or shared expert). */
static int gffn(gloader *L, ffn_w *f, int layer, tm_role gate, int64_t F) {
    int64_t D = L->m->cfg.dim;
    char name[96];
    if (gmat(L, &f->gate, gname(name, sizeof name, gate, layer, -1), F, D)) return -1;
    if (gmat(L, &f->up, gname(name, sizeof name, gate + 1, layer, -1), F, D)) return -1;
    if (gmat(L, &f->down, gname(name, sizeof name, gate + 2, layer, -1), D, F)) return -1;
    return 0;
}

/* Whether a layer's routed experts are stored one tensor per expert. */
static int gsplit(const gguf_file *g, int layer) {
    char name[96];
    return !gguf_find(g, gname(name, sizeof name, TM_EXP_DOWN, layer, -1)) &&
           gguf_find(g, gname(name, sizeof name, TM_EXP_DOWN, layer, 0));
}

/* Routed experts [E][out][in]: per-expert mats point into the stack, or at
 * each expert's own tensor (which may have its own type). */
static int gexperts(gloader *L, layer_w *lw, int layer, int64_t E, int64_t F) {
    int64_t D = L->m->cfg.dim;
    int split = gsplit(L->g, layer);
    for (int p = 0; p < 3; p++) {
        char name[96];
        tm_role r = (tm_role)(TM_EXP_GATE + p);
        int64_t rows = p == 2 ? D : F, cols = p == 2 ? F : D;
        const gguf_tensor *t = NULL;
        size_t plane = 0;
        if (!split) {
            t = gneed(L, gname(name, sizeof name, r, layer, -1), E, rows, cols);
            if (!t) return -1;
            plane = (size_t)dtype_row_bytes(dtype_from_ggml((int)t->type), cols) * (size_t)rows;
        }
        for (int64_t e = 0; e < E; e++) {
            const char *data;
            if (split) {
                t = gneed(L, gname(name, sizeof name, r, layer, (int)e), 0, rows, cols);
                if (!t) return -1;
                data = t->data;
            } else {
                data = (const char *)t->data + (size_t)e * plane;
            }
            mat w = {data, dtype_from_ggml((int)t->type), rows, cols};
            if (p == 0) lw->experts[e].gate = w;
            else if (p == 1) lw->experts[e].up = w;
            else lw->experts[e].down = w;
        }
    }
    return 0;
}

static int gload_layer(gloader *L, int i) {
    moe_model *m = L->m;
    const moe_config *c = &m->cfg;
    const moe_layer_config *lc = &c->layer[i];
    layer_w *lw = &m->layers[i];
    int64_t D = c->dim, H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim;
    char name[96];
#define NAME(r) gname(name, sizeof name, r, i, -1)
    if (gvec(L, &lw->attn_norm, NAME(TM_ATTN_NORM), D)) return -1;
    if (gvec(L, &lw->ffn_norm, NAME(TM_FFN_NORM), D)) return -1;
    if (c->arch == MOE_ARCH_MIXTRAL) {
        if (gmat_unpermute(L, &lw->wq, NAME(TM_ATTN_Q), H, Dh, D)) return -1;
        if (gmat_unpermute(L, &lw->wk, NAME(TM_ATTN_K), G, Dh, D)) return -1;
    } else {
        if (gmat(L, &lw->wq, NAME(TM_ATTN_Q), H * Dh, D)) return -1;
        if (gmat(L, &lw->wk, NAME(TM_ATTN_K), G * Dh, D)) return -1;
    }
    if (gmat(L, &lw->wv, NAME(TM_ATTN_V), G * Dh, D)) return -1;
    if (gmat(L, &lw->wo, NAME(TM_ATTN_O), D, H * Dh)) return -1;
    if (c->qkv_bias) {
        if (gvec(L, &lw->bq, NAME(TM_ATTN_Q_BIAS), H * Dh)) return -1;
        if (gvec(L, &lw->bk, NAME(TM_ATTN_K_BIAS), G * Dh)) return -1;
        if (gvec(L, &lw->bv, NAME(TM_ATTN_V_BIAS), G * Dh)) return -1;
    }
    if (c->o_bias && gvec(L, &lw->bo, NAME(TM_ATTN_O_BIAS), D)) return -1;
    if (c->qk_norm != MOE_QKNORM_NONE) {
        int full = c->qk_norm == MOE_QKNORM_FULL;
        if (gvec(L, &lw->q_norm, NAME(TM_ATTN_Q_NORM), full ? H * Dh : Dh)) return -1;
        if (gvec(L, &lw->k_norm, NAME(TM_ATTN_K_NORM), full ? G * Dh : Dh)) return -1;
    }
    if (!lc->moe) return gffn(L, &lw->dense, i, TM_FFN_GATE, lc->ffn_dim);
    if (gmat(L, &lw->router, NAME(TM_ROUTER), lc->n_experts, D)) return -1;
    if (gexperts(L, lw, i, lc->n_experts, lc->expert_dim)) return -1;
    if (lc->n_shared > 0) {
        if (gffn(L, &lw->shared, i, TM_SHEXP_GATE, lc->shared_dim)) return -1;
        if (lc->shared_gate && gmat(L, &lw->shared_gate, NAME(TM_SHEXP_INP), 1, D)) return -1;
    }
#undef NAME
    return 0;
}

/* ARCH.suffix as an int in [lo, hi]; def when absent and def >= lo. */
static int gint(gloader *L, const char *arch, const char *suffix, int64_t lo, int64_t hi,
                int64_t def, int *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    if (!gguf_find_kv(L->g, key) && def >= lo) {
        *out = (int)def;
        return 0;
    }
    if (gguf_get_int(L->g, key, &v, L->err)) return -1;
    if (v < lo || v > hi)
        return moe_fail(L->err, "%s: key %s: %lld out of range [%lld, %lld]", L->path, key,
                        (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return 0;
}

static int gfloat(gloader *L, const char *arch, const char *suffix, double def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v = def;
    if (gguf_find_kv(L->g, key) && gguf_get_float(L->g, key, &v, L->err)) return -1;
    if (!(v > 0) || v > 1e30)
        return moe_fail(L->err, "%s: key %s: %g is not a positive number", L->path, key, v);
    *out = (float)v;
    return 0;
}

static int gconfig(gloader *L) {
    moe_config *c = &L->m->cfg;
    const char *arch;
    if (gguf_get_str(L->g, "general.architecture", &arch, NULL, L->err)) return -1;
    memset(c, 0, sizeof *c);
    int E = 0, a = tm_arch_from_gguf(arch);
    if (a < 0)
        return moe_fail(L->err,
                        "%s: general.architecture \"%.40s\" is not supported (llama with "
                        "experts, qwen2moe, qwen3moe, olmoe)",
                        L->path, arch);
    c->arch = (moe_arch)a;
    static const char *const model_type[] = {
        [MOE_ARCH_MIXTRAL] = "mixtral", [MOE_ARCH_QWEN2_MOE] = "qwen2_moe",
        [MOE_ARCH_QWEN3_MOE] = "qwen3_moe", [MOE_ARCH_OLMOE] = "olmoe"};
    snprintf(c->model_type, sizeof c->model_type, "%s", model_type[c->arch]);
    c->qkv_bias = c->arch == MOE_ARCH_QWEN2_MOE;
    c->qk_norm = c->arch == MOE_ARCH_QWEN3_MOE ? MOE_QKNORM_HEAD
                 : c->arch == MOE_ARCH_OLMOE   ? MOE_QKNORM_FULL
                                               : MOE_QKNORM_NONE;
    if (gint(L, arch, TMK_EXPERT_COUNT, 0, 4096, 0, &E)) return -1;
    if (E == 0)
        return moe_fail(L->err, "%s: %s.expert_count is 0 or missing: a dense model, not MoE",
                        L->path, arch);
    if (gint(L, arch, TMK_BLOCK_COUNT, 1, MOE_MAX_LAYERS, -1, &c->n_layers)) return -1;
    if (gint(L, arch, TMK_EMBEDDING_LENGTH, 1, 1 << 20, -1, &c->dim)) return -1;
    if (gint(L, arch, TMK_HEAD_COUNT, 1, 4096, -1, &c->n_heads)) return -1;
    if (gint(L, arch, TMK_HEAD_COUNT_KV, 1, c->n_heads, c->n_heads, &c->n_kv_heads))
        return -1;
    if (c->n_heads % c->n_kv_heads)
        return moe_fail(L->err, "%s: %d heads not a multiple of %d kv heads", L->path,
                        c->n_heads, c->n_kv_heads);
    if (gint(L, arch, TMK_KEY_LENGTH, 1, 1 << 16, c->dim / c->n_heads, &c->head_dim))
        return -1;
    if (gint(L, arch, TMK_CONTEXT_LENGTH, 1, 1 << 30, 4096, &c->max_pos)) return -1;
    if (gint(L, arch, TMK_SLIDING_WINDOW, 0, 1 << 30, 0, &c->sliding_window)) return -1;
    if (gfloat(L, arch, TMK_ROPE_FREQ_BASE, 10000.0, &c->rope_theta)) return -1;
    if (gfloat(L, arch, TMK_RMS_EPS, 1e-6, &c->norm_eps)) return -1;
    /* clip_qkv: llama.cpp's olmoe converter does not write it (only OLMo's does), so
     * an OLMoE GGUF made from a clip_qkv model runs unclipped, as in llama.cpp. */
    char ckey[128];
    snprintf(ckey, sizeof ckey, "%s.%s", arch, TMK_CLAMP_KQV);
    if (gguf_find_kv(L->g, ckey) && gfloat(L, arch, TMK_CLAMP_KQV, 0, &c->clip_qkv))
        return -1;
    int K, F = 0, FS = 0, FD = 0;
    if (gint(L, arch, TMK_EXPERT_USED, 1, E, -1, &K)) return -1;
    if (gint(L, arch, TMK_FEED_FORWARD_LENGTH, 0, 1 << 24, 0, &FD)) return -1;
    if (gint(L, arch, TMK_EXPERT_FF, 0, 1 << 24, 0, &F)) return -1;
    if (gint(L, arch, TMK_EXPERT_SHARED_FF, 0, 1 << 24, 0, &FS)) return -1;

    char name[96];
    const gguf_tensor *emb = gguf_find(L->g, gname(name, sizeof name, TM_EMBED, -1, -1));
    if (!emb || emb->n_dims != 2)
        return moe_fail(L->err, "%s: tensor token_embd.weight is missing or not 2-D", L->path);
    if (emb->ne[1] > (1 << 24))
        return moe_fail(L->err, "%s: vocab %lld too large", L->path, (long long)emb->ne[1]);
    c->vocab = (int)emb->ne[1];
    c->tied_embeddings = gguf_find(L->g, gname(name, sizeof name, TM_OUTPUT, -1, -1)) == NULL;
    c->bos_id = c->eos_id = -1;
    int64_t id;
    moe_err ignore;
    if (gguf_find_kv(L->g, TMK_BOS_ID) && !gguf_get_int(L->g, TMK_BOS_ID, &id, &ignore) &&
        id >= 0 && id < c->vocab)
        c->bos_id = (int)id;
    if (gguf_find_kv(L->g, TMK_EOS_ID) && !gguf_get_int(L->g, TMK_EOS_ID, &id, &ignore) &&
        id >= 0 && id < c->vocab)
        c->eos_id = (int)id;

    /* Routing: softmax top-k; renormalized for Mixtral and Qwen3 (ARCH.expert_weights_norm
     * overrides), not for Qwen2-MoE and OLMoE. */
    int norm = tm_gguf_default_norm_topk(c->arch);
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, TMK_EXPERT_WEIGHTS_NORM);
    bool b;
    if (gguf_find_kv(L->g, key)) {
        if (gguf_get_bool(L->g, key, &b, L->err)) return -1;
        norm = b;
    }
    for (int i = 0; i < c->n_layers; i++) {
        const gguf_tensor *ge = gguf_find(L->g, gname(name, sizeof name, TM_EXP_GATE, i, -1));
        if (!ge) ge = gguf_find(L->g, gname(name, sizeof name, TM_EXP_GATE, i, 0)); /* split */
        moe_layer_config *lc = &c->layer[i];
        if (!ge) { /* a dense layer */
            *lc = (moe_layer_config){.moe = 0, .ffn_dim = FD, .routed_scale = 1.0f};
            if (FD <= 0)
                return moe_fail(L->err, "%s: layer %d is dense but %s.feed_forward_length is "
                                "missing", L->path, i, arch);
            continue;
        }
        /* Mixtral and OLMoE files carry the expert width as feed_forward_length. */
        int f = F > 0 ? F : (int)ge->ne[1];
        *lc = (moe_layer_config){.moe = 1, .ffn_dim = FD, .n_experts = E, .top_k = K,
                                 .expert_dim = f, .score = MOE_SCORE_SOFTMAX, .norm_topk = norm,
                                 .routed_scale = 1.0f};
        if (c->arch == MOE_ARCH_QWEN2_MOE && FS > 0) {
            lc->n_shared = 1;
            lc->shared_dim = FS;
            lc->shared_gate =
                gguf_find(L->g, gname(name, sizeof name, TM_SHEXP_INP, i, -1)) != NULL;
        }
    }
    return 0;
}

/* Bytes of one expert of a layer, averaged over its experts (they may have
 * different types in a mixed file). */
static int64_t expert_bytes_avg(const moe_model *m, int layer) {
    const moe_layer_config *lc = &m->cfg.layer[layer];
    int64_t sum = 0;
    for (int e = 0; e < lc->n_experts; e++) {
        const ffn_w *f = &m->layers[layer].experts[e];
        const mat *w[3] = {&f->gate, &f->up, &f->down};
        for (int j = 0; j < 3; j++) sum += w[j]->rows * dtype_row_bytes(w[j]->type, w[j]->cols);
    }
    return lc->n_experts ? sum / lc->n_experts : 0;
}

static void gstats(moe_model *m) {
    const moe_config *c = &m->cfg;
    moe_model_stats *s = &m->stats;
    memset(s, 0, sizeof *s);
    int counts[64] = {0};
    for (int i = 0; i < m->gguf->n_tensors; i++) {
        const gguf_tensor *t = &m->gguf->tensors[i];
        s->params_total += t->n_elems;
        s->bytes_total += (int64_t)t->nbytes;
        if ((int)t->type >= 0 && (int)t->type < 64) counts[t->type]++;
    }
    s->params_active = s->params_total;
    s->bytes_active = s->bytes_total;
    /* Decode reads one embedding row, unless the matrix is also the head. */
    const gguf_tensor *emb = gguf_find(m->gguf, "token_embd.weight");
    if (!c->tied_embeddings && emb) s->bytes_active -= (int64_t)emb->nbytes;
    for (int i = 0; i < c->n_layers; i++) {
        const moe_layer_config *lc = &c->layer[i];
        if (!lc->moe) continue;
        const ffn_w *f = &m->layers[i].experts[0];
        int64_t idle = lc->n_experts - lc->top_k;
        const mat *w[3] = {&f->gate, &f->up, &f->down};
        for (int j = 0; j < 3; j++) s->params_active -= idle * w[j]->rows * w[j]->cols;
        s->bytes_active -= idle * expert_bytes_avg(m, i);
    }
    size_t o = 0;
    for (int t = 0; t < 64; t++) {
        if (!counts[t] || o >= sizeof s->dtypes) continue;
        const char *nm = dtype_name(dtype_from_ggml(t));
        o += (size_t)snprintf(s->dtypes + o, sizeof s->dtypes - o, "%s%s (%d)", o ? ", " : "",
                              nm, counts[t]);
    }
}

int model_gguf_load(moe_model *m, const char *path, moe_err *err) {
    m->gguf = calloc(1, sizeof *m->gguf);
    if (!m->gguf) return moe_fail(err, "out of memory");
    if (gguf_open(m->gguf, path, err)) {
        free(m->gguf);
        m->gguf = NULL;
        return -1;
    }
    gloader L = {m, m->gguf, path, err, NULL, NULL};
    if (gconfig(&L)) return -1;
    const moe_config *c = &m->cfg;
    int64_t V = c->vocab, D = c->dim, H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim;

    /* Owned copies: un-permuted q/k (llama) and widened non-F32 vectors. Upper bound. */
    size_t own = 64 + (size_t)(D + 63) * 4;
    for (int i = 0; i < c->n_layers; i++) {
        char name[96];
        for (int j = 0; j < 2; j++) {
            const gguf_tensor *t =
                gguf_find(m->gguf, gname(name, sizeof name, j ? TM_ATTN_K : TM_ATTN_Q, i, -1));
            if (t && c->arch == MOE_ARCH_MIXTRAL) own += t->nbytes + 64;
        }
        own += (size_t)(4 * D + 4 * (H + 2 * G) * Dh + 8 * 64) * 4;
    }
    int64_t n_exp = 0;
    for (int i = 0; i < c->n_layers; i++)
        if (c->layer[i].moe) n_exp += c->layer[i].n_experts;
    m->layers = calloc((size_t)(unsigned)c->n_layers, sizeof *m->layers);
    m->expert_table = calloc((size_t)(n_exp ? n_exp : 1), sizeof *m->expert_table);
    m->owned = aligned_alloc(64, (own + 63) & ~(size_t)63);
    if (!m->layers || !m->expert_table || !m->owned)
        return moe_fail(err, "%s: out of memory for the weight tables", path);
    L.own_next = m->owned;
    L.own_end = L.own_next + own;

    char name[96];
    if (gmat(&L, &m->embed, gname(name, sizeof name, TM_EMBED, -1, -1), V, D)) return -1;
    if (gvec(&L, &m->final_norm, gname(name, sizeof name, TM_OUTPUT_NORM, -1, -1), D))
        return -1;
    if (c->tied_embeddings) m->lm_head = m->embed;
    else if (gmat(&L, &m->lm_head, gname(name, sizeof name, TM_OUTPUT, -1, -1), V, D))
        return -1;
    ffn_w *next = m->expert_table;
    for (int i = 0; i < c->n_layers; i++) {
        if (c->layer[i].moe) {
            m->layers[i].experts = next;
            next += c->layer[i].n_experts;
        }
        if (gload_layer(&L, i)) return -1;
    }
    gstats(m);
    return 0;
}
