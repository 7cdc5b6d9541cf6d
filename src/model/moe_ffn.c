/*
 * moe_ffn.c - the MoE feed-forward block:
 *
 *   router logits [T][E] = xn W_r^T
 *   routing (router.c): (token, weight) pairs sorted by expert
 *   dispatch: each expert's rows, one grouped GEMM for all gate/up products,
 *   SwiGLU, one grouped GEMM for all down products; experts no token chose
 *   are never touched. Quantized gate/up read their tokens' rows of xn by
 *   index, so each token is quantized once for its top-k experts (the same
 *   bytes as quantizing gathered rows); the other experts' rows are gathered
 *   into xe, and so are all of them when a tape keeps xe or a dispatch hook
 *   reads it. gpt_oss: the router logits have a bias, the experts' gate, up
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
    int T;                /* tokens: the rows of s->xn */
    int lazy;             /* xe gathered by run_wave, only for experts without idx */
    uint8_t *gather;      /* [E] with lazy: the wave's experts whose rows go to xe */
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
        if (!c->s->in_wave[e]) continue;
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
        if (!c->s->in_wave[e] || !bd) continue;
        float *y = c->ye + i * c->D;
        for (int64_t d = 0; d < c->D; d++) y[d] += bd[d];
    }
}

static void gather_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    pair_ctx *c = ctx;
    for (int64_t i = i0; i < i1; i++) {
        if (c->lazy) { /* only the wave's experts without idx */
            int e = expert_of(c->s->expert_count, c->lc->n_experts, i);
            if (!c->s->in_wave[e] || !c->gather[e]) continue;
        }
        memcpy(c->xe + i * c->D, c->s->xn + (int64_t)c->s->pair_token[i] * c->D,
               (size_t)c->D * sizeof(float));
    }
}

static void swiglu_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    pair_ctx *c = ctx;
    const kern_cfg *k = kern_of(c->s->pool);
    const int *cnt = c->s->expert_count;
    for (int64_t i = i0; i < i1; i++) {
        if (!c->s->in_wave[expert_of(cnt, c->lc->n_experts, i)]) continue;
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
 * With a tape the draws are kept for the backward pass; a replay
 * (model_layer_replay) takes them from there instead of drawing again. */
static void add_noise(moe_session *s, const layer_w *lw, const moe_layer_config *lc,
                      layer_acts *a, int T) {
    int64_t n = (int64_t)T * lc->n_experts;
    matmul(s->pool, s->noise_raw, s->xn, &lw->router_noise, T);
    for (int64_t i = 0; i < n; i++) {
        float r = s->noise_raw[i];
        float sp = r > 20.0f ? r : log1pf(expf(r));
        float e = s->replay ? a->noise_eps[i] : (float)rng_normal(&s->noise_rng) * lc->noise;
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
    *w = (moe_expert_weights){f->gate.data, f->up.data, f->down.data, 0, 0, 0, 0};
    return 0;
}

/* Gate/up, activation, down (and gpt_oss's down biases) of the experts
 * marked in s->in_wave, whose weights are pc->ex[e]. Each expert's rows
 * depend on its own weights only, so any split into waves gives the same
 * bits as one. */
static void run_wave(moe_session *s, pair_ctx *pc, const int *cnt, int E) {
    const ffn_w *ex = pc->ex;
    int64_t D = pc->D, F = pc->F;
    int nt = 0, gather = 0;
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        if (!n || !s->in_wave[e]) continue;
        /* Lazily: gate and up read the tokens' rows of xn by index (each
         * token quantized once for all its experts) where both are
         * quantized and may; the others' rows are gathered first. */
        int idx = pc->lazy && matmul_idx_ok(s->pool, &ex[e].gate, n) && matmul_idx_ok(s->pool, &ex[e].up, n);
        mm_idx ix = idx ? (mm_idx){s->pair_token + cnt[e], pc->T} : (mm_idx){NULL, 0};
        const float *x = idx ? s->xn : pc->xe + cnt[e] * D;
        if (pc->lazy) pc->gather[e] = !idx, gather |= !idx;
        s->task_idx[nt] = ix;
        s->tasks[nt++] = (mm_task){&ex[e].gate, x, (float *)pc->ge + cnt[e] * F, n};
        s->task_idx[nt] = ix;
        s->tasks[nt++] = (mm_task){&ex[e].up, x, (float *)pc->ue + cnt[e] * F, n};
    }
    if (gather) pool_for(s->pool, pc->n_pairs, 4, gather_rows, pc);
    matmul_grouped_idx(s->pool, s->tasks, s->task_idx, nt);
    if (pc->lc->act == MOE_ACT_OSS_GLU) {
        pool_for(s->pool, pc->n_pairs, 4, oss_glu_rows, pc); /* in place into ge without a tape */
    } else {
        pool_for(s->pool, pc->n_pairs, 4, swiglu_rows, pc);
    }
    nt = 0;
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        if (!n || !s->in_wave[e]) continue;
        s->tasks[nt++] = (mm_task){&ex[e].down, pc->he + cnt[e] * F, pc->ye + cnt[e] * D, n};
    }
    matmul_grouped(s->pool, s->tasks, nt);
    if (pc->lc->expert_bias) pool_for(s->pool, pc->n_pairs, 4, down_bias_rows, pc);
}

