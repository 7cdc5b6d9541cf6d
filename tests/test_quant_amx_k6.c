/*
 * test_quant_amx_k6.c - Q6_K, Q3_K and IQ4_XS products on AMX
 * (quant_amx_k6_avx512.c): each block's integer sum is the reference's and
 * is scaled as the reference scales it, so the outputs equal the scalar
 * reference bit for bit, on quantized data and on raw blocks of every bit
 * pattern (scales and values at their extremes included), for partial row
 * groups, partial x tiles, partial K chunks and more x tiles than one pass
 * holds, with one thread or two. The kernel is called directly on tiles
 * and through qmatmul (which must give the same bits).
 */
#include "test.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernels/quant_impl.h"
#include "kern_pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t next_u32(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s;
}

static float next_val(uint32_t *s) { return (float)(next_u32(s) >> 8) / 16777216.0f - 0.5f; }

static const kern_cfg *amx_cfg_here(void) { return kernels_cfg(ISA_AVX512, 1, kernels_cpu()->vbmi); }

/* W [rows][K]: quantized by the reference quantizer (raw = 0), or random
 * bytes with the f16 scale d set to 2^-10 (raw = 1), or every scale and
 * value at the extreme of its range (raw = 2: Q6_K scale -128, value -32;
 * Q3_K scale -32, value -4; IQ4_XS scale -32, value -127). */
static void *make_w(int type, int64_t rows, int64_t K, int raw, uint32_t *seed) {
    const size_t rb = quant_row_bytes(type, K), bb = quant_traits(type)->block_bytes;
    unsigned char *w = malloc(rb * (size_t)rows);
    float *row = malloc(sizeof(float) * (size_t)K);
    const uint16_t d = 0x1400; /* 2^-10 */
    for (int64_t r = 0; r < rows; r++) {
        unsigned char *wr = w + rb * (size_t)r;
        if (raw == 0) {
            for (int64_t k = 0; k < K; k++) row[k] = 0.05f * next_val(seed);
            quant_traits(type)->quantize(row, wr, K);
            continue;
        }
        for (size_t i = 0; i < rb; i++) wr[i] = raw == 1 ? (unsigned char)(next_u32(seed) >> 24) : 0;
        for (size_t b = 0; b < rb / bb; b++) {
            unsigned char *blk = wr + b * bb;
            if (type == QT_Q6_K) {
                if (raw == 2) memset(blk + offsetof(block_q6_K, scales), 0x80, QK_K / 16);
                memcpy(blk + offsetof(block_q6_K, d), &d, 2);
            } else {
                memcpy(blk + (type == QT_Q3_K ? offsetof(block_q3_K, d) : offsetof(block_iq4_xs, d)), &d, 2);
            }
        }
    }
    free(row);
    return w;
}

/* x [n][K]; extremes: every value the same magnitude (codes +-127). */
static float *make_x(int64_t n, int64_t K, int extremes, uint32_t *seed) {
    float *x = malloc(sizeof(float) * (size_t)(n * K));
    for (int64_t i = 0; i < n * K; i++) x[i] = extremes ? (i % 3 ? 3.0f : -3.0f) : 4.0f * next_val(seed);
    return x;
}

/* The product on AMX by the kernel itself: x into tiles, one job. */
static void amx_direct(float *y, const float *x, const void *W, int type, int64_t n, int64_t rows, int64_t K) {
    const size_t ts = qtile_stride_of(type, K);
    const int64_t nt = (n + QT_TILE_N - 1) / QT_TILE_N;
    unsigned char *xt = aligned_alloc(64, ts * (size_t)nt);
    for (int64_t t = 0; t < nt; t++) {
        int64_t nx = n - t * QT_TILE_N < QT_TILE_N ? n - t * QT_TILE_N : QT_TILE_N;
        amx_qact_tile_k(xt + ts * (size_t)t, x + t * QT_TILE_N * K, nx, K);
    }
    qmm_job j = {y, xt, W, type, n, rows, K, ts, quant_row_bytes(type, K), 1, 0, 0, 0};
    amx_k6_qmm_rows(&j, 0, rows);
    free(xt);
}

static int bits_differ(const float *a, const float *b, int64_t n) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += memcmp(&a[i], &b[i], 4) != 0;
    return bad;
}

TEST(quant_amx_k6_equals_reference_bit_for_bit) {
    const kern_cfg *k = amx_cfg_here();
    if (!k) SKIP("no AMX");
    pool *p2 = kern_pool_cfg(2, k), *p1 = kern_pool_cfg(1, k);
    /* rows, K, n: a partial group and tile, one of each exactly, 2 tile
     * passes with 9 blocks (a partial K chunk), fewer than 16 rows */
    static const int64_t shapes[][3] = {{37, 512, 21}, {16, 768, 16}, {50, 2304, 130}, {5, 256, 5}, {33, 1024, 9}};
    static const int types[] = {QT_Q6_K, QT_Q3_K, QT_IQ4_XS};
    uint32_t seed = 91;
    for (int ti = 0; ti < 3; ti++)
        for (int s = 0; s < 5; s++)
            for (int raw = 0; raw < 3; raw++) {
                const int type = types[ti];
                const int64_t rows = shapes[s][0], K = shapes[s][1], n = shapes[s][2];
                CHECK(qt_amx(type) && qt_tile_k(type));
                void *W = make_w(type, rows, K, raw, &seed);
                float *x = make_x(n, K, raw == 2, &seed);
                void *scratch = malloc(qmatmul_scratch_size(type, n, K));
                const size_t ys = sizeof(float) * (size_t)(n * rows);
                float *ref = malloc(ys), *yd = malloc(ys), *y2 = malloc(ys), *y1 = malloc(ys);
                qmatmul_ref(ref, x, W, type, n, rows, K, scratch);
                amx_direct(yd, x, W, type, n, rows, K);
                qmatmul(p2, y2, x, W, type, n, rows, K, scratch);
                qmatmul(p1, y1, x, W, type, n, rows, K, scratch);
                const char *nm = quant_traits(type)->name;
                CHECK_MSG(bits_differ(yd, ref, n * rows) == 0, "%s [%lld][%lld] n=%lld raw=%d: AMX kernel %d outputs differ",
                          nm, (long long)rows, (long long)K, (long long)n, raw, bits_differ(yd, ref, n * rows));
                /* qmatmul takes AMX from a few rows of x on (quant.c: QAMX_MIN_N_*), surely from 16 */
                if (n >= 16) {
                    CHECK_MSG(bits_differ(y2, ref, n * rows) == 0, "%s [%lld][%lld] n=%lld raw=%d: qmatmul 2 threads differs",
                              nm, (long long)rows, (long long)K, (long long)n, raw);
                    CHECK_MSG(bits_differ(y1, ref, n * rows) == 0, "%s [%lld][%lld] n=%lld raw=%d: qmatmul 1 thread differs",
                              nm, (long long)rows, (long long)K, (long long)n, raw);
                }
                free(y1);
                free(y2);
                free(yd);
                free(ref);
                free(scratch);
                free(x);
                free(W);
            }
    pool_free(p2);
    pool_free(p1);
}
