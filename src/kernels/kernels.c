/*
 * kernels.c - the table of kernel choices (kernels.h: the CPU's features
 * and the process default, detected once), and the matmuls threaded over
 * the pool with the choice the pool carries.
 *
 * Threading: a matmul is split over the OUTPUT rows of W (blocks of
 * ROW_BLOCK rows) so that each thread streams its own slice of W exactly once
 * for all n rows of x; that is what makes decode bandwidth-bound and not
 * worse. matmul_grouped() turns every (task, row chunk) pair into one unit of
 * a single pool_for(), so many small expert matmuls share one parallel region.
 * Each output is summed the same way wherever the split falls, so results
 * are bit-identical for any number of threads (tests check this).
 *
 * F32 weights times many rows (n >= GEMM_MIN_N) on AVX-512 go to the
 * blocked GEMM of gemm.h (tiles of y over the pool, the same determinism).
 *
 * Quantized weights (dtype_is_quant) go to qmatmul / qmatmul_grouped
 * (kernels/quant.h).
 *
 * Scratch (widened W panels, packed GEMM blocks, quantized activations,
 * attention scores) belongs to the pool the call runs on: each thread's
 * region and one shared region, which a session sizes for its model when it
 * is created (pool_reserve, kernels_thread_scratch). The kernels keep no
 * state of their own, so sessions on different threads never share any. A
 * pool that reserved less (or a NULL pool, in tests and tools) gets a block
 * allocated for the call and freed after it.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <math.h>
#endif
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attn.h"
#include "kernels/gemm.h"
#include "kernels/kernels_impl.h"
#include "kernels/quant.h"
#include "kernels/quant_impl.h"
#include "kernels/vmath.h"

/* Rows of W per unit of work: the fast kernels' register tiles are 4 or 8
 * rows (decode), so units never split a tile. */
#define ROW_BLOCK 8
/* Aim for at least this much work (bytes of W + 4 bytes per multiply-add)
 * per pool chunk, so the atomic hand-out is noise. */
#define MIN_CHUNK_WORK (48 * 1024)
/* matmul_grouped processes at most this many tasks per pool_for. */
#define GROUP_MAX 512
/* f32 weights on AVX-512 with at least this many rows of x go through the
 * blocked GEMM (gemm.h: outer-product 12 x 32 tiles, W^T packed by 16 x 16
 * transposes), measured 15-25% faster than the panel kernel's 6 x 4
 * dot-product tiles there; fewer rows would not repay packing W. */
#define GEMM_MIN_N 64

static const kern_table g_tables[ISA_COUNT] = {
    [ISA_SCALAR] = {ref_matmul_rows, ref_dot, ref_axpy},
    [ISA_AVX2] = {avx2_matmul_rows, avx2_dot, avx2_axpy},
    [ISA_AVX512] = {avx512_matmul_rows, avx512_dot, avx512_axpy},
};

/* Every choice there is; kernels_cfg hands out pointers into it. */
static const kern_cfg g_cfgs[ISA_COUNT][2][2] = {
#define CFG_ROW(I) {{{I, 0, 0, 0}, {I, 0, 1, 0}}, {{I, 1, 0, 0}, {I, 1, 1, 0}}}
    [ISA_SCALAR] = CFG_ROW(ISA_SCALAR),
    [ISA_AVX2] = CFG_ROW(ISA_AVX2),
    [ISA_AVX512] = CFG_ROW(ISA_AVX512),
#undef CFG_ROW
};
/* The AVX2 path with AVX-VNNI (AVX-512 has its own VNNI kernels). */
static const kern_cfg g_cfg_avxvnni = {ISA_AVX2, 0, 0, 1};

#if defined(__x86_64__) || defined(__i386__)
/* F16C from CPUID leaf 1 (ECX bit 29): clang before 16 has no "f16c" for
 * __builtin_cpu_supports, and the fuzz targets are built with clang. */
static int cpu_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
/* AVX-VNNI from CPUID leaf 7 subleaf 1 (EAX bit 4), for the same reason. */
static int cpu_avxvnni(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4));
}
#endif

/* Written once, by kernels_detect under g_once; read-only afterwards. */
static kern_cpu g_cpu;
static const kern_cfg *g_default;
static int g_amx_default; /* MOE_AMX is not "0" */
static int g_avxvnni_default; /* MOE_AVXVNNI is not "0" */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

const char *isa_name(isa i) {
    switch (i) {
    case ISA_SCALAR: return "scalar";
    case ISA_AVX2: return "avx2";
    case ISA_AVX512: return "avx512";
    default: return "?";
    }
}

