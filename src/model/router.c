/*
 * router.c - from router logits to (token, weight) pairs sorted by expert.
 * The kinds (docs/TRAINING.md states each exactly):
 *
 *   token choice  scores = softmax(z) or sigmoid(z); each token takes the K
 *                 largest scores (+ selection bias, which never enters the
 *                 weights; ties go to the lower expert); weights are the
 *                 chosen scores, renormalized to sum 1 when norm_topk, times
 *                 routed_scale. Top-k softmax (gpt_oss): the K largest
 *                 logits, then a softmax over those K alone (the scores
 *                 row keeps them, 0 for the others). With a capacity factor cf > 0 and a session
 *                 in training mode, expert e keeps its first ceil(cf*N*K/E)
 *                 pairs in token order; the rest are dropped (the token
 *                 keeps its residual). Inference and evaluation are dropless.
 *                 Group-limited (deepseek): the E experts form n_group
 *                 groups of E/n_group; each group is scored by its best
 *                 selection score (MOE_GROUP_MAX) or the sum of its best two
 *                 (MOE_GROUP_TOP2_SUM), the topk_group best groups are kept
 *                 (ties -> lower group) and the top-k runs over their experts
 *                 only; the weights are the chosen experts' scores as above.
 *   hash          expert = ((id * 2654435761) mod 2^32) mod E, weight 1
 *                 (with K > 1 the next experts, cyclically, also weight 1).
 *   expert choice expert e takes the int(cf*N*K/E) tokens with the largest
 *                 softmax score p[:, e] (ties: earlier token), weight p. It
 *                 looks at all N tokens of the call, so it is not causal:
 *                 it serves training and whole-sequence evaluation.
 *
 * Out: s->pair_token/pair_weight [P], s->expert_count [E+1] (cnt[e] = first
 * pair of expert e, cnt[E] = P), s->sel_expert/sel_weight [T][K] (the token
 * choice before any drop; for aux-loss statistics). Returns P.
 */
#include "model/model.h"

#include <math.h>
#include <string.h>

/* Top-k of choice[E] (descending; ties -> lower index), k <= E. */
static void topk(const float *choice, int E, int k, int *idx) {
    for (int j = 0; j < k; j++) idx[j] = -1;
    for (int e = 0; e < E; e++) {
        float v = choice[e];
        int j = k;
        while (j > 0 && (idx[j - 1] < 0 || v > choice[idx[j - 1]])) j--;
        if (j >= k) continue;
        for (int m = k - 1; m > j; m--) idx[m] = idx[m - 1];
        idx[j] = e;
    }
}

/* Group-limited routing: the selection scores sel[E] of experts outside the
 * topk_group best groups become -inf (in place); kept[G] (if not NULL) gets
 * 1 for the kept groups, 0 for the others. */
static void group_limit(const moe_layer_config *lc, float *sel, uint8_t *kept) {
    int G = lc->n_group, n = lc->n_experts / G, keep[1024];
    float gs[1024];
    for (int g = 0; g < G; g++) {
        const float *x = sel + (int64_t)g * n;
        float a = -INFINITY, b = -INFINITY; /* best, second best */
        for (int i = 0; i < n; i++) {
            if (x[i] > a) b = a, a = x[i];
            else if (x[i] > b) b = x[i];
        }
        gs[g] = lc->group == MOE_GROUP_MAX ? a : a + b;
    }
    topk(gs, G, lc->topk_group, keep);
    unsigned char on[1024] = {0};
    for (int j = 0; j < lc->topk_group; j++) on[keep[j]] = 1;
    if (kept) memcpy(kept, on, (size_t)G);
    for (int e = 0; e < lc->n_experts; e++)
        if (!on[e / n]) sel[e] = -INFINITY;
}

int router_hash_expert(int32_t token_id, int E, int slot) {
    uint32_t h = (uint32_t)((uint64_t)(uint32_t)token_id * 2654435761u);
    return (int)((h + (uint32_t)slot) % (uint32_t)E);
}

typedef struct route_ctx {
    moe_session *s;
    const moe_layer_config *lc;
    const layer_w *lw;
} route_ctx;

/* Per token: scores in place of the logits, then top-k and weights. */
static void route_rows(void *ctx, int64_t t0, int64_t t1, int tid) {
    route_ctx *r = ctx;
    moe_session *s = r->s;
    const moe_layer_config *lc = r->lc;
    int E = lc->n_experts, K = lc->top_k;
    float choice[1024];
    const kern_cfg *k = kern_of(s->pool);
    for (int64_t t = t0; t < t1; t++) {
        float *p = s->router_logits + t * E;
        int *ix = s->sel_expert + t * K;
        float *w = s->sel_weight + t * K;
        if (lc->score == MOE_SCORE_TOPK_SOFTMAX) {
            topk(p, E, K, ix);
            float m = p[ix[0]], sum = 0.0f;
            for (int j = 0; j < K; j++) sum += (w[j] = expf(p[ix[j]] - m));
            for (int j = 0; j < K; j++) w[j] /= sum;
            for (int e = 0; e < E; e++) p[e] = 0.0f;
            for (int j = 0; j < K; j++) p[ix[j]] = w[j];
            if (lc->routed_scale != 1.0f && lc->routed_scale != 0.0f)
                for (int j = 0; j < K; j++) w[j] *= lc->routed_scale;
            continue;
        }
        if (lc->score == MOE_SCORE_SIGMOID) {
            for (int e = 0; e < E; e++) p[e] = 1.0f / (1.0f + expf(-p[e]));
        } else {
            softmax(k, p, E);
        }
        if (lc->kind == MOE_ROUTE_HASH) {
            for (int j = 0; j < K; j++) {
                ix[j] = router_hash_expert(s->tok_id[t], E, j);
                w[j] = 1.0f;
            }
            continue;
        }
        const float *sel = p;
        if (r->lw->sel_bias || lc->group != MOE_GROUP_NONE) {
            for (int e = 0; e < E; e++) choice[e] = p[e] + (r->lw->sel_bias ? r->lw->sel_bias[e] : 0.0f);
            if (lc->group != MOE_GROUP_NONE) group_limit(lc, choice, s->group_kept + t * lc->n_group);
            sel = choice;
        }
        topk(sel, E, K, ix);
        float sum = 0.0f;
        for (int j = 0; j < K; j++) sum += (w[j] = p[ix[j]]);
        if (lc->norm_topk && sum > 0.0f)
            for (int j = 0; j < K; j++) w[j] /= sum;
        if (lc->routed_scale != 1.0f && lc->routed_scale != 0.0f)
            for (int j = 0; j < K; j++) w[j] *= lc->routed_scale;
    }
}

