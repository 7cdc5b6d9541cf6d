/*
 * quant_iq.h - the tables of ggml's grid i-quants (generated into
 * quant_iq_grids.c by tools/gen_iq_grids.py) and the kernels of those
 * types that quant.c dispatches to. Internal to src/kernels/; the block
 * layouts and the contract are in quant.h.
 *
 * A group of 8 (IQ2_*, IQ1_*) or 4 (IQ3_*) values is one grid row chosen by
 * an index stored in the block, times a sign per value, times a sub-block
 * scale: IQ2_XXS / IQ3_XXS store 7 sign bits per 8 values (iq_ksigns gives
 * the 8th: an even number of minus signs), IQ2_S / IQ3_S store all 8, and
 * IQ1_S / IQ1_M store none (their grid values are -1, 0, 1, shifted by
 * +-1/8 per group instead).
 */
#ifndef MOE_KERNELS_QUANT_IQ_H
#define MOE_KERNELS_QUANT_IQ_H

#include <stdint.h>

#include "kernels/quant_impl.h"

extern const uint8_t iq2xxs_grid[256][8];
extern const uint8_t iq2xs_grid[512][8];
extern const uint8_t iq2s_grid[1024][8];
extern const uint8_t iq3xxs_grid[256][4];
extern const uint8_t iq3s_grid[512][4];
extern const int8_t iq1s_grid[2048][8];
extern const uint8_t iq_ksigns[128];
extern const int8_t iq_ksigns8[128][8]; /* iq_ksigns as +1 / -1 multipliers */

/* Whether `type` is one of the grid i-quants. */
static inline int qt_is_iq(int type) {
    return type == QT_IQ2_XXS || type == QT_IQ2_XS || type == QT_IQ3_XXS || type == QT_IQ1_S ||
           type == QT_IQ3_S || type == QT_IQ2_S || type == QT_IQ1_M;
}

/* Scalar reference dot products against Q8_K activations (quant_iq.c). */
float ref_vec_dot_iq2_xxs(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_iq2_xs(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_iq2_s(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_iq3_xxs(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_iq3_s(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_iq1_s(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_iq1_m(const void *w, const void *xq, int64_t cols);

/* The rows of a job of i-quant weights on AVX2 / AVX-512 (quant_iq_avx2.c,
 * quant_iq_avx512.c; a job of another type goes to the scalar reference):
 * quant.c sends the i-quants' jobs here, and the scalar path's to
 * ref_qmm_rows. */
void avx2_iq_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1);
void avx512_iq_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1);

#endif
