/*
 * kernels.h - the numeric kernels the model is built from.
 *
 * Every kernel has a slow, obvious reference (kernels_ref.c) and fast paths
 * (AVX-512, AVX2); tests hold each fast path to its reference. Weights may
 * be F32, BF16 or F16 and are widened to f32 exactly; activations and
 * accumulation are f32.
 *
 * Which path runs is a kernel choice (kern_cfg): an entry of a constant
 * table, never written. The CPU's features and the process default (the
 * best path the CPU has, or the one MOE_ISA / MOE_AMX name) are detected
 * once (pthread_once) and read-only afterwards. A pool carries the choice
 * of whoever owns it (pool_set_kern: a session sets its own at creation),
 * and every kernel that runs on a pool reads it there once per call
 * (kern_of; a NULL pool, or a pool nobody set, runs the process default).
 * So two sessions with different choices run side by side on different
 * threads, and nothing is switched globally.
 *
 * The vector ops that have fast paths (softmax, silu_mul, axpy, dot and
 * vmath.h's) are called per row inside pool callbacks, so they take the
 * choice as their first argument rather than a pool: the caller reads
 * kern_of(pool) once per call and keeps it in the callback's context. NULL
 * there also means the process default (tools, tests).
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

/* What this CPU (and OS) can run, detected once. */
typedef struct kern_cpu {
    int avx2;   /* AVX2 + FMA + F16C */
    int avx512; /* AVX-512 F, BW, VL, DQ (and the AVX2 set) */
    int vnni;   /* AVX512_VNNI: the AVX-512 quantized kernels (else AVX2's) */
    int vbmi;   /* AVX512_VBMI: the AVX-512 Q4_0 GEMV */
    int amx;    /* AMX-INT8, with the OS's permission for the tile state */
    int avxvnni; /* AVX-VNNI (vpdpbusd on 256 bits, VEX): the AVX2 quantized products */
} kern_cpu;

/* A kernel choice: one entry of a constant table (compare pointers). */
typedef struct kern_cfg {
    isa isa;  /* the f32 and vector kernels' path */
    int amx;  /* Q4_0 / Q8_0 / Q4_K products with several rows of x on AMX-INT8 */
    int vbmi; /* the AVX-512 Q4_0 GEMV may use AVX512_VBMI */
    int avxvnni; /* the AVX2 path's quantized products may use AVX-VNNI */
} kern_cfg;

const kern_cpu *kernels_cpu(void);
/* The process default: the best ISA the CPU has, or the one named by
 * MOE_ISA=scalar|avx2|avx512 when the CPU has it; AMX unless MOE_AMX=0;
 * VBMI where the CPU has it; on the AVX2 path, AVX-VNNI unless
 * MOE_AVXVNNI=0. */
const kern_cfg *kernels_default(void);
/* The entry for (i, amx, vbmi) without AVX-VNNI, or NULL when the CPU lacks
 * any of it (AMX and VBMI need ISA_AVX512, and AMX the VNNI kernels). */
const kern_cfg *kernels_cfg(isa i, int amx, int vbmi);
/* The AVX2 path with AVX-VNNI, or NULL when the CPU lacks it. */
const kern_cfg *kernels_cfg_avxvnni(void);
/* By name, "scalar", "avx2" or "avx512", with every extra the CPU has and
 * the default allows (AMX unless MOE_AMX=0, VBMI, AVX-VNNI unless
 * MOE_AVXVNNI=0); NULL for an unknown name
 * or a path the CPU lacks. */
const kern_cfg *kernels_named(const char *name);
/* The choice p runs: its owner's (pool_set_kern), else the default. */
const kern_cfg *kern_of(const pool *p);
const char *isa_name(isa i);

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
    const float *x; /* [n][in] (with an mm_idx: [x_rows][in]) */
    float *y;       /* [n][out] */
    int64_t n;      /* rows of x; 0 = skipped */
} mm_task;
/* Rows of x by index (quant.h's qmm_task.idx): row i of the task's x is
 * x[idx[i]], and a shared x is quantized once for all its tasks. Quantized
 * W only, where matmul_idx_ok says so; idx NULL: rows 0..n-1. */
typedef struct mm_idx {
    const int *idx;
    int64_t x_rows;
} mm_idx;
int matmul_idx_ok(pool *p, const mat *W, int64_t n);
/* matmul_grouped with idx[i] for tasks[i] (idx may be NULL). */
void matmul_grouped_idx(pool *p, const mm_task *tasks, const mm_idx *idx, int n_tasks);
void matmul_grouped(pool *p, const mm_task *tasks, int n_tasks);

/* Row i of W widened to f32: dst[W.cols]. (Embedding lookup.) */
void mat_row_f32(float *dst, const mat *W, int64_t row);

/* ----------------------------------------------------------- vector ops */

/* y = x / sqrt(mean(x^2) + eps) * w, over n elements (y may alias x). */
void rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* In place softmax over n elements (max-subtracted). */
void softmax(const kern_cfg *k, float *x, int n);
/* g[i] = silu(g[i]) * u[i] */
void silu_mul(const kern_cfg *k, float *g, const float *u, int n);
/* y[i] += a * x[i] */
void axpy(const kern_cfg *k, float *y, float a, const float *x, int n);
/* dot product */
float dot(const kern_cfg *k, const float *a, const float *b, int n);

/* NeoX-style rotary embedding in place on one head vector x[head_dim]:
 * pairs (i, i + head_dim/2) rotated by pos * theta^(-2i/head_dim).
 * cos/sin tables [head_dim/2] for this position are passed in. */
void rope_apply(float *x, const float *cos_t, const float *sin_t, int head_dim);
/* Fill cos/sin [head_dim/2] for position pos. Computed as HF does: the
 * inverse frequency in float32, the angle pos*inv_freq in float32. */
void rope_table(float *cos_t, float *sin_t, int pos, int head_dim, float theta);

#endif
