/*
 * moe_score.h - how well a model predicts a token sequence, and how far its
 * next-token distributions are from a reference model's (`moe ppl`):
 * perplexity, KL(reference || model), top-1 agreement. The per-row maths is
 * done in double with a max-shifted log-sum-exp, so a row of large logits
 * neither overflows nor loses the small probabilities KL is made of.
 */
#ifndef MOE_SCORE_H
#define MOE_SCORE_H

#include <stdint.h>

/* log softmax(logits)[target] for one row of V logits. */
double moe_score_logprob(const float *logits, int V, int target);

/* KL(P || Q) in nats, P = softmax(p_logits), Q = softmax(q_logits). >= 0. */
double moe_score_kl(const float *p_logits, const float *q_logits, int V);

/* Index of the largest logit (the first one on ties). */
int moe_score_argmax(const float *logits, int V);

/* Running totals over scored positions. kl holds each position's KL when a
 * reference is scored (for percentiles); the caller sizes it (cap). */
typedef struct moe_score_acc {
    int64_t n;           /* positions scored */
    double nll;          /* sum of -log p(next token) under the model */
    double ref_nll;      /* the same under the reference */
    double kl_sum, kl_max;
    int64_t top1_same;   /* positions where both argmaxes agree */
    double *kl;          /* [cap] per-position KL, or NULL */
    int64_t cap;
} moe_score_acc;

/* Score one position: logits of the model (and of the reference, or NULL)
 * for the prediction of token `next`. */
void moe_score_add(moe_score_acc *a, const float *logits, const float *ref_logits, int V, int next);

/* The q-quantile (0..1) of the recorded KL values (sorts a->kl in place). */
double moe_score_kl_quantile(moe_score_acc *a, double q);

#endif
