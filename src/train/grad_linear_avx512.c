/*
 * grad_linear_avx512.c - the AVX-512 micro-kernel of linear_backward and
 * attention_backward: a 12 x 32 tile of C in 24 zmm accumulators. Per k:
 * two B vectors loaded, twelve A values broadcast, 24 FMAs, so the loop is
 * bound by the FMA units rather than by loads. A is read in place with its
 * columns contiguous (sm == 1: packed panels, or A^T) or its rows
 * contiguous (sk == 1: twelve row streams). Called only when kernels_isa()
 * is ISA_AVX512.
 */
#include <immintrin.h>

#include "train/grad_linear_impl.h"

#define MR GEMM_MR_AVX512
#define NR GEMM_NR_AVX512
#define AI static inline __attribute__((always_inline))

AI void store_tile(__m512 acc[MR][2], float *c, int64_t ldc, int mr, int nr) {
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        if (r >= mr) break;
        float *cr = c + r * ldc;
        if (nr == NR) {
            _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(cr), acc[r][0]));
            _mm512_storeu_ps(cr + 16, _mm512_add_ps(_mm512_loadu_ps(cr + 16), acc[r][1]));
        } else {
            _mm512_mask_storeu_ps(cr, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), acc[r][0]));
            _mm512_mask_storeu_ps(cr + 16, m1,
                                  _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), acc[r][1]));
        }
    }
}

/* ROW: a(r,k) = a[r*sm + k]; otherwise a(r,k) = a[k*sk + r]. */
AI void ukernel(const int ROW, int64_t kc, const float *a, int64_t sm, int64_t sk,
                const float *bp, float *c, int64_t ldc, int mr, int nr) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const float *ar[MR];
    if (ROW)
        for (int r = 0; r < MR; r++) ar[r] = a + (r < mr ? r : mr - 1) * sm;
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(ROW ? ar[r][k] : a[r]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
        if (!ROW) a += sk;
        bp += NR;
    }
    store_tile(acc, c, ldc, mr, nr);
}

void gemm_ukernel_avx512(int64_t kc, const float *a, int64_t sm, int64_t sk, const float *bp,
                         float *c, int64_t ldc, int mr, int nr) {
    if (sm == 1)
        ukernel(0, kc, a, sm, sk, bp, c, ldc, mr, nr);
    else
        ukernel(1, kc, a, sm, sk, bp, c, ldc, mr, nr);
}
