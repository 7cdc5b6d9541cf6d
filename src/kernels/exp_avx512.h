/*
 * exp_avx512.h - exp over 16 floats in AVX-512, for the forward's vector
 * math (vmath_avx512.c) and the backward's fast paths
 * (grad_attention_avx512.c, grad_pointwise_avx512.c). Include only from
 * files built with AVX-512 enabled.
 *
 * exp16: clamp x to [-104, 88.8] (beyond it exp is 0 or +inf in f32 either
 * way; the clamps pass NaN through: min/max return their second operand
 * when one is NaN), n = round(x / ln 2), r = x - n ln 2 with ln 2 in two
 * parts (the first exact in 9 bits, so n * C1 is exact), exp(r) by Cephes'
 * degree-5 polynomial on |r| <= ln2/2, then vscalefps multiplies by 2^n
 * with one rounding (gradual underflow into denormals, overflow to +inf).
 * Measured within 2 ulp everywhere (tests/test_vmath.c).
 */
#ifndef MOE_KERNELS_EXP_AVX512_H
#define MOE_KERNELS_EXP_AVX512_H

#include <immintrin.h>

static inline __attribute__((always_inline)) __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(88.8f), x);
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

#endif
