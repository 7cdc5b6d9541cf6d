/*
 * quant.c - the quantized types' traits table, and the quantized matmuls:
 * which ISA runs them, and how they are threaded.
 *
 * The ISA follows kernels_isa() (so MOE_ISA and kernels_set_isa() steer
 * both), except that the AVX-512 path also needs AVX512_VNNI (vpdpbusd);
 * without it AVX-512 machines run the AVX2 path.
 *
 * Threading is kernels.c's: the activations are quantized once (over the
 * pool when there are many rows), then the output rows of W are split into
 * units of QROW_UNIT rows, so each thread streams its own slice of W once
 * for all n rows of x. The grouped call turns every (task, row unit) into one
 * item of a single pool_for.
 */
#include <stdatomic.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/quant_impl.h"

/* Rows of W per unit of work: a multiple of every fast kernel's row tile. */
#define QROW_UNIT 16
/* At least this much work per pool chunk (bytes of W plus one per
 * multiply-add), so the atomic hand-out is noise. */
#define MIN_CHUNK_WORK (48 * 1024)
/* Quantize activations over the pool only from this many values on: below
 * it a parallel region costs more than it saves. */
#define QACT_PARALLEL_MIN (64 * 1024)
/* qmatmul_grouped hands out at most this many tasks per pool_for. */
#define GROUP_MAX 512

/* --------------------------------------------------------------- traits */

static void deq_q4_0(const void *s, float *d, int64_t k) { dequantize_row_q4_0(s, d, k); }
static void deq_q8_0(const void *s, float *d, int64_t k) { dequantize_row_q8_0(s, d, k); }
static void deq_q4_K(const void *s, float *d, int64_t k) { dequantize_row_q4_K(s, d, k); }
static void deq_q5_K(const void *s, float *d, int64_t k) { dequantize_row_q5_K(s, d, k); }
static void deq_q6_K(const void *s, float *d, int64_t k) { dequantize_row_q6_K(s, d, k); }
static void qnt_q4_0(const float *s, void *d, int64_t k) { quantize_row_q4_0_ref(s, d, k); }
static void qnt_q8_0(const float *s, void *d, int64_t k) { quantize_row_q8_0_ref(s, d, k); }
static void qnt_q4_K(const float *s, void *d, int64_t k) { quantize_row_q4_K_ref(s, d, k); }
static void qnt_q5_K(const float *s, void *d, int64_t k) { quantize_row_q5_K_ref(s, d, k); }
static void qnt_q6_K(const float *s, void *d, int64_t k) { quantize_row_q6_K_ref(s, d, k); }

static const qtype_traits g_traits[] = {
    {"q4_0", QT_Q4_0, QK4_0, sizeof(block_q4_0), deq_q4_0, qnt_q4_0, ref_vec_dot_q4_0},
    {"q8_0", QT_Q8_0, QK8_0, sizeof(block_q8_0), deq_q8_0, qnt_q8_0, ref_vec_dot_q8_0},
    {"q4_K", QT_Q4_K, QK_K, sizeof(block_q4_K), deq_q4_K, qnt_q4_K, ref_vec_dot_q4_K},
    {"q5_K", QT_Q5_K, QK_K, sizeof(block_q5_K), deq_q5_K, qnt_q5_K, ref_vec_dot_q5_K},
    {"q6_K", QT_Q6_K, QK_K, sizeof(block_q6_K), deq_q6_K, qnt_q6_K, ref_vec_dot_q6_K},
};

const qtype_traits *quant_traits(int type) {
    for (size_t i = 0; i < sizeof g_traits / sizeof g_traits[0]; i++)
        if (g_traits[i].type == type) return &g_traits[i];
    return NULL;
}

size_t quant_row_bytes(int type, int64_t cols) {
    const qtype_traits *t = quant_traits(type);
    if (!t || cols <= 0 || cols % t->block_elems) return 0;
    return (size_t)(cols / t->block_elems) * (size_t)t->block_bytes;
}

/* ------------------------------------------------------ activation sizes */

size_t qact_row_stride(int type, int64_t cols) {
    if (type == QT_Q4_0 || type == QT_Q8_0) return (QX32_ROW_BYTES(cols / 32) + 63) / 64 * 64;
    return (size_t)(cols / QK_K) * sizeof(qx_k);
}

size_t qact_size(int type, int64_t n, int64_t cols) {
    if (n <= 0) return 64;
    return (size_t)n * qact_row_stride(type, cols) + 64;
}

size_t qmatmul_scratch_size(int type, int64_t n, int64_t cols) { return qact_size(type, n, cols); }

