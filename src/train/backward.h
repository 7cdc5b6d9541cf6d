/*
 * backward.h - the backward pass of the whole model: from the logits of a
 * recorded forward (model_forward_seqs on a session with an activation tape)
 * to the gradient of the training loss with respect to every parameter.
 *
 * Parameters are f32 and lie in one region (the training checkpoint's
 * mapping, made writable); gradients lie in an array of the same layout, so
 * the gradient of any weight is found from its address (grad_of).
 */
#ifndef MOE_TRAIN_BACKWARD_H
#define MOE_TRAIN_BACKWARD_H

#include "model/model.h"

typedef struct train_grads {
    const float *base; /* first parameter element */
    float *g;          /* [n] gradients, laid out as the parameters */
    int64_t n;
} train_grads;

static inline float *grad_of(const train_grads *t, const void *w) {
    return t->g + ((const float *)w - t->base);
}

typedef struct loss_coefs {
    float aux;  /* alpha: Switch/GShard load-balancing loss */
    float z;    /* beta: router z-loss */
    float kl;   /* gamma: KL(uniform || mean router probability) */
    float mod;  /* Mixture-of-Depths: the routers' binary cross-entropy */
} loss_coefs;

/* Unweighted loss parts of one batch (docs/TRAINING.md). */
typedef struct loss_parts {
    double ce_sum;     /* summed cross-entropy over counted targets */
    int64_t ce_count;  /* counted targets */
    double aux, z, kl; /* means over MoE layers */
    /* Mixture-of-Depths layers, means over their tokens and layers: */
    double mod_bce;    /* BCE(r, 1 if the token was among its sequence's top C) */
    double mod_acc;    /* share of tokens where (r > 0) agrees with that */
    double mod_frac;   /* share of tokens the causal rule (r > 0) sends through */
} loss_parts;

typedef struct bwd_ws bwd_ws;

/* 0 when the backward covers every layer and switch of c, else -1 with a
 * message naming what it lacks: qwen3_next's linear_attention (Gated
 * DeltaNet) layers, its attention output gate and zero-centred norms
 * (such models are inference-only), a clamped SwiGLU outside the routed
 * experts. */
int bwd_check_model(const moe_config *c, moe_err *err);

/* Scratch for batches of up to n_tokens tokens (refuses what
 * bwd_check_model refuses). */
int bwd_ws_new(bwd_ws **out, const moe_session *s, int n_tokens, moe_err *err);
void bwd_ws_free(bwd_ws *w);

/* The next model_backward may OVERWRITE the gradients of the weights that
 * go through a matrix product (their dW is stored, not added: no read of
 * the old values). Only when every gradient is zero before it, as on a
 * step's first micro-batch after the optimizer cleared them; model_backward
 * resets it (one call only). */
void bwd_ws_set_grads_zero(bwd_ws *w, int zero);

/* Backward of the last model_forward_seqs(s, ids, B, T, logits): logits
 * [B*T][V] are turned into their gradient in place. Gradients accumulate
 * into G (callers zero it per step). ce_scale multiplies the cross-entropy
 * gradient (1 / targets counted in the whole step); coef_scale multiplies
 * the balancing losses' coefficients (1 / micro-batches). */
int model_backward(moe_session *s, bwd_ws *w, const train_grads *G, const int32_t *targets,
                   int B, int T, float *logits, float ce_scale, const loss_coefs *coefs,
                   float coef_scale, loss_parts *out, moe_err *err);

#endif
