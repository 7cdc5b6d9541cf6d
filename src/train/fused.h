/*
 * fused.h - training a model whose checkpoint stores the routed experts as
 * transformers' fused tensors (gpt_oss: gate_up_proj [E][D][2F] computed as
 * x @ W with gate at the even and up at the odd columns, its bias [E][2F]
 * interleaved alike, down_proj [E][F][D]; model/weights.c).
 *
 * The loader reads those into per-expert copies (gate, up [F][D], down
 * [D][F], bias vectors) outside the checkpoint's mapping, and the forward
 * reads the copies. The mapping stays the parameter array (params.h), so:
 *   - the backward writes the copies' gradients into a side array laid out
 *     as the copies (fused_grad), then folds them into the gradients of
 *     the fused tensors, the layout of the file (fused_fold);
 *   - after each optimizer step the copies are rebuilt from the updated
 *     fused tensors (fused_sync).
 * down_proj_bias [E][D] is read in place (f32) and needs neither.
 */
#ifndef MOE_TRAIN_FUSED_H
#define MOE_TRAIN_FUSED_H

#include "model/model.h"
#include "train/backward.h"

typedef struct fused_layer {
    int layer;
    float *gu;  /* [E][D][2F] gate_up_proj in the mapping */
    float *gub; /* [E][2F] gate_up_proj_bias, or NULL */
    float *dt;  /* [E][F][D] down_proj */
} fused_layer;

typedef struct fused_experts {
    int n;               /* layers with fused experts (0: a plain checkpoint) */
    fused_layer *l;      /* [n] */
    const float *own_lo; /* the per-expert copies lie in [own_lo, own_lo + own_n) */
    int64_t own_n;
} fused_experts;

/* Find the fused tensors of m (loaded from one safetensors file). A model
 * without them gets n = 0 and nothing allocated. */
int fused_init(fused_experts *f, const moe_model *m, moe_err *err);
void fused_free(fused_experts *f);

/* Gradient slot of a weight the forward reads: in the mapping (grad_of), or
 * in og [own_n], the side array of the per-expert copies. */
static inline float *fused_grad(const fused_experts *f, const train_grads *G, float *og,
                                const void *w) {
    const float *p = w;
    if (f->n && p >= f->own_lo && p < f->own_lo + f->own_n) return og + (p - f->own_lo);
    return grad_of(G, p);
}

/* G's fused tensor gradients += og re-laid out as the file; og zeroed. */
void fused_fold(const fused_experts *f, const moe_model *m, const train_grads *G, float *og);

/* The per-expert copies rebuilt from the mapping's fused tensors. */
void fused_sync(const fused_experts *f, moe_model *m);

#endif
