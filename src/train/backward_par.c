/*
 * backward_par.c - the element and row work between the backward pass's
 * GEMMs, spread over the pool: SwiGLU and its backward (vectorized,
 * vmath.h), gpt_oss's clamped SwiGLU backward (grad_pointwise*.c), the MoE combine's backward and the sum of each
 * token's expert-input gradients. Each output element is computed by one
 * thread in a fixed order, so results do not depend on the thread count.
 */
#include "train/backward_impl.h"

#include <string.h>

#include "kernels/vmath.h"

#define ELEM_GRAIN 8192 /* elements per pool chunk at least */

typedef struct sw_ctx {
    float *dg, *du, *h;
    const float *dh, *g, *u;
    const kern_cfg *k; /* the pool's kernel choice */
} sw_ctx;

static void sw_fwd(void *vc, int64_t i0, int64_t i1, int tid) {
    const sw_ctx *c = vc;
    vmath_swiglu(c->k, c->h + i0, c->g + i0, c->u + i0, i1 - i0);
}

static void sw_bwd(void *vc, int64_t i0, int64_t i1, int tid) {
    const sw_ctx *c = vc;
    vmath_swiglu_backward(c->k, c->dg + i0, c->du + i0, NULL, c->dh + i0, c->g + i0, c->u + i0, i1 - i0);
}

void bwd_swiglu(pool *p, float *h, const float *g, const float *u, int64_t n) {
    sw_ctx c = {NULL, NULL, h, NULL, g, u, kern_of(p)};
    pool_for(p, n, ELEM_GRAIN, sw_fwd, &c);
}

void bwd_swiglu_backward(pool *p, float *dg, float *du, const float *dh, const float *g,
                         const float *u, int64_t n) {
    sw_ctx c = {dg, du, NULL, dh, g, u, kern_of(p)};
    pool_for(p, n, ELEM_GRAIN, sw_bwd, &c);
}

typedef struct swr_ctx {
    float *dgu;
    const float *dh, *g, *u;
    int64_t F;
    const kern_cfg *k;
} swr_ctx;

static void sw_bwd_rows(void *vc, int64_t i0, int64_t i1, int tid) {
    const swr_ctx *c = vc;
    for (int64_t i = i0; i < i1; i++) {
        float *d = c->dgu + i * 2 * c->F;
        vmath_swiglu_backward(c->k, d, d + c->F, NULL, c->dh + i * c->F, c->g + i * c->F, c->u + i * c->F, c->F);
    }
}

void bwd_swiglu_backward_rows(pool *p, float *dgu, const float *dh, const float *g,
                              const float *u, int64_t n, int64_t F) {
    swr_ctx c = {dgu, dh, g, u, F, kern_of(p)};
    pool_for(p, n, 1 + ELEM_GRAIN / (F + 1), sw_bwd_rows, &c);
}

typedef struct oss_ctx {
    float *dgu;
    const float *dh, *g, *u;
    int64_t F;
    float alpha, limit;
    int avx512;
} oss_ctx;

static void oss_bwd_rows(void *vc, int64_t i0, int64_t i1, int tid) {
    const oss_ctx *c = vc;
    for (int64_t i = i0; i < i1; i++) {
        float *d = c->dgu + i * 2 * c->F;
        const float *dh = c->dh + i * c->F, *g = c->g + i * c->F, *u = c->u + i * c->F;
        memset(d, 0, sizeof(float) * (size_t)(2 * c->F));
        if (c->avx512)
            avx512_oss_glu_backward(d, d + c->F, dh, g, u, c->F, c->alpha, c->limit);
        else
            oss_glu_backward(d, d + c->F, dh, g, u, c->F, c->alpha, c->limit);
    }
}

void bwd_oss_glu_backward_rows(pool *p, float *dgu, const float *dh, const float *g,
                               const float *u, int64_t n, int64_t F, float alpha, float limit) {
    oss_ctx c = {dgu, dh, g, u, F, alpha, limit, kern_of(p)->isa == ISA_AVX512};
    pool_for(p, n, 1 + ELEM_GRAIN / (F + 1), oss_bwd_rows, &c);
}

typedef struct rows_ctx {
    float *dst, *dst2;
    const float *src, *src2;
    const float *weight;
    const int *idx, *start;
    int64_t D;
    const kern_cfg *k;
} rows_ctx;

/* pair i of token t = idx[i]: dye[i] = weight[i] * dx[t], dw[i] = dx[t] . ye[i] */
static void combine_bwd(void *vc, int64_t i0, int64_t i1, int tid) {
    const rows_ctx *c = vc;
    for (int64_t i = i0; i < i1; i++) {
        const float *dxt = c->src + (int64_t)c->idx[i] * c->D, *y = c->src2 + i * c->D;
        float *dy = c->dst + i * c->D, wt = c->weight[i];
        for (int64_t d = 0; d < c->D; d++) dy[d] = wt * dxt[d];
        c->dst2[i] = dot(c->k, dxt, y, (int)c->D);
    }
}

void bwd_combine(pool *p, float *dye, float *dw_pair, const float *dx, const float *ye,
                 const float *weight, const int *pair_token, int64_t P, int64_t D) {
    rows_ctx c = {dye, dw_pair, dx, ye, weight, pair_token, NULL, D, kern_of(p)};
    pool_for(p, P, 1 + 4096 / (D + 1), combine_bwd, &c);
}

/* dxn[t] = sum of dxe over token t's pairs start[t]..start[t+1] of idx */
static void token_sum(void *vc, int64_t t0, int64_t t1, int tid) {
    const rows_ctx *c = vc;
    for (int64_t t = t0; t < t1; t++) {
        float *d = c->dst + t * c->D;
        int a = c->start[t], b = c->start[t + 1];
        if (a == b) {
            memset(d, 0, sizeof(float) * (size_t)c->D);
            continue;
        }
        memcpy(d, c->src + (int64_t)c->idx[a] * c->D, sizeof(float) * (size_t)c->D);
        for (int j = a + 1; j < b; j++) axpy(c->k, d, 1.0f, c->src + (int64_t)c->idx[j] * c->D, (int)c->D);
    }
}

void bwd_token_sum(pool *p, float *dxn, const float *dxe, const int *pair_token, int64_t N,
                   int64_t P, int64_t D, int *start, int *pairs) {
    /* pairs of each token in ascending pair order (a counting sort) */
    for (int64_t t = 0; t <= N; t++) start[t] = 0;
    for (int64_t i = 0; i < P; i++) start[pair_token[i] + 1]++;
    for (int64_t t = 0; t < N; t++) start[t + 1] += start[t];
    for (int64_t i = 0; i < P; i++) pairs[start[pair_token[i]]++] = (int)i;
    for (int64_t t = N; t > 0; t--) start[t] = start[t - 1];
    start[0] = 0;
    rows_ctx c = {dxn, NULL, dxe, NULL, NULL, pairs, start, D, kern_of(p)};
    pool_for(p, N, 1 + 4096 / (D + 1), token_sum, &c);
}