static int isa_ok(const kern_cpu *c, isa i) {
    return i == ISA_SCALAR || (i == ISA_AVX2 && c->avx2) || (i == ISA_AVX512 && c->avx512);
}

/* kernels_cfg on a given feature set (also used before g_cpu is final). */
static const kern_cfg *cfg_for(const kern_cpu *c, isa i, int amx, int vbmi) {
    if ((int)i < 0 || i >= ISA_COUNT || !isa_ok(c, i)) return NULL;
    if (amx && !(i == ISA_AVX512 && c->vnni && c->amx)) return NULL;
    if (vbmi && !(i == ISA_AVX512 && c->vbmi)) return NULL;
    return &g_cfgs[i][amx != 0][vbmi != 0];
}

/* The path named i with every extra the CPU has and the default allows. */
static const kern_cfg *cfg_best(const kern_cpu *c, isa i, int amx_allowed, int avxvnni_allowed) {
    if (!isa_ok(c, i)) return NULL;
    if (i == ISA_AVX2 && avxvnni_allowed && c->avxvnni) return &g_cfg_avxvnni;
    int fast = i == ISA_AVX512;
    return cfg_for(c, i, fast && amx_allowed && c->vnni && c->amx, fast && c->vbmi);
}

static void kernels_detect(void) {
    kern_cpu c = {0};
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_f16c();
    c.avx512 = c.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    c.vnni = c.avx512 && __builtin_cpu_supports("avx512vnni");
    c.vbmi = c.avx512 && __builtin_cpu_supports("avx512vbmi");
    c.amx = c.vnni && amx_init();
    c.avxvnni = c.avx2 && cpu_avxvnni();
#endif
    const char *e = getenv("MOE_AMX");
    int amx_allowed = !(e && strcmp(e, "0") == 0);
    e = getenv("MOE_AVXVNNI");
    int avxvnni_allowed = !(e && strcmp(e, "0") == 0);
    isa best = c.avx512 ? ISA_AVX512 : c.avx2 ? ISA_AVX2 : ISA_SCALAR;
    e = getenv("MOE_ISA");
    if (e && *e)
        for (int i = 0; i < ISA_COUNT; i++)
            if (strcmp(e, isa_name((isa)i)) == 0 && isa_ok(&c, (isa)i)) best = (isa)i;
    g_cpu = c;
    g_amx_default = amx_allowed;
    g_avxvnni_default = avxvnni_allowed;
    g_default = cfg_best(&c, best, amx_allowed, avxvnni_allowed);
}

const kern_cpu *kernels_cpu(void) {
    pthread_once(&g_once, kernels_detect);
    return &g_cpu;
}

const kern_cfg *kernels_default(void) {
    pthread_once(&g_once, kernels_detect);
    return g_default;
}

const kern_cfg *kernels_cfg(isa i, int amx, int vbmi) { return cfg_for(kernels_cpu(), i, amx, vbmi); }

const kern_cfg *kernels_cfg_avxvnni(void) { return kernels_cpu()->avxvnni ? &g_cfg_avxvnni : NULL; }

const kern_cfg *kernels_named(const char *name) {
    const kern_cpu *c = kernels_cpu();
    for (int i = 0; name && i < ISA_COUNT; i++)
        if (strcmp(name, isa_name((isa)i)) == 0) return cfg_best(c, (isa)i, g_amx_default, g_avxvnni_default);
    return NULL;
}

const kern_cfg *kern_of(const pool *p) {
    const kern_cfg *k = pool_kern(p);
    return k ? k : kernels_default();
}

/* ------------------------------------------------------------- scratch */

void *kern_scratch(pool *p, int tid, size_t bytes, void **own) {
    *own = NULL;
    void *r = tid < 0 ? pool_shared(p, bytes) : pool_scratch(p, tid, bytes);
    if (r) return r;
    r = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    *own = r;
    return r;
}

size_t kernels_thread_scratch(int max_queries, int max_keys, int head_dim) {
    size_t b = (size_t)KERN_PANEL_FLOATS * sizeof(float);
    size_t g = gemm_scratch_bytes(), a = attn_scratch_bytes(max_queries, max_keys, head_dim);
    if (g > b) b = g;
    if (a > b) b = a;
    return b;
}

/* ------------------------------------------------- quantized weights */

/* Out of memory for scratch: the library cannot report from here, so the
 * outputs become NaN (visible, never silently wrong). */
