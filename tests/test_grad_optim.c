/*
 * test_grad_optim.c - AdamW against a two-step example (values from
 * torch.optim.AdamW 2.15, with and without clip_grad_norm_), per-tensor
 * weight decay, the NaN/Inf guard, bad tensor lists, thread-count
 * determinism, packed moments, the LR schedule's values, and the RNG (reference values,
 * save/restore, normal moments).
 */
#include "grad_check.h"
#include "train/optim.h"

static const optim_tensor g_two[2] = {{"w", 0, 2, 1, 0}, {"norm", 2, 2, 0, 0}};

/* Two steps, lr 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.1 on tensor 0.
 * Step 1 by hand: m = 0.1 g, v = 0.001 g^2, so the bias-corrected step is
 * lr * sign(g): p0 = 1 * (1 - 0.01) - 0.1 = 0.89, p1 = -2 * 0.99 + 0.1 =
 * -1.88, p2 = 0.5 - 0.1 = 0.4, p3 = 3 + 0.1 = 3.1. Step 2 from torch. */
static void two_steps(float clip, const float *want1, const float *want2, const float *want_m,
                      const float *want_v, const double *want_norm) {
    float p[4] = {1.0f, -2.0f, 0.5f, 3.0f}, m[4] = {0}, v[4] = {0};
    const float g[2][4] = {{0.5f, -0.25f, 2.0f, -1.0f}, {-0.3f, 0.1f, 1.5f, 0.25f}};
    adamw_opts o = {0.9, 0.999, 1e-8, 0.1, clip};
    moe_err err = {{0}};
    for (int s = 0; s < 2; s++) {
        double norm = -1;
        CHECK_EQ_INT(adamw_step(NULL, p, g[s], m, v, 4, g_two, 2, s + 1, 0.1f, &o, &norm, &err), 0);
        CHECK_NEAR(norm, want_norm[s], 1e-6);
        const float *w = s ? want2 : want1;
        for (int i = 0; i < 4; i++) CHECK_NEAR(p[i], w[i], 2e-7 * fabs(w[i]) + 1e-9);
    }
    /* m[0] with clipping is 0.0195 - 0.0193: one f32 ulp of those terms
     * (1.9e-9) is the honest tolerance */
    for (int i = 0; i < 4; i++) CHECK_NEAR(m[i], want_m[i], 1e-6 * fabs(want_m[i]) + 2e-9);
    for (int i = 0; i < 4; i++) CHECK_NEAR(v[i], want_v[i], 1e-6 * fabs(want_v[i]) + 1e-12);
}

TEST(grad_adamw_two_steps) {
    const float s1[4] = {0.89f, -1.88f, 0.4f, 3.1f};
    const double norms[2] = {2.30488611, 1.55322254};
    const float s2[4] = {0.861950278f, -1.82663941f, 0.301742494f, 3.14694667f};
    const float m[4] = {0.0149999978f, -0.0125000002f, 0.330000013f, -0.0650000051f};
    const float v[4] = {0.000339750026f, 7.24375059e-05f, 0.00624600006f, 0.00106150005f};
    two_steps(0, s1, s2, m, v, norms);
    /* the same with clip_grad_norm_(max_norm = 1) before each step: step 1
     * is sign-only (unchanged), step 2 sees differently scaled moments */
    const float c2[4] = {0.880564272f, -1.84158468f, 0.299864292f, 3.13692427f};
    const float cm[4] = {0.000209061851f, -0.003323643f, 0.174668297f, -0.0229519084f};
    const float cv[4] = {8.43173912e-05f, 1.58980056e-05f, 0.00168482901f, 0.000213953637f};
    two_steps(1.0f, s1, c2, cm, cv, norms);
}

