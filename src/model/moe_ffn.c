/*
 * moe_ffn.c - the MoE feed-forward block, token-choice routing:
 *
 *   router logits [T][E] = xn W_r^T
 *   scores = softmax(logits) (or sigmoid); each token takes its top-K
 *   (selection may add a bias; the weights never include it), weights
 *   optionally renormalized to sum 1, times routed_scale
 *   dispatch: counting-sort the T*K (token, weight) pairs by expert, gather
 *   each expert's rows, one grouped GEMM for all gate/up products, SwiGLU,
 *   one grouped GEMM for all down products; experts no token chose are never
 *   touched
 *   combine: out[t] = sum over its pairs, in ascending expert order (the
 *   order transformers adds them in), of weight * expert output
 *   shared expert (qwen2_moe): out += sigmoid(xn . w_g) * ffn_shared(xn)
 *
 * Reads s->xn [T][D], writes s->tmp [T][D].
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

typedef struct route_ctx {
    moe_session *s;
    const moe_layer_config *lc;
    const layer_w *lw;
} route_ctx;

/* Per token: scores, top-k, weights. */
static void route_rows(void *ctx, int64_t t0, int64_t t1, int tid) {
    route_ctx *r = ctx;
    moe_session *s = r->s;
    const moe_layer_config *lc = r->lc;
    int E = lc->n_experts, K = lc->top_k;
    float choice[1024];
    for (int64_t t = t0; t < t1; t++) {
        float *p = s->router_logits + t * E; /* becomes the scores */
        if (lc->score == MOE_SCORE_SIGMOID) {
            for (int e = 0; e < E; e++) p[e] = 1.0f / (1.0f + expf(-p[e]));
        } else {
            softmax(p, E);
        }
        const float *sel = p;
        if (r->lw->sel_bias) {
            for (int e = 0; e < E; e++) choice[e] = p[e] + r->lw->sel_bias[e];
            sel = choice;
        }
        int *ix = s->sel_expert + t * K;
        float *w = s->sel_weight + t * K;
        topk(sel, E, K, ix);
        float sum = 0.0f;
        for (int j = 0; j < K; j++) sum += (w[j] = p[ix[j]]);
        if (lc->norm_topk && sum > 0.0f)
            for (int j = 0; j < K; j++) w[j] /= sum;
        if (lc->routed_scale != 1.0f && lc->routed_scale != 0.0f)
            for (int j = 0; j < K; j++) w[j] *= lc->routed_scale;
    }
}

typedef struct pair_ctx {
    moe_session *s;
    int64_t D, F;
    int n_pairs;
} pair_ctx;

static void gather_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    pair_ctx *c = ctx;
    for (int64_t i = i0; i < i1; i++)
        memcpy(c->s->xe + i * c->D, c->s->xn + (int64_t)c->s->pair_token[i] * c->D,
               (size_t)c->D * sizeof(float));
}

static void swiglu_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    pair_ctx *c = ctx;
    for (int64_t i = i0; i < i1; i++) silu_mul(c->s->ge + i * c->F, c->s->ue + i * c->F, (int)c->F);
}

/* Combine over a slice of columns [d0, d1) so threads never share a row
 * element; pairs are visited in sorted (expert) order. */
