/*
 * quant_extra_avx2.c - the quantized matmul with AVX2 for Q4_1, Q5_0,
 * Q5_1, IQ4_NL, Q2_K, Q3_K and IQ4_XS weights (quant_avx2.c has the others
 * and hands these here): decode (one row of x) to quant_extra_gemv_avx2.c,
 * a few rows to quant_extra_kern.h's kernels with the 32-value products on
 * vpmaddubsw + vpmaddwd.
 */
#include <immintrin.h>

#define DOT32_I32(a, b) _mm256_madd_epi16(_mm256_maddubs_epi16((a), (b)), _mm256_set1_epi16(1))
#include "kernels/quant_extra_kern.h"

void avx2_extra_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    if (j->n == 1 && r1 > r0 && avx2_extra_gemv(j, r0, r1)) return;
    xk_qmm_rows(j, r0, r1);
}
