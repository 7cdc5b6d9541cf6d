/*
 * kernels_bench.c - how close the matmul kernels come to this machine's
 * limits: GEMV (decode, n = 1) GB/s of weights against probe_read_bandwidth,
 * GEMM (prefill) GFLOP/s against probe_f32_flops, and the cost of an empty
 * pool_for. Every figure is the median of several runs.
 *
 *   make bench-kernels BUILD=dir && dir/kernels_bench [threads] [quick]
 * quick: bf16 only, GEMV at the three headline shapes and GEMM at n = 64.
 *
 * "hot" GEMV repeats one matrix (it may sit in the last-level cache);
 * "cold" rotates through copies totalling >= 1 GiB, as decode does when the
 * model is larger than the cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/probe.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill_random(void *data, dtype t, size_t count, unsigned *seed) {
    for (size_t i = 0; i < count; i++) {
        *seed = *seed * 1103515245u + 12345u;
        float f = ((float)((*seed >> 8) & 0xffff) / 65536.0f - 0.5f) * 0.1f;
        if (t == DT_F32)
            ((float *)data)[i] = f;
        else if (t == DT_BF16)
            ((uint16_t *)data)[i] = f32_to_bf16(f);
        else
            ((uint16_t *)data)[i] = f32_to_f16(f);
    }
}

/* Median seconds per matmul of x [n][cols] by `copies` matrices in turn. */
static double time_matmul(pool *p, mat *W, int copies, int64_t n, const float *x, float *y, int reps) {
    double t[64];
    if (reps > 64) reps = 64;
    for (int c = 0; c < copies; c++) matmul(p, y, x, &W[c], n); /* warm */
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now();
        for (int c = 0; c < copies; c++) matmul(p, y, x, &W[c], n);
        t[r] = (clock_now() - t0) / copies;
    }
    return median(t, reps);
}

static void noop(void *ctx, int64_t i0, int64_t i1, int tid) {
    (void)ctx; (void)i0; (void)i1; (void)tid;
}

/* Each item waits until all items of this call have started: every call
 * needs every thread, so the time is a full wake + hand-off round trip. */
typedef struct {
    atomic_long arrived;
    long target;
} rendezvous;

static void meet(void *ctx, int64_t i0, int64_t i1, int tid) {
    rendezvous *r = ctx;
    (void)tid;
    atomic_fetch_add(&r->arrived, i1 - i0);
    while (atomic_load(&r->arrived) < r->target) {
    }
}

