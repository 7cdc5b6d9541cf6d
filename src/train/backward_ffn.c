/*
 * backward_ffn.c - the backward pass of a layer's FFN block: dense SwiGLU,
 * or MoE (combine, experts, dispatch, router, balancing losses, shared
 * expert), then the block's RMSNorm. Mirrors src/model/moe_ffn.c and
 * router.c; the balancing losses are those of docs/TRAINING.md.
 */
#include "train/backward_impl.h"

#include <math.h>
#include <string.h>

static void zero(float *p, int64_t n) { memset(p, 0, sizeof(float) * (size_t)n); }

/* h = silu(g) * u recomputed with the forward's own kernel. */
static void swiglu_recompute(float *h, const float *g, const float *u, int64_t n) {
    memcpy(h, g, sizeof(float) * (size_t)n);
    silu_mul(h, u, (int)n);
}

/* One SwiGLU FFN: dy [N][D] -> dxn [N][D] +=, weight gradients +=. */
static void dense_backward(moe_session *s, bwd_ws *w, const train_grads *G, const ffn_w *f,
                           const float *xn, const float *gpre, const float *upre, const float *dy,
                           int N, int64_t F) {
    int64_t D = s->m->cfg.dim;
    for (int t = 0; t < N; t++)
        swiglu_recompute(w->h + t * F, gpre + t * F, upre + t * F, F);
    zero(w->dh, N * F);
    linear_backward(s->pool, w->dh, grad_of(G, f->down.data), dy, w->h, f->down.data, N, D, F);
    zero(w->dg, N * F);
    zero(w->du, N * F);
    swiglu_backward(w->dg, w->du, w->dh, gpre, upre, N * F);
    linear_backward(s->pool, w->dxn, grad_of(G, f->gate.data), w->dg, xn, f->gate.data, N, F, D);
    linear_backward(s->pool, w->dxn, grad_of(G, f->up.data), w->du, xn, f->up.data, N, F, D);
}

/* Balancing losses of one layer: values into out (unweighted), gradients
 * with coefficient coef * cs into dlogits. */
static void balance_backward(bwd_ws *w, const layer_acts *a, const moe_layer_config *lc, int N,
                             const loss_coefs *coefs, float cs, loss_parts *out) {
    int E = lc->n_experts, K = lc->top_k;
    float ca = coefs->aux * cs, cz = coefs->z * cs, ck = coefs->kl * cs;
    if (ca > 0)
        out->aux += aux_loss(w->dlogits_r, a->router_logits, a->sel_expert, N, E, K, lc->score, ca,
                             w->dwork) / ca;
    else
        out->aux += aux_loss(NULL, a->router_logits, a->sel_expert, N, E, K, lc->score, 1.0f, w->dwork);
    if (cz > 0)
        out->z += z_loss(w->dlogits_r, a->router_logits, N, E, cz) / cz;
    else
        out->z += z_loss(NULL, a->router_logits, N, E, 1.0f);
    if (ck > 0)
        out->kl += kl_uniform_loss(w->dlogits_r, a->router_logits, N, E, lc->score, ck, w->dwork) / ck;
    else
        out->kl += kl_uniform_loss(NULL, a->router_logits, N, E, lc->score, 1.0f, w->dwork);
}

/* Router logits gradient from the pairs' weight gradients. */
static void router_grad(bwd_ws *w, const layer_acts *a, const moe_layer_config *lc, int N) {
    int E = lc->n_experts, K = lc->top_k, P = a->n_pairs;
    const int *cnt = a->expert_start;
    if (lc->kind == MOE_ROUTE_HASH) return;
    if (lc->kind == MOE_ROUTE_EXPERT_CHOICE) {
        /* every expert holds the same C pairs (C <= N) */
        int C = P / E;
        for (int t = 0; t < N; t++) {
            memcpy(w->scores + (int64_t)t * E, a->router_logits + (int64_t)t * E, sizeof(float) * (size_t)E);
            softmax(w->scores + (int64_t)t * E, E);
        }
        expert_choice_backward(w->dlogits_r, w->dw_pair, a->pair_token, w->scores, N, E, C, w->work);
        return;
    }
    zero(w->dweights, (int64_t)N * K);
    for (int e = 0; e < E; e++)
        for (int i = cnt[e]; i < cnt[e + 1]; i++) {
            int t = a->pair_token[i];
            for (int j = 0; j < K; j++)
                if (a->sel_expert[t * K + j] == e) w->dweights[t * K + j] += w->dw_pair[i];
        }
    for (int t = 0; t < N; t++)
        router_backward(w->dlogits_r + (int64_t)t * E, w->dweights + (int64_t)t * K,
                        a->router_logits + (int64_t)t * E, a->sel_expert + (int64_t)t * K, E, K,
                        lc->score, lc->norm_topk, lc->routed_scale);
}

