/*
 * weights.c - the one loader: two walks of the weight-role table, the first
 * checking every tensor and measuring, the second placing (see weights.h).
 *
 * llama.cpp's converter permutes the q and k rows of "llama" models to the
 * interleaved (GPT-J) RoPE layout that llama.cpp's llama graph uses:
 *   permute(w, n_head) = w.reshape(n_head, 2, Dh/2, in).swapaxes(1, 2)
 * (convert_hf_to_gguf.py, LlamaModel.permute; k uses the kv head count). Our
 * forward applies NeoX RoPE as transformers does, so the rows are put back
 * at load into an owned copy: hf row h*Dh + j*Dh/2 + i = gguf row h*Dh + 2i + j.
 * Whole rows move, so this works for quantized rows too.
 *
 * transformers' gpt_oss stores each layer's experts as fused stacked
 * tensors computed as x @ W (not nn.Linear's x @ W^T): gate_up_proj
 * [E][D][2F] with gate at the even and up at the odd columns, down_proj
 * [E][F][D], gate_up_proj_bias [E][2F] (interleaved alike), down_proj_bias
 * [E][D]. They are read at load into owned copies in the per-expert layout
 * (gate, up [F][D], down [D][F], in the stored element type: F32, BF16 or
 * F16) and f32 bias vectors, so the forward sees ordinary experts.
 *
 * The released gpt-oss checkpoints store those two expert tensors as MXFP4
 * instead ("quantization_config": {"quant_method": "mxfp4"}): NAME_blocks
 * [E][R][C/32][16] and NAME_scales [E][R][C/32], both U8, where R x C is the
 * nn.Linear orientation (rows = outputs): gate_up_proj [2F][D] with gate at
 * the even and up at the odd rows, down_proj [D][F]. transformers'
 * convert_moe_packed_tensors (integrations/mxfp4.py) dequantizes a block
 * row to 32 values (byte i: element 2i low nibble, 2i+1 high; scale
 * 2^(s-127)) and transposes the last two dimensions to get the x @ W
 * tensors above. The interleave runs along the rows, so the loader
 * de-interleaves whole rows of blocks: each row is converted to ggml's
 * block layout (mxfp4_from_hf) into an owned copy, gate rows then up rows,
 * and the experts stay MXFP4 in memory.
 */
#include "model/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "formats/hf_config.h"
#include "kernels/quant.h"
#include "model/model.h"

#define N_GGML 64 /* ggml type ids counted in the stats */

typedef struct wload {
    moe_model *m;
    const wt_source *src;
    moe_err *err;
    int placing;            /* 0: checking and measuring; 1: placing */
    size_t own;             /* bytes of owned copies (measured, then used) */
    char *own_next, *own_end;
    int64_t n_experts;      /* routed experts over all layers */
    /* the counts of moe_model_stats */
    int64_t params, bytes, embed_bytes;
    int64_t exp_params[MOE_MAX_LAYERS], exp_bytes[MOE_MAX_LAYERS]; /* all experts of a layer */
    int64_t qparams, exp_qparams[MOE_MAX_LAYERS]; /* of those, stored block-quantized */
    int type_count[N_GGML];
} wload;

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

static const char *shape_str(char *buf, size_t n, const int64_t *shape, int nd) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < nd && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

/* Whether t has e's shape. A stacked expert tensor is [E][rows][cols]; a
 * [1][n] matrix may be stored 1-D and a vector as [1][n]. */
static int shape_ok(const tm_entry *e, const wt_tensor *t, int64_t want[3], int *nd) {
    int stacked = (tm_is_expert(e->role) && e->expert < 0) ||
                  (tm_role_of(e->role)->flags & TMF_HEADS); /* [H][rows][cols] */
    int planes = (tm_role_of(e->role)->flags & TMF_PLANES) != 0; /* [E][cols] */
    *nd = stacked ? 3 : e->rows || planes ? 2 : 1;
    want[0] = stacked ? e->planes : 1;
    want[1] = planes ? e->planes : e->rows ? e->rows : 1;
    want[2] = e->cols;
    if (t->n_dims < 1 || t->n_dims > 3) return 0;
    if ((tm_role_of(e->role)->flags & TMF_MID1) && t->n_dims == 3) /* conv1d [rows][1][cols] */
        return t->shape[0] == want[1] && t->shape[1] == 1 && t->shape[2] == want[2];
    if (t->n_dims != *nd && !(*nd <= 2 && t->n_dims <= 2 && want[1] == 1)) return 0;
    int64_t got[3] = {1, 1, 1};
    for (int i = 0; i < t->n_dims; i++) got[3 - t->n_dims + i] = t->shape[i];
    return got[0] == want[0] && got[1] == want[1] && got[2] == want[2];
}

