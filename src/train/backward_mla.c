/*
 * backward_mla.c - the backward of multi-head latent attention (DeepSeek-V2/V3,
 * src/model/attention_mla.c), in the expanded form transformers computes
 * (modeling_deepseek_v3.py), R = kv_lora_rank, Dn/Dr = qk_nope/rope dims,
 * Dk = Dn + Dr, Dv = v_head_dim, QL = q_lora_rank:
 *
 *   q      = q_proj(xn)  or  q_b_proj(rmsnorm(q_a_proj(xn)))     [N][H][Dk]
 *   [c|kr] = kv_a_proj_with_mqa(xn);  cn = rmsnorm(c)             [N][R | Dr]
 *   [k_nope_h | v_h] = kv_b_proj(cn) per head                     [N][H][Dn | Dv]
 *   q_h = [q_nope_h | rope(q_rope_h)],  k_h = [k_nope_h | rope(kr)] (kr shared)
 *   out_h = softmax(scale * q_h . k_h) v_h;   o_proj(out)
 *
 * Read backwards: o_proj; the attention core with keys of Dk and values of
 * Dv (attention_backward_dims, the forward's softmax scale); the rotations
 * (rope_backward, then the interleaved pairs put back: the forward rotates
 * the de-interleaved copy); the shared key's gradient summed over heads;
 * kv_b_proj; kv_a_layernorm; kv_a_proj_with_mqa; the q path; the block's
 * norm. The forward's tape holds q, [c|kr], q_a_proj's output and the
 * attention output; cn, the q norm, kv_b_proj's output and the rotated
 * q/k are recomputed here. Per-token work is threaded (each token owns its
 * rows); the norms' weight gradients go through rmsnorm_backward_rows_pool,
 * so the result does not depend on the thread count.
 */
#include "train/backward_impl.h"

#include <string.h>

typedef struct mla_bctx {
    moe_session *s;
    bwd_ws *w;
    const layer_acts *a;
    const layer_w *lw;
} mla_bctx;

/* x[0..n) as [x0 x2 x4 ... | x1 x3 ...]: what the forward rotates */
static void deinterleave(float *x, int n) {
    float tmp[MOE_MLA_MAX_ROPE];
    for (int i = 0; i < n / 2; i++) tmp[i] = x[2 * i], tmp[n / 2 + i] = x[2 * i + 1];
    memcpy(x, tmp, sizeof(float) * (size_t)n);
}

/* its inverse: a gradient of the de-interleaved copy back to the pairs */
static void interleave(float *x, int n) {
    float tmp[MOE_MLA_MAX_ROPE];
    for (int i = 0; i < n / 2; i++) tmp[2 * i] = x[i], tmp[2 * i + 1] = x[n / 2 + i];
    memcpy(x, tmp, sizeof(float) * (size_t)n);
}

/* Per token: the latent (a contiguous copy, cn = its norm) and q_a's norm. */
static void mla_norms(void *vc, int64_t t0, int64_t t1, int tid) {
    const mla_bctx *x = vc;
    const moe_config *c = &x->s->m->cfg;
    bwd_ws *w = x->w;
    int64_t R = c->kv_lora_rank, KA = R + c->qk_rope_dim, QL = c->q_lora_rank;
    for (int64_t t = t0; t < t1; t++) {
        const float *kv = x->a->mla_kv + t * KA;
        memcpy(w->mla_c + t * R, kv, sizeof(float) * (size_t)R);
        rmsnorm(w->mla_cn + t * R, kv, x->lw->kv_a_norm, (int)R, c->norm_eps);
        if (QL)
            rmsnorm(w->mla_qan + t * QL, x->a->mla_qa + t * QL, x->lw->q_a_norm, (int)QL,
                    c->norm_eps);
    }
}

/* Per token, what the dot products used: q4 = rotated q, k4 = [k_nope_h |
 * rotated kr] per head, v3 = v_h per head (from kv_b_proj's output). */
