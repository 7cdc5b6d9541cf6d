/*
 * test_quant.c - the GGUF quantized types (src/kernels/quant.h).
 *
 * Formats: dequantize_row_* and quantize_row_*_ref bit for bit against
 * tests/fixtures/quant (made by tools/gen_quant_fixtures.py with ggml's own
 * C, cross-checked with the gguf package).
 * Matmuls, on every ISA this CPU has:
 *   - the quantized activations are the same bytes on every path;
 *   - exactness: with power-of-two scales every product is exact in f32, so
 *     each path must give exactly the value computed in double (this holds
 *     the integer parts of every kernel to the definition);
 *   - general data: each fast path within 1e-5 * sum|w x| of the scalar
 *     reference (they differ only in the order of f32 additions);
 *   - against dequantize-then-f32-matmul: within the activation
 *     quantization error, bounded per block (see quant_vs_f32);
 *   - n in {1,2,3,8,17}, odd row counts, K tails, threads, grouped calls.
 */
#include <stdlib.h>

#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernels/quant_impl.h"
#include "kern_pool.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */

static uint32_t rng_next(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Uniform in [-1, 1). */
static float rng_f(uint32_t *s) { return (float)(rng_next(s) >> 8) / 8388608.0f - 1.0f; }
static int rng_int(uint32_t *s, int lo, int hi) { return lo + (int)(rng_next(s) % (uint32_t)(hi - lo + 1)); }

static float normalish(uint32_t *s) { return rng_f(s) + rng_f(s) + rng_f(s); }

static const int k_types[] = {QT_Q4_0, QT_Q8_0, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_MXFP4,
                              QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_IQ4_NL, QT_Q2_K, QT_Q3_K, QT_IQ4_XS};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))

/* The paths held to the reference: every ISA this CPU has (AMX off), then
 * AVX-512 with AMX (products of n >= QAMX_MIN_N_* rows, 2 to 7 by type, quant.c) when the CPU
 * and OS have it, AVX-512 without VBMI (the Q4_0 GEMV of CPUs that lack it),
 * and AVX2 with AVX-VNNI. path_cfg returns NULL when path i cannot run here. */
#define N_PATHS (ISA_COUNT + 3)
static const kern_cfg *path_cfg(int i) {
    const kern_cpu *c = kernels_cpu();
    if (i < ISA_COUNT) return kernels_cfg((isa)i, 0, i == ISA_AVX512 && c->vbmi);
    if (i == ISA_COUNT) return kernels_cfg(ISA_AVX512, 1, c->vbmi);
    if (i == ISA_COUNT + 1) return c->vbmi ? kernels_cfg(ISA_AVX512, 0, 0) : NULL;
    return kernels_cfg_avxvnni();
}

/* One- and two-thread pools running each path (NULL where it cannot run). */
typedef struct path_pools {
    pool *one[N_PATHS], *two[N_PATHS];
} path_pools;
static void paths_init(path_pools *pp) {
    for (int i = 0; i < N_PATHS; i++)
        pp->one[i] = kern_pool_cfg(1, path_cfg(i)), pp->two[i] = kern_pool_cfg(2, path_cfg(i));
}
static void paths_free(path_pools *pp) {
    for (int i = 0; i < N_PATHS; i++) pool_free(pp->one[i]), pool_free(pp->two[i]);
}
static const char *path_name(int i) {
    return i < ISA_COUNT       ? isa_name((isa)i)
         : i == ISA_COUNT     ? "avx512+amx"
         : i == ISA_COUNT + 1 ? "avx512 without vbmi"
                              : "avx2+avx-vnni";
}

static void *read_all(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/quant/%s", test_fixtures(), name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)n);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static uint32_t rd32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* One type's fixture: pointers into buf. */
typedef struct {
    void *buf;
    uint32_t rows, cols, raw_rows;
    const unsigned char *blocks, *raw;
    const float *deq, *raw_deq;
} qfix;

static int load_fixture(const qtype_traits *t, qfix *f) {
    char name[64];
    size_t len;
    snprintf(name, sizeof name, "%s.bin", t->name);
    f->buf = read_all(name, &len);
    if (!f->buf || len < 24 || memcmp(f->buf, "MOEQFX01", 8) != 0) return -1;
    const unsigned char *p = f->buf;
    if (rd32(p + 8) != (uint32_t)t->type) return -1;
    f->rows = rd32(p + 12), f->cols = rd32(p + 16), f->raw_rows = rd32(p + 20);
    size_t rb = quant_row_bytes(t->type, f->cols);
    size_t need = 24 + (f->rows + f->raw_rows) * (rb + f->cols * 4);
    if (rb == 0 || len != need) return -1;
    f->blocks = p + 24;
    f->deq = (const float *)(f->blocks + f->rows * rb);
    f->raw = (const unsigned char *)(f->deq + (size_t)f->rows * f->cols);
    f->raw_deq = (const float *)(f->raw + f->raw_rows * rb);
    return 0;
}

/* Index of the first differing float bit pattern, or -1. */
static long first_bits_diff(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0) return (long)i;
    return -1;
}

/* A random W [rows][cols] of `type` quantized from normal-ish values by the
 * reference quantizer (malloc'd exactly). */
static void *make_w(int type, int64_t rows, int64_t cols, uint32_t *seed) {
    const qtype_traits *t = quant_traits(type);
    size_t rb = quant_row_bytes(type, cols);
    unsigned char *w = malloc(rb * (size_t)rows);
    float *row = malloc(sizeof(float) * (size_t)cols);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < cols; k++) row[k] = 0.05f * normalish(seed);
        t->quantize(row, w + rb * (size_t)r, cols);
    }
    free(row);
    return w;
}

