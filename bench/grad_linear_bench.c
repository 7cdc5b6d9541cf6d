/*
 * grad_linear_bench.c - linear_backward (dx and dW together, 2x the forward's
 * FLOPs) against the forward matmul of the same f32 layer, per ISA, median
 * of several runs. Not built by `make`; build by hand:
 *
 *   make BUILD=dir dir/libmoe.a && cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc \
 *       bench/grad_linear_bench.c dir/libmoe.a -lcjson -lpcre2-8 -lutf8proc -lm -pthread \
 *       -o dir/grad_linear_bench && dir/grad_linear_bench [threads] [n] [in] [out]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/kernels.h"
#include "train/grad_ops.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define RUNS 21

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int64_t n = argc > 2 ? atoll(argv[2]) : 256, in = argc > 3 ? atoll(argv[3]) : 256,
            out = argc > 4 ? atoll(argv[4]) : 1024;
    pool *p = pool_create(threads);
    float *x = malloc((size_t)(n * in) * 4), *W = malloc((size_t)(out * in) * 4);
    float *y = malloc((size_t)(n * out) * 4), *dx = calloc((size_t)(n * in), 4);
    float *dW = calloc((size_t)(out * in), 4);
    for (int64_t i = 0; i < n * in; i++) x[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (int64_t i = 0; i < out * in; i++) W[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    for (int64_t i = 0; i < n * out; i++) y[i] = (float)((i * 31) % 1000) * 1e-3f - 0.5f;
    mat Wm = {W, DT_F32, out, in};
    double flop = 2.0 * (double)n * (double)in * (double)out;
    printf("n=%lld in=%lld out=%lld threads=%d\n", (long long)n, (long long)in, (long long)out,
           threads);
    for (int i = ISA_COUNT - 1; i >= 0; i--) {
        const kern_cfg *k = kernels_named(isa_name((isa)i));
        if (!k) continue;
        pool_set_kern(p, k); /* this pool's kernels from here on */
        double tf[RUNS], tb[RUNS];
        for (int r = 0; r < RUNS; r++) {
            double t0 = now_s();
            matmul(p, y, x, &Wm, n);
            double t1 = now_s();
            linear_backward(p, dx, dW, y, x, W, n, out, in);
            double t2 = now_s();
            tf[r] = t1 - t0;
            tb[r] = t2 - t1;
        }
        qsort(tf, RUNS, sizeof(double), cmp_d);
        qsort(tb, RUNS, sizeof(double), cmp_d);
        double f = tf[RUNS / 2], b = tb[RUNS / 2];
        printf("%-7s forward %7.3f ms %6.1f GFLOP/s | backward %7.3f ms %6.1f GFLOP/s | "
               "backward/forward %.2f\n",
               isa_name((isa)i), f * 1e3, flop / f * 1e-9, b * 1e3, 2 * flop / b * 1e-9, b / f);
    }
    pool_free(p);
    free(x), free(W), free(y), free(dx), free(dW);
    return 0;
}