TEST(grad_adamw_nan_guard) {
    float p[6] = {1, 2, 3, 4, 5, 6}, g[6] = {0.1f, 0.2f, 0.3f, 0.4f, NAN, INFINITY};
    float m[6] = {0}, v[6] = {0}, keep[6];
    memcpy(keep, p, sizeof p);
    const optim_tensor ts[3] = {{"a", 0, 2, 1, 0}, {"b", 2, 2, 1, 0}, {"c.weight", 4, 2, 0, 0}};
    adamw_opts o = {0.9, 0.95, 1e-8, 0.1, 1.0};
    moe_err err = {{0}};
    double norm = 0;
    CHECK_EQ_INT(adamw_step(NULL, p, g, m, v, 6, ts, 3, 1, 1e-3f, &o, &norm, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "tensor 2 (c.weight)");
    CHECK_STR_CONTAINS(err.msg, "NaN");
    CHECK(!isfinite(norm));
    CHECK(memcmp(p, keep, sizeof p) == 0);
    for (int i = 0; i < 6; i++) CHECK(m[i] == 0 && v[i] == 0);
    g[4] = 0;
    CHECK_EQ_INT(adamw_step(NULL, p, g, m, v, 6, ts, 3, 1, 1e-3f, &o, &norm, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "Inf at element 1");
    /* malformed lists */
    g[5] = 0;
    const optim_tensor over[2] = {{"a", 0, 4, 1, 0}, {"b", 3, 2, 1, 0}};
    CHECK_EQ_INT(adamw_step(NULL, p, g, m, v, 6, over, 2, 1, 1e-3f, &o, NULL, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "tensor 1 (b)");
    const optim_tensor past[1] = {{"a", 2, 5, 1, 0}};
    CHECK_EQ_INT(adamw_step(NULL, p, g, m, v, 6, past, 1, 1, 1e-3f, &o, NULL, &err), -1);
    CHECK_EQ_INT(adamw_step(NULL, p, g, m, v, 6, ts, 3, 0, 1e-3f, &o, NULL, &err), -1);
    /* a gap between tensors: its elements are left alone */
    const optim_tensor gap[2] = {{"a", 0, 2, 1, 0}, {"b", 4, 2, 1, 0}};
    g[2] = NAN; /* not in any tensor: not looked at */
    CHECK_EQ_INT(adamw_step(NULL, p, g, m, v, 6, gap, 2, 1, 1e-3f, &o, &norm, &err), 0);
    CHECK(p[2] == 3 && p[3] == 4 && p[0] != 1);
    CHECK_NEAR(norm, sqrt(0.01 + 0.04), 1e-7);
}

TEST(grad_adamw_threads_deterministic) {
    /* several norm blocks (64K elements each) and many tensors */
    enum { N = 300007, NT = 13 };
    float *p1 = gc_falloc(N), *p2 = gc_falloc(N), *g = gc_falloc(N);
    float *m1 = gc_falloc(N), *m2 = gc_falloc(N), *v1 = gc_falloc(N), *v2 = gc_falloc(N);
    optim_tensor ts[NT];
    for (int i = 0; i < NT; i++)
        ts[i] = (optim_tensor){NULL, (int64_t)N * i / NT, (int64_t)N * (i + 1) / NT - (int64_t)N * i / NT, i % 3 != 0, 0};
    rng r;
    rng_init(&r, 40);
    gc_fill(p1, N, -1, 1, &r);
    memcpy(p2, p1, (size_t)N * 4);
    pool *pl = pool_create(2);
    adamw_opts o = {0.9, 0.95, 1e-8, 0.1, 10.0};
    moe_err err = {{0}};
    for (int s = 1; s <= 3; s++) {
        gc_fill(g, N, -0.1f, 0.1f, &r);
        double n1 = 0, n2 = 1;
        CHECK_EQ_INT(adamw_step(NULL, p1, g, m1, v1, N, ts, NT, s, 3e-4f, &o, &n1, &err), 0);
        CHECK_EQ_INT(adamw_step(pl, p2, g, m2, v2, N, ts, NT, s, 3e-4f, &o, &n2, &err), 0);
        CHECK(n1 == n2);
        CHECK_NEAR(n1, grad_global_norm(NULL, g, N, ts, NT), 0);
    }
    CHECK(memcmp(p1, p2, (size_t)N * 4) == 0);
    CHECK(memcmp(m1, m2, (size_t)N * 4) == 0);
    CHECK(memcmp(v1, v2, (size_t)N * 4) == 0);
    pool_free(pl);
    free(p1), free(p2), free(g), free(m1), free(m2), free(v1), free(v2);
}

/* Moments packed past the gaps between tensors (state_gap, what a frozen
 * tensor leaves) give the same parameters and moments as moments indexed
 * like the parameters, on both kernel paths (pool with AVX-512 where the
 * machine has it, scalar without a pool); overlapping moments are refused. */
TEST(grad_adamw_packed_moments) {
    enum { N = 200003 };
    const optim_tensor full[3] = {{"a", 0, 70001, 1, 0}, {"b", 90000, 50000, 0, 0},
                                  {"c", 150000, 50003, 1, 0}};
    const optim_tensor packed[3] = {{"a", 0, 70001, 1, 0}, {"b", 90000, 50000, 0, 19999},
                                    {"c", 150000, 50003, 1, 29999}};
    int64_t ns = 70001 + 50000 + 50003;
    float *p1 = gc_falloc(N), *p2 = gc_falloc(N), *g = gc_falloc(N);
    float *m1 = gc_falloc(N), *v1 = gc_falloc(N), *m2 = gc_falloc(ns), *v2 = gc_falloc(ns);
    rng r;
    rng_init(&r, 41);
    gc_fill(p1, N, -1, 1, &r);
    memcpy(p2, p1, (size_t)N * 4);
    pool *pl = pool_create(2);
    adamw_opts o = {0.9, 0.95, 1e-8, 0.1, 1.0};
    moe_err err = {{0}};
    for (int s = 1; s <= 3; s++) {
        gc_fill(g, N, -0.1f, 0.1f, &r);
        double n1 = 0, n2 = 1;
        CHECK_EQ_INT(adamw_step(s == 2 ? NULL : pl, p1, g, m1, v1, N, full, 3, s, 1e-3f, &o, &n1, &err), 0);
        CHECK_EQ_INT(adamw_step(s == 2 ? NULL : pl, p2, g, m2, v2, N, packed, 3, s, 1e-3f, &o, &n2, &err), 0);
        CHECK(n1 == n2);
    }
    CHECK(memcmp(p1, p2, (size_t)N * 4) == 0);
    for (int t = 0; t < 3; t++) {
        const float *a = m1 + full[t].offset, *b = m2 + packed[t].offset - packed[t].state_gap;
        const float *c = v1 + full[t].offset, *d = v2 + packed[t].offset - packed[t].state_gap;
        CHECK(memcmp(a, b, (size_t)full[t].size * 4) == 0);
        CHECK(memcmp(c, d, (size_t)full[t].size * 4) == 0);
    }
    const optim_tensor over[2] = {{"a", 0, 70001, 1, 0}, {"b", 90000, 50000, 0, 20001}};
    CHECK_EQ_INT(adamw_step(NULL, p2, g, m2, v2, N, over, 2, 4, 1e-3f, &o, NULL, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "tensor 1 (b): state gap 20001");
    pool_free(pl);
    free(p1), free(p2), free(g), free(m1), free(v1), free(m2), free(v2);
}

TEST(grad_lr_schedule) {
    lr_schedule s = {1e-3, 1e-4, 10, 110};
    CHECK_NEAR(lr_at(&s, 0), 1e-4, 1e-10);       /* warmup: peak * 1/10 */
    CHECK_NEAR(lr_at(&s, 4), 5e-4, 1e-10);
    CHECK_NEAR(lr_at(&s, 9), 1e-3, 1e-10);       /* end of warmup: peak */
    CHECK_NEAR(lr_at(&s, 10), 1e-3, 1e-10);      /* cosine starts at the peak */
    CHECK_NEAR(lr_at(&s, 60), 5.5e-4, 1e-9);     /* half way: (peak + min) / 2 */
    CHECK_NEAR(lr_at(&s, 35), 1e-4 + 0.9e-3 * (1 + cos(M_PI / 4)) / 2, 1e-9);
    CHECK_NEAR(lr_at(&s, 110), 1e-4, 1e-10);     /* end: min */
    CHECK_NEAR(lr_at(&s, 1000), 1e-4, 1e-10);
    CHECK(lr_at(&s, 109) > 1e-4 && lr_at(&s, 109) < 1.01e-4);
    lr_schedule nw = {2e-3, 0.0, 0, 100}; /* no warmup */
    CHECK_NEAR(lr_at(&nw, 0), 2e-3, 1e-10);
    CHECK_NEAR(lr_at(&nw, 100), 0, 0);
}

TEST(grad_clip_scales_update) {
    /* clipping to c is the same as stepping with gradients scaled by
     * c / (norm + 1e-6) */
    float p1[3] = {1, 2, 3}, p2[3] = {1, 2, 3}, m1[3] = {0}, v1[3] = {0}, m2[3] = {0}, v2[3] = {0};
    const float g[3] = {3, 4, 0}; /* norm 5 */
    float gs[3];
    const optim_tensor t1[1] = {{"x", 0, 3, 0, 0}};
    adamw_opts oc = {0.9, 0.99, 1e-3, 0, 2.0}, on = {0.9, 0.99, 1e-3, 0, 0};
    moe_err err;
    double n1, n2;
    for (int i = 0; i < 3; i++) gs[i] = g[i] * (float)(2.0 / (5.0 + 1e-6));
    adamw_step(NULL, p1, g, m1, v1, 3, t1, 1, 1, 0.5f, &oc, &n1, &err);
    adamw_step(NULL, p2, gs, m2, v2, 3, t1, 1, 1, 0.5f, &on, &n2, &err);
    CHECK_NEAR(n1, 5.0, 1e-12);
    CHECK_NEAR(n2, 2.0, 1e-6);
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR(p1[i], p2[i], 1e-7);
        CHECK_NEAR(v1[i], v2[i], 1e-9);
    }
    /* below the threshold nothing changes */
    adamw_opts big = {0.9, 0.99, 1e-3, 0, 100.0};
    float p3[3] = {1, 2, 3}, m3[3] = {0}, v3[3] = {0}, p4[3] = {1, 2, 3}, m4[3] = {0}, v4[3] = {0};
    adamw_step(NULL, p3, g, m3, v3, 3, t1, 1, 1, 0.5f, &big, NULL, &err);
    adamw_step(NULL, p4, g, m4, v4, 3, t1, 1, 1, 0.5f, &on, NULL, &err);
    CHECK(memcmp(p3, p4, sizeof p3) == 0 && memcmp(v3, v4, sizeof v3) == 0);
}

/* -------------------------------------------------------------------- RNG */

TEST(grad_rng) {
    /* splitmix64 from 0: the published first outputs */
    uint64_t x = 0;
    CHECK(rng_splitmix64(&x) == 0xe220a8397b1dcdafull);
    CHECK(rng_splitmix64(&x) == 0x6e789e6aa1b965f4ull);
    rng r;
    rng_init(&r, 0);
    uint64_t st[4];
    rng_save(&r, st);
    CHECK(st[0] == 0xe220a8397b1dcdafull && st[1] == 0x6e789e6aa1b965f4ull);
    /* xoshiro256** first output: rotl(s1 * 5, 7) * 9 */
    uint64_t s1 = st[1] * 5, want = ((s1 << 7) | (s1 >> 57)) * 9;
    CHECK(rng_next(&r) == want);
    /* restore replays the stream */
    rng a, b;
    rng_init(&a, 99);
    for (int i = 0; i < 10; i++) rng_next(&a);
    rng_save(&a, st);
    uint64_t seq[5];
    for (int i = 0; i < 5; i++) seq[i] = rng_next(&a);
    rng_restore(&b, st);
    for (int i = 0; i < 5; i++) CHECK(rng_next(&b) == seq[i]);
    /* normals: mean 0, variance 1, both Box-Muller outputs used */
    enum { N = 20000 };
    static float z[N];
    rng_init(&a, 5);
    rng_normal_fill(&a, z, N, 0.0f, 1.0f);
    double s = 0, ss = 0;
    for (int i = 0; i < N; i++) s += z[i], ss += (double)z[i] * z[i];
    CHECK_NEAR(s / N, 0.0, 0.03);
    CHECK_NEAR(ss / N, 1.0, 0.04);
    double u = 0;
    for (int i = 0; i < N; i++) {
        double v = rng_uniform01(&a);
        CHECK(v >= 0 && v < 1);
        u += v;
    }
    CHECK_NEAR(u / N, 0.5, 0.01);
    double t = 0;
    for (int i = 0; i < 2000; i++) t += rng_normal(&a);
    CHECK_NEAR(t / 2000, 0.0, 0.1);
}
