/*
 * test_quant_iq.c - ggml's grid i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
 * IQ3_S, IQ1_S, IQ1_M; src/kernels/quant_iq.c).
 *
 *   - dequantize_row_* bit for bit against tests/fixtures/quant/<type>.bin
 *     (tools/gen_iq_fixtures.py: ggml's C and the gguf package agreeing);
 *   - the scalar vec_dot against the dot product, in double, of the
 *     dequantized weights with the dequantized Q8_K activations (the same
 *     numbers, so only the f32 rounding of the block sums separates them);
 *   - qmatmul on every ISA this CPU has within 1e-5 * sum |w x| of the
 *     scalar reference and, as the kernels are built, with its very bits;
 *     the same bits on 1 and 2 threads, grouped calls
 *     equal to separate ones, and within the activation quantization
 *     error of the f32 matmul of the dequantized weights.
 */
#include <stdlib.h>

#include "formats/gguf.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernels/quant_impl.h"
#include "kern_pool.h"
#include "test.h"

static const int k_iq[] = {QT_IQ2_XXS, QT_IQ2_XS, QT_IQ2_S, QT_IQ3_XXS, QT_IQ3_S, QT_IQ1_S, QT_IQ1_M};
#define N_IQ ((int)(sizeof k_iq / sizeof k_iq[0]))

static uint32_t rng_next(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}
static float rng_f(uint32_t *s) { return (float)(rng_next(s) >> 8) / 8388608.0f - 1.0f; }
static float normalish(uint32_t *s) { return rng_f(s) + rng_f(s) + rng_f(s); }

static float *make_x(int64_t n, int64_t cols, uint32_t *seed) {
    float *x = malloc(sizeof(float) * (size_t)(n * cols));
    for (int64_t i = 0; i < n * cols; i++) x[i] = normalish(seed);
    return x;
}

/* W [rows][cols] of random bytes with finite f16 scales (0.01 * normal-ish;
 * IQ1_M's d is the top nibbles of its four scale words at byte 48). */
static void *make_w(int type, int64_t rows, int64_t cols, uint32_t *seed) {
    const qtype_traits *t = quant_traits(type);
    size_t total = quant_row_bytes(type, cols) * (size_t)rows;
    unsigned char *w = malloc(total);
    for (size_t i = 0; i < total; i++) w[i] = (unsigned char)rng_next(seed);
    for (size_t b = 0; b < total; b += (size_t)t->block_bytes) {
        uint16_t h = f32_to_f16(0.01f * normalish(seed));
        if (type != QT_IQ1_M) {
            memcpy(w + b, &h, 2);
            continue;
        }
        for (int k = 0; k < 4; k++) {
            uint16_t v;
            memcpy(&v, w + b + 48 + 2 * k, 2);
            v = (uint16_t)((v & 0x0FFF) | ((h >> (4 * k)) & 0xF) << 12);
            memcpy(w + b + 48 + 2 * k, &v, 2);
        }
    }
    return w;
}

/* ---------------------------------------------------------------- traits */

TEST(quant_iq_traits) {
    static const struct { int type; const char *name, *gguf; int bytes; } want[] = {
        {QT_IQ2_XXS, "iq2_xxs", "IQ2_XXS", 66}, {QT_IQ2_XS, "iq2_xs", "IQ2_XS", 74},
        {QT_IQ2_S, "iq2_s", "IQ2_S", 82},       {QT_IQ3_XXS, "iq3_xxs", "IQ3_XXS", 98},
        {QT_IQ3_S, "iq3_s", "IQ3_S", 110},      {QT_IQ1_S, "iq1_s", "IQ1_S", 50},
        {QT_IQ1_M, "iq1_m", "IQ1_M", 56},
    };
    for (int i = 0; i < N_IQ; i++) {
        const qtype_traits *t = quant_traits(want[i].type);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK(strcmp(t->name, want[i].name) == 0);
        CHECK_EQ_INT(t->block_elems, 256);
        CHECK_EQ_INT(t->block_bytes, want[i].bytes);
        CHECK(t->dequantize && t->vec_dot && !t->quantize); /* read only */
        CHECK_EQ_INT(quant_row_bytes(t->type, 512), 2 * want[i].bytes);
        CHECK_EQ_INT(quant_row_bytes(t->type, 288), 0);
        /* the GGUF reader's view: the same type id, name and geometry */
        CHECK(strcmp(gguf_type_name(want[i].type), want[i].gguf) == 0);
        CHECK_EQ_INT(gguf_type_block(want[i].type), 256);
        CHECK_EQ_INT(gguf_type_size(want[i].type), want[i].bytes);
        dtype dt = dtype_from_ggml(want[i].type);
        CHECK(dtype_is_quant(dt) && strcmp(dtype_name(dt), want[i].name) == 0);
    }
}

