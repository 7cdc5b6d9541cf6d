/*
 * test_grad_attention.c - attention_backward against central differences
 * of a double-precision causal attention: MHA, GQA 2:1 and 3:1, MQA,
 * sliding windows, T = 1, odd head dims, gpt_oss's sink logits (their
 * gradient too), value heads of another width and a scale of their own
 * (attention_backward_dims); 1 and 2 threads bit-identical;
 * the recomputed probabilities match the f32 forward kernels.
 */
#include "grad_check.h"
#include "kern_pool.h"
#include "kernels/kernels.h"
#include "train/grad_ops.h"

typedef struct att_ctx {
    const double *q, *k, *v, *R; /* [T][H*Dh], [T][G*Dh] x2, [T][H*Dh] */
    int T, H, G, Dh, W;
    const double *z;             /* [H] sink logits or NULL */
} att_ctx;

static double att_loss(void *vc) {
    const att_ctx *c = vc;
    int T = c->T, H = c->H, G = c->G, Dh = c->Dh;
    double L = 0, sc[128]; /* T <= 128 */
    for (int h = 0; h < H; h++) {
        int g = h / (H / G);
        for (int i = 0; i < T; i++) {
            int lo = c->W > 0 && i - c->W + 1 > 0 ? i - c->W + 1 : 0;
            double mx = c->z ? c->z[h] : -INFINITY, Z = 0;
            for (int j = lo; j <= i; j++) {
                double s = 0;
                for (int d = 0; d < Dh; d++) s += c->q[(i * H + h) * Dh + d] * c->k[(j * G + g) * Dh + d];
                sc[j] = s / sqrt((double)Dh);
                mx = fmax(mx, sc[j]);
            }
            for (int j = lo; j <= i; j++) Z += (sc[j] = exp(sc[j] - mx));
            if (c->z) Z += exp(c->z[h] - mx);
            for (int d = 0; d < Dh; d++) {
                double o = 0;
                for (int j = lo; j <= i; j++) o += sc[j] / Z * c->v[(j * G + g) * Dh + d];
                L += c->R[(i * H + h) * Dh + d] * o;
            }
        }
    }
    return L;
}

static void att_case_every(int T, int H, int G, int Dh, int W, rng *r, pool *p1, pool *p2, int every) {
    int64_t QN = (int64_t)T * H * Dh, KN = (int64_t)T * G * Dh;
    float *q = gc_falloc(QN), *k = gc_falloc(KN), *v = gc_falloc(KN), *dout = gc_falloc(QN);
    float *dq = gc_falloc(QN), *dk = gc_falloc(KN), *dv = gc_falloc(KN);
    float *dq2 = gc_falloc(QN), *dk2 = gc_falloc(KN), *dv2 = gc_falloc(KN);
    double *qd = gc_dalloc(QN), *kd = gc_dalloc(KN), *vd = gc_dalloc(KN), *Rd = gc_dalloc(QN);
    double *gq = gc_dalloc(QN), *gk = gc_dalloc(KN), *gv = gc_dalloc(KN);
    gc_fill(q, QN, -1.5f, 1.5f, r);
    gc_fill(k, KN, -1.5f, 1.5f, r);
    gc_fill(v, KN, -1, 1, r);
    gc_fill(dout, QN, -1, 1, r);
    gc_widen(qd, q, QN), gc_widen(kd, k, KN), gc_widen(vd, v, KN), gc_widen(Rd, dout, QN);
    att_ctx c = {qd, kd, vd, Rd, T, H, G, Dh, W, NULL};
    gc_fd_every(att_loss, &c, qd, QN, 1e-6, gq, every);
    gc_fd_every(att_loss, &c, kd, KN, 1e-6, gk, every);
    gc_fd_every(att_loss, &c, vd, KN, 1e-6, gv, every);
    float *scr = gc_falloc(2 * attention_backward_scratch(T));
    attention_backward(p1, dq, dk, dv, dout, q, k, v, T, H, G, Dh, W, scr);
    attention_backward(p2, dq2, dk2, dv2, dout, q, k, v, T, H, G, Dh, W, scr);
    char what[80];
    snprintf(what, sizeof what, "dq T=%d H=%d G=%d Dh=%d W=%d", T, H, G, Dh, W);
    GC_CHECK(what, dq, gq, QN, 1e-5);
    what[1] = 'k';
    GC_CHECK(what, dk, gk, KN, 1e-5);
    what[1] = 'v';
    GC_CHECK(what, dv, gv, KN, 1e-5);
    CHECK(memcmp(dq, dq2, (size_t)QN * 4) == 0);
    CHECK(memcmp(dk, dk2, (size_t)KN * 4) == 0);
    CHECK(memcmp(dv, dv2, (size_t)KN * 4) == 0);
    free(q), free(k), free(v), free(dout), free(dq), free(dk), free(dv), free(dq2), free(dk2);
    free(dv2), free(qd), free(kd), free(vd), free(Rd), free(gq), free(gk), free(gv), free(scr);
}

