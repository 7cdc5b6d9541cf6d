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

#include "base/err.h"
#include "train/grad_ops.h"

/* --------------------------------------------------------- cross-entropy */

int64_t cross_entropy_count(const int32_t *targets, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += targets[i] >= 0;
    return c;
}

int cross_entropy(float *dlogits, const float *logits, const int32_t *targets, int64_t n, int V,
                  float grad_scale, double *loss_sum, int64_t *count, moe_err *err) {
    if (V <= 0) return moe_fail(err, "cross_entropy: vocabulary size %d must be positive", V);
    for (int64_t t = 0; t < n; t++)
        if (targets[t] >= V)
            return moe_fail(err, "cross_entropy: target %d at row %lld is outside the vocabulary [0, %d)",
                            targets[t], (long long)t, V);
    double L = 0;
    int64_t cnt = 0;
    for (int64_t t = 0; t < n; t++) {
        const float *z = logits + t * V;
        float *dz = dlogits ? dlogits + t * V : NULL;
        int32_t y = targets[t];
        if (y < 0) {
            if (dz)
                for (int v = 0; v < V; v++) dz[v] = 0.0f;
            continue;
        }
        double mx = z[0];
        for (int v = 1; v < V; v++)
            if (z[v] > mx) mx = z[v];
        double Z = 0;
        for (int v = 0; v < V; v++) Z += exp((double)z[v] - mx);
        double lse = mx + log(Z), zy = z[y];
        L += lse - zy;
        cnt++;
        if (dz) /* z[v] is read before dz[v] is written: in place is fine */
            for (int v = 0; v < V; v++)
                dz[v] = (float)((exp((double)z[v] - lse) - (v == y)) * grad_scale);
    }
    *loss_sum = L;
    *count = cnt;
    return 0;
}

/* ------------------------------------------------------ router probabilities */

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* Per-row constants of the softmax: max and log of the sum. */
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

/* p_t[e] */
static double prob(const float *l, int e, moe_score score, const row_stats *r) {
    if (score == MOE_SCORE_SIGMOID) return sigm(l[e]);
    return exp((double)l[e] - r->mx - r->lz);
}

/* dl[E] += dL/dl from g[E] = dL/dp for one row (see the top of the file). */
static void prob_backward(float *dl, const double *g, const float *l, int E, moe_score score) {
    if (score == MOE_SCORE_SIGMOID) {
        for (int e = 0; e < E; e++) dl[e] += (float)(g[e] * sigm(l[e]) * sigm(-(double)l[e]));
        return;
    }
    row_stats r = row_stats_of(l, E, score);
    double pg = 0;
    for (int e = 0; e < E; e++) pg += prob(l, e, score, &r) * g[e];
    for (int e = 0; e < E; e++) dl[e] += (float)(prob(l, e, score, &r) * (g[e] - pg));
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
    for (int64_t t = 0; t < T; t++) {
        const float *l = logits + t * E;
        row_stats r = row_stats_of(l, E, score);
        for (int e = 0; e < E; e++) L += g[e] * prob(l, e, score, &r);
        if (dlogits) prob_backward(dlogits + t * E, g, l, E, score);
    }
    return L;
}

double z_loss(float *dlogits, const float *logits, int T, int E, float beta) {
    if (T <= 0 || E <= 0) return 0.0;
    double L = 0;
    for (int64_t t = 0; t < T; t++) {
        const float *l = logits + t * E;
        row_stats r = row_stats_of(l, E, MOE_SCORE_SOFTMAX);
        double lse = r.mx + r.lz;
        L += lse * lse;
        if (dlogits) {
            double c = (double)beta * 2.0 * lse / T;
            for (int e = 0; e < E; e++)
                dlogits[t * E + e] += (float)(c * exp((double)l[e] - lse));
        }
    }
    return beta * L / T;
}

double kl_uniform_loss(float *dlogits, const float *logits, int T, int E, moe_score score,
                       float gamma, double *work) {
    if (T <= 0 || E <= 0) return 0.0;
    double *P = work, *g = work + E;
    for (int e = 0; e < E; e++) P[e] = 0;
    for (int64_t t = 0; t < T; t++) {
        const float *l = logits + t * E;
        row_stats r = row_stats_of(l, E, score);
        for (int e = 0; e < E; e++) P[e] += prob(l, e, score, &r);
    }
    double L = 0, u = 1.0 / E;
    for (int e = 0; e < E; e++) {
        P[e] = fmax(P[e] / T, 1e-12);
        L += u * log(u / P[e]);
        g[e] = -(double)gamma / ((double)E * T * P[e]);
    }
    if (dlogits)
        for (int64_t t = 0; t < T; t++) prob_backward(dlogits + t * E, g, logits + t * E, E, score);
    return gamma * L;
}
