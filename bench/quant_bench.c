/*
 * quant_bench.c - how close the quantized matmuls (src/kernels/quant.h) come
 * to this machine's limits: GEMV (decode, n = 1) GB/s of weights against
 * probe_read_bandwidth, GEMM (prefill, n = 128) GFLOP/s against
 * probe_f32_flops and against the bf16 f32-FMA matmul at the same shape,
 * a grouped MoE decode step and an OLMoE-shaped MoE prefill layer. Times include quantizing the activations
 * (qmatmul), as decode pays it. Every figure is the median of several runs.
 *
 *   make bench-quant BUILD=dir && dir/quant_bench [threads] [quick|gemv [types]|moe [tokens]]
 * quick: GEMV cold only at 2048x2048, GEMM at 2048x2048 only; gemv: only
 * the GEMV table, the grid i-quants too, of the types named (ggml's names,
 * e.g. q2_K,iq4_xs; default all); moe: only
 * the MoE prefill layer (AMX on and off where the CPU has AMX), of 128
 * tokens or the number given.
 *
 * "hot" GEMV repeats one matrix (it may sit in the last-level cache);
 * "cold" rotates through copies totalling >= 1 GiB, as decode does when the
 * model is larger than the cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/probe.h"
#include "kernels/quant.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float frand(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return ((float)((*seed >> 8) & 0xffff) / 65536.0f - 0.5f) * 0.1f;
}

/* `copies` copies of one [R][C] matrix of `type` quantized from random
 * values (the reference quantizer is slow; the copies are memcpy'd). The
 * grid i-quants have no quantizer: random bytes, each block's leading f16
 * scale set to 0.01 (IQ1_M keeps its scale in the scales' high nibbles:
 * random; only the time is read). */
static unsigned char *make_weights(int type, int64_t R, int64_t C, int copies, unsigned *seed) {
    size_t rb = quant_row_bytes(type, C), bytes = rb * (size_t)R;
    unsigned char *w = malloc(bytes * (size_t)copies);
    float *row = malloc(sizeof(float) * (size_t)C);
    if (!w || !row) return NULL;
    const qtype_traits *tr = quant_traits(type);
    for (int64_t r = 0; r < R; r++) {
        if (!tr->quantize) {
            unsigned char *o = w + rb * (size_t)r;
            for (size_t i = 0; i < rb; i++) o[i] = (unsigned char)((*seed = *seed * 1103515245u + 12345u) >> 16);
            if (type != QT_IQ1_M)
                for (size_t b = 0; b < rb; b += (size_t)tr->block_bytes) {
                    uint16_t h = f32_to_f16(0.01f);
                    memcpy(o + b, &h, 2);
                }
            continue;
        }
        for (int64_t k = 0; k < C; k++) row[k] = frand(seed);
        tr->quantize(row, w + rb * (size_t)r, C);
    }
    for (int c = 1; c < copies; c++) memcpy(w + bytes * (size_t)c, w, bytes);
    free(row);
    return w;
}

/* Median seconds per qmatmul of x [n][C] by `copies` matrices in turn. */
static double time_qmm(pool *p, const unsigned char *w, size_t bytes, int copies, int type, int64_t R, int64_t C,
                       int64_t n, const float *x, float *y, void *scratch, int reps) {
    double t[64];
    if (reps > 64) reps = 64;
    for (int c = 0; c < copies; c++) qmatmul(p, y, x, w + bytes * (size_t)c, type, n, R, C, scratch);
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now();
        for (int c = 0; c < copies; c++) qmatmul(p, y, x, w + bytes * (size_t)c, type, n, R, C, scratch);
        t[r] = (clock_now() - t0) / copies;
    }
    return median(t, reps);
}