static void fill_nan(float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = __builtin_nanf("");
}

static void matmul_quant(pool *p, float *y, const float *x, const mat *W, int64_t n) {
    int qt = dtype_to_ggml(W->type);
    void *own, *sc = kern_scratch(p, -1, qmatmul_scratch_size(qt, n, W->cols), &own);
    if (!sc) {
        fill_nan(y, n * W->rows);
        return;
    }
    qmatmul(p, y, x, W->data, qt, n, W->rows, W->cols, sc);
    free(own);
}

/* ------------------------------------------------------------- matmul */

/* Row blocks of ROW_BLOCK rows per pool chunk for an [rows][cols] W times n
 * rows of x: at least MIN_CHUNK_WORK of work. */
static int64_t matmul_grain(const mat *W, int64_t n) {
    int64_t per_block = ROW_BLOCK * W->cols * (dtype_size(W->type) + 4 * n);
    if (per_block < 1) per_block = 1;
    int64_t g = (MIN_CHUNK_WORK + per_block - 1) / per_block;
    return g < 1 ? 1 : g;
}

typedef struct {
    matmul_rows_fn fn;
    float *y;
    const float *x;
    const mat *W;
    int64_t n;
    pool *p;
} mm_ctx;

static void matmul_chunk(void *vc, int64_t b0, int64_t b1, int tid) {
    const mm_ctx *c = vc;
    int64_t r0 = b0 * ROW_BLOCK, r1 = b1 * ROW_BLOCK;
    if (r1 > c->W->rows) r1 = c->W->rows;
    void *own;
    float *panel = kern_scratch(c->p, tid, KERN_PANEL_FLOATS * sizeof(float), &own);
    if (!panel) {
        for (int64_t i = 0; i < c->n; i++) fill_nan(c->y + i * c->W->rows + r0, r1 - r0);
        return;
    }
    c->fn(c->y, c->x, c->W, c->n, r0, r1, panel);
    free(own);
}

static inline int use_gemm(const kern_cfg *k, const mat *W, int64_t n) {
    return W->type == DT_F32 && n >= GEMM_MIN_N && k->isa == ISA_AVX512;
}

/* y [n][rows] = x [n][cols] W^T as C = A B with B(k, j) = W[j][k]. */
static gemm_op gemm_of(float *y, const float *x, const mat *W, int64_t n) {
    return (gemm_op){y, W->rows, x, W->cols, 1, (const float *)W->data, 1, W->cols,
                     n, W->rows, W->cols, 1, NULL, 0};
}

void matmul(pool *p, float *y, const float *x, const mat *W, int64_t n) {
    if (n <= 0 || W->rows <= 0) return;
    if (dtype_is_quant(W->type)) {
        matmul_quant(p, y, x, W, n);
        return;
    }
    const kern_cfg *k = kern_of(p);
    if (use_gemm(k, W, n)) {
        gemm_op o = gemm_of(y, x, W, n);
        gemm_run(p, &o, 1);
        return;
    }
    mm_ctx c = {g_tables[k->isa].matmul_rows, y, x, W, n, p};
    int64_t blocks = (W->rows + ROW_BLOCK - 1) / ROW_BLOCK;
    pool_for(p, blocks, matmul_grain(W, n), matmul_chunk, &c);
}

/* --------------------------------------------------------- grouped matmul */

typedef struct {
    matmul_rows_fn fn;
    const mm_task *tasks;
    const int64_t *start; /* [n_tasks + 1] first unit of each task */
    const int64_t *rows_per_unit; /* [n_tasks] */
    int n_tasks;
    pool *p;
} grp_ctx;

static void grouped_chunk(void *vc, int64_t u0, int64_t u1, int tid) {
    const grp_ctx *c = vc;
    /* First task whose units reach past u0 (binary search over start[]). */
    int lo = 0, hi = c->n_tasks - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (c->start[mid + 1] <= u0)
            lo = mid + 1;
        else
            hi = mid;
    }
    void *own;
    float *panel = kern_scratch(c->p, tid, KERN_PANEL_FLOATS * sizeof(float), &own);
    for (int64_t u = u0; u < u1; u++) {
        while (c->start[lo + 1] <= u) lo++;
        const mm_task *t = &c->tasks[lo];
        int64_t r0 = (u - c->start[lo]) * c->rows_per_unit[lo];
        int64_t r1 = r0 + c->rows_per_unit[lo];
        if (r1 > t->W->rows) r1 = t->W->rows;
        if (!panel) {
            for (int64_t i = 0; i < t->n; i++) fill_nan(t->y + i * t->W->rows + r0, r1 - r0);
            continue;
        }
        c->fn(t->y, t->x, t->W, t->n, r0, r1, panel);
    }
    free(own);
}

