/*
 * grad_router.c - routing for training: the backward of token-choice
 * routing weights (softmax or sigmoid scores, optional top-k
 * renormalization and routed scaling, as moe_ffn.c computes them), noisy
 * top-k gating (Shazeer et al. 2017), expert-choice routing (Zhou et al.
 * 2022), hash routing (Roller et al. 2021) and the selection-bias update
 * of sigmoid routers (DeepSeek-V3). Definitions as docs/TRAINING.md and
 * src/model/router.c (the forward) state them.
 *
 * Token choice, per token, with s = scores over E experts, idx the chosen
 * K (fixed: selection, and any selection bias, is not differentiable):
 *   w_j = rs * s[idx_j] / S     S = sum_j s[idx_j] if renormalized, else 1
 * Backward, with dw'_j = rs * dweights_j:
 *   softmax, renormalized:  w_j/rs is a softmax over the chosen logits, so
 *       dlogits[idx_m] = (w_m/rs) (dw'_m - sum_j (w_j/rs) dw'_j), 0 elsewhere
 *   softmax, plain:         ds = dw' at idx (0 elsewhere);
 *       dlogits_e = s_e (ds_e - sum_f s_f ds_f) for every e
 *   sigmoid:                ds[idx_m] = (dw'_m - sum_j (w_j/rs) dw'_j) / S
 *       (plain: ds = dw'); dlogits[idx_m] = ds_m s_m (1 - s_m)
 *   top-k then softmax (gpt_oss): the softmax, renormalized case
 * All in double from the f32 logits.
 */
#include <math.h>
#include <string.h>

#include "train/grad_ops.h"

/* ----------------------------------------------------------- token choice */

static double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }

/* max and sum of exp(l - max) over l[E] */
static void softmax_stats(const float *l, int E, double *mx, double *Z) {
    double m = l[0];
    for (int e = 1; e < E; e++)
        if (l[e] > m) m = l[e];
    double z = 0.0;
    for (int e = 0; e < E; e++) z += exp((double)l[e] - m);
    *mx = m;
    *Z = z;
}

static float eff_scale(float rs) { return rs == 0.0f ? 1.0f : rs; }

/* Score of expert e alone (softmax needs the row's stats). */
static double score_of(const float *logits, int e, moe_score score, double mx, double Z) {
    return score == MOE_SCORE_SIGMOID ? sigmoid_d(logits[e]) : exp((double)logits[e] - mx) / Z;
}

/* gpt_oss's top-k-then-softmax: a softmax over the chosen logits, which is
 * the softmax of all of them renormalized over the chosen */
static void topk_softmax_as(moe_score *score, int *norm_topk) {
    if (*score != MOE_SCORE_TOPK_SOFTMAX) return;
    *score = MOE_SCORE_SOFTMAX;
    *norm_topk = 1;
}

void router_weights(float *w, const float *logits, const int *idx, int E, int K, moe_score score,
                    int norm_topk, float routed_scale) {
    topk_softmax_as(&score, &norm_topk);
    double rs = eff_scale(routed_scale), mx = 0, Z = 1, S = 0;
    if (score == MOE_SCORE_SOFTMAX) softmax_stats(logits, E, &mx, &Z);
    for (int j = 0; j < K; j++) S += score_of(logits, idx[j], score, mx, Z);
    double div = norm_topk && S > 0 ? S : 1.0;
    for (int j = 0; j < K; j++) w[j] = (float)(rs * score_of(logits, idx[j], score, mx, Z) / div);
}

void router_backward(float *dlogits, const float *dweights, const float *logits, const int *idx,
                     int E, int K, moe_score score, int norm_topk, float routed_scale) {
    topk_softmax_as(&score, &norm_topk);
    double rs = eff_scale(routed_scale), mx = 0, Z = 1;
    if (score == MOE_SCORE_SOFTMAX) softmax_stats(logits, E, &mx, &Z);
    double S = 0, sdw = 0; /* sum of chosen scores; sum of score * dw' */
    for (int j = 0; j < K; j++) {
        double s = score_of(logits, idx[j], score, mx, Z);
        S += s;
        sdw += s * rs * dweights[j];
    }
    int renorm = norm_topk && S > 0;
    if (score == MOE_SCORE_SOFTMAX && renorm) {
        double dot = sdw / S; /* sum_j (w_j/rs) dw'_j */
        for (int m = 0; m < K; m++) {
            double wm = score_of(logits, idx[m], score, mx, Z) / S;
            dlogits[idx[m]] += (float)(wm * (rs * dweights[m] - dot));
        }
    } else if (score == MOE_SCORE_SOFTMAX) {
        /* every logit moves every score: - s_e * sum_f s_f ds_f, plus the
         * chosen ones' own s_m ds_m */
        for (int e = 0; e < E; e++) dlogits[e] += (float)(-exp((double)logits[e] - mx) / Z * sdw);
        for (int m = 0; m < K; m++) {
            double sm = score_of(logits, idx[m], score, mx, Z);
            dlogits[idx[m]] += (float)(sm * rs * dweights[m]);
        }
    } else {
        double dot = renorm ? sdw / S : 0.0, div = renorm ? S : 1.0;
        for (int m = 0; m < K; m++) {
            double l = logits[idx[m]];
            double ds = (rs * dweights[m] - dot) / div;
            dlogits[idx[m]] += (float)(ds * sigmoid_d(l) * sigmoid_d(-l));
        }
    }
}

