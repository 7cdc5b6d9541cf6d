/*
 * backward.c - the model's backward pass, driver and attention half:
 *
 *   logits -> cross-entropy gradient -> lm_head -> final norm
 *   for each layer, last to first:
 *       FFN block (backward_ffn.c), its norm, the residual
 *       o_proj, attention (recomputing q, k, v from the recorded raw
 *       projections: bias, q/k norm, clip, rope over the rotated dims
 *       (partial rotary: the first rope_dim of each head) with the
 *       forward's own cos/sin tables, YaRN's attention factor included;
 *       the layer's window; sink logits), q/k/v projections, norm;
 *       latent attention (kv_lora_rank) in backward_mla.c
 *   embedding rows
 *
 * With an inputs_only tape (activation recomputation) each layer's forward
 * is first run again from its kept input (model_layer_replay), which
 * refills the one layer's worth of activations the tape shares.
 *
 * Every step mirrors the forward in src/model; grad_ops.h holds each op's
 * backward. Gradients accumulate into train_grads.
 */
#include "train/backward_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "kernels/bigmem.h"

static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

typedef struct sizes {
    int64_t N, D, HD, GD, P, F, Emax, Kmax;
    int64_t R, KVB, QL; /* latent attention: kv_lora_rank + qk_rope_dim, H*(Dn+Dv), q_lora_rank */
} sizes;

static sizes ws_sizes(const moe_config *c, int N) {
    /* latent attention's heads: q/k of head_dim, v and the output of v_head_dim */
    int64_t hd = c->kv_lora_rank ? imax(c->head_dim, c->v_head_dim) : c->head_dim;
    sizes z = {N, c->dim, (int64_t)c->n_heads * hd, (int64_t)c->n_kv_heads * hd, 0, 1, 1, 1,
               0, 0, 0};
    if (c->kv_lora_rank) {
        z.R = (int64_t)c->kv_lora_rank + c->qk_rope_dim;
        z.KVB = (int64_t)c->n_heads * (c->qk_nope_dim + c->v_head_dim);
        z.QL = c->q_lora_rank;
    }
    for (int l = 0; l < c->n_layers; l++) {
        const moe_layer_config *lc = &c->layer[l];
        if (!lc->moe) {
            z.F = imax(z.F, (int64_t)N * lc->ffn_dim);
            continue;
        }
        int64_t P = lc->kind == MOE_ROUTE_EXPERT_CHOICE ? (int64_t)N * imax(lc->n_experts, lc->top_k)
                                                         : (int64_t)N * lc->top_k;
        z.P = imax(z.P, P);
        z.F = imax(z.F, imax(P * lc->expert_dim, (int64_t)N * lc->shared_dim));
        z.Emax = imax(z.Emax, lc->n_experts);
        z.Kmax = imax(z.Kmax, lc->top_k);
    }
    return z;
}

int bwd_check_model(const moe_config *c, moe_err *err) {
    for (int i = 0; i < c->n_layers; i++) {
        const moe_layer_config *lc = &c->layer[i];
        if (lc->linear_attn)
            return moe_fail(err, "%s: layer %d is a linear_attention layer (Gated "
                            "DeltaNet): it has no backward; such models are inference-only",
                            c->model_type, i);
        if ((!lc->moe || lc->n_shared > 0) && lc->act != MOE_ACT_SILU)
            return moe_fail(err, "%s: layer %d: the clamped SwiGLU is trainable in routed "
                            "experts only, not in a dense or shared FFN", c->model_type, i);
    }
    const char *what = c->attn_out_gate ? "the attention output gate"
                       : c->norm_offset   ? "zero-centred norms"
                                          : NULL;
    if (what)
        return moe_fail(err, "%s: %s has no backward yet; such models are inference-only",
                        c->model_type, what);
    return 0;
}

