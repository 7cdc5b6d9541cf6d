/*
 * test_kernels.c - every fast kernel path held to the scalar reference:
 * each ISA this CPU has x each weight dtype x n in {1,2,3,4,5,6,8,17} x odd
 * shapes (K tails, partial row tiles, several K blocks and row panels),
 * with and without threads; grouped == individual; exact widening of every
 * f16/bf16 bit pattern; vector ops against their formulas in double.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "kernels/probe.h"
#include "kern_pool.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */

static uint32_t rng_next(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Uniform in [-1, 1). */
static float rng_f(uint32_t *s) { return (float)(rng_next(s) >> 8) / 8388608.0f - 1.0f; }

/* A W [rows][cols] of type t with random values; *data must be freed. */
static mat make_mat(dtype t, int64_t rows, int64_t cols, uint32_t *seed, void **data) {
    size_t count = (size_t)(rows * cols);
    *data = malloc(count * (size_t)dtype_size(t) + 1);
    for (size_t i = 0; i < count; i++) {
        float f = rng_f(seed);
        if (t == DT_F32)
            ((float *)*data)[i] = f;
        else if (t == DT_BF16)
            ((uint16_t *)*data)[i] = f32_to_bf16(f);
        else
            ((uint16_t *)*data)[i] = f32_to_f16(f);
    }
    return (mat){*data, t, rows, cols};
}

static float elem(const mat *W, int64_t r, int64_t k) {
    size_t i = (size_t)(r * W->cols + k);
    if (W->type == DT_F32) return ((const float *)W->data)[i];
    if (W->type == DT_BF16) return bf16_to_f32(((const uint16_t *)W->data)[i]);
    return f16_to_f32(((const uint16_t *)W->data)[i]);
}

/* |y - ref| <= 1e-5 * sum_k |x_k w_k| (the scale of that output) for all
 * outputs; returns the number of violations. */
static int compare_to_ref(const float *y, const float *ref, const float *x, const mat *W, int64_t n) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t r = 0; r < W->rows; r++) {
            double scale = 0;
            for (int64_t k = 0; k < W->cols; k++) scale += fabs((double)x[i * W->cols + k] * elem(W, r, k));
            double d = fabs((double)y[i * W->rows + r] - (double)ref[i * W->rows + r]);
            if (!(d <= 1e-5 * scale + 1e-30)) {
                if (bad < 3)
                    fprintf(stderr, "  y[%lld][%lld] = %.9g, ref %.9g, scale %g\n", (long long)i,
                            (long long)r, y[i * W->rows + r], ref[i * W->rows + r], scale);
                bad++;
            }
        }
    return bad;
}

/* ----------------------------------------------------------- matmul */

TEST(kernels_isa_selection) {
    const kern_cfg *def = kernels_default();
    const kern_cpu *cpu = kernels_cpu();
    CHECK(def && def->isa >= ISA_SCALAR && def->isa < ISA_COUNT);
    CHECK(def == kernels_default() && cpu == kernels_cpu()); /* detected once */
    /* a table entry: the AVX2 path with AVX-VNNI has its own */
    CHECK(kernels_cfg(def->isa, def->amx, def->vbmi) == def || (def->avxvnni && def == kernels_cfg_avxvnni()));
    const kern_cfg *sc = kernels_cfg(ISA_SCALAR, 0, 0);
    CHECK(sc && sc->isa == ISA_SCALAR && !sc->amx && !sc->vbmi);
    CHECK(kernels_named("scalar") == sc);
    CHECK(kernels_cfg(ISA_COUNT, 0, 0) == NULL);
    CHECK(kernels_cfg((isa)-1, 0, 0) == NULL);
    CHECK(kernels_cfg(ISA_SCALAR, 1, 0) == NULL); /* AMX and VBMI need AVX-512 */
    CHECK(kernels_cfg(ISA_AVX2, 0, 1) == NULL);
    CHECK(kernels_named("avx3") == NULL && kernels_named(NULL) == NULL);
    CHECK((kernels_cfg(ISA_AVX2, 0, 0) != NULL) == (cpu->avx2 != 0));
    CHECK((kernels_cfg(ISA_AVX512, 0, 0) != NULL) == (cpu->avx512 != 0));
    CHECK((kernels_cfg(ISA_AVX512, 1, 0) != NULL) == (cpu->amx != 0));
    const kern_cfg *vn = kernels_cfg_avxvnni();
    CHECK((vn != NULL) == (cpu->avxvnni != 0));
    CHECK(!vn || (vn->isa == ISA_AVX2 && vn->avxvnni && !vn->amx && !vn->vbmi));
    CHECK(!kernels_cfg(ISA_AVX2, 0, 0) || !kernels_cfg(ISA_AVX2, 0, 0)->avxvnni);
    /* a pool runs its owner's choice; a NULL pool or an unset one the default */
    pool *p = pool_create(1);
    CHECK(kern_of(p) == def && kern_of(NULL) == def);
    pool_set_kern(p, sc);
    CHECK(kern_of(p) == sc && kernels_default() == def);
    pool_free(p);
    CHECK(strcmp(isa_name(ISA_AVX512), "avx512") == 0);
    CHECK(strcmp(isa_name(ISA_AVX2), "avx2") == 0);
    CHECK(strcmp(isa_name(ISA_SCALAR), "scalar") == 0);
}