/* ------------------------------------------------------------ noisy top-k */

/* softplus(x) = log(1 + e^x), without overflow for large x */
static double softplus_d(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }

void noisy_logits_forward(float *noisy, float *eps, const float *clean, const float *raw, int T,
                          int E, rng *r) {
    int64_t n = (int64_t)T * E;
    rng_normal_fill(r, eps, n, 0.0f, 1.0f);
    for (int64_t i = 0; i < n; i++)
        noisy[i] = (float)((double)clean[i] + (double)eps[i] * softplus_d(raw[i]));
}

void noisy_logits_backward(float *dclean, float *draw, const float *dnoisy, const float *eps,
                           const float *raw, int T, int E) {
    int64_t n = (int64_t)T * E;
    for (int64_t i = 0; i < n; i++) {
        if (dclean) dclean[i] += dnoisy[i];
        if (draw) draw[i] += (float)((double)dnoisy[i] * eps[i] * sigmoid_d(raw[i]));
    }
}

/* ----------------------------------------------------------- expert choice */

int expert_choice_capacity(int T, int K, int E, float capacity_factor) {
    if (T <= 0 || E <= 0 || K <= 0 || !(capacity_factor > 0)) return 0;
    double c = (double)capacity_factor * T * K / E; /* the forward's expression */
    return c >= T ? T : (int)c;
}

/* Token a before token b for expert e: higher score, then lower index. NaN
 * ranks last. */
static int ec_better(const float *col, int64_t stride, int a, int b) {
    float va = col[a * stride], vb = col[b * stride];
    if (va != va) va = -INFINITY;
    if (vb != vb) vb = -INFINITY;
    return va > vb || (va == vb && a < b);
}

/* Sift a[i] down the max-heap a[0..n). */
static void int_sift(int *a, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && a[l] > a[m]) m = l;
        if (r < n && a[r] > a[m]) m = r;
        if (m == i) return;
        int t = a[i];
        a[i] = a[m];
        a[m] = t;
        i = m;
    }
}

/* Ascending in-place heap sort of a[n] (qsort may allocate). */
static void sort_ints(int *a, int n) {
    for (int i = n / 2 - 1; i >= 0; i--) int_sift(a, n, i);
    for (int end = n - 1; end > 0; end--) {
        int t = a[0];
        a[0] = a[end];
        a[end] = t;
        int_sift(a, end, 0);
    }
}

/* Min-heap (root = least preferred) of n token ids. */
static void ec_sift(int *h, int n, int i, const float *col, int64_t stride) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && ec_better(col, stride, h[m], h[l])) m = l;
        if (r < n && ec_better(col, stride, h[m], h[r])) m = r;
        if (m == i) return;
        int t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

int expert_choice_route(int *tok, float *weight, float *scores, const float *logits, int T, int E,
                        int C) {
    if (T <= 0 || E <= 0 || C < 0 || C > T) return -1;
    for (int64_t t = 0; t < T; t++) { /* row softmax, in place when aliased */
        const float *l = logits + t * E;
        double mx, Z;
        softmax_stats(l, E, &mx, &Z);
        float *s = scores + t * E;
        for (int e = 0; e < E; e++) s[e] = (float)(exp((double)l[e] - mx) / Z);
    }
    for (int e = 0; e < E && C > 0; e++) {
        const float *col = scores + e;
        int *h = tok + (int64_t)e * C;
        for (int i = 0; i < C; i++) h[i] = i;
        for (int i = C / 2 - 1; i >= 0; i--) ec_sift(h, C, i, col, E);
        for (int t = C; t < T; t++)
            if (ec_better(col, E, t, h[0])) {
                h[0] = t;
                ec_sift(h, C, 0, col, E);
            }
        sort_ints(h, C); /* token order, as the forward lists pairs */
        for (int i = 0; i < C; i++) weight[(int64_t)e * C + i] = col[(int64_t)h[i] * E];
    }
    return 0;
}

void expert_choice_backward(float *dlogits, const float *dweight, const int *tok,
                            const float *scores, int T, int E, int C, float *work) {
    memset(work, 0, (size_t)T * (size_t)E * sizeof(float));
    for (int e = 0; e < E; e++)
        for (int i = 0; i < C; i++) {
            int t = tok[(int64_t)e * C + i];
            work[(int64_t)t * E + e] += dweight[(int64_t)e * C + i];
        }
    for (int64_t t = 0; t < T; t++) { /* softmax backward per token */
        const float *s = scores + t * E, *ds = work + t * E;
        double c = 0;
        for (int e = 0; e < E; e++) c += (double)s[e] * ds[e];
        if (c == 0.0) {
            int any = 0;
            for (int e = 0; e < E && !any; e++) any = ds[e] != 0.0f;
            if (!any) continue; /* no expert took this token */
        }
        for (int e = 0; e < E; e++) dlogits[t * E + e] += (float)((double)s[e] * (ds[e] - c));
    }
}

/* --------------------------------------------------------- selection bias */

void selection_bias_update(float *bias, const int64_t *load, int E, int64_t n_pairs, float rate) {
    if (E <= 0) return;
    double mean = (double)n_pairs / E;
    for (int e = 0; e < E; e++) {
        double d = mean - (double)load[e];
        bias[e] += d > 0 ? rate : d < 0 ? -rate : 0.0f;
    }
}
