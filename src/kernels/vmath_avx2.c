/*
 * vmath_avx2.c - the AVX2 versions of vmath.h (exp8 of exp_avx2.h under
 * them), the AVX-512 file's operations on 8-wide registers, with AVX's
 * masked loads and stores for the tails. Runs only when the kernel choice
 * is ISA_AVX2. The double exp-sum stays the reference's on AVX2.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/exp_avx2.h"
#include "kernels/vmath.h"

#define AI static inline __attribute__((always_inline))

/* Lanes < left (left < 8) on. */
AI __m256i tail8(int64_t left) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

void avx2_vexp(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i k = tail8(n - i);
        _mm256_maskstore_ps(y + i, k, exp8(_mm256_maskload_ps(x + i, k)));
    }
}

AI float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

float avx2_vmax(const float *x, int64_t n) {
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
        m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + 8));
    }
    for (; i + 8 <= n; i += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
    float m = hmax8(_mm256_max_ps(m0, m1));
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

float avx2_vexp_sum(float *y, const float *x, float m, int64_t n) {
    const __m256 mv = _mm256_set1_ps(m);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        const __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv));
        _mm256_storeu_ps(y + i, e0);
        _mm256_storeu_ps(y + i + 8, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    for (; i < n; i += 8) {
        const __m256i k = tail8(n - i);
        const __m256 e = _mm256_and_ps(_mm256_castsi256_ps(k), exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), mv)));
        _mm256_maskstore_ps(y + i, k, e);
        s0 = _mm256_add_ps(s0, e);
    }
    return hsum8(_mm256_add_ps(s0, s1));
}

void avx2_vscale(float *y, float a, int64_t n) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), av));
    for (; i < n; i++) y[i] *= a;
}

/* h = g / (1 + exp(-g)) * u, in the reference's order of operations */
AI __m256 swiglu8(__m256 g, __m256 u) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

void avx2_vswiglu(float *h, const float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(h + i, swiglu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
    if (i < n) {
        const __m256i k = tail8(n - i);
        _mm256_maskstore_ps(h + i, k, swiglu8(_mm256_maskload_ps(g + i, k), _mm256_maskload_ps(u + i, k)));
    }
}

/* As vmath_avx512.c's swiglu_bwd16: 1 - s as e * s, min() mapping the
 * inf * 0 of g < -88 to 1. */
AI void swiglu_bwd8(float *dg, float *du, float *h, const float *dh, const float *g, const float *u, int64_t i,
                    __m256i k) {
    const __m256 gv = _mm256_maskload_ps(g + i, k), uv = _mm256_maskload_ps(u + i, k);
    const __m256 dhv = _mm256_maskload_ps(dh + i, k);
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
    const __m256 den = _mm256_add_ps(one, e);
    const __m256 s = _mm256_div_ps(one, den);
    const __m256 silu = _mm256_mul_ps(gv, s);
    const __m256 oms = _mm256_min_ps(_mm256_mul_ps(e, s), one);
    const __m256 t = _mm256_fmadd_ps(gv, oms, one); /* 1 + g (1 - s) */
    const __m256 dgv = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(dhv, uv), s), t);
    _mm256_maskstore_ps(dg + i, k, dgv);
    _mm256_maskstore_ps(du + i, k, _mm256_mul_ps(dhv, silu));
    if (h) _mm256_maskstore_ps(h + i, k, _mm256_mul_ps(_mm256_div_ps(gv, den), uv));
}

void avx2_vswiglu_backward(float *dg, float *du, float *h, const float *dh, const float *g, const float *u,
                           int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) swiglu_bwd8(dg, du, h, dh, g, u, i, _mm256_set1_epi32(-1));
    if (i < n) swiglu_bwd8(dg, du, h, dh, g, u, i, tail8(n - i));
}