int bwd_ws_new(bwd_ws **out, const moe_session *s, int n_tokens, moe_err *err) {
    *out = NULL;
    const moe_config *c = &s->m->cfg;
    if (bwd_check_model(c, err)) return -1;
    for (int l = 0; c->kv_lora_rank && l < c->n_layers; l++)
        if (!s->m->layers[l].wkv_b.data)
            return moe_fail(err, "%s: layer %d: latent attention trains on kv_b_proj (the "
                            "Hugging Face layout), not on split attn_k_b / attn_v_b",
                            c->model_type, l);
    sizes z = ws_sizes(c, n_tokens);
    int threads = pool_size(s->pool);
    int64_t att = (int64_t)threads * attention_backward_scratch(s->n_ctx);
    int has_mod = 0;
    for (int l = 0; l < c->n_layers; l++) has_mod |= c->layer[l].mod;
    int64_t n = (has_mod ? z.N * z.D + z.N + 64 : 0) + 3 * z.N * z.D + 8 * z.N * z.HD + 12 * z.N * z.GD + att + 5 * z.F + 2 * z.P * z.D +
                z.P + z.N * z.Kmax + 3 * z.N * z.Emax + z.N +
                z.N * (5 * z.R + 2 * z.KVB + 3 * z.QL) + 80 * 32;
    bwd_ws *w = calloc(1, sizeof *w);
    if (!w) return moe_fail(err, "backward: out of memory");
    if (fused_init(&w->fx, s->m, err)) {
        free(w);
        return -1;
    }
    float *m = big_calloc((size_t)n * sizeof(float));
    double *dw = malloc((size_t)(2 * z.Emax + z.N) * sizeof(double));
    int *iw = malloc((size_t)(z.N + 1 + z.P) * sizeof(int));
    lin_bwd_task *t = malloc((size_t)z.Emax * sizeof(lin_bwd_task));
    gemm_op *ops = malloc((size_t)(3 * z.Emax) * sizeof(gemm_op));
    if (w->fx.own_n) w->og = calloc((size_t)w->fx.own_n, sizeof(float));
    if (!m || !dw || !iw || !t || !ops || (w->fx.own_n && !w->og)) {
        double mib = (n + w->fx.own_n) * 4.0 / 1048576.0;
        fused_free(&w->fx);
        free(w->og);
        free(w);
        free(m);
        free(dw);
        free(iw);
        free(t);
        free(ops);
        return moe_fail(err, "backward: cannot allocate %.1f MiB of scratch for %d tokens", mib,
                        n_tokens);
    }
    w->n_tokens = n_tokens;
    w->mem = m;
    w->dwork = dw;
    w->rnorm = dw + 2 * z.Emax;
    w->tok_start = iw;
    w->tok_pairs = iw + z.N + 1;
    w->tasks = t;
    w->ops = ops;
    float *p = m;
#define TAKE(field, count) (w->field = p, p += ((count) + 31) & ~(int64_t)31)
    TAKE(dx, z.N * z.D);
    TAKE(dxn, z.N * z.D);
    TAKE(dshared, z.N * z.D);
    TAKE(datt, z.N * z.HD);
    TAKE(q1, z.N * z.HD);
    TAKE(q2, z.N * z.HD);
    TAKE(q4, z.N * z.HD);
    TAKE(dq, z.N * z.HD);
    TAKE(dq1, z.N * z.HD);
    TAKE(k1, z.N * z.GD);
    TAKE(k2, z.N * z.GD);
    TAKE(k4, z.N * z.GD);
    TAKE(dk, z.N * z.GD);
    TAKE(dk1, z.N * z.GD);
    TAKE(v1, z.N * z.GD);
    TAKE(v3, z.N * z.GD);
    TAKE(dv, z.N * z.GD);
    TAKE(att_scratch, att);
    if (z.R) {
        TAKE(mla_c, z.N * z.R);
        TAKE(mla_cn, z.N * z.R);
        TAKE(mla_dcn, z.N * z.R);
        TAKE(mla_dc, z.N * z.R);
        TAKE(mla_dkva, z.N * z.R);
        TAKE(mla_kvb, z.N * z.KVB);
        TAKE(mla_dkvb, z.N * z.KVB);
    }
    if (z.QL) {
        TAKE(mla_qan, z.N * z.QL);
        TAKE(mla_dqan, z.N * z.QL);
        TAKE(mla_dqa, z.N * z.QL);
    }
    TAKE(h, z.F);
    TAKE(dh, z.F);
    TAKE(dg, 2 * z.F);
    w->du = w->dg + z.F;
    TAKE(dxe, z.P * z.D);
    TAKE(dye, z.P * z.D);
    TAKE(dw_pair, z.P);
    TAKE(dweights, z.N * z.Kmax);
    TAKE(dlogits_r, z.N * z.Emax);
    TAKE(scores, z.N * z.Emax);
    TAKE(work, z.N * z.Emax);
    TAKE(dgl, z.N);
    if (has_mod) {
        TAKE(mod_dout, z.N * z.D);
        TAKE(mod_dr, z.N);
    }
#undef TAKE
    *out = w;
    return 0;
}

