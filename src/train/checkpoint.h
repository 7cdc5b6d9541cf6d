/*
 * checkpoint.h - training checkpoints (layout and atomicity in
 * checkpoint.c and include/moe_train.h).
 */
#ifndef MOE_TRAIN_CHECKPOINT_H
#define MOE_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "train/params.h"

typedef struct ckpt_state {
    int64_t step;       /* optimizer steps done */
    uint64_t rng[4];    /* data sampler state after them */
    uint64_t noise_rng[4]; /* router noise state after them */
    int batch, seq, accum;
    double loss;        /* loss of the last step (information) */
    char freeze[128];   /* the frozen parameter groups (freeze.h), "" = none */
    int added_experts;  /* experts the run appended to each MoE layer, 0 = none */
} ckpt_state;

/* Write OUT/step-N atomically and point OUT/latest at it. Its config.json
 * is config_text (ckpt_config_f32), or written from m's config when NULL.
 * saved (may be NULL) receives its path. */
int ckpt_save(const char *out_dir, const moe_model *m, const train_params *P, const float *adam_m,
              const float *adam_v, const ckpt_state *st, const char *tokenizer,
              const char *config_text, char *saved, size_t saved_len, moe_err *err);

/* A checkpoint of other contents (a LoRA adapter): OUT/step-N gets what
 * write(ctx, dir) puts in dir, trainer_state.json and the tokenizer, and
 * becomes OUT/latest, as atomically as ckpt_save. */
int ckpt_save_with(const char *out_dir, const ckpt_state *st, const char *tokenizer,
                   int (*write)(void *ctx, const char *dir, moe_err *err), void *ctx,
                   char *saved, size_t saved_len, moe_err *err);

/* The config.json text a checkpoint of the model whose config.json is src
 * carries: src's, with the first "torch_dtype" and "dtype" values float32
 * (a "torch_dtype" added when neither is there), since training keeps f32
 * weights; a config with a "quantization_config" is refused. Training
 * never changes the model's description, so the fields moe has no use for
 * and layouts hf_config_write cannot write (gpt_oss) pass through. *out is
 * malloc'ed. */
int ckpt_config_f32(const char *src, char **out, moe_err *err);
/* The same text written to dst. */
int ckpt_copy_config_f32(const char *src, const char *dst, moe_err *err);

int ckpt_read_state(const char *dir, ckpt_state *st, moe_err *err);

/* AdamW moments of every trained tensor, by name. */
int ckpt_load_optimizer(const char *dir, const train_params *P, float *adam_m, float *adam_v,
                        moe_err *err);

/* Keep the `keep` newest step-N directories (N <= newest), remove older. */
void ckpt_prune(const char *out_dir, int keep, int64_t newest);

void ckpt_remove_dir(const char *dir);

#endif
