/*
 * sample.c - pick the next token from a row of logits: greedy, or
 * temperature -> top-k -> top-p (nucleus) -> a draw from a seeded PRNG, in
 * the order transformers applies them. Everything the sampler needs is
 * allocated in moe_sampler_new; moe_sample allocates nothing, so it can sit
 * in the decode loop.
 *
 * Selection never sorts the whole vocabulary: top-k keeps a min-heap of the
 * K best, and top-p alone first drops tokens too unlikely to ever be in the
 * nucleus (see sample_nucleus), then finds the nucleus by quickselect on
 * probability mass (expected linear time).
 */
#include <math.h>
#include <stdlib.h>

#include "moe.h"
#include "base/err.h"
#include "base/rng.h"

/* ---------------------------------------------------------------- sampler */

struct moe_sampler {
    moe_sampler_opts o;
    int vocab;      /* V */
    float *p;       /* [V] exp((logit - max) / T), unnormalized */
    int *idx;       /* [V] candidate token ids */
    rng rng;        /* draws (base/rng.h: xoshiro256** seeded by splitmix64) */
};

int moe_sampler_new(moe_sampler **out, const moe_sampler_opts *o, int vocab, moe_err *err) {
    *out = NULL;
    if (!o) return moe_fail(err, "sampler: no options given");
    if (vocab <= 0) return moe_fail(err, "sampler: vocab must be positive (%d)", vocab);
    if (!(o->temp >= 0) || isinf(o->temp))
        return moe_fail(err, "sampler: temperature must be a finite number >= 0 (%g)",
                        (double)o->temp);
    if (o->top_k < 0) return moe_fail(err, "sampler: top_k must be >= 0, 0 = off (%d)", o->top_k);
    if (!(o->top_p > 0 && o->top_p <= 1))
        return moe_fail(err, "sampler: top_p must be in (0, 1], 1 = off (%g)", (double)o->top_p);
    moe_sampler *s = calloc(1, sizeof *s);
    if (!s) return moe_fail(err, "sampler: out of memory");
    s->o = *o;
    s->vocab = vocab;
    if (s->o.top_k >= vocab) s->o.top_k = 0; /* keeping everything = off */
    s->p = malloc((size_t)vocab * sizeof *s->p);
    s->idx = malloc((size_t)vocab * sizeof *s->idx);
    if (!s->p || !s->idx) {
        moe_sampler_free(s);
        return moe_fail(err, "sampler: out of memory for vocab %d", vocab);
    }
    rng_init(&s->rng, o->seed);
    *out = s;
    return 0;
}

void moe_sampler_free(moe_sampler *s) {
    if (!s) return;
    free(s->p);
    free(s->idx);
    free(s);
}

/* ------------------------------------------------------------- selection */

/* NaN ranks below everything, so a broken logit is never chosen over a
 * number. */
static float rank_val(float v) { return v != v ? -INFINITY : v; }

/* Is token a preferred to token b? Higher value first, lower id on ties:
 * a total order, so every path below is deterministic. */
static int better(const float *v, int a, int b) {
    float va = rank_val(v[a]), vb = rank_val(v[b]);
    return va > vb || (va == vb && a < b);
}

/* Sift h[i] down a min-heap of n entries whose root is the least preferred. */
static void sift_down(int *h, int n, int i, const float *v) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && better(v, h[m], h[l])) m = l;
        if (r < n && better(v, h[m], h[r])) m = r;
        if (m == i) return;
        int t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Strictly greater keeps the lowest index on ties; NaN never compares
 * greater, so it never wins (all NaN / -inf: token 0). */
static int argmax(const float *v, int n) {
    int best = 0;
    float bv = rank_val(v[0]);
    for (int i = 1; i < n; i++)
        if (v[i] > bv) bv = v[best = i];
    return best;
}

/* The K best ids of v[0..V), written to idx[0..K) best first.
 * O(V log K): a min-heap holds the K best seen so far; a later id with a
 * value equal to the heap's worst is not better (its id is higher), so one
 * strict comparison with a cached threshold screens almost every token. */
static void select_topk(const float *v, int V, int K, int *idx) {
    for (int i = 0; i < K; i++) idx[i] = i;
    for (int i = K / 2 - 1; i >= 0; i--) sift_down(idx, K, i, v);
    float thr = rank_val(v[idx[0]]);
    for (int i = K; i < V; i++) {
        if (v[i] > thr) {
            idx[0] = i;
            sift_down(idx, K, 0, v);
            thr = rank_val(v[idx[0]]);
        }
    }
    /* heap sort: moving the worst to the back leaves the best first */
    for (int n = K - 1; n > 0; n--) {
        int t = idx[0];
        idx[0] = idx[n];
        idx[n] = t;
        sift_down(idx, n, 0, v);
    }
}

/* Reorder idx[0..n) so that idx[0..m) are the fewest most likely tokens
 * whose p adds up to `want`; return m and their sum in *mass. Quickselect
 * on mass, expected O(n): partition around a pivot; if the better side
 * already reaches want, the nucleus lies inside it, else take all of it
 * (and the pivot) and look for the rest on the worse side. */
