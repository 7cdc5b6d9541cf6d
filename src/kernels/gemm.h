/*
 * gemm.h - the blocked f32 GEMM behind the training step's products and
 * the forward's big-batch matmuls:
 *
 *   C[M][N] (row stride ldc) = or += sum_{k<K} A(m,k) B(k,n)
 *   A(m,k) = A[m*as_m + k*as_k],  B(k,n) = B[k*bs_k + n*bs_n]
 *
 * Any strides: linear_backward's dx = dy W and dW = dy^T x, attention's
 * Q K^T and P V, the forward's y = x W^T (B = W^T: bs_k = 1) are all this.
 * GotoBLAS order: C is cut into tiles (one pool item each: race-free), an
 * item walks K in KC blocks, packs B's KC x NC panel into NR-wide strips
 * and runs the ISA's register-tile micro-kernel (AVX-512 12 x 32, AVX2
 * 6 x 16, scalar 4 x 16) over each MR rows of A and each strip. Every
 * element of C sums its k's in ascending order (in KC blocks) whichever
 * thread runs its tile, so results do not depend on the thread count.
 */
#ifndef MOE_KERNELS_GEMM_H
#define MOE_KERNELS_GEMM_H

#include <stdint.h>

#include "base/pool.h"

typedef struct gemm_op {
    float *C;         /* [M][ldc] */
    int64_t ldc;
    const float *A;   /* A(m,k) = A[m*as_m + k*as_k] */
    int64_t as_m, as_k;
    const float *B;   /* B(k,n) = B[k*bs_k + n*bs_n] */
    int64_t bs_k, bs_n;
    int64_t M, N, K;
    int set;          /* 1: C = A B (its old contents never read); 0: C += A B */
    const float *B2;  /* NULL, or B's rows k >= k_split come from here: */
    int64_t k_split;  /* B(k,n) = B2[(k - k_split)*bs_k + n*bs_n] (two stacked matrices) */
} gemm_op;

/* Independent products in one parallel region over the pool (may be NULL;
 * its kernel choice picks the micro-kernel);
 * no two may write the same C elements. Ops with M, N or K <= 0 do
 * nothing, except that a `set` op with K <= 0 zeroes its C. */
void gemm_run(pool *p, const gemm_op *ops, int n_ops);

/* One product on the calling thread (inside a pool item): C += A B, and
 * C = A B, with kernel choice k (the pool's: kern_of; NULL = the default).
 * pack: that thread's scratch of gemm_scratch_bytes(), 64-byte aligned
 * (kern_scratch). */
struct kern_cfg;
void gemm_acc(const struct kern_cfg *k, float *C, int64_t ldc, const float *A, int64_t as_m,
              int64_t as_k, const float *B, int64_t bs_k, int64_t bs_n, int64_t M, int64_t N,
              int64_t K, float *pack);
void gemm_set(const struct kern_cfg *k, float *C, int64_t ldc, const float *A, int64_t as_m,
              int64_t as_k, const float *B, int64_t bs_k, int64_t bs_n, int64_t M, int64_t N,
              int64_t K, float *pack);
/* Scratch bytes one thread's products need (packed blocks). */
size_t gemm_scratch_bytes(void);

#endif