/* --------------------------------------------------------------- fixtures */

static void *read_fixture(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/quant/%s.bin", test_fixtures(), name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static uint32_t rd32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

TEST(quant_iq_dequantize_matches_ggml) {
    for (int ti = 0; ti < N_IQ; ti++) {
        const qtype_traits *t = quant_traits(k_iq[ti]);
        size_t len = 0;
        unsigned char *buf = read_fixture(t->name, &len);
        uint32_t rows = buf && len >= 20 ? rd32(buf + 12) : 0, cols = buf && len >= 20 ? rd32(buf + 16) : 0;
        size_t rb = quant_row_bytes(t->type, cols);
        int ok = buf && len >= 20 && memcmp(buf, "MOEQIQ01", 8) == 0 && rd32(buf + 8) == (uint32_t)t->type &&
                 rows > 0 && rb > 0 && len == 20 + rows * (rb + (size_t)cols * 4);
        CHECK_MSG(ok, "%s: fixture missing or malformed", t->name);
        if (!ok) {
            free(buf);
            continue;
        }
        const unsigned char *blocks = buf + 20;
        const float *want = (const float *)(blocks + rows * rb);
        float *y = malloc(sizeof(float) * cols);
        for (uint32_t r = 0; r < rows; r++) {
            t->dequantize(blocks + rb * r, y, cols);
            uint32_t d = 0;
            while (d < cols && memcmp(&y[d], &want[(size_t)r * cols + d], 4) == 0) d++;
            CHECK_MSG(d == cols, "%s row %u: value %u is %.9g, ggml %.9g", t->name, r, d, d < cols ? y[d] : 0.0,
                      d < cols ? want[(size_t)r * cols + d] : 0.0);
        }
        free(y);
        free(buf);
    }
}

/* ------------------------------------------------------------ vec_dot */

TEST(quant_iq_vec_dot_is_dequantized_dot) {
    uint32_t seed = 101;
    const int64_t K = 1024;
    float *wf = malloc(sizeof(float) * K);
    for (int ti = 0; ti < N_IQ; ti++) {
        const qtype_traits *t = quant_traits(k_iq[ti]);
        int worst_bad = 0;
        for (int rep = 0; rep < 20; rep++) {
            void *W = make_w(t->type, 1, K, &seed);
            float *x = make_x(1, K, &seed);
            if (rep == 0) /* a zero activation block: d = 0 */
                memset(x, 0, sizeof(float) * 256);
            void *xq = malloc(qact_size(t->type, 1, K));
            qact_quantize(NULL, xq, x, t->type, 1, K);
            const qx_k *a = (const qx_k *)(((uintptr_t)xq + 63) & ~(uintptr_t)63);
            t->dequantize(W, wf, K);
            double want = 0, scale = 0;
            for (int64_t k = 0; k < K; k++) {
                double v = (double)wf[k] * ((double)a[k / 256].qs[k % 256] * a[k / 256].d);
                want += v;
                scale += fabs(v);
            }
            float got = t->vec_dot(W, a, K);
            if (!(fabs(got - want) <= 1e-6 * scale + 1e-30)) {
                if (worst_bad++ < 3)
                    fprintf(stderr, "  %s rep %d: vec_dot %.9g, dequantized dot %.9g (scale %g)\n", t->name, rep, got,
                            want, scale);
            }
            free(xq);
            free(x);
            free(W);
        }
        CHECK_MSG(worst_bad == 0, "%s: %d of 20 dot products off", t->name, worst_bad);
    }
    free(wf);
}

/* ---------------------------------------------------- paths vs reference */

/* Every ISA this CPU has, and AVX-512 with AMX (which these types must
 * not take) when it has that. */
#define N_PATHS (ISA_COUNT + 2)
static const kern_cfg *path_cfg(int i) {
    const kern_cpu *c = kernels_cpu();
    if (i < ISA_COUNT) return kernels_cfg((isa)i, 0, i == ISA_AVX512 && c->vbmi);
    if (i == ISA_COUNT) return kernels_cfg(ISA_AVX512, 1, c->vbmi);
    return kernels_cfg_avxvnni();
}
static const char *path_name(int i) {
    return i < ISA_COUNT ? isa_name((isa)i) : i == ISA_COUNT ? "avx512+amx" : "avx2+avx-vnni";
}

/* |y - ref| <= 1.1e-5 * sum_k |w_k x_k| + tiny, per output. */
static int compare_ref(const float *y, const float *ref, int type, const void *W, int64_t rows, int64_t cols,
                       const float *x, int64_t n) {
    const qtype_traits *t = quant_traits(type);
    size_t rb = quant_row_bytes(type, cols);
    float *wr = malloc(sizeof(float) * (size_t)cols);
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        t->dequantize((const unsigned char *)W + rb * (size_t)r, wr, cols);
        for (int64_t i = 0; i < n; i++) {
            double scale = 0;
            for (int64_t k = 0; k < cols; k++) scale += fabs((double)wr[k] * x[i * cols + k]);
            double d = fabs((double)y[i * rows + r] - ref[i * rows + r]);
            if (!(d <= 1.1e-5 * scale + 1e-30) && bad++ < 3)
                fprintf(stderr, "  %s y[%lld][%lld] = %.9g, ref %.9g, scale %g\n", t->name, (long long)i,
                        (long long)r, y[i * rows + r], ref[i * rows + r], scale);
        }
    }
    free(wr);
    return bad;
}

