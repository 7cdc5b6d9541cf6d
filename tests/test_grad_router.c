/*
 * test_grad_router.c - token-choice routing weights and their backward
 * (softmax / sigmoid scores, renormalization on / off, routed scale, k = 1,
 * k = E, a fixed choice that is not the top-k, as a selection bias makes),
 * noisy top-k through the chosen path, expert choice (capacity, choice,
 * backward) and hash routing, against double-precision forwards and central
 * differences.
 */
#include "grad_check.h"
#include "model/model.h"
#include "train/grad_ops.h"

/* ------------------------------------------------------------ token choice */

/* The forward in double: weights of the chosen idx. */
static void weights_d(double *w, const double *l, const int *idx, int E, int K, moe_score score,
                      int norm, double rs) {
    double mx = l[0], Z = 0, S = 0;
    for (int e = 1; e < E; e++) mx = fmax(mx, l[e]);
    for (int e = 0; e < E; e++) Z += exp(l[e] - mx);
    for (int j = 0; j < K; j++) {
        double x = l[idx[j]];
        w[j] = score == MOE_SCORE_SIGMOID ? 1 / (1 + exp(-x)) : exp(x - mx) / Z;
        S += w[j];
    }
    for (int j = 0; j < K; j++) w[j] = w[j] / (norm ? S : 1.0) * rs;
}

typedef struct rw_ctx {
    const double *l, *R;
    const int *idx;
    int E, K, norm;
    moe_score score;
    double rs;
} rw_ctx;

static double rw_loss(void *vc) {
    const rw_ctx *c = vc;
    double w[64], L = 0;
    weights_d(w, c->l, c->idx, c->E, c->K, c->score, c->norm, c->rs);
    for (int j = 0; j < c->K; j++) L += c->R[j] * w[j];
    return L;
}

/* idx = top-K of logits (descending) unless `shuffled`: then K distinct
 * experts in a fixed scrambled order (a selection bias picked them). */
static void pick(int *idx, const float *l, int E, int K, int shuffled) {
    int used[64] = {0};
    for (int j = 0; j < K; j++) {
        int b = -1;
        if (shuffled) {
            b = (j * 5 + 3) % E;
            while (used[b]) b = (b + 1) % E;
        } else {
            for (int e = 0; e < E; e++)
                if (!used[e] && (b < 0 || l[e] > l[b])) b = e;
        }
        used[b] = 1;
        idx[j] = b;
    }
}

static void router_case(int E, int K, moe_score score, int norm, float rs, int shuffled, rng *r) {
    float l[64], dw[64], wf[64], dl[64] = {0};
    double ld[64], Rd[64], want[64], wd[64];
    int idx[64];
    gc_fill(l, E, -3, 3, r);
    gc_fill(dw, K, -1, 1, r);
    pick(idx, l, E, K, shuffled);
    gc_widen(ld, l, E), gc_widen(Rd, dw, K);
    double rsd = rs == 0.0f ? 1.0 : rs;
    rw_ctx c = {ld, Rd, idx, E, K, norm, score, rsd};
    gc_fd(rw_loss, &c, ld, E, 1e-6, want);
    router_backward(dl, dw, l, idx, E, K, score, norm, rs);
    char what[96];
    snprintf(what, sizeof what, "router dlogits E=%d K=%d %s norm=%d rs=%g shuf=%d", E, K,
             score == MOE_SCORE_SIGMOID ? "sigmoid" : "softmax", norm, (double)rs, shuffled);
    GC_CHECK_ATOL(what, dl, want, E, 1e-6, 1e-9);
    /* softmax + renorm: the unchosen experts get exactly nothing */
    if (score == MOE_SCORE_SOFTMAX && norm) {
        for (int e = 0; e < E; e++) {
            int chosen = 0;
            for (int j = 0; j < K; j++) chosen |= idx[j] == e;
            if (!chosen) CHECK(dl[e] == 0.0f);
        }
    }
    router_weights(wf, l, idx, E, K, score, norm, rs);
    weights_d(wd, ld, idx, E, K, score, norm, rsd);
    GC_CHECK("router_weights", wf, wd, K, 1e-6);
}

