/*
 * test_grad_pointwise.c - RMSNorm (weighted, unweighted, odd sizes, the
 * per-head use with one shared dw), SwiGLU, gpt_oss's clamped SwiGLU (and
 * its AVX-512 twin), RoPE and clamp backward against central differences of
 * double-precision forwards.
 */
#include "grad_check.h"
#include "kernels/kernels.h"
#include "train/grad_ops.h"

/* ---------------------------------------------------------------- RMSNorm */

typedef struct norm_ctx {
    const double *x, *w, *R; /* [rows][n], [n] or NULL, [rows][n] */
    int rows, n;
    double eps;
} norm_ctx;

/* L = sum R * x * r * w per row; r = 1/sqrt(mean(x^2) + eps) */
static double norm_loss(void *vc) {
    const norm_ctx *c = vc;
    double L = 0;
    for (int t = 0; t < c->rows; t++) {
        const double *x = c->x + t * c->n;
        double ss = 0;
        for (int i = 0; i < c->n; i++) ss += x[i] * x[i];
        double r = 1.0 / sqrt(ss / c->n + c->eps);
        for (int i = 0; i < c->n; i++) L += c->R[t * c->n + i] * x[i] * r * (c->w ? c->w[i] : 1.0);
    }
    return L;
}

static void norm_case(int rows, int n, int weighted, float eps, float scale, rng *r) {
    float *x = gc_falloc(rows * n), *w = gc_falloc(n), *dy = gc_falloc(rows * n);
    float *dx = gc_falloc(rows * n), *dw = gc_falloc(n);
    double *xd = gc_dalloc(rows * n), *wd = gc_dalloc(n), *Rd = gc_dalloc(rows * n);
    double *gx = gc_dalloc(rows * n), *gw = gc_dalloc(n);
    gc_fill(x, rows * n, -scale, scale, r);
    gc_fill(w, n, 0.5f, 1.5f, r);
    gc_fill(dy, rows * n, -1, 1, r);
    gc_widen(xd, x, rows * n), gc_widen(wd, w, n), gc_widen(Rd, dy, rows * n);
    norm_ctx c = {xd, weighted ? wd : NULL, Rd, rows, n, eps};
    gc_fd(norm_loss, &c, xd, rows * n, 1e-6 * scale, gx);
    if (weighted) gc_fd(norm_loss, &c, wd, n, 1e-6, gw);
    rmsnorm_backward_rows(dx, weighted ? dw : NULL, dy, x, weighted ? w : NULL, rows, n, eps);
    char what[64];
    snprintf(what, sizeof what, "rmsnorm dx rows=%d n=%d w=%d", rows, n, weighted);
    GC_CHECK_ATOL(what, dx, gx, rows * n, 2e-5, 1e-8 / scale); /* FD noise when dx ~ 0 */
    if (weighted) GC_CHECK("rmsnorm dw", dw, gw, n, 2e-5);
    free(x), free(w), free(dy), free(dx), free(dw), free(xd), free(wd), free(Rd), free(gx), free(gw);
}

TEST(grad_rmsnorm) {
    rng r;
    rng_init(&r, 10);
    norm_case(1, 1, 1, 1e-6f, 1, &r);
    norm_case(3, 7, 1, 1e-6f, 1, &r);
    norm_case(2, 16, 0, 1e-5f, 1, &r);
    norm_case(5, 33, 1, 1e-6f, 3, &r);  /* a block norm, odd D */
    norm_case(6, 8, 1, 1e-6f, 1, &r);   /* per-head q norm: 6 heads of Dh 8 share dw */
    norm_case(1, 48, 1, 1e-6f, 0.01f, &r); /* small x: eps matters */
}

/* ----------------------------------------------------------------- SwiGLU */

typedef struct swiglu_ctx {
    const double *g, *u, *R;
    int n;
} swiglu_ctx;

static double swiglu_loss(void *vc) {
    const swiglu_ctx *c = vc;
    double L = 0;
    for (int i = 0; i < c->n; i++) L += c->R[i] * c->g[i] / (1 + exp(-c->g[i])) * c->u[i];
    return L;
}

