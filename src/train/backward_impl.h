/*
 * backward_impl.h - the backward pass's scratch, shared by backward.c
 * (driver, attention, embeddings, head) and backward_ffn.c (dense, MoE,
 * router, balancing losses). N tokens, P pairs.
 */
#ifndef MOE_TRAIN_BACKWARD_IMPL_H
#define MOE_TRAIN_BACKWARD_IMPL_H

#include "train/backward.h"
#include "train/grad_ops.h"

/* backward_ffn.c: the FFN block of layer l, from w->dx (gradient of the
 * block's output, also the residual) to w->dx += input gradient. */
void ffn_backward(moe_session *s, bwd_ws *w, const train_grads *G, int l, int N,
                  const loss_coefs *coefs, float coef_scale, loss_parts *out);

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
    float *h;            /* [max(P*F, N*Fd)] SwiGLU output (recomputed) */
    float *dh, *dg, *du; /* same size */
    float *xe, *dxe;     /* [P][D] gathered inputs, their gradient */
    float *dye;          /* [P][D] */
    float *dw_pair;      /* [P] gradient of each pair's weight */
    float *dweights;     /* [N][Kmax] per token slot */
    float *dlogits_r;    /* [N][Emax] router logits gradient */
    float *scores;       /* [N][Emax] */
    float *work;         /* [N][Emax] */
    float *dshared;      /* [N][D] */
    float *dgl;          /* [N] shared gate logit gradient */
    double *dwork;       /* [2*Emax] */
    lin_bwd_task *tasks; /* [Emax] grouped backward work list */
    void *mem;           /* the float buffers' one allocation */
};

#endif
