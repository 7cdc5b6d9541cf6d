/*
 * attention_mla.c - multi-head latent attention (DeepSeek-V2/V3): s->xn
 * [T][D] -> s->tmp [T][D], with a KV cache that holds, per token and
 * layer, only the normalized latent c [R] and the rotated shared key
 * k_rope [Dr] (R + Dr floats, against H x (Dn + Dr + Dv) for the keys and
 * values they stand for).
 *
 * As transformers computes it (modeling_deepseek_v3.py):
 *   q            = q_proj(x), or q_b_proj(rmsnorm(q_a_proj(x)))   [H][Dn | Dr]
 *   [c | k_rope] = kv_a_proj_with_mqa(x);  c = rmsnorm(c)
 *   q_rope, k_rope rotated (RoPE over Dr dims; interleaved pairs when
 *                rope_interleave, else the two halves)
 *   per head h:  [W_uk | W_uv] = the rows of kv_b_proj for h ([Dn][R], [Dv][R])
 *                k_h = [W_uk c | k_rope],  v_h = W_uv c
 *                out_h = softmax(scale * q_h . k_h) v_h
 *   o_proj(out)
 * Here in the absorbed form, for decode and short prompts (the cache never
 * holds expanded keys; long prompts of one sequence expand the heads for the
 * call instead, attention_mla_prefill.c): q_nope . (W_uk c) = (W_uk^T q_nope) . c, so
 *   qa_h = [W_uk^T q_nope_h | q_rope_h]   [R + Dr]
 *   l_h  = sum_j softmax_j(scale * qa_h . [c_j | k_rope_j]) c_j   [R]
 *   out_h = W_uv l_h                        [Dv]
 * which is the attention kernel (attn.h) with keys of R + Dr dims whose
 * first R are also the values. The products differ from the expanded form
 * only by f32 rounding order. The rotation of interleaved pairs is done on
 * the de-interleaved copy ([even | odd], then rotate_half): q and k are
 * permuted alike, so their dot products are those of the interleaved form.
 */
#include "model/model.h"

#include <math.h>
#include <string.h>

#include "kernels/attn.h"

typedef struct mla_ctx {
    moe_session *s;
    const layer_w *lw;
    int layer, T, fail;
    const float *q_raw, *kv_raw; /* the projections (the tape's, when recording) */
    float *att;                  /* [T][H*Dv] output (the tape's, when recording) */
} mla_ctx;

/* x[0..n) as [x0 x2 x4 ... | x1 x3 ...] (n even, at most MOE_MLA_MAX_ROPE). */
static void deinterleave(float *x, int n) {
    float tmp[MOE_MLA_MAX_ROPE];
    for (int i = 0; i < n / 2; i++) tmp[i] = x[2 * i], tmp[n / 2 + i] = x[2 * i + 1];
    memcpy(x, tmp, sizeof(float) * (size_t)n);
}

/* Per token: the latent's norm, the rotations, the cache row. */
static void mla_rows(void *ctx, int64_t t0, int64_t t1, int tid) {
    mla_ctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    int64_t H = c->n_heads, Dh = c->head_dim, Dn = c->qk_nope_dim, Dr = c->qk_rope_dim,
            R = c->kv_lora_rank, half = Dh / 2;
    for (int64_t t = t0; t < t1; t++) {
        float *kv = s->mla_kv + t * (R + Dr), *q = s->q + t * H * Dh;
        if (p->q_raw != s->q) { /* recording: the raw projections stay in the tape */
            memcpy(q, p->q_raw + t * H * Dh, sizeof(float) * (size_t)(H * Dh));
            memcpy(kv, p->kv_raw + t * (R + Dr), sizeof(float) * (size_t)(R + Dr));
        }
        const float *cs = s->rope_cos + t * half, *sn = s->rope_sin + t * half;
        rmsnorm(kv, kv, p->lw->kv_a_norm, (int)R, c->norm_eps);
        if (c->rope_interleave) deinterleave(kv + R, (int)Dr);
        rope_apply(kv + R, cs, sn, (int)Dr);
        for (int64_t h = 0; h < H; h++) {
            float *qr = q + h * Dh + Dn;
            if (c->rope_interleave) deinterleave(qr, (int)Dr);
            rope_apply(qr, cs, sn, (int)Dr);
            memcpy(s->mla_q + (t * H + h) * (R + Dr) + R, qr, sizeof(float) * (size_t)Dr);
        }
        int64_t at = ((int64_t)s->kv_slot[p->layer] * s->n_seq + s->tok_seq[t]) * s->n_ctx +
                     s->tok_pos[t];
        memcpy(s->k_cache + at * (R + Dr), kv, sizeof(float) * (size_t)(R + Dr));
    }
}