void bwd_ws_set_grads_zero(bwd_ws *w, int zero) { w->grads_zero = zero; }

void bwd_ws_free(bwd_ws *w) {
    if (!w) return;
    fused_free(&w->fx);
    free(w->og);
    free(w->mem);
    free(w->dwork);
    free(w->tok_start);
    free(w->tasks);
    free(w->ops);
    free(w);
}

static void clamp_copy(float *y, const float *x, int64_t n, float c) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] < -c ? -c : x[i] > c ? c : x[i];
}

typedef struct attn_ctx {
    moe_session *s;
    bwd_ws *w;
    const layer_acts *a;
    const layer_w *lw;
    const train_grads *G;
    int plain; /* no bias, q/k norm or clipping: only the rotation to redo */
} attn_ctx;

/* Recompute, per token, what the attention's dot products used. */
static void attn_recompute(void *vc, int64_t t0, int64_t t1, int tid) {
    const attn_ctx *x = vc;
    bwd_ws *w = x->w;
    const layer_acts *a = x->a;
    const layer_w *lw = x->lw;
    const moe_config *c = &x->s->m->cfg;
    int64_t H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim, HD = H * Dh, GD = G * Dh;
    int rd = c->rope_dim ? c->rope_dim : (int)Dh; /* partial rotary: the first rd dims */
    const float *rc = x->s->rope_cos, *rsn = x->s->rope_sin;
    for (int64_t t = t0; t < t1 && x->plain; t++) { /* q4, k4 = rope(q, k); v is the tape's */
        const float *cs = rc + t * (Dh / 2), *sn = rsn + t * (Dh / 2);
        float *q4 = w->q4 + t * HD, *k4 = w->k4 + t * GD;
        memcpy(q4, a->q + t * HD, sizeof(float) * (size_t)HD);
        memcpy(k4, a->k + t * GD, sizeof(float) * (size_t)GD);
        for (int64_t h = 0; h < H; h++) rope_apply(q4 + h * Dh, cs, sn, rd);
        for (int64_t g = 0; g < G; g++) rope_apply(k4 + g * Dh, cs, sn, rd);
    }
    for (int64_t t = t0; t < t1 && !x->plain; t++) {
        float *q1 = w->q1 + t * HD, *q2 = w->q2 + t * HD, *q4 = w->q4 + t * HD;
        float *k1 = w->k1 + t * GD, *k2 = w->k2 + t * GD, *k4 = w->k4 + t * GD;
        float *v1 = w->v1 + t * GD, *v3 = w->v3 + t * GD;
        memcpy(q1, a->q + t * HD, sizeof(float) * (size_t)HD);
        memcpy(k1, a->k + t * GD, sizeof(float) * (size_t)GD);
        memcpy(v1, a->v + t * GD, sizeof(float) * (size_t)GD);
        for (int64_t i = 0; lw->bq && i < HD; i++) q1[i] += lw->bq[i];
        for (int64_t i = 0; lw->bk && i < GD; i++) k1[i] += lw->bk[i];
        for (int64_t i = 0; lw->bv && i < GD; i++) v1[i] += lw->bv[i];
        if (c->qk_norm == MOE_QKNORM_HEAD) {
            for (int64_t h = 0; h < H; h++) rmsnorm(q2 + h * Dh, q1 + h * Dh, lw->q_norm, (int)Dh, c->norm_eps);
            for (int64_t g = 0; g < G; g++) rmsnorm(k2 + g * Dh, k1 + g * Dh, lw->k_norm, (int)Dh, c->norm_eps);
        } else if (c->qk_norm == MOE_QKNORM_FULL) {
            rmsnorm(q2, q1, lw->q_norm, (int)HD, c->norm_eps);
            rmsnorm(k2, k1, lw->k_norm, (int)GD, c->norm_eps);
        } else {
            memcpy(q2, q1, sizeof(float) * (size_t)HD);
            memcpy(k2, k1, sizeof(float) * (size_t)GD);
        }
        if (c->clip_qkv > 0) {
            clamp_copy(q4, q2, HD, c->clip_qkv);
            clamp_copy(k4, k2, GD, c->clip_qkv);
            clamp_copy(v3, v1, GD, c->clip_qkv);
        } else {
            memcpy(q4, q2, sizeof(float) * (size_t)HD);
            memcpy(k4, k2, sizeof(float) * (size_t)GD);
            memcpy(v3, v1, sizeof(float) * (size_t)GD);
        }
        const float *cs = rc + t * (Dh / 2), *sn = rsn + t * (Dh / 2);
        for (int64_t h = 0; h < H; h++) rope_apply(q4 + h * Dh, cs, sn, rd);
        for (int64_t g = 0; g < G; g++) rope_apply(k4 + g * Dh, cs, sn, rd);
    }
}