/* One shape for every ISA and dtype; threaded results must be bit-identical
 * to single-threaded ones (a row's sum never depends on the split). */
static void check_shape(const kern_pools *kp, int64_t n, int64_t rows, int64_t cols, uint32_t *seed,
                        int *fails) {
    float *x = malloc(sizeof(float) * (size_t)(n * cols) + 4);
    float *ref = malloc(sizeof(float) * (size_t)(n * rows));
    float *y1 = malloc(sizeof(float) * (size_t)(n * rows));
    float *y2 = malloc(sizeof(float) * (size_t)(n * rows));
    for (int64_t i = 0; i < n * cols; i++) x[i] = rng_f(seed);
    for (int t = 0; t < DT_COUNT; t++) {
        void *data;
        mat W = make_mat((dtype)t, rows, cols, seed, &data);
        matmul_ref(ref, x, &W, n);
        for (int s = 0; s < ISA_COUNT; s++) {
            if (!kp->one[s]) continue;
            for (int64_t i = 0; i < n * rows; i++) y1[i] = y2[i] = NAN;
            matmul(kp->one[s], y1, x, &W, n);
            matmul(kp->two[s], y2, x, &W, n);
            int bad = compare_to_ref(y1, ref, x, &W, n);
            int same = memcmp(y1, y2, sizeof(float) * (size_t)(n * rows)) == 0;
            if (bad || !same) {
                (*fails)++;
                fprintf(stderr, "  matmul %s %s n=%lld rows=%lld cols=%lld: %d off, threaded %s\n",
                        isa_name((isa)s), dtype_name((dtype)t), (long long)n, (long long)rows,
                        (long long)cols, bad, same ? "same" : "DIFFERENT");
            }
        }
        free(data);
    }
    free(x);
    free(ref);
    free(y1);
    free(y2);
}

TEST(kernels_matmul_vs_ref_small) {
    static const int64_t ns[] = {1, 2, 3, 4, 5, 6, 8, 17};
    static const int64_t rows[] = {1, 3, 4, 5, 7, 33, 67};
    static const int64_t cols[] = {1, 7, 15, 16, 17, 31, 33, 100, 257};
    kern_pools kp;
    kern_pools_init(&kp);
    uint32_t seed = 12345;
    int fails = 0;
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof rows / sizeof rows[0]; b++)
            for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
                check_shape(&kp, ns[a], rows[b], cols[c], &seed, &fails);
    CHECK_EQ_INT(fails, 0);
    kern_pools_free(&kp);
}

/* Shapes big enough to be threaded, to cross K blocks (512) and row panels
 * (64), with K tails. */