/* Per head: qa_h[:R] = W_uk_h^T q_nope_h for every token (each row of W_uk
 * read once for all T tokens). From a GGUF file W_uk_h^T is attn_k_b's
 * [R][Dn] plane: a row per latent dim, a dot product each. */
static void mla_absorb_q(void *ctx, int64_t h0, int64_t h1, int tid) {
    mla_ctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    const kern_cfg *k = kern_of(s->pool);
    int64_t H = c->n_heads, Dh = c->head_dim, Dn = c->qk_nope_dim, Dv = c->v_head_dim,
            R = c->kv_lora_rank, QA = R + c->qk_rope_dim;
    float *row = s->mla_row + (int64_t)tid * mla_row_len(c);
    if (!p->lw->wkv_b.data) {
        for (int64_t h = h0; h < h1; h++)
            for (int64_t r = 0; r < R; r++) {
                mat_row_f32(row, &p->lw->wk_b, h * R + r);
                for (int t = 0; t < p->T; t++)
                    s->mla_q[((int64_t)t * H + h) * QA + r] =
                        dot(k, row, s->q + ((int64_t)t * H + h) * Dh, (int)Dn);
            }
        return;
    }
    for (int64_t h = h0; h < h1; h++) {
        for (int t = 0; t < p->T; t++) memset(s->mla_q + ((int64_t)t * H + h) * QA, 0, sizeof(float) * (size_t)R);
        for (int64_t n = 0; n < Dn; n++) {
            mat_row_f32(row, &p->lw->wkv_b, h * (Dn + Dv) + n);
            for (int t = 0; t < p->T; t++)
                axpy(k, s->mla_q + ((int64_t)t * H + h) * QA, s->q[((int64_t)t * H + h) * Dh + n], row,
                     (int)R);
        }
    }
}

/* The absorbed products as matrix products, one per head, when the weights
 * come a head at a time as matrices: W_uk_h^T is attn_k_b's [R][Dn] plane
 * (GGUF files), W_uv_h attn_v_b's [Dv][R] plane or kv_b_proj's Dv rows of
 * head h. The rows of a head are gathered into s->mla_hx ([H][T][n]), the
 * products of all heads run as one matmul_grouped (the quantized kernels,
 * AMX for long prompts), and s->mla_hy is scattered back. */
typedef struct mla_move {
    float *dst;
    const float *src;
    int64_t T, n;        /* tokens; floats per (token, head) */
    int64_t ts, hs;      /* the [T][H] side: floats a token, a head */
    int gather;          /* 1: [T][H] side -> [H][T][n]; 0: back */
} mla_move;

static void mla_move_rows(void *ctx, int64_t h0, int64_t h1, int tid) {
    const mla_move *m = ctx;
    size_t bytes = sizeof(float) * (size_t)m->n;
    for (int64_t h = h0; h < h1; h++)
        for (int64_t t = 0; t < m->T; t++) {
            int64_t th = t * m->ts + h * m->hs, ht = (h * m->T + t) * m->n;
            if (m->gather) memcpy(m->dst + ht, m->src + th, bytes);
            else memcpy(m->dst + th, m->src + ht, bytes);
        }
}

/* Per head h: y_h [T][nout] = x_h [T][nin] W_h^T, W_h = rows h*hrows + off ..
 * + nout of W; x_h and y_h in [T][H] layouts of token and head strides
 * (xts, xhs) and (yts, yhs). */
static void mla_head_matmul(moe_session *s, int T, const mat *W, int64_t hrows, int64_t off,
                            int64_t nout, const float *x, int64_t xts, int64_t xhs, float *y,
                            int64_t yts, int64_t yhs) {
    int64_t H = s->m->cfg.n_heads, nin = W->cols, rb = dtype_row_bytes(W->type, W->cols);
    mla_move g = {s->mla_hx, x, T, nin, xts, xhs, 1};
    pool_for(s->pool, H, 1, mla_move_rows, &g);
    mat *views = s->mla_views;
    for (int64_t h = 0; h < H; h++) {
        views[h] = *W;
        views[h].data = (const char *)W->data + (h * hrows + off) * rb;
        views[h].rows = nout;
        s->tasks[h] = (mm_task){&views[h], s->mla_hx + h * T * nin, s->mla_hy + h * T * nout, T};
    }
    matmul_grouped(s->pool, s->tasks, (int)H);
    mla_move b = {y, s->mla_hy, T, nout, yts, yhs, 0};
    pool_for(s->pool, H, 1, mla_move_rows, &b);
}

/* One item: a block of ATTN_QUERY_BLOCK tokens x one head, split into runs
 * of one sequence at consecutive positions (attention.c's attend). */