/* Per token, from dq, dk, dv of the rotated, clipped, normalized q/k/v
 * back to the raw projections (dq1, dk1; dv in place). With q/k norm
 * weights the tokens add into one weight gradient: the caller then runs
 * this on one thread. */
static void attn_pointwise_backward(void *vc, int64_t t0, int64_t t1, int tid) {
    const attn_ctx *x = vc;
    bwd_ws *w = x->w;
    const layer_w *lw = x->lw;
    const moe_config *c = &x->s->m->cfg;
    int64_t H = c->n_heads, Gk = c->n_kv_heads, Dh = c->head_dim, HD = H * Dh, GD = Gk * Dh;
    float *dqn = lw->q_norm ? grad_of(x->G, lw->q_norm) : NULL;
    float *dkn = lw->k_norm ? grad_of(x->G, lw->k_norm) : NULL;
    int rd = c->rope_dim ? c->rope_dim : (int)Dh;
    for (int64_t t = t0; t < t1; t++) {
        float *dq = w->dq + t * HD, *dk = w->dk + t * GD, *dv = w->dv + t * GD;
        const float *cs = x->s->rope_cos + t * (Dh / 2), *sn = x->s->rope_sin + t * (Dh / 2);
        for (int64_t h = 0; h < H; h++) rope_backward(dq + h * Dh, cs, sn, rd);
        for (int64_t g = 0; g < Gk; g++) rope_backward(dk + g * Dh, cs, sn, rd);
        if (x->plain) continue; /* dq, dk are the projections' gradients */
        if (c->clip_qkv > 0) {
            clamp_backward(dq, w->q2 + t * HD, HD, c->clip_qkv);
            clamp_backward(dk, w->k2 + t * GD, GD, c->clip_qkv);
            clamp_backward(dv, w->v1 + t * GD, GD, c->clip_qkv);
        }
        float *dq1 = w->dq1 + t * HD, *dk1 = w->dk1 + t * GD;
        const float *q1 = w->q1 + t * HD, *k1 = w->k1 + t * GD;
        if (c->qk_norm == MOE_QKNORM_HEAD) {
            for (int64_t h = 0; h < H; h++)
                rmsnorm_backward(dq1 + h * Dh, dqn, dq + h * Dh, q1 + h * Dh, lw->q_norm, (int)Dh, c->norm_eps);
            for (int64_t g = 0; g < Gk; g++)
                rmsnorm_backward(dk1 + g * Dh, dkn, dk + g * Dh, k1 + g * Dh, lw->k_norm, (int)Dh, c->norm_eps);
        } else if (c->qk_norm == MOE_QKNORM_FULL) {
            rmsnorm_backward(dq1, dqn, dq, q1, lw->q_norm, (int)HD, c->norm_eps);
            rmsnorm_backward(dk1, dkn, dk, k1, lw->k_norm, (int)GD, c->norm_eps);
        } else {
            memcpy(dq1, dq, sizeof(float) * (size_t)HD);
            memcpy(dk1, dk, sizeof(float) * (size_t)GD);
        }
    }
}

