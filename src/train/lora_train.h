/*
 * lora_train.h - LoRA fine-tuning inside the trainer: the base weights stay
 * frozen and only the adapters (lora.h) carry AdamW state.
 *
 * The forward reads the model's own f32 weights, so each targeted weight
 * holds W0 + scale * B A (merged): the loss and the gradient dL/dW of the
 * backward are exactly those of the adapted model, and the adapters'
 * gradients follow from dW (dA = scale B^T dW, dB = scale dW A^T). After
 * each update W0 is read back from the base checkpoint's file (its private
 * mapping never changes the file) and the new delta added: no drift, and no
 * second copy of the weights in memory. The base's other weights and its
 * selection biases do not move.
 */
#ifndef MOE_TRAIN_LORA_TRAIN_H
#define MOE_TRAIN_LORA_TRAIN_H

#include "train/backward.h"
#include "train/lora.h"
#include "train/optim.h"

typedef struct lora_trainer lora_trainer;

/* Adapters of rank r on m (whose weights are the f32 checkpoint st_path,
 * one file, made writable by train_params_init), peft's init from seed,
 * merged in. base: base_model_name_or_path to record. */
int lora_trainer_new(lora_trainer **out, moe_model *m, const char *st_path, int r, double alpha,
                     const char *targets, uint64_t seed, const char *base, moe_err *err);
void lora_trainer_free(lora_trainer *lt);

/* Resuming: the adapters and their AdamW moments of the checkpoint dir
 * (lora_trainer_write's files), which must be of this rank, alpha and
 * targets; merged in. */
int lora_trainer_resume(lora_trainer *lt, moe_model *m, const char *dir, moe_err *err);

/* The adapter (for tests). */
lora_adapter *lora_trainer_adapter(lora_trainer *lt);

/* One step from the accumulated full gradients G (all weights' dW): the
 * adapters' gradients, AdamW on them alone (grad_norm: theirs), the merge
 * redone; then every element of G->g is zeroed for the next step. On a
 * NaN/Inf gradient returns -1 with nothing updated. */
int lora_trainer_step(lora_trainer *lt, pool *p, const train_grads *G, int64_t step, double lr,
                      const adamw_opts *o, double *grad_norm, moe_err *err);

/* The adapters' gradients from G alone (no update), into g [n_params]. */
void lora_trainer_grads(lora_trainer *lt, const train_grads *G, float *g);

/* Write the checkpoint payload into dir: adapter_config.json,
 * adapter_model.safetensors and optimizer.safetensors (the adapters' AdamW
 * moments, "m.NAME" / "v.NAME"). A ckpt_save_with writer (ctx: lt). */
int lora_trainer_write(void *lt, const char *dir, moe_err *err);

#endif
