/*
 * model_init.h - write a random-weight model of a moe_config (see
 * model_init.c).
 */
#ifndef MOE_MODEL_MODEL_INIT_H
#define MOE_MODEL_MODEL_INIT_H

#include <stdint.h>

#include "moe.h"
#include "base/dtype.h"
#include "base/pool.h"

typedef struct model_init_opts {
    dtype type;       /* stored dtype of every tensor */
    uint64_t seed;
    float std;        /* weights ~ N(0, std); norms are 1 */
    pool *pool;       /* makes random numbers in parallel (may be NULL) */
    void (*progress)(void *user, int64_t bytes_done, int64_t bytes_total); /* or NULL */
    void *user;
    int mxfp4_experts; /* 1: gpt_oss's fused expert matrices as MXFP4 blocks and scales
                          (as the released checkpoints store them) */
} model_init_opts;

/* DIR/model.safetensors (atomically) and DIR/config.json; DIR must exist. */
int model_init_random(const moe_config *cfg, const char *dir, const model_init_opts *o,
                      moe_err *err);

/* Bytes the weights take as `type`; parameters and tensors through the
 * pointers (may be NULL). -1 if out of memory. */
int64_t model_init_bytes(const moe_config *cfg, dtype type, int mxfp4_experts, int64_t *n_params,
                         int *n_tensors);

#endif