static void mla_heads(void *vc, int64_t t0, int64_t t1, int tid) {
    const mla_bctx *x = vc;
    const moe_config *c = &x->s->m->cfg;
    bwd_ws *w = x->w;
    int64_t H = c->n_heads, Dn = c->qk_nope_dim, Dr = c->qk_rope_dim, Dv = c->v_head_dim,
            Dk = Dn + Dr, R = c->kv_lora_rank, KVB = Dn + Dv, half = c->head_dim / 2;
    for (int64_t t = t0; t < t1; t++) {
        const float *cs = x->s->rope_cos + t * half, *sn = x->s->rope_sin + t * half;
        float kr[MOE_MLA_MAX_ROPE];
        memcpy(kr, x->a->mla_kv + t * (R + Dr) + R, sizeof(float) * (size_t)Dr);
        if (c->rope_interleave) deinterleave(kr, (int)Dr);
        rope_apply(kr, cs, sn, (int)Dr);
        const float *kvb = w->mla_kvb + t * H * KVB;
        float *q4 = w->q4 + t * H * Dk, *k4 = w->k4 + t * H * Dk, *v3 = w->v3 + t * H * Dv;
        memcpy(q4, x->a->q + t * H * Dk, sizeof(float) * (size_t)(H * Dk));
        for (int64_t h = 0; h < H; h++) {
            float *qr = q4 + h * Dk + Dn;
            if (c->rope_interleave) deinterleave(qr, (int)Dr);
            rope_apply(qr, cs, sn, (int)Dr);
            memcpy(k4 + h * Dk, kvb + h * KVB, sizeof(float) * (size_t)Dn);
            memcpy(k4 + h * Dk + Dn, kr, sizeof(float) * (size_t)Dr);
            memcpy(v3 + h * Dv, kvb + h * KVB + Dn, sizeof(float) * (size_t)Dv);
        }
    }
}

/* Per token, from the core's dq, dk, dv: dq turned back through the rope
 * (in place: the raw q's gradient), kv_b_proj's output gradient [dk_nope_h |
 * dv_h], and kr's gradient (summed over heads, turned back) into
 * mla_dkva[t][R..R+Dr). */
static void mla_heads_backward(void *vc, int64_t t0, int64_t t1, int tid) {
    const mla_bctx *x = vc;
    const moe_config *c = &x->s->m->cfg;
    bwd_ws *w = x->w;
    int64_t H = c->n_heads, Dn = c->qk_nope_dim, Dr = c->qk_rope_dim, Dv = c->v_head_dim,
            Dk = Dn + Dr, R = c->kv_lora_rank, KVB = Dn + Dv, half = c->head_dim / 2;
    for (int64_t t = t0; t < t1; t++) {
        const float *cs = x->s->rope_cos + t * half, *sn = x->s->rope_sin + t * half;
        float *dq = w->dq + t * H * Dk, *dkvb = w->mla_dkvb + t * H * KVB;
        const float *dk = w->dk + t * H * Dk, *dv = w->dv + t * H * Dv;
        float *dkr = w->mla_dkva + t * (R + Dr) + R;
        memset(dkr, 0, sizeof(float) * (size_t)Dr);
        for (int64_t h = 0; h < H; h++) {
            rope_backward(dq + h * Dk + Dn, cs, sn, (int)Dr);
            if (c->rope_interleave) interleave(dq + h * Dk + Dn, (int)Dr);
            memcpy(dkvb + h * KVB, dk + h * Dk, sizeof(float) * (size_t)Dn);
            memcpy(dkvb + h * KVB + Dn, dv + h * Dv, sizeof(float) * (size_t)Dv);
            for (int64_t i = 0; i < Dr; i++) dkr[i] += dk[h * Dk + Dn + i];
        }
        rope_backward(dkr, cs, sn, (int)Dr);
        if (c->rope_interleave) interleave(dkr, (int)Dr);
    }
}

