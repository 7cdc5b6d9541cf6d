/*
 * grad_pointwise.c - backward of the row and element ops around the
 * matmuls: RMSNorm, SwiGLU, RoPE, clamp (clip_qkv). Each forward is the
 * one in src/kernels (kernels_ref.c has the plain versions); the formulas
 * are in grad_ops.h. Reductions are summed in double so the gradients are
 * as exact as the f32 inputs allow.
 */
#include <math.h>

#include "kernels/kernels.h"
#include "train/grad_ops.h"

/* --------------------------------------------------------------- RMSNorm */

/* r in double: the gradient of the exact function (the forward's f32 r
 * differs from it by an f32 rounding) */
static double rms_r(const float *x, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    return 1.0 / sqrt(ss / n + (double)eps);
}

/* dL/dx_i = r a_i - x_i r^3 (a . x) / n with a = dy * w */
static void rms_dx(float *dx, const float *dy, const float *x, const float *w, int n, double r) {
    double ax = 0.0;
    for (int i = 0; i < n; i++) ax += (double)dy[i] * (w ? (double)w[i] : 1.0) * (double)x[i];
    double c = r * r * r * ax / n;
    for (int i = 0; i < n; i++) {
        double a = (double)dy[i] * (w ? (double)w[i] : 1.0);
        dx[i] += (float)(r * a - (double)x[i] * c);
    }
}

void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                      int n, float eps) {
    if (n <= 0) return;
    double r = rms_r(x, n, eps);
    rms_dx(dx, dy, x, w, n, r);
    if (dw)
        for (int i = 0; i < n; i++) dw[i] += (float)((double)dy[i] * (double)x[i] * r);
}

void rmsnorm_backward_rows(float *dx, float *dw, const float *dy, const float *x, const float *w,
                           int64_t rows, int n, float eps) {
    for (int64_t t = 0; t < rows; t++)
        rmsnorm_backward(dx + t * n, dw, dy + t * n, x + t * n, w, n, eps);
}

typedef struct rmsb_ctx {
    float *dx, *dw;
    const float *dy, *x, *w;
    int64_t rows;
    int n;
    float eps;
    double *r;
    int avx512; /* the pool's kernel choice is ISA_AVX512 */
} rmsb_ctx;

static void rmsb_rows(void *vc, int64_t t0, int64_t t1, int tid) {
    const rmsb_ctx *c = vc;
    int v = c->avx512;
    for (int64_t t = t0; t < t1; t++) {
        const float *x = c->x + t * c->n;
        c->r[t] = v ? avx512_rms_r(x, c->n, c->eps) : rms_r(x, c->n, c->eps);
        if (v) avx512_rms_dx(c->dx + t * c->n, c->dy + t * c->n, x, c->w, c->n, c->r[t]);
        else rms_dx(c->dx + t * c->n, c->dy + t * c->n, x, c->w, c->n, c->r[t]);
    }
}

/* dw over columns [i0, i1): each column adds its rows in row order, as the
 * serial version does */
static void rmsb_cols(void *vc, int64_t i0, int64_t i1, int tid) {
    const rmsb_ctx *c = vc;
    int v = c->avx512;
    for (int64_t t = 0; t < c->rows; t++) {
        const float *dy = c->dy + t * c->n, *x = c->x + t * c->n;
        double r = c->r[t];
        if (v) {
            avx512_rms_dw(c->dw, dy, x, r, i0, i1);
            continue;
        }
        for (int64_t i = i0; i < i1; i++) c->dw[i] += (float)((double)dy[i] * (double)x[i] * r);
    }
}

void rmsnorm_backward_rows_pool(pool *p, float *dx, float *dw, const float *dy, const float *x,
                                const float *w, int64_t rows, int n, float eps, double *r) {
    if (n <= 0 || rows <= 0) return;
    rmsb_ctx c = {dx, dw, dy, x, w, rows, n, eps, r, kern_of(p)->isa == ISA_AVX512};
    pool_for(p, rows, 4, rmsb_rows, &c);
    if (dw) pool_for(p, n, 16, rmsb_cols, &c);
}

/* ---------------------------------------------------------------- SwiGLU */

void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                     int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double gi = g[i], s = 1.0 / (1.0 + exp(-gi));
        double silu = gi * s;
        if (dg) dg[i] += (float)((double)dh[i] * (double)u[i] * s * (1.0 + gi * (1.0 - s)));
        if (du) du[i] += (float)((double)dh[i] * silu);
    }
}

void oss_glu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                      int64_t n, float alpha, float limit) {
    for (int64_t i = 0; i < n; i++) {
        double gc = g[i] > limit ? limit : g[i];
        double uc = u[i] < -limit ? -limit : u[i] > limit ? limit : u[i];
        double s = 1.0 / (1.0 + exp(-(double)alpha * gc)), d = dh[i];
        if (g[i] <= limit) dg[i] += (float)(d * (uc + 1.0) * s * (1.0 + alpha * gc * (1.0 - s)));
        if (u[i] >= -limit && u[i] <= limit) du[i] += (float)(d * gc * s);
    }
}

/* ------------------------------------------------------------------ RoPE */

/* Forward: y1 = x1 c - x2 s, y2 = x2 c + x1 s. Its transpose (the inverse
 * rotation): dx1 = dy1 c + dy2 s, dx2 = dy2 c - dy1 s. */
void rope_backward(float *d, const float *cos_t, const float *sin_t, int head_dim) {
    int h = head_dim / 2;
    for (int i = 0; i < h; i++) {
        float d1 = d[i], d2 = d[i + h];
        d[i] = d1 * cos_t[i] + d2 * sin_t[i];
        d[i + h] = d2 * cos_t[i] - d1 * sin_t[i];
    }
}

/* ----------------------------------------------------------------- clamp */

void clamp_backward(float *d, const float *x, int64_t n, float c) {
    for (int64_t i = 0; i < n; i++)
        if (!(x[i] >= -c && x[i] <= c)) d[i] = 0.0f;
}
