/*
 * moe_ffn.c - the MoE feed-forward block:
 *
 *   router logits [T][E] = xn W_r^T
 *   routing (router.c): (token, weight) pairs sorted by expert
 *   dispatch: gather
 *   each expert's rows, one grouped GEMM for all gate/up products, SwiGLU,
 *   one grouped GEMM for all down products; experts no token chose are never
 *   touched. gpt_oss: the router logits have a bias, the experts' gate, up
 *   and down products biases, and the activation is the clamped SwiGLU
 *   (u + 1) * g * sigmoid(alpha g), g = min(gate, limit), u = clamp(up, +-limit)
 *   combine: out[t] = sum over its pairs, in ascending expert order (the
 *   order transformers adds them in), of weight * expert output
 *   shared expert (qwen2_moe): out += sigmoid(xn . w_g) * ffn_shared(xn)
 *
 * The session's hooks sit on this path: the route observer right after
 * routing, the dispatch hook after the gather (experts it computes
 * elsewhere are skipped here), the expert provider around the products.
 *
 * Reads s->xn [T][D], writes s->tmp [T][D].
 */
#include "model/model.h"

#include <math.h>
#include <string.h>

#include "base/err.h"
#include "kernels/vmath.h"

typedef struct pair_ctx {
    moe_session *s;
    int64_t D, F;
    int n_pairs;
    const float *ge, *ue; /* [P][F] gate/up projections (the tape's when recording) */
    float *he;            /* [P][F] their SwiGLU (the tape's when recording) */
    float *xe;            /* [P][D] gathered inputs (the tape's when recording) */
    float *ye;            /* [P][D] expert outputs (the tape's when recording) */
    const ffn_w *ex;      /* [E] the experts (biases) */
    const moe_layer_config *lc;
} pair_ctx;

/* The expert whose pair range holds pair i (cnt[e] <= i < cnt[e+1]). */
static int expert_of(const int *cnt, int E, int64_t i) {
    int a = 0, b = E - 1;
    while (a < b) {
        int m = (a + b + 1) / 2;
        if (cnt[m] <= i) a = m;
        else b = m - 1;
    }
    return a;
}

/* gpt_oss: h = (u + 1) * g * sigmoid(alpha g) with g = min(gate + bg, limit),
 * u = clamp(up + bu, -limit, limit); the biased pre-activations stay in ge/ue. */
static void oss_glu_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    pair_ctx *c = ctx;
    const int *cnt = c->s->expert_count;
    float lim = c->lc->act_limit, alpha = c->lc->act_alpha;
    for (int64_t i = i0; i < i1; i++) {
        int e = expert_of(cnt, c->lc->n_experts, i);
        if (c->s->remote[e]) continue;
        const float *bg = c->ex[e].bg, *bu = c->ex[e].bu;
        float *g = (float *)c->ge + i * c->F, *u = (float *)c->ue + i * c->F, *h = c->he + i * c->F;
        for (int64_t f = 0; f < c->F; f++) {
            if (bg) g[f] += bg[f];
            if (bu) u[f] += bu[f];
            float gg = g[f] > lim ? lim : g[f];
            float uu = u[f] < -lim ? -lim : u[f] > lim ? lim : u[f];
            float glu = gg * (1.0f / (1.0f + expf(-(gg * alpha))));
            h[f] = (uu + 1.0f) * glu;
        }
    }
}

/* The down products' biases (gpt_oss), on the rows of experts computed here. */
static void down_bias_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    pair_ctx *c = ctx;
    const int *cnt = c->s->expert_count;
    for (int64_t i = i0; i < i1; i++) {
        int e = expert_of(cnt, c->lc->n_experts, i);
        const float *bd = c->ex[e].bd;
        if (c->s->remote[e] || !bd) continue;
        float *y = c->ye + i * c->D;
        for (int64_t d = 0; d < c->D; d++) y[d] += bd[d];
    }
}

static void gather_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    pair_ctx *c = ctx;
    for (int64_t i = i0; i < i1; i++)
        memcpy(c->xe + i * c->D, c->s->xn + (int64_t)c->s->pair_token[i] * c->D,
               (size_t)c->D * sizeof(float));
}