void mla_backward(moe_session *s, bwd_ws *w, const train_grads *G, int l, int B, int T) {
    const moe_config *c = &s->m->cfg;
    const layer_w *lw = &s->m->layers[l];
    const layer_acts *a = &s->acts->layer[l];
    int N = B * T;
    int64_t H = c->n_heads, Dn = c->qk_nope_dim, Dr = c->qk_rope_dim, Dv = c->v_head_dim,
            Dk = Dn + Dr, R = c->kv_lora_rank, QL = c->q_lora_rank, D = c->dim;
    mla_bctx x = {s, w, a, lw};

    /* o_proj: datt [N][H*Dv] */
    bwd_linear(s, w, w->datt, grad_of(G, lw->wo.data), w->dx, a->att, lw->wo.data, N, D, H * Dv, 1);

    /* recompute cn, q_a's norm, kv_b_proj's output, the rotated q and k */
    pool_for(s->pool, N, 16, mla_norms, &x);
    matmul(s->pool, w->mla_kvb, w->mla_cn, &lw->wkv_b, N);
    pool_for(s->pool, N, 16, mla_heads, &x);

    /* the attention core, one sequence at a time: every head its own keys */
    memset(w->dq, 0, sizeof(float) * (size_t)(N * H * Dk));
    memset(w->dk, 0, sizeof(float) * (size_t)(N * H * Dk));
    memset(w->dv, 0, sizeof(float) * (size_t)(N * H * Dv));
    attn_bwd_dims dims = {T, (int)H, (int)H, (int)Dk, (int)Dv, 0, c->attn_scale};
    for (int b = 0; b < B; b++) {
        int64_t o = (int64_t)b * T;
        attention_backward_dims(s->pool, w->dq + o * H * Dk, w->dk + o * H * Dk,
                                w->dv + o * H * Dv, NULL, w->datt + o * H * Dv,
                                w->q4 + o * H * Dk, w->k4 + o * H * Dk, w->v3 + o * H * Dv, NULL,
                                &dims, w->att_scratch);
    }
    pool_for(s->pool, N, 16, mla_heads_backward, &x);

    /* kv_b_proj, kv_a_layernorm: mla_dkva[t][0..R) */
    bwd_linear(s, w, w->mla_dcn, grad_of(G, lw->wkv_b.data), w->mla_dkvb, w->mla_cn,
               lw->wkv_b.data, N, H * (Dn + Dv), R, 1);
    memset(w->mla_dc, 0, sizeof(float) * (size_t)(N * R));
    rmsnorm_backward_rows_pool(s->pool, w->mla_dc, grad_of(G, lw->kv_a_norm), w->mla_dcn,
                               w->mla_c, lw->kv_a_norm, N, (int)R, c->norm_eps, w->rnorm);
    for (int64_t t = 0; t < N; t++)
        memcpy(w->mla_dkva + t * (R + Dr), w->mla_dc + t * R, sizeof(float) * (size_t)R);

    /* the q path, kv_a_proj_with_mqa, the block's norm */
    if (QL) {
        bwd_linear(s, w, w->mla_dqan, grad_of(G, lw->wq_b.data), w->dq, w->mla_qan,
                   lw->wq_b.data, N, H * Dk, QL, 1);
        memset(w->mla_dqa, 0, sizeof(float) * (size_t)(N * QL));
        rmsnorm_backward_rows_pool(s->pool, w->mla_dqa, grad_of(G, lw->q_a_norm), w->mla_dqan,
                                   a->mla_qa, lw->q_a_norm, N, (int)QL, c->norm_eps, w->rnorm);
        bwd_linear(s, w, w->dxn, grad_of(G, lw->wq_a.data), w->mla_dqa, a->xn_attn,
                   lw->wq_a.data, N, QL, D, 1);
    } else {
        bwd_linear(s, w, w->dxn, grad_of(G, lw->wq.data), w->dq, a->xn_attn, lw->wq.data, N,
                   H * Dk, D, 1);
    }
    bwd_linear(s, w, w->dxn, grad_of(G, lw->wkv_a.data), w->mla_dkva, a->xn_attn,
               lw->wkv_a.data, N, R + Dr, D, 0);
    rmsnorm_backward_rows_pool(s->pool, w->dx, grad_of(G, lw->attn_norm), w->dxn, a->x_attn,
                               lw->attn_norm, N, (int)D, c->norm_eps, w->rnorm);
}
