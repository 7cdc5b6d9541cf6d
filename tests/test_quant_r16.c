/*
 * test_quant_r16.c - the interleaved kernels of the 32-block types (Q8_0,
 * Q4_0, MXFP4, IQ4_NL, Q5_0, Q4_1, Q5_1 from a few rows of x: 16 rows per
 * register in src/kernels/quant_r16_avx512.c without AMX, 8 in
 * quant_r8_avx2.c on the AVX2 path) on every path against the scalar
 * reference:
 *   - every count of x rows 1..17 (tiles of 1 to 8 rows, alone and after
 *     full tiles; the counts below and above each type's threshold);
 *   - W groups of 16 (8) rows with a partial one (37 = 16 + 16 + 5 rows), a
 *     chunk of 16 blocks with a tail (21 blocks) and a lone block;
 *   - W of random bytes with the scales (and mins) set to finite f16
 *     values, MXFP4's E8M0 byte including the subnormal scales e = 0, 1;
 *   - the same bits whatever rows share a group: W cut at rows 7 and 21
 *     (groups that start mid-way) gives the rows of the whole product.
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

/* Uniform in [-1, 1). */
static float next_f(uint32_t *s) { return (float)(next_u32(s) >> 8) / 8388608.0f - 1.0f; }

/* Random bytes, each block's f16 scale (and min) set to a small finite
 * value, or MXFP4's E8M0 byte to 0, 1 or 100..140. */
static void *make_w(int type, int64_t rows, int64_t cols, uint32_t *seed) {
    const qtype_traits *t = quant_traits(type);
    const size_t total = quant_row_bytes(type, cols) * (size_t)rows;
    unsigned char *w = malloc(total);
    for (size_t i = 0; i < total; i++) w[i] = (unsigned char)next_u32(seed);
    const int has_min = type == QT_Q4_1 || type == QT_Q5_1;
    for (size_t b = 0; b < total; b += (size_t)t->block_bytes) {
        if (type == QT_MXFP4) {
            const uint32_t r = next_u32(seed) % 8;
            w[b] = (unsigned char)(r < 2 ? r : 100 + next_u32(seed) % 41);
            continue;
        }
        for (int f = 0; f < 1 + has_min; f++) {
            const uint16_t h = f32_to_f16(0.02f * next_f(seed));
            memcpy(w + b + 2 * f, &h, 2);
        }
    }
    return w;
}

TEST(quant_r16_tiles_groups_and_chunks) {
    static const int types[] = {QT_Q8_0, QT_Q4_0, QT_MXFP4, QT_IQ4_NL, QT_Q5_0, QT_Q4_1, QT_Q5_1};
    static const int64_t shapes[][2] = {{37, 672}, {5, 32}};
    enum { NMAX = 17 };
    pool *pools[QUANT_PATHS];
    for (int i = 0; i < QUANT_PATHS; i++) pools[i] = quant_path_pool(i);
    uint32_t seed = 77;
    for (int ti = 0; ti < (int)(sizeof types / sizeof types[0]); ti++) {
        const int type = types[ti];
        for (int s = 0; s < 2; s++) {
            const int64_t rows = shapes[s][0], K = shapes[s][1];
            const size_t rb = quant_row_bytes(type, K);
            void *W = make_w(type, rows, K, &seed);
            float *x = malloc(sizeof(float) * (size_t)(NMAX * K));
            for (int64_t i = 0; i < NMAX * K; i++) x[i] = next_f(&seed) + next_f(&seed);
            void *scratch = malloc(qmatmul_scratch_size(type, NMAX, K));
            float *ref = malloc(sizeof(float) * (size_t)(NMAX * rows)), *y = malloc(sizeof *y * (size_t)(NMAX * rows));
            float *part = malloc(sizeof(float) * (size_t)(NMAX * rows));
            for (int64_t n = 1; n <= NMAX; n++) {
                qmatmul_ref(ref, x, W, type, n, rows, K, scratch);
                for (int is = 0; is < QUANT_PATHS; is++) {
                    if (!pools[is]) continue;
                    qmatmul(pools[is], y, x, W, type, n, rows, K, scratch);
                    const int bad = quant_count_off(y, ref, type, W, rows, K, x, n);
                    CHECK_MSG(bad == 0, "%s W [%lld][%lld] n=%lld path %d: %d outputs off", quant_traits(type)->name,
                              (long long)rows, (long long)K, (long long)n, is, bad);
                    if (rows < 22) continue;
                    /* rows [0, 7), [7, 21), [21, rows) as three products */
                    static const int64_t cut[] = {0, 7, 21, 0};
                    int diff = 0;
                    for (int c = 0; c < 3; c++) {
                        const int64_t r0 = cut[c], r1 = c == 2 ? rows : cut[c + 1], m = r1 - r0;
                        qmatmul(pools[is], part, x, (const unsigned char *)W + rb * (size_t)r0, type, n, m, K,
                                scratch);
                        for (int64_t i = 0; i < n; i++)
                            diff += memcmp(part + i * m, y + i * rows + r0, sizeof(float) * (size_t)m) != 0;
                    }
                    CHECK_MSG(diff == 0, "%s n=%lld path %d: rows cut at 7 and 21 differ from the whole",
                              quant_traits(type)->name, (long long)n, is);
                }
            }
            free(part);
            free(y);
            free(ref);
            free(scratch);
            free(x);
            free(W);
        }
    }
    for (int i = 0; i < QUANT_PATHS; i++) pool_free(pools[i]);
}

