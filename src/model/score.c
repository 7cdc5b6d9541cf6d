/*
 * score.c - perplexity, KL divergence and top-1 agreement per position
 * (score.h).
 */
#include "moe_score.h"

#include <math.h>
#include <stdlib.h>

static double row_max(const float *x, int V) {
    double m = x[0];
    for (int i = 1; i < V; i++)
        if (x[i] > m) m = x[i];
    return m;
}

/* log sum exp(x - m) */
static double row_lse(const float *x, int V, double m) {
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)x[i] - m);
    return log(s);
}

double moe_score_logprob(const float *logits, int V, int target) {
    double m = row_max(logits, V);
    return (double)logits[target] - m - row_lse(logits, V, m);
}

double moe_score_kl(const float *p_logits, const float *q_logits, int V) {
    double mp = row_max(p_logits, V), mq = row_max(q_logits, V);
    double lp = mp + row_lse(p_logits, V, mp), lq = mq + row_lse(q_logits, V, mq);
    double kl = 0;
    for (int i = 0; i < V; i++) {
        double logp = (double)p_logits[i] - lp;
        double p = exp(logp);
        if (p > 0) kl += p * (logp - ((double)q_logits[i] - lq));
    }
    return kl > 0 ? kl : 0; /* rounding can leave -1e-17 for equal rows */
}

int moe_score_argmax(const float *logits, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

void moe_score_add(moe_score_acc *a, const float *logits, const float *ref_logits, int V, int next) {
    a->nll -= moe_score_logprob(logits, V, next);
    if (ref_logits) {
        a->ref_nll -= moe_score_logprob(ref_logits, V, next);
        double kl = moe_score_kl(ref_logits, logits, V);
        a->kl_sum += kl;
        if (kl > a->kl_max) a->kl_max = kl;
        if (a->kl && a->n < a->cap) a->kl[a->n] = kl;
        a->top1_same += moe_score_argmax(logits, V) == moe_score_argmax(ref_logits, V);
    }
    a->n++;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

double moe_score_kl_quantile(moe_score_acc *a, double q) {
    int64_t n = a->n < a->cap ? a->n : a->cap;
    if (!a->kl || n == 0) return 0;
    qsort(a->kl, (size_t)n, sizeof *a->kl, cmp_double);
    int64_t i = (int64_t)(q * (double)(n - 1) + 0.5);
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return a->kl[i];
}