static void moe_backward(moe_session *s, bwd_ws *w, const train_grads *G, int l, int N,
                         const loss_coefs *coefs, float cs, loss_parts *out) {
    const moe_config *c = &s->m->cfg;
    const moe_layer_config *lc = &c->layer[l];
    const layer_w *lw = &s->m->layers[l];
    const layer_acts *a = &s->acts->layer[l];
    int E = lc->n_experts, P = a->n_pairs;
    int64_t D = c->dim, F = lc->expert_dim;
    const int *cnt = a->expert_start;

    /* combine: out[t] += weight * y */
    for (int i = 0; i < P; i++) {
        const float *dxt = w->dx + (int64_t)a->pair_token[i] * D, *y = a->ye + (int64_t)i * D;
        float *dy = w->dye + (int64_t)i * D, wt = a->pair_weight[i];
        for (int64_t d = 0; d < D; d++) dy[d] = wt * dxt[d];
        w->dw_pair[i] = dot(dxt, y, (int)D);
    }

    /* experts: down, SwiGLU, gate and up; one parallel region per product */
    swiglu_recompute(w->h, a->ge, a->ue, (int64_t)P * F);
    zero(w->dh, (int64_t)P * F);
    int nt = 0;
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        if (!n) continue;
        const mat *Wd = &lw->experts[e].down;
        w->tasks[nt++] = (lin_bwd_task){w->dh + cnt[e] * F, grad_of(G, Wd->data), w->dye + cnt[e] * D,
                                        w->h + cnt[e] * F, Wd->data, n, D, F};
    }
    linear_backward_grouped(s->pool, w->tasks, nt);
    zero(w->dg, (int64_t)P * F);
    zero(w->du, (int64_t)P * F);
    swiglu_backward(w->dg, w->du, w->dh, a->ge, a->ue, (int64_t)P * F);
    for (int i = 0; i < P; i++)
        memcpy(w->xe + (int64_t)i * D, a->xn_ffn + (int64_t)a->pair_token[i] * D, sizeof(float) * (size_t)D);
    zero(w->dxe, (int64_t)P * D);
    for (int pass = 0; pass < 2; pass++) { /* gate then up: both write dxe rows */
        nt = 0;
        for (int e = 0; e < E; e++) {
            int64_t n = cnt[e + 1] - cnt[e];
            if (!n) continue;
            const mat *W = pass ? &lw->experts[e].up : &lw->experts[e].gate;
            const float *dy = (pass ? w->du : w->dg) + cnt[e] * F;
            w->tasks[nt++] = (lin_bwd_task){w->dxe + cnt[e] * D, grad_of(G, W->data), dy,
                                            w->xe + cnt[e] * D, W->data, n, F, D};
        }
        linear_backward_grouped(s->pool, w->tasks, nt);
    }
    zero(w->dxn, (int64_t)N * D);
    for (int i = 0; i < P; i++) {
        float *d = w->dxn + (int64_t)a->pair_token[i] * D;
        const float *g = w->dxe + (int64_t)i * D;
        for (int64_t k = 0; k < D; k++) d[k] += g[k];
    }

    /* router: weights' gradient, balancing losses, then the gate matrix */
    if (lc->kind != MOE_ROUTE_HASH) {
        zero(w->dlogits_r, (int64_t)N * E);
        router_grad(w, a, lc, N);
        balance_backward(w, a, lc, N, coefs, cs, out);
        linear_backward(s->pool, w->dxn, grad_of(G, lw->router.data), w->dlogits_r, a->xn_ffn,
                        lw->router.data, N, E, D);
        if (a->noise_raw) { /* the noise scale's projection */
            zero(w->work, (int64_t)N * E);
            noisy_logits_backward(NULL, w->work, w->dlogits_r, a->noise_eps, a->noise_raw, N, E);
            linear_backward(s->pool, w->dxn, grad_of(G, lw->router_noise.data), w->work, a->xn_ffn,
                            lw->router_noise.data, N, E, D);
        }
    }

    /* shared expert: out += g(x) * shared(x) */
    if (lc->n_shared > 0) {
        for (int t = 0; t < N; t++) {
            float g = lc->shared_gate ? 1.0f / (1.0f + expf(-a->gate_logit[t])) : 1.0f;
            const float *dxt = w->dx + (int64_t)t * D, *so = a->shared_out + (int64_t)t * D;
            float *ds = w->dshared + (int64_t)t * D;
            for (int64_t d = 0; d < D; d++) ds[d] = g * dxt[d];
            w->dgl[t] = dot(dxt, so, (int)D) * g * (1.0f - g);
        }
        dense_backward(s, w, G, &lw->shared, a->xn_ffn, a->h_gate, a->h_up, w->dshared, N,
                       lc->shared_dim);
        if (lc->shared_gate)
            linear_backward(s->pool, w->dxn, grad_of(G, lw->shared_gate.data), w->dgl, a->xn_ffn,
                            lw->shared_gate.data, N, 1, D);
    }
}

void ffn_backward(moe_session *s, bwd_ws *w, const train_grads *G, int l, int N,
                  const loss_coefs *coefs, float coef_scale, loss_parts *out) {
    const moe_config *c = &s->m->cfg;
    const layer_w *lw = &s->m->layers[l];
    const layer_acts *a = &s->acts->layer[l];
    if (c->layer[l].moe) {
        moe_backward(s, w, G, l, N, coefs, coef_scale, out);
    } else {
        zero(w->dxn, (int64_t)N * c->dim);
        dense_backward(s, w, G, &lw->dense, a->xn_ffn, a->h_gate, a->h_up, w->dx, N,
                       c->layer[l].ffn_dim);
    }
    rmsnorm_backward_rows(w->dx, grad_of(G, lw->ffn_norm), w->dxn, a->x_ffn, lw->ffn_norm, N,
                          (int)c->dim, c->norm_eps);
}