/* The view the engine computes expert e with: its own matrices' shapes
 * and biases, the provider's data and, when it says so, their types. -1
 * for a type the kernels do not know or whose blocks do not fit a row. */
static int expert_view_set(ffn_w *v, const ffn_w *own, const moe_expert_weights *x) {
    *v = *own;
    v->gate.data = x->gate;
    v->up.data = x->up;
    v->down.data = x->down;
    if (!x->typed) return 0;
    mat *w[3] = {&v->gate, &v->up, &v->down};
    const int t[3] = {x->gate_type, x->up_type, x->down_type};
    for (int i = 0; i < 3; i++) {
        dtype d = dtype_from_ggml(t[i]);
        int block = d == DT_COUNT ? 0 : dtype_block_elems(d);
        if (block <= 0 || w[i]->cols % block) return -1;
        w[i]->type = d;
    }
    return 0;
}

/* Layer l's router applied to xn [T][D], the guess passed to the provider. */
static void predict_layer(moe_session *s, int l, const float *xn, int T) {
    const moe_config *c = &s->m->cfg;
    const moe_expert_provider *p = &s->provider;
    const moe_layer_config *lc = &c->layer[l];
    if (lc->kind == MOE_ROUTE_EXPERT_CHOICE || lc->top_k > 1024) return;
    int *list = s->wave_todo + s->e_max, ix[1024]; /* top_k <= E <= 1024 (router.c) */
    int at[256];                                   /* list position of each best rank */
    const layer_w *lw = &s->m->layers[l];
    int E = lc->n_experts, K = lc->top_k;
    if (lc->kind != MOE_ROUTE_HASH) matmul(s->pool, s->pred_logits, xn, &lw->router, T);
    /* pred_mark[e]: 1 + the expert's best rank over the tokens (ranks past
     * 254 share 255), 0: not picked */
    for (int t = 0; t < T; t++) {
        float *z = s->pred_logits + (int64_t)t * E;
        if (lw->router_b && lc->kind != MOE_ROUTE_HASH)
            for (int e = 0; e < E; e++) z[e] += lw->router_b[e];
        router_pick(s, l, z, s->tok_id[t], ix);
        for (int j = 0; j < K; j++) {
            uint8_t r = (uint8_t)(j < 254 ? j + 1 : 255), *m = &s->pred_mark[ix[j]];
            if (*m == 0 || r < *m) *m = r;
        }
    }
    /* a counting sort by best rank */
    memset(at, 0, sizeof at);
    for (int e = 0; e < E; e++)
        if (s->pred_mark[e]) at[s->pred_mark[e]]++;
    int n = 0;
    for (int r = 1; r < 256; r++) {
        int k = at[r];
        at[r] = n;
        n += k;
    }
    for (int e = 0; e < E; e++)
        if (s->pred_mark[e]) list[at[s->pred_mark[e]]++] = e, s->pred_mark[e] = 0;
    p->want(p->user, l, list, n, 1);
}

/* Tell the provider which experts the next `predict` MoE layers are likely
 * to use: each one's router applied to this layer's normalized input (the
 * residual stream changes little from one layer to the next), the union of
 * the tokens' top-k, likeliest first: the experts some token ranks first,
 * then those whose best rank is second, and so on (ties by expert index).
 * Small chunks only (decoding): a long chunk uses nearly every expert
 * anyway. */
static void predict_later(moe_session *s, int layer, int T) {
    const moe_config *c = &s->m->cfg;
    if (T > PREDICT_MAX_T) return;
    for (int l = layer + 1, found = 0; l < c->n_layers && found < s->provider.predict; l++) {
        if (!c->layer[l].moe) continue;
        found++;
        predict_layer(s, l, s->xn, T);
    }
}

/* The experts with rows (those the dispatch hook left here): through the
 * provider, in waves of at most max_held, the ready ones first; without a
 * provider, the model's own weights in one wave. A failing acquire
 * releases what the wave holds and fails the call. */
