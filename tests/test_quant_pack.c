/*
 * test_quant_pack.c - weights interleaved at load (quant_pack.c, QT_Q8_0_R8,
 * QT_Q4_K_R8, QT_Q5_K_R8, QT_Q6_K_R8, QT_IQ4_XS_R8)
 * on every path:
 *   - packing is a permutation: every row unpacks to its stored bytes, and a
 *     matrix whose rows are not a multiple of 8, or a type without a packed
 *     form, is refused untouched;
 *   - the AVX2 kernels (and their AVX-VNNI build) that read the packed
 *     layout give the bits of the stored 8-row kernels (the same exact block
 *     sums in the same order) from 2 rows of x, and within the paths'
 *     tolerance for 1 (the stored decode adds in another order); one row of
 *     x alone gives the bits it gives among many;
 *   - the other paths (scalar, AVX-512, AMX) unpack each row and agree with
 *     the scalar reference on the stored matrix;
 *   - thread splits (2 threads, row units of 16) and the grouped call, with
 *     packed and stored tasks side by side.
 */
#include "test.h"
#include "base/dtype.h"
#include "base/pool.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "quant_check.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t next_u32(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static float next_f(uint32_t *s) { return (float)(next_u32(s) >> 8) / 8388608.0f - 1.0f; }

/* Random bytes of type (Q8_0, Q4_K, Q5_K, Q6_K, IQ4_XS) with finite f16
 * scales (each block's first 2 bytes; Q4_K / Q5_K: and dmin, the next 2;
 * Q6_K: its last 2). */
static void *make_w(int type, int64_t rows, int64_t cols, uint32_t *seed) {
    const size_t total = quant_row_bytes(type, cols) * (size_t)rows;
    const size_t bb = type == QT_IQ4_XS ? 136 : type == QT_Q4_K ? 144 : type == QT_Q5_K ? 176 : type == QT_Q6_K ? 210 : 34;
    unsigned char *w = malloc(total);
    for (size_t i = 0; i < total; i++) w[i] = (unsigned char)next_u32(seed);
    for (size_t b = 0; b < total; b += bb)
        for (int f = 0; f < (type == QT_Q4_K || type == QT_Q5_K ? 2 : 1); f++) {
            const uint16_t h = f32_to_f16((type == QT_Q8_0 ? 0.02f : type == QT_Q6_K ? 0.0002f : 0.002f) * next_f(seed));
            memcpy(w + b + (type == QT_Q6_K ? 208 : 2 * f), &h, 2);
        }
    return w;
}
static void *make_q8(int64_t rows, int64_t cols, uint32_t *seed) { return make_w(QT_Q8_0, rows, cols, seed); }

/* A K-quant type's pack: every row unpacks to its bytes; refusals leave
 * the matrix as it was. */
static void k_roundtrip(int type, int ptype) {
    uint32_t seed = 5;
    const int64_t rows = 24, K = 768;
    const size_t rb = quant_row_bytes(type, K);
    unsigned char *W = make_w(type, rows, K, &seed), *P = malloc(rb * rows), *row = malloc(rb);
    memcpy(P, W, rb * rows);
    CHECK(qt_packed_of(type) == ptype && qt_unpacked(ptype) == type && qt_is_packed(ptype));
    CHECK(quant_row_bytes(ptype, K) == rb);
    CHECK(quant_pack(type, P, rows, K) == 0);
    CHECK(memcmp(P, W, rb * rows) != 0);
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        quant_unpack_row(ptype, P, r, K, row);
        bad += memcmp(row, W + rb * (size_t)r, rb) != 0;
    }
    CHECK_MSG(bad == 0, "type %d: %d of %lld rows unpack to other bytes", type, bad, (long long)rows);
    memcpy(P, W, rb * rows);
    CHECK(quant_pack(type, P, 20, K) == -1);
    CHECK(quant_pack(type, P, 8, 300) == -1);
    CHECK(memcmp(P, W, rb * rows) == 0);
    free(row);
    free(P);
    free(W);
}

TEST(quant_pack_iq4_xs_roundtrip) { k_roundtrip(QT_IQ4_XS, QT_IQ4_XS_R8); }

TEST(quant_pack_q4_k_roundtrip) { k_roundtrip(QT_Q4_K, QT_Q4_K_R8); }

TEST(quant_pack_q5_k_roundtrip) { k_roundtrip(QT_Q5_K, QT_Q5_K_R8); }

TEST(quant_pack_q6_k_roundtrip) { k_roundtrip(QT_Q6_K, QT_Q6_K_R8); }

