/*
 * test_sample.c - the sampler: greedy and its limits (temp -> 0, top-k 1,
 * tiny top-p), empirical frequencies against softmax(logits / T) with and
 * without truncation, determinism per seed, and option checking.
 */
#include <stdlib.h>

#include "moe.h"
#include "test.h"

static moe_sampler *new_sampler(float temp, int top_k, float top_p, uint64_t seed, int vocab) {
    moe_sampler_opts o = {.temp = temp, .top_k = top_k, .top_p = top_p, .seed = seed};
    moe_sampler *s = NULL;
    moe_err err = {{0}};
    if (moe_sampler_new(&s, &o, vocab, &err)) {
        test_fail_at(__FILE__, __LINE__, "moe_sampler_new: %s", err.msg);
        return NULL;
    }
    return s;
}

/* Pseudo-random logits in [-4, 4) (a fixed LCG, independent of the sampler). */
static void fill_logits(float *v, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)(seed >> 8) / (float)(1u << 24) * 8.0f - 4.0f;
    }
}

static int ref_argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

TEST(sample_greedy) {
    float v[7] = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f, -INFINITY, 0.0f};
    moe_sampler *s = new_sampler(0, 0, 1, 1, 7);
    if (!s) return;
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(moe_sample(s, v), 1); /* tie: lowest index */
    moe_sampler_free(s);
    float big[1000];
    fill_logits(big, 1000, 7);
    s = new_sampler(0, 0, 1, 1, 1000);
    if (!s) return;
    CHECK_EQ_INT(moe_sample(s, big), ref_argmax(big, 1000));
    moe_sampler_free(s);
    /* greedy ignores top-k / top-p */
    s = new_sampler(0, 3, 0.5f, 1, 1000);
    if (!s) return;
    CHECK_EQ_INT(moe_sample(s, big), ref_argmax(big, 1000));
    moe_sampler_free(s);
}

TEST(sample_does_not_modify_logits) {
    float v[64], w[64];
    fill_logits(v, 64, 3);
    memcpy(w, v, sizeof v);
    moe_sampler *s = new_sampler(0.8f, 10, 0.9f, 5, 64);
    if (!s) return;
    for (int i = 0; i < 10; i++) moe_sample(s, v);
    CHECK(memcmp(v, w, sizeof v) == 0);
    moe_sampler_free(s);
}

TEST(sample_temp_to_zero_is_greedy) {
    float v[500];
    fill_logits(v, 500, 11);
    int g = ref_argmax(v, 500);
    moe_sampler *s = new_sampler(1e-4f, 0, 1, 42, 500);
    if (!s) return;
    for (int i = 0; i < 200; i++) CHECK_EQ_INT(moe_sample(s, v), g);
    moe_sampler_free(s);
    s = new_sampler(1e-40f, 0, 0.9f, 42, 500); /* 1 / temp overflows */
    if (!s) return;
    for (int i = 0; i < 20; i++) CHECK_EQ_INT(moe_sample(s, v), g);
    moe_sampler_free(s);
}

TEST(sample_topk1_and_tiny_topp_are_greedy) {
    float v[300];
    for (int rep = 0; rep < 5; rep++) {
        fill_logits(v, 300, 100 + (uint32_t)rep);
        int g = ref_argmax(v, 300);
        moe_sampler *a = new_sampler(1.5f, 1, 1, (uint64_t)rep, 300);
        moe_sampler *b = new_sampler(1.5f, 0, 1e-6f, (uint64_t)rep, 300);
        moe_sampler *c = new_sampler(1.5f, 20, 1e-6f, (uint64_t)rep, 300);
        if (!a || !b || !c) return;
        for (int i = 0; i < 50; i++) {
            CHECK_EQ_INT(moe_sample(a, v), g);
            CHECK_EQ_INT(moe_sample(b, v), g);
            CHECK_EQ_INT(moe_sample(c, v), g);
        }
        moe_sampler_free(a);
        moe_sampler_free(b);
        moe_sampler_free(c);
    }
    /* ties under top-k 1: the lowest index, as greedy */
    float t[4] = {1, 3, 3, 0};
    moe_sampler *s = new_sampler(1, 1, 1, 9, 4);
    if (!s) return;
    for (int i = 0; i < 20; i++) CHECK_EQ_INT(moe_sample(s, t), 1);
    moe_sampler_free(s);
}