TEST(quant_iq_paths_match_reference) {
    pool *one[N_PATHS], *two[N_PATHS];
    for (int i = 0; i < N_PATHS; i++) one[i] = kern_pool_cfg(1, path_cfg(i)), two[i] = kern_pool_cfg(2, path_cfg(i));
    uint32_t seed = 113;
    static const int64_t shapes[][2] = {{37, 256}, {5, 768}, {64, 2048}, {19, 512}};
    static const int64_t ns[] = {1, 2, 3, 8, 17};
    for (int ti = 0; ti < N_IQ; ti++) {
        int type = k_iq[ti];
        for (int s = 0; s < 4; s++) {
            int64_t rows = shapes[s][0], K = shapes[s][1];
            void *W = make_w(type, rows, K, &seed);
            for (int ni = 0; ni < 5; ni++) {
                int64_t n = ns[ni];
                float *x = make_x(n, K, &seed);
                void *scratch = malloc(qmatmul_scratch_size(type, n, K));
                float *ref = malloc(sizeof(float) * (size_t)(n * rows)), *y = malloc(sizeof(float) * (size_t)(n * rows));
                float *y1 = malloc(sizeof(float) * (size_t)(n * rows));
                qmatmul_ref(ref, x, W, type, n, rows, K, scratch);
                for (int is = 0; is < N_PATHS; is++) {
                    if (!two[is]) continue;
                    memset(y, 0xFF, sizeof(float) * (size_t)(n * rows)); /* NaN: every output must be written */
                    qmatmul(two[is], y, x, W, type, n, rows, K, scratch);
                    int bad = compare_ref(y, ref, type, W, rows, K, x, n);
                    CHECK_MSG(bad == 0, "%s W [%lld][%lld] n=%lld on %s: %d outputs off", quant_traits(type)->name,
                              (long long)rows, (long long)K, (long long)n, path_name(is), bad);
                    /* the vector kernels keep each block's integer sum and the reference's
                     * f32 order, so they give its bits exactly (quant_iq_avx512.c) */
                    CHECK_MSG(memcmp(y, ref, sizeof(float) * (size_t)(n * rows)) == 0,
                              "%s W [%lld][%lld] n=%lld on %s: not the reference's bits", quant_traits(type)->name,
                              (long long)rows, (long long)K, (long long)n, path_name(is));
                    qmatmul(one[is], y1, x, W, type, n, rows, K, scratch);
                    CHECK_MSG(memcmp(y, y1, sizeof(float) * (size_t)(n * rows)) == 0,
                              "%s n=%lld on %s: threaded result differs", quant_traits(type)->name, (long long)n,
                              path_name(is));
                }
                free(y1);
                free(y);
                free(ref);
                free(scratch);
                free(x);
            }
            free(W);
        }
    }
    for (int i = 0; i < N_PATHS; i++) pool_free(one[i]), pool_free(two[i]);
}

