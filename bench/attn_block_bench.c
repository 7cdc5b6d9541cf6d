/*
 * attn_block_bench.c - one block of causal attention (kernels/attn.h:
 * attn_block) on one thread with the kernel path asked for: 64 queries at
 * the end of NK keys, Dh = Dv = D, key and value rows KVS floats apart
 * (default D: one head alone; the model's KV cache holds every KV head of a
 * position in a row, 512 floats for Qwen3-30B-A3B's 4 x 128). GFLOP/s counts 4 x D per visible key per query (the scores and
 * P V), as `moe bench` counts attention; compare with `moe bench
 * --probe-only --threads 1`'s f32 peak. Prints a hash of the outputs, so
 * two builds can be checked for the same bits.
 *
 *   make build/attn_block_bench && build/attn_block_bench [NK [ITERS [PATH [D [KVS]]]]]
 *   (PATH: avx2, avx512 or scalar; default avx2)
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/pool.h"
#include "kernels/attn.h"
#include "kernels/kernels.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const int nk = argc > 1 ? atoi(argv[1]) : 1024, iters = argc > 2 ? atoi(argv[2]) : 100;
    const char *path = argc > 3 ? argv[3] : "avx2";
    const int D = argc > 4 ? atoi(argv[4]) : 128, nq = 64;
    const int kvs = argc > 5 ? atoi(argv[5]) : D;
    if (nk < nq || iters < 1 || D < 16 || D % 16 || kvs < D) {
        fprintf(stderr, "usage: %s [NK >= 64 [ITERS [PATH [D, a multiple of 16 [KVS >= D]]]]]\n", argv[0]);
        return 2;
    }
    const kern_cfg *k = kernels_named(path);
    if (!k) {
        fprintf(stderr, "kernel path %s: not on this CPU\n", path);
        return 2;
    }
    pool *p = pool_create(1);
    float *q = malloc(sizeof(float) * (size_t)nq * D), *o = malloc(sizeof(float) * (size_t)nq * D);
    float *kk = malloc(sizeof(float) * (size_t)nk * kvs), *v = malloc(sizeof(float) * (size_t)nk * kvs);
    if (!p || !q || !o || !kk || !v || pool_reserve(p, attn_scratch_bytes(nq, nk, D), 0)) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    pool_set_kern(p, k);
    srand(1);
    for (int i = 0; i < nq * D; i++) q[i] = (float)(rand() % 200 - 100) / 100.0f;
    for (int64_t i = 0; i < (int64_t)nk * kvs; i++) {
        kk[i] = (float)(rand() % 200 - 100) / 100.0f;
        v[i] = (float)(rand() % 200 - 100) / 100.0f;
    }
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        const double t0 = now();
        for (int i = 0; i < iters; i++)
            attn_block(p, 0, o, D, q, D, kk, v, kvs, nq, nk, D, D, nk - nq, 0, 0, 0.088f, NULL);
        const double t = now() - t0;
        if (t < best) best = t;
    }
    double visible = 0; /* query i, at position nk - nq + i, sees nk - nq + i + 1 keys */
    for (int i = 0; i < nq; i++) visible += nk - nq + i + 1;
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *b = (const unsigned char *)o;
    for (size_t i = 0; i < sizeof(float) * (size_t)nq * D; i++) h = (h ^ b[i]) * 1099511628211ULL;
    printf("%s, %d queries x %d keys, D %d, rows %d floats apart: %.1f us a block, %.1f GFLOP/s; outputs' hash %016llx\n", path, nq, nk,
           D, kvs, best / iters * 1e6, 4.0 * D * visible * iters / best / 1e9, (unsigned long long)h);
    pool_free(p);
    free(q), free(o), free(kk), free(v);
    return 0;
}