/* On AVX2 (with or without AVX-VNNI), a Q8_0 row of x alone (the decode
 * GEMV) gives the same bits as the same row among many (the interleaved
 * 8-row kernel): both take each block's exact integer sum and add it in
 * block order with one fma. */
static void r8_decode_equals_prefill(pool *p, const char *name) {
    static const int64_t shapes[][2] = {{37, 672}, {5, 32}, {64, 2048}};
    enum { N = 12 };
    uint32_t seed = 5;
    for (int s = 0; s < 3; s++) {
        const int64_t rows = shapes[s][0], K = shapes[s][1];
        void *W = make_w(QT_Q8_0, rows, K, &seed);
        float *x = malloc(sizeof(float) * (size_t)(N * K));
        for (int64_t i = 0; i < N * K; i++) x[i] = next_f(&seed) + next_f(&seed);
        void *scratch = malloc(qmatmul_scratch_size(QT_Q8_0, N, K));
        float *y = malloc(sizeof(float) * (size_t)(N * rows)), *y1 = malloc(sizeof(float) * (size_t)rows);
        qmatmul(p, y, x, W, QT_Q8_0, N, rows, K, scratch);
        int diff = 0;
        for (int64_t i = 0; i < N; i++) {
            qmatmul(p, y1, x + i * K, W, QT_Q8_0, 1, rows, K, scratch);
            diff += memcmp(y1, y + i * rows, sizeof(float) * (size_t)rows) != 0;
        }
        CHECK_MSG(diff == 0, "%s, q8_0 W [%lld][%lld]: %d of %d rows of x differ alone and among %d", name,
                  (long long)rows, (long long)K, diff, N, N);
        free(y1);
        free(y);
        free(scratch);
        free(x);
        free(W);
    }
}

TEST(quant_r8_q8_0_decode_equals_prefill) {
    pool *p = quant_path_pool(ISA_AVX2), *pv = quant_path_pool(QUANT_PATH_AVXVNNI);
    if (!p) SKIP("no AVX2");
    r8_decode_equals_prefill(p, "avx2");
    if (pv) r8_decode_equals_prefill(pv, "avx2+avx-vnni");
    pool_free(pv);
    pool_free(p);
}

/* The interleaved kernels on AVX-512 without AMX (quant_r16_avx512.c,
 * quant_r16k_avx512.c): for a few rows of x (Q8_0, Q4_K and IQ4_XS up to
 * 12, Q5_K, Q6_K and the 32-block nibble types up to 8) the codes go from the
 * transposes straight into the products (rp_fused, rk_fused), for more
 * through the interleaved buffer; both must give the bits the many-row
 * product gives each row, and both match the reference. Each row count
 * from the interleaved kernels' threshold to 16 (one tile, two equal ones,
 * the buffer) against the same rows among 33; W with a partial group of 16
 * rows and, for the 256-blocks, a tail chunk of super-blocks. */
TEST(quant_r16_few_rows_equal_many) {
    pool *p = quant_path_pool(ISA_AVX512);
    if (!p) SKIP("no AVX-512");
    static const int types[] = {QT_Q8_0, QT_Q4_0, QT_MXFP4, QT_IQ4_NL, QT_Q5_0, QT_Q4_1,
                                QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_IQ4_XS};
    static const int64_t shapes[][2] = {{37, 768}, {21, 1280}, {64, 2048}};
    enum { N = 33, NT = sizeof types / sizeof types[0] };
    uint32_t seed = 13;
    for (int ti = 0; ti < NT; ti++) {
        const int type = types[ti];
        const int64_t n0 = type == QT_Q6_K ? 5 : type == QT_Q8_0 || type == QT_IQ4_XS || type == QT_Q4_K || type == QT_Q5_K ? 2 : 4;
        for (int s = 0; s < 3; s++) {
            const int64_t rows = shapes[s][0], K = shapes[s][1];
            const size_t rb = quant_row_bytes(type, K);
            unsigned char *W = malloc(rb * (size_t)rows);
            float *x = malloc(sizeof(float) * (size_t)(N * K));
            for (int64_t r = 0; r < rows; r++) {
                for (int64_t k = 0; k < K; k++) x[k] = next_f(&seed);
                quant_traits(type)->quantize(x, W + rb * (size_t)r, K);
            }
            for (int64_t i = 0; i < N * K; i++) x[i] = next_f(&seed) + next_f(&seed);
            void *scratch = malloc(qmatmul_scratch_size(type, N, K));
            float *all = malloc(sizeof(float) * (size_t)(N * rows)), *y = malloc(sizeof(float) * (size_t)(N * rows));
            float *ref = malloc(sizeof(float) * (size_t)(N * rows));
            qmatmul(p, all, x, W, type, N, rows, K, scratch);
            for (int64_t n = n0; n <= 16; n++) {
                qmatmul(p, y, x, W, type, n, rows, K, scratch);
                qmatmul_ref(ref, x, W, type, n, rows, K, scratch);
                const int bad = quant_count_off(y, ref, type, W, rows, K, x, n);
                CHECK_MSG(bad == 0, "%s W [%lld][%lld] n=%lld: %d outputs off the reference", quant_traits(type)->name,
                          (long long)rows, (long long)K, (long long)n, bad);
                CHECK_MSG(memcmp(y, all, sizeof(float) * (size_t)(n * rows)) == 0,
                          "%s W [%lld][%lld]: %lld rows of x differ from the same rows among %d",
                          quant_traits(type)->name, (long long)rows, (long long)K, (long long)n, N);
            }
            free(ref);
            free(y);
            free(all);
            free(scratch);
            free(x);
            free(W);
        }
    }
    pool_free(p);
}