/* A grouped call mixing the i-quants with a K-quant (the same Q8_K
 * activations, shared between consecutive tasks on one x) gives what
 * separate calls give. */
TEST(quant_iq_grouped_equals_separate) {
    uint32_t seed = 127;
    enum { T = 9 };
    static const int types[T] = {QT_IQ2_XXS, QT_IQ2_XXS, QT_IQ3_XXS, QT_Q4_K, QT_IQ2_XS,
                                 QT_IQ1_S,   QT_IQ2_S,   QT_IQ3_S,   QT_IQ1_M};
    static const int64_t rows[T] = {37, 16, 48, 16, 21, 33, 5, 64, 17};
    const int64_t K = 512;
    for (int is = 0; is < N_PATHS; is++) {
        pool *p = kern_pool_cfg(2, path_cfg(is));
        if (!p) continue;
        for (int ni = 0; ni < 2; ni++) {
            const int64_t n = ni ? 9 : 1;
            float *x = make_x(n, K, &seed);
            void *W[T];
            float *y[T], *ys[T];
            qmm_task tasks[T];
            for (int t = 0; t < T; t++) {
                if (types[t] == QT_Q4_K) {
                    float *row = make_x(rows[t], K, &seed);
                    W[t] = malloc(quant_row_bytes(QT_Q4_K, K) * (size_t)rows[t]);
                    quant_traits(QT_Q4_K)->quantize(row, W[t], K * rows[t]);
                    free(row);
                } else {
                    W[t] = make_w(types[t], rows[t], K, &seed);
                }
                y[t] = malloc(sizeof(float) * (size_t)(n * rows[t]));
                ys[t] = malloc(sizeof(float) * (size_t)(n * rows[t]));
                tasks[t] = (qmm_task){W[t], types[t], rows[t], K, x, y[t], n, NULL, 0};
                void *s1 = malloc(qmatmul_scratch_size(types[t], n, K));
                qmatmul(p, ys[t], x, W[t], types[t], n, rows[t], K, s1);
                free(s1);
            }
            void *scratch = malloc(qmatmul_grouped_scratch_size(tasks, T));
            qmatmul_grouped(p, tasks, T, scratch);
            for (int t = 0; t < T; t++) {
                CHECK_MSG(memcmp(y[t], ys[t], sizeof(float) * (size_t)(n * rows[t])) == 0,
                          "n=%lld task %d (%s) on %s: grouped differs from separate", (long long)n, t,
                          quant_traits(types[t])->name, path_name(is));
                free(W[t]);
                free(y[t]);
                free(ys[t]);
            }
            free(scratch);
            free(x);
        }
        pool_free(p);
    }
}

/* Against the f32 matmul of the dequantized weights: the Q8_K activations
 * move each x_k by at most half a step d_b = amax_b / 127 of its block, so
 * |y_q - y_f32| <= sum_b 0.5 d_b sum_{k in b} |w_k| + rounding (the test
 * uses 0.51 and adds 1e-5 * sum |w x|). */
