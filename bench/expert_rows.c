/*
 * expert_rows.c - one expert-shaped quantized product, x [n][cols] by W
 * [rows][cols], as prefill gives a routed expert its few rows of x: the
 * time per product, stored or packed at load (quant_pack), the weights hot
 * (one copy) or cold (copies in turn, from memory once they pass the
 * last-level cache). Times include quantizing x, as the model pays it
 * (shared by an expert's gate and up there, so a little less).
 *
 *   make bench-expert-rows BUILD=dir
 *   dir/expert_rows TYPE N [COPIES [ROWS COLS [THREADS]]] [--pack] [--reps R]
 *
 * TYPE is a ggml type name (q8_0, q4_K, q5_K, q6_K, iq4_xs, ...; the grid
 * i-quants, which the library does not quantize, get random codes);
 * defaults 8 copies of [768][2048] (Qwen3-30B-A3B's gate), one thread. Prints the median and the
 * best of R timed passes (41), each over every copy, in us per product, and
 * the best's GOP/s (2 n rows cols). 64 copies of a Q4_K [768][2048] (56 MiB)
 * are cold on a 32 MiB last-level cache; 8 (7 MiB) mostly sit in it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels/kernels.h"
#include "kernels/probe.h"
#include "kernels/quant.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float frand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f) * 0.1f;
}

static int type_named(const char *name) {
    for (int t = 0; t < QT_PACKED; t++) {
        const qtype_traits *q = quant_traits(t);
        if (q && q->type == t && !strcasecmp(q->name, name)) return t;
    }
    return -1;
}

int main(int argc, char **argv) {
    int pack = 0, reps = 41, np = 0;
    const char *arg[6] = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pack"))
            pack = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (np < 6)
            arg[np++] = argv[i];
    }
    if (np < 2 || reps < 1) {
        fprintf(stderr, "usage: expert_rows TYPE N [COPIES [ROWS COLS [THREADS]]] [--pack] [--reps R]\n");
        return 2;
    }
    const int type = type_named(arg[0]);
    const int64_t n = atoll(arg[1]);
    const int copies = np > 2 ? atoi(arg[2]) : 8;
    const int64_t R = np > 4 ? atoll(arg[3]) : 768, C = np > 4 ? atoll(arg[4]) : 2048;
    const int nth = np > 5 ? atoi(arg[5]) : 1;
    if (type < 0) {
        fprintf(stderr, "expert_rows: '%s' is no type the library knows\n", arg[0]);
        return 2;
    }
    const size_t rb = quant_row_bytes(type, C), bytes = rb * (size_t)R;
    if (n < 1 || copies < 1 || R < 8 || R % 8 || !rb || nth < 1) {
        fprintf(stderr, "expert_rows: need N >= 1, COPIES >= 1, ROWS a multiple of 8, COLS whole blocks of %s\n", arg[0]);
        return 2;
    }
    pool *p = pool_create(nth);
    unsigned seed = 1;
    unsigned char *w = malloc(bytes * (size_t)copies);
    float *row = malloc(sizeof(float) * (size_t)C), *x = malloc(sizeof(float) * (size_t)(n * C));
    float *y = malloc(sizeof(float) * (size_t)(n * R));
    double *t = malloc(sizeof(double) * (size_t)reps);
    if (!p || !w || !row || !x || !y || !t) {
        fprintf(stderr, "expert_rows: out of memory\n");
        return 1;
    }
    const qtype_traits *tr = quant_traits(type);
    for (int64_t r = 0; r < R; r++) {
        if (!tr->quantize) { /* a grid i-quant: random bytes, each block's f16 scale 0.01 (IQ1_M's: random) */
            unsigned char *o = w + rb * (size_t)r;
            for (size_t i = 0; i < rb; i++) o[i] = (unsigned char)((seed = seed * 1103515245u + 12345u) >> 16);
            for (size_t b = 0; b < rb && type != QT_IQ1_M; b += (size_t)tr->block_bytes) {
                const uint16_t h = 0x211F; /* 0.01 as f16 */
                memcpy(o + b, &h, 2);
            }
            continue;
        }
        for (int64_t k = 0; k < C; k++) row[k] = frand(&seed);
        tr->quantize(row, w + rb * (size_t)r, C);
    }
    for (int c = 1; c < copies; c++) memcpy(w + bytes * (size_t)c, w, bytes);
    int qt = type;
    if (pack) {
        qt = qt_packed_of(type);
        for (int c = 0; c < copies; c++)
            if (qt < 0 || quant_pack(type, w + bytes * (size_t)c, R, C)) {
                fprintf(stderr, "expert_rows: %s has no packed form here\n", arg[0]);
                return 2;
            }
    }
    for (int64_t i = 0; i < n * C; i++) x[i] = frand(&seed) * 20;
    void *scr = malloc(qmatmul_scratch_size(qt, n, C));
    for (int c = 0; c < copies; c++) qmatmul(p, y, x, w + bytes * (size_t)c, qt, n, R, C, scr);
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now();
        for (int c = 0; c < copies; c++) qmatmul(p, y, x, w + bytes * (size_t)c, qt, n, R, C, scr);
        t[r] = (clock_now() - t0) / copies;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    printf("%s%s [%lld][%lld] n %lld, %d copies, %d threads: %.1f us (best %.1f, %.1f GOP/s)  %s\n", arg[0],
           pack ? " packed" : "", (long long)R, (long long)C, (long long)n, copies, nth, t[reps / 2] * 1e6, t[0] * 1e6,
           2.0 * (double)n * (double)R * (double)C / t[0] / 1e9, quant_path_name(kern_of(p)));
    free(scr);
    free(t);
    free(y);
    free(x);
    free(row);
    free(w);
    pool_free(p);
    return 0;
}
