/*
 * test_gemm.c - the blocked GEMM of src/kernels/gemm.h against a plain
 * double loop: every ISA, every operand layout the library uses (rows or
 * columns of A contiguous, B rows along n or B^T), shapes that cross the
 * tile, strip and K-block edges (M, N, K from 1 to 700), accumulate and
 * overwrite (set over NaN: never read; K = 0 zeroes), and 1 vs 2 threads
 * bit-identical. Then matmul's route through it (f32 W, n >= 64 rows)
 * against matmul_ref, threaded and grouped.
 */
#include <stdlib.h>

#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "kern_pool.h"
#include "test.h"

static uint32_t rng_next(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static float rng_f(uint32_t *s) { return (float)(rng_next(s) >> 8) / 8388608.0f - 1.0f; }

typedef struct shape {
    int64_t M, N, K;
    int a_rows, b_rows; /* A rows contiguous (else columns); B rows along n (else B^T) */
} shape;

TEST(gemm_matches_double) {
    static const shape shapes[] = {
        {1, 1, 1, 1, 1},      {13, 33, 7, 1, 1},   {12, 32, 256, 0, 1},  {37, 70, 300, 1, 0},
        {100, 257, 513, 0, 1}, {385, 20, 40, 1, 1}, {64, 64, 64, 1, 0},   {700, 300, 90, 1, 0},
        {5, 600, 260, 0, 0},  {97, 1, 3, 0, 1},    {24, 48, 0, 1, 1},
    };
    uint32_t seed = 9;
    kern_pools kp;
    kern_pools_init(&kp);
    int ns = (int)(sizeof shapes / sizeof shapes[0]);
    for (int si = 0; si < ns; si++) {
        const shape *h = &shapes[si];
        int64_t M = h->M, N = h->N, K = h->K, ldc = N + 3;
        /* A [M][K] (rows) or [K][M] (columns); B [K][N] (rows) or [N][K] */
        float *A = malloc(sizeof(float) * (size_t)(M * K + 1));
        float *B = malloc(sizeof(float) * (size_t)(K * N + 1));
        float *C0 = malloc(sizeof(float) * (size_t)(M * ldc));
        float *C1 = malloc(sizeof(float) * (size_t)(M * ldc));
        float *C2 = malloc(sizeof(float) * (size_t)(M * ldc));
        double *want = malloc(sizeof(double) * (size_t)(M * N));
        for (int64_t i = 0; i < M * K; i++) A[i] = rng_f(&seed);
        for (int64_t i = 0; i < K * N; i++) B[i] = rng_f(&seed);
        for (int64_t i = 0; i < M * ldc; i++) C0[i] = rng_f(&seed);
        int64_t as_m = h->a_rows ? K : 1, as_k = h->a_rows ? 1 : M;
        int64_t bs_k = h->b_rows ? N : 1, bs_n = h->b_rows ? 1 : K;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++) s += (double)A[m * as_m + k * as_k] * B[k * bs_k + n * bs_n];
                want[m * N + n] = s;
            }
        for (int is = 0; is < ISA_COUNT; is++) {
            if (!kp.one[is]) continue;
            pool *p1 = kp.one[is], *p2 = kp.two[is];
            for (int set = 0; set < 2; set++) {
                for (int64_t i = 0; i < M * ldc; i++) C1[i] = C2[i] = set && i % ldc < N ? NAN : C0[i];
                /* the second as two stacked matrices split at row ks of B */
                int64_t ks = K / 3;
                const float *B2 = B + ks * bs_k; /* rows from ks on, re-based */
                gemm_op o1 = {C1, ldc, A, as_m, as_k, B, bs_k, bs_n, M, N, K, set, NULL, 0};
                gemm_op o2 = {C2, ldc, A, as_m, as_k, B, bs_k, bs_n, M, N, K, set, B2, ks};
                gemm_run(p1, &o1, 1);
                gemm_run(p2, &o2, 1);
                CHECK(memcmp(C1, C2, sizeof(float) * (size_t)(M * ldc)) == 0);
                int bad = 0;
                for (int64_t m = 0; m < M; m++) {
                    for (int64_t n = 0; n < N; n++) {
                        double w = want[m * N + n] + (set ? 0.0 : C0[m * ldc + n]);
                        bad += !(fabs(C1[m * ldc + n] - w) <= 1e-5 * (1 + sqrt((double)K)));
                    }
                    for (int64_t n = N; n < ldc; n++) bad += C1[m * ldc + n] != C0[m * ldc + n];
                }
                CHECK_MSG(bad == 0, "%s M%lld N%lld K%lld a_rows %d b_rows %d set %d: %d off",
                          isa_name((isa)is), (long long)M, (long long)N, (long long)K, h->a_rows,
                          h->b_rows, set, bad);
            }
        }
        free(A);
        free(B);
        free(C0);
        free(C1);
        free(C2);
        free(want);
    }
    kern_pools_free(&kp);
}