/* The activations start at the first 64-byte boundary of the scratch. */
static unsigned char *al64(void *p) { return (unsigned char *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

static float *make_x(int64_t n, int64_t cols, uint32_t *seed) {
    float *x = malloc(sizeof(float) * (size_t)(n * cols));
    for (int64_t i = 0; i < n * cols; i++) x[i] = normalish(seed);
    return x;
}

/* --------------------------------------------------------------- traits */

TEST(quant_traits_table) {
    static const struct { int type; const char *name; int qk, bytes; } want[] = {
        {QT_Q4_0, "q4_0", 32, 18}, {QT_Q8_0, "q8_0", 32, 34}, {QT_Q4_K, "q4_K", 256, 144},
        {QT_Q5_K, "q5_K", 256, 176}, {QT_Q6_K, "q6_K", 256, 210}, {QT_MXFP4, "mxfp4", 32, 17},
        {QT_Q4_1, "q4_1", 32, 20}, {QT_Q5_0, "q5_0", 32, 22}, {QT_Q5_1, "q5_1", 32, 24},
        {QT_IQ4_NL, "iq4_nl", 32, 18}, {QT_Q2_K, "q2_K", 256, 84}, {QT_Q3_K, "q3_K", 256, 110},
        {QT_IQ4_XS, "iq4_xs", 256, 136},
    };
    for (int i = 0; i < (int)(sizeof want / sizeof want[0]); i++) {
        const qtype_traits *t = quant_traits(want[i].type);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK(strcmp(t->name, want[i].name) == 0);
        CHECK_EQ_INT(t->block_elems, want[i].qk);
        CHECK_EQ_INT(t->block_bytes, want[i].bytes);
        CHECK(t->dequantize && t->quantize && t->vec_dot);
        CHECK_EQ_INT(quant_row_bytes(t->type, 4 * want[i].qk), 4 * want[i].bytes);
        CHECK_EQ_INT(quant_row_bytes(t->type, want[i].qk + 1), 0);
        CHECK_EQ_INT(quant_row_bytes(t->type, 0), 0);
        CHECK_EQ_INT(quant_row_bytes(t->type, -want[i].qk), 0);
    }
    CHECK(quant_traits(0) == NULL);  /* f32 is not a quantized type */
    CHECK(quant_traits(15) == NULL); /* Q8_K: activations only */
    CHECK(quant_traits(-1) == NULL);
    CHECK_EQ_INT(quant_row_bytes(99, 256), 0);
}

/* ------------------------------------------------------------- fixtures */

TEST(quant_dequantize_matches_ggml) {
    for (int ti = 0; ti < N_TYPES; ti++) {
        const qtype_traits *t = quant_traits(k_types[ti]);
        qfix f;
        if (load_fixture(t, &f) != 0) {
            CHECK_MSG(0, "%s: fixture missing or malformed", t->name);
            free(f.buf);
            continue;
        }
        size_t rb = quant_row_bytes(t->type, f.cols);
        float *y = malloc(sizeof(float) * f.cols);
        for (uint32_t r = 0; r < f.rows + f.raw_rows; r++) {
            int raw = r >= f.rows;
            uint32_t rr = raw ? r - f.rows : r;
            t->dequantize((raw ? f.raw : f.blocks) + rb * rr, y, f.cols);
            const float *want = (raw ? f.raw_deq : f.deq) + (size_t)rr * f.cols;
            long d = first_bits_diff(y, want, f.cols);
            CHECK_MSG(d < 0, "%s %s row %u: value %ld is %.9g, ggml %.9g", t->name, raw ? "random" : "quantized",
                      rr, d, d < 0 ? 0.0 : y[d], d < 0 ? 0.0 : want[d]);
        }
        free(y);
        free(f.buf);
    }
}

TEST(quant_quantize_ref_matches_ggml) {
    size_t len;
    unsigned char *rows = read_all("rows.bin", &len);
    CHECK(rows && len >= 16 && memcmp(rows, "MOEQROW1", 8) == 0);
    if (!rows || len < 16) {
        free(rows);
        return;
    }
    uint32_t nr = rd32(rows + 8), cols = rd32(rows + 12);
    CHECK_EQ_INT(len, 16 + (size_t)nr * cols * 4);
    const float *x = (const float *)(rows + 16);
    for (int ti = 0; ti < N_TYPES; ti++) {
        const qtype_traits *t = quant_traits(k_types[ti]);
        qfix f;
        if (load_fixture(t, &f) != 0 || f.rows != nr || f.cols != cols) {
            CHECK_MSG(0, "%s: fixture missing or malformed", t->name);
            free(f.buf);
            continue;
        }
        size_t rb = quant_row_bytes(t->type, cols);
        unsigned char *q = malloc(rb);
        for (uint32_t r = 0; r < nr; r++) {
            memset(q, 0xAB, rb);
            t->quantize(x + (size_t)r * cols, q, cols);
            size_t d = 0;
            while (d < rb && q[d] == f.blocks[rb * r + d]) d++;
            CHECK_MSG(d == rb, "%s row %u: byte %zu (block %zu) is 0x%02x, ggml 0x%02x", t->name, r, d,
                      d / (size_t)t->block_bytes, d < rb ? q[d] : 0, d < rb ? f.blocks[rb * r + d] : 0);
        }
        free(q);
        free(f.buf);
    }
    free(rows);
}

/* quantize then dequantize stays within the format's step: a sanity check
 * of the reference quantizers on data the fixtures do not cover. */
TEST(quant_roundtrip_error) {
    uint32_t seed = 7;
    const int64_t K = 1024;
    float *x = make_x(1, K, &seed), *y = malloc(sizeof(float) * K);
    for (int ti = 0; ti < N_TYPES; ti++) {
        const qtype_traits *t = quant_traits(k_types[ti]);
        unsigned char *q = malloc(quant_row_bytes(t->type, K));
        t->quantize(x, q, K);
        t->dequantize(q, y, K);
        double e2 = 0, x2 = 0;
        for (int64_t k = 0; k < K; k++) {
            e2 += (double)(y[k] - x[k]) * (y[k] - x[k]);
            x2 += (double)x[k] * x[k];
        }
        /* relative RMS error: ~8% for 4 bits, ~0.5% for 8 */
        double lim = t->type == QT_Q8_0 ? 0.01 : t->type == QT_Q6_K ? 0.03 : t->type == QT_Q5_K ? 0.06
                   : t->type == QT_MXFP4 ? 0.16 : t->type == QT_Q5_0 || t->type == QT_Q5_1 ? 0.06
                   : t->type == QT_Q3_K ? 0.25 : t->type == QT_Q2_K ? 0.4 : 0.12;
        CHECK_MSG(sqrt(e2 / x2) < lim, "%s: rms error %.4f", t->name, sqrt(e2 / x2));
        if (getenv("MOE_TEST_VERBOSE")) fprintf(stderr, "  %s: rms error %.4f\n", t->name, sqrt(e2 / x2));
        free(q);
    }
    free(x);
    free(y);
}

/* ------------------------------------------------ activation quantization */

/* x [3][768]: normal rows, plus a zero block, exact .5 ties for both
 * rounding rules (roundf for Q8_0, nearest-even for Q8_K), f16-subnormal
 * scales, and a largest magnitude reached with both signs. */
static float *make_x_edges(uint32_t *seed) {
    const int64_t K = 768;
    float *x = make_x(3, K, seed);
    for (int k = 0; k < 32; k++) x[K + k] = 0;
    for (int k = 256; k < 512; k++) x[K + k] = ((float)rng_int(seed, -126, 125) + 0.5f) / 16.0f;
    x[K + 256] = x[K + 288] = x[K + 320] = x[K + 352] = 127.0f / 16.0f; /* scale 1/16: exact ties */
    x[K + 384] = x[K + 416] = x[K + 448] = x[K + 480] = -127.0f / 16.0f;
    for (int k = 0; k < 64; k++) x[2 * K + k] = 1e-6f * normalish(seed);
    x[2 * K + 300] = -5.0f;
    x[2 * K + 400] = 5.0f;
    return x;
}

TEST(quant_activations_same_on_every_isa) {
    path_pools pp;
    paths_init(&pp);
    uint32_t seed = 11;
    const int64_t n = 3, K = 768;
    float *x = make_x_edges(&seed);
    for (int ti = 0; ti < N_TYPES; ti++) {
        int type = k_types[ti];
        size_t sz = qact_size(type, n, K);
        unsigned char *ref = malloc(sz), *got = malloc(sz);
        memset(ref, 0, sz);
        qact_quantize(pp.one[ISA_SCALAR], ref, x, type, n, K);
        for (int i = ISA_AVX2; i < ISA_COUNT; i++) {
            if (!pp.one[i]) continue;
            memset(got, 0, sz);
            qact_quantize(pp.one[i], got, x, type, n, K);
            const unsigned char *g = al64(got), *r = al64(ref);
            size_t len = sz - 64, d = 0;
            while (d < len && g[d] == r[d]) d++;
            CHECK_MSG(d == len, "%s on %s: activation byte %zu differs (0x%02x vs 0x%02x)",
                      quant_traits(type)->name, isa_name((isa)i), d, d < len ? g[d] : 0, d < len ? r[d] : 0);
        }
        free(ref);
        free(got);
    }
    free(x);
    paths_free(&pp);
}

/* ------------------------------------------------------------ exactness */

static const int k_f16_off[][3] = {{QT_Q4_0, 0, -1}, {QT_Q8_0, 0, -1}, {QT_Q4_K, 0, 2},
                                   {QT_Q5_K, 0, 2},  {QT_Q6_K, 208, -1}, {QT_MXFP4, -1, -1},
                                   {QT_Q4_1, 0, 2},  {QT_Q5_0, 0, -1}, {QT_Q5_1, 0, 2},
                                   {QT_IQ4_NL, 0, -1}, {QT_Q2_K, 80, 82}, {QT_Q3_K, 108, -1},
                                   {QT_IQ4_XS, 0, -1}};

/* Random bytes with the f16 scale fields set to +-2^-3 or +-2^-4 (or, with
 * pow2 = 0, to small random finite values); MXFP4's E8M0 byte to a halved
 * scale of 2^-4 or 2^-3 (pow2) or 2^-18 .. 2^2. */
static void *make_w_raw(int type, int64_t rows, int64_t cols, int pow2, uint32_t *seed) {
    const qtype_traits *t = quant_traits(type);
    size_t rb = quant_row_bytes(type, cols), total = rb * (size_t)rows;
    unsigned char *w = malloc(total);
    for (size_t i = 0; i < total; i++) w[i] = (unsigned char)rng_next(seed);
    const int *off = NULL;
    for (int i = 0; i < N_TYPES; i++)
        if (k_f16_off[i][0] == type) off = &k_f16_off[i][1];
    for (size_t b = 0; b < total; b += (size_t)t->block_bytes)
        if (type == QT_MXFP4) w[b] = (unsigned char)(pow2 ? 124 + (int)(rng_next(seed) & 1) : rng_int(seed, 110, 130));
    for (size_t b = 0; b < total && type != QT_MXFP4; b += (size_t)t->block_bytes)
        for (int f = 0; f < 2; f++) {
            if (off[f] < 0) continue;
            uint16_t h = pow2 ? (uint16_t)((rng_next(seed) & 1 ? 0x3000 : 0x2C00) | (rng_next(seed) & 1 ? 0x8000 : 0))
                              : f32_to_f16(0.01f * normalish(seed));
            memcpy(w + b + off[f], &h, 2);
        }
    return w;
}

/* x whose quantization is exact: per activation block (32 or 256 values)
 * codes in [-63, 63], one of them +-127, times 2^-4 or 2^-5. */
static float *make_x_exact(int type, int64_t n, int64_t cols, uint32_t *seed) {
    const int qb = quant_traits(type)->block_elems == 32 ? 32 : 256;
    float *x = malloc(sizeof(float) * (size_t)(n * cols));
    for (int64_t b = 0; b < n * cols; b += qb) {
        float s = rng_next(seed) & 1 ? 1.0f / 16 : 1.0f / 32;
        for (int k = 0; k < qb; k++) x[b + k] = (float)rng_int(seed, -63, 63) * s;
        x[b + rng_int(seed, 0, qb - 1)] = (rng_next(seed) & 1 ? 127.0f : -127.0f) * s;
    }
    return x;
}

/* y [n][rows] = x W^T in double from the dequantized W. */
static double *exact_y(int type, const void *W, int64_t rows, int64_t cols, const float *x, int64_t n) {
    const qtype_traits *t = quant_traits(type);
    size_t rb = quant_row_bytes(type, cols);
    float *wr = malloc(sizeof(float) * (size_t)cols);
    double *y = malloc(sizeof(double) * (size_t)(n * rows));
    for (int64_t r = 0; r < rows; r++) {
        t->dequantize((const unsigned char *)W + rb * (size_t)r, wr, cols);
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t k = 0; k < cols; k++) s += (double)wr[k] * x[i * cols + k];
            y[i * rows + r] = s;
        }
    }
    free(wr);
    return y;
}