static void att_case(int T, int H, int G, int Dh, int W, rng *r, pool *p1, pool *p2) {
    att_case_every(T, H, G, Dh, W, r, p1, p2, 1);
}

TEST(grad_attention) {
    kern_pools kp;
    kern_pools_init(&kp);
    rng r;
    rng_init(&r, 20);
    for (int i = 0; i < ISA_COUNT; i++) { /* the AVX-512 row step and the portable one */
        pool *p1 = kp.one[i], *p2 = kp.two[i];
        if (!p1) continue;
        att_case(1, 2, 1, 4, 0, &r, p1, p2);  /* one token: p = 1, dq = dk = 0 */
        att_case(5, 2, 2, 6, 0, &r, p1, p2);  /* MHA */
        att_case(7, 4, 2, 8, 0, &r, p1, p2);  /* GQA 2:1 */
        att_case(6, 6, 2, 5, 0, &r, p1, p2);  /* GQA 3:1, odd Dh */
        att_case(9, 3, 1, 4, 0, &r, p1, p2);  /* MQA */
        att_case(9, 4, 2, 4, 3, &r, p1, p2);  /* sliding window 3 */
        att_case(8, 6, 2, 6, 1, &r, p1, p2);  /* window 1: each token sees itself */
        att_case(6, 2, 1, 4, 10, &r, p1, p2); /* window longer than T */
        att_case_every(23, 2, 1, 3, 0, &r, p1, p2, 3); /* rows longer than a vector */
    }
    kern_pools_free(&kp);
}

/* With sinks: dq, dk, dv and dsinks against differences; the AVX-512 and
 * portable row steps, 1 and 2 threads. */
static void att_sink_case(int T, int H, int G, int Dh, int W, rng *r, pool *p1, pool *p2) {
    int64_t QN = (int64_t)T * H * Dh, KN = (int64_t)T * G * Dh;
    float *q = gc_falloc(QN), *k = gc_falloc(KN), *v = gc_falloc(KN), *dout = gc_falloc(QN);
    float *dq = gc_falloc(QN), *dk = gc_falloc(KN), *dv = gc_falloc(KN), *z = gc_falloc(H);
    float *dq2 = gc_falloc(QN), *dk2 = gc_falloc(KN), *dv2 = gc_falloc(KN);
    float *dz = gc_falloc(H), *dz2 = gc_falloc(H);
    double *qd = gc_dalloc(QN), *kd = gc_dalloc(KN), *vd = gc_dalloc(KN), *Rd = gc_dalloc(QN);
    double *zd = gc_dalloc(H), *gq = gc_dalloc(QN), *gk = gc_dalloc(KN), *gv = gc_dalloc(KN);
    double *gz = gc_dalloc(H);
    gc_fill(q, QN, -1.5f, 1.5f, r);
    gc_fill(k, KN, -1.5f, 1.5f, r);
    gc_fill(v, KN, -1, 1, r);
    gc_fill(dout, QN, -1, 1, r);
    gc_fill(z, H, -1.0f, 2.5f, r); /* from a small share to most of the row */
    gc_widen(qd, q, QN), gc_widen(kd, k, KN), gc_widen(vd, v, KN), gc_widen(Rd, dout, QN);
    gc_widen(zd, z, H);
    att_ctx c = {qd, kd, vd, Rd, T, H, G, Dh, W, zd};
    gc_fd_every(att_loss, &c, qd, QN, 1e-6, gq, 1);
    gc_fd_every(att_loss, &c, kd, KN, 1e-6, gk, 1);
    gc_fd_every(att_loss, &c, vd, KN, 1e-6, gv, 1);
    gc_fd_every(att_loss, &c, zd, H, 1e-6, gz, 1);
    float *scr = gc_falloc(2 * attention_backward_scratch(T));
    attention_backward_sinks(p1, dq, dk, dv, dz, dout, q, k, v, z, T, H, G, Dh, W, scr);
    attention_backward_sinks(p2, dq2, dk2, dv2, dz2, dout, q, k, v, z, T, H, G, Dh, W, scr);
    char what[80];
    snprintf(what, sizeof what, "sinks: dq T=%d H=%d G=%d Dh=%d W=%d", T, H, G, Dh, W);
    GC_CHECK(what, dq, gq, QN, 1e-5);
    GC_CHECK("sinks: dk", dk, gk, KN, 1e-5);
    GC_CHECK("sinks: dv", dv, gv, KN, 1e-5);
    GC_CHECK("sinks: dsinks", dz, gz, H, 1e-5);
    CHECK(memcmp(dq, dq2, (size_t)QN * 4) == 0);
    CHECK(memcmp(dk, dk2, (size_t)KN * 4) == 0);
    CHECK(memcmp(dz, dz2, (size_t)H * 4) == 0);
    free(q), free(k), free(v), free(dout), free(dq), free(dk), free(dv), free(z), free(dq2);
    free(dk2), free(dv2), free(dz), free(dz2), free(qd), free(kd), free(vd), free(Rd), free(zd);
    free(gq), free(gk), free(gv), free(gz), free(scr);
}

