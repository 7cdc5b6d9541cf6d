/*
 * losses.c - the training losses: next-token cross-entropy and the MoE
 * router's balancing losses, each with its value and its gradient.
 *
 * Cross-entropy over rows [n][V] with targets y (y < 0: ignored):
 *   loss_sum = sum_{t: y_t >= 0} (logsumexp(z_t) - z_t[y_t])
 *   dz_t     = (softmax(z_t) - onehot(y_t)) * grad_scale
 * The caller divides loss_sum by the total count and passes
 * grad_scale = 1/total count, so micro-batches add up to the mean.
 *
 * Balancing losses of one MoE layer over its T tokens (docs/TRAINING.md),
 * router logits l [T][E], top-k choices idx [T][K]; p_t = softmax(l_t), or
 * for a sigmoid router p_t[e] = sigmoid(l_t[e]) (not normalized: P need not
 * sum to 1). P_e = (1/T) sum_t p_t[e] (mean probability).
 *   aux (Switch / GShard):  L_aux = alpha * E * sum_e f_e * P_e
 *       f_e = count_e / (T*K), count_e = tokens whose idx contains e, so
 *       sum_e f_e = 1; f is treated as a constant (not differentiable).
 *       Balanced routing gives L_aux = alpha. dL/dp_t[e] = alpha E f_e / T.
 *   router z-loss (ST-MoE): L_z = beta * (1/T) sum_t (logsumexp_e l_t[e])^2
 *       (on the raw logits whatever the score function).
 *       dL/dl_t[e] = beta * 2 lse_t * softmax(l_t)[e] / T.
 *   KL to uniform: L_kl = gamma * KL(U || P) = gamma * sum_e (1/E) log((1/E) / P_e)
 *       (>= 0 for softmax, 0 iff P is uniform; may be negative for sigmoid).
 *       dL/dp_t[e] = -gamma / (E T P_e).
 *       (P_e is floored at 1e-12 so a dead expert gives a large, finite
 *       gradient.)
 * From dL/dp_t to dL/dl_t: softmax: dl = p (g - p.g); sigmoid:
 * dl = g * s (1 - s).
 */
#include <math.h>

#include <string.h>

#include "base/err.h"
#include "kernels/kernels.h"
#include "kernels/vmath.h"
#include "train/grad_ops.h"

/* --------------------------------------------------------- cross-entropy */

int64_t cross_entropy_count(const int32_t *targets, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += targets[i] >= 0;
    return c;
}

/* Rows per block of the loss sum: blocks depend on n only, and their
 * partial sums are added in block order, so the loss has the same bits for
 * any thread count. */
#define CE_MAX_BLOCKS 64

typedef struct ce_ctx {
    float *dz;
    const float *z;
    const int32_t *y;
    int64_t n, rows_per_block;
    int V;
    float scale;
    const kern_cfg *k; /* the pool's kernel choice */
    double part[CE_MAX_BLOCKS];
} ce_ctx;

/* One row: returns logsumexp(z) - z[y] (0 for an ignored row) and writes
 * dz = (softmax(z) - onehot(y)) * scale. The exponentials are computed
 * once, in double (vmath_exp_sum_f64), so the loss is exact to ~1e-15;
 * the gradient is their f32 rounding times scale / sum. */
static double ce_row(const kern_cfg *k, float *dz, const float *z, int32_t y, int V, float scale) {
    if (y < 0) {
        if (dz) memset(dz, 0, sizeof(float) * (size_t)V);
        return 0.0;
    }
    double zy = z[y], mx = vmath_max(k, z, V);
    double Z = vmath_exp_sum_f64(k, dz, z, mx, V); /* z is read before dz is written */
    if (dz) {
        vmath_scale(k, dz, (float)(scale / Z), V);
        dz[y] -= scale;
    }
    return mx + log(Z) - zy;
}