/* The experts a token picks from its router logits p[E] (+ router bias;
 * overwritten with the scores): route_rows' choice without the weights.
 * Token choice and hash routing only. */
void router_pick(const moe_session *s, int layer, float *p, int32_t tok, int *ix) {
    const moe_layer_config *lc = &s->m->cfg.layer[layer];
    const float *sel_bias = s->m->layers[layer].sel_bias;
    int E = lc->n_experts, K = lc->top_k;
    if (lc->kind == MOE_ROUTE_HASH) {
        for (int j = 0; j < K; j++) ix[j] = router_hash_expert(tok, E, j);
        return;
    }
    if (lc->score == MOE_SCORE_TOPK_SOFTMAX) {
        topk(p, E, K, ix);
        return;
    }
    if (lc->score == MOE_SCORE_SIGMOID) {
        for (int e = 0; e < E; e++) p[e] = 1.0f / (1.0f + expf(-p[e]));
    } else {
        softmax(kern_of(s->pool), p, E);
    }
    if (sel_bias)
        for (int e = 0; e < E; e++) p[e] += sel_bias[e];
    if (lc->group != MOE_GROUP_NONE) group_limit(lc, p, NULL);
    topk(p, E, K, ix);
}

/* Counting sort of the T*K token-choice pairs by expert, stable in token
 * order; with a capacity, each expert keeps its first `cap` pairs. */
static int sort_pairs(moe_session *s, int E, int K, int T, int64_t cap) {
    int *cnt = s->expert_count;
    memset(cnt, 0, (size_t)(E + 1) * sizeof(int));
    for (int i = 0; i < T * K; i++) {
        int e = s->sel_expert[i];
        if (cap <= 0 || cnt[e + 1] < cap) cnt[e + 1]++;
    }
    for (int e = 0; e < E; e++) cnt[e + 1] += cnt[e];
    int cursor[1024];
    for (int e = 0; e < E; e++) cursor[e] = cnt[e];
    for (int t = 0; t < T; t++)
        for (int j = 0; j < K; j++) {
            int e = s->sel_expert[t * K + j];
            if (cursor[e] >= cnt[e + 1]) continue; /* over capacity: dropped */
            int at = cursor[e]++;
            s->pair_token[at] = t;
            s->pair_weight[at] = s->sel_weight[t * K + j];
        }
    return cnt[E];
}

/* Expert choice: expert e takes the C tokens with the largest p[:, e]. */
static int expert_choice(moe_session *s, int E, int T, int64_t C) {
    int *cnt = s->expert_count;
    const float *p = s->router_logits; /* softmax scores by now */
    if (C > T) C = T;
    int P = 0;
    for (int e = 0; e < E; e++) {
        cnt[e] = P;
        /* partial selection sort over T tokens: C * T, fine for the batch
         * sizes training uses; kept in token order afterwards */
        int *sel = s->pair_token + P;
        int n = 0;
        for (int t = 0; t < T; t++) {
            float v = p[(int64_t)t * E + e];
            int j = n < C ? n++ : (int)C;
            while (j > 0 && v > p[(int64_t)sel[j - 1] * E + e]) {
                if (j < C) sel[j] = sel[j - 1];
                j--;
            }
            if (j < C) sel[j] = t;
        }
        /* token order within the expert, as for token choice */
        for (int a = 1; a < n; a++)
            for (int b = a; b > 0 && sel[b - 1] > sel[b]; b--) {
                int tmp = sel[b];
                sel[b] = sel[b - 1];
                sel[b - 1] = tmp;
            }
        for (int i = 0; i < n; i++) s->pair_weight[P + i] = p[(int64_t)sel[i] * E + e];
        P += n;
    }
    cnt[E] = P;
    return P;
}

int router_route(moe_session *s, int layer, int T) {
    const moe_config *c = &s->m->cfg;
    const moe_layer_config *lc = &c->layer[layer];
    int E = lc->n_experts, K = lc->top_k;
    route_ctx rc = {s, lc, &s->m->layers[layer]};
    pool_for(s->pool, T, 16, route_rows, &rc);
    double cf = lc->capacity_factor;
    if (lc->kind == MOE_ROUTE_EXPERT_CHOICE)
        return expert_choice(s, E, T, (int64_t)(cf * T * K / E));
    int64_t cap = 0;
    if (lc->kind == MOE_ROUTE_TOKEN_CHOICE && cf > 0 && s->mode == MOE_MODE_TRAIN)
        cap = (int64_t)ceil(cf * T * K / E);
    return sort_pairs(s, E, K, T, cap);
}
