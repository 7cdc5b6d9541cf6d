/*
 * linear_attn.c - the Gated DeltaNet token mixer of qwen3_next's
 * "linear_attention" layers, as transformers' Qwen3NextGatedDeltaNet
 * computes it with its torch fallbacks (causal_conv1d_update,
 * torch_chunk_gated_delta_rule for a prompt, torch_recurrent_gated_delta_rule
 * for a decode step). Reads s->xn [T][D], writes s->tmp [T][D].
 *
 * Per token t of sequence q (Hk key heads of Dk, Hv = r*Hk value heads of Dv):
 *   [q k v z] = in_proj_qkvz xn   (per key head [q Dk | k Dk | v r*Dv | z r*Dv])
 *   [b a]     = in_proj_ba xn     (per key head [b r | a r])
 *   (qwen3_5_moe keeps them apart: x = in_proj_qkv xn, z = in_proj_z xn,
 *   b = in_proj_b xn, a = in_proj_a xn, each its own product)
 *   x = [all q | all k | all v]   (Cc channels); x = silu(conv1d(x)): each
 *       channel's kernel of Kc over its last Kc-1 inputs (the conv state of q,
 *       zero before position 0) and this one
 *   per value head h (key head h / r; h % Hk in llama.cpp's qwen35moe files,
 *   whose converter tiles the value heads, moe_config.lin_v_tiled: every
 *   per-value-head weight is stored in that order, so only this changes):
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
 * The call's tokens are grouped into runs, one per sequence (batch order
 * within). Work is split over tokens (projections' rearrangement, the q/k
 * norms, the gated norm), conv channels (each runs every run whole from its
 * sequence's conv state) and (run, value head) pairs: a run of one token (a
 * decode step) takes the recurrent form, a longer one the chunked form
 * (kernels/delta_rule.h: GEMMs within chunks of 64 tokens, the state passed
 * between chunks), equal to f32 rounding. The projections are GEMMs over all
 * tokens of the call. Scratch is the pool's, reserved at session creation
 * (linear_attn_thread_scratch): nothing is allocated here.
 */
#include "model/model.h"

#include <math.h>
#include <string.h>

#include "kernels/delta_rule.h"
#include "kernels/vmath.h"

typedef struct lin_ctx {
    moe_session *s;
    const layer_w *lw;
    int slot; /* index among the linear-attention layers */
    int T;
    const kern_cfg *k; /* the session's kernel choice */
    int n_runs;        /* sequences in the call (group_runs) */
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
                float b, a;
                if (p->lw->lin_ba.data) {
                    b = ba[hk * 2 * r + j];
                    a = ba[hk * 2 * r + r + j];
                } else { /* lin_b and lin_a wrote [T][Hv] each, one after the other */
                    b = s->lin_ba[t * Hv + h];
                    a = s->lin_ba[(int64_t)p->T * Hv + t * Hv + h];
                }
                float A = p->lw->lin_ssm_a ? p->lw->lin_ssm_a[h] : -expf(p->lw->lin_a_log[h]);
                s->lin_beta[t * Hv + h] = sigmoidf(b);
                s->lin_g[t * Hv + h] = A * softplusf(a + p->lw->lin_dt_bias[h]);
            }
        }
    }
}

/* The tokens of the call grouped into runs, one per sequence: run r is
 * s->lin_tok[lin_run[r] .. lin_run[r+1]), that sequence's tokens in batch
 * (= time) order. A counting sort by sequence; returns the number of runs. */
static int group_runs(moe_session *s, int T) {
    int *cnt = s->lin_cnt, n_runs = 0, off = 0;
    memset(cnt, 0, sizeof(int) * (size_t)s->n_seq);
    for (int t = 0; t < T; t++) cnt[s->tok_seq[t]]++;
    for (int q = 0; q < s->n_seq; q++)
        if (cnt[q]) {
            int c = cnt[q];
            s->lin_run[n_runs++] = off;
            cnt[q] = off;
            off += c;
        }
    s->lin_run[n_runs] = T;
    for (int t = 0; t < T; t++) s->lin_tok[cnt[s->tok_seq[t]]++] = t;
    return n_runs;
}

/* Per channel, per run: the causal depthwise conv over the run with the
 * sequence's last Kc-1 inputs before it (zero before position 0), then
 * SiLU, in place in s->lin_mix; the run's last Kc-1 inputs become the conv
 * state. */
static void conv_channels(void *ctx, int64_t c0, int64_t c1, int tid) {
    lin_ctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    int64_t Cc = 2 * (int64_t)c->lin_k_heads * c->lin_k_dim + (int64_t)c->lin_v_heads * c->lin_v_dim;
    int K = c->lin_conv;
    float w[MOE_LIN_MAX_CONV], win[MOE_LIN_MAX_CONV]; /* K <= MOE_LIN_MAX_CONV (moe_config_validate) */
    for (int64_t ch = c0; ch < c1; ch++) {
        mat_row_f32(w, &p->lw->lin_conv, ch);
        for (int r = 0; r < p->n_runs; r++) {
            const int *tok = s->lin_tok + s->lin_run[r];
            int n = s->lin_run[r + 1] - s->lin_run[r];
            float *st = s->lin_conv_state +
                        (((int64_t)p->slot * s->n_seq + s->tok_seq[tok[0]]) * Cc + ch) * (int64_t)(K - 1);
            /* win = [the K-1 inputs before this token | this one] */
            for (int j = 0; j < K - 1; j++) win[j] = s->tok_pos[tok[0]] == 0 ? 0.0f : st[j];
            for (int i = 0; i < n; i++) {
                float *x = s->lin_mix + (int64_t)tok[i] * Cc + ch, acc = 0.0f;
                win[K - 1] = *x;
                for (int j = 0; j < K; j++) acc += w[j] * win[j];
                for (int j = 0; j < K - 1; j++) win[j] = win[j + 1];
                *x = siluf(acc);
            }
            for (int j = 0; j < K - 1; j++) st[j] = win[j];
        }
    }
}