TEST(kernels_matmul_vs_ref_large) {
    static const int64_t ns[] = {1, 2, 3, 4, 5, 6, 8, 17};
    static const int64_t shapes[][2] = {{130, 520}, {257, 1030}, {1000, 33}, {67, 2048}};
    uint32_t seed = 777;
    int fails = 0;
    kern_pools kp;
    kern_pools_init(&kp);
    for (int nt = 2; nt <= 3; nt++) {
        kern_pools kn = kp; /* one-thread pools, and nt threads */
        for (int i = 0; i < ISA_COUNT; i++) kn.two[i] = nt == 2 ? kp.two[i] : kern_pool(nt, (isa)i);
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                check_shape(&kn, ns[a], shapes[s][0], shapes[s][1], &seed, &fails);
        for (int i = 0; nt != 2 && i < ISA_COUNT; i++) pool_free(kn.two[i]);
    }
    /* A prefill-sized batch. */
    check_shape(&kp, 70, 96, 600, &seed, &fails);
    kern_pools_free(&kp);
    CHECK_EQ_INT(fails, 0);
}

/* The reference itself against a double-precision sum. */
TEST(kernels_matmul_ref_vs_double) {
    uint32_t seed = 99;
    for (int t = 0; t < DT_COUNT; t++) {
        void *data;
        mat W = make_mat((dtype)t, 9, 301, &seed, &data);
        float x[3 * 301], y[3 * 9];
        for (int i = 0; i < 3 * 301; i++) x[i] = rng_f(&seed);
        matmul_ref(y, x, &W, 3);
        for (int i = 0; i < 3; i++)
            for (int r = 0; r < 9; r++) {
                double s = 0, scale = 0;
                for (int k = 0; k < 301; k++) {
                    s += (double)x[i * 301 + k] * elem(&W, r, k);
                    scale += fabs((double)x[i * 301 + k] * elem(&W, r, k));
                }
                CHECK_NEAR(y[i * 9 + r], s, 1e-5 * scale);
            }
        free(data);
    }
}

/* Zero-sized edges: cols = 0 gives zeros; n = 0 or rows = 0 write nothing. */
TEST(kernels_matmul_empty) {
    kern_pools kp;
    kern_pools_init(&kp);
    for (int s = 0; s < ISA_COUNT; s++) {
        pool *p = kp.one[s];
        if (!p) continue;
        for (int t = 0; t < DT_COUNT; t++) {
            uint16_t dummy[4] = {0};
            mat W = {dummy, (dtype)t, 3, 0};
            float x[1] = {1}, y[6];
            for (int i = 0; i < 6; i++) y[i] = 5;
            matmul(p, y, x, &W, 2);
            for (int i = 0; i < 6; i++) CHECK(y[i] == 0.0f);
            for (int i = 0; i < 6; i++) y[i] = 5;
            matmul(p, y, x, &W, 0);
            W.rows = 0;
            matmul(p, y, x, &W, 2);
            for (int i = 0; i < 6; i++) CHECK(y[i] == 5.0f);
        }
    }
    kern_pools_free(&kp);
}

/* Widening is exact: every finite bf16 / f16 bit pattern as a one-column
 * matrix times x = [1], and again placed at a one-hot column in the main
 * loop and in the tail of a wider row. */
TEST(kernels_matmul_exact_widening) {
    kern_pools kp;
    kern_pools_init(&kp);
    uint16_t *w = malloc(65536 * 2 * 40);
    float x[40];
    for (int t = DT_F16; t <= DT_BF16; t++) {
        int64_t rows = 0;
        uint16_t pat[65536];
        for (uint32_t h = 0; h < 65536; h++) {
            float f = t == DT_F16 ? f16_to_f32((uint16_t)h) : bf16_to_f32((uint16_t)h);
            if (isfinite(f)) pat[rows++] = (uint16_t)h;
        }
        static const int cols_list[] = {1, 33, 40};
        static const int hot_list[] = {0, 20, 37};
        for (int c = 0; c < 3; c++) {
            int cols = cols_list[c], hot = hot_list[c];
            uint32_t seed = 5;
            for (int64_t r = 0; r < rows; r++)
                for (int k = 0; k < cols; k++)
                    w[r * cols + k] = k == hot ? pat[r]
                                      : t == DT_F16 ? f32_to_f16(rng_f(&seed))
                                                    : f32_to_bf16(rng_f(&seed));
            for (int k = 0; k < cols; k++) x[k] = k == hot ? 1.0f : 0.0f;
            mat W = {w, (dtype)t, rows, cols};
            for (int s = 0; s < ISA_COUNT; s++) {
                if (!kp.one[s]) continue;
                for (int n = 1; n <= 7; n += 3) { /* decode, direct and panel paths */
                    float xs[7 * 40];
                    for (int i = 0; i < n; i++) memcpy(xs + i * cols, x, sizeof(float) * (size_t)cols);
                    float *yy = malloc(sizeof(float) * (size_t)(rows * n));
                    matmul(kp.one[s], yy, xs, &W, n);
                    int bad = 0;
                    for (int i = 0; i < n; i++)
                        for (int64_t r = 0; r < rows; r++) {
                            float e = t == DT_F16 ? f16_to_f32(pat[r]) : bf16_to_f32(pat[r]);
                            if (yy[i * rows + r] != e) bad++;
                        }
                    CHECK_MSG(bad == 0, "%s %s cols %d n %d: %d inexact", isa_name((isa)s),
                              dtype_name((dtype)t), cols, n, bad);
                    free(yy);
                }
            }
        }
    }
    free(w);
    kern_pools_free(&kp);
}