static int is_fused_matrix(tm_role r) { return r == TM_EXP_GATE_UP || r == TM_EXP_DOWN_T; }

/* A U8 tensor of exactly the given shape (n dims). */
static int u8_shape_ok(const wt_tensor *t, const int64_t *want, int n) {
    if (t->type != DT_U8 || t->n_dims != n) return 0;
    int64_t count = 1;
    for (int i = 0; i < n; i++) {
        if (t->shape[i] != want[i]) return 0;
        count *= want[i];
    }
    return t->nbytes >= count;
}

/* The MXFP4 pair of a fused expert matrix (see the top of the file): bl and
 * sc found and checked. 1: neither is there; -1: an error in W->err. */
static int check_mxfp4(wload *W, const tm_entry *e, const char *name, wt_tensor *bl,
                       wt_tensor *sc) {
    const char *path = W->src->path;
    char nb[300], ns[300];
    snprintf(nb, sizeof nb, "%s_blocks", name);
    snprintf(ns, sizeof ns, "%s_scales", name);
    int rb = W->src->find(W->src->ctx, e, nb, bl, W->err);
    if (rb < 0) return -1;
    int rs = W->src->find(W->src->ctx, e, ns, sc, W->err);
    if (rs < 0) return -1;
    if (rb > 0 && rs > 0) return 1;
    if (rb > 0 || rs > 0)
        return moe_fail(W->err, "%s: tensor %s is missing (%s is there)", path,
                        rb > 0 ? nb : ns, rb > 0 ? ns : nb);
    int64_t R = e->cols, C = e->rows; /* the x @ W tensor transposed */
    if (C % QK_MXFP4)
        return moe_fail(W->err, "%s: tensor %s: rows of %lld values are not whole MXFP4 blocks "
                        "of %d", path, nb, (long long)C, QK_MXFP4);
    int64_t want[4] = {e->planes, R, C / QK_MXFP4, QK_MXFP4 / 2};
    char a[96], b[96];
    if (!u8_shape_ok(bl, want, 4))
        return moe_fail(W->err, "%s: tensor %s: %s %s, expected U8 %s", path, nb,
                        bl->type == DT_U8 ? "U8" : dtype_name(bl->type),
                        shape_str(a, sizeof a, bl->shape, bl->n_dims < 1 || bl->n_dims > 4 ? 0 : bl->n_dims),
                        shape_str(b, sizeof b, want, 4));
    if (!u8_shape_ok(sc, want, 3))
        return moe_fail(W->err, "%s: tensor %s: %s %s, expected U8 %s", path, ns,
                        sc->type == DT_U8 ? "U8" : dtype_name(sc->type),
                        shape_str(a, sizeof a, sc->shape, sc->n_dims < 1 || sc->n_dims > 4 ? 0 : sc->n_dims),
                        shape_str(b, sizeof b, want, 3));
    return 0;
}

/* Find and check the tensor of e; fills rb (bytes per row). A fused expert
 * matrix may come as an MXFP4 pair instead: then *mx is set, t holds the
 * blocks and sc the scales, and rb is the bytes of one ggml block row. */
