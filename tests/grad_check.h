/*
 * grad_check.h - helpers shared by the tests/test_grad_*.c files: random
 * tensors, central finite differences of a double-precision loss, and a
 * gradient comparison that reports the worst element.
 *
 * The pattern: a test writes its op's forward in double, a scalar loss
 * L = sum(out * R) for a fixed random R, and holds the library's f32
 * backward (fed dout = R) to dL/dparam by central differences in double.
 */
#ifndef MOE_TESTS_GRAD_CHECK_H
#define MOE_TESTS_GRAD_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/rng.h"
#include "test.h"

/* Uniform in [lo, hi). */
static inline void gc_fill(float *v, int64_t n, float lo, float hi, rng *r) {
    for (int64_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * (float)rng_uniform01(r);
}

static inline void gc_widen(double *d, const float *f, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = f[i];
}

static inline float *gc_falloc(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }
static inline double *gc_dalloc(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }

/* grad[i] = (L(p + h e_i) - L(p - h e_i)) / 2h for i < n, p[] restored.
 * gc_fd_every does only every stride-th i (for big cases) and sets the
 * others to NaN, which gc_check skips. */
typedef double (*gc_loss_fn)(void *ctx);
static inline void gc_fd_every(gc_loss_fn loss, void *ctx, double *p, int64_t n, double h,
                               double *grad, int64_t stride) {
    for (int64_t i = 0; i < n; i++) {
        if (i % stride) {
            grad[i] = NAN;
            continue;
        }
        double keep = p[i];
        p[i] = keep + h;
        double lp = loss(ctx);
        p[i] = keep - h;
        double lm = loss(ctx);
        p[i] = keep;
        grad[i] = (lp - lm) / (2 * h);
    }
}
static inline void gc_fd(gc_loss_fn loss, void *ctx, double *p, int64_t n, double h, double *grad) {
    gc_fd_every(loss, ctx, p, n, h, grad, 1);
}

/* Each |got - want| <= rtol * (|want| + 0.01 * max|want|) (+ atol), NaN
 * wants skipped. Fails
 * the running test with the worst element otherwise. Returns 1 if good. */
static inline int gc_check_at(const char *file, int line, const char *what, const float *got,
                              const double *want, int64_t n, double rtol, double atol) {
    double mx = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(want[i])) mx = fmax(mx, fabs(want[i]));
    double worst = 0;
    int64_t wi = -1;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(want[i])) continue; /* not computed (gc_fd_every) */
        double err = fabs((double)got[i] - want[i]);
        double tol = rtol * (fabs(want[i]) + 0.01 * mx) + atol;
        if (err <= tol) continue;
        double ratio = tol > 0 ? err / tol : INFINITY;
        if (wi < 0 || !(ratio <= worst)) {
            worst = ratio;
            wi = i;
        }
    }
    if (wi >= 0) {
        test_fail_at(file, line, "%s[%lld]: got %.9g want %.9g (%.3g x tolerance, rtol %g)", what,
                     (long long)wi, (double)got[wi], want[wi], worst, rtol);
        return 0;
    }
    return 1;
}
#define GC_CHECK(what, got, want, n, rtol) gc_check_at(__FILE__, __LINE__, what, got, want, n, rtol, 0)
#define GC_CHECK_ATOL(what, got, want, n, rtol, atol) \
    gc_check_at(__FILE__, __LINE__, what, got, want, n, rtol, atol)

#endif
