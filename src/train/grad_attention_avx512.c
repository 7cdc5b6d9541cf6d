/*
 * grad_attention_avx512.c - the row work of attention_backward in AVX-512:
 * for one query row, the softmax of its scaled scores over the visible keys
 * and dS = P (dP - D) * scale with D = P . dP. exp is a Cephes-style
 * polynomial (range reduction by ln 2 in two parts, degree 5, exponent
 * applied with vscalefps): about 1 ulp, against libm's scalar expf that
 * took a third of the backward's time. Called only when the kernel choice is
 * ISA_AVX512; grad_attention.c has the portable version.
 */
#include <immintrin.h>
#include <math.h>

#include "train/grad_attention_impl.h"

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

AI __mmask16 tail(int64_t left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1); }

void att_row_avx512(float *p, float *dp, int64_t n, float scale) {
    if (n <= 0) return;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += 16)
        mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tail(n - j), p + j));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx)), sc = _mm512_set1_ps(scale);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 k = tail(n - j);
        __m512 e = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p + j), m), sc));
        e = _mm512_maskz_mov_ps(k, e);
        sum = _mm512_add_ps(sum, e);
        _mm512_mask_storeu_ps(p + j, k, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    __m512 dacc = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 k = tail(n - j);
        __m512 pv = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + j), inv);
        _mm512_mask_storeu_ps(p + j, k, pv);
        dacc = _mm512_fmadd_ps(pv, _mm512_maskz_loadu_ps(k, dp + j), dacc);
    }
    __m512 D = _mm512_set1_ps(_mm512_reduce_add_ps(dacc));
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 k = tail(n - j);
        __m512 pv = _mm512_maskz_loadu_ps(k, p + j), d = _mm512_maskz_loadu_ps(k, dp + j);
        _mm512_mask_storeu_ps(dp + j, k, _mm512_mul_ps(_mm512_mul_ps(pv, _mm512_sub_ps(d, D)), sc));
    }
}
