/*
 * quant.c - the quantized types' traits table, and the quantized matmuls:
 * which ISA runs them, and how they are threaded.
 *
 * The path is the kernel choice of the pool the call runs on (kernels.h:
 * kern_of), read once per call; the AVX-512 path also needs AVX512_VNNI
 * (vpdpbusd), without it AVX-512 machines run the AVX2 path. Each path's
 * products of the grid i-quants are their own kernels (quant_iq*.c).
 *
 * Threading is kernels.c's: the activations are quantized once (over the
 * pool when there are many rows), then the output rows of W are split into
 * units of QROW_UNIT rows, so each thread streams its own slice of W once
 * for all n rows of x. The grouped call turns every (task, row unit) into one
 * item of a single pool_for.
 *
 * Products of Q4_0 / Q8_0 / Q5_0 / IQ4_NL / Q4_K / Q5_K / Q6_K / Q3_K / IQ4_XS weights with at
 * least QAMX_MIN_N_* rows of x run on AMX when the CPU and OS allow it
 * (quant_amx_avx512.c, quant_amx_k_avx512.c, quant_amx_k6_avx512.c), with the
 * activations quantized straight into AMX's tile layout (quant_impl.h); the
 * same row units and results independent of the thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/quant_iq.h"
#include "kernels/quant_impl.h"

/* Rows of W per unit of work: a multiple of every fast kernel's row tile. */
#define QROW_UNIT 16
/* At least this much work per pool chunk (bytes of W plus one per
 * multiply-add), so the atomic hand-out is noise. */
#define MIN_CHUNK_WORK (48 * 1024)
/* Quantize activations over the pool only from this many values on: below
 * it a parallel region costs more than it saves. */
#define QACT_PARALLEL_MIN (64 * 1024)
/* Row units a packed W's chunk has at least (quant_r8_avx2.c reads 4
 * groups of 8 rows side by side). */
#define PACKED_MIN_UNITS 2
/* qmatmul_grouped hands out at most this many tasks per pool_for, and
 * aims at this many items of work per thread. */
#define GROUP_MAX 512
#define GROUP_ITEMS 8
/* AMX takes a product from this many rows of x on: below it the VNNI
 * kernels win (AMX's per-block scaling costs the same for 1 row as for 16).
 * Crossovers measured on one core with cold weights, as MoE experts and
 * small batches meet them (a [768][2048] matrix, 600 MB of copies; us, AMX
 * against VNNI: Q8_0 at 4 rows 188 / 174, at 5 190 / 231; Q4_0 at 5 154 /
 * 178; Q4_K at 5 195 / 169, at 6 198 / 273; Q6_K at 7 266 / 294; Q5_0 at 2
 * 209 / 423). */
#define QAMX_MIN_N_Q8_0 5
#define QAMX_MIN_N_Q4_0 5
#define QAMX_MIN_N_Q4_K 6
#define QAMX_MIN_N_Q5_K 6
#define QAMX_MIN_N_Q5_0 2
#define QAMX_MIN_N_IQ4_NL 2
#define QAMX_MIN_N_Q6_K 7
#define QAMX_MIN_N_Q3_K 6
#define QAMX_MIN_N_IQ4_XS 5

/* --------------------------------------------------------------- traits */

/* The grid i-quants are read only: no reference quantizer (ggml's need an
 * importance matrix). */
static void deq_iq2_xxs(const void *s, float *d, int64_t k) { dequantize_row_iq2_xxs(s, d, k); }
static void deq_iq2_xs(const void *s, float *d, int64_t k) { dequantize_row_iq2_xs(s, d, k); }
static void deq_iq2_s(const void *s, float *d, int64_t k) { dequantize_row_iq2_s(s, d, k); }
static void deq_iq3_xxs(const void *s, float *d, int64_t k) { dequantize_row_iq3_xxs(s, d, k); }
static void deq_iq3_s(const void *s, float *d, int64_t k) { dequantize_row_iq3_s(s, d, k); }
static void deq_iq1_s(const void *s, float *d, int64_t k) { dequantize_row_iq1_s(s, d, k); }
static void deq_iq1_m(const void *s, float *d, int64_t k) { dequantize_row_iq1_m(s, d, k); }
#define qnt_iq2_xxs NULL
#define qnt_iq2_xs NULL
#define qnt_iq2_s NULL
#define qnt_iq3_xxs NULL
#define qnt_iq3_s NULL
#define qnt_iq1_s NULL
#define qnt_iq1_m NULL

