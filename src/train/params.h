/*
 * params.h - a model's weights as trainable parameters. Training loads an
 * f32 checkpoint written as one safetensors file; its mapping (private,
 * made writable) IS the parameter array, so the forward reads the weights
 * the optimizer updates, and the gradient of any weight is found from its
 * address (train_grads in backward.h).
 */
#ifndef MOE_TRAIN_PARAMS_H
#define MOE_TRAIN_PARAMS_H

#include "model/model.h"
#include "train/fused.h"
#include "train/optim.h"

typedef struct train_params {
    float *base;             /* first parameter element (writable) */
    int64_t n;               /* elements from base to the last tensor's end */
    optim_tensor *tensors;   /* [n_tensors] trained tensors, by offset */
    int n_tensors;
    int64_t n_state;         /* elements of each AdamW moment array: the trained
                                tensors' sizes summed (their moments packed) */
    float **sel_bias;        /* [n_bias] selection biases: updated by the
                                load rule, not by the optimizer */
    int64_t *sel_bias_len;
    int n_bias;
    fused_experts fx;        /* fused expert tensors (gpt_oss) whose per-expert
                                copies the forward reads (fused.h) */
} train_params;

/* Requires every tensor F32 and one file. Makes the mapping writable
 * (private: the file on disk never changes). */
int train_params_init(train_params *p, moe_model *m, moe_err *err);
void train_params_free(train_params *p);

/* Packs the moments of p->tensors (after the list changed, train/freeze.h):
 * each tensor's state_gap so that their moments lie end to end in
 * [0, n_state). train_params_init calls it. */
void train_params_pack_state(train_params *p);

/* After an optimizer step: the per-expert copies the forward reads are
 * rebuilt from the updated fused expert tensors (no-op without them). */
void train_params_sync(train_params *p, moe_model *m);

/* DeepSeek-V3 aux-loss-free balancing, after an optimizer step: each
 * layer's selection bias moves by rate * sign(mean load - load_e), with the
 * loads of the session's last recorded forward. */
void train_bias_update(moe_session *s, float rate);

#endif
