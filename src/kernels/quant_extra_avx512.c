/*
 * quant_extra_avx512.c - the quantized matmul with AVX-512 VL + VNNI for
 * Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K and IQ4_XS weights (quant_avx512.c
 * has the others and hands these here, except the 32-block types' products
 * of 2 or more x rows, which it sends to quant_r16_avx512.c):
 * quant_extra_kern.h's kernels with the 32-value products on vpdpbusd;
 * IQ4_XS products of several x rows go to quant_r16k_avx512.c.
 */
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#else
#pragma GCC target("avx512vnni")
#endif

/* IQ4_XS products of this many x rows or more go to the interleaved 16-row
 * kernel (quant_r16k_avx512.c). One core, cold [768][2048], us, these
 * kernels -> r16k: 2 rows 89 -> 75, 3 rows 109 -> 87, 4 rows 131 -> 90, 8
 * rows 273 -> 122, 16 rows 566 -> 193, 64 rows 2155 -> 634, 256 rows 9409
 * -> 2571. */
#define IQ4XS_R16_MIN_N 2

#define DOT32_I32(a, b) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (a), (b))
#include "kernels/quant_extra_kern.h"

void avx512_extra_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    if (r1 <= r0) return;
    if (j->n == 1 && avx512_extra_gemv(j, r0, r1)) return; /* quant_extra_gemv_avx512.c */
    if (j->type == QT_IQ4_XS && j->n >= IQ4XS_R16_MIN_N) { /* quant_r16k_avx512.c */
        avx512_rows_r16k(j, r0, r1);
        return;
    }
    xk_qmm_rows(j, r0, r1);
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