/* Expected distribution: softmax(v / T), restricted to the top-k, then to
 * the nucleus (sorted descending, smallest prefix with mass >= p), renormalized. */
static void expected(const float *v, int n, float T, int k, float p, double *q) {
    int *order = calloc((size_t)n, sizeof *order);
    if (!order) return;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) { /* insertion sort, descending, low index first on ties */
        int x = order[i], j = i;
        for (; j > 0 && v[x] > v[order[j - 1]]; j--) order[j] = order[j - 1];
        order[j] = x;
    }
    int keep = (k > 0 && k < n) ? k : n;
    double mx = v[order[0]], z = 0;
    for (int i = 0; i < n; i++) q[i] = 0;
    for (int j = 0; j < keep; j++) z += exp((v[order[j]] - mx) / T);
    double c = 0;
    int m = 0;
    while (m < keep) {
        c += exp((v[order[m]] - mx) / T) / z;
        m++;
        if (c >= p) break;
    }
    double zz = 0;
    for (int j = 0; j < m; j++) zz += exp((v[order[j]] - mx) / T);
    for (int j = 0; j < m; j++) q[order[j]] = exp((v[order[j]] - mx) / T) / zz;
    free(order);
}

static void check_freqs_n(const float *v, int n, float T, int k, float p, uint64_t seed, int draws) {
    double *q = calloc((size_t)n, sizeof *q);
    int *cnt = calloc((size_t)n, sizeof *cnt);
    moe_sampler *s = NULL;
    if (q && cnt) {
        expected(v, n, T, k, p, q);
        s = new_sampler(T, k, p, seed, n);
    }
    if (!s) {
        free(q);
        free(cnt);
        return;
    }
    for (int i = 0; i < draws; i++) {
        int t = moe_sample(s, v);
        CHECK(t >= 0 && t < n);
        if (t >= 0 && t < n) cnt[t]++;
    }
    moe_sampler_free(s);
    for (int i = 0; i < n; i++) {
        double f = (double)cnt[i] / draws;
        /* 5 standard deviations of a binomial proportion, plus a floor */
        double tol = 5 * sqrt(q[i] * (1 - q[i]) / draws) + 1e-4;
        if (q[i] == 0) CHECK_EQ_INT(cnt[i], 0);
        else CHECK_MSG(fabs(f - q[i]) <= tol, "T=%g k=%d p=%g token %d: freq %.5f vs %.5f (tol %.5f)",
                       (double)T, k, (double)p, i, f, q[i], tol);
    }
    free(q);
    free(cnt);
}

static void check_freqs(const float *v, int n, float T, int k, float p, uint64_t seed) {
    check_freqs_n(v, n, T, k, p, seed, 50000);
}

TEST(sample_frequencies_match_softmax) {
    float v[8] = {1.0f, 0.5f, -0.3f, 2.0f, 0.0f, 1.2f, -1.0f, 0.7f};
    check_freqs(v, 8, 1.0f, 0, 1.0f, 1);
    check_freqs(v, 8, 0.5f, 0, 1.0f, 2);
    check_freqs(v, 8, 2.0f, 0, 1.0f, 3);
}

