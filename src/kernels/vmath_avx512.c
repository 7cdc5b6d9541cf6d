/*
 * vmath_avx512.c - the AVX-512 versions of vmath.h. Runs only when
 * kernel choice is ISA_AVX512. exp16 (the exp under them) is in exp_avx512.h.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/exp_avx512.h"
#include "kernels/vmath.h"

#define AI static inline __attribute__((always_inline))

AI __mmask16 tail(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

void avx512_vexp(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 k = tail(n - i);
        _mm512_mask_storeu_ps(y + i, k, exp16(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

float avx512_vmax(const float *x, int64_t n) {
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
        m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + i + 16));
    }
    for (; i < n; i += 16) m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(m0, tail(n - i), x + i));
    return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

float avx512_vexp_sum(float *y, const float *x, float m, int64_t n) {
    __m512 mv = _mm512_set1_ps(m), s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv));
        __m512 e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), mv));
        _mm512_storeu_ps(y + i, e0);
        _mm512_storeu_ps(y + i + 16, e1);
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
    }
    for (; i < n; i += 16) {
        __mmask16 k = tail(n - i);
        __m512 e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mv)));
        _mm512_mask_storeu_ps(y + i, k, e);
        s0 = _mm512_add_ps(s0, e);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* exp in double: the same reduction with ln 2 split as fdlibm's (n * hi
 * exact for |n| < 2^11), then the Taylor series to degree 12 (remainder
 * below 2e-16 on |r| <= ln2/2). */
AI __m512d exp8d(__m512d x) {
    x = _mm512_min_pd(_mm512_set1_pd(709.8), x);
    x = _mm512_max_pd(_mm512_set1_pd(-746.0), x);
    __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), x);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
    static const double inv_fact[13] = {1.0,
                                        1.0,
                                        1.0 / 2,
                                        1.0 / 6,
                                        1.0 / 24,
                                        1.0 / 120,
                                        1.0 / 720,
                                        1.0 / 5040,
                                        1.0 / 40320,
                                        1.0 / 362880,
                                        1.0 / 3628800,
                                        1.0 / 39916800,
                                        1.0 / 479001600};
    __m512d y = _mm512_set1_pd(inv_fact[12]);
    for (int k = 11; k >= 0; k--) y = _mm512_fmadd_pd(y, r, _mm512_set1_pd(inv_fact[k]));
    return _mm512_scalef_pd(y, n);
}

double avx512_vexp_sum_f64(float *y, const float *x, double m, int64_t n) {
    __m512d mv = _mm512_set1_pd(m), s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail(n - i);
        __m512 xv = _mm512_maskz_loadu_ps(k, x + i);
        __m512d e0 = exp8d(_mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(xv)), mv));
        __m512d e1 = exp8d(_mm512_sub_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(xv, 1)), mv));
        e0 = _mm512_maskz_mov_pd((__mmask8)k, e0);
        e1 = _mm512_maskz_mov_pd((__mmask8)(k >> 8), e1);
        s0 = _mm512_add_pd(s0, e0);
        s1 = _mm512_add_pd(s1, e1);
        if (y) {
            __m512 f = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(e0)), _mm512_cvtpd_ps(e1), 1);
            _mm512_mask_storeu_ps(y + i, k, f);
        }
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

void avx512_vscale(float *y, float a, int64_t n) {
    __m512 av = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), av));
    if (i < n) {
        __mmask16 k = tail(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), av));
    }
}

/* h = g / (1 + exp(-g)) * u, in the reference's order of operations */
AI __m512 swiglu16(__m512 g, __m512 u) {
    __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

void avx512_vswiglu(float *h, const float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(h + i, swiglu16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
    if (i < n) {
        __mmask16 k = tail(n - i);
        _mm512_mask_storeu_ps(h + i, k,
                              swiglu16(_mm512_maskz_loadu_ps(k, g + i), _mm512_maskz_loadu_ps(k, u + i)));
    }
}

/* 1 - s is computed as e * s (= e / (1 + e)): no cancellation when s ~ 1. */
AI void swiglu_bwd16(float *dg, float *du, float *h, const float *dh, const float *g,
                     const float *u, int64_t i, __mmask16 k) {
    __m512 gv = _mm512_maskz_loadu_ps(k, g + i), uv = _mm512_maskz_loadu_ps(k, u + i);
    __m512 dhv = _mm512_maskz_loadu_ps(k, dh + i);
    __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv));
    __m512 den = _mm512_add_ps(one, e);
    __m512 s = _mm512_div_ps(one, den);
    __m512 silu = _mm512_mul_ps(gv, s);
    /* 1 - s = e s, but e = inf (g < -88) gives inf * 0: min() turns that
     * NaN into 1, the right value (min returns its second operand on NaN) */
    __m512 oms = _mm512_min_ps(_mm512_mul_ps(e, s), one);
    __m512 t = _mm512_fmadd_ps(gv, oms, one); /* 1 + g (1 - s) */
    __m512 dgv = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(dhv, uv), s), t);
    _mm512_mask_storeu_ps(dg + i, k, dgv);
    _mm512_mask_storeu_ps(du + i, k, _mm512_mul_ps(dhv, silu));
    if (h) _mm512_mask_storeu_ps(h + i, k, _mm512_mul_ps(_mm512_div_ps(gv, den), uv));
}

void avx512_vswiglu_backward(float *dg, float *du, float *h, const float *dh, const float *g,
                             const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) swiglu_bwd16(dg, du, h, dh, g, u, i, (__mmask16)0xffff);
    if (i < n) swiglu_bwd16(dg, du, h, dh, g, u, i, tail(n - i));
}
