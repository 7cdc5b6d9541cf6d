/*
 * avx512_exp.h - exp over 16 floats in AVX-512 for the backward's fast
 * paths (grad_attention_avx512.c, grad_pointwise_avx512.c): a Cephes-style
 * polynomial (range reduction by ln 2 in two parts, degree 5, exponent
 * applied with vscalefps), about 1 ulp. Include only from files built with
 * AVX-512 enabled.
 */
#ifndef MOE_TRAIN_AVX512_EXP_H
#define MOE_TRAIN_AVX512_EXP_H

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

AI __m512 exp512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f)); /* exp < 2^-149: scalef gives 0 */
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, fx);
}

#endif