int main(int argc, char **argv) {
    int nth = argc > 1 ? atoi(argv[1]) : 2;
    int quick = argc > 2;
    pool *p = pool_create(nth);
    if (!p) {
        fprintf(stderr, "pool_create failed\n");
        return 1;
    }
    printf("isa %s, %d threads\n", isa_name(kern_of(p)->isa), pool_size(p));

    double bw[5], fl[5];
    for (int i = 0; i < 5; i++) {
        bw[i] = probe_read_bandwidth(p, 0, 3);
        fl[i] = probe_f32_flops(p, 3);
    }
    double BW = median(bw, 5), FL = median(fl, 5);
    printf("probe: read bandwidth %.1f GB/s, f32 peak %.1f GFLOP/s\n", BW / 1e9, FL / 1e9);

    {   /* pool_for overhead */
        double t[9];
        for (int r = 0; r < 9; r++) {
            double t0 = clock_now();
            for (int i = 0; i < 10000; i++) pool_for(p, 2 * nth, 1, noop, NULL);
            t[r] = (clock_now() - t0) / 10000;
        }
        printf("pool_for (empty, %d items): %.2f us\n", 2 * nth, median(t, 9) * 1e6);
        if (nth > 1) {
            rendezvous rv;
            atomic_init(&rv.arrived, 0);
            rv.target = 0;
            for (int r = 0; r < 9; r++) {
                double t0 = clock_now();
                for (int i = 0; i < 10000; i++) {
                    rv.target += nth;
                    pool_for(p, nth, 1, meet, &rv);
                }
                t[r] = (clock_now() - t0) / 10000;
            }
            printf("pool_for (%d items, all threads must take part): %.2f us\n", nth,
                   median(t, 9) * 1e6);
        }
    }

    static const int64_t shapes[][2] = {{2048, 2048}, {1024, 2048}, {50304, 2048}, {768, 2048}, {2048, 768}};
    static const dtype types[] = {DT_BF16, DT_F16, DT_F32};
    int n_shapes = quick ? 3 : 5;
    unsigned seed = 1;
    float *x = malloc(sizeof(float) * 512 * 2048);
    float *y = malloc(sizeof(float) * 512 * 50304);
    if (!x || !y) return 1;
    fill_random(x, DT_F32, 512 * 2048, &seed);

    printf("\nGEMV n=1: GB/s of weights (fraction of probe bandwidth)\n");
    printf("%-6s %-12s %10s %10s\n", "dtype", "shape", "hot", "cold");
    int n_types = quick ? 1 : 3;
    for (int ti = 0; ti < n_types; ti++) {
        for (int s = 0; s < n_shapes; s++) {
            dtype t = types[ti];
            int64_t R = shapes[s][0], C = shapes[s][1];
            size_t bytes = (size_t)R * (size_t)C * (size_t)dtype_size(t);
            int copies = (int)(((size_t)1 << 30) / bytes) + 1;
            if (copies > 64) copies = 64;
            mat W[64];
            void *data = malloc(bytes * (size_t)copies);
            if (!data) return 1;
            fill_random(data, t, (size_t)R * (size_t)C * (size_t)copies, &seed);
            for (int c = 0; c < copies; c++)
                W[c] = (mat){(const char *)data + bytes * (size_t)c, t, R, C};
            double hot = time_matmul(p, W, 1, 1, x, y, 15);
            double cold = time_matmul(p, W, copies, 1, x, y, 5);
            printf("%-6s %5lldx%-6lld %6.1f (%3.0f%%) %6.1f (%3.0f%%)\n", dtype_name(t), (long long)R,
                   (long long)C, bytes / hot / 1e9, 100 * bytes / hot / BW, bytes / cold / 1e9,
                   100 * bytes / cold / BW);
            free(data);
        }
    }

    printf("\nGEMM: GFLOP/s (fraction of probe peak)\n");
    static const int64_t ns[] = {2, 4, 8, 16, 64, 256};
    printf("%-6s %-12s", "dtype", "shape");
    for (int i = 0; i < 6; i++) printf("   n=%-9lld", (long long)ns[i]);
    printf("\n");
    for (int ti = 0; ti < n_types; ti++) {
        for (int s = 0; s < 2; s++) {
            dtype t = types[ti];
            int64_t R = s == 0 ? 2048 : 768, C = 2048;
            size_t bytes = (size_t)R * (size_t)C * (size_t)dtype_size(t);
            void *data = malloc(bytes);
            if (!data) return 1;
            fill_random(data, t, (size_t)R * (size_t)C, &seed);
            mat W = {data, t, R, C};
            printf("%-6s %5lldx%-6lld", dtype_name(t), (long long)R, (long long)C);
            for (int i = 0; i < 6; i++) {
                if (quick && ns[i] != 64) {
                    printf(" %14s", "-");
                    continue;
                }
                double sec = time_matmul(p, &W, 1, ns[i], x, y, 7);
                double f = 2.0 * (double)ns[i] * (double)R * (double)C / sec;
                printf(" %6.1f (%3.0f%%)", f / 1e9, 100 * f / FL);
            }
            printf("\n");
            free(data);
        }
    }
    if (!quick) {   /* A decode MoE step: 8 experts' [768][2048] bf16 matrices, n = 1 each,
         * as one grouped call and as 8 separate matmuls. */
        enum { E = 8 };
        const int64_t R = 768, C = 2048;
        size_t bytes = (size_t)R * C * 2;
        int sets = (int)(((size_t)1 << 30) / (bytes * E)) + 1;
        void *data = malloc(bytes * E * (size_t)sets);
        if (!data) return 1;
        fill_random(data, DT_BF16, (size_t)R * C * E * (size_t)sets, &seed);
        mat *W = malloc(sizeof(mat) * E * (size_t)sets);
        mm_task *tasks = malloc(sizeof(mm_task) * E * (size_t)sets);
        if (!W || !tasks) return 1;
        for (int i = 0; i < E * sets; i++) {
            W[i] = (mat){(const char *)data + bytes * (size_t)i, DT_BF16, R, C};
            tasks[i] = (mm_task){&W[i], x, y + (size_t)(i % E) * R, 1};
        }
        double tg[7], ti[7];
        for (int r = 0; r < 7; r++) {
            double t0 = clock_now();
            for (int s = 0; s < sets; s++) matmul_grouped(p, tasks + s * E, E);
            tg[r] = (clock_now() - t0) / sets;
            t0 = clock_now();
            for (int s = 0; s < sets; s++)
                for (int e = 0; e < E; e++) matmul(p, y + (size_t)e * R, x, &W[s * E + e], 1);
            ti[r] = (clock_now() - t0) / sets;
        }
        double g = median(tg, 7), in = median(ti, 7);
        printf("\nMoE decode, 8 x [768][2048] bf16, n=1 (cold): grouped %.1f us %.1f GB/s (%.0f%%), "
               "separate %.1f us %.1f GB/s\n", g * 1e6, bytes * E / g / 1e9, 100 * bytes * E / g / BW,
               in * 1e6, bytes * E / in / 1e9);
        free(tasks);
        free(W);
        free(data);
    }
    for (int i = 0; i < 5; i++) bw[i] = probe_read_bandwidth(p, 0, 3);
    printf("probe again at the end: read bandwidth %.1f GB/s\n", median(bw, 5) / 1e9);
    free(x);
    free(y);
    pool_free(p);
    return 0;
}