/* 1 (GEMV), 2-4 (the few-row streams), GEMM tails, and for AMX one x tile, a
 * tile + 1, and 3 tiles. */
static const int64_t k_ns[] = {1, 2, 3, 4, 8, 16, 17, 33};
#define N_NS ((int)(sizeof k_ns / sizeof k_ns[0]))
/* The same and, for the interleaved 16-row kernels' tiles of 8 x rows
 * (quant_r16_avx512.c: the 32-block types, from 2 or 4 rows by type, and
 * test_quant_r16.c takes every count 1..17; quant_r16k_avx512.c: Q4_K /
 * Q5_K / Q6_K / IQ4_XS), tiles of every size 1..8: 5, 6, 7, 8 + 2, 8 + 3
 * and 8 + 4 (held to the reference only: new counts in k_ns would change
 * the other tests' random inputs). */
static const int64_t k_ns_fast[] = {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 16, 17, 33};
#define N_NS_FAST ((int)(sizeof k_ns_fast / sizeof k_ns_fast[0]))

TEST(quant_integer_sums_exact) {
    path_pools pp;
    paths_init(&pp);
    uint32_t seed = 23;
    for (int ti = 0; ti < N_TYPES; ti++) {
        int type = k_types[ti];
        const int64_t rows = 37, K = quant_traits(type)->block_elems == 32 ? 352 : 512;
        void *W = make_w_raw(type, rows, K, 1, &seed);
        for (int ni = 0; ni < N_NS; ni++) {
            int64_t n = k_ns[ni];
            float *x = make_x_exact(type, n, K, &seed);
            double *want = exact_y(type, W, rows, K, x, n);
            size_t sz = qmatmul_scratch_size(type, n, K);
            void *scratch = malloc(sz);
            float *y = malloc(sizeof(float) * (size_t)(n * rows));
            qmatmul_ref(y, x, W, type, n, rows, K, scratch);
            int bad = 0;
            for (int64_t i = 0; i < n * rows; i++) bad += (double)y[i] != want[i];
            CHECK_MSG(bad == 0, "%s n=%lld reference: %d of %lld outputs not exact", quant_traits(type)->name,
                      (long long)n, bad, (long long)(n * rows));
            for (int is = 0; is < N_PATHS; is++) {
                if (!pp.two[is]) continue;
                pool *p = pp.two[is];
                memset(y, 0, sizeof(float) * (size_t)(n * rows));
                qmatmul(p, y, x, W, type, n, rows, K, scratch);
                bad = 0;
                int64_t first = -1;
                for (int64_t i = 0; i < n * rows; i++)
                    if ((double)y[i] != want[i] && bad++ == 0) first = i;
                CHECK_MSG(bad == 0, "%s n=%lld on %s: %d outputs not exact, first [%lld] %.9g vs %.9g",
                          quant_traits(type)->name, (long long)n, path_name(is), bad, (long long)first,
                          first < 0 ? 0.0 : y[first], first < 0 ? 0.0 : want[first]);
            }
            free(y);
            free(scratch);
            free(want);
            free(x);
        }
        free(W);
    }
    paths_free(&pp);
}