TEST(grad_router_token_choice) {
    rng r;
    rng_init(&r, 30);
    for (int sc = 0; sc < 2; sc++)
        for (int norm = 0; norm < 2; norm++) {
            moe_score s = sc ? MOE_SCORE_SIGMOID : MOE_SCORE_SOFTMAX;
            router_case(7, 1, s, norm, 1.0f, 0, &r);  /* k = 1 */
            router_case(7, 2, s, norm, 1.0f, 0, &r);
            router_case(7, 7, s, norm, 1.0f, 0, &r);  /* k = E */
            router_case(9, 3, s, norm, 2.5f, 0, &r);  /* routed scale */
            router_case(8, 4, s, norm, 0.0f, 1, &r);  /* scale 0 = 1; biased choice */
            router_case(1, 1, s, norm, 1.0f, 0, &r);  /* one expert */
        }
}

/* ------------------------------------------------------------ noisy top-k */

typedef struct noisy_ctx {
    const double *clean, *raw, *eps, *R; /* [E] each (one token) */
    const int *idx;
    int E, K;
} noisy_ctx;

/* L = sum_j R_j * softmax over the chosen noisy logits */
static double noisy_loss(void *vc) {
    const noisy_ctx *c = vc;
    double h[64], w[64], L = 0;
    for (int e = 0; e < c->E; e++)
        h[e] = c->clean[e] + c->eps[e] * log1p(exp(c->raw[e]));
    weights_d(w, h, c->idx, c->E, c->K, MOE_SCORE_SOFTMAX, 1, 1.0);
    for (int j = 0; j < c->K; j++) L += c->R[j] * w[j];
    return L;
}

TEST(grad_router_noisy_topk) {
    enum { T = 3, E = 6, K = 2 };
    rng r, r2;
    rng_init(&r, 31);
    float clean[T * E], raw[T * E], eps[T * E], eps2[T * E], noisy[T * E];
    gc_fill(clean, T * E, -2, 2, &r);
    gc_fill(raw, T * E, -3, 3, &r);
    rng_init(&r2, 7);
    uint64_t st[4];
    rng_save(&r2, st);
    noisy_logits_forward(noisy, eps, clean, raw, T, E, &r2);
    rng_restore(&r2, st); /* same state, same noise */
    float noisy2[T * E];
    noisy_logits_forward(noisy2, eps2, clean, raw, T, E, &r2);
    CHECK(memcmp(eps, eps2, sizeof eps) == 0);
    CHECK(memcmp(noisy, noisy2, sizeof noisy) == 0);
    for (int i = 0; i < T * E; i++)
        CHECK_NEAR(noisy[i], clean[i] + eps[i] * log1p(exp((double)raw[i])), 1e-5);
    for (int t = 0; t < T; t++) {
        int idx[K];
        float dw[K], dnoisy[E] = {0}, dclean[E] = {0}, draw[E] = {0};
        pick(idx, noisy + t * E, E, K, 0);
        gc_fill(dw, K, -1, 1, &r);
        router_backward(dnoisy, dw, noisy + t * E, idx, E, K, MOE_SCORE_SOFTMAX, 1, 1.0f);
        noisy_logits_backward(dclean, draw, dnoisy, eps + t * E, raw + t * E, 1, E);
        double cd[E], rd[E], ed[E], Rd[K], gc[E], gr[E];
        gc_widen(cd, clean + t * E, E), gc_widen(rd, raw + t * E, E);
        gc_widen(ed, eps + t * E, E), gc_widen(Rd, dw, K);
        noisy_ctx c = {cd, rd, ed, Rd, idx, E, K};
        gc_fd(noisy_loss, &c, cd, E, 1e-6, gc);
        gc_fd(noisy_loss, &c, rd, E, 1e-6, gr);
        GC_CHECK_ATOL("noisy dclean", dclean, gc, E, 1e-5, 1e-9);
        GC_CHECK_ATOL("noisy draw", draw, gr, E, 1e-5, 1e-9);
        for (int e = 0; e < E; e++) /* only the chosen path */
            if (e != idx[0] && e != idx[1]) CHECK(dclean[e] == 0.0f && draw[e] == 0.0f);
    }
}

/* ----------------------------------------------------------- expert choice */

