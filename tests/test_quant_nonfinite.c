/*
 * test_quant_nonfinite.c - activations holding inf or NaN (a model with NaN
 * weights makes them) through the quantized matmuls on every path: the rows
 * that hold them give NaN outputs, the other rows are untouched, and no
 * integer conversion or sum overflows (the ASan+UBSan build runs this too).
 */
#include "test.h"
#include "base/pool.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "quant_check.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static float next_val(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f - 0.5f;
}

TEST(quant_nonfinite_activations_give_nan_rows) {
    static const int types[] = {QT_Q4_0, QT_Q8_0, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_MXFP4,
                                QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_IQ4_NL, QT_Q2_K, QT_Q3_K, QT_IQ4_XS};
    enum { N = 8, ROWS = 8, COLS = 512 };
    uint32_t seed = 5;
    float *x = malloc(sizeof(float) * N * COLS), *row = malloc(sizeof(float) * COLS);
    for (int i = 0; i < N * COLS; i++) x[i] = next_val(&seed);
    x[1 * COLS + 3] = NAN;        /* row 1: one NaN */
    x[2 * COLS + 300] = INFINITY; /* row 2: one inf */
    x[5 * COLS + 0] = -INFINITY;  /* row 5: both, in different blocks */
    x[5 * COLS + 257] = NAN;
    /* row 6: a block of values so small that 127 / max overflows, and
     * row 7: a whole row of them beside ordinary blocks: finite, as the
     * scalar path gives, never an overflowed code or sum */
    for (int k = 64; k < 96; k++) x[6 * COLS + k] = 1e-38f * (float)(k - 80);
    for (int k = 256; k < 512; k++) x[7 * COLS + k] = 3e-39f * (float)(k % 7 - 3);
    const int bad_row[N] = {0, 1, 1, 0, 0, 1, 0, 0};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        int type = types[ti];
        size_t rb = quant_row_bytes(type, COLS);
        unsigned char *W = malloc(rb * ROWS);
        for (int r = 0; r < ROWS; r++) {
            for (int k = 0; k < COLS; k++) row[k] = 0.05f * next_val(&seed);
            quant_traits(type)->quantize(row, W + rb * (size_t)r, COLS);
        }
        void *scratch = malloc(qmatmul_scratch_size(type, N, COLS));
        float ref[N * ROWS], y[N * ROWS];
        for (int path = 0; path < 5; path++) {
            pool *p = quant_path_pool(path);
            if (!p) continue;
            float *out = path == 0 ? ref : y;
            qmatmul(p, out, x, W, type, N, ROWS, COLS, scratch);
            pool_free(p);
            for (int i = 0; i < N; i++)
                for (int r = 0; r < ROWS; r++) {
                    float v = out[i * ROWS + r];
                    if (bad_row[i])
                        CHECK_MSG(isnan(v), "%s path %d: row %d (non-finite x) gives %g, not NaN",
                                  quant_traits(type)->name, path, i, v);
                    else
                        CHECK_MSG(isfinite(v) && fabsf(v - ref[i * ROWS + r]) <= 1e-3f + 1e-3f * fabsf(v),
                                  "%s path %d: finite row %d gives %g (scalar %g)", quant_traits(type)->name,
                                  path, i, v, ref[i * ROWS + r]);
                }
        }
        free(scratch);
        free(W);
    }
    free(x);
    free(row);
}