TEST(quant_pack_q8_0_roundtrip_and_refusals) {
    uint32_t seed = 3;
    const int64_t rows = 48, K = 96;
    const size_t rb = quant_row_bytes(QT_Q8_0, K);
    unsigned char *W = make_q8(rows, K, &seed), *P = malloc(rb * rows), *row = malloc(rb);
    memcpy(P, W, rb * rows);
    CHECK(qt_packed_of(QT_Q8_0) == QT_Q8_0_R8);
    CHECK(qt_unpacked(QT_Q8_0_R8) == QT_Q8_0 && qt_unpacked(QT_Q4_K) == QT_Q4_K);
    CHECK(qt_is_packed(QT_Q8_0_R8) && !qt_is_packed(QT_Q8_0));
    CHECK(quant_row_bytes(QT_Q8_0_R8, K) == rb);
    CHECK(quant_pack(QT_Q8_0, P, rows, K) == 0);
    CHECK(memcmp(P, W, rb * rows) != 0);
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        quant_unpack_row(QT_Q8_0_R8, P, r, K, row);
        bad += memcmp(row, W + rb * (size_t)r, rb) != 0;
    }
    CHECK_MSG(bad == 0, "%d of %lld rows unpack to other bytes", bad, (long long)rows);
    /* refused, untouched: rows not a multiple of 16, no packed form, bad cols */
    memcpy(P, W, rb * rows);
    CHECK(quant_pack(QT_Q8_0, P, 36, K) == -1);
    CHECK(quant_pack(QT_Q8_0, P, 0, K) == -1);
    CHECK(quant_pack(QT_Q4_0, P, 16, 256) == -1); /* no packed form */
    CHECK(quant_pack(QT_Q8_0, P, 16, 33) == -1);
    CHECK(qt_packed_of(QT_Q8_0_R8) == -1);
    CHECK(memcmp(P, W, rb * rows) == 0);
    free(row);
    free(P);
    free(W);
}

static void every_path(int type, const int64_t (*shapes)[2], int ns) {
    enum { NMAX = 18 };
    pool *pools[QUANT_PATHS];
    for (int i = 0; i < QUANT_PATHS; i++) pools[i] = quant_path_pool(i);
    uint32_t seed = 11;
    for (int s = 0; s < ns; s++) {
        const int64_t rows = shapes[s][0], K = shapes[s][1];
        const size_t rb = quant_row_bytes(type, K);
        void *W = make_w(type, rows, K, &seed), *P = malloc(rb * (size_t)rows);
        memcpy(P, W, rb * (size_t)rows);
        CHECK(quant_pack(type, P, rows, K) == 0);
        float *x = malloc(sizeof(float) * (size_t)(NMAX * K));
        for (int64_t i = 0; i < NMAX * K; i++) x[i] = next_f(&seed) + next_f(&seed);
        void *scratch = malloc(qmatmul_scratch_size(qt_packed_of(type), NMAX, K));
        float *ref = malloc(sizeof(float) * (size_t)(NMAX * rows)), *y = malloc(sizeof(float) * (size_t)(NMAX * rows));
        float *ys = malloc(sizeof(float) * (size_t)(NMAX * rows)), *y1 = malloc(sizeof(float) * (size_t)rows);
        for (int64_t n = 1; n <= NMAX; n++) {
            qmatmul_ref(ref, x, W, type, n, rows, K, scratch);
            qmatmul_ref(y, x, P, qt_packed_of(type), n, rows, K, scratch);
            CHECK_MSG(!memcmp(y, ref, sizeof(float) * (size_t)(n * rows)),
                      "scalar reference of the packed [%lld][%lld] n=%lld differs from the stored", (long long)rows,
                      (long long)K, (long long)n);
            for (int is = 0; is < QUANT_PATHS; is++) {
                if (!pools[is]) continue;
                qmatmul(pools[is], y, x, P, qt_packed_of(type), n, rows, K, scratch);
                const int bad = quant_count_off(y, ref, type, W, rows, K, x, n);
                CHECK_MSG(bad == 0, "packed %d [%lld][%lld] n=%lld %s: %d outputs off", type, (long long)rows,
                          (long long)K, (long long)n, quant_path_label(is), bad);
                if (is != ISA_AVX2 && is != QUANT_PATH_AVXVNNI) continue;
                /* the stored kernels' bits (Q8_0: the 8-row kernels from 2
                 * rows of x, the GEMV's exact block sums and fma chain for 1;
                 * IQ4_XS: the interleaved kernel from its threshold, the
                 * few-row kernels' lanes below it) */
                {
                    qmatmul(pools[is], ys, x, W, type, n, rows, K, scratch);
                    CHECK_MSG(!memcmp(ys, y, sizeof(float) * (size_t)(n * rows)),
                              "packed %d [%lld][%lld] n=%lld %s: not the stored kernels' bits", type, (long long)rows,
                              (long long)K, (long long)n, quant_path_label(is));
                }
                /* each row of x alone: its bits among the n (Q8_0 only: the
                 * stored IQ4_XS kernels add a few rows in another order
                 * than many, and packed keeps their bits) */
                if (type != QT_Q8_0) continue;
                int diff = 0;
                for (int64_t i = 0; i < n; i++) {
                    qmatmul(pools[is], y1, x + i * K, P, qt_packed_of(type), 1, rows, K, scratch);
                    diff += memcmp(y1, y + i * rows, sizeof(float) * (size_t)rows) != 0;
                }
                CHECK_MSG(diff == 0, "packed %d [%lld][%lld]: %d of %lld rows of x differ alone and among %lld",
                          type, (long long)rows, (long long)K, diff, (long long)n, (long long)n);
            }
        }
        free(y1);
        free(ys);
        free(y);
        free(ref);
        free(scratch);
        free(x);
        free(P);
        free(W);
    }
    for (int i = 0; i < QUANT_PATHS; i++) pool_free(pools[i]);
}

