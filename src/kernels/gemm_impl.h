/*
 * gemm_impl.h - the register-tile micro-kernels and packing routines behind
 * gemm.h (gemm.c), one file per ISA. Internal to src/kernels/.
 *
 * A micro-kernel computes one tile C[mr][nr] += sum_k a(r,k) * b[k][j]
 * (r < mr <= MR, j < nr <= NR, k < kc):
 *   a(r,k) = a[r*sm + k*sk]  the tile's A rows, read in place, with either
 *            sm == 1 (columns contiguous: a packed panel [kc][MR], or A^T
 *            in place; then all MR rows must be readable) or sk == 1 (rows
 *            contiguous; rows past mr are not read);
 *   bp [kc][NR]  the B columns of the tile, packed, row k contiguous
 *            (columns past nr are zero);
 *   c        C's tile, row stride ldc; only [mr][nr] is touched: the sums
 *            are added to it (add != 0) or stored over it (add == 0).
 * Sums run over k in order, in f32 FMA (AVX) or f32 multiply-add (generic).
 */
#ifndef MOE_KERNELS_GEMM_IMPL_H
#define MOE_KERNELS_GEMM_IMPL_H

#include <stdint.h>

typedef void (*gemm_ukernel_fn)(int64_t kc, const float *a, int64_t sm, int64_t sk,
                                const float *bp, float *c, int64_t ldc, int mr, int nr, int add);

#define GEMM_MR_AVX512 12
#define GEMM_NR_AVX512 32
#define GEMM_MR_AVX2 6
#define GEMM_NR_AVX2 16
#define GEMM_MR_MAX 12

void gemm_ukernel_avx512(int64_t kc, const float *a, int64_t sm, int64_t sk, const float *bp,
                         float *c, int64_t ldc, int mr, int nr, int add);
/* B^T packing: dst[k][NR] (k < kc) = b[j*bs_n + k] for j < w, zero for
 * w <= j < GEMM_NR_AVX512 (16 x 16 register transposes). */
void gemm_pack_bt_avx512(float *dst, const float *b, int64_t bs_n, int64_t kc, int w);
/* B packing with rows along n: dst[k][NR] = b[k*bs_k + j] for j < w, zero
 * for w <= j < GEMM_NR_AVX512. */
void gemm_pack_b_avx512(float *dst, const float *b, int64_t bs_k, int64_t kc, int w);
/* A packing, columns contiguous: dst[k][MR] = a[k*as_k + r] for r < mr,
 * zero for mr <= r < GEMM_MR_AVX512 (one masked move per k). */
void gemm_pack_a_avx512(float *dst, const float *a, int64_t as_k, int64_t kc, int mr);
void gemm_ukernel_avx2(int64_t kc, const float *a, int64_t sm, int64_t sk, const float *bp,
                       float *c, int64_t ldc, int mr, int nr, int add);

#endif