static int check(wload *W, const tm_entry *e, char *name, size_t nn, wt_tensor *t, size_t *rb,
                 wt_tensor *sc, int *mx) {
    const char *path = W->src->path;
    *mx = 0;
    if (tm_name(name, nn, W->src->format, &W->m->cfg, e))
        return moe_fail(W->err, "%s: a tensor name of layer %d does not fit", path, e->layer);
    int r = W->src->find(W->src->ctx, e, name, t, W->err);
    if (r < 0) return -1;
    if (r > 0 && is_fused_matrix(e->role)) {
        int m = check_mxfp4(W, e, name, t, sc);
        if (m < 0) return -1;
        if (m == 0) {
            *mx = 1;
            *rb = (size_t)dtype_row_bytes(DT_MXFP4, e->rows);
            return 0;
        }
        return moe_fail(W->err, "%s: tensor %s is missing (and %s_blocks, %s_scales)", path, name,
                        name, name);
    }
    if (r > 0) return moe_fail(W->err, "%s: tensor %s is missing", path, name);
    int64_t want[3];
    int nd;
    if (!shape_ok(e, t, want, &nd)) {
        char a[96], b[96];
        return moe_fail(W->err, "%s: tensor %s has shape %s, expected %s", path, name,
                        shape_str(a, sizeof a, t->shape, t->n_dims < 1 || t->n_dims > 3 ? 0 : t->n_dims),
                        shape_str(b, sizeof b, want + 3 - nd, nd));
    }
    if ((tm_role_of(e->role)->flags & TMF_FUSED) && t->type != DT_F32 && t->type != DT_BF16 &&
        t->type != DT_F16)
        return moe_fail(W->err, "%s: tensor %s: type %s; fused expert tensors load from F32, "
                        "BF16 or F16", path, name, dtype_name(t->type));
    *rb = (size_t)dtype_row_bytes(t->type, e->cols);
    if (!*rb)
        return moe_fail(W->err, "%s: tensor %s: type %s does not suit rows of %lld values",
                        path, name, dtype_name(t->type), (long long)e->cols);
    int64_t need = e->planes * (e->rows ? e->rows : 1) * (int64_t)*rb;
    if (t->nbytes < need)
        return moe_fail(W->err, "%s: tensor %s holds %lld bytes, its shape needs %lld", path,
                        name, (long long)t->nbytes, (long long)need);
    return 0;
}

static int permuted(const wload *W, const tm_entry *e) {
    return W->src->rope_perm && (tm_role_of(e->role)->flags & TMF_ROPE_PERM);
}

/* Zero-centred norms (norm_offset): the loaded weight is 1 + w, made at
 * load in f32 exactly as transformers forms it. llama.cpp's converter
 * stores the sum already (w + 1 in f32, the same number). */
static int offset_norm(const wload *W, tm_role r) {
    return W->src->format == TM_HF && tm_norm_offset(&W->m->cfg, r);
}

/* Pass 1: the bytes of owned copies, and the counts. */
static void measure(wload *W, const tm_entry *e, const wt_tensor *t, size_t rb) {
    const moe_config *c = &W->m->cfg;
    int64_t rows = e->rows ? e->rows : 1, params = e->planes * rows * e->cols;
    int64_t bytes = e->planes * rows * (int64_t)rb;
    if (!e->rows && (t->type != DT_F32 || offset_norm(W, e->role)))
        W->own += round64((size_t)(e->planes * e->cols) * sizeof(float));
    if (permuted(W, e)) W->own += round64((size_t)bytes);
    int fused = (tm_role_of(e->role)->flags & TMF_FUSED) != 0;
    if (fused && tm_is_expert(e->role)) W->own += round64((size_t)bytes); /* re-laid copy */
    else if (e->role == TM_EXP_GATE_UP_BIAS) W->own += round64((size_t)params * 2 * sizeof(float));
    else if (e->role == TM_EXP_DOWN_BIAS && t->type != DT_F32)
        W->own += round64((size_t)params * sizeof(float));
    int quant = dtype_is_quant(t->type) && e->rows; /* a quantized matrix, not a vector */
    W->params += params;
    W->bytes += bytes;
    if (quant && !(e->role == TM_EMBED && !c->tied_embeddings)) W->qparams += params;
    if (e->role == TM_EMBED && !c->tied_embeddings) W->embed_bytes = bytes;
    if (tm_is_expert(e->role) || fused || (tm_role_of(e->role)->flags & TMF_PLANES)) {
        W->exp_params[e->layer] += params; /* expert biases too, as from HF */
        W->exp_bytes[e->layer] += bytes;
        if (quant) W->exp_qparams[e->layer] += params;
    }
    int g = dtype_to_ggml(t->type);
    if (g >= 0 && g < N_GGML) W->type_count[g]++;
}

/* Pass 1 for an MXFP4 pair: the owned ggml-layout copy, and the counts. */
static void measure_mxfp4(wload *W, const tm_entry *e, size_t rb) {
    int64_t R = e->cols, params = e->planes * R * e->rows, bytes = e->planes * R * (int64_t)rb;
    W->own += round64((size_t)bytes);
    W->params += params;
    W->bytes += bytes;
    W->qparams += params;
    W->exp_params[e->layer] += params;
    W->exp_bytes[e->layer] += bytes;
    W->exp_qparams[e->layer] += params;
    W->type_count[dtype_to_ggml(DT_MXFP4)]++;
}

