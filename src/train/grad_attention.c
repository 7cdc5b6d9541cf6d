/*
 * grad_attention.c - backward of causal softmax attention for one sequence
 * (GQA, optional sliding window, value heads of their own width, any
 * softmax scale), recomputing the probabilities instead of storing the
 * [H][T][T] matrix.
 *
 * Per query head h (kv head g), for a block of BQ queries [i0, i1) and the
 * keys it can see [lo, i1) (lo = 0, or i0 - window + 1 with a window):
 *   S  = Q_blk K^T * scale,  P = row softmax of S over visible keys (0 for
 *        masked ones)
 *   dP = dO_blk V^T,  D_i = sum_j P_ij dP_ij
 *   dS = P * (dP - D) * scale
 *   dQ_blk += dS K;  dK += dS^T Q_blk;  dV += P^T dO_blk
 * With a sink logit z_h per head (gpt_oss) the softmax's denominator also
 * holds exp(z_h) and its share p_sink is dropped: dS is the same formula
 * (p_sink has no dP) and dz_h += sum over rows of -p_sink * D_i.
 * The five products run on the blocked GEMM of kernels/gemm.h (any
 * strides), so heads are read in place, no gather; the row softmax and dS
 * have an AVX-512 version (grad_attention_avx512.c). One pool item is one kv
 * head: it runs the H/G query heads that read it, so it alone writes its
 * dk/dv columns and those heads' dq columns. Items visit heads and blocks
 * in a fixed order, so the result does not depend on the thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "train/grad_attention_impl.h"
#include "train/grad_ops.h"

#define BQ 64 /* queries per block */

static int64_t block_rows(int T) { return T < BQ ? T : BQ; }

int64_t attention_backward_scratch(int T) {
    if (T <= 0) return 0;
    return 2 * block_rows(T) * (int64_t)T; /* P and dP: [BQ][T] each */
}

typedef struct att_ctx {
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *v;
    const float *sinks; /* [H] sink logits or NULL */
    float *dsinks;      /* [H] their gradient (+=) or NULL */
    int T, H, G, Dk, Dv, window;
    float scale;    /* softmax scale */
    float *scratch; /* [threads][attention_backward_scratch(T)] */
    pool *pool;     /* its threads' scratch holds the GEMM's packed blocks */
} att_ctx;

/* Portable row step (see grad_attention_impl.h): the forward's softmax
 * kernel, D summed in double. */
static void att_row_generic(const kern_cfg *k, float *p, float *dp, int64_t n, float scale) {
    for (int64_t j = 0; j < n; j++) p[j] *= scale;
    softmax(k, p, (int)n);
    double D = 0.0;
    for (int64_t j = 0; j < n; j++) D += (double)p[j] * dp[j];
    for (int64_t j = 0; j < n; j++) dp[j] = (float)((double)p[j] * ((double)dp[j] - D)) * scale;
}

/* The same with a sink logit in the denominator (its share dropped);
 * returns the row's sink gradient -p_sink * D. */
static double att_row_sink_generic(float *p, float *dp, int64_t n, float scale, float sink) {
    float m = sink;
    for (int64_t j = 0; j < n; j++) {
        p[j] *= scale;
        m = p[j] > m ? p[j] : m;
    }
    double es = exp((double)sink - m), Z = es;
    for (int64_t j = 0; j < n; j++) Z += (p[j] = expf(p[j] - m));
    float inv = (float)(1.0 / Z);
    double D = 0.0;
    for (int64_t j = 0; j < n; j++) {
        p[j] *= inv;
        D += (double)p[j] * dp[j];
    }
    for (int64_t j = 0; j < n; j++) dp[j] = (float)((double)p[j] * ((double)dp[j] - D)) * scale;
    return -es / Z * D;
}

