/*
 * amx_tiles.h - the tile configuration the AMX product files load
 * (quant_amx_avx512.c: the 32-blocks; quant_amx_k_avx512.c: Q4_K;
 * quant_amx_k6_avx512.c: Q6_K, IQ4_XS): two sets of three tiles, tmm0/3:
 * C, int32 [16 W rows][16 x rows]; tmm1/4: A, codes [16 W rows][32]; tmm2/5:
 * B, codes [8][16 x rows][4] (Q6_K: K of 16, see amx_config_kw); and what
 * they share around their group kernels: the rows loop and the write-out of a
 * group's accumulators. Include only from files compiled for amx-tile,
 * after kernels/quant_impl.h.
 */
#ifndef MOE_KERNELS_AMX_TILES_H
#define MOE_KERNELS_AMX_TILES_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

/* kw: the K of one product, 32 (A [16][32], B [8][64]) or 16 for Q6_K's
 * sub-blocks of 16 (A [16][16], B [4][64]). */
static inline void amx_config_kw(int kw) {
    amx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int s = 0; s < 6; s += 3) {
        c.rows[s] = 16, c.colsb[s] = 64;
        c.rows[s + 1] = 16, c.colsb[s + 1] = (uint16_t)kw;
        c.rows[s + 2] = (uint8_t)(kw / 4), c.colsb[s + 2] = 64;
    }
    _tile_loadconfig(&c);
}

#define AMX_GR 16 /* W rows per group = rows of A and C */

/* The rows of a group (rv <= AMX_GR, from row g) to y for the x tiles
 * t0 .. t0 + nts - 1, from their accumulators accm[t][W row][x row]. */
static inline void amx_put_group(const qmm_job *j, int64_t g, int rv, int64_t t0, int nts,
                                 const float (*accm)[AMX_GR][16]) {
    for (int t = 0; t < nts; t++) {
        const int64_t i0 = (t0 + t) * QT_TILE_N;
        const int ni = j->n - i0 < QT_TILE_N ? (int)(j->n - i0) : QT_TILE_N;
        for (int i = 0; i < ni; i++) {
            float *y = j->y + (i0 + i) * j->rows + g;
            for (int m = 0; m < rv; m++) y[m] = accm[t][m][i];
        }
    }
}

/* Rows [r0, r1) in groups of AMX_GR through group(j, g, rows in it), with
 * the tiles configured before and released after (so a context switch
 * need not save them). */
static inline void amx_rows_kw(const qmm_job *j, int64_t r0, int64_t r1,
                               void (*group)(const qmm_job *, int64_t, int), int kw) {
    if (r1 <= r0 || j->n <= 0) return;
    amx_config_kw(kw);
    for (int64_t g = r0; g < r1; g += AMX_GR) group(j, g, r1 - g < AMX_GR ? (int)(r1 - g) : AMX_GR);
    _tile_release();
}

static inline void amx_rows(const qmm_job *j, int64_t r0, int64_t r1,
                            void (*group)(const qmm_job *, int64_t, int)) {
    amx_rows_kw(j, r0, r1, group, 32);
}

#endif