TEST(grad_router_expert_choice_capacity) {
    /* C = int(cf * T * K / E), at most T (docs/TRAINING.md) */
    CHECK_EQ_INT(expert_choice_capacity(8, 2, 4, 1.0f), 4);
    CHECK_EQ_INT(expert_choice_capacity(10, 2, 4, 1.0f), 5);
    CHECK_EQ_INT(expert_choice_capacity(10, 1, 4, 1.0f), 2);  /* int(2.5) */
    CHECK_EQ_INT(expert_choice_capacity(10, 1, 4, 2.0f), 5);
    CHECK_EQ_INT(expert_choice_capacity(10, 1, 4, 1.25f), 3); /* int(3.125) */
    CHECK_EQ_INT(expert_choice_capacity(3, 2, 64, 1.0f), 0);  /* int(0.09) */
    CHECK_EQ_INT(expert_choice_capacity(4, 4, 2, 3.0f), 4);   /* at most T */
    CHECK_EQ_INT(expert_choice_capacity(8, 2, 4, 0.0f), 0);
    CHECK_EQ_INT(expert_choice_capacity(0, 2, 4, 1.0f), 0);
}

typedef struct ec_ctx {
    const double *l, *R; /* [T][E], [E][C] */
    const int *tok;
    int T, E, C;
} ec_ctx;

static double ec_loss(void *vc) {
    const ec_ctx *c = vc;
    double L = 0;
    for (int e = 0; e < c->E; e++)
        for (int i = 0; i < c->C; i++) {
            int t = c->tok[e * c->C + i];
            const double *l = c->l + t * c->E;
            double mx = l[0], Z = 0;
            for (int f = 1; f < c->E; f++) mx = fmax(mx, l[f]);
            for (int f = 0; f < c->E; f++) Z += exp(l[f] - mx);
            L += c->R[e * c->C + i] * exp(l[e] - mx) / Z;
        }
    return L;
}

TEST(grad_router_expert_choice) {
    enum { T = 7, E = 3, K = 1 };
    int C = expert_choice_capacity(T, K, E, 1.3f); /* int(3.03) = 3 */
    CHECK_EQ_INT(C, 3);
    rng r;
    rng_init(&r, 32);
    float l[T * E], s[T * E], w[E * 3], dw[E * 3], dl[T * E] = {0}, work[T * E];
    int tok[E * 3];
    gc_fill(l, T * E, -2, 2, &r);
    l[5 * E + 1] = l[2 * E + 1] = 9.0f; /* a tie for expert 1: lower token first */
    CHECK_EQ_INT(expert_choice_route(tok, w, s, l, T, E, C), 0);
    CHECK_EQ_INT(expert_choice_route(tok, w, s, l, T, E, T + 1), -1);
    for (int e = 0; e < E; e++) {
        /* token order, and nothing left out beats a chosen one */
        float worst = INFINITY;
        for (int i = 0; i + 1 < C; i++) CHECK(tok[e * C + i] < tok[e * C + i + 1]);
        for (int i = 0; i < C; i++) worst = fminf(worst, w[e * C + i]);
        for (int t = 0; t < T; t++) {
            int in = 0;
            for (int i = 0; i < C; i++) in |= tok[e * C + i] == t;
            if (!in) CHECK(s[t * E + e] <= worst);
        }
        for (int i = 0; i < C; i++) CHECK(w[e * C + i] == s[tok[e * C + i] * E + e]);
    }
    /* expert 1: tokens 2 and 5 tie at the top; both in, in token order */
    int has2 = 0, has5 = 0;
    for (int i = 0; i < C; i++) has2 |= tok[C + i] == 2, has5 |= tok[C + i] == 5;
    CHECK(has2 && has5);
    /* a tie at the capacity edge goes to the earlier token */
    {
        /* expert 0's scores: 0.5, then 0.73 three times */
        float lt[4 * 2] = {0, 0, 1, 0, 1, 0, 1, 0}, st[8], wt[4];
        int tt[4];
        CHECK_EQ_INT(expert_choice_route(tt, wt, st, lt, 4, 2, 2), 0);
        CHECK_EQ_INT(tt[0], 1);
        CHECK_EQ_INT(tt[1], 2);
        CHECK_EQ_INT(expert_choice_route(tt, wt, st, lt, 4, 2, 0), 0); /* C = 0: nothing */
    }
    /* backward vs differences with the choice fixed */
    gc_fill(dw, E * C, -1, 1, &r);
    expert_choice_backward(dl, dw, tok, s, T, E, C, work);
    double ld[T * E], Rd[E * 3], want[T * E];
    gc_widen(ld, l, T * E), gc_widen(Rd, dw, E * C);
    ec_ctx c = {ld, Rd, tok, T, E, C};
    gc_fd(ec_loss, &c, ld, T * E, 1e-6, want);
    GC_CHECK_ATOL("expert choice dlogits", dl, want, T * E, 1e-5, 1e-9);
    /* in place: scores may alias logits */
    float l2[T * E], w2[E * 3];
    int tok2[E * 3];
    memcpy(l2, l, sizeof l);
    expert_choice_route(tok2, w2, l2, l2, T, E, C);
    CHECK(memcmp(tok, tok2, sizeof tok) == 0);
    CHECK(memcmp(s, l2, sizeof s) == 0);
}

