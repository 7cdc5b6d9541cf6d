/*
 * grad_linear_impl.h - the register-tile micro-kernels behind
 * linear_backward (grad_linear.c), one per ISA file. Internal to src/train/.
 *
 * A micro-kernel computes one tile C[mr][nr] += sum_k a(r,k) * b[k][j]
 * (r < mr <= MR, j < nr <= NR, k < kc):
 *   a(r,k) = a[r*sm + k*sk]  the tile's A rows, read in place, with either
 *            sm == 1 (columns contiguous: a packed panel [kc][MR], or A^T
 *            in place; then all MR rows must be readable) or sk == 1 (rows
 *            contiguous; rows past mr are not read);
 *   bp [kc][NR]  the B columns of the tile, packed, row k contiguous
 *            (columns past nr are zero);
 *   c        C's tile, row stride ldc; only [mr][nr] is touched.
 * Sums run over k in order, in f32 FMA (AVX) or f32 multiply-add (generic).
 */
#ifndef MOE_TRAIN_GRAD_LINEAR_IMPL_H
#define MOE_TRAIN_GRAD_LINEAR_IMPL_H

#include <stdint.h>

typedef void (*gemm_ukernel_fn)(int64_t kc, const float *a, int64_t sm, int64_t sk,
                                const float *bp, float *c, int64_t ldc, int mr, int nr);

#define GEMM_MR_AVX512 12
#define GEMM_NR_AVX512 32
#define GEMM_MR_AVX2 6
#define GEMM_NR_AVX2 16
#define GEMM_MR_MAX 12

/* C[M][N] (row stride ldc) += sum_{k<K} A(m,k) B(k,n) with
 * A(m,k) = A[m*as_m + k*as_k] and B(k,n) = B[k*bs_k + n*bs_n]: the blocked
 * kernel of linear_backward, single-threaded (run it inside a pool item;
 * it uses the calling thread's packing buffers). Used by attention. */
void gemm_acc(float *C, int64_t ldc, const float *A, int64_t as_m, int64_t as_k, const float *B,
              int64_t bs_k, int64_t bs_n, int64_t M, int64_t N, int64_t K);

void gemm_ukernel_avx512(int64_t kc, const float *a, int64_t sm, int64_t sk, const float *bp,
                         float *c, int64_t ldc, int mr, int nr);
void gemm_ukernel_avx2(int64_t kc, const float *a, int64_t sm, int64_t sk, const float *bp,
                       float *c, int64_t ldc, int mr, int nr);

#endif
