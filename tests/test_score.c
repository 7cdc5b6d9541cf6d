/*
 * test_score.c - include/moe_score.h against the textbook formulas written out
 * with long double: log-softmax, KL divergence, argmax, the accumulator and
 * its quantile; rows of huge logits that a naive softmax overflows on.
 */
#include "test.h"

#include <math.h>
#include <stdlib.h>

#include "moe_score.h"

/* naive: p_i = exp(x_i) / sum exp(x_j), only for small logits */
static long double naive_logp(const float *x, int V, int i) {
    long double s = 0;
    for (int j = 0; j < V; j++) s += expl((long double)x[j]);
    return logl(expl((long double)x[i]) / s);
}

static long double naive_kl(const float *p, const float *q, int V) {
    long double kl = 0;
    for (int i = 0; i < V; i++) {
        long double lp = naive_logp(p, V, i), lq = naive_logp(q, V, i);
        kl += expl(lp) * (lp - lq);
    }
    return kl;
}

static void fill(float *x, int V, unsigned seed, float scale) {
    for (int i = 0; i < V; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = scale * ((float)((seed >> 8) & 0xffff) / 65535.0f - 0.5f);
    }
}

TEST(score_matches_textbook) {
    enum { V = 97 };
    float p[V], q[V];
    for (unsigned s = 1; s < 20; s++) {
        fill(p, V, s, 8.0f);
        fill(q, V, s * 7 + 3, 8.0f);
        for (int i = 0; i < V; i += 13)
            CHECK_NEAR(moe_score_logprob(p, V, i), (double)naive_logp(p, V, i), 1e-12);
        CHECK_NEAR(moe_score_kl(p, q, V), (double)naive_kl(p, q, V), 1e-12);
        CHECK(moe_score_kl(p, q, V) > 0);
        CHECK_NEAR(moe_score_kl(p, p, V), 0.0, 1e-15);
    }
}

TEST(score_huge_logits) {
    enum { V = 8 };
    /* exp(1000) overflows a double; the shifted forms do not */
    float p[V] = {1000, 999, 990, 0, -1000, 500, 1000, 998};
    float q[V] = {1000, 1000, 990, 0, -1000, 500, 999, 998};
    double lp = moe_score_logprob(p, V, 0);
    CHECK(isfinite(lp) && lp < 0 && lp > -1);
    double kl = moe_score_kl(p, q, V);
    CHECK(isfinite(kl) && kl > 0);
    /* same rows shifted by -1000 give the same answers */
    float ps[V], qs[V];
    for (int i = 0; i < V; i++) ps[i] = p[i] - 1000, qs[i] = q[i] - 1000;
    CHECK_NEAR(kl, (double)naive_kl(ps, qs, V), 1e-9);
    CHECK_NEAR(lp, (double)naive_logp(ps, V, 0), 1e-9);
    CHECK_EQ_INT(moe_score_argmax(p, V), 0); /* first of the tied maxima */
}

TEST(score_accumulator) {
    enum { V = 5 };
    float a[V] = {1, 2, 3, 4, 5}, b[V] = {1, 2, 3, 5, 4};
    double kl[3];
    moe_score_acc acc = {.kl = kl, .cap = 3};
    moe_score_add(&acc, a, a, V, 4);
    moe_score_add(&acc, a, b, V, 3);
    moe_score_add(&acc, b, b, V, 0);
    CHECK_EQ_INT((int)acc.n, 3);
    CHECK_EQ_INT((int)acc.top1_same, 2);
    double nll = -moe_score_logprob(a, V, 4) - moe_score_logprob(a, V, 3) - moe_score_logprob(b, V, 0);
    double rnll = -moe_score_logprob(a, V, 4) - moe_score_logprob(b, V, 3) - moe_score_logprob(b, V, 0);
    CHECK_NEAR(acc.nll, nll, 1e-12);
    CHECK_NEAR(acc.ref_nll, rnll, 1e-12);
    double k = moe_score_kl(b, a, V);
    CHECK_NEAR(acc.kl_sum, k, 1e-12);
    CHECK_NEAR(acc.kl_max, k, 1e-15);
    CHECK_NEAR(moe_score_kl_quantile(&acc, 1.0), k, 1e-15);
    CHECK_NEAR(moe_score_kl_quantile(&acc, 0.0), 0.0, 1e-15);
    /* without a reference only the NLL is kept */
    moe_score_acc solo = {0};
    moe_score_add(&solo, a, NULL, V, 1);
    CHECK_NEAR(solo.nll, -moe_score_logprob(a, V, 1), 1e-12);
    CHECK_EQ_INT((int)solo.top1_same, 0);
    CHECK_NEAR(moe_score_kl_quantile(&solo, 0.5), 0.0, 0);
}