static inline uint8_t *align64(void *p) {
    return (uint8_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* ------------------------------------------------------------ dispatch */

typedef struct {
    qmm_rows_fn rows;
    qact_row_fn act;
} qkern;

static const qkern g_kern[ISA_COUNT] = {
    [ISA_SCALAR] = {ref_qmm_rows, ref_qact_row},
    [ISA_AVX2] = {avx2_qmm_rows, avx2_qact_row},
    [ISA_AVX512] = {avx512_qmm_rows, avx512_qact_row},
};

static atomic_int g_vnni = -1; /* -1 = not checked yet */

static int cpu_has_vnni(void) {
    int v = atomic_load_explicit(&g_vnni, memory_order_relaxed);
    if (v < 0) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512vnni") ? 1 : 0;
#else
        v = 0;
#endif
        atomic_store_explicit(&g_vnni, v, memory_order_relaxed);
    }
    return v;
}

static const qkern *qkern_now(void) {
    isa i = kernels_isa();
    if (i == ISA_AVX512 && !cpu_has_vnni()) i = ISA_AVX2;
    return &g_kern[i];
}

/* ------------------------------------------------------- quantize x */

typedef struct {
    qact_row_fn act;
    uint8_t *xq;
    size_t stride;
    const float *x;
    int type;
    int64_t cols;
} act_ctx;

static void act_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const act_ctx *c = vc;
    for (int64_t i = i0; i < i1; i++)
        c->act(c->xq + (size_t)i * c->stride, c->x + i * c->cols, c->type, c->cols);
}

void qact_quantize(pool *p, void *xq, const float *x, int type, int64_t n, int64_t cols) {
    if (n <= 0) return;
    act_ctx c = {qkern_now()->act, align64(xq), qact_row_stride(type, cols), x, type, cols};
    if (n * cols < QACT_PARALLEL_MIN) {
        act_chunk(&c, 0, n, 0);
        return;
    }
    int64_t grain = (QACT_PARALLEL_MIN / 4 + cols - 1) / cols;
    pool_for(p, n, grain, act_chunk, &c);
}

/* ------------------------------------------------------------- matmul */

/* Work of one row unit: bytes of W plus one per multiply-add. */
static int64_t unit_work(const qmm_job *j) { return QROW_UNIT * ((int64_t)j->w_row + j->n * j->cols); }

static qmm_job make_job(float *y, const void *xq, const void *W, int type, int64_t n, int64_t rows,
                        int64_t cols) {
    qmm_job j = {y, align64((void *)xq), W, type, n, rows, cols, qact_row_stride(type, cols),
                 quant_row_bytes(type, cols)};
    return j;
}

typedef struct {
    qmm_rows_fn fn;
    const qmm_job *job;
} mm_ctx;

static void mm_chunk(void *vc, int64_t b0, int64_t b1, int tid) {
    const mm_ctx *c = vc;
    int64_t r0 = b0 * QROW_UNIT, r1 = b1 * QROW_UNIT;
    if (r1 > c->job->rows) r1 = c->job->rows;
    c->fn(c->job, r0, r1);
}

void qmatmul_q(pool *p, float *y, const void *xq, const void *W, int type, int64_t n, int64_t rows,
               int64_t cols) {
    if (n <= 0 || rows <= 0 || !quant_row_bytes(type, cols)) return;
    qmm_job j = make_job(y, xq, W, type, n, rows, cols);
    mm_ctx c = {qkern_now()->rows, &j};
    int64_t units = (rows + QROW_UNIT - 1) / QROW_UNIT;
    int64_t grain = (MIN_CHUNK_WORK + unit_work(&j) - 1) / unit_work(&j);
    pool_for(p, units, grain < 1 ? 1 : grain, mm_chunk, &c);
}

void qmatmul(pool *p, float *y, const float *x, const void *W, int type, int64_t n, int64_t rows,
             int64_t cols, void *scratch) {
    if (n <= 0 || rows <= 0 || !quant_row_bytes(type, cols)) return;
    qact_quantize(p, scratch, x, type, n, cols);
    qmatmul_q(p, y, scratch, W, type, n, rows, cols);
}

void qmatmul_ref(float *y, const float *x, const void *W, int type, int64_t n, int64_t rows,
                 int64_t cols, void *scratch) {
    if (n <= 0 || rows <= 0 || !quant_row_bytes(type, cols)) return;
    qmm_job j = make_job(y, scratch, W, type, n, rows, cols);
    for (int64_t i = 0; i < n; i++) ref_qact_row((uint8_t *)j.xq + (size_t)i * j.xq_row, x + i * cols, type, cols);
    ref_qmm_rows(&j, 0, rows);
}

/* ------------------------------------------------------- grouped matmul */

static int task_live(const qmm_task *t) {
    return t->n > 0 && t->rows > 0 && quant_row_bytes(t->type, t->cols) != 0;
}

