/*
 * test_train_fast.c - the training step's fast paths against their slow,
 * obvious versions: threaded cross-entropy (bit-identical for 1 and 2
 * threads, loss and gradient against a double computation), threaded and
 * vectorized RMSNorm backward against rmsnorm_backward_rows, AdamW's
 * AVX-512 update bit-identical to the scalar one and adamw_step_clear
 * identical to adamw_step plus clearing (gaps between tensors included),
 * the gradient norm identical on every ISA, and linear_backward's
 * overwrite mode (linear_backward_grouped_set) against zeroing then
 * accumulating; the whole backward (latent attention, partial rotary)
 * bit-identical on 1 and 3 threads.
 */
#include <stdlib.h>

#include "grad_check.h"
#include "kern_pool.h"
#include "kernels/kernels.h"
#include "train/grad_ops.h"
#include "train/optim.h"

/* ------------------------------------------------------------ cross-entropy */

TEST(fast_cross_entropy_threads) {
    enum { N = 37, V = 301 };
    rng r;
    rng_init(&r, 3);
    float *z = gc_falloc(N * V), *d1 = gc_falloc(N * V), *d2 = gc_falloc(N * V);
    int32_t y[N];
    gc_fill(z, N * V, -6, 6, &r);
    for (int v = 0; v < V; v++) z[5 * V + v] *= 50.0f; /* a peaked row */
    for (int t = 0; t < N; t++) y[t] = t % 9 == 4 ? -1 : (int32_t)((t * 37) % V);
    pool *p2 = pool_create(2);
    double l1, l2;
    int64_t c1, c2;
    moe_err err = {{0}};
    CHECK_EQ_INT(cross_entropy_pool(NULL, d1, z, y, N, V, 0.5f, &l1, &c1, &err), 0);
    CHECK_EQ_INT(cross_entropy_pool(p2, d2, z, y, N, V, 0.5f, &l2, &c2, &err), 0);
    CHECK(l1 == l2 && c1 == c2);
    CHECK(memcmp(d1, d2, sizeof(float) * N * V) == 0);
    /* against double: loss to 1e-12, gradient to 1e-6 of its scale */
    double L = 0;
    int bad = 0;
    for (int t = 0; t < N; t++) {
        if (y[t] < 0) {
            for (int v = 0; v < V; v++) bad += d1[t * V + v] != 0.0f;
            continue;
        }
        const float *zt = z + t * V;
        double mx = zt[0], S = 0;
        for (int v = 1; v < V; v++) mx = fmax(mx, zt[v]);
        for (int v = 0; v < V; v++) S += exp(zt[v] - mx);
        L += mx + log(S) - zt[y[t]];
        for (int v = 0; v < V; v++) {
            double want = (exp(zt[v] - mx) / S - (v == y[t])) * 0.5;
            bad += fabs(d1[t * V + v] - want) > 1e-6 * 0.5;
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_NEAR(l1, L, 1e-12 * L);
    pool_free(p2);
    free(z);
    free(d1);
    free(d2);
}

/* ------------------------------------------------------------ RMSNorm */

TEST(fast_rmsnorm_backward_rows) {
    enum { R = 19, D = 77 };
    rng r;
    rng_init(&r, 4);
    float *x = gc_falloc(R * D), *dy = gc_falloc(R * D), *w = gc_falloc(D);
    float *dx0 = gc_falloc(R * D), *dx1 = gc_falloc(R * D), *dx2 = gc_falloc(R * D);
    float *dw0 = gc_falloc(D), *dw1 = gc_falloc(D), *dw2 = gc_falloc(D);
    double rs[R];
    gc_fill(x, R * D, -2, 2, &r);
    gc_fill(dy, R * D, -1, 1, &r);
    gc_fill(w, D, 0.5f, 1.5f, &r);
    for (int i = 0; i < R * D; i++) dx0[i] = dx1[i] = dx2[i] = 0.25f; /* accumulate into these */
    for (int i = 0; i < D; i++) dw0[i] = dw1[i] = dw2[i] = -0.5f;
    kern_pools kp;
    kern_pools_init(&kp);
    for (int s = 0; s < ISA_COUNT; s++) {
        pool *p1 = kp.one[s], *p2 = kp.two[s];
        if (!p1) continue;
        for (int i = 0; i < R * D; i++) dx1[i] = dx2[i] = 0.25f;
        for (int i = 0; i < D; i++) dw1[i] = dw2[i] = -0.5f;
        rmsnorm_backward_rows(dx0, dw0, dy, x, w, R, D, 1e-5f);
        rmsnorm_backward_rows_pool(p1, dx1, dw1, dy, x, w, R, D, 1e-5f, rs);
        rmsnorm_backward_rows_pool(p2, dx2, dw2, dy, x, w, R, D, 1e-5f, rs);
        CHECK(memcmp(dx1, dx2, sizeof(float) * R * D) == 0); /* threads: same bits */
        CHECK(memcmp(dw1, dw2, sizeof(float) * D) == 0);
        int bad = 0;
        for (int i = 0; i < R * D; i++) bad += fabs(dx1[i] - dx0[i]) > 2e-6 * (fabs(dx0[i]) + 0.1);
        for (int i = 0; i < D; i++) bad += fabs(dw1[i] - dw0[i]) > 2e-6 * (fabs(dw0[i]) + 0.1);
        CHECK_MSG(bad == 0, "%s: %d off", isa_name((isa)s), bad);
        for (int i = 0; i < R * D; i++) dx0[i] = 0.25f;
        for (int i = 0; i < D; i++) dw0[i] = -0.5f;
    }
    kern_pools_free(&kp);
    free(x);
    free(dy);
    free(w);
    free(dx0);
    free(dx1);
    free(dx2);
    free(dw0);
    free(dw1);
    free(dw2);
}

/* ------------------------------------------------------------ AdamW */

TEST(fast_adamw_isas_and_clear) {
    enum { N = 1000 };
    /* tensors with gaps between them (elements 0-9, 500-509 in no tensor) */
    const optim_tensor ts[3] = {{"a", 10, 300, 1, 0}, {"b", 310, 190, 0, 0}, {"c", 510, 490, 1, 0}};
    rng r;
    rng_init(&r, 5);
    float p0[N], g[N], m0[N], v0[N];
    gc_fill(p0, N, -1, 1, &r);
    gc_fill(g, N, -3, 3, &r);
    gc_fill(m0, N, -0.1f, 0.1f, &r);
    gc_fill(v0, N, 0, 0.01f, &r);
    adamw_opts o = {0.9, 0.95, 1e-8, 0.1, 1.0};
    kern_pools kp;
    kern_pools_init(&kp);
    float ref_p[N], ref_m[N], ref_v[N];
    double ref_norm = 0;
    int first = 1;
    for (int s = 0; s < ISA_COUNT; s++) {
        pool *p1 = kp.one[s];
        if (!p1) continue;
        float p[N], m[N], v[N], gc[N], pc[N], mc[N], vc[N];
        memcpy(p, p0, sizeof p);
        memcpy(m, m0, sizeof m);
        memcpy(v, v0, sizeof v);
        memcpy(pc, p0, sizeof p);
        memcpy(mc, m0, sizeof m);
        memcpy(vc, v0, sizeof v);
        memcpy(gc, g, sizeof g);
        double n1 = 0, n2 = 0;
        moe_err err = {{0}};
        CHECK_EQ_INT(adamw_step(p1, p, g, m, v, N, ts, 3, 3, 1e-3, &o, &n1, &err), 0);
        CHECK_EQ_INT(adamw_step_clear(p1, pc, gc, mc, vc, N, ts, 3, 3, 1e-3, &o, &n2, &err), 0);
        CHECK(n1 == n2);
        CHECK(memcmp(p, pc, sizeof p) == 0 && memcmp(m, mc, sizeof m) == 0 &&
              memcmp(v, vc, sizeof v) == 0);
        int nonzero = 0;
        for (int i = 0; i < N; i++) nonzero += gc[i] != 0.0f;
        CHECK_EQ_INT(nonzero, 0);
        if (first) {
            memcpy(ref_p, p, sizeof p);
            memcpy(ref_m, m, sizeof m);
            memcpy(ref_v, v, sizeof v);
            ref_norm = n1;
            first = 0;
            continue;
        }
        /* every ISA: the same bits as the scalar one */
        CHECK_MSG(n1 == ref_norm, "%s: norm %.17g vs %.17g", isa_name((isa)s), n1, ref_norm);
        CHECK_MSG(memcmp(p, ref_p, sizeof p) == 0 && memcmp(m, ref_m, sizeof m) == 0 &&
                      memcmp(v, ref_v, sizeof v) == 0,
                  "%s: update differs from the scalar one", isa_name((isa)s));
    }
    /* a NaN gradient: error, grads left as they were */
    float pn[N], gn[N], mn[N], vn[N];
    memcpy(pn, p0, sizeof pn);
    memcpy(gn, g, sizeof gn);
    memcpy(mn, m0, sizeof mn);
    memcpy(vn, v0, sizeof vn);
    gn[700] = NAN;
    moe_err err = {{0}};
    CHECK_EQ_INT(adamw_step_clear(NULL, pn, gn, mn, vn, N, ts, 3, 1, 1e-3, &o, NULL, &err), -1);
    CHECK(gn[0] == g[0] && gn[999] == g[999] && isnan(gn[700]));
    kern_pools_free(&kp);
}

/* ------------------------------------------------------------ linear, overwrite */

TEST(fast_linear_backward_set) {
    enum { T = 3 };
    const int64_t shapes[T][3] = {{37, 45, 29}, {300, 130, 70}, {5, 600, 260}}; /* n, out, in */
    rng r;
    rng_init(&r, 6);
    kern_pools kp;
    kern_pools_init(&kp);
    for (int s = 0; s < ISA_COUNT; s++) {
        pool *p2 = kp.two[s];
        if (!p2) continue;
        lin_bwd_task a[T], b[T];
        float *buf[T][6];
        for (int i = 0; i < T; i++) {
            int64_t n = shapes[i][0], out = shapes[i][1], in = shapes[i][2];
            for (int j = 0; j < 6; j++) buf[i][j] = gc_falloc(n * in + n * out + out * in);
            float *x = buf[i][0], *dy = buf[i][1], *W = buf[i][2];
            gc_fill(x, n * in, -1, 1, &r);
            gc_fill(dy, n * out, -1, 1, &r);
            gc_fill(W, out * in, -1, 1, &r);
            float *dxa = buf[i][3], *dxb = buf[i][4];
            for (int64_t k = 0; k < n * in; k++) dxb[k] = NAN; /* overwritten: never read */
            a[i] = (lin_bwd_task){dxa, NULL, dy, x, W, n, out, in};
            b[i] = (lin_bwd_task){dxb, NULL, dy, x, W, n, out, in};
        }
        linear_backward_grouped(p2, a, T); /* into zeros */
        linear_backward_grouped_set(p2, b, T);
        for (int i = 0; i < T; i++) {
            int64_t n = shapes[i][0], in = shapes[i][2];
            CHECK_MSG(memcmp(buf[i][3], buf[i][4], sizeof(float) * (size_t)(n * in)) == 0,
                      "%s shape %d: overwrite differs from zero + accumulate", isa_name((isa)s), i);
            for (int j = 0; j < 6; j++) free(buf[i][j]);
        }
    }
    kern_pools_free(&kp);
}

/* ------------------------------------------- the trainer's step, two ways */

#include "model/model.h"
#include "train/backward.h"
#include "train/params.h"

/* Three steps of a train fixture's model on its batch, the trainer's way
 * (gradients cleared by adamw_step_clear, the first micro-batch's dW
 * products stored over them: bwd_ws_set_grads_zero) and the plain way
 * (memset, accumulate, adamw_step): the same gradients and parameters. */
static void two_ways(const char *variant) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/train/%s", test_fixtures(), variant);
    moe_err err = {{0}};
    moe_model *m[2] = {NULL, NULL};
    train_params P[2];
    moe_session *s[2] = {NULL, NULL};
    bwd_ws *ws[2] = {NULL, NULL};
    const int B = 2, T = 8, N = B * T;
    for (int k = 0; k < 2; k++) {
        if (moe_model_load(&m[k], dir, &err)) {
            test_fail_at(__FILE__, __LINE__, "%s: %s", variant, err.msg);
            return;
        }
        moe_session_opts so = {.n_ctx = T, .n_threads = 2, .max_batch = N, .n_seq = B};
        CHECK(train_params_init(&P[k], m[k], &err) == 0);
        CHECK(moe_session_new(&s[k], m[k], &so, &err) == 0);
        CHECK(model_acts_enable(s[k], N, &err) == 0);
        moe_session_set_mode(s[k], MOE_MODE_TRAIN);
        CHECK(bwd_ws_new(&ws[k], s[k], N, &err) == 0);
    }
    int V = m[0]->cfg.vocab;
    int64_t n = P[0].n;
    float *g[2], *am[2], *av[2], *logits = malloc(sizeof(float) * (size_t)N * V);
    for (int k = 0; k < 2; k++) {
        g[k] = calloc((size_t)n, sizeof(float));
        am[k] = calloc((size_t)n, sizeof(float));
        av[k] = calloc((size_t)n, sizeof(float));
    }
    int32_t in[16], tg[16];
    loss_coefs coefs = {0.01f, 0.001f, 0.0f, 0.0f};
    adamw_opts ao = {0.9, 0.95, 1e-8, 0.1, 1.0};
    for (int step = 0; step < 3 && !test_failed_now; step++) {
        for (int i = 0; i < N; i++) {
            in[i] = (int32_t)((i * 7 + step * 13 + 1) % V);
            tg[i] = (int32_t)((i * 11 + step * 5 + 3) % V);
        }
        for (int k = 0; k < 2; k++) {
            train_grads G = {P[k].base, g[k], n};
            loss_parts lp;
            if (k == 0) memset(g[k], 0, sizeof(float) * (size_t)n);
            CHECK(model_forward_seqs(s[k], in, B, T, logits, &err) == 0);
            bwd_ws_set_grads_zero(ws[k], k == 1);
            CHECK(model_backward(s[k], ws[k], &G, tg, B, T, logits, 1.0f / N, &coefs, 1.0f, &lp, &err) == 0);
        }
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += g[0][i] != g[1][i];
        CHECK_MSG(bad == 0, "%s step %d: %lld gradients differ", variant, step, (long long)bad);
        CHECK(adamw_step(s[0]->pool, P[0].base, g[0], am[0], av[0], n, P[0].tensors, P[0].n_tensors,
                         step + 1, 1e-3, &ao, NULL, &err) == 0);
        CHECK(adamw_step_clear(s[1]->pool, P[1].base, g[1], am[1], av[1], n, P[1].tensors,
                               P[1].n_tensors, step + 1, 1e-3, &ao, NULL, &err) == 0);
        CHECK(memcmp(P[0].base, P[1].base, sizeof(float) * (size_t)n) == 0);
    }
    for (int k = 0; k < 2; k++) {
        free(g[k]);
        free(am[k]);
        free(av[k]);
        bwd_ws_free(ws[k]);
        moe_session_free(s[k]);
        train_params_free(&P[k]);
        moe_model_free(m[k]);
    }
    free(logits);
}

TEST(fast_trainer_step_two_ways) {
    static const char *variants[] = {"mixtral_top2", "qwen2_shared",    "olmoe_qknorm",
                                     "expert_choice", "capacity",       "deepseek_v3_mla",
                                     "deepseek_v3_noq", "glm4_moe"};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) two_ways(variants[i]);
}

