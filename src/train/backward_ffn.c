/*
 * backward_ffn.c - the backward pass of a layer's FFN block: dense SwiGLU,
 * or MoE (combine, experts, dispatch, router, balancing losses, shared
 * expert), then the block's RMSNorm. gpt_oss: router bias, expert biases,
 * the clamped SwiGLU, and fused expert tensors (fused.h: the per-expert
 * copies' gradients go to a side array, folded at the end of the pass). Mirrors src/model/moe_ffn.c and
 * router.c; the balancing losses are those of docs/TRAINING.md.
 */
#include "train/backward_impl.h"

#include <math.h>
#include <string.h>

static void zero(float *p, int64_t n) { memset(p, 0, sizeof(float) * (size_t)n); }

/* One SwiGLU FFN: dy [N][D] -> dxn [N][D] +=, weight gradients +=. h =
 * silu(g) * u is recomputed with the forward's kernel (the same bits). */
static void dense_backward(moe_session *s, bwd_ws *w, const train_grads *G, const ffn_w *f,
                           const float *xn, const float *gpre, const float *upre, const float *dy,
                           int N, int64_t F) {
    int64_t D = s->m->cfg.dim;
    bwd_swiglu(s->pool, w->h, gpre, upre, N * F);
    bwd_linear(s, w, w->dh, grad_of(G, f->down.data), dy, w->h, f->down.data, N, D, F, 1);
    bwd_swiglu_backward(s->pool, w->dg, w->du, w->dh, gpre, upre, N * F);
    bwd_linear(s, w, w->dxn, grad_of(G, f->gate.data), w->dg, xn, f->gate.data, N, F, D, 0);
    bwd_linear(s, w, w->dxn, grad_of(G, f->up.data), w->du, xn, f->up.data, N, F, D, 0);
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
static void router_grad(const kern_cfg *k, bwd_ws *w, const layer_acts *a, const moe_layer_config *lc,
                        int N) {
    int E = lc->n_experts, K = lc->top_k, P = a->n_pairs;
    const int *cnt = a->expert_start;
    if (lc->kind == MOE_ROUTE_HASH) return;
    if (lc->kind == MOE_ROUTE_EXPERT_CHOICE) {
        /* every expert holds the same C pairs (C <= N) */
        int C = P / E;
        for (int t = 0; t < N; t++) {
            memcpy(w->scores + (int64_t)t * E, a->router_logits + (int64_t)t * E, sizeof(float) * (size_t)E);
            softmax(k, w->scores + (int64_t)t * E, E);
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

/* gpt_oss's expert biases: per expert, db_gate and db_up += the sums of its
 * pairs' dg and du (the dgu rows), db_down += the sum of its pairs' dye. */
static void expert_bias_backward(bwd_ws *w, const train_grads *G, const layer_w *lw,
                                 const int *cnt, int E, int64_t D, int64_t F) {
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        const ffn_w *x = &lw->experts[e];
        if (!n) continue;
        if (x->bd) bias_backward(fused_grad(&w->fx, G, w->og, x->bd), w->dye + cnt[e] * D, n, D);
        for (int64_t i = cnt[e]; i < cnt[e + 1]; i++) {
            const float *dgu = w->dg + i * 2 * F;
            float *bg = x->bg ? fused_grad(&w->fx, G, w->og, x->bg) : NULL;
            float *bu = x->bu ? fused_grad(&w->fx, G, w->og, x->bu) : NULL;
            for (int64_t f = 0; f < F; f++) {
                if (bg) bg[f] += dgu[f];
                if (bu) bu[f] += dgu[F + f];
            }
        }
    }
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
    bwd_combine(s->pool, w->dye, w->dw_pair, w->dx, a->ye, a->pair_weight, a->pair_token, P, D);

    /* experts: down, SwiGLU, gate and up; one parallel region per product */
    int nt = 0; /* a->he: the forward's SwiGLU output, kept in the tape */
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        if (!n) continue;
        const mat *Wd = &lw->experts[e].down;
        w->tasks[nt++] = (lin_bwd_task){w->dh + cnt[e] * F, fused_grad(&w->fx, G, w->og, Wd->data),
                                        w->dye + cnt[e] * D, a->he + cnt[e] * F, Wd->data, n, D, F};
    }
    linear_backward_grouped_mode(s->pool, w->tasks, nt, 1, w->grads_zero);
    /* gate and up together: dgu rows = (dg | du), so per expert
     *   dxe = dgu [W_gate; W_up]   one product with K = 2F (written once)
     *   dW_gate = dg^T xe,  dW_up = du^T xe
     * (xe: the forward's gathered inputs, kept in the tape) */
    float *dgu = w->dg;
    if (lc->act == MOE_ACT_OSS_GLU)
        bwd_oss_glu_backward_rows(s->pool, dgu, w->dh, a->ge, a->ue, P, F, lc->act_alpha,
                                  lc->act_limit);
    else
        bwd_swiglu_backward_rows(s->pool, dgu, w->dh, a->ge, a->ue, P, F);
    int no = 0;
    for (int e = 0; e < E; e++) {
        int64_t n = cnt[e + 1] - cnt[e];
        if (!n) continue;
        const ffn_w *x = &lw->experts[e];
        const float *dy = dgu + cnt[e] * 2 * F, *xe = a->xe + cnt[e] * D;
        w->ops[no++] = (gemm_op){w->dxe + cnt[e] * D, D, dy, 2 * F, 1, x->gate.data, D, 1,
                                 n, D, 2 * F, 1, x->up.data, F};
        w->ops[no++] = (gemm_op){fused_grad(&w->fx, G, w->og, x->gate.data), D, dy, 1, 2 * F, xe,
                                 D, 1, F, D, n, w->grads_zero, NULL, 0};
        w->ops[no++] = (gemm_op){fused_grad(&w->fx, G, w->og, x->up.data), D, dy + F, 1, 2 * F,
                                 xe, D, 1, F, D, n, w->grads_zero, NULL, 0};
    }
    gemm_run(s->pool, w->ops, no);
    if (lc->expert_bias) expert_bias_backward(w, G, lw, cnt, E, D, F);
    bwd_token_sum(s->pool, w->dxn, w->dxe, a->pair_token, N, P, D, w->tok_start, w->tok_pairs);

    /* router: weights' gradient, balancing losses, then the gate matrix */
    if (lc->kind != MOE_ROUTE_HASH) {
        zero(w->dlogits_r, (int64_t)N * E);
        router_grad(kern_of(s->pool), w, a, lc, N);
        balance_backward(w, a, lc, N, coefs, cs, out);
        bwd_linear(s, w, w->dxn, grad_of(G, lw->router.data), w->dlogits_r, a->xn_ffn,
                   lw->router.data, N, E, D, 0);
        if (lw->router_b) bias_backward(grad_of(G, lw->router_b), w->dlogits_r, N, E);
        if (a->noise_raw) { /* the noise scale's projection */
            zero(w->work, (int64_t)N * E);
            noisy_logits_backward(NULL, w->work, w->dlogits_r, a->noise_eps, a->noise_raw, N, E);
            bwd_linear(s, w, w->dxn, grad_of(G, lw->router_noise.data), w->work, a->xn_ffn,
                       lw->router_noise.data, N, E, D, 0);
        }
    }

    /* shared expert: out += g(x) * shared(x) */
    if (lc->n_shared > 0) {
        for (int t = 0; t < N; t++) {
            float g = lc->shared_gate ? 1.0f / (1.0f + expf(-a->gate_logit[t])) : 1.0f;
            const float *dxt = w->dx + (int64_t)t * D, *so = a->shared_out + (int64_t)t * D;
            float *ds = w->dshared + (int64_t)t * D;
            for (int64_t d = 0; d < D; d++) ds[d] = g * dxt[d];
            w->dgl[t] = dot(kern_of(s->pool), dxt, so, (int)D) * g * (1.0f - g);
        }
        dense_backward(s, w, G, &lw->shared, a->xn_ffn, a->h_gate, a->h_up, w->dshared, N,
                       lc->shared_dim);
        if (lc->shared_gate)
            bwd_linear(s, w, w->dxn, grad_of(G, lw->shared_gate.data), w->dgl, a->xn_ffn,
                       lw->shared_gate.data, N, 1, D, 0);
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
    rmsnorm_backward_rows_pool(s->pool, w->dx, grad_of(G, lw->ffn_norm), w->dxn, a->x_ffn,
                               lw->ffn_norm, N, (int)c->dim, c->norm_eps, w->rnorm);
}
