/*
 * quantize_impl.h - what the GGUF and safetensors writers (quantize_gguf.c,
 * quantize_hf.c) share: converting a run of a weight's rows to an output
 * type in parallel (quantize_rows.c).
 */
#ifndef MOE_MODEL_QUANTIZE_IMPL_H
#define MOE_MODEL_QUANTIZE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"
#include "kernels/kernels.h"

/* Rows [r0, r0 + n) of the output tensor, from src. */
typedef struct qz_rows {
    const mat *src;      /* [rows][cols] of any type */
    int64_t r0, n;
    int64_t perm_dh;     /* > 0: output row g is source row perm(g), llama.cpp's q/k
                            RoPE permutation with this head dim (see model_gguf.c) */
    int type;            /* output gguf type */
    void *dst;           /* [n] rows of the output type */
    float *scratch;      /* [threads][2 * cols] */
    const int64_t *row_map; /* or NULL: output row g is source row row_map[g] (a tensor
                               gathered from another's rows: qwen3_next's attn_qkv) */
    const int64_t *col_map; /* or NULL: output column c is source column col_map[c]
                               (value heads reordered, tm_lin_v_map) */
} qz_rows;

/* Bytes of one output row of `type` (0 if cols does not suit it). */
size_t qz_row_bytes(int type, int64_t cols);

/* Convert: a plain copy where the types agree, else widen the source row to
 * f32 and narrow or quantize it (the reference quantizers of quant.h, as
 * llama-quantize runs them without an importance matrix). */
void qz_convert_rows(pool *p, const qz_rows *job);

/* The source row of output row g under the q/k permutation. */
static inline int64_t qz_perm_row(int64_t g, int64_t dh) {
    if (dh <= 0) return g;
    int64_t h = g / dh, r = g % dh;
    return h * dh + (r % 2) * (dh / 2) + r / 2;
}

/* Output chunks hold at most this many bytes (at least one row). */
#define QZ_CHUNK_BYTES ((size_t)8 << 20)

#endif