size_t qmatmul_grouped_scratch_size(const qmm_task *tasks, int n_tasks) {
    size_t s = 64;
    for (int i = 0; i < n_tasks; i++)
        if (task_live(&tasks[i])) s += (size_t)tasks[i].n * qact_row_stride(tasks[i].type, tasks[i].cols);
    return s;
}

typedef struct {
    qmm_rows_fn fn;
    qact_row_fn act;
    const qmm_task *tasks;
    const qmm_job *jobs;  /* [n_tasks] */
    const int64_t *start; /* [n_tasks + 1] first item of each task */
    const int64_t *rpu;   /* [n_tasks] rows per item (matmul phase) */
    int n_tasks;
} grp_ctx;

/* Task of item u: the last t with start[t] <= u (binary search). */
static int grp_task(const grp_ctx *c, int64_t u) {
    int lo = 0, hi = c->n_tasks - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (c->start[mid + 1] <= u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Items are rows of x. */
static void grp_act_chunk(void *vc, int64_t u0, int64_t u1, int tid) {
    const grp_ctx *c = vc;
    int t = grp_task(c, u0);
    for (int64_t u = u0; u < u1; u++) {
        while (c->start[t + 1] <= u) t++;
        const qmm_job *j = &c->jobs[t];
        int64_t i = u - c->start[t];
        c->act((uint8_t *)j->xq + (size_t)i * j->xq_row, c->tasks[t].x + i * j->cols, j->type, j->cols);
    }
}

/* Items are row units of W. */
static void grp_mm_chunk(void *vc, int64_t u0, int64_t u1, int tid) {
    const grp_ctx *c = vc;
    int t = grp_task(c, u0);
    for (int64_t u = u0; u < u1; u++) {
        while (c->start[t + 1] <= u) t++;
        const qmm_job *j = &c->jobs[t];
        int64_t r0 = (u - c->start[t]) * c->rpu[t];
        int64_t r1 = r0 + c->rpu[t];
        c->fn(j, r0, r1 < j->rows ? r1 : j->rows);
    }
}

void qmatmul_grouped(pool *p, const qmm_task *tasks, int n_tasks, void *scratch) {
    const qkern *k = qkern_now();
    qmm_job jobs[GROUP_MAX];
    int64_t start[GROUP_MAX + 1], rpu[GROUP_MAX];
    int nth = pool_size(p);
    uint8_t *xq = align64(scratch);
    for (int t0 = 0; t0 < n_tasks; t0 += GROUP_MAX) {
        int m = n_tasks - t0 < GROUP_MAX ? n_tasks - t0 : GROUP_MAX;
        const qmm_task *ts = tasks + t0;
        /* Phase 1: every live task's x into its slice of the scratch. */
        int64_t values = 0, work = 0;
        start[0] = 0;
        for (int i = 0; i < m; i++) {
            const qmm_task *t = &ts[i];
            int live = task_live(t);
            jobs[i] = live ? make_job(t->y, xq, t->W, t->type, t->n, t->rows, t->cols) : (qmm_job){0};
            if (live) {
                xq += (size_t)t->n * jobs[i].xq_row;
                values += t->n * t->cols;
                work += t->rows * ((int64_t)jobs[i].w_row + t->n * t->cols);
            }
            start[i + 1] = start[i] + (live ? t->n : 0);
        }
        if (start[m] == 0) continue;
        grp_ctx c = {k->rows, k->act, ts, jobs, start, rpu, m};
        if (values < QACT_PARALLEL_MIN)
            grp_act_chunk(&c, 0, start[m], 0);
        else
            pool_for(p, start[m], 1, grp_act_chunk, &c);
        /* Phase 2: about 4 items per thread overall, each at least
         * MIN_CHUNK_WORK and a whole number of QROW_UNITs. */
        int64_t target = work / (4 * (int64_t)nth);
        if (target < MIN_CHUNK_WORK) target = MIN_CHUNK_WORK;
        for (int i = 0; i < m; i++) {
            int64_t items = 0;
            rpu[i] = QROW_UNIT;
            if (jobs[i].n > 0) {
                int64_t per_row = (int64_t)jobs[i].w_row + jobs[i].n * jobs[i].cols;
                int64_t r = (target + per_row - 1) / per_row;
                r = (r + QROW_UNIT - 1) / QROW_UNIT * QROW_UNIT;
                if (r > jobs[i].rows) r = jobs[i].rows;
                rpu[i] = r;
                items = (jobs[i].rows + r - 1) / r;
            }
            start[i + 1] = start[i] + items;
        }
        pool_for(p, start[m], 1, grp_mm_chunk, &c);
    }
}