static void combine_cols(void *ctx, int64_t d0, int64_t d1, int tid) {
    pair_ctx *c = ctx;
    moe_session *s = c->s;
    for (int i = 0; i < c->n_pairs; i++) {
        float *o = s->tmp + (int64_t)s->pair_token[i] * c->D;
        const float *y = s->ye + (int64_t)i * c->D;
        float w = s->pair_weight[i];
        for (int64_t d = d0; d < d1; d++) o[d] += w * y[d];
    }
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

void moe_block(moe_session *s, int layer, int T) {
    const moe_config *c = &s->m->cfg;
    const moe_layer_config *lc = &c->layer[layer];
    const layer_w *lw = &s->m->layers[layer];
    int E = lc->n_experts, K = lc->top_k;
    int64_t D = c->dim, F = lc->expert_dim;

    layer_acts *a = s->acts ? &s->acts->layer[layer] : NULL;

    /* route */
    matmul(s->pool, s->router_logits, s->xn, &lw->router, T);
    if (a) memcpy(a->router_logits, s->router_logits, sizeof(float) * (size_t)(T * E));
    route_ctx rc = {s, lc, lw};
    pool_for(s->pool, T, 16, route_rows, &rc);

    /* counting sort of the T*K pairs by expert (stable in token order) */
    int *cnt = s->expert_count;
    memset(cnt, 0, (size_t)(E + 1) * sizeof(int));
    for (int i = 0; i < T * K; i++) cnt[s->sel_expert[i] + 1]++;
    int64_t *stat = s->counts + (int64_t)layer * s->e_max;
    for (int e = 0; e < E; e++) stat[e] += cnt[e + 1];
    for (int e = 0; e < E; e++) cnt[e + 1] += cnt[e]; /* cnt[e] = start of expert e */
    for (int t = 0; t < T; t++)
        for (int j = 0; j < K; j++) {
            int e = s->sel_expert[t * K + j];
            int at = cnt[e]++;
            s->pair_token[at] = t;
            s->pair_weight[at] = s->sel_weight[t * K + j];
        }
    /* cnt[e] is now the end of expert e; shift back to starts */
    for (int e = E; e > 0; e--) cnt[e] = cnt[e - 1];
    cnt[0] = 0;

    int P = T * K;
    if (a) {
        memcpy(a->sel_expert, s->sel_expert, sizeof(int) * (size_t)P);
        memcpy(a->sel_weight, s->sel_weight, sizeof(float) * (size_t)P);
        memcpy(a->expert_start, cnt, sizeof(int) * (size_t)(E + 1));
        memcpy(a->pair_token, s->pair_token, sizeof(int) * (size_t)P);
        memcpy(a->pair_weight, s->pair_weight, sizeof(float) * (size_t)P);
    }
    pair_ctx pc = {s, D, F, P};
    pool_for(s->pool, P, 4, gather_rows, &pc);

    /* gate and up for every expert with rows, in one parallel region */
    int nt = 0;
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        if (!n) continue;
        const ffn_w *x = &lw->experts[e];
        s->tasks[nt++] = (mm_task){&x->gate, s->xe + cnt[e] * D, s->ge + cnt[e] * F, n};
        s->tasks[nt++] = (mm_task){&x->up, s->xe + cnt[e] * D, s->ue + cnt[e] * F, n};
    }
    matmul_grouped(s->pool, s->tasks, nt);
    if (a) {
        memcpy(a->ge, s->ge, sizeof(float) * (size_t)(P * F));
        memcpy(a->ue, s->ue, sizeof(float) * (size_t)(P * F));
    }
    pool_for(s->pool, P, 4, swiglu_rows, &pc);
    nt = 0;
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        if (!n) continue;
        s->tasks[nt++] = (mm_task){&lw->experts[e].down, s->ge + cnt[e] * F, s->ye + cnt[e] * D, n};
    }
    matmul_grouped(s->pool, s->tasks, nt);
    if (a) memcpy(a->ye, s->ye, sizeof(float) * (size_t)(P * D));

    memset(s->tmp, 0, (size_t)(T * D) * sizeof(float));
    pool_for(s->pool, D, 64, combine_cols, &pc);

    if (lc->n_shared > 0) {
        ffn_dense(s, &lw->shared, s->xn, s->shared_out, T, lc->shared_dim, a ? a->h_gate : NULL,
                  a ? a->h_up : NULL);
        if (lc->shared_gate) matmul(s->pool, s->gate_logit, s->xn, &lw->shared_gate, T);
        if (a) {
            memcpy(a->shared_out, s->shared_out, sizeof(float) * (size_t)(T * D));
            if (lc->shared_gate) memcpy(a->gate_logit, s->gate_logit, sizeof(float) * (size_t)T);
        }
        for (int t = 0; t < T; t++) {
            float g = lc->shared_gate ? sigmoidf(s->gate_logit[t]) : 1.0f;
            float *o = s->tmp + (int64_t)t * D;
            const float *y = s->shared_out + (int64_t)t * D;
            for (int64_t d = 0; d < D; d++) o[d] += g * y[d];
        }
    }
}
