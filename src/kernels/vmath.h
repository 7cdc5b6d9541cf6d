/*
 * vmath.h - elementwise transcendental math over f32 arrays, vectorized:
 * exp, the pieces of a softmax (row max, exp-and-sum), and SwiGLU with its
 * backward. These were scalar libm loops that took a large share of a
 * training step (softmax, cross-entropy, SiLU).
 *
 * Each function has a plain scalar reference (*_ref, libm expf/exp,
 * vmath.c) and AVX-512 and AVX2 paths (vmath_avx512.c, vmath_avx2.c; the
 * double exp-sum has no AVX2 path) picked by the kernel choice k
 * (kernels.h; NULL = the default); the scalar choice uses the reference.
 * The AVX-512 and AVX2 exp (the same bits) is a polynomial after range reduction by ln 2 (Cephes' expf), within 2 ulp of the correctly
 * rounded exp on all of f32 (tests/test_vmath.c checks that bound, and
 * every function here against its reference): exp(-inf) = 0, exp(+inf) =
 * +inf, NaN stays NaN, results below 2^-126 are denormals (or 0), above
 * FLT_MAX +inf.
 *
 * n is the number of elements; n <= 0 does nothing (vmath_max returns
 * -inf). Outputs may alias inputs where noted.
 */
#ifndef MOE_KERNELS_VMATH_H
#define MOE_KERNELS_VMATH_H

#include <stdint.h>

struct kern_cfg;

/* y[i] = exp(x[i]) (y may alias x). */
void vmath_exp(const struct kern_cfg *k, float *y, const float *x, int64_t n);
void vmath_exp_ref(float *y, const float *x, int64_t n);

/* max of x[n] (NaN elements are skipped by the AVX-512 path's max and may
 * or may not be by the reference; callers pass finite rows). */
float vmath_max(const struct kern_cfg *k, const float *x, int64_t n);
float vmath_max_ref(const float *x, int64_t n);

/* y[i] = exp(x[i] - m), returns their sum (f32 partial sums; y may alias
 * x). With m = vmath_max(x) every term is in (0, 1]. */
float vmath_exp_sum(const struct kern_cfg *k, float *y, const float *x, float m, int64_t n);
float vmath_exp_sum_ref(float *y, const float *x, float m, int64_t n);

/* The same in double, for sums that must be exact to ~1e-15 (the
 * cross-entropy's loss value): y[i] = (float)exp((double)x[i] - m) when y
 * is not NULL, returns sum_i exp((double)x[i] - m) in double. The AVX-512
 * exp is a degree-12 polynomial, relative error ~1e-15. */
double vmath_exp_sum_f64(const struct kern_cfg *k, float *y, const float *x, double m, int64_t n);
double vmath_exp_sum_f64_ref(float *y, const float *x, double m, int64_t n);

/* y[i] *= a */
void vmath_scale(const struct kern_cfg *k, float *y, float a, int64_t n);

/* SwiGLU forward: h[i] = silu(g[i]) * u[i], silu(g) = g / (1 + exp(-g)) as
 * torch computes it (h may alias g or u). */
void vmath_swiglu(const struct kern_cfg *k, float *h, const float *g, const float *u, int64_t n);
void vmath_swiglu_ref(float *h, const float *g, const float *u, int64_t n);

/* SwiGLU backward, WRITING (not accumulating) dg and du, s = sigmoid(g):
 *   dg = dh * u * s * (1 + g * (1 - s)),   du = dh * silu(g)
 * and, when h != NULL, also the forward's h = silu(g) * u. The reference
 * computes in double (grad_pointwise.c's formula). No output may alias an
 * input. */
void vmath_swiglu_backward(const struct kern_cfg *k, float *dg, float *du, float *h, const float *dh, const float *g,
                           const float *u, int64_t n);
void vmath_swiglu_backward_ref(float *dg, float *du, float *h, const float *dh, const float *g,
                               const float *u, int64_t n);

/* AVX-512 implementations (vmath_avx512.c); call only when the choice
 * is ISA_AVX512. */
void avx512_vexp(float *y, const float *x, int64_t n);
float avx512_vmax(const float *x, int64_t n);
float avx512_vexp_sum(float *y, const float *x, float m, int64_t n);
double avx512_vexp_sum_f64(float *y, const float *x, double m, int64_t n);
void avx512_vscale(float *y, float a, int64_t n);
void avx512_vswiglu(float *h, const float *g, const float *u, int64_t n);
void avx512_vswiglu_backward(float *dg, float *du, float *h, const float *dh, const float *g,
                             const float *u, int64_t n);

/* AVX2 implementations (vmath_avx2.c); call only when the choice is
 * ISA_AVX2. */
void avx2_vexp(float *y, const float *x, int64_t n);
float avx2_vmax(const float *x, int64_t n);
float avx2_vexp_sum(float *y, const float *x, float m, int64_t n);
void avx2_vscale(float *y, float a, int64_t n);
void avx2_vswiglu(float *h, const float *g, const float *u, int64_t n);
void avx2_vswiglu_backward(float *dg, float *du, float *h, const float *dh, const float *g,
                           const float *u, int64_t n);

#endif