/* matmul with f32 weights and many rows (the GEMM route on AVX-512) */
TEST(gemm_matmul_route) {
    static const int64_t shapes[][3] = {{64, 96, 256}, {65, 37, 300}, {200, 512, 64}, {130, 4, 20}};
    uint32_t seed = 10;
    kern_pools kp;
    kern_pools_init(&kp);
    for (int si = 0; si < 4; si++) {
        int64_t n = shapes[si][0], rows = shapes[si][1], cols = shapes[si][2];
        float *x = malloc(sizeof(float) * (size_t)(n * cols));
        float *w = malloc(sizeof(float) * (size_t)(rows * cols));
        float *ref = malloc(sizeof(float) * (size_t)(n * rows));
        float *y1 = malloc(sizeof(float) * (size_t)(n * rows));
        float *y2 = malloc(sizeof(float) * (size_t)(n * rows));
        float *y3 = malloc(sizeof(float) * (size_t)(2 * n * rows));
        for (int64_t i = 0; i < n * cols; i++) x[i] = rng_f(&seed);
        for (int64_t i = 0; i < rows * cols; i++) w[i] = rng_f(&seed);
        mat W = {w, DT_F32, rows, cols};
        matmul_ref(ref, x, &W, n);
        for (int is = 0; is < ISA_COUNT; is++) {
            if (!kp.one[is]) continue;
            pool *p1 = kp.one[is], *p2 = kp.two[is];
            matmul(p1, y1, x, &W, n);
            matmul(p2, y2, x, &W, n);
            CHECK(memcmp(y1, y2, sizeof(float) * (size_t)(n * rows)) == 0);
            int bad = 0;
            for (int64_t i = 0; i < n; i++)
                for (int64_t r = 0; r < rows; r++) {
                    double scale = 0;
                    for (int64_t k = 0; k < cols; k++) scale += fabs((double)x[i * cols + k] * w[r * cols + k]);
                    bad += fabs((double)y1[i * rows + r] - ref[i * rows + r]) > 1e-5 * scale + 1e-30;
                }
            CHECK_MSG(bad == 0, "%s n%lld rows%lld cols%lld: %d off", isa_name((isa)is), (long long)n,
                      (long long)rows, (long long)cols, bad);
            /* grouped: the same task twice, and one too small for the GEMM */
            mm_task t[3] = {{&W, x, y3, n}, {&W, x, y3 + n * rows, n}, {&W, x, y2, 5}};
            matmul_grouped(p2, t, 3);
            CHECK(memcmp(y3, y1, sizeof(float) * (size_t)(n * rows)) == 0);
            CHECK(memcmp(y3 + n * rows, y1, sizeof(float) * (size_t)(n * rows)) == 0);
            /* rows by index are for quantized weights only: f32 says no, and
             * a task given them anyway comes back NaN, never wrong */
            CHECK(!matmul_idx_ok(p2, &W, n));
            int one = 0;
            mm_idx ix[2] = {{NULL, 0}, {&one, 1}};
            mm_task u[2] = {{&W, x, y3, n}, {&W, x, y2, 1}};
            matmul_grouped_idx(p2, u, ix, 2);
            CHECK(memcmp(y3, y1, sizeof(float) * (size_t)(n * rows)) == 0);
            CHECK(isnan(y2[0]) && isnan(y2[rows - 1]));
        }
        free(x);
        free(w);
        free(ref);
        free(y1);
        free(y2);
        free(y3);
    }
    kern_pools_free(&kp);
}