TEST(kernels_mat_row_f32) {
    uint32_t seed = 3;
    for (int t = 0; t < DT_COUNT; t++) {
        void *data;
        mat W = make_mat((dtype)t, 5, 37, &seed, &data);
        float row[37];
        for (int r = 0; r < 5; r++) {
            mat_row_f32(row, &W, r);
            int bad = 0;
            for (int k = 0; k < 37; k++) bad += row[k] != elem(&W, r, k);
            CHECK_EQ_INT(bad, 0);
        }
        free(data);
    }
}

/* ---------------------------------------------------------- grouped */

TEST(kernels_matmul_grouped_vs_individual) {
    kern_pools kp;
    kern_pools_init(&kp);
    enum { T = 9 };
    static const int64_t ns[T] = {1, 0, 3, 5, 17, 2, 8, 1, 0};
    static const int64_t rows[T] = {64, 32, 7, 130, 33, 1, 257, 500, 3};
    static const int64_t cols[T] = {256, 64, 100, 33, 520, 17, 64, 128, 5};
    uint32_t seed = 4242;
    void *data[T];
    mat W[T];
    float *x[T], *yg[T], *yi[T];
    mm_task tasks[T];
    for (int i = 0; i < T; i++) {
        W[i] = make_mat((dtype)(i % DT_COUNT), rows[i], cols[i], &seed, &data[i]);
        x[i] = malloc(sizeof(float) * (size_t)((ns[i] ? ns[i] : 1) * cols[i]));
        yg[i] = malloc(sizeof(float) * (size_t)((ns[i] ? ns[i] : 1) * rows[i]));
        yi[i] = malloc(sizeof(float) * (size_t)((ns[i] ? ns[i] : 1) * rows[i]));
        for (int64_t k = 0; k < ns[i] * cols[i]; k++) x[i][k] = rng_f(&seed);
        tasks[i] = (mm_task){&W[i], x[i], yg[i], ns[i]};
    }
    for (int nt = 1; nt <= 3; nt++) {
        for (int s = 0; s < ISA_COUNT; s++) {
            if (!kp.one[s]) continue;
            pool *p = kern_pool(nt, (isa)s);
            for (int i = 0; i < T; i++) {
                int64_t m = (ns[i] ? ns[i] : 1) * rows[i];
                for (int64_t k = 0; k < m; k++) yg[i][k] = yi[i][k] = 1234.5f;
                matmul(kp.one[s], yi[i], x[i], &W[i], ns[i]);
            }
            matmul_grouped(p, tasks, T);
            for (int i = 0; i < T; i++) {
                int64_t m = (ns[i] ? ns[i] : 1) * rows[i];
                CHECK_MSG(memcmp(yg[i], yi[i], sizeof(float) * (size_t)m) == 0,
                          "%s threads %d task %d differs", isa_name((isa)s), nt, i);
            }
            pool_free(p);
        }
    }
    matmul_grouped(NULL, tasks, 0);
    /* A skipped task (n = 0) may leave its pointers NULL. A NULL pool runs
     * the default kernels (MOE_ISA may pick one other than the last above),
     * so the reference is the default's own product. */
    mm_task with_null[2] = {{NULL, NULL, NULL, 0}, tasks[0]};
    matmul(NULL, yi[0], x[0], &W[0], ns[0]);
    matmul_grouped(NULL, with_null, 2);
    CHECK(memcmp(yg[0], yi[0], sizeof(float) * (size_t)rows[0]) == 0);
    for (int i = 0; i < T; i++) {
        free(data[i]);
        free(x[i]);
        free(yg[i]);
        free(yi[i]);
    }
    kern_pools_free(&kp);
}