TEST(grad_router_expert_choice_many) {
    /* against a brute-force choice: rank every token (score, then index) */
    enum { T = 50, E = 4, K = 2 };
    int C = expert_choice_capacity(T, K, E, 1.5f); /* int(37.5) */
    CHECK_EQ_INT(C, 37);
    rng r;
    rng_init(&r, 33);
    float l[T * E], s[T * E], w[E * T];
    int tok[E * T];
    gc_fill(l, T * E, -1, 1, &r);
    for (int t = 0; t < T; t += 5) l[t * E + 2] = 0.5f, l[t * E + 0] = 0.5f; /* ties */
    CHECK_EQ_INT(expert_choice_route(tok, w, s, l, T, E, C), 0);
    for (int e = 0; e < E; e++) {
        int want[T], n = 0;
        for (int t = 0; t < T; t++) {
            int rank = 0; /* tokens ahead of t */
            for (int u = 0; u < T; u++) {
                float a = s[u * E + e], b = s[t * E + e];
                rank += a > b || (a == b && u < t);
            }
            if (rank < C) want[n++] = t;
        }
        CHECK_EQ_INT(n, C);
        for (int i = 0; i < C && i < n; i++) CHECK_EQ_INT(tok[e * C + i], want[i]);
    }
}

/* -------------------------------------------------------------------- hash */

TEST(grad_router_hash) {
    enum { E = 8, N = 4000 };
    int32_t ids[N];
    int ex[N], ex3[N * 3], cnt[E] = {0};
    for (int i = 0; i < N; i++) ids[i] = i * 7 + 3;
    for (int i = 0; i < N; i++) {
        ex[i] = router_hash_expert(ids[i], E, 0);
        for (int j = 0; j < 3; j++) ex3[i * 3 + j] = router_hash_expert(ids[i], E, j);
    }
    for (int i = 0; i < N; i++) {
        CHECK(ex[i] >= 0 && ex[i] < E);
        CHECK_EQ_INT(ex[i], router_hash_expert(ids[i], E, 0)); /* a pure function */
        CHECK_EQ_INT(ex3[i * 3], ex[i]);
        CHECK_EQ_INT(ex3[i * 3 + 2], (ex[i] + 2) % E); /* K > 1: the next experts */
        cnt[ex[i]]++;
    }
    for (int e = 0; e < E; e++) CHECK(cnt[e] > N / E * 8 / 10 && cnt[e] < N / E * 12 / 10);
    /* the mapping is frozen (the forward, src/model/router.c, uses it):
     * ((id * 2654435761) mod 2^32) mod E */
    CHECK_EQ_INT(router_hash_expert(0, 64, 0), 0);
    CHECK_EQ_INT(router_hash_expert(1, 64, 0), 2654435761u % 64);
    CHECK_EQ_INT(router_hash_expert(123456, 1000, 0), (int)((uint32_t)(123456ull * 2654435761ull) % 1000));
    CHECK_EQ_INT(router_hash_expert(3, 7, 0), 4); /* 3668339987 mod 7 */
    CHECK_EQ_INT(router_hash_expert(12345, 1, 0), 0);
}

TEST(grad_router_selection_bias) {
    /* N*K = 12 pairs over 4 experts: 3 each is balanced */
    float bias[4] = {0.5f, 0.0f, -0.25f, 1.0f};
    const int64_t load[4] = {5, 3, 1, 3};
    selection_bias_update(bias, load, 4, 12, 0.001f);
    CHECK_NEAR(bias[0], 0.499f, 1e-7);  /* overloaded: down */
    CHECK_NEAR(bias[1], 0.0f, 0);       /* exact: sign(0) = 0 */
    CHECK_NEAR(bias[2], -0.249f, 1e-7); /* underloaded: up */
    CHECK_NEAR(bias[3], 1.0f, 0);
}