/* From w->dx (gradient after the attention residual) to w->dx += the
 * gradient through the attention block. */
static void attn_backward(moe_session *s, bwd_ws *w, const train_grads *G, int l, int B, int T) {
    const moe_config *c = &s->m->cfg;
    const layer_w *lw = &s->m->layers[l];
    const layer_acts *a = &s->acts->layer[l];
    int N = B * T;
    int64_t H = c->n_heads, Gk = c->n_kv_heads, Dh = c->head_dim, HD = H * Dh, GD = Gk * Dh,
            D = c->dim;

    /* o_proj */
    bwd_linear(s, w, w->datt, grad_of(G, lw->wo.data), w->dx, a->att, lw->wo.data, N, D, HD, 1);
    if (lw->bo) bias_backward(grad_of(G, lw->bo), w->dx, N, D);

    /* attention core, one sequence at a time */
    int plain = !lw->bq && !lw->bk && !lw->bv && c->qk_norm == MOE_QKNORM_NONE && !(c->clip_qkv > 0);
    attn_ctx x = {s, w, a, lw, G, plain};
    const float *v3 = plain ? a->v : w->v3;
    float *dq1 = plain ? w->dq : w->dq1, *dk1 = plain ? w->dk : w->dk1;
    pool_for(s->pool, N, 16, attn_recompute, &x);
    memset(w->dq, 0, sizeof(float) * (size_t)(N * HD));
    memset(w->dk, 0, sizeof(float) * (size_t)(N * GD));
    memset(w->dv, 0, sizeof(float) * (size_t)(N * GD));
    int window = c->layer[l].full_attention ? 0 : c->sliding_window;
    float *dsinks = lw->sinks ? grad_of(G, lw->sinks) : NULL;
    attn_bwd_dims dims = {T, (int)H, (int)Gk, (int)Dh, (int)Dh, window, c->attn_scale};
    for (int b = 0; b < B; b++) {
        int64_t o = (int64_t)b * T;
        attention_backward_dims(s->pool, w->dq + o * HD, w->dk + o * GD, w->dv + o * GD, dsinks,
                                w->datt + o * HD, w->q4 + o * HD, w->k4 + o * GD, v3 + o * GD,
                                lw->sinks, &dims, w->att_scratch);
    }

    /* rope, clip, q/k norm, bias, per token */
    if (c->qk_norm != MOE_QKNORM_NONE) {
        memset(w->dq1, 0, sizeof(float) * (size_t)(N * HD));
        memset(w->dk1, 0, sizeof(float) * (size_t)(N * GD));
        attn_pointwise_backward(&x, 0, N, 0);
    } else {
        pool_for(s->pool, N, 16, attn_pointwise_backward, &x);
    }
    if (lw->bq) bias_backward(grad_of(G, lw->bq), dq1, N, HD);
    if (lw->bk) bias_backward(grad_of(G, lw->bk), dk1, N, GD);
    if (lw->bv) bias_backward(grad_of(G, lw->bv), w->dv, N, GD);

    /* projections and the block's norm */
    bwd_linear(s, w, w->dxn, grad_of(G, lw->wq.data), dq1, a->xn_attn, lw->wq.data, N, HD, D, 1);
    bwd_linear(s, w, w->dxn, grad_of(G, lw->wk.data), dk1, a->xn_attn, lw->wk.data, N, GD, D, 0);
    bwd_linear(s, w, w->dxn, grad_of(G, lw->wv.data), w->dv, a->xn_attn, lw->wv.data, N, GD, D, 0);
    rmsnorm_backward_rows_pool(s->pool, w->dx, grad_of(G, lw->attn_norm), w->dxn, a->x_attn,
                               lw->attn_norm, N, (int)D, c->norm_eps, w->rnorm);
}