TEST(quant_iq_vs_f32_matmul) {
    uint32_t seed = 131;
    const int64_t rows = 21, K = 768, n = 3;
    for (int ti = 0; ti < N_IQ; ti++) {
        const qtype_traits *t = quant_traits(k_iq[ti]);
        void *W = make_w(t->type, rows, K, &seed);
        float *wf = malloc(sizeof(float) * (size_t)(rows * K));
        for (int64_t r = 0; r < rows; r++) t->dequantize((unsigned char *)W + quant_row_bytes(t->type, K) * r, wf + r * K, K);
        float *x = make_x(n, K, &seed);
        void *scratch = malloc(qmatmul_scratch_size(t->type, n, K));
        float *y = malloc(sizeof(float) * (size_t)(n * rows));
        qmatmul(NULL, y, x, W, t->type, n, rows, K, scratch);
        int bad = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t r = 0; r < rows; r++) {
                double yf = 0, bound = 0, scale = 0;
                for (int64_t b = 0; b < K; b += 256) {
                    double amax = 0, wsum = 0;
                    for (int64_t k = b; k < b + 256; k++) {
                        amax = fmax(amax, fabs(x[i * K + k]));
                        wsum += fabs(wf[r * K + k]);
                        yf += (double)wf[r * K + k] * x[i * K + k];
                        scale += fabs((double)wf[r * K + k] * x[i * K + k]);
                    }
                    bound += 0.51 * amax / 127 * wsum;
                }
                bad += !(fabs(y[i * rows + r] - yf) <= bound + 1e-5 * scale);
            }
        CHECK_MSG(bad == 0, "%s: %d outputs beyond the activation quantization bound", t->name, bad);
        free(y);
        free(scratch);
        free(x);
        free(wf);
        free(W);
    }
}

/* Activations holding inf or NaN, or blocks so small that 127 / max
 * overflows (as tests/test_quant_nonfinite.c for the other types): the rows
 * that hold non-finite values give NaN on every path, the others the
 * reference's finite values, with no overflowed code or sum (the ASan+UBSan
 * build runs this too). */
TEST(quant_iq_nonfinite_activations) {
    enum { N = 6, ROWS = 8, COLS = 512 };
    uint32_t seed = 137;
    float *x = make_x(N, COLS, &seed);
    x[1 * COLS + 3] = NAN;
    x[2 * COLS + 300] = INFINITY;
    x[3 * COLS + 0] = -INFINITY, x[3 * COLS + 257] = NAN;
    for (int k = 64; k < 96; k++) x[4 * COLS + k] = 1e-38f * (float)(k - 80);
    for (int k = 256; k < 512; k++) x[5 * COLS + k] = 3e-39f * (float)(k % 7 - 3);
    const int bad_row[N] = {0, 1, 1, 1, 0, 0};
    for (int ti = 0; ti < N_IQ; ti++) {
        int type = k_iq[ti];
        void *W = make_w(type, ROWS, COLS, &seed), *scratch = malloc(qmatmul_scratch_size(type, N, COLS));
        float ref[N * ROWS], y[N * ROWS];
        qmatmul_ref(ref, x, W, type, N, ROWS, COLS, scratch);
        for (int is = 0; is < N_PATHS; is++) {
            pool *p = kern_pool_cfg(2, path_cfg(is));
            if (!p) continue;
            qmatmul(p, y, x, W, type, N, ROWS, COLS, scratch);
            pool_free(p);
            int bad = 0;
            for (int i = 0; i < N * ROWS; i++)
                bad += bad_row[i / ROWS] ? !isnan(y[i]) : !(isfinite(y[i]) && y[i] == ref[i]);
            CHECK_MSG(bad == 0, "%s on %s: %d outputs wrong", quant_traits(type)->name, path_name(is), bad);
        }
        free(scratch);
        free(W);
    }
    free(x);
}