/* The quantized tasks of tasks[m] as one qmatmul_grouped. */
static void grouped_quant(pool *p, const mm_task *ts, const mm_idx *ix, int m) {
    qmm_task q[GROUP_MAX];
    int nq = 0;
    for (int i = 0; i < m; i++) {
        const mm_task *t = &ts[i];
        if (t->n <= 0 || t->W->rows <= 0 || !dtype_is_quant(t->W->type)) continue;
        q[nq++] = (qmm_task){t->W->data, dtype_to_ggml(t->W->type), t->W->rows, t->W->cols,
                             t->x, t->y, t->n, ix ? ix[i].idx : NULL, ix ? ix[i].x_rows : 0};
    }
    if (!nq) return;
    void *own, *sc = kern_scratch(p, -1, qmatmul_grouped_scratch_size(q, nq), &own);
    if (!sc) {
        for (int i = 0; i < nq; i++) fill_nan(q[i].y, q[i].n * q[i].rows);
        return;
    }
    qmatmul_grouped(p, q, nq, sc);
    free(own);
}

static inline int task_float(const kern_cfg *k, const mm_task *t, const mm_idx *ix) {
    return t->n > 0 && t->W->rows > 0 && !dtype_is_quant(t->W->type) && !use_gemm(k, t->W, t->n) && !(ix && ix->idx);
}

int matmul_idx_ok(pool *p, const mat *W, int64_t n) {
    return dtype_is_quant(W->type) && qmatmul_idx_ok(p, dtype_to_ggml(W->type), n);
}

/* The tasks of tasks[m] that go through the blocked GEMM, as one gemm_run. */
static void grouped_gemm(pool *p, const kern_cfg *k, const mm_task *ts, const mm_idx *ix, int m) {
    gemm_op ops[GROUP_MAX];
    int n = 0;
    for (int i = 0; i < m; i++)
        if (ts[i].n > 0 && ts[i].W->rows > 0 && use_gemm(k, ts[i].W, ts[i].n) && !(ix && ix[i].idx))
            ops[n++] = gemm_of(ts[i].y, ts[i].x, ts[i].W, ts[i].n);
    if (n) gemm_run(p, ops, n);
}

void matmul_grouped_idx(pool *p, const mm_task *tasks, const mm_idx *idx, int n_tasks) {
    const kern_cfg *k = kern_of(p);
    matmul_rows_fn fn = g_tables[k->isa].matmul_rows;
    int64_t start[GROUP_MAX + 1], rpu[GROUP_MAX];
    int nth = pool_size(p);
    for (int t0 = 0; t0 < n_tasks; t0 += GROUP_MAX) {
        int m = n_tasks - t0 < GROUP_MAX ? n_tasks - t0 : GROUP_MAX;
        const mm_task *ts = tasks + t0;
        const mm_idx *ix = idx ? idx + t0 : NULL;
        grouped_quant(p, ts, ix, m);
        grouped_gemm(p, k, ts, ix, m);
        for (int i = 0; ix && i < m; i++) /* idx on f32 / bf16 / f16 weights: not taken (visible) */
            if (ix[i].idx && ts[i].n > 0 && !dtype_is_quant(ts[i].W->type))
                fill_nan(ts[i].y, ts[i].n * ts[i].W->rows);
        /* Total work decides the unit size: about 4 units per thread overall,
         * but never below MIN_CHUNK_WORK per unit nor a ROW_BLOCK. */
        int64_t total = 0;
        for (int i = 0; i < m; i++)
            if (task_float(k, &ts[i], ix ? &ix[i] : NULL))
                total += ts[i].W->rows * (ts[i].W->cols * (dtype_size(ts[i].W->type) + 4 * ts[i].n) + 1);
        if (total == 0) continue;
        int64_t target = total / (4 * (int64_t)nth);
        if (target < MIN_CHUNK_WORK) target = MIN_CHUNK_WORK;
        start[0] = 0;
        for (int i = 0; i < m; i++) {
            const mm_task *t = &ts[i];
            int64_t units = 0;
            rpu[i] = ROW_BLOCK;
            if (task_float(k, t, ix ? &ix[i] : NULL)) {
                int64_t per_row = t->W->cols * (dtype_size(t->W->type) + 4 * t->n) + 1;
                int64_t r = (target + per_row - 1) / per_row;
                r = (r + ROW_BLOCK - 1) / ROW_BLOCK * ROW_BLOCK;
                if (r > t->W->rows) r = t->W->rows;
                rpu[i] = r;
                units = (t->W->rows + r - 1) / r;
            }
            start[i + 1] = start[i] + units;
        }
        grp_ctx c = {fn, ts, start, rpu, m, p};
        pool_for(p, start[m], 1, grouped_chunk, &c);
    }
}