TEST(sample_frequencies_topk_topp) {
    float v[8] = {1.0f, 0.5f, -0.3f, 2.0f, 0.0f, 1.2f, -1.0f, 0.7f};
    check_freqs(v, 8, 1.0f, 3, 1.0f, 4);   /* top-k only */
    check_freqs(v, 8, 1.0f, 0, 0.7f, 5);   /* top-p only */
    check_freqs(v, 8, 0.8f, 5, 0.8f, 6);   /* both */
    check_freqs(v, 8, 1.0f, 0, 0.999f, 7); /* nucleus of nearly everything */
    float w[32];
    fill_logits(w, 32, 77);
    check_freqs(w, 32, 1.3f, 0, 0.5f, 8);
    check_freqs(w, 32, 0.7f, 10, 0.9f, 9);
    /* a vocabulary large enough for several quickselect rounds in top-p */
    float x[200];
    fill_logits(x, 200, 99);
    check_freqs_n(x, 200, 1.0f, 0, 0.3f, 10, 50000);
    check_freqs_n(x, 200, 2.0f, 0, 0.6f, 11, 50000);
    check_freqs_n(x, 200, 1.0f, 100, 0.8f, 12, 50000);
}

TEST(sample_same_seed_same_sequence) {
    float v[1000];
    fill_logits(v, 1000, 5);
    for (int cfg = 0; cfg < 3; cfg++) {
        int k = cfg == 1 ? 40 : 0;
        float p = cfg == 2 ? 0.9f : 1.0f;
        moe_sampler *a = new_sampler(1.0f, k, p, 1234, 1000);
        moe_sampler *b = new_sampler(1.0f, k, p, 1234, 1000);
        moe_sampler *c = new_sampler(1.0f, k, p, 1235, 1000);
        if (!a || !b || !c) return;
        int same_c = 0;
        for (int i = 0; i < 500; i++) {
            int ta = moe_sample(a, v), tb = moe_sample(b, v), tc = moe_sample(c, v);
            CHECK_EQ_INT(ta, tb);
            same_c += ta == tc;
        }
        CHECK(same_c < 500); /* another seed gives another sequence */
        moe_sampler_free(a);
        moe_sampler_free(b);
        moe_sampler_free(c);
    }
}

TEST(sample_large_vocab_topp_and_infinities) {
    /* a vocabulary the size of Qwen's, peaked so the nucleus is small */
    enum { V = 151936 };
    float *v = malloc(V * sizeof *v);
    if (!v) SKIP("out of memory");
    fill_logits(v, V, 21);
    v[777] = 30.0f;
    v[778] = 29.0f;
    moe_sampler *s = new_sampler(1.0f, 0, 0.5f, 3, V);
    if (!s) { free(v); return; }
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(moe_sample(s, v), 777);
    moe_sampler_free(s);
    /* NaN is never chosen; +inf always is */
    v[5] = NAN;
    v[9] = INFINITY;
    s = new_sampler(1.0f, 0, 1.0f, 3, V);
    if (!s) { free(v); return; }
    for (int i = 0; i < 20; i++) CHECK_EQ_INT(moe_sample(s, v), 9);
    moe_sampler_free(s);
    free(v);
}

TEST(sample_bad_options) {
    moe_sampler *s = NULL;
    moe_err err = {{0}};
    moe_sampler_opts o = {.temp = -0.5f, .top_k = 0, .top_p = 1.0f, .seed = 1};
    CHECK(moe_sampler_new(&s, &o, 10, &err) == -1 && s == NULL);
    CHECK_STR_CONTAINS(err.msg, "temperature");
    o.temp = NAN;
    CHECK(moe_sampler_new(&s, &o, 10, &err) == -1);
    o.temp = 1;
    o.top_p = 0;
    CHECK(moe_sampler_new(&s, &o, 10, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "top_p");
    o.top_p = 1.5f;
    CHECK(moe_sampler_new(&s, &o, 10, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "top_p");
    o.top_p = -0.1f;
    CHECK(moe_sampler_new(&s, &o, 10, &err) == -1);
    o.top_p = 1;
    o.top_k = -1;
    CHECK(moe_sampler_new(&s, &o, 10, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "top_k");
    o.top_k = 0;
    CHECK(moe_sampler_new(&s, &o, 0, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "vocab");
    o.top_k = 50; /* larger than the vocabulary: same as off */
    CHECK(moe_sampler_new(&s, &o, 10, &err) == 0 && s != NULL);
    moe_sampler_free(s);
}