static void ce_blocks(void *vc, int64_t b0, int64_t b1, int tid) {
    ce_ctx *c = vc;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t0 = b * c->rows_per_block, t1 = t0 + c->rows_per_block < c->n ? t0 + c->rows_per_block : c->n;
        double L = 0;
        for (int64_t t = t0; t < t1; t++)
            L += ce_row(c->k, c->dz ? c->dz + t * c->V : NULL, c->z + t * c->V, c->y[t], c->V, c->scale);
        c->part[b] = L;
    }
}

int cross_entropy_pool(pool *p, float *dlogits, const float *logits, const int32_t *targets,
                       int64_t n, int V, float grad_scale, double *loss_sum, int64_t *count,
                       moe_err *err) {
    if (V <= 0) return moe_fail(err, "cross_entropy: vocabulary size %d must be positive", V);
    for (int64_t t = 0; t < n; t++)
        if (targets[t] >= V)
            return moe_fail(err, "cross_entropy: target %d at row %lld is outside the vocabulary [0, %d)",
                            targets[t], (long long)t, V);
    ce_ctx c = {dlogits, logits,     targets,    n, (n + CE_MAX_BLOCKS - 1) / CE_MAX_BLOCKS,
                V,       grad_scale, kern_of(p), {0}};
    int64_t blocks = n > 0 ? (n + c.rows_per_block - 1) / c.rows_per_block : 0;
    pool_for(p, blocks, 1, ce_blocks, &c);
    double L = 0;
    for (int64_t b = 0; b < blocks; b++) L += c.part[b];
    *loss_sum = L;
    *count = cross_entropy_count(targets, n);
    return 0;
}

int cross_entropy(float *dlogits, const float *logits, const int32_t *targets, int64_t n, int V,
                  float grad_scale, double *loss_sum, int64_t *count, moe_err *err) {
    return cross_entropy_pool(NULL, dlogits, logits, targets, n, V, grad_scale, loss_sum, count, err);
}

/* ------------------------------------------------------ router probabilities */

/* Rows of at most this many experts keep their probabilities on the stack:
 * one exp per element (the losses below used to redo the row's softmax per
 * element and per pass, which made them a serial hot spot of the step). */
#define ROW_MAX 1024

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* p[E] = p_t for one row: softmax (max-subtracted, sum in double) or
 * sigmoid per element. */
static void row_probs(double *p, const float *l, int E, moe_score score) {
    if (score == MOE_SCORE_SIGMOID) {
        for (int e = 0; e < E; e++) p[e] = sigm(l[e]);
        return;
    }
    double mx = l[0], Z = 0;
    for (int e = 1; e < E; e++)
        if (l[e] > mx) mx = l[e];
    for (int e = 0; e < E; e++) Z += p[e] = exp((double)l[e] - mx);
    for (int e = 0; e < E; e++) p[e] /= Z;
}

/* dl[E] += dL/dl from g[E] = dL/dp for one row with probabilities p (see
 * the top of the file). */
static void prob_backward(float *dl, const double *g, const double *p, const float *l, int E,
                          moe_score score) {
    if (score == MOE_SCORE_SIGMOID) {
        for (int e = 0; e < E; e++) dl[e] += (float)(g[e] * p[e] * sigm(-(double)l[e]));
        return;
    }
    double pg = 0;
    for (int e = 0; e < E; e++) pg += p[e] * g[e];
    for (int e = 0; e < E; e++) dl[e] += (float)(p[e] * (g[e] - pg));
}

/* Rows wider than ROW_MAX: the probabilities from the row's constants,
 * element by element (no storage). */
typedef struct row_stats {
    double mx, lz;
} row_stats;

static row_stats row_stats_of(const float *l, int E, moe_score score) {
    row_stats r = {0, 0};
    if (score == MOE_SCORE_SIGMOID) return r; /* per element, no row constants */
    r.mx = l[0];
    for (int e = 1; e < E; e++)
        if (l[e] > r.mx) r.mx = l[e];
    double Z = 0;
    for (int e = 0; e < E; e++) Z += exp((double)l[e] - r.mx);
    r.lz = log(Z);
    return r;
}

