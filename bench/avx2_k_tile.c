/*
 * avx2_k_tile.c - the Q4_K tiles of quant_r8k_kern.h alone, on operands in
 * L1: rk_tile2 (4 rows of x by two groups of 8 W rows) against rk_tile run
 * on each group, one super-block a call, one core. GOP/s = 2 x 4 x 16 x 256
 * a call; compare with `moe bench --probe-only --threads 1`'s int8 peak.
 * The codes are random, the values irrelevant to the time.
 *
 *   gcc -O2 -mavx2 -mfma -mf16c -Isrc bench/avx2_k_tile.c -o /tmp/k_tile && /tmp/k_tile [iters]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/quant_r8k_kern.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const int iters = argc > 1 ? atoi(argv[1]) : 100000;
    static rk_buf b0 __attribute__((aligned(64))), b1 __attribute__((aligned(64)));
    unsigned char *p = (unsigned char *)&b0, *q = (unsigned char *)&b1;
    for (size_t i = 0; i < sizeof b0; i++) {
        p[i] = (unsigned char)(rand() & 15);
        q[i] = (unsigned char)(rand() & 15);
    }
    for (int b = 0; b < RK_KC; b++) {
        b0.d[b] = b1.d[b] = _mm256_set1_ps(0.01f);
        b0.dmin[b] = b1.dmin[b] = _mm256_set1_ps(0.001f);
    }
    const size_t xs = sizeof(qx_k) * RK_KC; /* one row of x: RK_KC super-blocks */
    qx_k *x = aligned_alloc(64, 4 * xs);
    if (!x || iters < 1) return 1;
    memset(x, 1, 4 * xs);
    float y[4 * 16];
    const rk_buf *o[2] = {&b0, &b1};
    for (int mode = 0; mode < 2; mode++) {
        double best = 1e9;
        for (int r = 0; r < 5; r++) {
            const double t0 = now();
            for (int it = 0; it < iters; it++) {
                if (mode == 0) {
                    rk_tile2(4, QT_Q4_K, y, 16, 8, (const uint8_t *)x, xs, o, 0, 1, 1);
                } else {
                    rk_tile(4, QT_Q4_K, y, 16, 8, (const uint8_t *)x, xs, &b0, 0, 1, 1);
                    rk_tile(4, QT_Q4_K, y + 8, 16, 8, (const uint8_t *)x, xs, &b1, 0, 1, 1);
                }
                /* the operands may have changed: every call runs */
                __asm__ volatile("" ::"r"(&b0), "r"(&b1), "r"(x), "r"(y) : "memory");
            }
            const double t = now() - t0;
            if (t < best) best = t;
        }
        const double ops = 2.0 * 4 * 16 * 256 * iters;
        printf("%s: %.1f GOP/s (%.1f ns a super-block of 16 W rows by 4 rows of x)\n",
               mode ? "rk_tile on each group" : "rk_tile2", ops / best / 1e9, best / iters * 1e9);
    }
    free(x);
    return 0;
}