/* One block of queries [i0, i1) of head h against keys [lo, i1) of kv head g. */
static void att_block(const att_ctx *c, int64_t h, int64_t g, int64_t i0, int64_t i1, float *P,
                      float *dP, float *pack) {
    const int64_t Dk = c->Dk, Dv = c->Dv, QD = (int64_t)c->H * Dk, KD = (int64_t)c->G * Dk,
                  OD = (int64_t)c->H * Dv, VD = (int64_t)c->G * Dv;
    const float scale = c->scale;
    int64_t lo = c->window > 0 && i0 - c->window + 1 > 0 ? i0 - c->window + 1 : 0;
    int64_t bq = i1 - i0, nk = i1 - lo;
    const float *Qb = c->q + i0 * QD + h * Dk, *dOb = c->dout + i0 * OD + h * Dv;
    const float *Kg = c->k + lo * KD + g * Dk, *Vg = c->v + lo * VD + g * Dv;

    /* S = Q K^T and dP = dO V^T, [bq][nk] */
    const kern_cfg *kc = kern_of(c->pool);
    gemm_set(kc, P, nk, Qb, QD, 1, Kg, 1, KD, bq, nk, Dk, pack);
    gemm_set(kc, dP, nk, dOb, OD, 1, Vg, 1, VD, bq, nk, Dv, pack);

    int avx512 = kc->isa == ISA_AVX512;
    const float *sink = c->sinks ? c->sinks + h : NULL;
    double dsink = 0.0;
    for (int64_t r = 0; r < bq; r++) {
        int64_t i = i0 + r;
        int64_t vlo = c->window > 0 && i - c->window + 1 > lo ? i - c->window + 1 : lo;
        float *p = P + r * nk, *dp = dP + r * nk;
        int64_t a = vlo - lo, b = i - lo + 1; /* visible: [a, b) of the row */
        if (avx512)
            dsink += att_row_avx512(p + a, dp + a, b - a, scale, sink);
        else if (sink)
            dsink += att_row_sink_generic(p + a, dp + a, b - a, scale, *sink);
        else
            att_row_generic(kc, p + a, dp + a, b - a, scale);
        for (int64_t j = 0; j < a; j++) p[j] = dp[j] = 0.0f; /* masked keys */
        for (int64_t j = b; j < nk; j++) p[j] = dp[j] = 0.0f;
    }
    if (sink && c->dsinks) c->dsinks[h] += (float)dsink;

    /* dQ_blk += dS K;  dK += dS^T Q_blk;  dV += P^T dO_blk */
    gemm_acc(kc, c->dq + i0 * QD + h * Dk, QD, dP, nk, 1, Kg, KD, 1, bq, Dk, nk, pack);
    gemm_acc(kc, c->dk + lo * KD + g * Dk, KD, dP, 1, nk, Qb, QD, 1, nk, Dk, bq, pack);
    gemm_acc(kc, c->dv + lo * VD + g * Dv, VD, P, 1, nk, dOb, OD, 1, nk, Dv, bq, pack);
}

static void att_kv_heads(void *vc, int64_t g0, int64_t g1, int tid) {
    const att_ctx *c = vc;
    const int per = c->H / c->G;
    float *P = c->scratch + (int64_t)tid * attention_backward_scratch(c->T);
    float *dP = P + block_rows(c->T) * (int64_t)c->T;
    void *own;
    float *pack = kern_scratch(c->pool, tid, gemm_scratch_bytes(), &own);
    if (!pack) { /* out of memory: visible, never silently wrong */
        for (int64_t i = 0; i < (int64_t)c->T * c->H * c->Dk; i++) c->dq[i] = __builtin_nanf("");
        return;
    }
    for (int64_t g = g0; g < g1; g++)
        for (int64_t h = g * per; h < (g + 1) * per; h++)
            for (int64_t i0 = 0; i0 < c->T; i0 += BQ)
                att_block(c, h, g, i0, i0 + BQ < c->T ? i0 + BQ : c->T, P, dP, pack);
    free(own);
}

void attention_backward_dims(pool *p, float *dq, float *dk, float *dv, float *dsinks,
                             const float *dout, const float *q, const float *k, const float *v,
                             const float *sinks, const attn_bwd_dims *d, float *scratch) {
    if (d->T <= 0 || d->H <= 0 || d->G <= 0 || d->Dk <= 0 || d->Dv <= 0 || d->H % d->G) return;
    float scale = d->scale > 0 ? d->scale : 1.0f / sqrtf((float)d->Dk);
    att_ctx c = {dq,   dk,   dv,   dout,  q,    k,        v,     sinks, dsinks, d->T,
                 d->H, d->G, d->Dk, d->Dv, d->window, scale, scratch, p};
    pool_for(p, d->G, 1, att_kv_heads, &c);
}

void attention_backward_sinks(pool *p, float *dq, float *dk, float *dv, float *dsinks,
                              const float *dout, const float *q, const float *k, const float *v,
                              const float *sinks, int T, int H, int G, int Dh, int window,
                              float *scratch) {
    attn_bwd_dims d = {T, H, G, Dh, Dh, window, 0.0f};
    attention_backward_dims(p, dq, dk, dv, dsinks, dout, q, k, v, sinks, &d, scratch);
}

void attention_backward(pool *p, float *dq, float *dk, float *dv, const float *dout,
                        const float *q, const float *k, const float *v, int T, int H, int G,
                        int Dh, int window, float *scratch) {
    attention_backward_sinks(p, dq, dk, dv, NULL, dout, q, k, v, NULL, T, H, G, Dh, window,
                             scratch);
}