/* Per token: q = l2norm(q) / sqrt(Dk), k = l2norm(k) of every key head, in
 * place in s->lin_mix (l2norm eps 1e-6). */
static void qk_norm_rows(void *ctx, int64_t t0, int64_t t1, int tid) {
    lin_ctx *p = ctx;
    const moe_config *c = &p->s->m->cfg;
    int64_t Hk = c->lin_k_heads, Dk = c->lin_k_dim, Cc = 2 * Hk * Dk + (int64_t)c->lin_v_heads * c->lin_v_dim;
    float qscale = 1.0f / sqrtf((float)Dk);
    for (int64_t t = t0; t < t1; t++)
        for (int64_t i = 0; i < 2 * Hk; i++) {
            float *x = p->s->lin_mix + t * Cc + i * Dk;
            float inv = 1.0f / sqrtf(dot(p->k, x, x, (int)Dk) + 1e-6f);
            vmath_scale(p->k, x, i < Hk ? inv * qscale : inv, Dk);
        }
}

/* Per (run, value head): the gated delta rule over the run's tokens from
 * the sequence's state: the chunked form for a prompt, the recurrent one
 * for a single token (a decode step). */
static void delta_items(void *ctx, int64_t i0, int64_t i1, int tid) {
    lin_ctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    int64_t Hk = c->lin_k_heads, Hv = c->lin_v_heads, Dk = c->lin_k_dim, Dv = c->lin_v_dim;
    int64_t r = Hv / Hk, Cc = 2 * Hk * Dk + Hv * Dv, SZ = Dk * Dv;
    void *scratch = pool_scratch(s->pool, tid, linear_attn_thread_scratch(c));
    for (int64_t it = i0; it < i1; it++) {
        int64_t run = it / Hv, h = it % Hv, hk = c->lin_v_tiled ? h % Hk : h / r;
        const int *tok = s->lin_tok + s->lin_run[run];
        int n = s->lin_run[run + 1] - s->lin_run[run];
        float *S = s->lin_state + (((int64_t)p->slot * s->n_seq + s->tok_seq[tok[0]]) * Hv + h) * SZ;
        if (s->tok_pos[tok[0]] == 0) memset(S, 0, sizeof(float) * (size_t)SZ);
        delta_io io = {tok, s->lin_mix + hk * Dk, s->lin_mix + Hk * Dk + hk * Dk,
                       s->lin_mix + 2 * Hk * Dk + h * Dv, Cc, Cc, Cc, s->lin_g + h, s->lin_beta + h,
                       Hv, s->lin_out + h * Dv, Hv * Dv, n, (int)Dk, (int)Dv};
        if (!scratch) { /* the session reserved it: never here; visible if so */
            for (int i = 0; i < n; i++)
                for (int64_t j = 0; j < Dv; j++) io.o[tok[i] * io.os + j] = NAN;
        } else if (n == 1) {
            delta_rule_recurrent(p->k, S, &io, scratch);
        } else {
            delta_rule_chunked(p->k, S, &io, scratch);
        }
    }
}

size_t linear_attn_thread_scratch(const moe_config *c) {
    int any = 0;
    for (int i = 0; i < c->n_layers; i++) any |= c->layer[i].linear_attn;
    if (!any) return 0;
    size_t a = delta_rule_chunked_bytes(c->lin_k_dim, c->lin_v_dim);
    size_t b = (size_t)delta_rule_recurrent_floats(c->lin_v_dim) * sizeof(float);
    return a > b ? a : b;
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
            vmath_swiglu(p->k, o, z, o, Dv); /* o = silu(z) * o */
        }
}

void linear_attn_block(moe_session *s, int layer, int T) {
    const layer_w *lw = &s->m->layers[layer];
    lin_ctx p = {s, lw, s->lin_slot[layer], T, kern_of(s->pool), 0};
    mm_task t[4];
    int n = 0;
    if (lw->lin_qkvz.data) {
        t[n++] = (mm_task){&lw->lin_qkvz, s->xn, s->lin_qkvz, T};
    } else { /* apart (qwen3_5_moe, llama.cpp's files): the conv channels and z directly */
        t[n++] = (mm_task){&lw->lin_qkv, s->xn, s->lin_mix, T};
        t[n++] = (mm_task){&lw->lin_z, s->xn, s->lin_z, T};
    }
    if (lw->lin_ba.data) {
        t[n++] = (mm_task){&lw->lin_ba, s->xn, s->lin_ba, T};
    } else {
        t[n++] = (mm_task){&lw->lin_b, s->xn, s->lin_ba, T};
        t[n++] = (mm_task){&lw->lin_a, s->xn, s->lin_ba + (size_t)T * (size_t)s->m->cfg.lin_v_heads, T};
    }
    matmul_grouped(s->pool, t, n);
    pool_for(s->pool, T, 4, split_rows, &p);
    p.n_runs = group_runs(s, T);
    pool_for(s->pool, lw->lin_conv.rows, 64, conv_channels, &p);
    pool_for(s->pool, T, 4, qk_norm_rows, &p);
    pool_for(s->pool, (int64_t)p.n_runs * s->m->cfg.lin_v_heads, 1, delta_items, &p);
    pool_for(s->pool, T, 4, gate_rows, &p);
    matmul(s->pool, s->tmp, s->lin_out, &lw->lin_out, T);
}