/* --------------------------------------------------- fast paths vs ref */

/* |y - ref| <= 1e-5 * sum_k |w_k x_k| (the scale of that output). */
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
            if (!(d <= 1.1e-5 * scale + 1e-30)) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s y[%lld][%lld] = %.9g, ref %.9g, scale %g\n", t->name, (long long)i,
                            (long long)r, y[i * rows + r], ref[i * rows + r], scale);
            }
        }
    }
    free(wr);
    return bad;
}

TEST(quant_fast_paths_match_reference) {
    path_pools pp;
    paths_init(&pp);
    uint32_t seed = 31;
    /* 32-blocks: 3, 1, 64, 11, 6 and 21 per row (the Q4_0 GEMV's groups of 4
     * blocks with every tail; the interleaved 16-row kernel's chunks
     * of 16 blocks with a tail, 16 + 5 rows); 256-blocks: 1, 3, 8, 2, 1 and
     * 5 per row (the interleaved kernel's chunks of 4 super-blocks: two, and
     * one with a tail of 1), groups of 16 W rows partial in all but 64 */
    static const int64_t shapes32[][2] = {{37, 96}, {5, 32}, {64, 2048}, {129, 352}, {19, 192}, {21, 672}};
    static const int64_t shapesK[][2] = {{37, 256}, {5, 768}, {64, 2048}, {19, 512}, {3, 256}, {21, 1280}};
    for (int ti = 0; ti < N_TYPES; ti++) {
        int type = k_types[ti];
        int is32 = quant_traits(type)->block_elems == 32;
        for (int s = 0; s < 6; s++) {
            int64_t rows = is32 ? shapes32[s][0] : shapesK[s][0], K = is32 ? shapes32[s][1] : shapesK[s][1];
            for (int raw = 0; raw < 2; raw++) {
                void *W = raw ? make_w_raw(type, rows, K, 0, &seed) : make_w(type, rows, K, &seed);
                for (int ni = 0; ni < N_NS_FAST; ni++) {
                    int64_t n = k_ns_fast[ni];
                    float *x = make_x(n, K, &seed);
                    size_t sz = qmatmul_scratch_size(type, n, K);
                    void *scratch = malloc(sz);
                    float *ref = malloc(sizeof(float) * (size_t)(n * rows));
                    float *y = malloc(sizeof(float) * (size_t)(n * rows));
                    float *y1 = malloc(sizeof(float) * (size_t)(n * rows));
                    qmatmul_ref(ref, x, W, type, n, rows, K, scratch);
                    for (int is = 0; is < N_PATHS; is++) {
                        if (!pp.two[is]) continue;
                        pool *p = pp.two[is];
                        qmatmul(p, y, x, W, type, n, rows, K, scratch);
                        int bad = compare_ref(y, ref, type, W, rows, K, x, n);
                        CHECK_MSG(bad == 0, "%s %s W [%lld][%lld] n=%lld on %s: %d outputs off",
                                  quant_traits(type)->name, raw ? "random-bytes" : "quantized", (long long)rows,
                                  (long long)K, (long long)n, path_name(is), bad);
                        /* one thread gives the same bits as two */
                        qmatmul(pp.one[is], y1, x, W, type, n, rows, K, scratch);
                        CHECK_MSG(memcmp(y, y1, sizeof(float) * (size_t)(n * rows)) == 0,
                                  "%s n=%lld on %s: threaded result differs", quant_traits(type)->name,
                                  (long long)n, path_name(is));
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
    }
    paths_free(&pp);
}

/* Decode of IQ4_XS (one row of x, quant_extra_gemv_avx2.c) gives each
 * output the bits the few-row kernel gives it among 2 rows (quant_extra_kern.h
 * on AVX2, below the interleaved kernel's threshold: the same int32 lane
 * sums, f32 steps and lane adds), which packed IQ4_XS keeps too, so a
 * token's logits do not depend on whether it was decoded alone or with
 * another. Row counts: 37 (runs of 10 and a short one), 5. */
TEST(quant_iq4_xs_decode_same_bits_as_few_rows) {
    static const int types[] = {QT_IQ4_XS};
    static const int64_t shapes[][2] = {{37, 768}, {5, 2048}};
    pool *p = kern_pool_cfg(2, path_cfg(ISA_AVX2));
    if (!p) {
        SKIP("no AVX2");
        return;
    }
    uint32_t seed = 57;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (int s = 0; s < 2; s++) {
            const int type = types[ti];
            const int64_t rows = shapes[s][0], K = shapes[s][1], n = 2;
            void *W = make_w(type, rows, K, &seed);
            float *x = make_x(n, K, &seed);
            void *scratch = malloc(qmatmul_scratch_size(type, n, K));
            float *y = malloc(sizeof(float) * (size_t)(n * rows)), *y1 = malloc(sizeof(float) * (size_t)rows);
            qmatmul(p, y, x, W, type, n, rows, K, scratch);
            for (int64_t i = 0; i < n; i++) {
                qmatmul(p, y1, x + i * K, W, type, 1, rows, K, scratch);
                long d = first_bits_diff(y1, y + i * rows, (size_t)rows);
                CHECK_MSG(d < 0, "%s [%lld][%lld] row %lld of x: decode output %ld is %.9g, among 2 rows %.9g",
                          quant_traits(type)->name, (long long)rows, (long long)K, (long long)i, d,
                          d < 0 ? 0.0 : y1[d], d < 0 ? 0.0 : y[i * rows + d]);
            }
            free(y1);
            free(y);
            free(scratch);
            free(x);
            free(W);
        }
    pool_free(p);
}

/* ------------------------------------------- against the f32 matmul */

/* qmatmul quantizes x per block b (32 or 256 values) with step
 * d_b = amax_b / 127 (the stored scale is d_b rounded to f16 for Q8_0, to
 * f32 for Q8_K), so each x_k moves by at most d_b/2 (rounding to the
 * nearest code) + 127 * d_b * 2^-11 (the f16 rounding of the scale, for
 * |code| <= 127): |x^_k - x_k| <= 0.5625 d_b. Hence
 *   |y_q - y_f32| <= sum_b 0.5625 d_b sum_{k in b} |w_k| + f32 rounding,
 * a bound that holds for every output, not just on average. The test uses
 * 0.57 and adds 1e-5 * sum |w x| for the rounding of both sums. */
TEST(quant_vs_f32_matmul) {
    uint32_t seed = 41;
    for (int ti = 0; ti < N_TYPES; ti++) {
        int type = k_types[ti];
        const qtype_traits *t = quant_traits(type);
        const int64_t rows = 37, K = t->block_elems == 32 ? 352 : 512, qb = t->block_elems == 32 ? 32 : 256;
        void *W = make_w(type, rows, K, &seed);
        float *wf = malloc(sizeof(float) * (size_t)(rows * K));
        for (int64_t r = 0; r < rows; r++) t->dequantize((unsigned char *)W + quant_row_bytes(type, K) * r, wf + r * K, K);
        mat Wf = {wf, DT_F32, rows, K};
        for (int ni = 0; ni < N_NS; ni++) {
            int64_t n = k_ns[ni];
            float *x = make_x(n, K, &seed);
            void *scratch = malloc(qmatmul_scratch_size(type, n, K));
            float *y = malloc(sizeof(float) * (size_t)(n * rows)), *yf = malloc(sizeof(float) * (size_t)(n * rows));
            qmatmul(NULL, y, x, W, type, n, rows, K, scratch);
            matmul_ref(yf, x, &Wf, n);
            int bad = 0;
            double worst = 0;
            for (int64_t i = 0; i < n; i++)
                for (int64_t r = 0; r < rows; r++) {
                    double bound = 0, scale = 0;
                    for (int64_t b = 0; b < K; b += qb) {
                        double amax = 0, wsum = 0;
                        for (int64_t k = b; k < b + qb; k++) {
                            amax = fmax(amax, fabs(x[i * K + k]));
                            wsum += fabs(wf[r * K + k]);
                            scale += fabs((double)wf[r * K + k] * x[i * K + k]);
                        }
                        bound += 0.57 * amax / 127 * wsum;
                    }
                    bound += 1e-5 * scale;
                    double d = fabs((double)y[i * rows + r] - yf[i * rows + r]);
                    worst = fmax(worst, d / bound);
                    bad += !(d <= bound);
                }
            CHECK_MSG(bad == 0, "%s n=%lld: %d outputs beyond the bound (worst %.2f x bound)", t->name,
                      (long long)n, bad, worst);
            free(y);
            free(yf);
            free(scratch);
            free(x);
        }
        free(wf);
        free(W);
    }
}

/* ---------------------------------------------------------------- grouped */

TEST(quant_grouped_equals_separate) {
    path_pools pp;
    paths_init(&pp);
    uint32_t seed = 53;
    enum { T = 14 };
    static const int types[T] = {QT_Q4_K, QT_Q4_0, QT_Q6_K, QT_Q8_0, QT_Q5_K, QT_MXFP4, QT_Q4_0,
                                 QT_Q4_1, QT_Q2_K, QT_Q5_0, QT_Q3_K, QT_Q5_1, QT_IQ4_XS, QT_IQ4_NL};
    static const int64_t rows[T] = {37, 64, 16, 5, 100, 48, 33, 21, 40, 7, 33, 64, 19, 50};
    static const int64_t cols[T] = {512, 96, 256, 2048, 768, 256, 352, 160, 512, 96, 256, 64, 768, 128};
    static const int64_t ns[T] = {1, 3, 0, 17, 2, 8, 1, 5, 1, 3, 9, 2, 1, 4};
    void *W[T];
    float *x[T], *y[T], *ys[T];
    qmm_task tasks[T];
    for (int t = 0; t < T; t++) {
        W[t] = make_w(types[t], rows[t], cols[t], &seed);
        x[t] = make_x(ns[t] ? ns[t] : 1, cols[t], &seed);
        y[t] = malloc(sizeof(float) * (size_t)((ns[t] ? ns[t] : 1) * rows[t]));
        ys[t] = malloc(sizeof(float) * (size_t)((ns[t] ? ns[t] : 1) * rows[t]));
        tasks[t] = (qmm_task){W[t], types[t], rows[t], cols[t], x[t], y[t], ns[t], NULL, 0};
    }
    void *scratch = malloc(qmatmul_grouped_scratch_size(tasks, T));
    for (int is = 0; is < N_PATHS; is++) {
        if (!pp.two[is]) continue;
        pool *p = pp.two[is];
        for (int t = 0; t < T; t++) {
            y[t][0] = ys[t][0] = -7.0f; /* the n = 0 task must stay untouched */
            void *s = malloc(qmatmul_scratch_size(types[t], ns[t], cols[t]));
            qmatmul(p, ys[t], x[t], W[t], types[t], ns[t], rows[t], cols[t], s);
            free(s);
        }
        qmatmul_grouped(p, tasks, T, scratch);
        for (int t = 0; t < T; t++)
            CHECK_MSG(memcmp(y[t], ys[t], sizeof(float) * (size_t)(ns[t] * rows[t])) == 0,
                      "task %d (%s) on %s: grouped differs from separate", t, quant_traits(types[t])->name,
                      path_name(is));
        CHECK(y[2][0] == -7.0f);
    }
    free(scratch);
    for (int t = 0; t < T; t++) {
        free(W[t]);
        free(x[t]);
        free(y[t]);
        free(ys[t]);
    }
    paths_free(&pp);
}

/* Consecutive tasks on the same x (an expert's gate and up) share one
 * quantization where the layouts agree (same type, or both AMX tiles of
 * the 32-block types; Q4_K's tiles are another layout); the
 * results are those of separate calls whatever the types around them. */
TEST(quant_grouped_shared_x) {
    path_pools pp;
    paths_init(&pp);
    uint32_t seed = 71;
    enum { T = 9 };
    static const int types[T] = {QT_Q8_0, QT_Q8_0, QT_Q4_0, QT_Q4_K, QT_Q4_K, QT_Q4_0, QT_MXFP4, QT_MXFP4, QT_Q8_0};
    static const int64_t rows[T] = {32, 21, 48, 16, 23, 24, 16, 7, 40};
    const int64_t K = 512;
    for (int ni = 0; ni < 3; ni++) {
        const int64_t n = ni == 0 ? 1 : ni == 1 ? 3 : 17;
        float *x = make_x(n, K, &seed);
        void *W[T];
        float *y[T], *ys[T];
        qmm_task tasks[T];
        for (int t = 0; t < T; t++) {
            W[t] = make_w(types[t], rows[t], K, &seed);
            y[t] = malloc(sizeof(float) * (size_t)(n * rows[t]));
            ys[t] = malloc(sizeof(float) * (size_t)(n * rows[t]));
            tasks[t] = (qmm_task){W[t], types[t], rows[t], K, x, y[t], n, NULL, 0};
        }
        void *scratch = malloc(qmatmul_grouped_scratch_size(tasks, T));
        for (int is = 0; is < N_PATHS; is++) {
            if (!pp.two[is]) continue;
            pool *p = pp.two[is];
            for (int t = 0; t < T; t++) {
                void *s1 = malloc(qmatmul_scratch_size(types[t], n, K));
                qmatmul(p, ys[t], x, W[t], types[t], n, rows[t], K, s1);
                free(s1);
            }
            qmatmul_grouped(p, tasks, T, scratch);
            for (int t = 0; t < T; t++)
                CHECK_MSG(memcmp(y[t], ys[t], sizeof(float) * (size_t)(n * rows[t])) == 0,
                          "n=%lld task %d (%s) on %s: grouped with shared x differs from separate", (long long)n, t,
                          quant_traits(types[t])->name, path_name(is));
        }
        free(scratch);
        for (int t = 0; t < T; t++) {
            free(W[t]);
            free(y[t]);
            free(ys[t]);
        }
        free(x);
    }
    paths_free(&pp);
}

/* Tasks taking their rows of a shared x by index (an MoE layer's tokens)
 * give, bit for bit, what the same rows gathered give: with the x
 * quantized whole once per type (the tasks' rows outnumber its own, and
 * enough values for the threaded quantization) and without (one small
 * task), gate / up pairs sharing one index list, gate and up of different
 * types, tasks with and without idx in one call. Where a kernel choice
 * takes AMX tiles (qmatmul_idx_ok says no) the task gets gathered rows. */
TEST(quant_grouped_indexed_rows) {
    path_pools pp;
    paths_init(&pp);
    uint32_t seed = 97;
    enum { T = 14, XR = 40 };
    const int64_t K = 2048;
    static const int types[T] = {QT_Q8_0, QT_Q8_0, QT_Q4_K, QT_Q4_K, QT_IQ4_XS, QT_IQ4_XS, QT_Q6_K,
                                 QT_Q8_0, QT_Q4_0, QT_Q4_0, QT_MXFP4, QT_MXFP4, QT_Q5_K, QT_Q5_K};
    static const int64_t rows[T] = {32, 32, 16, 16, 48, 48, 16, 16, 32, 32, 16, 16, 16, 16};
    static const int64_t ns[T] = {1, 1, 3, 3, 17, 17, 8, 8, 40, 40, 2, 2, 5, 5};
    float *x = make_x(XR, K, &seed);
    int idx[T / 2][XR];
    for (int e = 0; e < T / 2; e++)
        for (int i = 0; i < XR; i++) idx[e][i] = (int)(rng_next(&seed) % XR);
    void *W[T];
    float *y[T], *ys[T], *xg[T];
    for (int t = 0; t < T; t++) {
        W[t] = make_w(types[t], rows[t], K, &seed);
        y[t] = malloc(sizeof(float) * (size_t)(ns[t] * rows[t]));
        ys[t] = malloc(sizeof(float) * (size_t)(ns[t] * rows[t]));
        xg[t] = malloc(sizeof(float) * (size_t)(ns[t] * K));
        for (int64_t i = 0; i < ns[t]; i++)
            memcpy(xg[t] + i * K, x + (int64_t)idx[t / 2][i] * K, sizeof(float) * (size_t)K);
    }
    for (int is = 0; is < N_PATHS; is++) {
        if (!pp.two[is]) continue;
        pool *p = pp.two[is];
        for (int t = 0; t < T; t++) {
            void *s1 = malloc(qmatmul_scratch_size(types[t], ns[t], K));
            qmatmul(p, ys[t], xg[t], W[t], types[t], ns[t], rows[t], K, s1);
            free(s1);
        }
        for (int small = 0; small < 2; small++) {
            qmm_task tasks[T];
            int m = small ? 1 : T, n_idx = 0;
            for (int t0 = 0; t0 < m; t0++) {
                int t = small ? 2 : t0; /* alone: 3 rows of 40, quantized where they are */
                int ok = qmatmul_idx_ok(p, types[t], ns[t]) && t != 9; /* task 9: gathered beside its idx twin */
                n_idx += ok;
                tasks[t0] = ok ? (qmm_task){W[t], types[t], rows[t], K, x, y[t], ns[t], idx[t / 2], XR}
                               : (qmm_task){W[t], types[t], rows[t], K, xg[t], y[t], ns[t], NULL, 0};
            }
            void *scratch = malloc(qmatmul_grouped_scratch_size(tasks, m));
            qmatmul_grouped(p, tasks, m, scratch);
            free(scratch);
            for (int t0 = 0; t0 < m; t0++) {
                int t = small ? 2 : t0;
                CHECK_MSG(memcmp(y[t], ys[t], sizeof(float) * (size_t)(ns[t] * rows[t])) == 0,
                          "task %d (%s, %lld rows) on %s%s: rows by index differ from gathered rows", t,
                          quant_traits(types[t])->name, (long long)ns[t], path_name(is), small ? ", alone" : "");
            }
            CHECK(n_idx > 0 || small);
        }
    }
    for (int t = 0; t < T; t++) {
        free(W[t]);
        free(y[t]);
        free(ys[t]);
        free(xg[t]);
    }
    free(x);
    paths_free(&pp);
}

/* A shared quantization (qact_quantize + qmatmul_q) gives what qmatmul
 * gives; large n takes the threaded quantization. */
TEST(quant_prequantized_and_threaded_activations) {
    pool *p = pool_create(2);
    uint32_t seed = 59;
    const int64_t n = 40, K = 2048, rows = 24; /* n * K above the threaded-quantization threshold */
    for (int ti = 0; ti < N_TYPES; ti++) {
        int type = k_types[ti];
        void *W = make_w(type, rows, K, &seed);
        float *x = make_x(n, K, &seed);
        size_t sz = qact_size(type, n, K);
        unsigned char *a = malloc(sz), *b = malloc(sz);
        memset(a, 0, sz);
        memset(b, 0, sz);
        qact_quantize(p, a, x, type, n, K);
        qact_quantize(NULL, b, x, type, n, K);
        CHECK_MSG(memcmp(al64(a), al64(b), sz - 64) == 0, "%s: threaded activation quantization differs",
                  quant_traits(type)->name);
        float *y1 = malloc(sizeof(float) * n * rows), *y2 = malloc(sizeof(float) * n * rows);
        qmatmul_q(p, y1, a, W, type, n, rows, K);
        qmatmul(p, y2, x, W, type, n, rows, K, b);
        CHECK(memcmp(y1, y2, sizeof(float) * n * rows) == 0);
        free(y1);
        free(y2);
        free(a);
        free(b);
        free(x);
        free(W);
    }
    pool_free(p);
}

/* ------------------------------------------------------------------ AMX */

/* The AMX tile layout holds the row layout's codes and scales, from the
 * scalar reference and AVX-512 alike, padding rows zero. */
TEST(quant_amx_tile_activations) {
    if (!kernels_cfg(ISA_AVX512, 0, 0)) SKIP("no AVX-512");
    pool *scalar = kern_pool(1, ISA_SCALAR);
    uint32_t seed = 61;
    const int64_t K = 768, nb = K / 32;
    float *x = make_x_edges(&seed);
    for (int64_t nx = 1; nx <= 3; nx++) {
        size_t ts = qtile_stride(K);
        unsigned char *a = aligned_alloc(64, ts), *b = aligned_alloc(64, ts);
        memset(a, 0x5A, ts);
        memset(b, 0xA5, ts);
        ref_qact_tile(a, x, nx, K);
        avx512_qact_tile(b, x, nx, K);
        CHECK_MSG(memcmp(a, b, ts) == 0, "nx=%lld: AVX-512 tile differs from the reference", (long long)nx);
        /* against the scalar row layout */
        size_t rs = qact_size(QT_Q8_0, 3, K);
        unsigned char *rw = malloc(rs);
        qact_quantize(scalar, rw, x, QT_Q8_0, 3, K);
        const unsigned char *r0 = al64(rw);
        size_t stride = (QX32_ROW_BYTES(nb) + 63) / 64 * 64;
        int bad = 0;
        for (int64_t j = 0; j < QT_TILE_N; j++)
            for (int64_t bl = 0; bl < nb; bl++) {
                const unsigned char *blk = a + bl * QT_TILE_BLOCK;
                float d;
                memcpy(&d, blk + 512 + 4 * j, 4);
                float dr = j < nx ? qx32_dv(r0 + j * stride, nb)[bl * 8] : 0.0f;
                bad += memcmp(&d, &dr, 4) != 0;
                for (int e = 0; e < 32; e++) {
                    int8_t c = (int8_t)blk[(e / 4) * 64 + j * 4 + e % 4];
                    int8_t cr = j < nx ? qx32_qs(r0 + j * stride)[bl * 32 + e] : 0;
                    bad += c != cr;
                }
            }
        CHECK_MSG(bad == 0, "nx=%lld: %d tile values differ from the row layout", (long long)nx, bad);
        free(rw);
        free(a);
        free(b);
    }
    free(x);
    pool_free(scalar);
}

/* AMX shapes: several K chunks and a partial one, W row groups with a tail
 * (and W of fewer than 16 rows), more x tiles than one pass holds, thread
 * splits; against the scalar reference. */
TEST(quant_amx_shapes) {
    if (!path_cfg(ISA_COUNT)) SKIP("no AMX");
    pool *p = kern_pool_cfg(2, path_cfg(ISA_COUNT)), *p1 = kern_pool_cfg(1, path_cfg(ISA_COUNT));
    uint32_t seed = 67;
    static const int64_t shapes[][3] = {{50, 2048, 130}, {16, 544, 16}, {7, 96, 40}, {33, 1024, 9}, {64, 32, 8}};
    /* the 256-blocks: K chunks of 2 blocks, the last one partial (9 and 1 blocks) */
    static const int64_t shapes_k[][3] = {{50, 2304, 130}, {16, 512, 16}, {7, 256, 40}, {33, 1024, 9}, {64, 768, 5}};
    static const int amx_types[] = {QT_Q4_0, QT_Q8_0, QT_Q5_0, QT_IQ4_NL, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_Q3_K, QT_IQ4_XS};
    for (int ti = 0; ti < (int)(sizeof amx_types / sizeof amx_types[0]); ti++) {
        int type = amx_types[ti];
        CHECK(qt_amx(type));
        for (int s = 0; s < 5; s++) {
            const int64_t *sh = qt_tile_k(type) ? shapes_k[s] : shapes[s];
            int64_t rows = sh[0], K = sh[1], n = sh[2];
            void *W = make_w(type, rows, K, &seed);
            float *x = make_x(n, K, &seed);
            void *scratch = malloc(qmatmul_scratch_size(type, n, K));
            float *ref = malloc(sizeof(float) * (size_t)(n * rows)), *y = malloc(sizeof(float) * (size_t)(n * rows));
            float *y1 = malloc(sizeof(float) * (size_t)(n * rows));
            qmatmul_ref(ref, x, W, type, n, rows, K, scratch);
            qmatmul(p, y, x, W, type, n, rows, K, scratch);
            int bad = compare_ref(y, ref, type, W, rows, K, x, n);
            CHECK_MSG(bad == 0, "%s W [%lld][%lld] n=%lld on AMX: %d outputs off", quant_traits(type)->name,
                      (long long)rows, (long long)K, (long long)n, bad);
            qmatmul(p1, y1, x, W, type, n, rows, K, scratch);
            CHECK_MSG(memcmp(y, y1, sizeof(float) * (size_t)(n * rows)) == 0,
                      "%s W [%lld][%lld] n=%lld on AMX: threaded result differs", quant_traits(type)->name,
                      (long long)rows, (long long)K, (long long)n);
            free(y1);
            free(y);
            free(ref);
            free(scratch);
            free(x);
            free(W);
        }
    }
    pool_free(p);
    pool_free(p1);
}

/* ----------------------------------------------------------- bad shapes */

TEST(quant_bad_shapes_are_no_ops) {
    float x[64] = {0}, y[4] = {1, 2, 3, 4};
    unsigned char W[64] = {0}, scratch[1024];
    qmatmul(NULL, y, x, W, QT_Q4_0, 1, 1, 33, scratch);  /* cols not a multiple of 32 */
    qmatmul(NULL, y, x, W, QT_Q4_K, 1, 1, 64, scratch);  /* ... of 256 */
    qmatmul(NULL, y, x, W, 1, 1, 1, 32, scratch);        /* f16: not a quantized type */
    qmatmul(NULL, y, x, W, QT_Q8_0, 0, 1, 32, scratch);  /* n = 0 */
    qmatmul(NULL, y, x, W, QT_Q8_0, 1, 0, 32, scratch);  /* rows = 0 */
    qmatmul(NULL, y, x, W, QT_Q8_0, 1, 1, -32, scratch); /* negative cols */
    CHECK(y[0] == 1 && y[1] == 2 && y[2] == 3 && y[3] == 4);
    CHECK_EQ_INT(qact_size(QT_Q8_0, 0, 32), 64);
    qmm_task t = {W, 99, 1, 32, x, y, 1, NULL, 0};
    CHECK_EQ_INT(qmatmul_grouped_scratch_size(&t, 1), 64);
    qmatmul_grouped(NULL, &t, 1, scratch);
    CHECK(y[0] == 1);
}
