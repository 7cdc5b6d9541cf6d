/*
 * gemm_avx2.c - the AVX2 micro-kernel of gemm.h: a 6 x 16 tile of C in 12
 * ymm accumulators (of 16 registers: two B vectors and one broadcast left). A is read in place as
 * in the AVX-512 kernel (columns or rows contiguous). Called only when
 * the kernel choice is ISA_AVX2.
 */
#include <immintrin.h>

#include "kernels/gemm_impl.h"

#define MR GEMM_MR_AVX2
#define NR GEMM_NR_AVX2
#define AI static inline __attribute__((always_inline))

AI void ukernel(const int ROW, int64_t kc, const float *a, int64_t sm, int64_t sk,
                const float *bp, float *c, int64_t ldc, int mr, int nr, int add) {
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float *ar[MR];
    if (ROW)
        for (int r = 0; r < MR; r++) ar[r] = a + (r < mr ? r : mr - 1) * sm;
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            __m256 av = _mm256_broadcast_ss(ROW ? ar[r] + k : a + r);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
        if (!ROW) a += sk;
        bp += NR;
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        if (r >= mr) break;
        float *cr = c + r * ldc;
        if (nr == NR && add) {
            _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), acc[r][0]));
            _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), acc[r][1]));
        } else if (nr == NR) {
            _mm256_storeu_ps(cr, acc[r][0]);
            _mm256_storeu_ps(cr + 8, acc[r][1]);
        } else {
            float t[NR];
            _mm256_storeu_ps(t, acc[r][0]);
            _mm256_storeu_ps(t + 8, acc[r][1]);
            for (int j = 0; j < nr; j++) cr[j] = add ? cr[j] + t[j] : t[j];
        }
    }
}

void gemm_ukernel_avx2(int64_t kc, const float *a, int64_t sm, int64_t sk, const float *bp,
                       float *c, int64_t ldc, int mr, int nr, int add) {
    if (sm == 1)
        ukernel(0, kc, a, sm, sk, bp, c, ldc, mr, nr, add);
    else
        ukernel(1, kc, a, sm, sk, bp, c, ldc, mr, nr, add);
}
