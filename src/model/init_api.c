/*
 * init_api.c - include/moe_init.h over model_init.c: the public float types
 * mapped onto the library's dtypes, and a thread pool for the run.
 */
#include "moe_init.h"

#include <string.h>

#include "base/err.h"
#include "base/pool.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "model/model_init.h"
#include "model/quantize.h"

static dtype init_dtype(moe_init_type t) {
    return t == MOE_INIT_F16 ? DT_F16 : t == MOE_INIT_BF16 ? DT_BF16 : DT_F32;
}

int64_t moe_init_bytes(const moe_config *cfg, moe_init_type type, int64_t *n_params, int *n_tensors) {
    return model_init_bytes(cfg, init_dtype(type), 0, n_params, n_tensors);
}

int64_t moe_init_size(const moe_config *cfg, const moe_init_opts *o, int64_t *n_params,
                      int *n_tensors) {
    return model_init_bytes(cfg, init_dtype(o->type), o->mxfp4_experts, n_params, n_tensors);
}

int moe_init_random(const moe_config *cfg, const char *dir, const moe_init_opts *o, moe_err *err) {
    pool *pl = pool_create(o->n_threads);
    if (!pl) return moe_fail(err, "cannot start %d threads", o->n_threads);
    model_init_opts io = {init_dtype(o->type), o->seed,     o->std,          pl,
                          o->progress,         o->user, o->mxfp4_experts, o->embed_std};
    int rc = model_init_random(cfg, dir, &io, err);
    pool_free(pl);
    return rc;
}

/* The plan's options for g->type. */
static int gguf_qopts(const moe_init_gguf_opts *g, qz_opts *q, moe_err *err) {
    memset(q, 0, sizeof *q);
    if (g->type < 0) {
        q->mode = QZ_KEEP;
        return 0;
    }
    switch (g->type) {
    case GGUF_TYPE_F32: case GGUF_TYPE_F16: case GGUF_TYPE_BF16: q->mode = QZ_FLOAT; break;
    case GGUF_TYPE_Q4_0: case GGUF_TYPE_Q8_0: case GGUF_TYPE_Q4_K: case GGUF_TYPE_Q5_K:
    case GGUF_TYPE_Q6_K: case GGUF_TYPE_MXFP4: q->mode = QZ_QUANT; break;
    case GGUF_TYPE_Q4_1: case GGUF_TYPE_Q5_0: case GGUF_TYPE_Q5_1: case GGUF_TYPE_Q2_K:
    case GGUF_TYPE_Q3_K: case GGUF_TYPE_IQ4_NL: case GGUF_TYPE_IQ4_XS: q->mode = QZ_QUANT; break;
    default: return moe_fail(err, "GGUF type %d is not one moe writes", g->type);
    }
    q->type = g->type;
    return 0;
}

int64_t moe_init_gguf_size(const moe_config *cfg, const moe_init_opts *o,
                           const moe_init_gguf_opts *g, int64_t *n_params, int *n_tensors,
                           moe_err *err) {
    qz_opts q;
    if (gguf_qopts(g, &q, err)) return -1;
    model_init_opts io = {init_dtype(o->type), o->seed, o->std, NULL, NULL, NULL, o->mxfp4_experts, o->embed_std};
    return model_init_gguf_bytes(cfg, &io, &q, n_params, n_tensors, err);
}

int moe_init_gguf(const moe_config *cfg, const char *path, const moe_init_opts *o,
                  const moe_init_gguf_opts *g, moe_err *err) {
    qz_opts q;
    if (gguf_qopts(g, &q, err)) return -1;
    pool *pl = pool_create(o->n_threads);
    if (!pl) return moe_fail(err, "cannot start %d threads", o->n_threads);
    model_init_opts io = {init_dtype(o->type), o->seed, o->std,          pl,
                          o->progress,         o->user, o->mxfp4_experts, o->embed_std};
    int rc = model_init_gguf(cfg, path, &io, &q, g->name, err);
    pool_free(pl);
    return rc;
}

int moe_config_load(moe_config *cfg, const char *dir, moe_err *err) {
    return hf_config_load(cfg, dir, err);
}
