/*
 * linear_attn.c - the Gated DeltaNet token mixer of qwen3_next's
 * "linear_attention" layers, as transformers' Qwen3NextGatedDeltaNet
 * computes it with its torch fallbacks (causal_conv1d_update,
 * torch_recurrent_gated_delta_rule). Reads s->xn [T][D], writes s->tmp [T][D].
 *
 * Per token t of sequence q (Hk key heads of Dk, Hv = r*Hk value heads of Dv):
 *   [q k v z] = in_proj_qkvz xn   (per key head [q Dk | k Dk | v r*Dv | z r*Dv])
 *   [b a]     = in_proj_ba xn     (per key head [b r | a r])
 *   x = [all q | all k | all v]   (Cc channels); x = silu(conv1d(x)): each
 *       channel's kernel of Kc over its last Kc-1 inputs (the conv state of q,
 *       zero before position 0) and this one
 *   per value head h (key head h / r):
 *     q = l2norm(q) / sqrt(Dk), k = l2norm(k)      (l2norm eps 1e-6)
 *     g = -exp(A_log[h]) * softplus(a[h] + dt_bias[h]),  beta = sigmoid(b[h])
 *     S = S * exp(g);  S += k (beta (v - S^T k))^T;  o = S^T q   (S [Dk][Dv])
 *     o = rmsnorm(o) * norm_w * silu(z_h)
 *   out = out_proj o
 * llama.cpp's files give [all q | all k | all v] (attn_qkv) and z
 * (attn_gate) as two products instead, and -exp(A_log) (ssm_a).
 * The state S and the conv state live in the session per (layer, sequence)
 * and are zeroed when a sequence's token at position 0 arrives.
 *
 * Every token runs the recurrent form, prefill included (exact; the chunked
 * parallel form of long prompts is a later speed step). Work is split over
 * tokens (projections' rearrangement, the norm), conv channels and value
 * heads; each keeps its sequences' tokens in batch order.
 */
#include "model/model.h"

#include <math.h>
#include <string.h>

typedef struct lin_ctx {
    moe_session *s;
    const layer_w *lw;
    int slot; /* index among the linear-attention layers */
    int T;
} lin_ctx;

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
static float siluf(float x) { return x / (1.0f + expf(-x)); }
/* torch.nn.functional.softplus (beta 1, threshold 20) */
static float softplusf(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* Per token: the projections into conv channels, z, decay and beta. */
static void split_rows(void *ctx, int64_t t0, int64_t t1, int tid) {
    lin_ctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    int64_t Hk = c->lin_k_heads, Hv = c->lin_v_heads, Dk = c->lin_k_dim, Dv = c->lin_v_dim;
    int64_t r = Hv / Hk, grp = 2 * Dk + 2 * r * Dv, Cc = 2 * Hk * Dk + Hv * Dv;
    int64_t QKVZ = Hk * grp;
    for (int64_t t = t0; t < t1; t++) {
        const float *in = s->lin_qkvz + t * QKVZ, *ba = s->lin_ba + t * 2 * Hv;
        float *x = s->lin_mix + t * Cc, *z = s->lin_z + t * Hv * Dv;
        for (int64_t hk = 0; hk < Hk; hk++) {
            const float *gp = in + hk * grp;
            if (p->lw->lin_qkvz.data) { /* else lin_qkv and lin_z wrote x and z */
                memcpy(x + hk * Dk, gp, sizeof(float) * (size_t)Dk);
                memcpy(x + Hk * Dk + hk * Dk, gp + Dk, sizeof(float) * (size_t)Dk);
                memcpy(x + 2 * Hk * Dk + hk * r * Dv, gp + 2 * Dk, sizeof(float) * (size_t)(r * Dv));
                memcpy(z + hk * r * Dv, gp + 2 * Dk + r * Dv, sizeof(float) * (size_t)(r * Dv));
            }
            for (int64_t j = 0; j < r; j++) {
                int64_t h = hk * r + j;
                float b = ba[hk * 2 * r + j], a = ba[hk * 2 * r + r + j];
                float A = p->lw->lin_a ? p->lw->lin_a[h] : -expf(p->lw->lin_a_log[h]);
                s->lin_beta[t * Hv + h] = sigmoidf(b);
                s->lin_g[t * Hv + h] = A * softplusf(a + p->lw->lin_dt_bias[h]);
            }
        }
    }
}

/* Per channel: the causal depthwise conv over the channel's history, then
 * SiLU, in place in s->lin_mix. */
static void conv_channels(void *ctx, int64_t c0, int64_t c1, int tid) {
    lin_ctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    int64_t Cc = 2 * (int64_t)c->lin_k_heads * c->lin_k_dim + (int64_t)c->lin_v_heads * c->lin_v_dim;
    int K = c->lin_conv;
    float w[MOE_LIN_MAX_CONV]; /* K <= MOE_LIN_MAX_CONV (moe_config_validate) */
    for (int64_t ch = c0; ch < c1; ch++) {
        mat_row_f32(w, &p->lw->lin_conv, ch);
        for (int t = 0; t < p->T; t++) {
            int q = s->tok_seq[t];
            float *st = s->lin_conv_state +
                        (((int64_t)p->slot * s->n_seq + q) * Cc + ch) * (int64_t)(K - 1);
            if (s->tok_pos[t] == 0)
                for (int j = 0; j < K - 1; j++) st[j] = 0.0f;
            float *x = s->lin_mix + (int64_t)t * Cc + ch, in = *x, acc = 0.0f;
            for (int j = 0; j < K - 1; j++) acc += w[j] * st[j];
            acc += w[K - 1] * in;
            for (int j = 0; j + 1 < K - 1; j++) st[j] = st[j + 1];
            if (K > 1) st[K - 2] = in;
            *x = siluf(acc);
        }
    }
}

static void l2norm_scaled(float *y, const float *x, int64_t n, float scale) {
    float ss = 0.0f;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss + 1e-6f);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * inv * scale;
}

