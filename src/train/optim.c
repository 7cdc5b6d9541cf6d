/*
 * optim.c - AdamW, gradient clipping, the NaN guard and the LR schedule
 * (formulas in optim.h).
 *
 * Threading without losing determinism: the flat index range [0, n) is cut
 * into at most MAX_BLOCKS fixed blocks (their size depends on n only). Each
 * block's sum of squares goes to its own slot, and the slots are added in
 * block order, so the norm has the same bits for any thread count; the
 * update is elementwise, so any split gives the same result.
 */
#include "train/optim.h"

#include <math.h>
#include <string.h>

#include "base/err.h"
#include "kernels/kernels.h"

#define MIN_BLOCK (1 << 16) /* elements per block at least */
#define MAX_BLOCKS 4096

static int64_t block_size(int64_t n) {
    int64_t b = (n + MAX_BLOCKS - 1) / MAX_BLOCKS;
    return b < MIN_BLOCK ? MIN_BLOCK : b;
}

/* First tensor whose end is past element i (tensors ascending). */
static int first_tensor(const optim_tensor *ts, int nt, int64_t i) {
    int lo = 0, hi = nt;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ts[mid].offset + ts[mid].size <= i)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Calls body(tensor, a, b) for each tensor's part inside [i0, i1). */
#define FOR_TENSOR_PARTS(ts, nt, i0, i1, BODY)                                      \
    for (int ti_ = first_tensor(ts, nt, i0); ti_ < (nt) && (ts)[ti_].offset < (i1); ti_++) { \
        const optim_tensor *tn = &(ts)[ti_];                                        \
        int64_t a = tn->offset > (i0) ? tn->offset : (i0);                          \
        int64_t b = tn->offset + tn->size < (i1) ? tn->offset + tn->size : (i1);    \
        BODY                                                                        \
    }

/* ------------------------------------------------------------------ norm */

typedef struct norm_ctx {
    const float *g;
    int64_t n, bs;
    const optim_tensor *ts;
    int nt;
    double *part; /* [blocks] */
    int avx512;   /* the pool's kernel choice is ISA_AVX512 */
} norm_ctx;

/* sum of g[i]^2 in double, in the order of the AVX-512 loop (32 partial
 * sums by i mod 32, a tail into the first 8, then lane sums), so that both
 * ISAs give the same bits. The products of two floats are exact in double,
 * so FMA or not makes no difference. */
static double sumsq_ref(const float *g, int64_t n) {
    double acc[32] = {0}, r = 0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int u = 0; u < 32; u++) acc[u] += (double)g[i + u] * (double)g[i + u];
    for (int64_t j = 0; i + j < n; j++) acc[j % 8] += (double)g[i + j] * (double)g[i + j];
    for (int l = 0; l < 8; l++) r += (acc[l] + acc[8 + l]) + (acc[16 + l] + acc[24 + l]);
    return r;
}

static double sumsq(int avx512, const float *g, int64_t n) {
    return avx512 ? avx512_sumsq(g, n) : sumsq_ref(g, n);
}

static void norm_blocks(void *vc, int64_t b0, int64_t b1, int tid) {
    const norm_ctx *c = vc;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t i0 = blk * c->bs, i1 = i0 + c->bs < c->n ? i0 + c->bs : c->n;
        double s = 0;
        FOR_TENSOR_PARTS(c->ts, c->nt, i0, i1, { s += sumsq(c->avx512, c->g + a, b - a); })
        c->part[blk] = s;
    }
}

double grad_global_norm(pool *p, const float *grads, int64_t n, const optim_tensor *tensors,
                        int n_tensors) {
    if (n <= 0) return 0.0;
    double part[MAX_BLOCKS];
    int64_t bs = block_size(n), nb = (n + bs - 1) / bs;
    norm_ctx c = {grads, n, bs, tensors, n_tensors, part, kern_of(p)->isa == ISA_AVX512};
    pool_for(p, nb, 1, norm_blocks, &c);
    double s = 0;
    for (int64_t b = 0; b < nb; b++) s += part[b];
    return sqrt(s);
}

/* ---------------------------------------------------------------- update */

typedef struct adam_ctx {
    float *p, *m, *v;
    float *g;
    int64_t n, bs;
    const optim_tensor *ts;
    int nt;
    int clear; /* set g to 0 once read (elements outside the tensors too) */
    float coef, b1, b2, omb1, omb2, eps, decay_mul, step_size, bc2_sqrt;
    int avx512; /* the pool's kernel choice is ISA_AVX512 */
} adam_ctx;

/* Elements [a, b) of one tensor; its moments are gap elements earlier. */
static void adam_range(const adam_ctx *c, int64_t a, int64_t b, int64_t gap, float dm) {
    float *m = c->m - gap, *v = c->v - gap; /* m[i], v[i]: element i's moments */
    if (c->avx512) {
        avx512_adam(c->p + a, m + a, v + a, c->g + a, b - a, c->clear, c->coef, dm, c->b2,
                    c->omb1, c->omb2, c->eps, c->step_size, c->bc2_sqrt);
        return;
    }
    for (int64_t i = a; i < b; i++) {
        float g = c->g[i] * c->coef;
        float pv = c->p[i] * dm;
        float mv = m[i] + c->omb1 * (g - m[i]);
        float vv = v[i] * c->b2 + c->omb2 * g * g;
        float denom = sqrtf(vv) / c->bc2_sqrt + c->eps;
        m[i] = mv;
        v[i] = vv;
        c->p[i] = pv - (c->step_size * mv) / denom; /* torch addcdiv order */
        if (c->clear) c->g[i] = 0.0f;
    }
}

