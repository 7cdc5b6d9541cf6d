/*
 * test_delta_rule.c - the chunked gated delta rule (kernels/delta_rule.h)
 * held to the recurrent one on random heads: fewer tokens than a chunk, a
 * chunk exactly, a chunk and one more, several chunks with a ragged end;
 * from a zero state and continuing a state; rows read through an index
 * (interleaved sequences); head sizes of the test models and of
 * Qwen3-Next. Both the states and the outputs, on every kernel path the
 * CPU has, against the scalar recurrent form.
 */
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/delta_rule.h"
#include "kernels/kernels.h"

typedef struct head_data {
    int n, Dk, Dv;
    float *q, *k, *v, *g, *beta, *S0; /* rows [n] of Dk / Dk / Dv; [n]; [n]; [Dk][Dv] */
} head_data;

static void l2n(float *x, int n, float scale) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    for (int i = 0; i < n; i++) x[i] = (float)(x[i] / sqrt(ss + 1e-6) * scale);
}

/* As the model makes them: unit q (times 1/sqrt(Dk)) and k, v ~ N(0, 1),
 * g = -exp(A) softplus(a) in about [-3, 0], beta = sigmoid(b). */
static head_data make(uint64_t seed, int n, int Dk, int Dv, int with_state) {
    rng r;
    rng_init(&r, seed);
    head_data h = {n, Dk, Dv, malloc(sizeof(float) * (size_t)n * Dk), malloc(sizeof(float) * (size_t)n * Dk),
                   malloc(sizeof(float) * (size_t)n * Dv), malloc(sizeof(float) * (size_t)n),
                   malloc(sizeof(float) * (size_t)n), calloc((size_t)Dk * Dv, sizeof(float))};
    rng_normal_fill(&r, h.q, (int64_t)n * Dk, 0, 1);
    rng_normal_fill(&r, h.k, (int64_t)n * Dk, 0, 1);
    rng_normal_fill(&r, h.v, (int64_t)n * Dv, 0, 1);
    for (int i = 0; i < n; i++) {
        l2n(h.q + (int64_t)i * Dk, Dk, 1.0f / sqrtf((float)Dk));
        l2n(h.k + (int64_t)i * Dk, Dk, 1.0f);
        double a = rng_normal(&r), b = 2 * rng_normal(&r);
        h.g[i] = (float)(-exp(0.3 * rng_normal(&r)) * log1p(exp(a)));
        h.beta[i] = (float)(1 / (1 + exp(-b)));
    }
    if (with_state) rng_normal_fill(&r, h.S0, (int64_t)Dk * Dv, 0, 0.5f);
    return h;
}

static void drop(head_data *h) {
    free(h->q), free(h->k), free(h->v), free(h->g), free(h->beta), free(h->S0);
}

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* max |a - b| / max(max |b|, 1e-3) */
static double err_of(const float *a, const float *b, int64_t n) {
    double e = 0, m = max_abs(b, n);
    for (int64_t i = 0; i < n; i++) e = fabs(a[i] - b[i]) > e ? fabs(a[i] - b[i]) : e;
    return e / (m > 1e-3 ? m : 1e-3);
}

/* Run one form over h (chunked: 1) with kernel choice kc, rows in the
 * layout of `spread` (below); S and o
 * [n][Dv] (by time) out. */
static void run(const kern_cfg *kc, int chunked, const head_data *h, int spread, float *S, float *o) {
    int n = h->n, Dk = h->Dk, Dv = h->Dv;
    /* token i lives at row rows[i] = spread * (n - 1 - i): a reversed,
     * strided layout, as interleaved sequences are (spread 1: row i, rows
     * NULL) */
    int *rows = malloc(sizeof(int) * (size_t)n);
    int64_t R = (int64_t)spread * n;
    float *q = calloc((size_t)R * Dk, sizeof(float)), *k = calloc((size_t)R * Dk, sizeof(float));
    float *v = calloc((size_t)R * Dv, sizeof(float)), *g = calloc((size_t)R, sizeof(float));
    float *b = calloc((size_t)R, sizeof(float)), *out = calloc((size_t)R * Dv, sizeof(float));
    for (int i = 0; i < n; i++) {
        int r = rows[i] = spread == 1 ? i : spread * (n - 1 - i);
        memcpy(q + (int64_t)r * Dk, h->q + (int64_t)i * Dk, sizeof(float) * (size_t)Dk);
        memcpy(k + (int64_t)r * Dk, h->k + (int64_t)i * Dk, sizeof(float) * (size_t)Dk);
        memcpy(v + (int64_t)r * Dv, h->v + (int64_t)i * Dv, sizeof(float) * (size_t)Dv);
        g[r] = h->g[i], b[r] = h->beta[i];
    }
    memcpy(S, h->S0, sizeof(float) * (size_t)Dk * Dv);
    delta_io io = {spread == 1 ? NULL : rows, q, k, v, Dk, Dk, Dv, g, b, 1, out, Dv, n, Dk, Dv};
    void *scratch = aligned_alloc(64, (delta_rule_chunked_bytes(Dk, Dv) + 63) & ~(size_t)63);
    if (chunked)
        delta_rule_chunked(kc, S, &io, scratch);
    else
        delta_rule_recurrent(kc, S, &io, scratch);
    for (int i = 0; i < n; i++)
        memcpy(o + (int64_t)i * Dv, out + (int64_t)rows[i] * Dv, sizeof(float) * (size_t)Dv);
    free(scratch), free(rows), free(q), free(k), free(v), free(g), free(b), free(out);
}

