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
#include "kernels/quant.h"
#include "model/tensor_map.h"

typedef struct model_init_opts {
    dtype type;       /* stored dtype of every tensor */
    uint64_t seed;
    float std;        /* weights ~ N(0, std); norms are 1 */
    pool *pool;       /* makes random numbers in parallel (may be NULL) */
    void (*progress)(void *user, int64_t bytes_done, int64_t bytes_total); /* or NULL */
    void *user;
    int mxfp4_experts; /* 1: gpt_oss's fused expert matrices as MXFP4 blocks and scales
                          (as the released checkpoints store them) */
    float embed_std;   /* > 0: the token embedding's std instead of std (moe_init_opts) */
} model_init_opts;

/* The std of a random tensor: embed_std for the token embedding when set,
 * else std (both writers, so a GGUF equals the directory quantized). */
static inline float model_init_std(const model_init_opts *o, int is_embed) {
    return is_embed && o->embed_std > 0 ? o->embed_std : o->std;
}

/* DIR/model.safetensors (atomically) and DIR/config.json; DIR must exist. */
int model_init_random(const moe_config *cfg, const char *dir, const model_init_opts *o,
                      moe_err *err);

/* Bytes the weights take as `type`; parameters and tensors through the
 * pointers (may be NULL). -1 if out of memory. */
int64_t model_init_bytes(const moe_config *cfg, dtype type, int mxfp4_experts, int64_t *n_params,
                         int *n_tensors);

/* ------------------------------------------------------------ the values
 * Shared with init_gguf.c, so that a model written straight to GGUF holds
 * the values of the one written to safetensors. */

#define MODEL_INIT_CHUNK (1 << 16) /* elements per random stream */

/* How a fresh model of c fills a role's tensor in its HF file: 0 N(0, std),
 * 1 ones (norms), 2 zeros (zero-centred norms, A_log, selection biases). */
int model_init_fill(const moe_config *c, tm_role r);

/* Elements [a, b) of chunk k (elements k * MODEL_INIT_CHUNK on) of the HF
 * tensor `name`, stored as `type` into out[0, b - a); tmp holds
 * MODEL_INIT_CHUNK floats. The stream is seeded by (seed, name, k). */
void model_init_values(const char *name, uint64_t seed, float std, int fill, int64_t k, int a,
                       int b, dtype type, void *out, float *tmp);

/* Row r (nn.Linear orientation, planes one after another) of gpt_oss's
 * fused expert matrix `base` as MXFP4 blocks: C values N(0, std) from the
 * stream (seed, base, r); tmp holds C floats. */
void model_init_mx_row(const char *base, uint64_t seed, float std, int64_t r, int64_t C,
                       block_mxfp4 *out, float *tmp);

/* ------------------------------------------------------------ GGUF
 * init_gguf.c: the same model written straight to a GGUF file as `moe
 * quantize --type` (or `moe convert`) writes it from the safetensors one. */

struct qz_opts;

/* What to write: q->mode QZ_QUANT (llama-quantize's rules for q->type),
 * QZ_FLOAT (2-D weights as a float type) or QZ_KEEP (as o->type); name is
 * general.name (NULL: none). Bounded memory: a few MiB per thread. */
int model_init_gguf(const moe_config *cfg, const char *path, const model_init_opts *o,
                    const struct qz_opts *q, const char *name, moe_err *err);

/* Bytes of tensor data that file holds, parameters and tensors (may be
 * NULL); -1 with *err filled when the plan fails. */
int64_t model_init_gguf_bytes(const moe_config *cfg, const model_init_opts *o,
                              const struct qz_opts *q, int64_t *n_params, int *n_tensors,
                              moe_err *err);

#endif