/* More tasks than one parallel region takes (batched internally). */
TEST(kernels_matmul_grouped_many_tasks) {
    enum { T = 1100 };
    uint32_t seed = 8;
    void *data;
    mat W = make_mat(DT_BF16, 6, 19, &seed, &data);
    float *x = malloc(sizeof(float) * T * 2 * 19), *y = malloc(sizeof(float) * T * 2 * 6);
    float *ref = malloc(sizeof(float) * 2 * 6);
    mm_task *tasks = malloc(sizeof(mm_task) * T);
    for (int i = 0; i < T * 2 * 19; i++) x[i] = rng_f(&seed);
    for (int i = 0; i < T; i++) tasks[i] = (mm_task){&W, x + i * 2 * 19, y + i * 2 * 6, 1 + i % 2};
    pool *p = pool_create(2);
    matmul_grouped(p, tasks, T);
    int bad = 0;
    for (int i = 0; i < T; i++) {
        matmul(NULL, ref, tasks[i].x, &W, tasks[i].n);
        bad += memcmp(ref, tasks[i].y, sizeof(float) * (size_t)(6 * tasks[i].n)) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    pool_free(p);
    free(tasks);
    free(ref);
    free(x);
    free(y);
    free(data);
}

/* -------------------------------------------------------- vector ops */

TEST(kernels_dot_axpy_each_isa) {
    uint32_t seed = 11;
    static const int lens[] = {0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 100, 1000};
    for (int s = 0; s < ISA_COUNT; s++) {
        const kern_cfg *k = kernels_cfg((isa)s, 0, 0);
        if (!k) continue;
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            int n = lens[l];
            float a[1000], b[1000], y[1001], y0[1001];
            for (int i = 0; i < n; i++) {
                a[i] = rng_f(&seed);
                b[i] = rng_f(&seed);
                y[i] = y0[i] = rng_f(&seed);
            }
            y[n] = y0[n] = 7.0f; /* guard: must not be written */
            double d = 0, scale = 0;
            for (int i = 0; i < n; i++) {
                d += (double)a[i] * b[i];
                scale += fabs((double)a[i] * b[i]);
            }
            CHECK_NEAR(dot(k, a, b, n), d, 1e-6 * scale + 1e-30);
            axpy(k, y, 0.375f, a, n);
            int bad = 0;
            for (int i = 0; i < n; i++)
                bad += fabs(y[i] - (y0[i] + 0.375 * a[i])) > 1e-6 * (fabs(y0[i]) + fabs(a[i]));
            CHECK_MSG(bad == 0, "%s axpy n=%d: %d off", isa_name((isa)s), n, bad);
            CHECK(y[n] == 7.0f);
        }
    }
}

TEST(kernels_rmsnorm) {
    uint32_t seed = 21;
    float x[777], w[777], y[777];
    for (int n = 1; n <= 777; n += 97) {
        for (int i = 0; i < n; i++) {
            x[i] = rng_f(&seed) * 3;
            w[i] = rng_f(&seed);
        }
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
        double r = 1.0 / sqrt(ss / n + 1e-6);
        rmsnorm(y, x, w, n, 1e-6f);
        int bad = 0;
        for (int i = 0; i < n; i++) bad += fabs(y[i] - x[i] * r * w[i]) > 1e-6 * fabs(x[i] * r * w[i]) + 1e-30;
        CHECK_MSG(bad == 0, "n=%d: %d off", n, bad);
        rmsnorm(x, x, w, n, 1e-6f); /* in place */
        CHECK(memcmp(x, y, sizeof(float) * (size_t)n) == 0);
    }
    float z[4] = {0, 0, 0, 0}, one[4] = {1, 1, 1, 1};
    rmsnorm(z, z, one, 4, 1e-5f);
    for (int i = 0; i < 4; i++) CHECK(z[i] == 0.0f);
}