static void check_case(int n, int Dk, int Dv, int with_state, int spread, double tol) {
    head_data h = make(1000u * (unsigned)n + (unsigned)Dk + 7u * (unsigned)with_state, n, Dk, Dv, with_state);
    int64_t SZ = (int64_t)Dk * Dv, ON = (int64_t)n * Dv;
    float *S_ref = malloc(sizeof(float) * (size_t)SZ), *o_ref = malloc(sizeof(float) * (size_t)ON);
    float *S = malloc(sizeof(float) * (size_t)SZ), *o = malloc(sizeof(float) * (size_t)ON);
    const kern_cfg *scalar = kernels_named("scalar");
    run(scalar, 0, &h, 1, S_ref, o_ref);
    if (n >= 8) CHECK(max_abs(S_ref, SZ) > 0.1 && max_abs(o_ref, ON) > 0.01); /* not a trivial case */
    for (int i = 0; i < ISA_COUNT; i++) {
        const kern_cfg *kc = kernels_named(isa_name((isa)i));
        if (!kc) continue;
        for (int chunked = 0; chunked < 2; chunked++) {
            run(kc, chunked, &h, chunked ? spread : 1, S, o);
            double es = err_of(S, S_ref, SZ), eo = err_of(o, o_ref, ON);
            CHECK_MSG(es <= tol && eo <= tol,
                      "n %d Dk %d Dv %d state %d spread %d, %s %s: state err %.3g, output err %.3g",
                      n, Dk, Dv, with_state, spread, isa_name((isa)i),
                      chunked ? "chunked" : "recurrent", es, eo);
        }
    }
    free(S_ref), free(o_ref), free(S), free(o);
    drop(&h);
}

TEST(delta_rule_chunked_equals_recurrent_small_heads) {
    static const int ns[] = {1, 2, 17, 63, 64, 65, 130, 200};
    for (int i = 0; i < (int)(sizeof ns / sizeof ns[0]); i++)
        for (int st = 0; st < 2; st++) {
            check_case(ns[i], 8, 12, st, 1, 1e-5);
            check_case(ns[i], 8, 12, st, 3, 1e-5);
        }
}

TEST(delta_rule_chunked_equals_recurrent_qwen3_next_heads) {
    check_case(50, 128, 128, 1, 1, 1e-5);
    check_case(64, 128, 128, 0, 1, 1e-5);
    check_case(193, 128, 128, 1, 2, 1e-5);
    check_case(70, 16, 40, 1, 1, 1e-5); /* Dv not a multiple of the vector width */
}

/* A long run through chunks equals the same run split in two calls (the
 * second continuing the state the first left), the way a prompt is fed in
 * pieces. */
TEST(delta_rule_chunked_continues_a_state) {
    int n = 150, cut = 37, Dk = 16, Dv = 24;
    head_data h = make(99, n, Dk, Dv, 1);
    const kern_cfg *kc = kernels_default();
    int64_t SZ = (int64_t)Dk * Dv;
    float *S_all = malloc(sizeof(float) * (size_t)SZ), *o_all = malloc(sizeof(float) * (size_t)n * Dv);
    float *S = malloc(sizeof(float) * (size_t)SZ), *o = malloc(sizeof(float) * (size_t)n * Dv);
    run(kc, 1, &h, 1, S_all, o_all);
    head_data a = h, b = h;
    a.n = cut;
    run(kc, 1, &a, 1, S, o);
    b.n = n - cut, b.q += (int64_t)cut * Dk, b.k += (int64_t)cut * Dk, b.v += (int64_t)cut * Dv;
    b.g += cut, b.beta += cut, b.S0 = S;
    float *S2 = malloc(sizeof(float) * (size_t)SZ);
    run(kc, 1, &b, 1, S2, o + (int64_t)cut * Dv);
    CHECK_MSG(err_of(S2, S_all, SZ) <= 1e-5, "state %g", err_of(S2, S_all, SZ));
    CHECK_MSG(err_of(o, o_all, (int64_t)n * Dv) <= 1e-5, "outputs %g", err_of(o, o_all, (int64_t)n * Dv));
    free(S_all), free(o_all), free(S), free(o), free(S2);
    drop(&h);
}

