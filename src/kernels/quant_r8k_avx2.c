/*
 * quant_r8k_avx2.c - the many-row product of Q4_K, Q5_K, Q6_K, IQ4_XS, Q2_K
 * and Q3_K weights as stored, with AVX2 (the method: quant_r8k_kern.h): per group
 * of 8 W rows and chunk of RK_KC super-blocks the rows are interleaved
 * into rk_buf (rk_repack) and every row of x runs through it (rk_tiles).
 * Q4_K and Q5_K without VNNI take two groups at a time, one super-block a
 * chunk, through rk_tile2 (the same bits), from 16 rows of x. One core of
 * an AMD Zen 3, 8 [768][2048] matrices round robin, best of 3, us, one
 * group -> two: Q4_K 16 / 32 / 128 rows of x 294 / 567 / 2250 -> 267 / 513
 * / 2010; Q5_K 16 / 32 / 128 338 / 637 / 2432 -> 329 / 582 / 2095.
 */
#include "kernels/quant_r8k_kern.h"

#ifdef R8_VNNI
#define RK_ROWS_FN avxvnni_rows_r8k
#else
#define RK_ROWS_FN avx2_rows_r8k
#endif

AI void rows_r8k(const int T, const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nb = j->cols / QK_K;
    rk_buf buf __attribute__((aligned(32)));
    int64_t r = r0;
#ifndef R8_VNNI
    /* two groups a chunk of one super-block for rk_tile2, from 16 rows of x:
     * below that the chunks' transposes weigh more (Q5_K at 4 / 8 rows was
     * 20% / 10% slower this way, Q4_K even) */
    if ((T == QT_Q4_K || T == QT_Q5_K) && j->n >= 16) {
        rk_buf buf1 __attribute__((aligned(32)));
        const rk_buf *o[2] = {&buf, &buf1};
        for (; r1 - r > RK_ROWS; r += 2 * RK_ROWS) {
            const int rw1 = r1 - r - RK_ROWS < RK_ROWS ? (int)(r1 - r - RK_ROWS) : RK_ROWS;
            const uint8_t *w[2][RK_ROWS];
            for (int p = 0; p < RK_ROWS; p++) {
                w[0][p] = j->W + (size_t)(r + p) * j->w_row;
                w[1][p] = j->W + (size_t)(r + RK_ROWS + (p < rw1 ? p : rw1 - 1)) * j->w_row;
            }
            const size_t pf = r + 2 * RK_ROWS < r1 ? 2 * RK_ROWS * j->w_row : 0;
            for (int64_t b0 = 0; b0 < nb; b0++) {
                rk_repack(T, &buf, w[0], b0, 1, pf);
                rk_repack(T, &buf1, w[1], b0, 1, pf);
                rk_tiles2(T, j, r, rw1, o, b0, 1);
            }
        }
    }
#endif
    for (; r < r1; r += RK_ROWS) {
        const int rw = r1 - r < RK_ROWS ? (int)(r1 - r) : RK_ROWS;
        const uint8_t *w[RK_ROWS];
        for (int p = 0; p < RK_ROWS; p++) w[p] = j->W + (size_t)(r + (p < rw ? p : rw - 1)) * j->w_row;
        for (int64_t b0 = 0; b0 < nb; b0 += RK_KC) {
            const int kc = nb - b0 < RK_KC ? (int)(nb - b0) : RK_KC;
            rk_repack(T, &buf, w, b0, kc, r + RK_ROWS < r1 ? RK_ROWS * j->w_row : 0);
            rk_tiles(T, j, r, rw, &buf, b0, kc);
        }
    }
}

int RK_ROWS_FN(const qmm_job *j, int64_t r0, int64_t r1) {
    switch (j->type) {
    case QT_Q4_K: rows_r8k(QT_Q4_K, j, r0, r1); return 1;
    case QT_Q5_K: rows_r8k(QT_Q5_K, j, r0, r1); return 1;
    case QT_Q6_K: rows_r8k(QT_Q6_K, j, r0, r1); return 1;
    case QT_IQ4_XS: rows_r8k(QT_IQ4_XS, j, r0, r1); return 1;
    case QT_Q2_K: rows_r8k(QT_Q2_K, j, r0, r1); return 1;
    case QT_Q3_K: rows_r8k(QT_Q3_K, j, r0, r1); return 1;
    default: return 0;
    }
}

#ifdef R8_VNNI
R8_VNNI_END
#endif