static void mla_attend(void *ctx, int64_t i0, int64_t i1, int tid) {
    mla_ctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    int64_t H = c->n_heads, QA = (int64_t)c->kv_lora_rank + c->qk_rope_dim;
    for (int64_t i = i0; i < i1; i++) {
        int64_t h = i % H;
        int64_t t0 = i / H * ATTN_QUERY_BLOCK,
                t1 = t0 + ATTN_QUERY_BLOCK < p->T ? t0 + ATTN_QUERY_BLOCK : p->T;
        for (int64_t a = t0, b; a < t1; a = b) {
            for (b = a + 1; b < t1 && s->tok_seq[b] == s->tok_seq[a] &&
                            s->tok_pos[b] == s->tok_pos[a] + (b - a);
                 b++) {
            }
            int64_t pos = s->tok_pos[a], last = pos + (b - a - 1);
            int64_t seq0 = ((int64_t)s->kv_slot[p->layer] * s->n_seq + s->tok_seq[a]) * s->n_ctx;
            const float *K = s->k_cache + seq0 * QA;
            if (attn_block(s->pool, tid, s->mla_lat + (a * H + h) * QA, H * QA,
                           s->mla_q + (a * H + h) * QA, H * QA, K, K, QA, (int)(b - a),
                           (int)(last + 1), (int)QA, (int)c->kv_lora_rank, pos, 0, 0,
                           c->attn_scale, NULL))
                p->fail = 1;
        }
    }
}

void mla_attention_block(moe_session *s, int layer, int T) {
    const moe_config *c = &s->m->cfg;
    const layer_w *lw = &s->m->layers[layer];
    int64_t H = c->n_heads, QL = c->q_lora_rank;
    /* recording: q, [c | k_rope], q_a_proj's output and the attention output
     * are written straight into the tape (mla_rows copies q and [c | k_rope]
     * before it turns them) */
    train_acts *A = session_tape(s);
    layer_acts *a = A ? &A->layer[layer] : NULL;
    float *q = a ? a->q : s->q, *kv = a ? a->mla_kv : s->mla_kv;
    float *qa = a && QL ? a->mla_qa : s->mla_qa;
    if (QL) {
        mm_task t[2] = {{&lw->wq_a, s->xn, qa, T}, {&lw->wkv_a, s->xn, kv, T}};
        matmul_grouped(s->pool, t, 2);
        for (int i = 0; i < T; i++)
            rmsnorm(s->mla_qa + i * QL, qa + i * QL, lw->q_a_norm, (int)QL, c->norm_eps);
        matmul(s->pool, q, s->mla_qa, &lw->wq_b, T);
    } else {
        mm_task t[2] = {{&lw->wq, s->xn, q, T}, {&lw->wkv_a, s->xn, kv, T}};
        matmul_grouped(s->pool, t, 2);
    }
    mla_ctx p = {s, lw, layer, T, 0, q, kv, a ? a->att : s->att};
    pool_for(s->pool, T, 1, mla_rows, &p);
    int64_t QA = (int64_t)c->kv_lora_rank + c->qk_rope_dim, R = c->kv_lora_rank,
            Dh = c->head_dim, Dn = c->qk_nope_dim, Dv = c->v_head_dim;
    if (mla_expanded_attention(s, layer, T, p.att) == 0) { /* a long prompt: expanded heads */
        matmul(s->pool, s->tmp, p.att, &lw->wo, T);
        return;
    }
    if (lw->wk_b.data) /* qa_h[:R] = W_uk_h^T q_nope_h */
        mla_head_matmul(s, T, &lw->wk_b, R, 0, R, s->q, H * Dh, Dh, s->mla_q, H * QA, QA);
    else
        pool_for(s->pool, H, 1, mla_absorb_q, &p);
    pool_for(s->pool, (T + ATTN_QUERY_BLOCK - 1) / ATTN_QUERY_BLOCK * H, 1, mla_attend, &p);
    if (p.fail) /* no scratch for a block: visible, never silently wrong */
        for (int64_t i = 0; i < (int64_t)T * H * QA; i++) s->mla_lat[i] = __builtin_nanf("");
    /* out_h = W_uv_h l_h */
    if (lw->wkv_b.data)
        mla_head_matmul(s, T, &lw->wkv_b, Dn + Dv, Dn, Dv, s->mla_lat, H * QA, QA, p.att,
                        H * Dv, Dv);
    else
        mla_head_matmul(s, T, &lw->wv_b, Dv, 0, Dv, s->mla_lat, H * QA, QA, p.att, H * Dv, Dv);
    matmul(s->pool, s->tmp, p.att, &lw->wo, T);
}
