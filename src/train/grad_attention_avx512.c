/*
 * grad_attention_avx512.c - the row work of attention_backward in AVX-512:
 * for one query row, the softmax of its scaled scores over the visible keys
 * and dS = P (dP - D) * scale with D = P . dP. exp is exp16
 * (kernels/exp_avx512.h: about 1 ulp, against libm's scalar expf that took a third
 * of the backward's time). With gpt_oss's sink the row's maximum includes it
 * and its exp joins the denominator. Called only when the kernel choice is
 * ISA_AVX512; grad_attention.c has the portable version.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/exp_avx512.h"
#include "train/grad_attention_impl.h"

#define AI static inline __attribute__((always_inline))

AI __mmask16 tail(int64_t left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1); }

double att_row_avx512(float *p, float *dp, int64_t n, float scale, const float *sink) {
    if (n <= 0) return 0.0;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += 16)
        mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tail(n - j), p + j));
    float mraw = _mm512_reduce_max_ps(mx), es = 0.0f;
    __m512 m = _mm512_set1_ps(mraw), sc = _mm512_set1_ps(scale);
    __m512 sum = _mm512_setzero_ps();
    if (sink) { /* exp(s * scale - ms), ms the largest of the scaled scores and the sink */
        float ms = mraw * scale > *sink ? mraw * scale : *sink;
        es = expf(*sink - ms);
        __m512 mv = _mm512_set1_ps(ms);
        for (int64_t j = 0; j < n; j += 16) {
            __mmask16 k = tail(n - j);
            __m512 e = exp16(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, p + j), sc, mv));
            e = _mm512_maskz_mov_ps(k, e);
            sum = _mm512_add_ps(sum, e);
            _mm512_mask_storeu_ps(p + j, k, e);
        }
    } else {
        for (int64_t j = 0; j < n; j += 16) {
            __mmask16 k = tail(n - j);
            __m512 e = exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p + j), m), sc));
            e = _mm512_maskz_mov_ps(k, e);
            sum = _mm512_add_ps(sum, e);
            _mm512_mask_storeu_ps(p + j, k, e);
        }
    }
    float Z = _mm512_reduce_add_ps(sum) + es;
    __m512 inv = _mm512_set1_ps(1.0f / Z);
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
    return sink ? -(double)(es / Z) * (double)_mm512_cvtss_f32(D) : 0.0;
}
