/*
 * moe_init.h - a model with random weights from a moe_config: DIR/config.json
 * and DIR/model.safetensors in the Hugging Face layout (`moe init`, and the
 * trainer's fresh start). Weights ~ N(0, std), norms 1; each tensor's values
 * come from generators seeded by (seed, tensor name), so the files do not
 * depend on the number of threads.
 *
 * Same conventions as moe.h: 0 on success, -1 with *err filled on error.
 */
#ifndef MOE_INIT_H
#define MOE_INIT_H

#include <stdint.h>

#include "moe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How every tensor is stored. */
typedef enum {
    MOE_INIT_F32 = 0,
    MOE_INIT_F16,
    MOE_INIT_BF16,
} moe_init_type;

typedef struct moe_init_opts {
    moe_init_type type;
    uint64_t seed;
    float std;       /* weights ~ N(0, std); norms are 1 */
    int n_threads;   /* threads making random numbers, 0 = online CPUs */
    void (*progress)(void *user, int64_t bytes_done, int64_t bytes_total); /* or NULL */
    void *user;
    int mxfp4_experts; /* 1: gpt_oss experts as MXFP4 blocks + scales, as the released
                          checkpoints store them (config.json's quantization_config) */
    float embed_std;   /* > 0: the token embedding ~ N(0, embed_std) instead of std. With
                          std-sized embeddings every later layer of a random model routes
                          almost all tokens to a few experts (the residual stream is mostly
                          what the layers add, alike for every token); embeddings near 1
                          keep each token's identity and spread the routing as a trained
                          router does (docs/PERF.md) */
} moe_init_opts;

/* Read dir/config.json (any architecture moe runs, with its "moe" key)
 * into cfg, checked as moe_model_load checks it; no weights are read. */
int moe_config_load(moe_config *cfg, const char *dir, moe_err *err);

/* Check a configuration as config.json's reader does (sizes, head counts,
 * per-layer experts and top-k, ...); `where` names it in the message. */
int moe_config_validate(const moe_config *cfg, const char *where, moe_err *err);

/* Bytes the weights take as `type`; parameters and tensors through the
 * pointers (may be NULL). -1 if out of memory. */
int64_t moe_init_bytes(const moe_config *cfg, moe_init_type type, int64_t *n_params, int *n_tensors);
/* The same for the options of moe_init_random (MXFP4 experts counted as such). */
int64_t moe_init_size(const moe_config *cfg, const moe_init_opts *o, int64_t *n_params,
                      int *n_tensors);

/* DIR/model.safetensors (atomically) and DIR/config.json; DIR must exist. */
int moe_init_random(const moe_config *cfg, const char *dir, const moe_init_opts *o, moe_err *err);

/* The same model written straight to one GGUF file, as `moe quantize
 * --type` (or `moe convert`) would write it from moe_init_random's
 * directory: the same bytes, without the safetensors copy. The values are
 * made as o->type (then quantized), o->mxfp4_experts as for the directory.
 * It streams: memory stays at a few MiB per thread whatever the size. */
typedef struct moe_init_gguf_opts {
    int type;         /* a moe_qtype (moe_quant.h): Q8_0, Q4_0, Q4_K, Q5_K, Q6_K,
                         MXFP4 with llama-quantize's rules as `moe quantize`;
                         F32 / F16 / BF16: every 2-D weight in it (`moe convert
                         --type`); -1: as stored (`moe convert`) */
    const char *name; /* general.name, or NULL */
} moe_init_gguf_opts;

/* Bytes of tensor data of that file (without alignment padding), its
 * parameters and tensors (may be NULL); -1 with *err filled when the model
 * cannot be written so (what GGUF cannot express, an unknown type). */
int64_t moe_init_gguf_size(const moe_config *cfg, const moe_init_opts *o,
                           const moe_init_gguf_opts *g, int64_t *n_params, int *n_tensors,
                           moe_err *err);

/* Write it at path (a temporary file renamed at the end; nothing is left
 * on failure). */
int moe_init_gguf(const moe_config *cfg, const char *path, const moe_init_opts *o,
                  const moe_init_gguf_opts *g, moe_err *err);

#ifdef __cplusplus
}
#endif
#endif