/* NULL only if the second walk asked for more than the first measured. */
static void *own_take(wload *W, size_t bytes) {
    char *p = W->own_next;
    if (round64(bytes) > (size_t)(W->own_end - p)) return NULL;
    W->own_next += round64(bytes);
    return p;
}

/* Element j of a row of F32/BF16/F16 values, moved as bits. */
static void put_elem(char *dst, int64_t i, const char *src, int64_t j, size_t es) {
    if (es == 4) ((uint32_t *)(void *)dst)[i] = ((const uint32_t *)(const void *)src)[j];
    else ((uint16_t *)(void *)dst)[i] = ((const uint16_t *)(const void *)src)[j];
}

/* Pass 2 for transformers' fused expert tensors (see the top of the file). */
static int place_fused(wload *W, const tm_entry *e, const wt_tensor *t) {
    moe_model *m = W->m;
    const moe_layer_config *lc = &m->cfg.layer[e->layer];
    ffn_w *ex = m->layers[e->layer].experts;
    int64_t E = lc->n_experts, F = lc->expert_dim, D = m->cfg.dim;
    size_t es = t->type == DT_F32 ? 4 : 2;
    const char *src = t->data;
    char *dst;
    float *f;
    switch (e->role) {
    case TM_EXP_GATE_UP: /* plane [D][2F] -> gate [F][D], up [F][D] */
        if (!(dst = own_take(W, (size_t)(E * 2 * F * D) * es))) break;
        for (int64_t p = 0; p < E; p++) {
            const char *sp = src + (size_t)(p * D * 2 * F) * es;
            char *g = dst + (size_t)(p * 2 * F * D) * es, *u = g + (size_t)(F * D) * es;
            for (int64_t d = 0; d < D; d++)
                for (int64_t j = 0; j < F; j++) {
                    put_elem(g, j * D + d, sp, d * 2 * F + 2 * j, es);
                    put_elem(u, j * D + d, sp, d * 2 * F + 2 * j + 1, es);
                }
            ex[p].gate = (mat){g, t->type, F, D};
            ex[p].up = (mat){u, t->type, F, D};
        }
        return 0;
    case TM_EXP_DOWN_T: /* plane [F][D] -> down [D][F] */
        if (!(dst = own_take(W, (size_t)(E * F * D) * es))) break;
        for (int64_t p = 0; p < E; p++) {
            const char *sp = src + (size_t)(p * F * D) * es;
            char *o = dst + (size_t)(p * F * D) * es;
            for (int64_t j = 0; j < F; j++)
                for (int64_t d = 0; d < D; d++) put_elem(o, d * F + j, sp, j * D + d, es);
            ex[p].down = (mat){o, t->type, D, F};
        }
        return 0;
    case TM_EXP_GATE_UP_BIAS: /* [E][2F] -> f32 interleaved, then gate [F] and up [F] per expert */
        if (!(f = own_take(W, (size_t)(E * 4 * F) * sizeof(float)))) break;
        for (int64_t p = 0; p < E; p++) {
            float *wide = f + E * 2 * F + p * 2 * F, *bg = f + p * 2 * F, *bu = bg + F;
            mat_row_f32(wide, &(mat){t->data, t->type, E, 2 * F}, p);
            for (int64_t j = 0; j < F; j++) {
                bg[j] = wide[2 * j];
                bu[j] = wide[2 * j + 1];
            }
            ex[p].bg = bg;
            ex[p].bu = bu;
        }
        return 0;
    case TM_EXP_DOWN_BIAS:
        if (t->type == DT_F32) {
            for (int64_t p = 0; p < E; p++) ex[p].bd = (const float *)t->data + p * D;
            return 0;
        }
        if (!(f = own_take(W, (size_t)(E * D) * sizeof(float)))) break;
        for (int64_t p = 0; p < E; p++) {
            mat_row_f32(f + p * D, &(mat){t->data, t->type, E, D}, p);
            ex[p].bd = f + p * D;
        }
        return 0;
    default:
        return moe_fail(W->err, "%s: internal: role %d is not a fused expert tensor", W->src->path,
                        (int)e->role);
    }
    return moe_fail(W->err, "%s: internal: owned copies overran", W->src->path);
}

