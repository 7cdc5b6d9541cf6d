/*
 * quantize_hf.c - write a loaded model (from a GGUF file, typically) as a
 * Hugging Face directory transformers loads: config.json (hf_config_write)
 * and model.safetensors with transformers' tensor names, every weight
 * dequantized / widened / narrowed to one float type, streamed a chunk of
 * rows at a time. The q/k rows of a llama-arch GGUF were already put back
 * in transformers' order by the loader (model_gguf.c). Zero-centred norms
 * (norm_offset), loaded as 1 + w, are written as w. A Gated DeltaNet
 * loaded from llama.cpp's layout goes back to transformers' (hf_lin_src):
 * qwen3next's in_proj_qkvz gathered from attn_qkv and attn_gate, A_log =
 * log(-ssm_a), qwen35moe's tiled value heads grouped by key head again.
 * deepseek2's attn_k_b / attn_v_b are joined into kv_b_proj (hf_kvb_src).
 */
#include "model/quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "formats/hf_config.h"
#include "formats/st_stream.h"
#include "model/model.h"
#include "model/quantize_impl.h"

#define HF_NAME 128

/* transformers' fused gpt_oss expert tensors (weights.c has the layout) from
 * the per-expert weights, as f32: plane p of gate_up_proj [D][2F] (gate at
 * even, up at odd columns) or down_proj [F][D]; the biases [E][2F], [E][D]
 * whole (p 0). out holds rows * cols floats of the entry. */
static int fused_f32(const moe_model *m, const tm_entry *e, int p, float *out, float *row) {
    const ffn_w *ex = m->layers[e->layer].experts;
    int64_t F = m->cfg.layer[e->layer].expert_dim, D = m->cfg.dim;
    switch (e->role) {
    case TM_EXP_GATE_UP:
        for (int64_t j = 0; j < F; j++) {
            mat_row_f32(row, &ex[p].gate, j);
            for (int64_t d = 0; d < D; d++) out[d * 2 * F + 2 * j] = row[d];
            mat_row_f32(row, &ex[p].up, j);
            for (int64_t d = 0; d < D; d++) out[d * 2 * F + 2 * j + 1] = row[d];
        }
        return 0;
    case TM_EXP_DOWN_T:
        for (int64_t d = 0; d < D; d++) {
            mat_row_f32(row, &ex[p].down, d);
            for (int64_t j = 0; j < F; j++) out[j * D + d] = row[j];
        }
        return 0;
    case TM_EXP_GATE_UP_BIAS:
        for (int64_t x = 0; x < e->rows; x++) {
            if (!ex[x].bg || !ex[x].bu) return -1;
            for (int64_t j = 0; j < F; j++) {
                out[x * 2 * F + 2 * j] = ex[x].bg[j];
                out[x * 2 * F + 2 * j + 1] = ex[x].bu[j];
            }
        }
        return 0;
    case TM_EXP_DOWN_BIAS:
        for (int64_t x = 0; x < e->rows; x++) {
            if (!ex[x].bd) return -1;
            memcpy(out + x * D, ex[x].bd, sizeof(float) * (size_t)D);
        }
        return 0;
    default: return -1;
    }
}

/* The next n output rows of a tensor, taken from src's rows r0 .. r0 + n
 * (through the row map when there is one). */
typedef struct hf_run {
    const mat *src;
    int64_t r0, n;
} hf_run;

/* Where a DeltaNet tensor of a model loaded from llama.cpp's layout comes
 * from: runs[] (at most 4 * Hk; returns how many, 0 = the tensor as it is
 * in the model), a[] filled with A_log = log(-ssm_a) (vectors are written
 * from *vec), map[] with the value-head order (*row_map or *col_map). */
static int hf_lin_src(const moe_model *m, const tm_entry *e, hf_run *runs, float *a,
                      int64_t *map, const int64_t **row_map, const int64_t **col_map,
                      mat *vec) {
    const moe_config *c = &m->cfg;
    const layer_w *lw = &m->layers[e->layer];
    *row_map = *col_map = NULL;
    if (e->role == TM_LIN_QKVZ && !lw->lin_qkvz.data && lw->lin_qkv.data) {
        /* per key head [q Dk | k Dk | v r*Dv | z r*Dv] (tm_lin_qkvz_row) */
        int64_t Hk = c->lin_k_heads, Dk = c->lin_k_dim, rDv = (int64_t)(c->lin_v_heads / Hk) * c->lin_v_dim;
        int n = 0;
        for (int64_t hk = 0; hk < Hk; hk++) {
            runs[n++] = (hf_run){&lw->lin_qkv, hk * Dk, Dk};
            runs[n++] = (hf_run){&lw->lin_qkv, Hk * Dk + hk * Dk, Dk};
            runs[n++] = (hf_run){&lw->lin_qkv, 2 * Hk * Dk + hk * rDv, rDv};
            runs[n++] = (hf_run){&lw->lin_z, hk * rDv, rDv};
        }
        return n;
    }
    int axis = tm_lin_v_axis(e->role);
    if (e->role == TM_LIN_A_LOG && !lw->lin_a_log && lw->lin_ssm_a) {
        for (int64_t h = 0; h < e->cols; h++) a[h] = logf(-lw->lin_ssm_a[h]);
        *vec = (mat){a, DT_F32, 1, e->cols};
    }
    if (axis && c->lin_v_tiled) {
        tm_lin_v_map(c, e->role, 0, map, axis == 1 ? e->rows : e->cols);
        *(axis == 1 ? row_map : col_map) = map;
    }
    return 0;
}