TEST(quant_pack_q8_0_every_path) {
    /* groups of 8 rows: 1, 5 (a run of 4 and one more), 10; blocks: 1, 21
     * (the GEMV's last pair odd), and 64 */
    static const int64_t shapes[][2] = {{8, 32}, {40, 672}, {80, 2048}};
    every_path(QT_Q8_0, shapes, 3);
}

TEST(quant_pack_iq4_xs_every_path) {
    /* super-blocks: 1, 3 (a chunk of 2 and one more), 8 */
    static const int64_t shapes[][2] = {{8, 256}, {40, 768}, {24, 2048}};
    every_path(QT_IQ4_XS, shapes, 3);
}

TEST(quant_pack_q4_k_every_path) {
    /* super-blocks: 1, 3 (a chunk of 2 and one more), 8 */
    static const int64_t shapes[][2] = {{8, 256}, {40, 768}, {24, 2048}};
    every_path(QT_Q4_K, shapes, 3);
}

TEST(quant_pack_q5_k_every_path) {
    static const int64_t shapes[][2] = {{8, 256}, {40, 768}, {24, 2048}};
    every_path(QT_Q5_K, shapes, 3);
}

TEST(quant_pack_q6_k_every_path) {
    static const int64_t shapes[][2] = {{8, 256}, {40, 768}, {24, 2048}};
    every_path(QT_Q6_K, shapes, 3);
}

TEST(quant_pack_q8_0_grouped_with_stored_tasks) {
    enum { T = 4 };
    static const int64_t rows[T] = {32, 40, 64, 8}, n[T] = {5, 1, 17, 3};
    const int64_t K = 256;
    const size_t rb = quant_row_bytes(QT_Q8_0, K);
    uint32_t seed = 21;
    pool *p = kern_pool_cfg(2, kernels_default());
    void *W[T], *P[T];
    float *x[T], *y[T], *ref[T];
    qmm_task tasks[T];
    for (int t = 0; t < T; t++) {
        W[t] = make_q8(rows[t], K, &seed);
        P[t] = malloc(rb * (size_t)rows[t]);
        memcpy(P[t], W[t], rb * (size_t)rows[t]);
        CHECK(quant_pack(QT_Q8_0, P[t], rows[t], K) == 0);
        x[t] = malloc(sizeof(float) * (size_t)(n[t] * K));
        for (int64_t i = 0; i < n[t] * K; i++) x[t][i] = next_f(&seed);
        y[t] = malloc(sizeof(float) * (size_t)(n[t] * rows[t]));
        ref[t] = malloc(sizeof(float) * (size_t)(n[t] * rows[t]));
        /* tasks 0 and 2 packed, 1 and 3 stored */
        tasks[t] = (qmm_task){t % 2 ? W[t] : P[t], t % 2 ? QT_Q8_0 : QT_Q8_0_R8, rows[t], K, x[t], y[t], n[t], NULL, 0};
    }
    /* task 2 takes its rows of x by index (as routed experts do): rows
     * 16, 15, ..., 0 of its x */
    int idx[17];
    for (int i = 0; i < 17; i++) idx[i] = 16 - i;
    tasks[2].idx = idx;
    tasks[2].x_rows = 17;
    void *scratch = malloc(qmatmul_grouped_scratch_size(tasks, T));
    qmatmul_grouped(p, tasks, T, scratch);
    for (int t = 0; t < T; t++) {
        void *s1 = malloc(qmatmul_scratch_size(tasks[t].type, n[t], K));
        float *xt = malloc(sizeof(float) * (size_t)(n[t] * K));
        for (int64_t i = 0; i < n[t]; i++)
            memcpy(xt + i * K, x[t] + (tasks[t].idx ? tasks[t].idx[i] : i) * K, sizeof(float) * (size_t)K);
        qmatmul(p, ref[t], xt, tasks[t].W, tasks[t].type, n[t], rows[t], K, s1);
        free(xt);
        CHECK_MSG(!memcmp(ref[t], y[t], sizeof(float) * (size_t)(n[t] * rows[t])),
                  "grouped task %d (%s) differs from its own product", t, t % 2 ? "stored" : "packed");
        free(s1);
        free(ref[t]);
        free(y[t]);
        free(x[t]);
        free(P[t]);
        free(W[t]);
    }
    free(scratch);
    pool_free(p);
}