static void swiglu_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    pair_ctx *c = ctx;
    const kern_cfg *k = kern_of(c->s->pool);
    for (int64_t i = i0; i < i1; i++) {
        /* h = silu(g) * u (silu_mul's math, out of place: g stays in the tape) */
        vmath_swiglu(k, c->he + i * c->F, c->ge + i * c->F, c->ue + i * c->F, c->F);
    }
}

/* Combine the rows of tokens [t0, t1): each token's pairs in sorted
 * (expert) order, whole rows at a time; a thread owns its tokens' rows. */
static void combine_tokens(void *ctx, int64_t t0, int64_t t1, int tid) {
    pair_ctx *c = ctx;
    moe_session *s = c->s;
    const kern_cfg *k = kern_of(s->pool);
    for (int i = 0; i < c->n_pairs; i++) {
        int t = s->pair_token[i];
        if (t < t0 || t >= t1) continue;
        axpy(k, s->tmp + (int64_t)t * c->D, s->pair_weight[i], c->ye + (int64_t)i * c->D, (int)c->D);
    }
}

/* Noisy top-k (Shazeer et al. 2017), training mode only:
 *   logits += eps * softplus(xn W_noise^T),  eps ~ N(0, noise^2).
 * With a tape the draws are kept for the backward pass. */
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
    if (!a) return;
    memcpy(a->noise_raw, s->noise_raw, sizeof(float) * (size_t)n);
    memcpy(a->noise_eps, s->noise_eps, sizeof(float) * (size_t)n);
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

int moe_model_expert_weights(const moe_model *m, int layer, int expert, moe_expert_weights *w,
                             moe_err *err) {
    const moe_config *c = &m->cfg;
    if (layer < 0 || layer >= c->n_layers || !c->layer[layer].moe || expert < 0 ||
        expert >= c->layer[layer].n_experts)
        return moe_fail(err, "expert weights: layer %d expert %d is not a routed expert", layer,
                        expert);
    const ffn_w *f = &m->layers[layer].experts[expert];
    *w = (moe_expert_weights){f->gate.data, f->up.data, f->down.data};
    return 0;
}

/* The experts with rows, acquired through the provider into
 * s->expert_view (without one the products read the model's own table).
 * On failure the experts acquired so far are released. */
static int acquire_experts(moe_session *s, int layer, const int *cnt, int E) {
    const ffn_w *own = s->m->layers[layer].experts;
    if (!s->provider.acquire) return 0; /* the products read the model's table */
    for (int e = 0; e < E; e++) {
        if (cnt[e + 1] == cnt[e] || s->remote[e]) continue;
        moe_expert_weights w = {0};
        int rc = s->provider.acquire(s->provider.user, layer, e, &w, &s->hook_err);
        if (rc || !w.gate || !w.up || !w.down) {
            if (!rc) {
                moe_fail(&s->hook_err, "layer %d expert %d: the expert provider gave no weights",
                         layer, e);
                if (s->provider.release) s->provider.release(s->provider.user, layer, e);
            }
            for (int j = 0; j < e; j++)
                if (cnt[j + 1] != cnt[j] && !s->remote[j] && s->provider.release)
                    s->provider.release(s->provider.user, layer, j);
            return -1;
        }
        ffn_w *v = &s->expert_view[e];
        *v = own[e];
        v->gate.data = w.gate;
        v->up.data = w.up;
        v->down.data = w.down;
    }
    return 0;
}

static void release_experts(moe_session *s, int layer, const int *cnt, int E) {
    if (!s->provider.acquire || !s->provider.release) return;
    for (int e = 0; e < E; e++)
        if (cnt[e + 1] != cnt[e] && !s->remote[e]) s->provider.release(s->provider.user, layer, e);
}