static void adam_blocks(void *vc, int64_t b0, int64_t b1, int tid) {
    const adam_ctx *c = vc;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t i0 = blk * c->bs, i1 = i0 + c->bs < c->n ? i0 + c->bs : c->n, done = i0;
        FOR_TENSOR_PARTS(c->ts, c->nt, i0, i1, {
            if (c->clear && a > done) memset(c->g + done, 0, sizeof(float) * (size_t)(a - done));
            adam_range(c, a, b, tn->state_gap, tn->decay ? c->decay_mul : 1.0f);
            done = b;
        })
        if (c->clear && i1 > done) memset(c->g + done, 0, sizeof(float) * (size_t)(i1 - done));
    }
}

static int adamw_run(pool *p, float *params, float *grads, int clear, float *m, float *v,
                     int64_t n, const optim_tensor *tensors, int n_tensors, int64_t t, double lr,
                     const adamw_opts *o, double *grad_norm, moe_err *err) {
    if (t < 1) return moe_fail(err, "adamw: step %lld must be >= 1", (long long)t);
    int64_t end = 0, state_end = 0;
    for (int i = 0; i < n_tensors; i++) {
        const optim_tensor *tn = &tensors[i];
        if (tn->offset < end || tn->size < 0 || tn->size > n - tn->offset)
            return moe_fail(err,
                            "adamw: tensor %d (%s): range [%lld, +%lld) overlaps the previous one "
                            "or leaves the %lld parameters",
                            i, tn->name ? tn->name : "?", (long long)tn->offset,
                            (long long)tn->size, (long long)n);
        if (tn->state_gap < 0 || tn->offset - tn->state_gap < state_end)
            return moe_fail(err, "adamw: tensor %d (%s): state gap %lld puts its moments over "
                                 "the previous tensor's",
                            i, tn->name ? tn->name : "?", (long long)tn->state_gap);
        end = tn->offset + tn->size;
        state_end = end - tn->state_gap;
    }
    double norm = grad_global_norm(p, grads, n, tensors, n_tensors);
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm)) {
        for (int i = 0; i < n_tensors; i++) {
            const optim_tensor *tn = &tensors[i];
            for (int64_t j = 0; j < tn->size; j++) {
                float g = grads[tn->offset + j];
                if (!isfinite(g))
                    return moe_fail(err, "adamw: gradient of tensor %d (%s) is %s at element %lld",
                                    i, tn->name ? tn->name : "?", isnan(g) ? "NaN" : "Inf",
                                    (long long)j);
            }
        }
        return moe_fail(err, "adamw: gradient norm is not finite (%g)", norm);
    }
    /* the clip coefficient in f32 as torch's clip_grad_norm_ computes it
     * (max_norm / (total_norm + 1e-6) on f32 tensors, clamped to 1) */
    float coef = 1.0f;
    if (o->clip_norm > 0) {
        float cc = (float)o->clip_norm / ((float)norm + 1e-6f);
        if (cc < 1.0f) coef = cc;
    }
    /* scalars in double as PyTorch's Python floats, rounded to f32 where
     * torch hands them to an f32 tensor op */
    double bc1 = 1.0 - pow(o->beta1, (double)t);
    double bc2 = 1.0 - pow(o->beta2, (double)t);
    adam_ctx c = {params,
                  m,
                  v,
                  grads,
                  n,
                  block_size(n),
                  tensors,
                  n_tensors,
                  clear,
                  coef,
                  (float)o->beta1,
                  (float)o->beta2,
                  (float)(1.0 - o->beta1),
                  (float)(1.0 - o->beta2),
                  (float)o->eps,
                  (float)(1.0 - lr * o->weight_decay),
                  (float)(lr / bc1),
                  (float)sqrt(bc2),
                  kern_of(p)->isa == ISA_AVX512};
    if (n > 0) pool_for(p, (n + c.bs - 1) / c.bs, 1, adam_blocks, &c);
    return 0;
}

int adamw_step(pool *p, float *params, const float *grads, float *m, float *v, int64_t n,
               const optim_tensor *tensors, int n_tensors, int64_t t, double lr,
               const adamw_opts *o, double *grad_norm, moe_err *err) {
    /* clear == 0: grads are only read */
    return adamw_run(p, params, (float *)grads, 0, m, v, n, tensors, n_tensors, t, lr, o,
                     grad_norm, err);
}

int adamw_step_clear(pool *p, float *params, float *grads, float *m, float *v, int64_t n,
                     const optim_tensor *tensors, int n_tensors, int64_t t, double lr,
                     const adamw_opts *o, double *grad_norm, moe_err *err) {
    return adamw_run(p, params, grads, 1, m, v, n, tensors, n_tensors, t, lr, o, grad_norm, err);
}

/* -------------------------------------------------------------- schedule */

double lr_at(const lr_schedule *s, int64_t step) {
    if (step < 0) step = 0;
    if (s->warmup_steps > 0 && step < s->warmup_steps)
        return s->peak_lr * (double)(step + 1) / (double)s->warmup_steps;
    if (step >= s->total_steps) return s->min_lr;
    double r = (double)(step - s->warmup_steps) / (double)(s->total_steps - s->warmup_steps);
    return s->min_lr + 0.5 * (1.0 + cos(M_PI * r)) * (s->peak_lr - s->min_lr);
}