/* The whole backward of a fixture's model on 1 and 3 threads: the same
 * gradient bits (latent attention's and partial rotary's per-token work,
 * norms and attention core included). */
static void grads_on(const char *variant, int threads, float **out, int64_t *n_out) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/train/%s", test_fixtures(), variant);
    moe_err err = {{0}};
    moe_model *m = NULL;
    train_params P = {0};
    moe_session *s = NULL;
    bwd_ws *ws = NULL;
    const int B = 2, T = 12, N = B * T;
    *out = NULL;
    if (moe_model_load(&m, dir, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", variant, err.msg);
        return;
    }
    moe_session_opts so = {.n_ctx = T, .n_threads = threads, .max_batch = N, .n_seq = B};
    CHECK(train_params_init(&P, m, &err) == 0);
    CHECK(moe_session_new(&s, m, &so, &err) == 0);
    CHECK(model_acts_enable(s, N, &err) == 0);
    moe_session_set_mode(s, MOE_MODE_TRAIN);
    CHECK(bwd_ws_new(&ws, s, N, &err) == 0);
    int V = m->cfg.vocab;
    float *logits = malloc(sizeof(float) * (size_t)N * V), *g = calloc((size_t)P.n, sizeof(float));
    int32_t in[24], tg[24];
    for (int i = 0; i < N; i++) in[i] = (int32_t)((i * 7 + 1) % V), tg[i] = (int32_t)((i * 11 + 3) % V);
    loss_coefs coefs = {0.01f, 0.001f, 0.0f, 0.0f};
    train_grads G = {P.base, g, P.n};
    loss_parts lp;
    if (!test_failed_now) {
        CHECK(model_forward_seqs(s, in, B, T, logits, &err) == 0);
        CHECK(model_backward(s, ws, &G, tg, B, T, logits, 1.0f / N, &coefs, 1.0f, &lp, &err) == 0);
    }
    *out = g;
    *n_out = P.n;
    free(logits);
    bwd_ws_free(ws);
    moe_session_free(s);
    train_params_free(&P);
    moe_model_free(m);
}