/* The recurrence of delta_rule.h in double precision, token by token. */
static void recurrent_f64(const head_data *h, double *S, double *o) {
    int Dk = h->Dk, Dv = h->Dv;
    double *d = malloc(sizeof(double) * (size_t)Dv);
    for (int64_t i = 0; i < (int64_t)Dk * Dv; i++) S[i] = h->S0[i];
    for (int t = 0; t < h->n; t++) {
        const float *q = h->q + (int64_t)t * Dk, *k = h->k + (int64_t)t * Dk, *v = h->v + (int64_t)t * Dv;
        double decay = exp((double)h->g[t]);
        for (int64_t i = 0; i < (int64_t)Dk * Dv; i++) S[i] *= decay;
        for (int j = 0; j < Dv; j++) {
            double kS = 0;
            for (int i = 0; i < Dk; i++) kS += k[i] * S[(int64_t)i * Dv + j];
            d[j] = h->beta[t] * (v[j] - kS);
        }
        for (int i = 0; i < Dk; i++)
            for (int j = 0; j < Dv; j++) S[(int64_t)i * Dv + j] += k[i] * d[j];
        for (int j = 0; j < Dv; j++) {
            double acc = 0;
            for (int i = 0; i < Dk; i++) acc += q[i] * S[(int64_t)i * Dv + j];
            o[(int64_t)t * Dv + j] = acc;
        }
    }
    free(d);
}

static int has_subnormal(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (fpclassify(x[i]) == FP_SUBNORMAL) return 1;
    return 0;
}

/* Strong decay (g about -5 per token) drives exp(G) over a chunk through
 * the subnormal range, where x86 arithmetic is 10-100x slower, and a state
 * with nothing written into it (v = 0) decays into that range: both forms
 * flush such values to zero, still equal the double-precision recurrence,
 * leave a decayed state all zeros rather than subnormal (so the decode
 * steps after it run at full speed), and restore the caller's mode. */
static void strong_decay_case(int n, int zero_v, float g0) {
    int Dk = 32, Dv = 48;
    head_data h = make(4242u + (unsigned)n, n, Dk, Dv, 1);
    for (int i = 0; i < n; i++) h.g[i] = g0 - (float)(i % 3) * 0.1f;
    if (zero_v) memset(h.v, 0, sizeof(float) * (size_t)n * Dv);
    int64_t SZ = (int64_t)Dk * Dv, ON = (int64_t)n * Dv;
    double *S64 = malloc(sizeof(double) * (size_t)SZ), *o64 = malloc(sizeof(double) * (size_t)ON);
    recurrent_f64(&h, S64, o64);
    float *S_ref = malloc(sizeof(float) * (size_t)SZ), *o_ref = malloc(sizeof(float) * (size_t)ON);
    for (int64_t i = 0; i < SZ; i++) S_ref[i] = (float)S64[i];
    for (int64_t i = 0; i < ON; i++) o_ref[i] = (float)o64[i];
    if (zero_v) CHECK(has_subnormal(S_ref, SZ)); /* the case reaches the range */
    float *S = malloc(sizeof(float) * (size_t)SZ), *o = malloc(sizeof(float) * (size_t)ON);
    volatile float tiny = 1e-39f; /* subnormal: survives only if the caller's mode is kept */
    for (int i = 0; i < ISA_COUNT; i++) {
        const kern_cfg *kc = kernels_named(isa_name((isa)i));
        if (!kc) continue;
        for (int chunked = 0; chunked < 2; chunked++) {
            run(kc, chunked, &h, chunked ? 3 : 1, S, o);
            double es = err_of(S, S_ref, SZ), eo = err_of(o, o_ref, ON);
            CHECK_MSG(es <= 1e-5 && eo <= 1e-5, "n %d %s %s: state err %.3g, output err %.3g", n,
                      isa_name((isa)i), chunked ? "chunked" : "recurrent", es, eo);
            CHECK_MSG(!has_subnormal(S, SZ) && !has_subnormal(o, ON), "n %d %s %s: subnormals left", n,
                      isa_name((isa)i), chunked ? "chunked" : "recurrent");
            CHECK(fpclassify(tiny * 0.5f) == FP_SUBNORMAL);
        }
    }
    free(S64), free(o64), free(S_ref), free(o_ref), free(S), free(o);
    drop(&h);
}

TEST(delta_rule_strong_decay_flushes_subnormals) {
    strong_decay_case(130, 0, -4.0f);
    strong_decay_case(20, 1, -4.5f); /* S0 ~ 0.5 decays by about exp(-92) */
}