/* Per value head: the gated delta rule over the tokens in batch order. */
static void delta_heads(void *ctx, int64_t h0, int64_t h1, int tid) {
    lin_ctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    int64_t Hk = c->lin_k_heads, Hv = c->lin_v_heads, Dk = c->lin_k_dim, Dv = c->lin_v_dim;
    int64_t r = Hv / Hk, Cc = 2 * Hk * Dk + Hv * Dv, SZ = Dk * Dv;
    float *q = s->lin_scratch + (int64_t)tid * (2 * Dk + Dv);
    float *k = q + Dk, *delta = k + Dk;
    for (int64_t h = h0; h < h1; h++) {
        int64_t hk = h / r;
        for (int t = 0; t < p->T; t++) {
            float *S = s->lin_state + (((int64_t)p->slot * s->n_seq + s->tok_seq[t]) * Hv + h) * SZ;
            if (s->tok_pos[t] == 0) memset(S, 0, sizeof(float) * (size_t)SZ);
            const float *x = s->lin_mix + (int64_t)t * Cc;
            l2norm_scaled(q, x + hk * Dk, Dk, 1.0f / sqrtf((float)Dk));
            l2norm_scaled(k, x + Hk * Dk + hk * Dk, Dk, 1.0f);
            const float *v = x + 2 * Hk * Dk + h * Dv;
            float decay = expf(s->lin_g[(int64_t)t * Hv + h]), beta = s->lin_beta[(int64_t)t * Hv + h];
            for (int64_t i = 0; i < SZ; i++) S[i] *= decay;
            for (int64_t j = 0; j < Dv; j++) delta[j] = 0.0f;
            for (int64_t i = 0; i < Dk; i++)
                for (int64_t j = 0; j < Dv; j++) delta[j] += S[i * Dv + j] * k[i];
            for (int64_t j = 0; j < Dv; j++) delta[j] = (v[j] - delta[j]) * beta;
            for (int64_t i = 0; i < Dk; i++)
                for (int64_t j = 0; j < Dv; j++) S[i * Dv + j] += k[i] * delta[j];
            float *o = s->lin_out + (int64_t)t * Hv * Dv + h * Dv;
            for (int64_t j = 0; j < Dv; j++) o[j] = 0.0f;
            for (int64_t i = 0; i < Dk; i++)
                for (int64_t j = 0; j < Dv; j++) o[j] += S[i * Dv + j] * q[i];
        }
    }
}

/* Per token: the gated RMSNorm of each value head's output. */
static void gate_rows(void *ctx, int64_t t0, int64_t t1, int tid) {
    lin_ctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    int64_t Hv = c->lin_v_heads, Dv = c->lin_v_dim;
    for (int64_t t = t0; t < t1; t++)
        for (int64_t h = 0; h < Hv; h++) {
            float *o = s->lin_out + (t * Hv + h) * Dv;
            const float *z = s->lin_z + (t * Hv + h) * Dv;
            rmsnorm(o, o, p->lw->lin_norm, (int)Dv, c->norm_eps);
            for (int64_t j = 0; j < Dv; j++) o[j] *= siluf(z[j]);
        }
}

void linear_attn_block(moe_session *s, int layer, int T) {
    const layer_w *lw = &s->m->layers[layer];
    lin_ctx p = {s, lw, s->lin_slot[layer], T};
    mm_task t[3] = {{&lw->lin_ba, s->xn, s->lin_ba, T}, {&lw->lin_qkvz, s->xn, s->lin_qkvz, T}};
    if (!lw->lin_qkvz.data) { /* llama.cpp's layout: the conv channels and z directly */
        t[1] = (mm_task){&lw->lin_qkv, s->xn, s->lin_mix, T};
        t[2] = (mm_task){&lw->lin_z, s->xn, s->lin_z, T};
    }
    matmul_grouped(s->pool, t, lw->lin_qkvz.data ? 2 : 3);
    pool_for(s->pool, T, 4, split_rows, &p);
    pool_for(s->pool, lw->lin_conv.rows, 64, conv_channels, &p);
    pool_for(s->pool, s->m->cfg.lin_v_heads, 1, delta_heads, &p);
    pool_for(s->pool, T, 4, gate_rows, &p);
    matmul(s->pool, s->tmp, s->lin_out, &lw->lin_out, T);
}
