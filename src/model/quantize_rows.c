/*
 * quantize_rows.c - convert runs of weight rows to an output type, in
 * parallel over rows (quantize_impl.h). Every output row depends on one
 * source row only, so the result is the same whatever the thread count.
 */
#include "model/quantize_impl.h"

#include <string.h>

#include "base/dtype.h"
#include "formats/gguf.h"
#include "kernels/quant.h"

size_t qz_row_bytes(int type, int64_t cols) {
    int block = gguf_type_block(type);
    if (block <= 0 || cols <= 0 || cols % block) return 0;
    return (size_t)(cols / block) * (size_t)gguf_type_size(type);
}

static void rows_fn(void *ctx, int64_t i0, int64_t i1, int tid) {
    const qz_rows *j = ctx;
    const mat *s = j->src;
    int64_t cols = s->cols;
    size_t orb = qz_row_bytes(j->type, cols);
    size_t srb = (size_t)dtype_row_bytes(s->type, cols);
    int same = dtype_to_ggml(s->type) == j->type && !j->col_map;
    float *x = j->scratch + (size_t)tid * 2 * (size_t)cols, *y = x + cols;
    const qtype_traits *q = quant_traits(j->type);
    for (int64_t i = i0; i < i1; i++) {
        int64_t src_row = j->row_map ? j->row_map[j->r0 + i] : qz_perm_row(j->r0 + i, j->perm_dh);
        char *out = (char *)j->dst + (size_t)i * orb;
        if (same) {
            memcpy(out, (const char *)s->data + (size_t)src_row * srb, orb);
            continue;
        }
        mat_row_f32(x, s, src_row);
        if (j->col_map) {
            for (int64_t c = 0; c < cols; c++) y[c] = x[j->col_map[c]];
            memcpy(x, y, (size_t)cols * sizeof(float));
        }
        if (q) {
            q->quantize(x, out, cols);
        } else if (j->type == 0) { /* F32 */
            memcpy(out, x, (size_t)cols * sizeof(float));
        } else {
            uint16_t *h = (uint16_t *)(void *)out;
            if (j->type == 1)
                for (int64_t c = 0; c < cols; c++) h[c] = f32_to_f16(x[c]);
            else
                for (int64_t c = 0; c < cols; c++) h[c] = f32_to_bf16(x[c]);
        }
    }
}

void qz_convert_rows(pool *p, const qz_rows *job) {
    /* K-quant rows cost ~100x a copy: small grains keep both threads busy */
    int64_t grain = job->src->cols >= 4096 ? 4 : 16;
    pool_for(p, job->n, grain, rows_fn, (void *)job);
}
