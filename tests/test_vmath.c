/*
 * test_vmath.c - the vectorized math of src/kernels/vmath.h against libm in
 * double: exp within 2 ulp of the exact value over a sweep of every 1021st
 * f32 in [-110, 95] plus the edges (+-inf, NaN, +-0, denormal inputs, the
 * overflow and underflow thresholds), results in the denormal range
 * measured in denormal ulps; max / exp-sum / softmax / SwiGLU and its
 * backward against their scalar references on odd lengths (tails) and wide
 * ranges; each on every ISA the CPU has (on the scalar one the dispatch is
 * the reference itself).
 */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#include "kernels/vmath.h"
#include "kern_pool.h"
#include "test.h"

static uint32_t rng_next(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Uniform in [-1, 1). */
static float rng_f(uint32_t *s) { return (float)(rng_next(s) >> 8) / 8388608.0f - 1.0f; }

static float from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}
static uint32_t to_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* |y - exact| in units of the f32 spacing at exact (2^-149 below 2^-126;
 * at the top of the range, the spacing of FLT_MAX). */
static double ulp_err(float y, double exact) {
    if (isinf(exact) && exact > 0) return isinf(y) && y > 0 ? 0.0 : 1e9;
    if (exact > FLT_MAX) return isinf(y) ? 0.0 : fabs((double)y - exact) / ldexp(1.0, 104);
    if (isinf(y) || isnan(y)) return 1e9;
    int e;
    frexp(exact, &e); /* exact = m 2^e, 0.5 <= m < 1 */
    double spacing = exact < ldexp(1.0, -126) ? ldexp(1.0, -149) : ldexp(1.0, e - 24);
    return fabs((double)y - exact) / spacing;
}

static void exp_ulp_on(const kern_cfg *K) {
    /* the sweep: every 1021st bit pattern of the negative floats down to
     * -110 and of the positive floats up to 95 (~2.1 million values) */
    static float x[4096], y[4096];
    double worst = 0;
    float worst_x = 0;
    int n = 0, bad_special = 0;
    uint32_t neg_end = to_bits(-110.0f), pos_end = to_bits(95.0f);
    for (int pass = 0; pass < 2; pass++) {
        uint32_t b0 = pass ? 0u : 0x80000000u, b1 = pass ? pos_end : neg_end;
        for (uint32_t b = b0; b < b1; b += 1021) {
            x[n++] = from_bits(b);
            if (n == 4096 || b + 1021 >= b1) {
                vmath_exp(K, y, x, n);
                for (int i = 0; i < n; i++) {
                    double e = ulp_err(y[i], exp((double)x[i]));
                    if (e > worst) worst = e, worst_x = x[i];
                }
                n = 0;
            }
        }
    }
    CHECK_MSG(worst <= 2.0, "exp on %s: %.3f ulp at x = %.9g", isa_name(K->isa), worst, (double)worst_x);
    if (getenv("MOE_TEST_VERBOSE")) fprintf(stderr, "  exp: worst %.3f ulp at x = %.9g\n", worst, (double)worst_x);
    /* edges, including the thresholds and their neighbours */
    float sp[] = {-INFINITY, INFINITY, 0.0f, -0.0f, 1e-45f, -1e-45f, 1e-38f, -1e-38f,
                  88.7228317f, 88.7228394f, 88.72284f, 88.8f, 89.0f, 1e30f, FLT_MAX,
                  -87.3365479f, -87.34f, -103.278931f, -103.972f, -104.0f, -104.1f, -150.0f,
                  -1e30f, -FLT_MAX, 0.5f, -0.5f, 1.0f, 0.34657359f, -0.34657359f};
    int ns = (int)(sizeof sp / sizeof sp[0]);
    float ys[64];
    vmath_exp(K, ys, sp, ns);
    for (int i = 0; i < ns; i++) {
        double e = ulp_err(ys[i], exp((double)sp[i]));
        if (e > 2.0) {
            fprintf(stderr, "  exp(%.9g) = %.9g, want %.9g\n", (double)sp[i], (double)ys[i],
                    exp((double)sp[i]));
            bad_special++;
        }
    }
    CHECK_EQ_INT(bad_special, 0);
    float nan_in[3] = {NAN, -NAN, 1.0f}, nan_out[3];
    vmath_exp(K, nan_out, nan_in, 3);
    CHECK(isnan(nan_out[0]) && isnan(nan_out[1]) && nan_out[2] == expf(1.0f));
    CHECK(ys[0] == 0.0f && ys[1] == INFINITY && ys[2] == 1.0f && ys[3] == 1.0f);
    /* in place, and every tail length */
    for (int len = 0; len <= 40; len++) {
        float a[40], b[40];
        uint32_t seed = 7 + (uint32_t)len;
        for (int i = 0; i < len; i++) a[i] = b[i] = rng_f(&seed) * 80;
        vmath_exp(K, a, a, len);
        int bad = 0;
        for (int i = 0; i < len; i++) bad += ulp_err(a[i], exp((double)b[i])) > 2.0;
        CHECK_MSG(bad == 0, "len %d: %d off", len, bad);
    }
}

