/*
 * optim_avx512.c - AdamW's two passes over the parameters in AVX-512 (see
 * optim.h): the gradient's sum of squares and the update. The update uses
 * the scalar loop's operations in the same order, each correctly rounded
 * (no FMA contraction), so it has the same bits; the memory-bound pass then
 * runs at the speed of memory instead of one divide and one square root per
 * element. Called only when the kernel choice is ISA_AVX512.
 */
#include <immintrin.h>

#include "train/optim.h"

double avx512_sumsq(const float *g, int64_t n) {
    __m512d s[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int u = 0; u < 4; u++) {
            __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(g + i + 8 * u));
            s[u] = _mm512_fmadd_pd(x, x, s[u]);
        }
    for (; i < n; i += 8) {
        __mmask8 k = n - i >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (n - i)) - 1);
        __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, g + i));
        s[0] = _mm512_fmadd_pd(x, x, s[0]);
    }
    __m512d t = _mm512_add_pd(_mm512_add_pd(s[0], s[1]), _mm512_add_pd(s[2], s[3]));
    double lanes[8], r = 0;
    _mm512_storeu_pd(lanes, t);
    for (int u = 0; u < 8; u++) r += lanes[u];
    return r;
}

void avx512_adam(float *p, float *m, float *v, float *g, int64_t n, int clear, float coef,
                 float decay_mul, float b2, float omb1, float omb2, float eps, float step_size,
                 float bc2_sqrt) {
    const __m512 vcoef = _mm512_set1_ps(coef), vdm = _mm512_set1_ps(decay_mul);
    const __m512 vb2 = _mm512_set1_ps(b2), vomb1 = _mm512_set1_ps(omb1), vomb2 = _mm512_set1_ps(omb2);
    const __m512 veps = _mm512_set1_ps(eps), vstep = _mm512_set1_ps(step_size);
    const __m512 vbc = _mm512_set1_ps(bc2_sqrt), zero = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 gv = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i), vcoef);
        __m512 pv = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), vdm);
        __m512 m0 = _mm512_maskz_loadu_ps(k, m + i);
        __m512 mv = _mm512_add_ps(m0, _mm512_mul_ps(vomb1, _mm512_sub_ps(gv, m0)));
        __m512 vv = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, v + i), vb2),
                                  _mm512_mul_ps(_mm512_mul_ps(vomb2, gv), gv));
        __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vv), vbc), veps);
        _mm512_mask_storeu_ps(m + i, k, mv);
        _mm512_mask_storeu_ps(v + i, k, vv);
        _mm512_mask_storeu_ps(p + i, k, _mm512_sub_ps(pv, _mm512_div_ps(_mm512_mul_ps(vstep, mv), den)));
        if (clear) _mm512_mask_storeu_ps(g + i, k, zero);
    }
}
