/*
 * test_grad_losses.c - cross-entropy (ignored targets, extreme logits, in
 * place, bad targets, micro-batch combination) and the balancing losses
 * (Switch aux loss, router z-loss, KL to uniform; softmax and sigmoid
 * scores, k = 1, k = E): values against double-precision formulas,
 * gradients against central differences.
 */
#include "grad_check.h"
#include "train/grad_ops.h"

/* ------------------------------------------------------------ cross-entropy */

typedef struct ce_ctx {
    const double *z; /* [n][V] */
    const int32_t *y;
    int n, V;
} ce_ctx;

static double ce_mean(void *vc) {
    const ce_ctx *c = vc;
    double L = 0;
    int cnt = 0;
    for (int t = 0; t < c->n; t++) {
        if (c->y[t] < 0) continue;
        const double *z = c->z + t * c->V;
        double mx = z[0], Z = 0;
        for (int v = 1; v < c->V; v++) mx = fmax(mx, z[v]);
        for (int v = 0; v < c->V; v++) Z += exp(z[v] - mx);
        L += mx + log(Z) - z[c->y[t]];
        cnt++;
    }
    return L / cnt;
}

TEST(grad_cross_entropy) {
    enum { N = 5, V = 11 };
    const int32_t y[N] = {3, -1, 0, 10, 7};
    rng r;
    rng_init(&r, 50);
    float z[N * V], dz[N * V], buf[N * V];
    gc_fill(z, N * V, -4, 4, &r);
    for (int v = 0; v < V; v++) z[3 * V + v] *= 1000.0f; /* huge logits: no overflow */
    CHECK_EQ_INT(cross_entropy_count(y, N), 4);
    double loss;
    int64_t cnt;
    moe_err err = {{0}};
    CHECK_EQ_INT(cross_entropy(dz, z, y, N, V, 0.25f, &loss, &cnt, &err), 0);
    CHECK_EQ_INT(cnt, 4);
    double zd[N * V], want[N * V];
    gc_widen(zd, z, N * V);
    ce_ctx c = {zd, y, N, V};
    CHECK_NEAR(loss / cnt, ce_mean(&c), 1e-9 * fabs(ce_mean(&c)));
    gc_fd(ce_mean, &c, zd, N * V, 1e-5, want);
    GC_CHECK_ATOL("ce dlogits", dz, want, N * V, 1e-5, 1e-9);
    for (int v = 0; v < V; v++) CHECK(dz[1 * V + v] == 0.0f); /* ignored row */
    /* in place */
    memcpy(buf, z, sizeof z);
    double loss2;
    CHECK_EQ_INT(cross_entropy(buf, buf, y, N, V, 0.25f, &loss2, &cnt, &err), 0);
    CHECK(loss2 == loss);
    CHECK(memcmp(buf, dz, sizeof dz) == 0);
    /* two micro-batches with scale 1/total add up to the whole */
    float da[N * V];
    double la, lb;
    int64_t ca, cb;
    cross_entropy(da, z, y, 2, V, 0.25f, &la, &ca, &err);
    cross_entropy(da + 2 * V, z + 2 * V, y + 2, N - 2, V, 0.25f, &lb, &cb, &err);
    CHECK_EQ_INT(ca + cb, 4);
    CHECK_NEAR((la + lb) / (ca + cb), loss / cnt, 1e-12);
    CHECK(memcmp(da, dz, sizeof dz) == 0);
    /* no loss value without a gradient buffer */
    CHECK_EQ_INT(cross_entropy(NULL, z, y, N, V, 1.0f, &loss2, &cnt, &err), 0);
    CHECK(loss2 == loss);
    /* a target past the vocabulary: error, nothing written */
    const int32_t bad[2] = {1, V};
    for (int i = 0; i < 2 * V; i++) buf[i] = 7.0f;
    CHECK_EQ_INT(cross_entropy(buf, z, bad, 2, V, 1.0f, &loss2, &cnt, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "target 11 at row 1");
    for (int i = 0; i < 2 * V; i++) CHECK(buf[i] == 7.0f);
    CHECK_EQ_INT(cross_entropy(buf, z, y, 2, 0, 1.0f, &loss2, &cnt, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "vocabulary size 0");
    /* all ignored: zero loss, zero count */
    const int32_t none[2] = {-1, -100};
    CHECK_EQ_INT(cross_entropy(buf, z, none, 2, V, 1.0f, &loss2, &cnt, &err), 0);
    CHECK(loss2 == 0 && cnt == 0);
}

/* --------------------------------------------------------- balancing losses */

typedef struct bal_ctx {
    const double *l; /* [T][E] */
    const int *idx;  /* [T][K] */
    int T, E, K, which; /* 0 aux, 1 z, 2 kl */
    moe_score score;
    double coef;
} bal_ctx;

/* router probabilities: softmax, or sigmoid per expert (not normalized) */
static void probs_d(double *p, const double *l, int E, moe_score score) {
    double mx = l[0], Z = 0;
    for (int e = 1; e < E; e++) mx = fmax(mx, l[e]);
    for (int e = 0; e < E; e++) {
        p[e] = score == MOE_SCORE_SIGMOID ? 1 / (1 + exp(-l[e])) : exp(l[e] - mx);
        Z += p[e];
    }
    if (score == MOE_SCORE_SOFTMAX)
        for (int e = 0; e < E; e++) p[e] /= Z;
}

static double bal_loss(void *vc) {
    const bal_ctx *c = vc;
    int T = c->T, E = c->E, K = c->K;
    double P[16] = {0}, f[16] = {0}, p[16], L = 0;
    for (int t = 0; t < T; t++) {
        const double *l = c->l + t * E;
        probs_d(p, l, E, c->score);
        for (int e = 0; e < E; e++) P[e] += p[e] / T;
        if (c->which == 1) {
            double mx = l[0], Z = 0;
            for (int e = 1; e < E; e++) mx = fmax(mx, l[e]);
            for (int e = 0; e < E; e++) Z += exp(l[e] - mx);
            L += pow(mx + log(Z), 2) / T;
        }
    }
    if (c->which == 1) return c->coef * L;
    if (c->which == 0) {
        for (int i = 0; i < T * K; i++) f[c->idx[i]] += 1.0 / (T * K);
        for (int e = 0; e < E; e++) L += f[e] * P[e];
        return c->coef * E * L;
    }
    for (int e = 0; e < E; e++) L += log((1.0 / E) / P[e]) / E;
    return c->coef * L;
}

static void bal_case(int which, int T, int E, int K, moe_score score, rng *r) {
    float l[16 * 16], dl[16 * 16] = {0};
    double ld[16 * 16], want[16 * 16], work[32];
    int idx[16 * 16];
    gc_fill(l, T * E, -2, 2, r);
    for (int t = 0; t < T; t++) /* a choice: experts (t + j) % E */
        for (int j = 0; j < K; j++) idx[t * K + j] = (t * 3 + j) % E;
    gc_widen(ld, l, T * E);
    float coef = which == 0 ? 0.01f : which == 1 ? 1e-3f : 0.1f;
    bal_ctx c = {ld, idx, T, E, K, which, score, coef};
    double v = which == 0 ? aux_loss(dl, l, idx, T, E, K, score, coef, work)
             : which == 1 ? z_loss(dl, l, T, E, coef)
                          : kl_uniform_loss(dl, l, T, E, score, coef, work);
    double ref = bal_loss(&c);
    CHECK_NEAR(v, ref, 1e-9 * fabs(ref) + 1e-15);
    gc_fd(bal_loss, &c, ld, T * E, 1e-6, want);
    char what[80];
    snprintf(what, sizeof what, "%s dlogits T=%d E=%d K=%d %s", which == 0 ? "aux" : which == 1 ? "z" : "kl",
             T, E, K, score == MOE_SCORE_SIGMOID ? "sigmoid" : "softmax");
    GC_CHECK_ATOL(what, dl, want, T * E, 1e-5, 1e-11);
    /* value without gradient */
    double v2 = which == 0 ? aux_loss(NULL, l, idx, T, E, K, score, coef, work)
              : which == 1 ? z_loss(NULL, l, T, E, coef)
                           : kl_uniform_loss(NULL, l, T, E, score, coef, work);
    CHECK(v2 == v);
}

TEST(grad_balancing_losses) {
    rng r;
    rng_init(&r, 51);
    for (int sc = 0; sc < 2; sc++) {
        moe_score s = sc ? MOE_SCORE_SIGMOID : MOE_SCORE_SOFTMAX;
        bal_case(0, 6, 5, 1, s, &r); /* k = 1 */
        bal_case(0, 7, 5, 2, s, &r);
        bal_case(0, 4, 5, 5, s, &r); /* k = E: f uniform */
        bal_case(2, 6, 5, 2, s, &r);
        bal_case(2, 1, 3, 1, s, &r);
    }
    bal_case(1, 6, 5, 2, MOE_SCORE_SOFTMAX, &r);
    bal_case(1, 3, 7, 1, MOE_SCORE_SOFTMAX, &r);
}

TEST(grad_balancing_uniform) {
    /* equal logits and an even choice: aux = alpha, kl = 0 with zero
     * gradient, z = beta * log(E)^2 */
    enum { T = 4, E = 4, K = 1 };
    float l[T * E] = {0}, dl[T * E] = {0};
    int idx[T] = {0, 1, 2, 3};
    double work[2 * E];
    CHECK_NEAR(aux_loss(NULL, l, idx, T, E, K, MOE_SCORE_SOFTMAX, 0.01f, work), 0.01, 1e-9);
    CHECK_NEAR(kl_uniform_loss(dl, l, T, E, MOE_SCORE_SOFTMAX, 1.0f, work), 0.0, 1e-15);
    for (int i = 0; i < T * E; i++) CHECK_NEAR(dl[i], 0, 1e-7);
    CHECK_NEAR(z_loss(NULL, l, T, E, 0.001f), 0.001f * log(4.0) * log(4.0), 1e-10);
}