/* every ISA this CPU has (the AVX-512 and AVX2 exp are the same polynomial) */
TEST(vmath_exp_ulp) {
    for (int s = 0; s < ISA_COUNT; s++) {
        const kern_cfg *k = kernels_cfg((isa)s, 0, 0);
        if (k) exp_ulp_on(k);
    }
}

static void rows_on(const kern_cfg *K) {
    uint32_t seed = 99;
    enum { NMAX = 300 };
    float x[NMAX] = {0}, y1[NMAX], y2[NMAX], g[NMAX] = {0}, u[NMAX] = {0}, dh[NMAX] = {0};
    float a1[NMAX], b1[NMAX], h1[NMAX], a2[NMAX], b2[NMAX], h2[NMAX];
    for (int n = 0; n <= NMAX; n += (n < 40 ? 1 : 37)) {
        for (int i = 0; i < n; i++) {
            x[i] = rng_f(&seed) * 30;
            g[i] = rng_f(&seed) * (i % 7 == 0 ? 120 : 8); /* some saturate the sigmoid */
            u[i] = rng_f(&seed) * 3;
            dh[i] = rng_f(&seed);
        }
        /* max is exact */
        CHECK(vmath_max(K, x, n) == vmath_max_ref(x, n));
        /* exp-sum: elements within 2 ulp of exp(x - m) (the subtraction
         * rounds the same in both), the sum within 1e-6 relative */
        float m = vmath_max_ref(x, n);
        float s1 = vmath_exp_sum(K, y1, x, m, n), s2 = vmath_exp_sum_ref(y2, x, m, n);
        int bad = 0;
        for (int i = 0; i < n; i++) bad += ulp_err(y1[i], exp((double)(x[i] - m))) > 2.0;
        CHECK_MSG(bad == 0, "exp_sum n=%d: %d off", n, bad);
        CHECK_MSG(fabs((double)s1 - s2) <= 1e-6 * s2, "exp_sum n=%d: %.9g vs %.9g", n, s1, s2);
        /* the double version: the sum within 1e-14 of libm's, the
         * elements its f32 rounding (+-1 ulp: double rounding), also
         * without an output */
        double d1 = vmath_exp_sum_f64(K, y1, x, m, n), d2 = vmath_exp_sum_f64_ref(y2, x, m, n);
        CHECK_MSG(fabs(d1 - d2) <= 1e-14 * d2, "exp_sum_f64 n=%d: %.17g vs %.17g", n, d1, d2);
        CHECK(vmath_exp_sum_f64(K, NULL, x, m, n) == d1);
        bad = 0;
        for (int i = 0; i < n; i++) bad += ulp_err(y1[i], (double)y2[i]) > 1.0;
        CHECK_MSG(bad == 0, "exp_sum_f64 n=%d: %d elements off", n, bad);
        /* SwiGLU: within 4e-7 relative of the reference formula (the exp
         * differs by <= 2 ulp; 1 + e and the division damp it) */
        vmath_swiglu(K, h1, g, u, n);
        vmath_swiglu_ref(h2, g, u, n);
        bad = 0;
        for (int i = 0; i < n; i++) bad += fabs((double)h1[i] - h2[i]) > 4e-7 * fabs((double)h2[i]) + 1e-30;
        CHECK_MSG(bad == 0, "swiglu n=%d: %d off", n, bad);
        /* in place on g, as silu_mul does */
        memcpy(a1, g, sizeof(float) * (size_t)n);
        vmath_swiglu(K, a1, a1, u, n);
        CHECK(n == 0 || memcmp(a1, h1, sizeof(float) * (size_t)n) == 0);
        /* backward: against the double reference within 2e-6 relative of
         * each output's scale; h identical to the forward's */
        vmath_swiglu_backward(K, a1, b1, h1, dh, g, u, n);
        vmath_swiglu_backward_ref(a2, b2, h2, dh, g, u, n);
        bad = 0;
        for (int i = 0; i < n; i++) {
            double sg = fabs((double)dh[i] * u[i]) * (1.0 + fabs((double)g[i]));
            double su = fabs((double)dh[i] * g[i]);
            bad += fabs((double)a1[i] - a2[i]) > 2e-6 * sg + 1e-30;
            bad += fabs((double)b1[i] - b2[i]) > 2e-6 * su + 1e-30;
        }
        CHECK_MSG(bad == 0, "swiglu backward n=%d: %d off", n, bad);
        float hf[NMAX];
        vmath_swiglu(K, hf, g, u, n);
        CHECK(n == 0 || memcmp(hf, h1, sizeof(float) * (size_t)n) == 0);
        vmath_swiglu_backward(K, a1, b1, NULL, dh, g, u, n); /* h optional */
        CHECK(n == 0 || memcmp(hf, h1, sizeof(float) * (size_t)n) == 0);
    }
    /* saturated SwiGLU: silu(-200) = -0, silu(200) = 200, no NaN */
    float gs[2] = {-200.0f, 200.0f}, us[2] = {1, 1}, d1[2] = {1, 1}, dgs[2], dus[2], hs[2];
    vmath_swiglu_backward(K, dgs, dus, hs, d1, gs, us, 2);
    CHECK(fabsf(hs[0]) < 1e-30f && hs[1] == 200.0f);
    CHECK(fabsf(dgs[0]) < 1e-30f && dgs[1] == 1.0f && fabsf(dus[0]) < 1e-30f && dus[1] == 200.0f);
}