/* The AVX-512 norm against the scalar one it stands for: the same bits,
 * every tail length, in place, and values whose squares are far outside
 * f32 (huge, subnormal). */
TEST(kernels_rmsnorm_avx512_same_bits) {
    if (!kernels_cpu()->avx512) return;
    uint32_t seed = 23;
    static float x[2100], w[2100], a[2100], b[2100];
    const float scale[4] = {1.0f, 3e18f, 1e-30f, 1e-42f};
    for (int sc = 0; sc < 4; sc++)
        for (int n = 1; n <= 2100; n = n < 40 ? n + 1 : n * 2 + 3) {
            for (int i = 0; i < n; i++) {
                x[i] = rng_f(&seed) * scale[sc];
                w[i] = rng_f(&seed) * 2;
            }
            scalar_rmsnorm8(a, x, w, n, 1e-6f);
            avx512_rmsnorm(b, x, w, n, 1e-6f);
            CHECK_MSG(memcmp(a, b, sizeof(float) * (size_t)n) == 0, "scale %g n=%d", (double)scale[sc], n);
            avx512_rmsnorm(x, x, w, n, 1e-6f); /* in place */
            CHECK_MSG(memcmp(x, a, sizeof(float) * (size_t)n) == 0, "in place, scale %g n=%d", (double)scale[sc], n);
        }
}

TEST(kernels_softmax) {
    uint32_t seed = 31;
    float x[300], x0[300];
    for (int n = 1; n <= 300; n += 37) {
        for (int i = 0; i < n; i++) x[i] = x0[i] = rng_f(&seed) * 20;
        softmax(NULL, x, n);
        double m = x0[0], s = 0, sum = 0;
        for (int i = 1; i < n; i++) m = fmax(m, x0[i]);
        for (int i = 0; i < n; i++) s += exp(x0[i] - m);
        int bad = 0;
        for (int i = 0; i < n; i++) {
            double e = exp(x0[i] - m) / s;
            /* x - max is rounded to f32 (as torch does): up to ulp(40)/2 in
             * the exponent, so about 2e-6 relative. */
            bad += fabs(x[i] - e) > 4e-6 * e + 1e-30;
            sum += x[i];
        }
        CHECK_MSG(bad == 0, "n=%d: %d off", n, bad);
        CHECK_NEAR(sum, 1.0, 1e-5);
    }
    float big[3] = {1000.0f, 1000.0f, -1000.0f}; /* no overflow: max subtracted */
    softmax(NULL, big, 3);
    CHECK_NEAR(big[0], 0.5, 1e-7);
    CHECK_NEAR(big[1], 0.5, 1e-7);
    CHECK(big[2] == 0.0f);
}

TEST(kernels_silu_mul) {
    uint32_t seed = 41;
    float g[200], u[200], g0[200];
    for (int i = 0; i < 200; i++) {
        g[i] = g0[i] = rng_f(&seed) * 12;
        u[i] = rng_f(&seed);
    }
    silu_mul(NULL, g, u, 200);
    int bad = 0;
    for (int i = 0; i < 200; i++) {
        double e = g0[i] / (1.0 + exp(-(double)g0[i])) * u[i];
        bad += fabs(g[i] - e) > 1e-6 * fabs(e) + 1e-30;
    }
    CHECK_EQ_INT(bad, 0);
    float big[2] = {-200.0f, 200.0f}, ones[2] = {1, 1};
    silu_mul(NULL, big, ones, 2);
    CHECK(fabsf(big[0]) < 1e-30f);
    CHECK(big[1] == 200.0f);
}

