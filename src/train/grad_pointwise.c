/*
 * grad_pointwise.c - backward of the row and element ops around the
 * matmuls: RMSNorm, SwiGLU, RoPE, clamp (clip_qkv). Each forward is the
 * one in src/kernels (kernels_ref.c has the plain versions); the formulas
 * are in grad_ops.h. Reductions are summed in double so the gradients are
 * as exact as the f32 inputs allow.
 */
#include <math.h>

#include "train/grad_ops.h"

/* --------------------------------------------------------------- RMSNorm */

void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                      int n, float eps) {
    if (n <= 0) return;
    /* r in double: the gradient of the exact function (the forward's f32
     * r differs from it by an f32 rounding) */
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    double r = 1.0 / sqrt(ss / n + (double)eps);
    /* dL/dx_i = r a_i - x_i r^3 (a . x) / n with a = dy * w */
    double ax = 0.0;
    for (int i = 0; i < n; i++) ax += (double)dy[i] * (w ? (double)w[i] : 1.0) * (double)x[i];
    double c = r * r * r * ax / n;
    for (int i = 0; i < n; i++) {
        double a = (double)dy[i] * (w ? (double)w[i] : 1.0);
        dx[i] += (float)(r * a - (double)x[i] * c);
    }
    if (dw)
        for (int i = 0; i < n; i++) dw[i] += (float)((double)dy[i] * (double)x[i] * r);
}

void rmsnorm_backward_rows(float *dx, float *dw, const float *dy, const float *x, const float *w,
                           int64_t rows, int n, float eps) {
    for (int64_t t = 0; t < rows; t++)
        rmsnorm_backward(dx + t * n, dw, dy + t * n, x + t * n, w, n, eps);
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
