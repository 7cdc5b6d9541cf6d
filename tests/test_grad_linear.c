/*
 * test_grad_linear.c - linear_backward: the reference against finite
 * differences of a double forward, and the blocked/threaded fast path
 * (every ISA this CPU has) against the reference on odd shapes that cross
 * every block edge, accumulation into non-zero buffers, grouped tasks, and
 * bit-identical results for 1 and 2 threads.
 */
#include "grad_check.h"
#include "kern_pool.h"
#include "kernels/kernels.h"
#include "train/grad_ops.h"

typedef struct lin_ctx {
    const double *x, *W, *R; /* [n][in], [out][in], [n][out] */
    int64_t n, out, in;
} lin_ctx;

/* L = sum_ij R[i][j] * (x W^T)[i][j] */
static double lin_loss(void *vc) {
    const lin_ctx *c = vc;
    double L = 0;
    for (int64_t i = 0; i < c->n; i++)
        for (int64_t o = 0; o < c->out; o++) {
            double y = 0;
            for (int64_t k = 0; k < c->in; k++) y += c->x[i * c->in + k] * c->W[o * c->in + k];
            L += c->R[i * c->out + o] * y;
        }
    return L;
}

TEST(grad_linear_ref_vs_fd) {
    const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {4, 2, 9}};
    rng r;
    rng_init(&r, 1);
    for (int s = 0; s < 3; s++) {
        int64_t n = shapes[s][0], out = shapes[s][1], in = shapes[s][2];
        float *x = gc_falloc(n * in), *W = gc_falloc(out * in), *dy = gc_falloc(n * out);
        float *dx = gc_falloc(n * in), *dW = gc_falloc(out * in), *db = gc_falloc(out);
        double *xd = gc_dalloc(n * in), *Wd = gc_dalloc(out * in), *Rd = gc_dalloc(n * out);
        double *gx = gc_dalloc(n * in), *gW = gc_dalloc(out * in), *gb = gc_dalloc(out);
        gc_fill(x, n * in, -1, 1, &r);
        gc_fill(W, out * in, -1, 1, &r);
        gc_fill(dy, n * out, -1, 1, &r);
        gc_widen(xd, x, n * in);
        gc_widen(Wd, W, out * in);
        gc_widen(Rd, dy, n * out);
        lin_ctx c = {xd, Wd, Rd, n, out, in};
        gc_fd(lin_loss, &c, xd, n * in, 1e-5, gx);
        gc_fd(lin_loss, &c, Wd, out * in, 1e-5, gW);
        linear_backward_ref(dx, dW, dy, x, W, n, out, in);
        GC_CHECK("dx", dx, gx, n * in, 1e-7);
        GC_CHECK("dW", dW, gW, out * in, 1e-7);
        /* bias: dL/db[o] = sum_i R[i][o] */
        for (int64_t o = 0; o < out; o++)
            for (int64_t i = 0; i < n; i++) gb[o] += Rd[i * out + o];
        bias_backward(db, dy, n, out);
        GC_CHECK("db", db, gb, out, 1e-6);
        /* the fast path agrees with FD too */
        for (int64_t i = 0; i < n * in; i++) dx[i] = 0;
        for (int64_t i = 0; i < out * in; i++) dW[i] = 0;
        linear_backward(NULL, dx, dW, dy, x, W, n, out, in);
        GC_CHECK("dx fast", dx, gx, n * in, 1e-6);
        GC_CHECK("dW fast", dW, gW, out * in, 1e-6);
        free(x), free(W), free(dy), free(dx), free(dW), free(db);
        free(xd), free(Wd), free(Rd), free(gx), free(gW), free(gb);
    }
}

/* The fast path on one shape against the reference, accumulating into
 * random starting values; NULL pool and 2 threads must agree bit for bit. */
