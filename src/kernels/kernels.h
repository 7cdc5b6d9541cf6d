/*
 * kernels.h - the numeric kernels the model is built from.
 *
 * Every kernel has a slow, obvious reference (kernels_ref.c) and fast paths
 * (AVX-512, AVX2) chosen once at run time from the CPU's features; tests hold
 * each fast path to its reference. Weights may be F32, BF16 or F16 and are
 * widened to f32 exactly; activations and accumulation are f32.
 *
 * Shapes: x [n][in] activations (row-major), W [out][in] a weight matrix in
 * the Hugging Face nn.Linear layout, y [n][out]. y = x W^T.
 */
#ifndef MOE_KERNELS_H
#define MOE_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "base/dtype.h"
#include "base/pool.h"

/* A weight matrix as stored: W[rows][cols], rows = outputs, cols = inputs. */
typedef struct mat {
    const void *data; /* rows * cols elements of `type`, row-major */
    dtype type;
    int64_t rows, cols;
} mat;

typedef enum { ISA_SCALAR = 0, ISA_AVX2, ISA_AVX512, ISA_COUNT } isa;

/* Pick the best ISA this CPU supports (or the one named by the environment
 * variable MOE_ISA=scalar|avx2|avx512 when the CPU has it). Idempotent;
 * called by everything that uses the kernels. */
void kernels_init(void);
isa kernels_isa(void);
const char *isa_name(isa i);
/* Force an ISA (tests). Returns -1 if the CPU lacks it. */
int kernels_set_isa(isa i);

/* Scratch of `bytes` for thread tid of pool p (tid -1: the pool's shared
 * region): the pool's own when it reserved enough, else a 64-byte-aligned
 * block allocated here and put in *own, which the caller frees after use
 * (pools without a reservation, a NULL pool). NULL when out of memory. */
void *kern_scratch(pool *p, int tid, size_t bytes, void **own);

/* Bytes of scratch each thread of a pool needs so that no kernel allocates:
 * the widened-weight panel, the GEMM's packed blocks, and attention of
 * blocks of max_queries over up to max_keys keys of head_dim (pool_reserve's
 * per_thread). */
size_t kernels_thread_scratch(int max_queries, int max_keys, int head_dim);

/* y[n][W.rows] = x[n][W.cols] W^T, threaded over the pool (may be NULL). */
void matmul(pool *p, float *y, const float *x, const mat *W, int64_t n);

/* The same, single-threaded scalar reference (in double accumulation is NOT
 * used: plain f32 sums in index order). */
void matmul_ref(float *y, const float *x, const mat *W, int64_t n);

/* Grouped matmul: many independent y_g = x_g W_g^T in one threaded call, so
 * that small per-expert problems share one parallel region. */
typedef struct mm_task {
    const mat *W;   /* [out][in] */
    const float *x; /* [n][in] */
    float *y;       /* [n][out] */
    int64_t n;      /* rows of x; 0 = skipped */
} mm_task;
void matmul_grouped(pool *p, const mm_task *tasks, int n_tasks);

/* Row i of W widened to f32: dst[W.cols]. (Embedding lookup.) */
void mat_row_f32(float *dst, const mat *W, int64_t row);

/* ----------------------------------------------------------- vector ops */

/* y = x / sqrt(mean(x^2) + eps) * w, over n elements (y may alias x). */
void rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* In place softmax over n elements (max-subtracted). */
void softmax(float *x, int n);
/* g[i] = silu(g[i]) * u[i] */
void silu_mul(float *g, const float *u, int n);
/* y[i] += a * x[i] */
void axpy(float *y, float a, const float *x, int n);
/* dot product */
float dot(const float *a, const float *b, int n);

/* NeoX-style rotary embedding in place on one head vector x[head_dim]:
 * pairs (i, i + head_dim/2) rotated by pos * theta^(-2i/head_dim).
 * cos/sin tables [head_dim/2] for this position are passed in. */
void rope_apply(float *x, const float *cos_t, const float *sin_t, int head_dim);
/* Fill cos/sin [head_dim/2] for position pos. Computed as HF does: the
 * inverse frequency in float32, the angle pos*inv_freq in float32. */
void rope_table(float *cos_t, float *sin_t, int pos, int head_dim, float theta);

#endif
