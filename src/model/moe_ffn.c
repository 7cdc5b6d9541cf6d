/*
 * moe_ffn.c - the MoE feed-forward block:
 *
 *   router logits [T][E] = xn W_r^T
 *   routing (router.c): (token, weight) pairs sorted by expert
 *   dispatch: gather
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

#include "kernels/vmath.h"

typedef struct pair_ctx {
    moe_session *s;
    int64_t D, F;
    int n_pairs;
    const float *ge, *ue; /* [P][F] gate/up projections (the tape's when recording) */
    float *he;            /* [P][F] their SwiGLU (the tape's when recording) */
    float *xe;            /* [P][D] gathered inputs (the tape's when recording) */
    float *ye;            /* [P][D] expert outputs (the tape's when recording) */
} pair_ctx;

static void gather_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    pair_ctx *c = ctx;
    for (int64_t i = i0; i < i1; i++)
        memcpy(c->xe + i * c->D, c->s->xn + (int64_t)c->s->pair_token[i] * c->D,
               (size_t)c->D * sizeof(float));
}

static void swiglu_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    pair_ctx *c = ctx;
    for (int64_t i = i0; i < i1; i++) {
        /* h = silu(g) * u (silu_mul's math, out of place: g stays in the tape) */
        vmath_swiglu(c->he + i * c->F, c->ge + i * c->F, c->ue + i * c->F, c->F);
    }
}

/* Combine the rows of tokens [t0, t1): each token's pairs in sorted
 * (expert) order, whole rows at a time; a thread owns its tokens' rows. */
static void combine_tokens(void *ctx, int64_t t0, int64_t t1, int tid) {
    pair_ctx *c = ctx;
    moe_session *s = c->s;
    for (int i = 0; i < c->n_pairs; i++) {
        int t = s->pair_token[i];
        if (t < t0 || t >= t1) continue;
        axpy(s->tmp + (int64_t)t * c->D, s->pair_weight[i], c->ye + (int64_t)i * c->D, (int)c->D);
    }
}

/* Noisy top-k (Shazeer et al. 2017), training only:
 *   logits += eps * softplus(xn W_noise^T),  eps ~ N(0, noise^2). */
static void add_noise(moe_session *s, const layer_w *lw, const moe_layer_config *lc,
                      layer_acts *a, int T) {
    int64_t n = (int64_t)T * lc->n_experts;
    matmul(s->pool, s->noise_raw, s->xn, &lw->router_noise, T);
    for (int64_t i = 0; i < n; i++) {
        float r = s->noise_raw[i];
        float sp = r > 20.0f ? r : log1pf(expf(r));
        float e = (float)rng_normal(&s->noise_rng) * lc->noise;
        s->noise_eps[i] = e;
        s->router_logits[i] += e * sp;
    }
    memcpy(a->noise_raw, s->noise_raw, sizeof(float) * (size_t)n);
    memcpy(a->noise_eps, s->noise_eps, sizeof(float) * (size_t)n);
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

void moe_block(moe_session *s, int layer, int T) {
    const moe_config *c = &s->m->cfg;
    const moe_layer_config *lc = &c->layer[layer];
    const layer_w *lw = &s->m->layers[layer];
    int E = lc->n_experts, K = lc->top_k;
    int64_t D = c->dim, F = lc->expert_dim;
    (void)K;

    layer_acts *a = s->acts ? &s->acts->layer[layer] : NULL;

    /* route: (token, weight) pairs sorted by expert, cnt[e] = first pair of e */
    matmul(s->pool, s->router_logits, s->xn, &lw->router, T);
    if (a && lc->noise > 0) add_noise(s, lw, lc, a, T);
    if (a) memcpy(a->router_logits, s->router_logits, sizeof(float) * (size_t)(T * E));
    int P = router_route(s, layer, T);
    int *cnt = s->expert_count;
    int64_t *stat = s->counts + (int64_t)layer * s->e_max;
    for (int e = 0; e < E; e++) stat[e] += cnt[e + 1] - cnt[e];
    if (s->route_hook)
        s->route_hook(s->route_user, layer, T, s->sel_expert, s->sel_weight, K, s->router_logits, E);
    if (a) {
        a->n_pairs = P;
        memcpy(a->sel_expert, s->sel_expert, sizeof(int) * (size_t)(T * K));
        memcpy(a->sel_weight, s->sel_weight, sizeof(float) * (size_t)(T * K));
        memcpy(a->expert_start, cnt, sizeof(int) * (size_t)(E + 1));
        memcpy(a->pair_token, s->pair_token, sizeof(int) * (size_t)P);
        memcpy(a->pair_weight, s->pair_weight, sizeof(float) * (size_t)P);
    }
    pair_ctx pc = {s, D, F, P, a ? a->ge : s->ge, a ? a->ue : s->ue, a ? a->he : s->ge,
                   a ? a->xe : s->xe, a ? a->ye : s->ye};
    pool_for(s->pool, P, 4, gather_rows, &pc);

    /* gate and up for every expert with rows, in one parallel region */
    int nt = 0;
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        if (!n) continue;
        const ffn_w *x = &lw->experts[e];
        s->tasks[nt++] = (mm_task){&x->gate, pc.xe + cnt[e] * D, (float *)pc.ge + cnt[e] * F, n};
        s->tasks[nt++] = (mm_task){&x->up, pc.xe + cnt[e] * D, (float *)pc.ue + cnt[e] * F, n};
    }
    matmul_grouped(s->pool, s->tasks, nt);
    pool_for(s->pool, P, 4, swiglu_rows, &pc);
    nt = 0;
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        if (!n) continue;
        s->tasks[nt++] = (mm_task){&lw->experts[e].down, pc.he + cnt[e] * F, pc.ye + cnt[e] * D, n};
    }
    matmul_grouped(s->pool, s->tasks, nt);

    memset(s->tmp, 0, (size_t)(T * D) * sizeof(float));
    pool_for(s->pool, T, 4, combine_tokens, &pc);

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
