/*
 * grad_pointwise_avx512.c - RMSNorm backward's row and column passes in
 * AVX-512 double (8 lanes), for rmsnorm_backward_rows_pool: the same
 * formulas as grad_pointwise.c in double; the two row sums are summed in
 * lanes (a fixed order, not the scalar one), the column pass and the
 * elementwise parts are the scalar operations exactly. Also gpt_oss's
 * clamped SwiGLU backward in f32 (16 lanes, exp16). Called only when
 * kernel choice is ISA_AVX512.
 */
#include <immintrin.h>

#include "kernels/exp_avx512.h"
#include "train/grad_ops.h"

#define AI static inline __attribute__((always_inline))


AI __mmask8 tail8(int left) { return left >= 8 ? (__mmask8)0xff : (__mmask8)((1u << left) - 1); }

AI __m512d load8(const float *p, __mmask8 k) { return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, p)); }

/* 1 / sqrt(mean(x^2) + eps) */
double avx512_rms_r(const float *x, int n, float eps) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512d a = load8(x + i, 0xff), b = load8(x + i + 8, 0xff);
        s0 = _mm512_fmadd_pd(a, a, s0);
        s1 = _mm512_fmadd_pd(b, b, s1);
    }
    for (; i < n; i += 8) {
        __m512d a = load8(x + i, tail8(n - i));
        s0 = _mm512_fmadd_pd(a, a, s0);
    }
    double ss = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    return 1.0 / __builtin_sqrt(ss / n + (double)eps);
}

/* dx += r a - x r^3 (a . x) / n with a = dy * w (w NULL: ones) */
void avx512_rms_dx(float *dx, const float *dy, const float *x, const float *w, int n, double r) {
    __m512d s = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0);
    for (int i = 0; i < n; i += 8) {
        __mmask8 k = tail8(n - i);
        __m512d a = _mm512_mul_pd(load8(dy + i, k), w ? load8(w + i, k) : one);
        s = _mm512_fmadd_pd(a, load8(x + i, k), s);
    }
    double ax = _mm512_reduce_add_pd(s);
    __m512d rv = _mm512_set1_pd(r), cv = _mm512_set1_pd(r * r * r * ax / n);
    for (int i = 0; i < n; i += 8) {
        __mmask8 k = tail8(n - i);
        __m512d a = _mm512_mul_pd(load8(dy + i, k), w ? load8(w + i, k) : one);
        __m512d d = _mm512_sub_pd(_mm512_mul_pd(rv, a), _mm512_mul_pd(load8(x + i, k), cv));
        __m256 o = _mm256_add_ps(_mm256_maskz_loadu_ps(k, dx + i), _mm512_cvtpd_ps(d));
        _mm256_mask_storeu_ps(dx + i, k, o);
    }
}

/* dw[i] += (float)(dy[i] * x[i] * r) for i in [i0, i1) */
void avx512_rms_dw(float *dw, const float *dy, const float *x, double r, int64_t i0, int64_t i1) {
    __m512d rv = _mm512_set1_pd(r);
    for (int64_t i = i0; i < i1; i += 8) {
        __mmask8 k = tail8((int)(i1 - i < 8 ? i1 - i : 8));
        __m512d p = _mm512_mul_pd(_mm512_mul_pd(load8(dy + i, k), load8(x + i, k)), rv);
        __m256 o = _mm256_add_ps(_mm256_maskz_loadu_ps(k, dw + i), _mm512_cvtpd_ps(p));
        _mm256_mask_storeu_ps(dw + i, k, o);
    }
}

/* oss_glu_backward in f32: the clamps as masks (ordered compares: NaN
 * blocks the gradient as in the scalar one) */
void avx512_oss_glu_backward(float *dg, float *du, const float *dh, const float *g,
                             const float *u, int64_t n, float alpha, float limit) {
    __m512 lim = _mm512_set1_ps(limit), nlim = _mm512_set1_ps(-limit), al = _mm512_set1_ps(alpha);
    __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 gv = _mm512_maskz_loadu_ps(k, g + i), uv = _mm512_maskz_loadu_ps(k, u + i);
        __m512 d = _mm512_maskz_loadu_ps(k, dh + i);
        __m512 gc = _mm512_min_ps(gv, lim), uc = _mm512_min_ps(_mm512_max_ps(uv, nlim), lim);
        __m512 ag = _mm512_mul_ps(al, gc);
        __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), ag))));
        /* dg = d (uc + 1) s (1 + ag (1 - s)),  du = d gc s */
        __m512 t = _mm512_fmadd_ps(ag, _mm512_sub_ps(one, s), one);
        __m512 dgv = _mm512_mul_ps(_mm512_mul_ps(d, _mm512_add_ps(uc, one)), _mm512_mul_ps(s, t));
        __m512 duv = _mm512_mul_ps(d, _mm512_mul_ps(gc, s));
        __mmask16 kg = k & _mm512_cmp_ps_mask(gv, lim, _CMP_LE_OQ);
        __mmask16 ku = k & _mm512_cmp_ps_mask(uv, lim, _CMP_LE_OQ) & _mm512_cmp_ps_mask(uv, nlim, _CMP_GE_OQ);
        _mm512_mask_storeu_ps(dg + i, kg, _mm512_add_ps(_mm512_maskz_loadu_ps(kg, dg + i), dgv));
        _mm512_mask_storeu_ps(du + i, ku, _mm512_add_ps(_mm512_maskz_loadu_ps(ku, du + i), duv));
    }
}
