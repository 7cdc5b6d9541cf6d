/*
 * vmath.c - the scalar references of vmath.h (plain libm loops) and the
 * dispatch to the AVX-512 and AVX2 versions.
 */
#include "kernels/vmath.h"

#include <math.h>

#include "kernels/kernels.h"

static inline int use_avx512(const kern_cfg *k) { return (k ? k : kernels_default())->isa == ISA_AVX512; }
static inline int use_avx2(const kern_cfg *k) { return (k ? k : kernels_default())->isa == ISA_AVX2; }

/* ------------------------------------------------------------ references */

void vmath_exp_ref(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

float vmath_max_ref(const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > m) m = x[i];
    return m;
}

float vmath_exp_sum_ref(float *y, const float *x, float m, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        y[i] = expf(x[i] - m);
        s += y[i];
    }
    return (float)s;
}

double vmath_exp_sum_f64_ref(float *y, const float *x, double m, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = exp((double)x[i] - m);
        if (y) y[i] = (float)e;
        s += e;
    }
    return s;
}

void vmath_swiglu_ref(float *h, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void vmath_swiglu_backward_ref(float *dg, float *du, float *h, const float *dh, const float *g,
                               const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double gi = g[i], s = 1.0 / (1.0 + exp(-gi)), silu = gi * s;
        dg[i] = (float)((double)dh[i] * (double)u[i] * s * (1.0 + gi * (1.0 - s)));
        du[i] = (float)((double)dh[i] * silu);
        if (h) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

/* -------------------------------------------------------------- dispatch */

void vmath_exp(const kern_cfg *k, float *y, const float *x, int64_t n) {
    if (use_avx512(k)) avx512_vexp(y, x, n);
    else if (use_avx2(k)) avx2_vexp(y, x, n);
    else vmath_exp_ref(y, x, n);
}

float vmath_max(const kern_cfg *k, const float *x, int64_t n) {
    return use_avx512(k) ? avx512_vmax(x, n) : use_avx2(k) ? avx2_vmax(x, n) : vmath_max_ref(x, n);
}

float vmath_exp_sum(const kern_cfg *k, float *y, const float *x, float m, int64_t n) {
    return use_avx512(k) ? avx512_vexp_sum(y, x, m, n)
         : use_avx2(k)   ? avx2_vexp_sum(y, x, m, n)
                         : vmath_exp_sum_ref(y, x, m, n);
}

double vmath_exp_sum_f64(const kern_cfg *k, float *y, const float *x, double m, int64_t n) {
    return use_avx512(k) ? avx512_vexp_sum_f64(y, x, m, n) : vmath_exp_sum_f64_ref(y, x, m, n);
}

void vmath_scale(const kern_cfg *k, float *y, float a, int64_t n) {
    if (use_avx512(k)) {
        avx512_vscale(y, a, n);
        return;
    }
    if (use_avx2(k)) {
        avx2_vscale(y, a, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i] *= a;
}

void vmath_swiglu(const kern_cfg *k, float *h, const float *g, const float *u, int64_t n) {
    if (use_avx512(k)) avx512_vswiglu(h, g, u, n);
    else if (use_avx2(k)) avx2_vswiglu(h, g, u, n);
    else vmath_swiglu_ref(h, g, u, n);
}

void vmath_swiglu_backward(const kern_cfg *k, float *dg, float *du, float *h, const float *dh, const float *g,
                           const float *u, int64_t n) {
    if (use_avx512(k)) avx512_vswiglu_backward(dg, du, h, dh, g, u, n);
    else if (use_avx2(k)) avx2_vswiglu_backward(dg, du, h, dh, g, u, n);
    else vmath_swiglu_backward_ref(dg, du, h, dh, g, u, n);
}