static int run_experts(moe_session *s, int layer, pair_ctx *pc, const int *cnt, int E, int T) {
    const moe_expert_provider *p = &s->provider;
    const ffn_w *own = s->m->layers[layer].experts;
    int *todo = s->wave_todo, *wave = s->wave_todo + s->e_max, left = 0;
    for (int e = 0; e < E; e++)
        if (cnt[e + 1] != cnt[e] && !s->remote[e]) todo[left++] = e;
    if (!p->acquire) {
        for (int i = 0; i < left; i++) s->in_wave[todo[i]] = 1;
        pc->ex = own;
        run_wave(s, pc, cnt, E);
        memset(s->in_wave, 0, (size_t)E);
        return 0;
    }
    if (p->want && left) p->want(p->user, layer, todo, left, 0);
    if (p->want && p->predict > 0) predict_later(s, layer, T);
    pc->ex = s->expert_view;
    while (left > 0) {
        int cap = p->max_held > 0 && p->max_held < left ? p->max_held : left, w = 0, waiting = 0;
        if (p->ready) {
            for (int i = 0; i < left && w < cap; i++)
                if (p->ready(p->user, layer, todo[i])) wave[w++] = todo[i];
            if (w == 0) wave[w++] = todo[0], waiting = 1; /* nothing ready: the first asked */
        } else {
            for (int i = 0; i < cap; i++) wave[w++] = todo[i];
        }
        for (int i = 0; i < w; i++) s->in_wave[wave[i]] = 1;
        for (int i = 0; i < w; i++) {
            int e = wave[i];
            moe_expert_weights x = {0};
            int rc = p->acquire(p->user, layer, e, &x, &s->hook_err), bad = 0;
            if (!rc && x.gate && x.up && x.down)
                bad = expert_view_set(&s->expert_view[e], &own[e], &x);
            if (rc || !x.gate || !x.up || !x.down || bad) {
                if (!rc) {
                    if (bad)
                        moe_fail(&s->hook_err, "layer %d expert %d: the expert provider gave types "
                                 "%d, %d, %d (GGUF ids), not all known types whose blocks fit "
                                 "the rows", layer, e, x.gate_type, x.up_type, x.down_type);
                    else
                        moe_fail(&s->hook_err, "layer %d expert %d: the expert provider gave no "
                                 "weights", layer, e);
                    if (p->release) p->release(p->user, layer, e);
                }
                for (int j = 0; j < i; j++)
                    if (p->release) p->release(p->user, layer, wave[j]);
                memset(s->in_wave, 0, (size_t)E);
                return -1;
            }
            /* a stand-in instead of a wait: the provider does not wait for
             * any expert, so the rest of the wave need not wait either */
            if (waiting && x.typed)
                for (int j = 0; j < left && w < cap; j++)
                    if (!s->in_wave[todo[j]]) s->in_wave[todo[j]] = 1, wave[w++] = todo[j];
            waiting = 0;
        }
        int kept = 0;
        for (int i = 0; i < left; i++)
            if (!s->in_wave[todo[i]]) todo[kept++] = todo[i];
        left = kept;
        run_wave(s, pc, cnt, E);
        for (int i = 0; i < w; i++) {
            if (p->release) p->release(p->user, layer, wave[i]);
            s->in_wave[wave[i]] = 0;
        }
    }
    return 0;
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
    for (int e = 0; e < E && !s->replay; e++) stat[e] += cnt[e + 1] - cnt[e];
    if (s->route_fn && !s->replay) { /* a replay's routing was observed the first time */
        int G = lc->group != MOE_GROUP_NONE ? lc->n_group : 0;
        moe_route_info r = {layer,           s->route_t0,    T,          K, E, s->sel_expert,
                            s->sel_weight,   s->router_logits, s->tok_seq, s->tok_pos, G,
                            G ? s->group_kept : NULL, s->route_row};
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
                   a ? a->xe : s->xe, a ? a->ye : s->ye, lw->experts, lc, T,
                   !a && !s->dispatch_fn, s->wave_gather};
    /* a tape keeps xe, a dispatch hook reads it: gathered whole here */
    if (!pc.lazy) pool_for(s->pool, P, 4, gather_rows, &pc);

    /* dispatch: a hook may compute some experts elsewhere */
    memset(s->remote, 0, (size_t)E);
    if (s->dispatch_fn) {
        moe_dispatch_info d = {layer, E, (int)D, P, cnt, s->pair_token, s->pair_weight,
                               pc.xe, pc.ye, s->remote};
        if (s->dispatch_fn(s->dispatch_user, &d, &s->hook_err)) return -1;
    }
    if (run_experts(s, layer, &pc, cnt, E, T)) return -1;

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