static void deq_q4_0(const void *s, float *d, int64_t k) { dequantize_row_q4_0(s, d, k); }
static void deq_q8_0(const void *s, float *d, int64_t k) { dequantize_row_q8_0(s, d, k); }
static void deq_q4_K(const void *s, float *d, int64_t k) { dequantize_row_q4_K(s, d, k); }
static void deq_q5_K(const void *s, float *d, int64_t k) { dequantize_row_q5_K(s, d, k); }
static void deq_q6_K(const void *s, float *d, int64_t k) { dequantize_row_q6_K(s, d, k); }
static void deq_mxfp4(const void *s, float *d, int64_t k) { dequantize_row_mxfp4(s, d, k); }
static void deq_q4_1(const void *s, float *d, int64_t k) { dequantize_row_q4_1(s, d, k); }
static void deq_q5_0(const void *s, float *d, int64_t k) { dequantize_row_q5_0(s, d, k); }
static void deq_q5_1(const void *s, float *d, int64_t k) { dequantize_row_q5_1(s, d, k); }
static void deq_q2_K(const void *s, float *d, int64_t k) { dequantize_row_q2_K(s, d, k); }
static void deq_q3_K(const void *s, float *d, int64_t k) { dequantize_row_q3_K(s, d, k); }
static void deq_iq4_nl(const void *s, float *d, int64_t k) { dequantize_row_iq4_nl(s, d, k); }
static void deq_iq4_xs(const void *s, float *d, int64_t k) { dequantize_row_iq4_xs(s, d, k); }
static void qnt_q4_0(const float *s, void *d, int64_t k) { quantize_row_q4_0_ref(s, d, k); }
static void qnt_q8_0(const float *s, void *d, int64_t k) { quantize_row_q8_0_ref(s, d, k); }
static void qnt_q4_K(const float *s, void *d, int64_t k) { quantize_row_q4_K_ref(s, d, k); }
static void qnt_q5_K(const float *s, void *d, int64_t k) { quantize_row_q5_K_ref(s, d, k); }
static void qnt_q6_K(const float *s, void *d, int64_t k) { quantize_row_q6_K_ref(s, d, k); }
static void qnt_mxfp4(const float *s, void *d, int64_t k) { quantize_row_mxfp4_ref(s, d, k); }
static void qnt_q4_1(const float *s, void *d, int64_t k) { quantize_row_q4_1_ref(s, d, k); }
static void qnt_q5_0(const float *s, void *d, int64_t k) { quantize_row_q5_0_ref(s, d, k); }
static void qnt_q5_1(const float *s, void *d, int64_t k) { quantize_row_q5_1_ref(s, d, k); }
static void qnt_q2_K(const float *s, void *d, int64_t k) { quantize_row_q2_K_ref(s, d, k); }
static void qnt_q3_K(const float *s, void *d, int64_t k) { quantize_row_q3_K_ref(s, d, k); }
static void qnt_iq4_nl(const float *s, void *d, int64_t k) { quantize_row_iq4_nl_ref(s, d, k); }
static void qnt_iq4_xs(const float *s, void *d, int64_t k) { quantize_row_iq4_xs_ref(s, d, k); }

/* The rows of dtype.h's table, with their kernels; a block struct that
 * disagrees with the table does not compile. */