TEST(grad_attention_sinks) {
    kern_pools kp;
    kern_pools_init(&kp);
    rng r;
    rng_init(&r, 23);
    for (int i = 0; i < ISA_COUNT; i++) {
        pool *p1 = kp.one[i], *p2 = kp.two[i];
        if (!p1) continue;
        att_sink_case(1, 2, 1, 4, 0, &r, p1, p2);   /* one key and the sink */
        att_sink_case(7, 4, 2, 8, 0, &r, p1, p2);   /* GQA 2:1 */
        att_sink_case(9, 4, 2, 4, 3, &r, p1, p2);   /* sliding window 3 */
        att_sink_case(21, 2, 1, 16, 0, &r, p1, p2); /* rows longer than a vector */
    }
    kern_pools_free(&kp);
}

TEST(grad_attention_sinks_avx512_vs_portable) {
    /* the AVX-512 row step against the portable one on the same inputs */
    kern_pools kp;
    kern_pools_init(&kp);
    pool *fast = kp.one[ISA_AVX512], *ref = NULL;
    for (int i = 0; i < ISA_COUNT; i++)
        if (i != ISA_AVX512 && kp.one[i]) ref = kp.one[i];
    if (fast && ref) {
        enum { T = 40, H = 4, G = 2, Dh = 16 };
        rng r;
        rng_init(&r, 24);
        float *q = gc_falloc(T * H * Dh), *k = gc_falloc(T * G * Dh), *v = gc_falloc(T * G * Dh);
        float *d = gc_falloc(T * H * Dh), z[H], dz[H] = {0}, dz2[H] = {0};
        float *dq = gc_falloc(T * H * Dh), *dk = gc_falloc(T * G * Dh), *dv = gc_falloc(T * G * Dh);
        float *dq2 = gc_falloc(T * H * Dh), *dk2 = gc_falloc(T * G * Dh), *dv2 = gc_falloc(T * G * Dh);
        gc_fill(q, T * H * Dh, -2, 2, &r), gc_fill(k, T * G * Dh, -2, 2, &r);
        gc_fill(v, T * G * Dh, -1, 1, &r), gc_fill(d, T * H * Dh, -1, 1, &r);
        gc_fill(z, H, -1, 3, &r);
        float *scr = gc_falloc(attention_backward_scratch(T));
        attention_backward_sinks(fast, dq, dk, dv, dz, d, q, k, v, z, T, H, G, Dh, 5, scr);
        attention_backward_sinks(ref, dq2, dk2, dv2, dz2, d, q, k, v, z, T, H, G, Dh, 5, scr);
        for (int i = 0; i < T * H * Dh; i++) CHECK_NEAR(dq[i], dq2[i], 1e-5);
        for (int i = 0; i < T * G * Dh; i++) CHECK_NEAR(dk[i], dk2[i], 1e-5);
        for (int i = 0; i < T * G * Dh; i++) CHECK_NEAR(dv[i], dv2[i], 1e-5);
        for (int h = 0; h < H; h++) CHECK_NEAR(dz[h], dz2[h], 1e-5);
        free(q), free(k), free(v), free(d), free(dq), free(dk), free(dv), free(dq2), free(dk2);
        free(dv2), free(scr);
    }
    kern_pools_free(&kp);
}

