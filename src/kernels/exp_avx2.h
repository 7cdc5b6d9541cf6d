/*
 * exp_avx2.h - exp over 8 floats in AVX2 + FMA, for vmath_avx2.c: the
 * AVX-512 exp16 (exp_avx512.h) on 256-bit registers. Include only from
 * files built with AVX2 and FMA enabled.
 *
 * exp8: clamp x to [-104, 88.8] (the clamps pass NaN through: min/max
 * return their second operand when one is NaN), n = round(x / ln 2), r = x -
 * n ln 2 with ln 2 in two parts, exp(r) by Cephes' degree-5 polynomial on
 * |r| <= ln2/2, as exp16. AVX2 has no vscalefps: 2^n (n in [-150, 128]) is
 * applied as two exact powers of two, 2^(n - n/2) and 2^(n/2), each a
 * normal float; the first product stays normal and exact, so the second
 * rounds once, into the denormals or to +inf as vscalefps does.
 */
#ifndef MOE_KERNELS_EXP_AVX2_H
#define MOE_KERNELS_EXP_AVX2_H

#include <immintrin.h>

/* 2^n for integer n in [-126, 127], as a float. */
static inline __attribute__((always_inline)) __m256 pow2i8(__m256i n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

static inline __attribute__((always_inline)) __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_set1_ps(88.8f), x);
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* NaN x: n is NaN and its conversion gives INT_MIN; y is NaN already,
     * and a NaN times any power of two stays NaN */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n0 = _mm256_sub_epi32(ni, n1);
    return _mm256_mul_ps(_mm256_mul_ps(y, pow2i8(n0)), pow2i8(n1));
}

#endif