/* kv_b_proj of latent attention loaded from llama.cpp's split attn_k_b /
 * attn_v_b: per head h the rows [W_uk Dn | W_uv Dv], W_uk being plane h of
 * attn_k_b transposed (made into kt [H*Dn][R] f32, row = a rows
 * [R][Dn] column) and W_uv plane h of attn_v_b as it is. runs[2 * H]. 0: the
 * model has kv_b_proj itself. */
static int hf_kvb_src(const moe_model *m, const tm_entry *e, hf_run *runs, float *kt,
                      float *row, mat *kmat) {
    const moe_config *c = &m->cfg;
    const layer_w *lw = &m->layers[e->layer];
    if (e->role != TM_ATTN_KV_B || lw->wkv_b.data || !lw->wk_b.data || !lw->wv_b.data) return 0;
    int64_t H = c->n_heads, R = c->kv_lora_rank, Dn = c->qk_nope_dim, Dv = c->v_head_dim;
    for (int64_t h = 0; h < H; h++)
        for (int64_t r = 0; r < R; r++) {
            mat_row_f32(row, &lw->wk_b, h * R + r);
            for (int64_t n = 0; n < Dn; n++) kt[(h * Dn + n) * R + r] = row[n];
        }
    *kmat = (mat){kt, DT_F32, H * Dn, R};
    int n = 0;
    for (int64_t h = 0; h < H; h++) {
        runs[n++] = (hf_run){kmat, h * Dn, Dn};
        runs[n++] = (hf_run){&lw->wv_b, h * Dv, Dv};
    }
    return n;
}