/* Pass 2 for an MXFP4 pair (see the top of the file): rb bytes a ggml row. */
static int place_mxfp4(wload *W, const tm_entry *e, const wt_tensor *bl, const wt_tensor *sc,
                       size_t rb) {
    moe_model *m = W->m;
    ffn_w *ex = m->layers[e->layer].experts;
    int64_t E = e->planes, R = e->cols, C = e->rows, nb = C / QK_MXFP4;
    int64_t F = m->cfg.layer[e->layer].expert_dim;
    int gate_up = e->role == TM_EXP_GATE_UP;
    char *dst = own_take(W, (size_t)(E * R) * rb);
    if (!dst) return moe_fail(W->err, "%s: internal: owned copies overran", W->src->path);
    const uint8_t *blocks = bl->data, *scales = sc->data;
    for (int64_t p = 0; p < E; p++) {
        char *plane = dst + (size_t)(p * R) * rb;
        for (int64_t r = 0; r < R; r++) {
            int64_t to = gate_up ? (r % 2) * F + r / 2 : r; /* gate rows, then up rows */
            int64_t at = (p * R + r) * nb;                  /* the row's first block */
            mxfp4_from_hf(blocks + at * (QK_MXFP4 / 2), scales + at,
                          (block_mxfp4 *)(void *)(plane + (size_t)to * rb), nb);
        }
        if (gate_up) {
            ex[p].gate = (mat){plane, DT_MXFP4, F, C};
            ex[p].up = (mat){plane + (size_t)F * rb, DT_MXFP4, F, C};
        } else {
            ex[p].down = (mat){plane, DT_MXFP4, R, C};
        }
    }
    return 0;
}

/* Pass 2: point e's slot (each plane's) at its bytes, or at a copy. */
static int place(wload *W, const tm_entry *e, const char *name, const wt_tensor *t, size_t rb) {
    moe_model *m = W->m;
    if (tm_role_of(e->role)->flags & TMF_FUSED) return place_fused(W, e, t);
    if (!e->rows) { /* vectors (one per plane), as f32: in place if stored so (training
                       updates them there) */
        int offset = offset_norm(W, e->role);
        float *dst = NULL;
        if (t->type != DT_F32 || offset) {
            dst = own_take(W, (size_t)(e->planes * e->cols) * sizeof(float));
            if (!dst) return moe_fail(W->err, "%s: internal: owned copies overran", W->src->path);
        }
        for (int p = 0; p < e->planes; p++) {
            const float **v = tm_slot_vec(m, e, p);
            if (!v) return moe_fail(W->err, "%s: internal: no slot for %s", W->src->path, name);
            if (!dst) {
                *v = (const float *)t->data + (size_t)p * (size_t)e->cols;
                continue;
            }
            float *row = dst + (size_t)p * (size_t)e->cols;
            mat_row_f32(row, &(mat){t->data, t->type, e->planes, e->cols}, p);
            if (offset)
                for (int64_t i = 0; i < e->cols; i++) row[i] = 1.0f + row[i];
            *v = row;
        }
        return 0;
    }
    const char *data = t->data;
    if (permuted(W, e)) {
        int64_t Dh = m->cfg.head_dim, half = Dh / 2, heads = e->rows / Dh;
        char *dst = own_take(W, rb * (size_t)e->rows);
        if (!dst) return moe_fail(W->err, "%s: internal: owned copies overran", W->src->path);
        for (int64_t h = 0; h < heads; h++)
            for (int64_t j = 0; j < 2; j++)
                for (int64_t i = 0; i < half; i++)
                    memcpy(dst + (size_t)(h * Dh + j * half + i) * rb,
                           data + (size_t)(h * Dh + 2 * i + j) * rb, rb);
        data = dst;
    }
    if (tm_role_of(e->role)->flags & TMF_HEADS) { /* one matrix of every head's rows */
        mat *w = tm_slot_mat(m, e, 0);
        if (!w) return moe_fail(W->err, "%s: internal: no slot for %s", W->src->path, name);
        *w = (mat){data, t->type, e->planes * e->rows, e->cols};
        return 0;
    }
    for (int p = 0; p < e->planes; p++) {
        mat *w = tm_slot_mat(m, e, p);
        if (!w) return moe_fail(W->err, "%s: internal: no slot for %s", W->src->path, name);
        *w = (mat){data + (size_t)p * (size_t)e->rows * rb, t->type, e->rows, e->cols};
    }
    return 0;
}