TEST(grad_attention_blocks) {
    /* past one 64-query block: blocks, the causal edge inside a block and a
     * window reaching back across a block boundary */
    pool *p1 = NULL, *p2 = pool_create(2); /* the default kernels */
    rng r;
    rng_init(&r, 22);
    att_case_every(70, 2, 1, 2, 0, &r, p1, p2, 13); /* differences for every 13th input */
    att_case_every(67, 3, 3, 2, 20, &r, p1, p2, 11);
    pool_free(p2);
}

TEST(grad_attention_accumulates) {
    /* dq/dk/dv are added to: two calls give twice one call */
    enum { T = 4, H = 2, G = 1, Dh = 4 };
    rng r;
    rng_init(&r, 21);
    float q[T * H * Dh], k[T * G * Dh], v[T * G * Dh], d[T * H * Dh];
    float dq[T * H * Dh] = {0}, dk[T * G * Dh] = {0}, dv[T * G * Dh] = {0};
    float dq1[T * H * Dh] = {0}, dk1[T * G * Dh] = {0}, dv1[T * G * Dh] = {0};
    float scr[2 * T * T]; /* attention_backward_scratch(T) for T < 32 */
    gc_fill(q, T * H * Dh, -1, 1, &r), gc_fill(k, T * G * Dh, -1, 1, &r);
    gc_fill(v, T * G * Dh, -1, 1, &r), gc_fill(d, T * H * Dh, -1, 1, &r);
    attention_backward(NULL, dq1, dk1, dv1, d, q, k, v, T, H, G, Dh, 0, scr);
    attention_backward(NULL, dq, dk, dv, d, q, k, v, T, H, G, Dh, 0, scr);
    attention_backward(NULL, dq, dk, dv, d, q, k, v, T, H, G, Dh, 0, scr);
    for (int i = 0; i < T * H * Dh; i++) CHECK_NEAR(dq[i], 2 * dq1[i], 1e-6);
    for (int i = 0; i < T * G * Dh; i++) CHECK_NEAR(dk[i], 2 * dk1[i], 1e-6);
    for (int i = 0; i < T * G * Dh; i++) CHECK_NEAR(dv[i], 2 * dv1[i], 1e-6);
}

/* attention_backward_dims: value heads of another width than the q/k heads
 * and a softmax scale of its own (latent attention: Dk = nope + rope, Dv =
 * v_head_dim, scale with YaRN's mscale), against differences of a double
 * forward; 1 and 2 threads bit-identical. */
typedef struct dims_ctx {
    const double *q, *k, *v, *R; /* [T][H*Dk], [T][G*Dk], [T][G*Dv], [T][H*Dv] */
    int T, H, G, Dk, Dv;
    double scale;
} dims_ctx;

static double dims_loss(void *vc) {
    const dims_ctx *c = vc;
    int T = c->T, H = c->H, G = c->G, Dk = c->Dk, Dv = c->Dv;
    double L = 0, sc[64]; /* T <= 64 */
    for (int h = 0; h < H; h++) {
        int g = h / (H / G);
        for (int i = 0; i < T; i++) {
            double mx = -INFINITY, Z = 0;
            for (int j = 0; j <= i; j++) {
                double s = 0;
                for (int d = 0; d < Dk; d++) s += c->q[(i * H + h) * Dk + d] * c->k[(j * G + g) * Dk + d];
                sc[j] = s * c->scale;
                mx = fmax(mx, sc[j]);
            }
            for (int j = 0; j <= i; j++) Z += (sc[j] = exp(sc[j] - mx));
            for (int d = 0; d < Dv; d++) {
                double o = 0;
                for (int j = 0; j <= i; j++) o += sc[j] / Z * c->v[(j * G + g) * Dv + d];
                L += c->R[(i * H + h) * Dv + d] * o;
            }
        }
    }
    return L;
}