int qz_write_hf(const moe_model *m, const char *dir, int type, const qz_write_opts *o,
                moe_err *err) {
    const moe_config *c = &m->cfg;
    if (type != DT_F32 && type != DT_BF16 && type != DT_F16)
        return moe_fail(err, "%s: safetensors output must be f32, bf16 or f16", dir);
    int gt = dtype_to_ggml((dtype)type);
    int n = tm_list(c, TM_HF, NULL, NULL, 0); /* experts one by one, as transformers names them */
    tm_entry *t = malloc(sizeof *t * (size_t)n);
    st_write_tensor *wt = calloc((size_t)n, sizeof *wt);
    char (*names)[HF_NAME] = calloc((size_t)n, sizeof *names);
    int rc = -1;
    void *buf = NULL;
    float *scratch = NULL, *w0 = NULL, *fused = NULL, *row = NULL; /* w0 [max_cols]: a
                                                   zero-centred norm as stored, or A_log */
    int64_t *map = NULL;               /* [max rows or cols]: a value-head order */
    hf_run *runs = NULL;               /* [4 * Hk + 2 * H + 1] */
    float *kt = NULL;                  /* [H*Dn][R] + [Dn]: W_uk out of attn_k_b */
    mat kmat;
    st_stream st;
    if (!t || !wt || !names) {
        moe_fail(err, "out of memory");
        goto done;
    }
    tm_list(c, TM_HF, NULL, t, n);
    int64_t max_cols = 1, max_len = 1, total = 0, max_fused = 0; /* max_len: of map[] */
    for (int i = 0; i < n; i++) {
        if (tm_hf_name(names[i], HF_NAME, c, &t[i])) {
            moe_fail(err, "%s: tensor %d: no transformers name", dir, i);
            goto done;
        }
        wt[i].name = names[i];
        wt[i].type = (dtype)type;
        wt[i].n_dims = t[i].rows ? 2 : 1;
        wt[i].shape[0] = t[i].rows ? t[i].rows : t[i].cols;
        wt[i].shape[1] = t[i].cols;
        if (tm_role_of(t[i].role)->flags & TMF_MID1) { /* conv1d: [rows][1][cols] */
            wt[i].n_dims = 3;
            wt[i].shape[1] = 1;
            wt[i].shape[2] = t[i].cols;
        }
        if (t[i].planes > 1) { /* a fused expert stack [E][rows][cols] */
            wt[i].n_dims = 3;
            wt[i].shape[0] = t[i].planes;
            wt[i].shape[1] = t[i].rows;
            wt[i].shape[2] = t[i].cols;
        }
        if (t[i].cols > max_cols) max_cols = t[i].cols;
        if (t[i].rows > max_len) max_len = t[i].rows;
        if (tm_role_of(t[i].role)->flags & TMF_FUSED) {
            int64_t k = t[i].rows * t[i].cols, r = t[i].rows > t[i].cols ? t[i].rows : t[i].cols;
            if (k > max_fused) max_fused = k;
            if (r > max_cols) max_cols = r; /* the row fused_f32 widens */
        }
        total += t[i].planes * (t[i].rows ? t[i].rows : 1) * (int64_t)qz_row_bytes(gt, t[i].cols);
    }
    int threads = o && o->pool ? pool_size(o->pool) : 1;
    size_t rb_max = qz_row_bytes(gt, max_cols);
    size_t per = QZ_CHUNK_BYTES / rb_max ? QZ_CHUNK_BYTES / rb_max : 1;
    /* a chunk is QZ_CHUNK_BYTES / orb rows of orb bytes, or one row when wider */
    size_t buf_bytes = per * rb_max > QZ_CHUNK_BYTES ? per * rb_max : QZ_CHUNK_BYTES;
    buf = aligned_alloc(64, (buf_bytes + 63) & ~(size_t)63);
    scratch = malloc(sizeof(float) * 2 * (size_t)max_cols * (size_t)threads);
    w0 = malloc(sizeof(float) * (size_t)max_cols);
    if (max_fused) {
        fused = malloc(sizeof(float) * (size_t)(max_fused + max_cols));
        row = fused ? fused + max_fused : NULL;
    }
    if (max_cols > max_len) max_len = max_cols;
    map = malloc(sizeof(int64_t) * (size_t)max_len);
    runs = malloc(sizeof(hf_run) * (size_t)(4 * c->lin_k_heads + 2 * c->n_heads + 1));
    if (c->kv_lora_rank)
        kt = malloc(sizeof(float) * ((size_t)c->n_heads * (size_t)c->qk_nope_dim *
                                         (size_t)c->kv_lora_rank + (size_t)c->qk_nope_dim));
    if (!buf || !scratch || !w0 || !map || !runs || (max_fused && !fused) ||
        (c->kv_lora_rank && !kt)) {
        moe_fail(err, "out of memory");
        goto done;
    }
    char path[4096];
    if (snprintf(path, sizeof path, "%s/model.safetensors", dir) >= (int)sizeof path) {
        moe_fail(err, "%s: path too long", dir);
        goto done;
    }
    if (sts_begin(&st, path, wt, n, "{\"format\": \"pt\"}", err)) goto done;
    int64_t done_bytes = 0;
    for (int i = 0; i < n; i++)
    for (int p = 0; p < t[i].planes; p++) {
        mat src = {0};
        const int64_t *row_map = NULL, *col_map = NULL;
        int fu = (tm_role_of(t[i].role)->flags & TMF_FUSED) != 0;
        int n_runs = !fu && t[i].layer >= 0 ? hf_lin_src(m, &t[i], runs, w0, map, &row_map,
                                                         &col_map, &src)
                                            : 0;
        if (!n_runs && !fu && t[i].layer >= 0 && c->kv_lora_rank)
            n_runs = hf_kvb_src(m, &t[i], runs, kt,
                                kt + (size_t)c->n_heads * c->qk_nope_dim * c->kv_lora_rank, &kmat);
        if (fu ? fused_f32(m, &t[i], p, fused, row)
               : !n_runs && !src.data && tm_source(m, &t[i], 0, &src)) {
            moe_fail(err, "%s: the model has no weight for %s", dir, names[i]);
            sts_abort(&st);
            goto done;
        }
        int64_t rows = t[i].rows ? t[i].rows : 1;
        if (fu) src = (mat){fused, DT_F32, rows, t[i].cols};
        if (tm_norm_offset(c, t[i].role)) { /* loaded as 1 + w: the file holds w */
            for (int64_t j = 0; j < t[i].cols; j++) w0[j] = ((const float *)src.data)[j] - 1.0f;
            src.data = w0;
        }
        if (!n_runs) runs[n_runs++] = (hf_run){&src, 0, rows};
        size_t orb = qz_row_bytes(gt, t[i].cols);
        int64_t step = (int64_t)(QZ_CHUNK_BYTES / orb ? QZ_CHUNK_BYTES / orb : 1);
        for (int u = 0; u < n_runs; u++)
            for (int64_t r = 0; r < runs[u].n; r += step) {
                int64_t k = runs[u].n - r < step ? runs[u].n - r : step;
                qz_rows job = {.src = runs[u].src, .r0 = runs[u].r0 + r, .n = k, .type = gt,
                               .dst = buf, .scratch = scratch, .row_map = row_map,
                               .col_map = col_map};
                qz_convert_rows(o ? o->pool : NULL, &job);
                if (sts_write(&st, buf, (size_t)k * orb, err)) {
                    sts_abort(&st);
                    goto done;
                }
                done_bytes += (int64_t)((size_t)k * orb);
                if (o && o->progress) o->progress(o->user, done_bytes, total);
            }
    }
    if (sts_finish(&st, err)) goto done;
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path) {
        moe_fail(err, "%s: path too long", dir);
        goto done;
    }
    rc = hf_config_write(c, path, type == DT_F32 ? "float32" : type == DT_BF16 ? "bfloat16"
                                                                              : "float16",
                         err);
done:
    free(buf);
    free(scratch);
    free(w0);
    free(fused);
    free(map);
    free(runs);
    free(kt);
    free(names);
    free(wt);
    free(t);
    return rc;
}