static double prob(const float *l, int e, moe_score score, const row_stats *r) {
    if (score == MOE_SCORE_SIGMOID) return sigm(l[e]);
    return exp((double)l[e] - r->mx - r->lz);
}

/* Sum over one row of g[e] p[e] (returned) and, if dl, prob_backward. */
static double row_apply(float *dl, const double *g, const float *l, int E, moe_score score) {
    double L = 0;
    if (E <= ROW_MAX) {
        double p[ROW_MAX];
        row_probs(p, l, E, score);
        for (int e = 0; e < E; e++) L += g[e] * p[e];
        if (dl) prob_backward(dl, g, p, l, E, score);
        return L;
    }
    row_stats r = row_stats_of(l, E, score);
    double pg = 0;
    for (int e = 0; e < E; e++) {
        double pe = prob(l, e, score, &r);
        L += g[e] * pe;
        pg += pe * g[e];
    }
    if (dl)
        for (int e = 0; e < E; e++) {
            double pe = prob(l, e, score, &r);
            dl[e] += score == MOE_SCORE_SIGMOID ? (float)(g[e] * pe * sigm(-(double)l[e]))
                                                : (float)(pe * (g[e] - pg));
        }
    return L;
}

/* P[e] += p_t[e] for one row */
static void row_add_probs(double *P, const float *l, int E, moe_score score) {
    if (E <= ROW_MAX) {
        double p[ROW_MAX];
        row_probs(p, l, E, score);
        for (int e = 0; e < E; e++) P[e] += p[e];
        return;
    }
    row_stats r = row_stats_of(l, E, score);
    for (int e = 0; e < E; e++) P[e] += prob(l, e, score, &r);
}

/* ------------------------------------------------------- balancing losses */

double aux_loss(float *dlogits, const float *logits, const int *idx, int T, int E, int K,
                moe_score score, float alpha, double *work) {
    if (T <= 0 || E <= 0 || K <= 0) return 0.0;
    double *g = work; /* f_e, then dL/dp_t[e] = alpha E f_e / T */
    for (int e = 0; e < E; e++) g[e] = 0;
    for (int64_t i = 0; i < (int64_t)T * K; i++)
        if (idx[i] >= 0 && idx[i] < E) g[idx[i]] += 1.0;
    double L = 0;
    for (int e = 0; e < E; e++) g[e] = g[e] / ((double)T * K) * alpha * E / T;
    for (int64_t t = 0; t < T; t++) L += row_apply(dlogits ? dlogits + t * E : NULL, g, logits + t * E, E, score);
    return L;
}

double z_loss(float *dlogits, const float *logits, int T, int E, float beta) {
    if (T <= 0 || E <= 0) return 0.0;
    double L = 0;
    for (int64_t t = 0; t < T; t++) {
        const float *l = logits + t * E;
        double mx = l[0], Z = 0;
        for (int e = 1; e < E; e++)
            if (l[e] > mx) mx = l[e];
        for (int e = 0; e < E; e++) Z += exp((double)l[e] - mx);
        double lse = mx + log(Z);
        L += lse * lse;
        if (dlogits) {
            double c = (double)beta * 2.0 * lse / T;
            for (int e = 0; e < E; e++) dlogits[t * E + e] += (float)(c * exp((double)l[e] - lse));
        }
    }
    return beta * L / T;
}

double kl_uniform_loss(float *dlogits, const float *logits, int T, int E, moe_score score,
                       float gamma, double *work) {
    if (T <= 0 || E <= 0) return 0.0;
    double *P = work, *g = work + E;
    for (int e = 0; e < E; e++) P[e] = 0;
    for (int64_t t = 0; t < T; t++) row_add_probs(P, logits + t * E, E, score);
    double L = 0, u = 1.0 / E;
    for (int e = 0; e < E; e++) {
        P[e] = fmax(P[e] / T, 1e-12);
        L += u * log(u / P[e]);
        g[e] = -(double)gamma / ((double)E * T * P[e]);
    }
    if (dlogits)
        for (int64_t t = 0; t < T; t++) row_apply(dlogits + t * E, g, logits + t * E, E, score);
    return gamma * L;
}
