/*
 * quant_check.h - what the quantized-product tests share: a pool per
 * quantized path, and the tolerance a fast path's outputs keep from the
 * scalar reference's.
 */
#ifndef MOE_TESTS_QUANT_CHECK_H
#define MOE_TESTS_QUANT_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "kern_pool.h"
#include "kernels/quant.h"

/* 0: scalar, 1: AVX2, 2: AVX-512 (AMX off), 3: AVX-512 with AMX, 4: AVX2
 * with AVX-VNNI: a two-thread pool running that path, or NULL if it cannot
 * run here. */
#define QUANT_PATHS 5
#define QUANT_PATH_AVXVNNI 4
static inline pool *quant_path_pool(int i) {
    const kern_cpu *c = kernels_cpu();
    const kern_cfg *k = i < 3 ? kernels_cfg((isa)i, 0, i == ISA_AVX512 && c->vbmi)
                      : i == 3 ? kernels_cfg(ISA_AVX512, 1, c->vbmi)
                               : kernels_cfg_avxvnni();
    return kern_pool_cfg(2, k);
}
static inline const char *quant_path_label(int i) {
    static const char *const n[QUANT_PATHS] = {"scalar", "avx2", "avx512", "avx512+amx", "avx2+avx-vnni"};
    return n[i];
}

/* Outputs of y [n][rows] off the reference ref by more than 1.1e-5 *
 * sum_k |w_k x_k| (the paths differ only in the order of f32 additions);
 * W [rows][cols] of type, stored (not packed), x [n][cols]. */
static inline int quant_count_off(const float *y, const float *ref, int type, const void *W, int64_t rows,
                                  int64_t cols, const float *x, int64_t n) {
    const size_t rb = quant_row_bytes(type, cols);
    float *wr = malloc(sizeof(float) * (size_t)cols);
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        quant_traits(type)->dequantize((const unsigned char *)W + rb * (size_t)r, wr, cols);
        for (int64_t i = 0; i < n; i++) {
            double scale = 0;
            for (int64_t k = 0; k < cols; k++) scale += fabs((double)wr[k] * x[i * cols + k]);
            bad += !(fabs((double)y[i * rows + r] - ref[i * rows + r]) <= 1.1e-5 * scale + 1e-30);
        }
    }
    free(wr);
    return bad;
}

#endif
