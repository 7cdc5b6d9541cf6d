/*
 * backward_impl.h - the backward pass's scratch, shared by backward.c
 * (driver, attention, embeddings, head) and backward_ffn.c (dense, MoE,
 * router, balancing losses). N tokens, P pairs.
 */
#ifndef MOE_TRAIN_BACKWARD_IMPL_H
#define MOE_TRAIN_BACKWARD_IMPL_H

#include "train/backward.h"
#include "train/fused.h"
#include "train/grad_ops.h"
#include "kernels/gemm.h"

/* backward_ffn.c: the FFN block of layer l, from w->dx (gradient of the
 * block's output, also the residual) to w->dx += input gradient. */
void ffn_backward(moe_session *s, bwd_ws *w, const train_grads *G, int l, int N,
                  const loss_coefs *coefs, float coef_scale, loss_parts *out);

/* backward_mla.c: latent attention of layer l (kv_lora_rank), from w->dx
 * (gradient after the attention residual) to w->dx += the gradient through
 * the block; B sequences of T tokens. */
void mla_backward(moe_session *s, bwd_ws *w, const train_grads *G, int l, int B, int T);

/* backward_par.c: the element and row work between the GEMMs, threaded
 * (deterministic: each output element has one owner and a fixed order). */
/* h = silu(g) * u over n elements (vmath_swiglu) */
void bwd_swiglu(pool *p, float *h, const float *g, const float *u, int64_t n);
/* dg, du WRITTEN from dh (vmath_swiglu_backward) */
void bwd_swiglu_backward(pool *p, float *dg, float *du, const float *dh, const float *g,
                         const float *u, int64_t n);
/* The same per row into one buffer: dgu row i = (dg_i [F] | du_i [F]),
 * rows of dh, g, u of F; n rows */
void bwd_swiglu_backward_rows(pool *p, float *dgu, const float *dh, const float *g,
                              const float *u, int64_t n, int64_t F);
/* The same for gpt_oss's clamped SwiGLU (oss_glu_backward), written */
void bwd_oss_glu_backward_rows(pool *p, float *dgu, const float *dh, const float *g,
                               const float *u, int64_t n, int64_t F, float alpha, float limit);
/* MoE combine backward over P pairs: dye[i] = weight[i] * dx[pair_token[i]],
 * dw_pair[i] = dx[pair_token[i]] . ye[i] (both written) */
void bwd_combine(pool *p, float *dye, float *dw_pair, const float *dx, const float *ye,
                 const float *weight, const int *pair_token, int64_t P, int64_t D);
/* dxn[t] = sum over token t's pairs, in pair order, of dxe rows (written;
 * 0 for a token without pairs). start [N+1], pairs [P]: int scratch. */
void bwd_token_sum(pool *p, float *dxn, const float *dxe, const int *pair_token, int64_t N,
                   int64_t P, int64_t D, int *start, int *pairs);

struct bwd_ws {
    int n_tokens;        /* N the buffers hold */
    float *dx;           /* [N][D] gradient of the residual stream */
    float *dxn;          /* [N][D] gradient of a block's normalized input */
    float *datt;         /* [N][H*Dh] */
    float *q1, *q2, *q4; /* [N][H*Dh] q + bias, after norm, after clip+rope */
    float *k1, *k2, *k4; /* [N][G*Dh] */
    float *v1, *v3;      /* [N][G*Dh] v + bias, after clip */
    float *dq, *dk, *dv; /* [N][H*Dh], [N][G*Dh] x2 */
    float *dq1, *dk1;    /* q/k norm input gradients */
    float *att_scratch;  /* threads * attention_backward_scratch(T) */
    /* latent attention (backward_mla.c; R = kv_lora_rank, QL = q_lora_rank;
     * datt, q4, k4, v3, dq, dk, dv then hold heads of Dk = Dn + Dr and Dv) */
    float *mla_c, *mla_cn;       /* [N][R] latent, its norm (kv_b_proj's input) */
    float *mla_dcn, *mla_dc;     /* [N][R] their gradients */
    float *mla_kvb, *mla_dkvb;   /* [N][H*(Dn+Dv)] kv_b_proj's output, its gradient */
    float *mla_dkva;             /* [N][R+Dr] kv_a_proj_with_mqa's output gradient */
    float *mla_qan, *mla_dqan;   /* [N][QL] q_a_layernorm's output, its gradient */
    float *mla_dqa;              /* [N][QL] q_a_proj's output gradient */
    float *h;            /* [max(P*F, N*Fd)] SwiGLU output (recomputed) */
    float *dh;           /* same size */
    float *dg, *du;      /* one [2 * that] buffer: du = dg + that; the MoE
                            backward uses it as dgu [P][2F] (bwd_swiglu_backward_rows) */
    float *dxe;          /* [P][D] gradient of the gathered expert inputs */
    float *dye;          /* [P][D] */
    float *dw_pair;      /* [P] gradient of each pair's weight */
    float *dweights;     /* [N][Kmax] per token slot */
    float *dlogits_r;    /* [N][Emax] router logits gradient */
    float *scores;       /* [N][Emax] */
    float *work;         /* [N][Emax] */
    float *dshared;      /* [N][D] */
    float *dgl;          /* [N] shared gate logit gradient */
    float *mod_dout;     /* [N][D] Mixture-of-Depths: the gradient of a MoD layer's
                            output, then of its input (NULL without MoD layers) */
    float *mod_dr;       /* [N] its router logits' gradient */
    double *dwork;       /* [2*Emax] */
    double *rnorm;       /* [N] per-row RMSNorm factors (rmsnorm_backward_rows_pool) */
    int *tok_start;      /* [N+1] pairs of each token (bwd_token_sum) */
    int *tok_pairs;      /* [P] */
    lin_bwd_task *tasks; /* [Emax] grouped backward work list */
    gemm_op *ops;        /* [3*Emax] */
    int grads_zero;      /* bwd_ws_set_grads_zero: dW products overwrite */
    fused_experts fx;    /* fused expert tensors (gpt_oss checkpoints), or none */
    float *og;           /* [fx.own_n] gradients of the per-expert copies (fused.h) */
    void *mem;           /* the float buffers' one allocation */
};

/* One linear's backward with the pass's modes: dx overwritten when dx_set,
 * dW overwritten when the gradients were zero (w->grads_zero). */
static inline void bwd_linear(moe_session *s, bwd_ws *w, float *dx, float *dW, const float *dy,
                              const float *x, const float *W, int64_t n, int64_t out, int64_t in,
                              int dx_set) {
    lin_bwd_task t = {dx, dW, dy, x, W, n, out, in};
    linear_backward_grouped_mode(s->pool, &t, 1, dx_set, w->grads_zero);
}

#endif