TEST(grad_swiglu) {
    enum { N = 37 };
    rng r;
    rng_init(&r, 11);
    float g[N], u[N], dh[N], dg[N] = {0}, du[N] = {0};
    double gd[N], ud[N], Rd[N], eg[N], eu[N];
    gc_fill(g, N, -6, 6, &r);
    g[0] = 0, g[1] = 20, g[2] = -20; /* sigmoid saturated both ways */
    gc_fill(u, N, -2, 2, &r);
    gc_fill(dh, N, -1, 1, &r);
    gc_widen(gd, g, N), gc_widen(ud, u, N), gc_widen(Rd, dh, N);
    swiglu_ctx c = {gd, ud, Rd, N};
    gc_fd(swiglu_loss, &c, gd, N, 1e-6, eg);
    gc_fd(swiglu_loss, &c, ud, N, 1e-6, eu);
    swiglu_backward(dg, du, dh, g, u, N);
    GC_CHECK("swiglu dg", dg, eg, N, 1e-5);
    GC_CHECK("swiglu du", du, eu, N, 1e-5);
    /* accumulation: a second call doubles */
    swiglu_backward(dg, NULL, dh, g, u, N);
    for (int i = 0; i < N; i++) eg[i] *= 2;
    GC_CHECK("swiglu dg x2", dg, eg, N, 1e-5);
}

/* ------------------------------------------------------ clamped SwiGLU */

typedef struct oss_ctx {
    const double *g, *u, *R;
    int n;
    double alpha, limit;
} oss_ctx;

/* h = (clamp(u, -l, l) + 1) * gc * sigmoid(alpha gc), gc = min(g, l) */
static double oss_loss(void *vc) {
    const oss_ctx *c = vc;
    double L = 0;
    for (int i = 0; i < c->n; i++) {
        double gc = fmin(c->g[i], c->limit), uc = fmax(-c->limit, fmin(c->u[i], c->limit));
        L += c->R[i] * (uc + 1) * gc / (1 + exp(-c->alpha * gc));
    }
    return L;
}

TEST(grad_oss_glu) {
    enum { N = 45 };
    const float alpha = 1.702f, lim = 1.5f;
    rng r;
    rng_init(&r, 12);
    float g[N], u[N], dh[N], dg[N] = {0}, du[N] = {0}, fg[N] = {0}, fu[N] = {0};
    double gd[N], ud[N], Rd[N], eg[N], eu[N];
    gc_fill(g, N, -4, 4, &r);
    gc_fill(u, N, -3, 3, &r);
    gc_fill(dh, N, -1, 1, &r);
    for (int i = 0; i < N; i++) { /* differences stay off the kinks */
        if (fabsf(fabsf(g[i]) - lim) < 1e-2f) g[i] += 0.05f;
        if (fabsf(fabsf(u[i]) - lim) < 1e-2f) u[i] += 0.05f;
    }
    gc_widen(gd, g, N), gc_widen(ud, u, N), gc_widen(Rd, dh, N);
    oss_ctx c = {gd, ud, Rd, N, alpha, lim};
    gc_fd(oss_loss, &c, gd, N, 1e-6, eg);
    gc_fd(oss_loss, &c, ud, N, 1e-6, eu);
    oss_glu_backward(dg, du, dh, g, u, N, alpha, lim);
    GC_CHECK("oss_glu dg", dg, eg, N, 1e-5);
    GC_CHECK("oss_glu du", du, eu, N, 1e-5);
    int clamped_g = 0, clamped_u = 0;
    for (int i = 0; i < N; i++) {
        clamped_g += g[i] > lim && dg[i] == 0.0f;
        clamped_u += fabsf(u[i]) > lim && du[i] == 0.0f;
    }
    CHECK(clamped_g > 3 && clamped_u > 3); /* the clamps were reached and block */

    /* PyTorch's clamp passes the gradient at the bound itself; NaN blocks */
    float gb[3] = {lim, lim + 1e-3f, NAN}, ub[3] = {-lim, lim, NAN}, one[3] = {1, 1, 1};
    float dgb[3] = {0}, dub[3] = {0};
    oss_glu_backward(dgb, dub, one, gb, ub, 3, alpha, lim);
    CHECK(dgb[0] != 0.0f && dub[0] != 0.0f && dub[1] != 0.0f);
    CHECK(dgb[1] == 0.0f && dgb[2] == 0.0f && dub[2] == 0.0f);

    /* the AVX-512 twin on the same inputs (accumulating, like the scalar) */
    if (kernels_named("avx512")) {
        avx512_oss_glu_backward(fg, fu, dh, g, u, N, alpha, lim);
        for (int i = 0; i < N; i++) {
            CHECK_NEAR(fg[i], dg[i], 2e-6 * (1 + fabsf(dg[i])));
            CHECK_NEAR(fu[i], du[i], 2e-6 * (1 + fabsf(du[i])));
            CHECK((fg[i] == 0.0f) == (dg[i] == 0.0f) || fabsf(dg[i]) < 1e-7f);
        }
        float fgb[3] = {0}, fub[3] = {0};
        avx512_oss_glu_backward(fgb, fub, one, gb, ub, 3, alpha, lim);
        CHECK(fgb[0] != 0.0f && fub[0] != 0.0f && fub[1] != 0.0f);
        CHECK(fgb[1] == 0.0f && fgb[2] == 0.0f && fub[2] == 0.0f);
    }
}

