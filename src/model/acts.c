/*
 * acts.c - the activation tape: when a session trains, the forward pass
 * keeps in it what the backward pass needs (see layer_acts in model.h). The
 * forward writes most of it in place of its own scratch (the residual
 * stream and norms, q/k/v, attention output, expert inputs, projections,
 * SwiGLU and outputs), so recording costs no copies. One allocation, carved
 * per layer by what that layer has (dense FFN or MoE, shared expert or not).
 *
 * An inputs_only tape (activation recomputation, docs/TRAINING.md) keeps of
 * each layer its input and routing record; every other buffer is one
 * layer's worth, shared by all layers: the forward leaves the last layer's
 * there, and the backward refills it layer by layer (model_layer_replay).
 */
#include "model/model.h"

#include <stdlib.h>

#include "base/err.h"
#include "kernels/bigmem.h"

typedef struct arena {
    char *base; /* NULL while measuring */
    size_t used;
} arena;

static void *take(arena *a, int64_t n, size_t elem) {
    size_t bytes = ((size_t)n * elem + 63) & ~(size_t)63;
    void *p = a->base ? a->base + a->used : NULL;
    a->used += bytes;
    return p;
}
#define TAKE_F(a, n) ((float *)take(a, n, sizeof(float)))
#define TAKE_I(a, n) ((int *)take(a, n, sizeof(int)))

/* keep: what the tape holds of every layer. work: a layer's other buffers,
 * the same arena as keep when everything is kept, or (inputs_only) one
 * region at work_base that every layer reuses, *work_max its size. The
 * attention buffers come first and in the same order in every layer, so a
 * layer's x_ffn never overlaps the next layer's xn_attn (forward.c writes
 * the one from the other). */
static void carve(train_acts *t, const moe_config *c, arena *keep, char *work_base,
                  size_t *work_max) {
    int64_t N = t->n_tokens, D = c->dim, H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim;
    for (int l = 0; l < c->n_layers; l++) {
        const moe_layer_config *lc = &c->layer[l];
        layer_acts *x = &t->layer[l];
        arena shared = {work_base, 0};
        arena *a = t->inputs_only ? &shared : keep;
        x->x_attn = TAKE_F(keep, N * D);
        if (lc->mod) { /* Mixture-of-Depths: the whole call's input and routing */
            x->mod_in = TAKE_F(keep, N * D);
            x->mod_logit = TAKE_F(keep, N);
            x->mod_sel = TAKE_I(keep, N);
            x->mod_row = TAKE_I(keep, N);
            x->mod_delta = TAKE_F(keep, N * D);
        }
        x->xn_attn = TAKE_F(a, N * D);
        x->q = TAKE_F(a, N * H * Dh);
        if (c->kv_lora_rank) { /* latent attention: no k, v (the latent stands for them) */
            if (c->q_lora_rank) x->mla_qa = TAKE_F(a, N * c->q_lora_rank);
            x->mla_kv = TAKE_F(a, N * ((int64_t)c->kv_lora_rank + c->qk_rope_dim));
            x->att = TAKE_F(a, N * H * (Dh > c->v_head_dim ? Dh : c->v_head_dim));
        } else {
            x->k = TAKE_F(a, N * G * Dh);
            x->v = TAKE_F(a, N * G * Dh);
            x->att = TAKE_F(a, N * H * Dh);
        }
        x->x_ffn = TAKE_F(a, N * D);
        x->xn_ffn = TAKE_F(a, N * D);
        int64_t F = lc->moe ? lc->shared_dim : lc->ffn_dim;
        if (F > 0) {
            x->h_gate = TAKE_F(a, N * F);
            x->h_up = TAKE_F(a, N * F);
        }
        if (lc->moe) {
            int64_t E = lc->n_experts, K = lc->top_k, FE = lc->expert_dim;
            /* expert choice may hand one token to every expert */
            int64_t P = lc->kind == MOE_ROUTE_EXPERT_CHOICE ? N * (E > K ? E : K) : N * K;
            /* the routing record: statistics and the bias update read it
             * after the backward, the replay its noise */
            x->router_logits = TAKE_F(keep, N * E);
            if (lc->noise > 0) {
                x->noise_raw = TAKE_F(a, N * E);
                x->noise_eps = TAKE_F(keep, N * E);
            }
            x->sel_expert = TAKE_I(keep, N * K);
            x->expert_start = TAKE_I(keep, E + 1);
            x->sel_weight = TAKE_F(a, N * K);
            x->pair_token = TAKE_I(a, P);
            x->pair_weight = TAKE_F(a, P);
            x->xe = TAKE_F(a, P * c->dim);
            x->ge = TAKE_F(a, P * FE);
            x->ue = TAKE_F(a, P * FE);
            x->he = TAKE_F(a, P * FE);
            x->ye = TAKE_F(a, P * D);
            if (lc->n_shared > 0) {
                x->gate_logit = TAKE_F(a, N);
                x->shared_out = TAKE_F(a, N * D);
            }
        }
        if (shared.used > *work_max) *work_max = shared.used;
    }
    t->x_final = TAKE_F(keep, N * D);
    t->xn_final = TAKE_F(keep, N * D);
}

int model_acts_enable(moe_session *s, int n_tokens, moe_err *err) {
    return model_acts_enable_keep(s, n_tokens, 0, err);
}

int model_acts_enable_keep(moe_session *s, int n_tokens, int inputs_only, moe_err *err) {
    const moe_config *c = &s->m->cfg;
    if (n_tokens <= 0 || n_tokens > s->max_batch)
        return moe_fail(err, "activations for %d tokens: the session runs at most %d per call",
                        n_tokens, s->max_batch);
    int lin = 0;
    for (int i = 0; i < c->n_layers; i++) lin |= c->layer[i].linear_attn;
    const char *what = lin                ? "linear attention (Gated DeltaNet)"
                       : c->attn_out_gate ? "the attention output gate"
                       : c->norm_offset   ? "zero-centred norms"
                                          : NULL;
    if (what)
        return moe_fail(err, "activations: %s: %s is not trainable yet (inference only)",
                        c->model_type, what);
    for (int i = 0; inputs_only && i < c->n_layers; i++)
        if (c->layer[i].mod)
            return moe_fail(err, "activations: layer %d is a Mixture-of-Depths layer: "
                                 "activation recomputation (--recompute) does not cover it; "
                                 "train without it", i);
    train_acts *t = calloc(1, sizeof *t);
    if (!t) return moe_fail(err, "out of memory for the activation tape");
    t->n_tokens = s->max_batch; /* any chunk the session runs fits */
    t->inputs_only = inputs_only != 0;
    t->live = -1;
    t->layer = calloc((size_t)(unsigned)c->n_layers, sizeof *t->layer);
    arena a = {0};
    size_t work = 0;
    if (t->layer) carve(t, c, &a, NULL, &work);
    t->bytes = work + a.used;
    t->mem = t->layer ? big_calloc(t->bytes ? t->bytes : 64) : NULL;
    if (!t->mem) {
        size_t need = t->bytes;
        model_acts_free(t);
        return moe_fail(err, "cannot allocate %.1f MiB of activations for %d tokens", need / 1048576.0,
                        n_tokens);
    }
    /* the shared region first (64-byte multiples: every buffer stays aligned) */
    a = (arena){(char *)t->mem + work, 0};
    work = 0;
    carve(t, c, &a, t->mem, &work);
    model_acts_free(s->acts);
    s->acts = t;
    return 0;
}

void model_acts_free(train_acts *a) {
    if (!a) return;
    free(a->mem);
    free(a->layer);
    free(a);
}