TEST(vmath_rows_match_reference) {
    for (int s = 0; s < ISA_COUNT; s++) {
        const kern_cfg *k = kernels_cfg((isa)s, 0, 0);
        if (k) rows_on(k);
    }
}

/* softmax and silu_mul (kernels.h) go through vmath on AVX-512 and AVX2: hold every
 * ISA's result to the scalar reference ISA's. */
TEST(vmath_softmax_silu_all_isas) {
    uint32_t seed = 5;
    enum { N = 333 };
    float x[N], g[N], u[N], ref_x[N], ref_g[N];
    for (int i = 0; i < N; i++) {
        x[i] = rng_f(&seed) * 40;
        g[i] = rng_f(&seed) * 10;
        u[i] = rng_f(&seed);
    }
    for (int n = 1; n <= N; n += 47) {
        const kern_cfg *scalar = kernels_cfg(ISA_SCALAR, 0, 0);
        memcpy(ref_x, x, sizeof x);
        memcpy(ref_g, g, sizeof g);
        softmax(scalar, ref_x, n);
        silu_mul(scalar, ref_g, u, n);
        for (int s = 0; s < ISA_COUNT; s++) {
            const kern_cfg *k = kernels_cfg((isa)s, 0, 0);
            if (!k) continue;
            float a[N], b[N];
            memcpy(a, x, sizeof x);
            memcpy(b, g, sizeof g);
            softmax(k, a, n);
            silu_mul(k, b, u, n);
            int bad = 0;
            for (int i = 0; i < n; i++) {
                bad += fabs((double)a[i] - ref_x[i]) > 1e-6 * ref_x[i] + 1e-38;
                bad += fabs((double)b[i] - ref_g[i]) > 4e-7 * fabs((double)ref_g[i]) + 1e-30;
            }
            CHECK_MSG(bad == 0, "%s n=%d: %d off", isa_name((isa)s), n, bad);
        }
    }
}