int main(int argc, char **argv) {
    int nth = argc > 1 ? atoi(argv[1]) : 2;
    int gemv_only = argc > 2 && strcmp(argv[2], "gemv") == 0;
    int quick = argc > 2 && strcmp(argv[2], "moe") != 0 && !gemv_only;
    int moe_only = argc > 2 && strcmp(argv[2], "moe") == 0;
    const int T = moe_only && argc > 3 && atoi(argv[3]) > 0 ? atoi(argv[3]) : 128;
    pool *p = pool_create(nth);
    if (!p) {
        fprintf(stderr, "pool_create failed\n");
        return 1;
    }
    printf("isa %s (quantized path: %s), %d threads\n", isa_name(kern_of(p)->isa),
           quant_path_name(kern_of(p)), pool_size(p));
    double bw[5], fl[5];
    for (int i = 0; i < 5; i++) {
        bw[i] = probe_read_bandwidth(p, 0, 3);
        fl[i] = probe_f32_flops(p, 3);
    }
    double BW = median(bw, 5), FL = median(fl, 5);
    printf("probe: read bandwidth %.1f GB/s, f32 peak %.1f GFLOP/s\n", BW / 1e9, FL / 1e9);

    static const int types[] = {QT_Q4_0, QT_Q8_0, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_IQ4_XS, QT_Q3_K, QT_Q2_K,
                                QT_Q5_0, QT_Q5_1, QT_Q4_1, QT_IQ4_NL,
                                /* GEMV only (gemv mode): the grid i-quants */
                                QT_IQ3_S, QT_IQ3_XXS, QT_IQ2_S, QT_IQ2_XS, QT_IQ2_XXS, QT_IQ1_M, QT_IQ1_S};
    enum { N_TYPES = sizeof types / sizeof types[0], N_GEMM_TYPES = 12 };
    const int n_gemv_types = gemv_only ? N_TYPES : N_GEMM_TYPES;
    static const int64_t shapes[][2] = {{2048, 2048}, {1024, 2048}};
    const int n_shapes = quick ? 1 : 2;
    const int64_t NG = 128;
    unsigned seed = 1;
    float *x = malloc(sizeof(float) * NG * 2048);
    float *y = malloc(sizeof(float) * NG * 2048);
    void *scratch = malloc(qmatmul_scratch_size(QT_Q4_0, NG, 2048) + qmatmul_scratch_size(QT_Q4_K, NG, 2048));
    if (!x || !y || !scratch) return 1;
    for (int64_t i = 0; i < NG * 2048; i++) x[i] = frand(&seed) * 20;

    if (!moe_only) {
        printf("\nGEMV n=1: GB/s of weights (fraction of probe bandwidth), us per call\n");
        printf("%-6s %-10s %6s %18s %18s\n", "type", "shape", "bits/w", "hot", "cold");
    }
    for (int ti = 0; ti < (moe_only ? 0 : n_gemv_types); ti++)
        for (int s = 0; s < n_shapes; s++) {
            int type = types[ti];
            if (gemv_only && argc > 3 && !strstr(argv[3], quant_traits(type)->name)) continue;
            int64_t R = shapes[s][0], C = shapes[s][1];
            size_t bytes = quant_row_bytes(type, C) * (size_t)R;
            int copies = (int)(((size_t)1 << 30) / bytes) + 1;
            unsigned char *w = make_weights(type, R, C, copies, &seed);
            if (!w) return 1;
            double hot = quick ? 0 : time_qmm(p, w, bytes, 1, type, R, C, 1, x, y, scratch, 31);
            double cold = time_qmm(p, w, bytes, copies, type, R, C, 1, x, y, scratch, 5);
            char hs[32] = "-";
            if (!quick) snprintf(hs, sizeof hs, "%5.1f (%3.0f%%) %5.0f", bytes / hot / 1e9, 100 * bytes / hot / BW, hot * 1e6);
            printf("%-6s %4lldx%-5lld %6.2f %18s %5.1f (%3.0f%%) %5.0f\n", quant_traits(type)->name, (long long)R,
                   (long long)C, 8.0 * bytes / (double)(R * C), hs, bytes / cold / 1e9, 100 * bytes / cold / BW,
                   cold * 1e6);
            free(w);
        }

    if (!moe_only && !gemv_only)
        printf("\nGEMM n=%lld: GFLOP/s (fraction of probe f32 peak; bf16 matmul at the same shape for scale)\n",
               (long long)NG);
    for (int s = 0; s < (moe_only || gemv_only ? 0 : n_shapes); s++) {
        int64_t R = shapes[s][0], C = shapes[s][1];
        uint16_t *wb = malloc(sizeof(uint16_t) * (size_t)(R * C));
        if (!wb) return 1;
        for (int64_t i = 0; i < R * C; i++) wb[i] = f32_to_bf16(frand(&seed));
        mat Wb = {wb, DT_BF16, R, C};
        double t[7];
        for (int r = 0; r < 7; r++) {
            double t0 = clock_now();
            matmul(p, y, x, &Wb, NG);
            t[r] = clock_now() - t0;
        }
        double fb = 2.0 * NG * R * C / median(t, 7);
        printf("bf16  %4lldx%-5lld %6.1f (%3.0f%%)\n", (long long)R, (long long)C, fb / 1e9, 100 * fb / FL);
        free(wb);
        for (int ti = 0; ti < N_GEMM_TYPES; ti++) {
            int type = types[ti];
            size_t bytes = quant_row_bytes(type, C) * (size_t)R;
            unsigned char *w = make_weights(type, R, C, 1, &seed);
            if (!w) return 1;
            double sec = time_qmm(p, w, bytes, 1, type, R, C, NG, x, y, scratch, 7);
            double f = 2.0 * NG * R * C / sec;
            printf("%-6s %4lldx%-5lld %6.1f (%3.0f%%)  %.2fx bf16\n", quant_traits(type)->name, (long long)R,
                   (long long)C, f / 1e9, 100 * f / FL, f / fb);
            free(w);
        }
    }

    if (!quick && !moe_only && !gemv_only) { /* An OLMoE decode MoE step: 8 experts' [1024][2048] matrices, n = 1 each,
                   * one grouped call vs 8 separate qmatmuls, cold. */
        enum { E = 8 };
        const int64_t R = 1024, C = 2048;
        static const int moe_types[] = {QT_Q4_0, QT_Q4_K, QT_Q6_K, QT_IQ4_XS, QT_Q3_K, QT_Q2_K};
        for (int mi = 0; mi < (int)(sizeof moe_types / sizeof moe_types[0]); mi++) {
            int type = moe_types[mi];
            size_t bytes = quant_row_bytes(type, C) * (size_t)R;
            int sets = (int)(((size_t)1 << 30) / (bytes * E)) + 1;
            unsigned char *w = make_weights(type, R, C, E * sets, &seed);
            qmm_task *tasks = malloc(sizeof(qmm_task) * E * (size_t)sets);
            if (!w || !tasks) return 1;
            for (int i = 0; i < E * sets; i++)
                tasks[i] = (qmm_task){w + bytes * (size_t)i, type, R, C, x + (i % E) * C, y + (size_t)(i % E) * R, 1, NULL, 0};
            void *gs = malloc(qmatmul_grouped_scratch_size(tasks, E));
            double tg[7], ts[7];
            for (int r = 0; r < 7; r++) {
                double t0 = clock_now();
                for (int s = 0; s < sets; s++) qmatmul_grouped(p, tasks + s * E, E, gs);
                tg[r] = (clock_now() - t0) / sets;
                t0 = clock_now();
                for (int s = 0; s < sets; s++)
                    for (int e = 0; e < E; e++) {
                        const qmm_task *t = &tasks[s * E + e];
                        qmatmul(p, t->y, t->x, t->W, type, 1, R, C, gs);
                    }
                ts[r] = (clock_now() - t0) / sets;
            }
            double g = median(tg, 7), sp = median(ts, 7);
            printf("%sMoE decode, 8 x [1024][2048] %s, n=1 (cold): grouped %.0f us %.1f GB/s (%.0f%%), "
                   "separate %.0f us %.1f GB/s\n", mi == 0 ? "\n" : "", quant_traits(type)->name, g * 1e6,
                   bytes * E / g / 1e9, 100 * bytes * E / g / BW, sp * 1e6, bytes * E / sp / 1e9);
            free(gs);
            free(tasks);
            free(w);
        }
    }
    if (!quick && !gemv_only) { /* An OLMoE prefill MoE layer: T tokens routed top-8 over 64 experts
                   * (about T / 8 rows each, as random routing gives), grouped gate+up then
                   * down, every expert's weights cold; AMX on and off. */
        enum { E = 64, K = 8 };
        const int64_t D = 2048, F = 1024;
        int cnt[E] = {0};
        unsigned rs = 7;
        for (int t = 0; t < T; t++) { /* K distinct experts per token */
            int chosen[K];
            for (int k = 0; k < K; k++) {
                int e, dup;
                do {
                    rs = rs * 1103515245u + 12345u;
                    e = (int)((rs >> 8) % E);
                    dup = 0;
                    for (int q = 0; q < k; q++) dup |= chosen[q] == e;
                } while (dup);
                chosen[k] = e;
                cnt[e]++;
            }
        }
        float *xe = malloc(sizeof(float) * T * K * D), *ge = malloc(sizeof(float) * T * K * F);
        float *ue = malloc(sizeof(float) * T * K * F), *ye = malloc(sizeof(float) * T * K * D);
        if (!xe || !ge || !ue || !ye) return 1;
        for (int64_t i = 0; i < T * K * D; i++) xe[i] = frand(&seed) * 20;
        for (int64_t i = 0; i < T * K * F; i++) ge[i] = frand(&seed) * 20;
        for (int ti = 0; ti < 2; ti++) {
            int type = ti ? QT_Q8_0 : QT_Q4_0;
            size_t mb = quant_row_bytes(type, D) * (size_t)F; /* one expert matrix */
            int layers = (int)(((size_t)1 << 30) / (3 * E * mb)) + 1;
            unsigned char *w = make_weights(type, F, D, 3 * E * layers, &seed);
            qmm_task *tasks = malloc(sizeof(qmm_task) * 2 * E);
            if (!w || !tasks) return 1;
            double macs = 3.0 * T * K * D * F;
            /* scratch for the larger call (gate+up: 2 tasks per expert, K = D) */
            size_t gsz = 64;
            for (int e = 0; e < E; e++)
                if (cnt[e]) gsz += 2 * qact_size(type, cnt[e], D);
            void *gs = malloc(gsz);
            if (!gs) return 1;
            for (int amx = 1; amx >= 0; amx--) {
                const kern_cfg *def = kernels_default(), *kc = kernels_cfg(def->isa, amx, def->vbmi);
                if (!kc) continue; /* no AMX here */
                pool_set_kern(p, kc);
                double tl[5];
                for (int r = 0; r < 5; r++) {
                    double t0 = clock_now();
                    for (int l = 0; l < layers; l++) {
                        const unsigned char *wl = w + mb * (size_t)(3 * E * l);
                        int nt = 0;
                        int64_t row = 0;
                        for (int e = 0; e < E; e++) {
                            if (!cnt[e]) continue;
                            tasks[nt++] = (qmm_task){wl + mb * (size_t)(3 * e), type, F, D, xe + row * D, ge + row * F, cnt[e], NULL, 0};
                            tasks[nt++] = (qmm_task){wl + mb * (size_t)(3 * e + 1), type, F, D, xe + row * D, ue + row * F, cnt[e], NULL, 0};
                            row += cnt[e];
                        }
                        qmatmul_grouped(p, tasks, nt, gs);
                        nt = 0;
                        row = 0;
                        for (int e = 0; e < E; e++) {
                            if (!cnt[e]) continue;
                            tasks[nt++] = (qmm_task){wl + mb * (size_t)(3 * e + 2), type, D, F, ge + row * F, ye + row * D, cnt[e], NULL, 0};
                            row += cnt[e];
                        }
                        qmatmul_grouped(p, tasks, nt, gs);
                    }
                    tl[r] = (clock_now() - t0) / layers;
                }
                double t = median(tl, 5);
                printf("%sMoE prefill layer, %d tokens x top-%d of %d experts [%lld][%lld] %s, %s: %.2f ms, "
                       "%.1f GMAC/s, weights %.1f GB/s (%.0f%% of probe)\n", ti == 0 ? "\n" : "", T, K, E,
                       (long long)F, (long long)D, quant_traits(type)->name, amx ? "AMX" : "VNNI", t * 1e3,
                       macs / t / 1e9, 3.0 * E * mb / t / 1e9, 100 * 3.0 * E * mb / t / BW);
            }
            pool_set_kern(p, NULL); /* back to the default */
            free(gs);
            free(tasks);
            free(w);
        }
        free(xe);
        free(ge);
        free(ue);
        free(ye);
    }
    for (int i = 0; i < 5; i++) bw[i] = probe_read_bandwidth(p, 0, 3);
    printf("probe again at the end: read bandwidth %.1f GB/s\n", median(bw, 5) / 1e9);
    free(scratch);
    free(x);
    free(y);
    pool_free(p);
    return 0;
}