static int visit(void *ctx, const tm_entry *e) {
    wload *W = ctx;
    char name[256];
    wt_tensor t, sc;
    size_t rb = 0;
    int mx;
    if (check(W, e, name, sizeof name, &t, &rb, &sc, &mx)) return -1;
    if (W->src->experts_in_file && (mx || is_fused_matrix(e->role)))
        return moe_fail(W->err, "%s: tensor %s: routed experts stored as transformers' fused "
                        "gpt_oss tensors are re-laid at load, so an expert memory budget cannot "
                        "read them from the file; convert the model to GGUF", W->src->path, name);
    if (!W->placing) {
        if (mx) measure_mxfp4(W, e, rb);
        else measure(W, e, &t, rb);
        return 0;
    }
    return mx ? place_mxfp4(W, e, &t, &sc, rb) : place(W, e, name, &t, rb);
}

static void fill_stats(moe_model *m, const wload *W) {
    const moe_config *c = &m->cfg;
    moe_model_stats *s = &m->stats;
    memset(s, 0, sizeof *s);
    s->params_total = s->params_active = W->params;
    s->bytes_total = W->bytes;
    /* Decode reads one embedding row, unless the matrix is also the head. */
    s->bytes_active = W->bytes - W->embed_bytes;
    s->params_active_quant = W->qparams;
    for (int i = 0; i < c->n_layers; i++) {
        const moe_layer_config *lc = &c->layer[i];
        if (!lc->moe || lc->n_experts <= 0) continue;
        int64_t idle = lc->n_experts - lc->top_k;
        s->params_active -= idle * (W->exp_params[i] / lc->n_experts);
        s->bytes_active -= idle * (W->exp_bytes[i] / lc->n_experts);
        s->params_active_quant -= idle * (W->exp_qparams[i] / lc->n_experts);
    }
    /* whole items only: what does not fit (with room for ", ...") becomes "..." */
    size_t o = 0;
    for (int g = 0; g < N_GGML; g++) {
        if (!W->type_count[g]) continue;
        char item[48];
        int n = snprintf(item, sizeof item, "%s%s (%d)", o ? ", " : "", dtype_name(dtype_from_ggml(g)),
                         W->type_count[g]);
        int more = 0;
        for (int h = g + 1; h < N_GGML; h++) more |= W->type_count[h] != 0;
        if (o + (size_t)n + (more ? 5 : 0) >= sizeof s->dtypes) {
            snprintf(s->dtypes + o, sizeof s->dtypes - o, "%s...", o ? ", " : "");
            break;
        }
        memcpy(s->dtypes + o, item, (size_t)n + 1);
        o += (size_t)n;
    }
}

int weights_load(moe_model *m, const wt_source *src, moe_err *err) {
    const moe_config *c = &m->cfg;
    if (moe_config_validate(c, src->path, err)) return -1;
    const tm_arch_info *ai = tm_arch_of(c->arch);
    for (int i = 0; i < c->n_layers; i++)
        if (c->layer[i].moe && c->layer[i].expert_bias && src->format == TM_HF &&
            !(ai && ai->hf_fused))
            return moe_fail(err, "%s: layer %d: expert biases load only from transformers' fused "
                            "expert tensors or GGUF files (gpt_oss)", src->path, i);
    wload *W = calloc(1, sizeof *W);
    if (!W) return moe_fail(err, "out of memory");
    *W = (wload){.m = m, .src = src, .err = err};
    int rc = -1;
    /* 1. every tensor present, with its shape and a usable type */
    if (tm_walk(c, src->format, src->split, visit, W)) goto done;
    /* 2. the tables, sized by what the file holds */
    for (int i = 0; i < c->n_layers; i++)
        if (c->layer[i].moe) W->n_experts += c->layer[i].n_experts;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    m->expert_table = calloc((size_t)(W->n_experts ? W->n_experts : 1), sizeof *m->expert_table);
    m->owned = aligned_alloc(64, round64(W->own + 64));
    if (!m->layers || !m->expert_table || !m->owned) {
        moe_fail(err, "%s: out of memory for the weight tables", src->path);
        goto done;
    }
    ffn_w *next = m->expert_table;
    for (int i = 0; i < c->n_layers; i++)
        if (c->layer[i].moe) {
            m->layers[i].experts = next;
            next += c->layer[i].n_experts;
        }
    W->own_next = m->owned;
    W->own_end = W->own_next + W->own;
    W->placing = 1;
    if (tm_walk(c, src->format, src->split, visit, W)) goto done;
    if (c->tied_embeddings) m->lm_head = m->embed;
    fill_stats(m, W);
    rc = 0;
done:
    free(W);
    return rc;
}