/* A Mixture-of-Depths layer, from w->dx (the gradient of its output, all N
 * tokens) to w->dx = the gradient of its input: out = x + g (y - x) for the
 * rows that went through (g = sigmoid(r), y = the blocks' output, the tape's
 * mod_delta = y - x), out = x for the others; the blocks' backward on the
 * compacted rows only (B sequences of C each); r = w . x gets the gate's
 * gradient and the BCE's (its weight coefs->mod * coef_scale, a mean over
 * the N tokens and the n_mod MoD layers). Adds the layer's BCE, accuracy
 * and causal share to out. */
static int mod_backward(moe_session *s, bwd_ws *w, const train_grads *G, int l, int B, int T,
                        const loss_coefs *coefs, float coef_scale, float cs, int n_mod,
                        loss_parts *out, moe_err *err) {
    const moe_config *c = &s->m->cfg;
    const layer_w *lw = &s->m->layers[l];
    const layer_acts *a = &s->acts->layer[l];
    int N = B * T, n = a->mod_n;
    int64_t D = c->dim;
    if (n % B)
        return moe_fail(err, "backward: Mixture-of-Depths layer %d took %d tokens of %d "
                             "sequences: the backward needs as many of each", l, n, B);
    float *dout = w->mod_dout, *dr = w->mod_dr;
    memcpy(dout, w->dx, sizeof(float) * (size_t)(N * D));
    /* the BCE of every token, its gradient, and the statistics */
    double bce = 0, agree = 0, through = 0;
    float kb = coefs->mod * coef_scale / ((float)N * (float)n_mod);
    for (int i = 0; i < N; i++) {
        float r = a->mod_logit[i], y = (float)a->mod_sel[i];
        float g = 1.0f / (1.0f + expf(-r));
        bce += (r > 0 ? r : 0) - r * y + log1pf(expf(-fabsf(r)));
        agree += (r > 0) == (a->mod_sel[i] != 0);
        through += r > 0;
        dr[i] = kb * (g - y);
    }
    out->mod_bce += bce / N;
    out->mod_acc += agree / N;
    out->mod_frac += through / N;
    /* the gate: dr += g' (dout . delta); the blocks see g dout */
    for (int j = 0; j < n; j++) {
        int i = a->mod_row[j];
        float g = 1.0f / (1.0f + expf(-a->mod_logit[i]));
        const float *dl = a->mod_delta + (int64_t)j * D, *d = dout + (int64_t)i * D;
        double dot = 0;
        for (int64_t k = 0; k < D; k++) dot += (double)d[k] * dl[k];
        dr[i] += (float)(g * (1.0f - g) * dot);
        float *dxj = w->dx + (int64_t)j * D;
        for (int64_t k = 0; k < D; k++) dxj[k] = g * d[k];
    }
    mod_enter_recorded(s, l);
    ffn_backward(s, w, G, l, n, coefs, cs, out);
    attn_backward(s, w, G, l, B, n / B);
    mod_leave(s);
    /* the input: dout (skipped), (1 - g) dout + the blocks' (taken), + dr w */
    for (int j = 0; j < n; j++) {
        int i = a->mod_row[j];
        float g = 1.0f / (1.0f + expf(-a->mod_logit[i]));
        float *d = dout + (int64_t)i * D;
        const float *dxj = w->dx + (int64_t)j * D;
        for (int64_t k = 0; k < D; k++) d[k] = (1.0f - g) * d[k] + dxj[k];
    }
    const float *wr = lw->mod_router.data;
    float *dwr = grad_of(G, wr);
    for (int i = 0; i < N; i++) {
        float *d = dout + (int64_t)i * D;
        const float *x = a->mod_in + (int64_t)i * D;
        for (int64_t k = 0; k < D; k++) {
            d[k] += dr[i] * wr[k];
            dwr[k] += dr[i] * x[k];
        }
    }
    memcpy(w->dx, dout, sizeof(float) * (size_t)(N * D));
    return 0;
}