#define QT_CHECK(U, l, nm, g, be, bb, al)                                                    \
    _Static_assert(sizeof(block_##l) == bb, "block_" #l " and dtype.h disagree");          \
    _Static_assert(QT_##U == g, "QT_" #U " and dtype.h disagree");
DTYPE_QUANT_LIST(QT_CHECK)
#undef QT_CHECK

static const qtype_traits g_traits[] = {
#define QT_ROW(U, l, nm, g, be, bb, al) {nm, g, be, bb, deq_##l, qnt_##l, ref_vec_dot_##l},
    DTYPE_QUANT_LIST(QT_ROW)
#undef QT_ROW
};

const qtype_traits *quant_traits(int type) {
    for (size_t i = 0; i < sizeof g_traits / sizeof g_traits[0]; i++)
        if (g_traits[i].type == type) return &g_traits[i];
    return NULL;
}

size_t quant_row_bytes(int type, int64_t cols) {
    type = qt_unpacked(type);
    if (!quant_traits(type)) return 0;
    return (size_t)dtype_row_bytes(dtype_from_ggml(type), cols);
}

/* ------------------------------------------------------ activation sizes */

size_t qact_row_stride(int type, int64_t cols) {
    type = qt_unpacked(type);
    if (qt_is32(type)) return (QX32_ROW_BYTES(cols / 32) + 63) / 64 * 64;
    const size_t nb = (size_t)(cols / QK_K);
    return (nb * (sizeof(qx_k) + 4 * (size_t)qx_k_ncv(type)) + 63) / 64 * 64;
}

/* Bytes of n rows of activations in the larger of the two layouts, so
 * that the size fits whichever kernel choice the call runs with. */
static size_t qact_bytes(int type, int64_t n, int64_t cols) {
    size_t rows = (size_t)n * qact_row_stride(type, cols);
    if (!qt_amx(type)) return rows;
    size_t tiles = (size_t)((n + QT_TILE_N - 1) / QT_TILE_N) * qtile_stride_of(type, cols);
    return rows > tiles ? rows : tiles;
}

size_t qact_size(int type, int64_t n, int64_t cols) {
    if (n <= 0) return 64;
    return qact_bytes(type, n, cols) + 64;
}

size_t qmatmul_scratch_size(int type, int64_t n, int64_t cols) { return qact_size(type, n, cols); }

static inline uint8_t *align64(void *p) {
    return (uint8_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* ------------------------------------------------------------ dispatch */

typedef struct {
    qmm_rows_fn rows;
    qact_row_fn act;
    qmm_rows_fn iq_rows; /* the grid i-quants (quant_iq*.c) */
} qkern;

static const qkern g_kern[ISA_COUNT] = {
    [ISA_SCALAR] = {ref_qmm_rows, ref_qact_row, ref_qmm_rows},
    [ISA_AVX2] = {avx2_qmm_rows, avx2_qact_row, avx2_iq_qmm_rows},
    [ISA_AVX512] = {avx512_qmm_rows, avx512_qact_row, avx512_iq_qmm_rows},
};

/* The quantized path of a kernel choice: the AVX-512 kernels need
 * AVX512_VNNI (vpdpbusd); without it AVX-512 machines run AVX2's. */
static const qkern *qkern_of(const kern_cfg *k) {
    isa i = k->isa;
    if (i == ISA_AVX512 && !kernels_cpu()->vnni) i = ISA_AVX2;
    return &g_kern[i];
}

const char *quant_path_name(const kern_cfg *k) {
    const qkern *q = qkern_of(k);
    return q == &g_kern[ISA_AVX512] ? "avx512-vnni"
         : q == &g_kern[ISA_AVX2]   ? (k->avxvnni ? "avx2-vnni" : "avx2")
                                    : "scalar";
}

/* Whether x [n][.] for `type` goes to AMX in the tile layout (qt_amx's types),
 * enough rows, and a choice with AMX (kernels_cfg gives one only on the
 * AVX-512 VNNI path of a CPU and OS that have AMX). */
static int64_t qamx_min_n(int type) {
    switch (type) {
    case QT_Q8_0: return QAMX_MIN_N_Q8_0;
    case QT_Q4_0: return QAMX_MIN_N_Q4_0;
    case QT_Q4_K: return QAMX_MIN_N_Q4_K;
    case QT_Q5_K: return QAMX_MIN_N_Q5_K;
    case QT_Q5_0: return QAMX_MIN_N_Q5_0;
    case QT_IQ4_NL: return QAMX_MIN_N_IQ4_NL;
    case QT_Q6_K: return QAMX_MIN_N_Q6_K;
    case QT_Q3_K: return QAMX_MIN_N_Q3_K;
    case QT_IQ4_XS: return QAMX_MIN_N_IQ4_XS;
    default: return 0;
    }
}

static int qtiles_use(const kern_cfg *k, int type, int64_t n) {
    int64_t min_n = qamx_min_n(type);
    return min_n && n >= min_n && k->amx;
}

int qmatmul_idx_ok(pool *p, int type, int64_t n) { return !qtiles_use(kern_of(p), type, n); }

/* ------------------------------------------------------- quantize x */

/* Unit i of the activations x [n][cols]: row i, or (tiles) tile i. */
static void act_unit(qact_row_fn act, int tiles, uint8_t *xq, size_t stride, const float *x, int type,
                     int64_t n, int64_t cols, int64_t i) {
    if (tiles) {
        int64_t r = i * QT_TILE_N, nr = n - r < QT_TILE_N ? n - r : QT_TILE_N;
        if (qt_tile_k(type))
            amx_qact_tile_k(xq + (size_t)i * stride, x + r * cols, nr, cols);
        else
            avx512_qact_tile(xq + (size_t)i * stride, x + r * cols, nr, cols);
    } else {
        act(xq + (size_t)i * stride, x + i * cols, type, cols);
    }
}

typedef struct {
    qact_row_fn act;
    int tiles;
    uint8_t *xq;
    size_t stride;
    const float *x;
    int type;
    int64_t n, cols;
} act_ctx;

static void act_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const act_ctx *c = vc;
    for (int64_t i = i0; i < i1; i++) act_unit(c->act, c->tiles, c->xq, c->stride, c->x, c->type, c->n, c->cols, i);
}

void qact_quantize(pool *p, void *xq, const float *x, int type, int64_t n, int64_t cols) {
    if (n <= 0) return;
    const kern_cfg *k = kern_of(p);
    int tiles = qtiles_use(k, type, n);
    act_ctx c = {qkern_of(k)->act, tiles, align64(xq), tiles ? qtile_stride_of(type, cols) : qact_row_stride(type, cols),
                 x, qt_unpacked(type), n, cols};
    int64_t units = tiles ? (n + QT_TILE_N - 1) / QT_TILE_N : n;
    if (n * cols < QACT_PARALLEL_MIN) {
        act_chunk(&c, 0, units, 0);
        return;
    }
    int64_t rows_per = (QACT_PARALLEL_MIN / 4 + cols - 1) / cols;
    int64_t grain = tiles ? (rows_per + QT_TILE_N - 1) / QT_TILE_N : rows_per;
    pool_for(p, units, grain, act_chunk, &c);
}

/* ------------------------------------------------------------- matmul */

/* Work of one row unit: bytes of W plus one per multiply-add. */
static int64_t unit_work(const qmm_job *j) { return QROW_UNIT * ((int64_t)j->w_row + j->n * j->cols); }

/* A job on activations in the layout qtiles_use picks for choice k. */
static qmm_job make_job(const kern_cfg *k, float *y, const void *xq, const void *W, int type, int64_t n,
                        int64_t rows, int64_t cols) {
    int tiles = qtiles_use(k, type, n);
    qmm_job j = {y, align64((void *)xq), W, type, n, rows, cols,
                 tiles ? qtile_stride_of(type, cols) : qact_row_stride(type, cols), quant_row_bytes(type, cols), tiles,
                 k->vbmi, k->avxvnni, qt_is_packed(type)};
    j.type = qt_unpacked(type);
    return j;
}

/* Bytes of the job's activations. */
static size_t job_act_bytes(const qmm_job *j) {
    return j->tiles ? (size_t)((j->n + QT_TILE_N - 1) / QT_TILE_N) * j->xq_row : (size_t)j->n * j->xq_row;
}

/* A packed W (quant_pack.c) on a path that does not read its layout: each
 * row unpacked, then the path's own kernel on that one row. Without memory
 * for the row the outputs are NaN. */
static void packed_rows_unpacking(const qkern *k, const qmm_job *j, int64_t r0, int64_t r1);

static inline void run_rows(const qkern *k, const qmm_job *j, int64_t r0, int64_t r1) {
    if (j->packed && k == &g_kern[ISA_AVX2] && j->type != QT_Q8_0)
        (j->avxvnni ? avxvnni_rows_packed_k : avx2_rows_packed_k)(j, r0, r1);
    else if (j->packed && k == &g_kern[ISA_AVX2])
        (j->avxvnni ? avxvnni_rows_packed : avx2_rows_packed)(j, r0, r1);
    else if (j->packed)
        packed_rows_unpacking(k, j, r0, r1);
    else if (j->tiles && (j->type == QT_Q4_K || j->type == QT_Q5_K))
        amx_k_qmm_rows(j, r0, r1);
    else if (j->tiles && qt_tile_k(j->type))
        amx_k6_qmm_rows(j, r0, r1);
    else if (j->tiles)
        amx_qmm_rows(j, r0, r1);
    else if (qt_is_iq(j->type))
        k->iq_rows(j, r0, r1);
    else
        k->rows(j, r0, r1);
}

static void packed_rows_unpacking(const qkern *k, const qmm_job *j, int64_t r0, int64_t r1) {
    uint8_t *row = malloc(j->w_row + 64);
    float *y = malloc(sizeof(float) * (size_t)j->n);
    qmm_job one = *j;
    one.W = row;
    one.y = y;
    one.rows = 1;
    one.packed = 0;
    for (int64_t r = r0; r < r1; r++) {
        if (row && y) {
            quant_unpack_row(QT_PACKED + j->type, j->W, r, j->cols, row);
            run_rows(k, &one, 0, 1);
        }
        for (int64_t i = 0; i < j->n; i++) j->y[i * j->rows + r] = row && y ? y[i] : NAN;
    }
    free(row);
    free(y);
}

typedef struct {
    const qkern *kern;
    const qmm_job *job;
} mm_ctx;

static void mm_chunk(void *vc, int64_t b0, int64_t b1, int tid) {
    const mm_ctx *c = vc;
    int64_t r0 = b0 * QROW_UNIT, r1 = b1 * QROW_UNIT;
    if (r1 > c->job->rows) r1 = c->job->rows;
    run_rows(c->kern, c->job, r0, r1);
}

void qmatmul_q(pool *p, float *y, const void *xq, const void *W, int type, int64_t n, int64_t rows,
               int64_t cols) {
    if (n <= 0 || rows <= 0 || !quant_row_bytes(type, cols)) return;
    const kern_cfg *k = kern_of(p);
    qmm_job j = make_job(k, y, xq, W, type, n, rows, cols);
    mm_ctx c = {qkern_of(k), &j};
    int64_t units = (rows + QROW_UNIT - 1) / QROW_UNIT;
    int64_t grain = (MIN_CHUNK_WORK + unit_work(&j) - 1) / unit_work(&j);
    /* a packed W's kernels read several runs of groups side by side: give
     * each chunk a few (PACKED_MIN_UNITS) */
    if (j.packed && grain < PACKED_MIN_UNITS) grain = PACKED_MIN_UNITS;
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
    qmm_job j = {y, align64(scratch), W, qt_unpacked(type), n, rows, cols, qact_row_stride(type, cols),
                 quant_row_bytes(type, cols), 0, 0, 0, qt_is_packed(type)};
    for (int64_t i = 0; i < n; i++)
        ref_qact_row((uint8_t *)j.xq + (size_t)i * j.xq_row, x + i * cols, j.type, cols);
    run_rows(&g_kern[ISA_SCALAR], &j, 0, rows);
}

/* ------------------------------------------------------- grouped matmul */

static int task_live(const qmm_task *t) {
    return t->n > 0 && t->rows > 0 && quant_row_bytes(t->type, t->cols) != 0;
}

/* The tasks with idx of tasks[0..m) by their shared x: rep[i] is the first
 * task with the same x, type and cols (-1 without idx or not live). The
 * distinct x of a call are few (one per weight type), so each task is
 * compared with those only. */
static void base_reps(const qmm_task *tasks, int m, int *rep) {
    int reps[GROUP_MAX], nr = 0;
    for (int i = 0; i < m; i++) {
        const qmm_task *t = &tasks[i];
        rep[i] = -1;
        if (!t->idx || !task_live(t)) continue;
        for (int r = 0; r < nr && rep[i] < 0; r++) {
            const qmm_task *u = &tasks[reps[r]];
            if (u->x == t->x && u->type == t->type && u->cols == t->cols) rep[i] = reps[r];
        }
        if (rep[i] < 0) rep[i] = reps[nr++] = i;
    }
}

size_t qmatmul_grouped_scratch_size(const qmm_task *tasks, int n_tasks) {
    size_t s = 64;
    int rep[GROUP_MAX];
    for (int t0 = 0; t0 < n_tasks; t0 += GROUP_MAX) { /* bases are per GROUP_MAX tasks, as in the call */
        int m = n_tasks - t0 < GROUP_MAX ? n_tasks - t0 : GROUP_MAX;
        const qmm_task *ts = tasks + t0;
        base_reps(ts, m, rep);
        for (int i = 0; i < m; i++) {
            if (!task_live(&ts[i])) continue;
            s += qact_bytes(ts[i].type, ts[i].n, ts[i].cols);
            if (rep[i] == i) s += (size_t)ts[i].x_rows * qact_row_stride(ts[i].type, ts[i].cols) + 64;
        }
    }
    return s;
}

size_t qmatmul_scratch_bound(int type, int64_t rows_total, int64_t cols, int n_tasks) {
    if (rows_total <= 0) return 64;
    size_t rows = (size_t)rows_total * qact_row_stride(type, cols), tiles = 0;
    if (qt_amx(type)) /* each task's last tile may be partial */
        tiles = (size_t)((rows_total + QT_TILE_N - 1) / QT_TILE_N + n_tasks) * qtile_stride_of(type, cols);
    return (rows > tiles ? rows : tiles) + (size_t)(n_tasks + 2) * 64;
}

typedef struct {
    const qkern *kern;
    qact_row_fn act;
    const qmm_task *tasks;
    const qmm_job *jobs;  /* [n_tasks] */
    const int64_t *start; /* [n_tasks + 1] first item of each task */
    const int64_t *rpu;   /* [n_tasks] rows per item (matmul phase) */
    const uint8_t *const *base; /* [n_tasks] with idx: its x quantized whole, or NULL */
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

/* Items are rows (or tiles) of x; a task with idx copies its rows from
 * its base, or quantizes them where they are. */
static void grp_act_chunk(void *vc, int64_t u0, int64_t u1, int tid) {
    const grp_ctx *c = vc;
    int t = grp_task(c, u0);
    for (int64_t u = u0; u < u1; u++) {
        while (c->start[t + 1] <= u) t++;
        const qmm_job *j = &c->jobs[t];
        const qmm_task *k = &c->tasks[t];
        int64_t i = u - c->start[t];
        uint8_t *dst = (uint8_t *)j->xq + (size_t)i * j->xq_row;
        if (!k->idx)
            act_unit(c->act, j->tiles, (uint8_t *)j->xq, j->xq_row, k->x, j->type, j->n, j->cols, i);
        else if (c->base[t])
            memcpy(dst, c->base[t] + (size_t)k->idx[i] * j->xq_row, j->xq_row);
        else
            c->act(dst, k->x + (int64_t)k->idx[i] * j->cols, j->type, j->cols);
    }
}

/* The bases: items are rows of every base, in task order. */
typedef struct {
    qact_row_fn act;
    const qmm_task *tasks;
    const int *who;       /* [n] the task each base is for */
    uint8_t *const *q;    /* [n] where it goes */
    const int64_t *start; /* [n + 1] first row of each */
    int n;
} base_ctx;

static void base_chunk(void *vc, int64_t u0, int64_t u1, int tid) {
    const base_ctx *c = vc;
    int b = 0;
    for (int64_t u = u0; u < u1; u++) {
        while (c->start[b + 1] <= u) b++;
        const qmm_task *t = &c->tasks[c->who[b]];
        int64_t r = u - c->start[b];
        c->act(c->q[b] + (size_t)r * qact_row_stride(t->type, t->cols), t->x + r * t->cols, qt_unpacked(t->type),
               t->cols);
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
        run_rows(c->kern, j, r0, r1 < j->rows ? r1 : j->rows);
    }
}

void qmatmul_grouped(pool *p, const qmm_task *tasks, int n_tasks, void *scratch) {
    const kern_cfg *kc = kern_of(p);
    const qkern *k = qkern_of(kc);
    qmm_job jobs[GROUP_MAX];
    int64_t start[GROUP_MAX + 1], rpu[GROUP_MAX];
    const uint8_t *base[GROUP_MAX];
    int nth = pool_size(p);
    uint8_t *xq = align64(scratch);
    for (int t0 = 0; t0 < n_tasks; t0 += GROUP_MAX) {
        int m = n_tasks - t0 < GROUP_MAX ? n_tasks - t0 : GROUP_MAX;
        const qmm_task *ts = tasks + t0;
        /* Phase 1: every live task's x into its slice of the scratch; a task
         * with the same x as the live task before it (an expert's gate and
         * up) shares that one's quantization when the layouts agree. */
        int64_t values = 0, work = 0;
        int prev = -1;
        start[0] = 0;
        for (int i = 0; i < m; i++) {
            const qmm_task *t = &ts[i];
            int live = task_live(t);
            jobs[i] = live ? make_job(kc, t->y, xq, t->W, t->type, t->n, t->rows, t->cols) : (qmm_job){0};
            int64_t units = 0;
            if (live && t->idx && jobs[i].tiles) { /* not in the tile layout: visible, never wrong */
                for (int64_t k = 0; k < t->n * t->rows; k++) t->y[k] = __builtin_nanf("");
                jobs[i] = (qmm_job){0};
                live = 0;
            }
            if (live && prev >= 0 && ts[prev].x == t->x && ts[prev].idx == t->idx && ts[prev].n == t->n &&
                ts[prev].cols == t->cols && jobs[prev].tiles == jobs[i].tiles &&
                (ts[prev].type == t->type || (jobs[i].tiles && qt_tile_k(ts[prev].type) == qt_tile_k(t->type)))) {
                jobs[i].xq = jobs[prev].xq;
                work += t->rows * ((int64_t)jobs[i].w_row + t->n * t->cols);
            } else if (live) {
                prev = i;
                xq += job_act_bytes(&jobs[i]);
                values += t->n * t->cols;
                work += t->rows * ((int64_t)jobs[i].w_row + t->n * t->cols);
                units = jobs[i].tiles ? (t->n + QT_TILE_N - 1) / QT_TILE_N : t->n;
            }
            start[i + 1] = start[i] + units;
        }
        if (start[m] == 0) continue;
        /* The shared x of tasks with idx: quantized whole (after the tasks'
         * slices) where the rows its tasks quantize (units; gate and up
         * share theirs) outnumber its own; else each task quantizes its
         * rows where they are. */
        int rep[GROUP_MAX], who[GROUP_MAX], nb = 0;
        int64_t need[GROUP_MAX], bstart[GROUP_MAX + 1];
        uint8_t *bq[GROUP_MAX];
        base_reps(ts, m, rep);
        for (int i = 0; i < m; i++) {
            need[i] = 0;
            if (rep[i] >= 0 && jobs[i].n) need[rep[i]] += start[i + 1] - start[i];
        }
        bstart[0] = 0;
        for (int i = 0; i < m; i++) {
            base[i] = rep[i] >= 0 && rep[i] < i ? base[rep[i]] : NULL;
            if (rep[i] != i || !jobs[i].n || need[i] <= ts[i].x_rows) continue;
            who[nb] = i;
            bq[nb] = xq;
            base[i] = xq;
            xq = align64(xq + (size_t)ts[i].x_rows * jobs[i].xq_row);
            bstart[nb + 1] = bstart[nb] + ts[i].x_rows;
            nb++;
        }
        if (nb) {
            base_ctx bc = {k->act, ts, who, bq, bstart, nb};
            if (bstart[nb] * ts[who[0]].cols < QACT_PARALLEL_MIN)
                base_chunk(&bc, 0, bstart[nb], 0);
            else
                pool_for(p, bstart[nb], (QACT_PARALLEL_MIN / 4 + ts[who[0]].cols - 1) / ts[who[0]].cols,
                         base_chunk, &bc);
        }
        grp_ctx c = {k, k->act, ts, jobs, start, rpu, base, m};
        if (values < QACT_PARALLEL_MIN)
            grp_act_chunk(&c, 0, start[m], 0);
        else
            pool_for(p, start[m], 1, grp_act_chunk, &c);
        /* Phase 2: about GROUP_ITEMS items per thread overall, each at least
         * MIN_CHUNK_WORK and a whole number of QROW_UNITs: decode's few
         * large expert matrices (8 down projections) would otherwise leave
         * one thread idle for a whole matrix at the end. */
        int64_t target = work / (GROUP_ITEMS * (int64_t)nth);
        if (target < MIN_CHUNK_WORK) target = MIN_CHUNK_WORK;
        for (int i = 0; i < m; i++) {
            int64_t items = 0;
            rpu[i] = QROW_UNIT;
            if (jobs[i].n > 0) {
                int64_t per_row = (int64_t)jobs[i].w_row + jobs[i].n * jobs[i].cols;
                int64_t r = (target + per_row - 1) / per_row;
                r = (r + QROW_UNIT - 1) / QROW_UNIT * QROW_UNIT;
                if (jobs[i].packed && r < PACKED_MIN_UNITS * QROW_UNIT) r = PACKED_MIN_UNITS * QROW_UNIT;
                if (r > jobs[i].rows) r = jobs[i].rows;
                rpu[i] = r;
                items = (jobs[i].rows + r - 1) / r;
            }
            start[i + 1] = start[i] + items;
        }
        pool_for(p, start[m], 1, grp_mm_chunk, &c);
    }
}