static void fast_vs_ref(pool *p1, pool *p2, int64_t n, int64_t out, int64_t in, rng *r) {
    float *x = gc_falloc(n * in), *W = gc_falloc(out * in), *dy = gc_falloc(n * out);
    float *dx0 = gc_falloc(n * in), *dW0 = gc_falloc(out * in);
    float *dx = gc_falloc(n * in), *dW = gc_falloc(out * in);
    float *dx2 = gc_falloc(n * in), *dW2 = gc_falloc(out * in);
    double *rx = gc_dalloc(n * in), *rW = gc_dalloc(out * in);
    gc_fill(x, n * in, -1, 1, r);
    gc_fill(W, out * in, -1, 1, r);
    gc_fill(dy, n * out, -1, 1, r);
    gc_fill(dx0, n * in, -1, 1, r);
    gc_fill(dW0, out * in, -1, 1, r);
    memcpy(dx, dx0, (size_t)(n * in) * 4);
    memcpy(dW, dW0, (size_t)(out * in) * 4);
    memcpy(dx2, dx0, (size_t)(n * in) * 4);
    memcpy(dW2, dW0, (size_t)(out * in) * 4);
    /* reference in double: start + exact sums */
    for (int64_t i = 0; i < n * in; i++) rx[i] = dx0[i];
    for (int64_t i = 0; i < out * in; i++) rW[i] = dW0[i];
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < out; o++) {
            double g = dy[i * out + o];
            for (int64_t k = 0; k < in; k++) {
                rx[i * in + k] += g * W[o * in + k];
                rW[o * in + k] += g * x[i * in + k];
            }
        }
    linear_backward(p1, dx, dW, dy, x, W, n, out, in);
    linear_backward(p2, dx2, dW2, dy, x, W, n, out, in);
    char what[96];
    snprintf(what, sizeof what, "dx n=%lld out=%lld in=%lld isa=%s", (long long)n, (long long)out,
             (long long)in, isa_name(kern_of(p2)->isa));
    /* f32 sums of up to ~300 terms of size <= 1: absolute error well below 1e-4 */
    GC_CHECK_ATOL(what, dx, rx, n * in, 1e-6, 2e-5 * sqrt((double)out));
    what[1] = 'W';
    GC_CHECK_ATOL(what, dW, rW, out * in, 1e-6, 2e-5 * sqrt((double)n));
    CHECK(memcmp(dx, dx2, (size_t)(n * in) * 4) == 0);
    CHECK(memcmp(dW, dW2, (size_t)(out * in) * 4) == 0);
    /* dx only / dW only */
    memcpy(dx2, dx0, (size_t)(n * in) * 4);
    memcpy(dW2, dW0, (size_t)(out * in) * 4);
    linear_backward(p2, dx2, NULL, dy, x, W, n, out, in);
    linear_backward(p2, NULL, dW2, dy, x, W, n, out, in);
    CHECK(memcmp(dx, dx2, (size_t)(n * in) * 4) == 0);
    CHECK(memcmp(dW, dW2, (size_t)(out * in) * 4) == 0);
    free(x), free(W), free(dy), free(dx0), free(dW0), free(dx), free(dW), free(dx2), free(dW2);
    free(rx), free(rW);
}

TEST(grad_linear_fast_vs_ref) {
    /* shapes crossing MR (12/6/4), NR (32/16), MC 48, NC 128 and KC 256 */
    const int64_t shapes[][3] = {{1, 1, 1},   {2, 3, 5},     {13, 37, 29}, {49, 17, 129},
                                 {7, 300, 33}, {270, 11, 40}, {50, 97, 161}};
    kern_pools kp;
    kern_pools_init(&kp);
    CHECK(kp.two[ISA_SCALAR] != NULL);
    rng r;
    rng_init(&r, 2);
    for (int i = 0; i < ISA_COUNT; i++) {
        if (!kp.one[i]) continue;
        for (int s = 0; s < 7; s++)
            fast_vs_ref(kp.one[i], kp.two[i], shapes[s][0], shapes[s][1], shapes[s][2], &r);
    }
    kern_pools_free(&kp);
}

TEST(grad_linear_grouped) {
    /* three experts of different row counts (one empty) = three calls */
    const int64_t D = 24, F = 40, rows[3] = {5, 0, 17};
    rng r;
    rng_init(&r, 3);
    float *x[3], *W[3], *dy[3], *dx[3], *dW[3], *ex[3], *eW[3];
    lin_bwd_task t[3];
    for (int e = 0; e < 3; e++) {
        int64_t n = rows[e];
        x[e] = gc_falloc(n * D), W[e] = gc_falloc(F * D), dy[e] = gc_falloc(n * F);
        dx[e] = gc_falloc(n * D), dW[e] = gc_falloc(F * D);
        ex[e] = gc_falloc(n * D), eW[e] = gc_falloc(F * D);
        gc_fill(x[e], n * D, -1, 1, &r);
        gc_fill(W[e], F * D, -1, 1, &r);
        gc_fill(dy[e], n * F, -1, 1, &r);
        t[e] = (lin_bwd_task){dx[e], dW[e], dy[e], x[e], W[e], n, F, D};
        linear_backward(NULL, ex[e], eW[e], dy[e], x[e], W[e], n, F, D);
    }
    pool *p2 = pool_create(2);
    linear_backward_grouped(p2, t, 3);
    for (int e = 0; e < 3; e++) {
        CHECK(memcmp(dx[e], ex[e], (size_t)(rows[e] * D) * 4) == 0);
        CHECK(memcmp(dW[e], eW[e], (size_t)(F * D) * 4) == 0);
        free(x[e]), free(W[e]), free(dy[e]), free(dx[e]), free(dW[e]), free(ex[e]), free(eW[e]);
    }
    pool_free(p2);
}