TEST(kernels_rope) {
    static const int dims[] = {2, 64, 128};
    static const int positions[] = {0, 1, 7, 1000, 32767};
    static const float thetas[] = {10000.0f, 1000000.0f};
    uint32_t seed = 51;
    for (size_t d = 0; d < 3; d++)
        for (size_t p = 0; p < 5; p++)
            for (size_t t = 0; t < 2; t++) {
                int hd = dims[d], h = hd / 2, pos = positions[p];
                float c[64], s[64], x[128], x0[128];
                rope_table(c, s, pos, hd, thetas[t]);
                int bad = 0;
                for (int i = 0; i < h; i++) {
                    /* HF: float32 inverse frequency, float32 angle. */
                    float inv = 1.0f / powf(thetas[t], (float)(2 * i) / (float)hd);
                    float ang = (float)pos * inv;
                    bad += fabs(c[i] - cos((double)ang)) > 1e-6 || fabs(s[i] - sin((double)ang)) > 1e-6;
                }
                CHECK_MSG(bad == 0, "table hd=%d pos=%d: %d off", hd, pos, bad);
                if (pos == 0)
                    for (int i = 0; i < h; i++) CHECK(c[i] == 1.0f && s[i] == 0.0f);
                for (int i = 0; i < hd; i++) x[i] = x0[i] = rng_f(&seed);
                rope_apply(x, c, s, hd);
                bad = 0;
                for (int i = 0; i < h; i++) {
                    double e1 = (double)x0[i] * c[i] - (double)x0[i + h] * s[i];
                    double e2 = (double)x0[i + h] * c[i] + (double)x0[i] * s[i];
                    bad += fabs(x[i] - e1) > 1e-6 || fabs(x[i + h] - e2) > 1e-6;
                }
                CHECK_MSG(bad == 0, "apply hd=%d pos=%d: %d off", hd, pos, bad);
            }
    /* Known value: pos 1, i = 0 has inv_freq 1: angle 1 rad. */
    float c[4], s[4];
    rope_table(c, s, 1, 8, 10000.0f);
    CHECK_NEAR(c[0], cos(1.0), 1e-7);
    CHECK_NEAR(s[0], sin(1.0), 1e-7);
    CHECK_NEAR(c[1], cos(0.1), 1e-7); /* 10000^(-2/8) = 0.1 */
}

/* The int8 peak probe runs every path this CPU has and names the one the
 * quantized prefill products of each kernel choice take. */
TEST(kernels_int8_probe_paths) {
    const kern_cpu *cpu = kernels_cpu();
    pool *p = pool_create(1);
    CHECK(p != NULL);
    if (!p) return;
    struct { isa i; int amx; const char *want; } cases[] = {
        {ISA_SCALAR, 0, "scalar"},
        {ISA_AVX2, 0, "avx2"},
        {ISA_AVX512, 0, cpu->vnni ? "avx512-vnni" : "avx2"},
        {ISA_AVX512, 1, "amx-int8"},
        {ISA_AVX2, 0, "avx-vnni"}, /* the AVX2 path with AVX-VNNI */
    };
    const size_t last = sizeof cases / sizeof cases[0] - 1;
    for (size_t c = 0; c <= last; c++) {
        const kern_cfg *k = c == last ? kernels_cfg_avxvnni() : kernels_cfg(cases[c].i, cases[c].amx, 0);
        if (!k) continue; /* a path this CPU lacks */
        const char *path = NULL;
        double ops = probe_int8_ops(p, k, 1, &path);
        CHECK_MSG(path && !strcmp(path, cases[c].want), "case %zu: path %s, want %s", c,
                  path ? path : "(null)", cases[c].want);
        CHECK_MSG(ops > 1e6 && ops < 1e16, "case %zu (%s): %g op/s", c, cases[c].want, ops);
        /* the block-scaled rate: on AMX (far below the tile unit's peak) and
         * on AVX-512 VNNI (near its peak: two timings, so only its order) */
        double blk = probe_int8_block_ops(p, k, 1);
        if (!strcmp(cases[c].want, "amx-int8"))
            CHECK_MSG(blk > 1e6 && blk < ops, "AMX with a scale per 32-block: %g op/s (tile peak %g)", blk, ops);
        else if (!strcmp(cases[c].want, "avx512-vnni"))
            CHECK_MSG(blk > 1e6 && blk < 2 * ops, "VNNI with a scale per 32-block: %g op/s (peak %g)", blk, ops);
        else
            CHECK_MSG(blk == 0.0, "case %zu (%s): a block rate %g", c, cases[c].want, blk);
    }
    pool_free(p);
}