static int nucleus_select(const float *p, int *idx, int n, double want, double *mass) {
    int lo = 0, hi = n; /* idx[0..lo) taken, the boundary lies in [lo, hi) */
    double taken = 0;
    while (hi - lo > 16) {
        /* pivot: median of three, moved to hi - 1 */
        int a = lo, b = lo + (hi - lo) / 2, c = hi - 1, t;
        if (better(p, idx[b], idx[a])) t = idx[a], idx[a] = idx[b], idx[b] = t;
        if (better(p, idx[c], idx[b])) t = idx[b], idx[b] = idx[c], idx[c] = t;
        if (better(p, idx[b], idx[a])) t = idx[a], idx[a] = idx[b], idx[b] = t;
        t = idx[b], idx[b] = idx[c], idx[c] = t;
        const int piv = idx[hi - 1];
        int j = lo;
        double left = 0;
        for (int i = lo; i < hi - 1; i++) {
            if (better(p, idx[i], piv)) {
                left += p[idx[i]];
                t = idx[i], idx[i] = idx[j], idx[j] = t;
                j++;
            }
        }
        idx[hi - 1] = idx[j];
        idx[j] = piv;
        if (taken + left >= want) {
            hi = j;
        } else {
            taken += left + p[piv];
            lo = j + 1;
            if (taken >= want) {
                *mass = taken;
                return lo;
            }
        }
    }
    /* a few left: insertion sort, best first, and take until want */
    for (int i = lo + 1; i < hi; i++) {
        int x = idx[i], j = i;
        for (; j > lo && better(p, x, idx[j - 1]); j--) idx[j] = idx[j - 1];
        idx[j] = x;
    }
    for (int i = lo; i < hi; i++) {
        taken += p[idx[i]];
        if (taken >= want) {
            *mass = taken;
            return i + 1;
        }
    }
    *mass = taken;
    return hi; /* rounding: everything */
}

/* Draw one of idx[0..n) with probability proportional to p[idx[j]]; mass
 * is their sum. */
static int draw(moe_sampler *s, const int *idx, int n, double mass) {
    double u = rng_uniform01(&s->rng) * mass, c = 0;
    int last = idx[0];
    for (int j = 0; j < n; j++) {
        float pj = s->p[idx[j]];
        if (pj <= 0) continue;
        c += pj;
        last = idx[j];
        if (u < c) return idx[j];
    }
    return last; /* rounding left u at the very top */
}

/* Top-p over the whole vocabulary, p[] unnormalized with sum Z. A token
 * with p < cutoff = (1 - top_p) Z / (V - 1) can never be in the nucleus:
 * all of them together weigh less than (1 - top_p) Z, so the tokens at or
 * above the cutoff (which are the most likely ones) already reach top_p Z.
 * Only those go to nucleus_select. */
static int sample_nucleus(moe_sampler *s, double Z) {
    const int V = s->vocab;
    const double want = (double)s->o.top_p * Z;
    const float cutoff = V > 1 ? (float)((1.0 - s->o.top_p) * Z / (V - 1)) : 0.0f;
    int n = 0;
    double kept = 0;
    for (int i = 0; i < V; i++) {
        if (s->p[i] >= cutoff && s->p[i] > 0) {
            s->idx[n++] = i;
            kept += s->p[i];
        }
    }
    if (n == 0 || kept < want) { /* rounding: fall back to every token */
        n = 0;
        for (int i = 0; i < V; i++) s->idx[n++] = i;
    }
    double c;
    int m = nucleus_select(s->p, s->idx, n, want, &c);
    return draw(s, s->idx, m, c);
}

int moe_sample(moe_sampler *s, const float *logits) {
    const int V = s->vocab;
    if (s->o.temp == 0) return argmax(logits, V);

    int best = argmax(logits, V);
    float mx = rank_val(logits[best]);
    /* +inf beats any temperature: the first +inf token is certain; all
     * -inf / NaN: nothing to weigh */
    if (isinf(mx)) return best;
    const float inv_t = 1.0f / s->o.temp;
    if (isinf(inv_t)) return best; /* a subnormal temperature is greedy */

    if (s->o.top_k > 0) {
        const int K = s->o.top_k;
        select_topk(logits, V, K, s->idx);
        double Z = 0;
        for (int j = 0; j < K; j++) {
            int t = s->idx[j];
            float v = rank_val(logits[t]);
            s->p[t] = expf((v - mx) * inv_t);
            Z += s->p[t];
        }
        int n = K;
        if (s->o.top_p < 1) { /* idx is sorted best first */
            double want = (double)s->o.top_p * Z, c = 0;
            for (n = 0; n < K;) {
                c += s->p[s->idx[n++]];
                if (c >= want) break;
            }
            Z = c;
        }
        return draw(s, s->idx, n, Z);
    }

    double Z = 0;
    for (int i = 0; i < V; i++) {
        s->p[i] = expf((rank_val(logits[i]) - mx) * inv_t);
        Z += s->p[i];
    }
    if (s->o.top_p < 1) return sample_nucleus(s, Z);
    /* no truncation: draw over the whole vocabulary */
    double u = rng_uniform01(&s->rng) * Z, c = 0;
    int last = best;
    for (int i = 0; i < V; i++) {
        if (s->p[i] <= 0) continue;
        c += s->p[i];
        last = i;
        if (u < c) return i;
    }
    return last;
}