void matmul_grouped(pool *p, const mm_task *tasks, int n_tasks) { matmul_grouped_idx(p, tasks, NULL, n_tasks); }

/* ------------------------------------------------------------ vector ops */

void mat_row_f32(float *dst, const mat *W, int64_t row) {
    const int qt = dtype_to_ggml(W->type);
    if (dtype_is_quant(W->type) && qt_is_packed(qt)) { /* the row unpacked first */
        const qtype_traits *tr = quant_traits(qt_unpacked(qt));
        void *buf = malloc(quant_row_bytes(qt, W->cols));
        if (buf) {
            quant_unpack_row(qt, W->data, row, W->cols, buf);
            tr->dequantize(buf, dst, W->cols);
        } else {
            for (int64_t i = 0; i < W->cols; i++) dst[i] = NAN;
        }
        free(buf);
        return;
    }
    if (dtype_is_quant(W->type)) {
        const qtype_traits *tr = quant_traits(qt);
        size_t rb = (size_t)dtype_row_bytes(W->type, W->cols);
        tr->dequantize((const char *)W->data + (size_t)row * rb, dst, W->cols);
        return;
    }
    ref_mat_row_f32(dst, W, row);
}
/* ref_rmsnorm with the sum of squares in eight double partial sums: the
 * reference's one serial chain waits on each add's latency, and at prefill
 * the norms (two per layer per token, Qwen3's per head too) took 1.3-1.7%
 * of the time. Double keeps the mean of squares far inside f32's rounding
 * whatever the order. AVX-512 computes the same bits in one register of 8
 * doubles (avx512_rmsnorm), whichever kernel path the caller runs. */
void scalar_rmsnorm8(float *y, const float *x, const float *w, int n, float eps) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += (double)x[i + k] * (double)x[i + k];
    for (; i < n; i++) s[i & 7] += (double)x[i] * (double)x[i];
    const double ss = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    const float var = n > 0 ? (float)(ss / n) : 0.0f;
    const float r = 1.0f / sqrtf(var + eps);
    for (i = 0; i < n; i++) y[i] = (x[i] * r) * w[i];
}
void rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    if (kernels_cpu()->avx512) avx512_rmsnorm(y, x, w, n, eps);
    else scalar_rmsnorm8(y, x, w, n, eps);
}
/* AVX-512: vectorized exp (vmath.h, within 2 ulp of expf's exact value)
 * and f32 partial sums; other ISAs: the scalar reference. */
void softmax(const kern_cfg *k, float *x, int n) {
    if (n <= 0) return;
    const isa i = (k ? k : kernels_default())->isa;
    if (i == ISA_AVX512) {
        float s = avx512_vexp_sum(x, x, avx512_vmax(x, n), n);
        avx512_vscale(x, 1.0f / s, n);
    } else if (i == ISA_AVX2) {
        float s = avx2_vexp_sum(x, x, avx2_vmax(x, n), n);
        avx2_vscale(x, 1.0f / s, n);
    } else {
        ref_softmax(x, n);
    }
}
void silu_mul(const kern_cfg *k, float *g, const float *u, int n) {
    const isa i = (k ? k : kernels_default())->isa;
    if (i == ISA_AVX512) avx512_vswiglu(g, g, u, n);
    else if (i == ISA_AVX2) avx2_vswiglu(g, g, u, n);
    else ref_silu_mul(g, u, n);
}
void axpy(const kern_cfg *k, float *y, float a, const float *x, int n) {
    g_tables[(k ? k : kernels_default())->isa].axpy(y, a, x, n);
}
float dot(const kern_cfg *k, const float *a, const float *b, int n) {
    return g_tables[(k ? k : kernels_default())->isa].dot(a, b, n);
}
void rope_apply(float *x, const float *cos_t, const float *sin_t, int head_dim) {
    ref_rope_apply(x, cos_t, sin_t, head_dim);
}
void rope_table(float *cos_t, float *sin_t, int pos, int head_dim, float theta) {
    ref_rope_table(cos_t, sin_t, pos, head_dim, theta);
}