TEST(fast_backward_threads) {
    static const char *variants[] = {"deepseek_v3_mla", "deepseek_v2_lite", "glm4_moe"};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0] && !test_failed_now; i++) {
        float *g1, *g3;
        int64_t n1 = 0, n3 = 0;
        grads_on(variants[i], 1, &g1, &n1);
        grads_on(variants[i], 3, &g3, &n3);
        CHECK(g1 && g3 && n1 == n3);
        int64_t bad = 0;
        for (int64_t k = 0; g1 && g3 && k < n1; k++) bad += memcmp(&g1[k], &g3[k], 4) != 0;
        CHECK_MSG(bad == 0, "%s: %lld gradients differ between 1 and 3 threads", variants[i],
                  (long long)bad);
        free(g1);
        free(g3);
    }
}

/* ------------------------------------------- balancing losses, wide rows */

/* Rows of more than 1024 experts take the element-by-element path: the
 * same values and gradients as rows that fit (checked by splitting the
 * check: both against the formulas in double). */
TEST(fast_balance_losses_wide_rows) {
    static const int Es[2] = {8, 1030};
    for (int ei = 0; ei < 2; ei++) {
        int T = 5, E = Es[ei], K = 2;
        rng r;
        rng_init(&r, 7);
        float *l = gc_falloc((int64_t)T * E), *dl = gc_falloc((int64_t)T * E);
        int *idx = malloc(sizeof(int) * (size_t)(T * K));
        double *work = gc_dalloc(2 * E), *P = gc_dalloc(E), *p = gc_dalloc(E);
        gc_fill(l, (int64_t)T * E, -3, 3, &r);
        for (int i = 0; i < T * K; i++) idx[i] = (i * 37 + 5) % E;
        /* aux (softmax): alpha E sum_e f_e P_e */
        double want = 0;
        for (int t = 0; t < T; t++) {
            double mx = -1e300, Z = 0;
            for (int e = 0; e < E; e++) mx = fmax(mx, l[t * E + e]);
            for (int e = 0; e < E; e++) Z += exp(l[t * E + e] - mx);
            for (int e = 0; e < E; e++) P[e] += exp(l[t * E + e] - mx) / Z / T;
        }
        for (int i = 0; i < T * K; i++) want += P[idx[i]] / (T * K);
        want *= 0.5 * E;
        double got = aux_loss(dl, l, idx, T, E, K, MOE_SCORE_SOFTMAX, 0.5f, work);
        CHECK_MSG(fabs(got - want) <= 1e-12 * fabs(want), "E=%d aux %.17g vs %.17g", E, got, want);
        /* the gradient of a softmax-weighted loss sums to 0 per row */
        for (int t = 0; t < T; t++) {
            double s = 0;
            for (int e = 0; e < E; e++) s += dl[t * E + e];
            CHECK_MSG(fabs(s) < 1e-6, "E=%d row %d: gradient sums to %g", E, t, s);
        }
        /* kl: sum_e (1/E) log((1/E) / P_e) */
        double kw = 0;
        for (int e = 0; e < E; e++) kw += log((1.0 / E) / fmax(P[e], 1e-12)) / E;
        double kg = kl_uniform_loss(NULL, l, T, E, MOE_SCORE_SOFTMAX, 1.0f, work);
        CHECK_MSG(fabs(kg - kw) <= 1e-10 * fabs(kw), "E=%d kl %.17g vs %.17g", E, kg, kw);
        /* sigmoid scores: aux with p = sigmoid(l) */
        double ws = 0;
        for (int e = 0; e < E; e++) P[e] = 0;
        for (int t = 0; t < T; t++)
            for (int e = 0; e < E; e++) P[e] += 1.0 / (1.0 + exp(-(double)l[t * E + e])) / T;
        for (int i = 0; i < T * K; i++) ws += P[idx[i]] / (T * K);
        ws *= 0.5 * E;
        double gs = aux_loss(NULL, l, idx, T, E, K, MOE_SCORE_SIGMOID, 0.5f, work);
        CHECK_MSG(fabs(gs - ws) <= 1e-12 * fabs(ws), "E=%d sigmoid aux %.17g vs %.17g", E, gs, ws);
        free(l);
        free(dl);
        free(idx);
        free(work);
        free(P);
        free(p);
    }
}

/* ------------------------------------------------------------ big buffers */

#include "kernels/bigmem.h"

TEST(fast_big_calloc) {
    static const size_t sizes[3] = {100, (size_t)3 << 20, ((size_t)4 << 20) + 4};
    for (int i = 0; i < 3; i++) {
        unsigned char *p = big_calloc(sizes[i]);
        CHECK(p != NULL);
        if (!p) continue;
        size_t nonzero = 0;
        for (size_t k = 0; k < sizes[i]; k++) nonzero += p[k] != 0;
        CHECK(nonzero == 0);
        if (sizes[i] >= ((size_t)2 << 20)) CHECK(((uintptr_t)p & (((size_t)2 << 20) - 1)) == 0);
        memset(p, 0xab, sizes[i]); /* all of it is ours */
        free(p);
    }
}
