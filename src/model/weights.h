/*
 * weights.h - one loader for every source of weights: the walk of the
 * weight-role table (tensor_map.h) over the model's config, with a
 * source-specific "find this tensor" callback (safetensors in
 * model_load.c, GGUF in model_gguf.c).
 *
 * Order of work, so that a file's claims never size an allocation before
 * they are checked:
 *   1. the config is validated (moe_config_validate, the same checks for
 *      every source);
 *   2. every tensor the config implies is found and its shape and type
 *      checked against the table, and the bytes the copies need are added
 *      up (f32 copies of non-f32 vectors, un-permuted q/k rows, re-laid
 *      fused experts);
 *   3. only then are the weight tables and the copies allocated and every
 *      weight pointed at its bytes; the parameter and byte counts
 *      (moe_model_stats) are taken from the same walk.
 */
#ifndef MOE_MODEL_WEIGHTS_H
#define MOE_MODEL_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "moe.h"
#include "base/dtype.h"
#include "model/tensor_map.h"

struct moe_model;

/* A tensor as its source stores it. */
typedef struct wt_tensor {
    const void *data;
    dtype type;
    int n_dims;        /* 1..4 (4: transformers' MXFP4 blocks) */
    int64_t shape[4];  /* outermost first ([E][rows][cols]) */
    int64_t nbytes;    /* bytes of data */
} wt_tensor;

/* Finds the tensor of e (whose name in the source's format is `name`):
 * 0 found (*out filled), 1 missing, -1 an error already in err (a type the
 * source cannot give, a stacked tensor of the wrong shape). */
typedef int (*wt_find_fn)(void *ctx, const tm_entry *e, const char *name, wt_tensor *out,
                          moe_err *err);

typedef struct wt_source {
    const char *path;           /* for messages */
    tm_format format;           /* whose names */
    const unsigned char *split; /* GGUF: [L] layers with experts one tensor each, or NULL */
    int rope_perm;              /* q/k rows interleaved (llama.cpp's llama) */
    wt_find_fn find;
    void *ctx;
    int experts_in_file;        /* 1: routed experts must be used where they lie in the
                                   file (an expert cache reads them), never re-laid */
} wt_source;

/* Point every weight of m (m->cfg set) at its bytes in the source, after
 * checking all of them; fills m->stats. On failure m keeps nothing the
 * caller must not free with moe_model_free. */
int weights_load(struct moe_model *m, const wt_source *src, moe_err *err);

#endif