typedef struct embed_ctx {
    float *dE;
    const float *dx;
    const int32_t *ids;
    int N;
    int64_t D;
} embed_ctx;

/* embedding rows over columns [d0, d1): tokens in order, so a row that
 * occurs twice adds in the same order on any thread count */
static void embed_cols(void *vc, int64_t d0, int64_t d1, int tid) {
    const embed_ctx *c = vc;
    for (int t = 0; t < c->N; t++) {
        float *row = c->dE + (int64_t)c->ids[t] * c->D;
        const float *d = c->dx + (int64_t)t * c->D;
        for (int64_t i = d0; i < d1; i++) row[i] += d[i];
    }
}

int model_backward(moe_session *s, bwd_ws *w, const train_grads *G, const int32_t *targets,
                   int B, int T, float *logits, float ce_scale, const loss_coefs *coefs,
                   float coef_scale, loss_parts *out, moe_err *err) {
    moe_model *m = s->m;
    const moe_config *c = &m->cfg;
    int N = B * T;
    int64_t D = c->dim, V = c->vocab;
    if (!s->acts || N > w->n_tokens || N > s->acts->n_tokens) {
        w->grads_zero = 0;
        return moe_fail(err, "backward: %d tokens but activations/scratch hold %d", N,
                        s->acts ? s->acts->n_tokens : 0);
    }
    if (s->acts->inputs_only && N != s->acts->last_tokens) {
        w->grads_zero = 0;
        return moe_fail(err, "backward: %d tokens but the recorded forward ran %d (a layer "
                             "is recomputed from the recorded call)", N, s->acts->last_tokens);
    }
    memset(out, 0, sizeof *out);

    /* head */
    if (cross_entropy_pool(s->pool, logits, logits, targets, N, (int)V, ce_scale, &out->ce_sum,
                           &out->ce_count, err)) {
        w->grads_zero = 0;
        return -1;
    }
    bwd_linear(s, w, w->dxn, grad_of(G, m->lm_head.data), logits, s->acts->xn_final,
               m->lm_head.data, N, V, D, 1);
    memset(w->dx, 0, sizeof(float) * (size_t)(N * D));
    rmsnorm_backward_rows_pool(s->pool, w->dx, grad_of(G, m->final_norm), w->dxn, s->acts->x_final,
                               m->final_norm, N, (int)D, c->norm_eps, w->rnorm);

    int n_moe = 0, n_mod = 0;
    for (int l = 0; l < c->n_layers; l++) {
        n_moe += c->layer[l].moe != 0;
        n_mod += c->layer[l].mod != 0;
    }
    float cs = n_moe ? coef_scale / (float)n_moe : 0.0f;
    for (int l = c->n_layers - 1; l >= 0; l--) {
        /* an inputs_only tape: the layer's activations recomputed from its input */
        if (s->acts->inputs_only && model_layer_replay(s, l, err)) {
            w->grads_zero = 0;
            return -1;
        }
        if (c->layer[l].mod) {
            if (mod_backward(s, w, G, l, B, T, coefs, coef_scale, cs, n_mod, out, err)) {
                w->grads_zero = 0;
                return -1;
            }
            continue;
        }
        ffn_backward(s, w, G, l, N, coefs, cs, out);
        if (c->kv_lora_rank)
            mla_backward(s, w, G, l, B, T);
        else
            attn_backward(s, w, G, l, B, T);
    }
    if (n_moe) {
        out->aux /= n_moe;
        out->z /= n_moe;
        out->kl /= n_moe;
    }
    if (n_mod) {
        out->mod_bce /= n_mod;
        out->mod_acc /= n_mod;
        out->mod_frac /= n_mod;
    }

    /* embedding rows (after the head's: with tied embeddings the head's dW
     * may have been stored over them) */
    embed_ctx ec = {grad_of(G, m->embed.data), w->dx, s->tok_id, N, D};
    pool_for(s->pool, D, 16, embed_cols, &ec);
    if (w->fx.n) fused_fold(&w->fx, m, G, w->og);
    w->grads_zero = 0;
    return 0;
}