int moe_block(moe_session *s, int layer, int T) {
    const moe_config *c = &s->m->cfg;
    const moe_layer_config *lc = &c->layer[layer];
    const layer_w *lw = &s->m->layers[layer];
    int E = lc->n_experts, K = lc->top_k;
    int64_t D = c->dim, F = lc->expert_dim;

    train_acts *A = session_tape(s);
    layer_acts *a = A ? &A->layer[layer] : NULL;

    /* route: (token, weight) pairs sorted by expert, cnt[e] = first pair of e */
    matmul(s->pool, s->router_logits, s->xn, &lw->router, T);
    if (lw->router_b)
        for (int t = 0; t < T; t++)
            for (int e = 0; e < E; e++) s->router_logits[(int64_t)t * E + e] += lw->router_b[e];
    if (s->mode == MOE_MODE_TRAIN && lc->noise > 0) add_noise(s, lw, lc, a, T);
    if (a) memcpy(a->router_logits, s->router_logits, sizeof(float) * (size_t)(T * E));
    int P = router_route(s, layer, T);
    int *cnt = s->expert_count;
    int64_t *stat = s->counts + (int64_t)layer * s->e_max;
    for (int e = 0; e < E; e++) stat[e] += cnt[e + 1] - cnt[e];
    if (s->route_fn) {
        moe_route_info r = {layer,           s->route_t0,    T,          K, E, s->sel_expert,
                            s->sel_weight,   s->router_logits, s->tok_seq, s->tok_pos};
        s->route_fn(s->route_user, &r);
    }
    if (a) {
        a->n_pairs = P;
        memcpy(a->sel_expert, s->sel_expert, sizeof(int) * (size_t)(T * K));
        memcpy(a->sel_weight, s->sel_weight, sizeof(float) * (size_t)(T * K));
        memcpy(a->expert_start, cnt, sizeof(int) * (size_t)(E + 1));
        memcpy(a->pair_token, s->pair_token, sizeof(int) * (size_t)P);
        memcpy(a->pair_weight, s->pair_weight, sizeof(float) * (size_t)P);
    }
    pair_ctx pc = {s, D, F, P, a ? a->ge : s->ge, a ? a->ue : s->ue, a ? a->he : s->ge,
                   a ? a->xe : s->xe, a ? a->ye : s->ye, lw->experts, lc};
    pool_for(s->pool, P, 4, gather_rows, &pc);

    /* dispatch: a hook may compute some experts elsewhere */
    memset(s->remote, 0, (size_t)E);
    if (s->dispatch_fn) {
        moe_dispatch_info d = {layer, E, (int)D, P, cnt, s->pair_token, s->pair_weight,
                               pc.xe, pc.ye, s->remote};
        if (s->dispatch_fn(s->dispatch_user, &d, &s->hook_err)) return -1;
    }
    if (acquire_experts(s, layer, cnt, E)) return -1;
    const ffn_w *ex = s->provider.acquire ? s->expert_view : lw->experts;
    pc.ex = ex;

    /* gate and up for every expert with rows, in one parallel region */
    int nt = 0;
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        if (!n || s->remote[e]) continue;
        s->tasks[nt++] = (mm_task){&ex[e].gate, pc.xe + cnt[e] * D, (float *)pc.ge + cnt[e] * F, n};
        s->tasks[nt++] = (mm_task){&ex[e].up, pc.xe + cnt[e] * D, (float *)pc.ue + cnt[e] * F, n};
    }
    matmul_grouped(s->pool, s->tasks, nt);
    if (lc->act == MOE_ACT_OSS_GLU) {
        pool_for(s->pool, P, 4, oss_glu_rows, &pc); /* in place into ge without a tape */
    } else {
        pool_for(s->pool, P, 4, swiglu_rows, &pc);
    }
    nt = 0;
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        if (!n || s->remote[e]) continue;
        s->tasks[nt++] = (mm_task){&ex[e].down, pc.he + cnt[e] * F, pc.ye + cnt[e] * D, n};
    }
    matmul_grouped(s->pool, s->tasks, nt);
    if (lc->expert_bias) pool_for(s->pool, P, 4, down_bias_rows, &pc);
    release_experts(s, layer, cnt, E);

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
    return 0;
}