static void dims_case(int T, int H, int G, int Dk, int Dv, float scale, rng *r, pool *p1, pool *p2) {
    int64_t QN = (int64_t)T * H * Dk, KN = (int64_t)T * G * Dk, VN = (int64_t)T * G * Dv,
            ON = (int64_t)T * H * Dv;
    float *q = gc_falloc(QN), *k = gc_falloc(KN), *v = gc_falloc(VN), *dout = gc_falloc(ON);
    float *dq = gc_falloc(QN), *dk = gc_falloc(KN), *dv = gc_falloc(VN);
    float *dq2 = gc_falloc(QN), *dk2 = gc_falloc(KN), *dv2 = gc_falloc(VN);
    double *qd = gc_dalloc(QN), *kd = gc_dalloc(KN), *vd = gc_dalloc(VN), *Rd = gc_dalloc(ON);
    double *gq = gc_dalloc(QN), *gk = gc_dalloc(KN), *gv = gc_dalloc(VN);
    gc_fill(q, QN, -1.5f, 1.5f, r);
    gc_fill(k, KN, -1.5f, 1.5f, r);
    gc_fill(v, VN, -1, 1, r);
    gc_fill(dout, ON, -1, 1, r);
    gc_widen(qd, q, QN), gc_widen(kd, k, KN), gc_widen(vd, v, VN), gc_widen(Rd, dout, ON);
    dims_ctx c = {qd, kd, vd, Rd, T, H, G, Dk, Dv, scale > 0 ? scale : 1.0 / sqrt((double)Dk)};
    gc_fd_every(dims_loss, &c, qd, QN, 1e-6, gq, 1);
    gc_fd_every(dims_loss, &c, kd, KN, 1e-6, gk, 1);
    gc_fd_every(dims_loss, &c, vd, VN, 1e-6, gv, 1);
    float *scr = gc_falloc(2 * attention_backward_scratch(T));
    attn_bwd_dims d = {T, H, G, Dk, Dv, 0, scale};
    attention_backward_dims(p1, dq, dk, dv, NULL, dout, q, k, v, NULL, &d, scr);
    attention_backward_dims(p2, dq2, dk2, dv2, NULL, dout, q, k, v, NULL, &d, scr);
    char what[96];
    snprintf(what, sizeof what, "dims: dq T=%d H=%d G=%d Dk=%d Dv=%d scale=%g", T, H, G, Dk, Dv,
             scale);
    GC_CHECK(what, dq, gq, QN, 1e-5);
    GC_CHECK("dims: dk", dk, gk, KN, 1e-5);
    GC_CHECK("dims: dv", dv, gv, VN, 1e-5);
    CHECK(memcmp(dq, dq2, (size_t)QN * 4) == 0);
    CHECK(memcmp(dk, dk2, (size_t)KN * 4) == 0);
    CHECK(memcmp(dv, dv2, (size_t)VN * 4) == 0);
    free(q), free(k), free(v), free(dout), free(dq), free(dk), free(dv), free(dq2), free(dk2);
    free(dv2), free(qd), free(kd), free(vd), free(Rd), free(gq), free(gk), free(gv), free(scr);
}

TEST(grad_attention_dims) {
    kern_pools kp;
    kern_pools_init(&kp);
    rng r;
    rng_init(&r, 25);
    for (int i = 0; i < ISA_COUNT; i++) {
        pool *p1 = kp.one[i], *p2 = kp.two[i];
        if (!p1) continue;
        dims_case(7, 4, 4, 12, 6, 0.4f, &r, p1, p2); /* latent attention: Dv < Dk, own scale */
        dims_case(6, 4, 2, 4, 10, 0.0f, &r, p1, p2); /* GQA, Dv > Dk, 1/sqrt(Dk) */
        dims_case(1, 2, 2, 6, 3, 0.2f, &r, p1, p2);  /* one token */
    }
    kern_pools_free(&kp);
}