/* ------------------------------------------------------------------ RoPE */

TEST(grad_rope) {
    /* rope is linear and orthogonal: backward = transpose = inverse. Check
     * against FD of the kernel's own forward in double, and that
     * backward(forward(x)) == x. */
    const int dims[] = {2, 8, 14, 64};
    rng r;
    rng_init(&r, 12);
    for (int di = 0; di < 4; di++) {
        int Dh = dims[di], h = Dh / 2;
        float cs[32], sn[32], x[64] = {0}, d[64] = {0}, y[64];
        rope_table(cs, sn, 37, Dh, 10000.0f);
        gc_fill(x, Dh, -1, 1, &r);
        gc_fill(d, Dh, -1, 1, &r);
        /* dL/dx for L = R . rope(x), analytically in double: R^T M */
        double want[64];
        for (int i = 0; i < h; i++) {
            /* y_i = x_i c - x_{i+h} s; y_{i+h} = x_{i+h} c + x_i s */
            want[i] = (double)d[i] * cs[i] + (double)d[i + h] * sn[i];
            want[i + h] = -(double)d[i] * sn[i] + (double)d[i + h] * cs[i];
        }
        /* and by differences of the real forward (f32 kernel, linear in x) */
        double fd[64];
        for (int i = 0; i < Dh; i++) {
            float xp[64], xm[64];
            memcpy(xp, x, sizeof xp), memcpy(xm, x, sizeof xm);
            xp[i] += 0.5f, xm[i] -= 0.5f;
            rope_apply(xp, cs, sn, Dh), rope_apply(xm, cs, sn, Dh);
            double L = 0;
            for (int j = 0; j < Dh; j++) L += (double)d[j] * ((double)xp[j] - xm[j]);
            fd[i] = L;
        }
        rope_backward(d, cs, sn, Dh);
        GC_CHECK("rope analytic", d, want, Dh, 1e-6);
        GC_CHECK("rope fd", d, fd, Dh, 1e-5);
        memcpy(y, x, sizeof y);
        rope_apply(y, cs, sn, Dh);
        rope_backward(y, cs, sn, Dh);
        for (int i = 0; i < Dh; i++) CHECK_NEAR(y[i], x[i], 1e-6);
    }
}

/* ----------------------------------------------------------------- clamp */

TEST(grad_clamp) {
    const float c = 1.5f;
    float x[8] = {-2.0f, -1.5f, -1.4999f, 0.0f, 1.4999f, 1.5f, 1.5001f, NAN};
    float d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float want[8] = {0, 2, 3, 4, 5, 6, 0, 0}; /* torch: passes on [min, max] */
    clamp_backward(d, x, 8, c);
    for (int i = 0; i < 8; i++) CHECK_NEAR(d[i], want[i], 0);
}
