/*
 * attention_mla_prefill.c - latent attention for a long prompt of one
 * sequence in the expanded form (attention_mla.c has the absorbed form and
 * the notation). With the latents c_j and rotary keys of every position in
 * the cache, each head's keys and values are expanded once for the call:
 *   k_h[j] = [W_uk_h c_j | k_rope_j]   [Dn + Dr]
 *   v_h[j] = W_uv_h c_j                [Dv]
 * and attention runs in Dn + Dr and Dv dims (192 and 128 in DeepSeek's
 * models) instead of the absorbed form's R + Dr and R (576 and 512). The
 * expansion costs L H (Dn + Dv) R multiply-adds for L cached positions, the
 * attention saves about T L H (R + Dr - Dn) of them, so it pays for long
 * prompts: s->mla_expand_min tokens and more (MLA_EXPAND_MIN), all of one sequence at
 * consecutive positions (the usual prefill). Both forms are the same
 * attention as transformers computes it and differ by f32 rounding.
 *
 * The heads go in groups whose expanded keys and values fit the session's
 * grow-only buffer (at most s->mla_expand_floats floats with the products'
 * outputs, MLA_EXPAND_FLOATS); W_uk_h as a [Dn][R] matrix is kv_b_proj's rows (Hugging Face
 * layout) or attn_k_b's [R][Dn] plane transposed into f32 for the call
 * (GGUF files).
 */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/attn.h"

typedef struct xctx {
    moe_session *s;
    const layer_w *lw;
    float *cl, *kn, *vt, *kv, *wt; /* latents [L][R]; [G][L][Dn], [G][L][Dv]; [G][L][Dh+Dv]; [H][Dn][R] */
    float *out;                    /* [T][H*Dv] */
    int64_t L, h0, G;
    int T, fail;
} xctx;

/* wt[h] = attn_k_b's plane of head h, transposed: [Dn][R] f32. */
static void x_transpose_kb(void *ctx, int64_t h0, int64_t h1, int tid) {
    xctx *p = ctx;
    const moe_config *c = &p->s->m->cfg;
    int64_t R = c->kv_lora_rank, Dn = c->qk_nope_dim;
    float *row = p->s->mla_row + (int64_t)tid * mla_row_len(c);
    for (int64_t h = h0; h < h1; h++)
        for (int64_t r = 0; r < R; r++) {
            mat_row_f32(row, &p->lw->wk_b, h * R + r);
            for (int64_t n = 0; n < Dn; n++) p->wt[(h * Dn + n) * R + r] = row[n];
        }
}

/* Key and value rows of head h0 + g: [k_nope | k_rope | v]. */
static void x_assemble(void *ctx, int64_t g0, int64_t g1, int tid) {
    xctx *p = ctx;
    const moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    int64_t R = c->kv_lora_rank, Dr = c->qk_rope_dim, Dn = c->qk_nope_dim, Dv = c->v_head_dim,
            Dh = c->head_dim, W = Dh + Dv, QA = R + Dr;
    (void)tid;
    for (int64_t g = g0; g < g1; g++)
        for (int64_t j = 0; j < p->L; j++) {
            float *d = p->kv + (g * p->L + j) * W;
            memcpy(d, p->kn + (g * p->L + j) * Dn, sizeof(float) * (size_t)Dn);
            memcpy(d + Dn, p->cl + j * QA + R, sizeof(float) * (size_t)Dr);
            memcpy(d + Dh, p->vt + (g * p->L + j) * Dv, sizeof(float) * (size_t)Dv);
        }
}

/* One item: a block of ATTN_QUERY_BLOCK tokens x one head of the group. */
static void x_attend(void *ctx, int64_t i0, int64_t i1, int tid) {
    xctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    int64_t H = c->n_heads, Dh = c->head_dim, Dv = c->v_head_dim, W = Dh + Dv;
    for (int64_t i = i0; i < i1; i++) {
        int64_t g = i % p->G, h = p->h0 + g, t0 = i / p->G * ATTN_QUERY_BLOCK,
                t1 = t0 + ATTN_QUERY_BLOCK < p->T ? t0 + ATTN_QUERY_BLOCK : p->T;
        int64_t pos = s->tok_pos[t0];
        const float *K = p->kv + g * p->L * W;
        if (attn_block(s->pool, tid, p->out + (t0 * H + h) * Dv, H * Dv, s->q + (t0 * H + h) * Dh,
                       H * Dh, K, K + Dh, W, (int)(t1 - t0), (int)(pos + (t1 - t0)), (int)Dh,
                       (int)Dv, pos, 0, 0, c->attn_scale, NULL))
            p->fail = 1;
    }
}

int mla_expanded_attention(moe_session *s, int layer, int T, float *out) {
    const moe_config *c = &s->m->cfg;
    const layer_w *lw = &s->m->layers[layer];
    if (T < s->mla_expand_min) return 1;
    for (int t = 1; t < T; t++)
        if (s->tok_seq[t] != s->tok_seq[0] || s->tok_pos[t] != s->tok_pos[0] + t) return 1;
    int64_t H = c->n_heads, R = c->kv_lora_rank, Dr = c->qk_rope_dim, Dn = c->qk_nope_dim,
            Dv = c->v_head_dim, Dh = c->head_dim, QA = R + Dr, L = s->tok_pos[T - 1] + 1;
    int64_t per_head = L * (Dn + Dv + Dh + Dv);
    int64_t G = s->mla_expand_floats / per_head;
    G = G < 1 ? 1 : G > H ? H : G;
    int64_t wt_n = lw->wk_b.data ? H * Dn * R : 0;
    int64_t need = L * R + G * per_head + wt_n;
    if (need > s->mla_x_n) {
        float *nb = realloc(s->mla_x, sizeof(float) * (size_t)need);
        if (!nb) return -1;
        s->mla_x = nb;
        s->mla_x_n = need;
    }
    mat *views = malloc(sizeof(mat) * (size_t)(2 * G));
    mm_task *tasks = malloc(sizeof(mm_task) * (size_t)(2 * G));
    if (!views || !tasks) {
        free(views);
        free(tasks);
        return -1;
    }
    xctx p = {s, lw, NULL, NULL, NULL, NULL, NULL, out, L, 0, G, T, 0};
    float *x = s->mla_x;
    float *lat = x; /* [L][R] the latents, contiguous for the products */
    p.kn = lat + L * R;
    p.vt = p.kn + G * L * Dn;
    p.kv = p.vt + G * L * Dv;
    p.wt = wt_n ? p.kv + G * L * (Dh + Dv) : NULL;
    int64_t seq0 = ((int64_t)s->kv_slot[layer] * s->n_seq + s->tok_seq[0]) * s->n_ctx;
    p.cl = s->k_cache + seq0 * QA;
    for (int64_t j = 0; j < L; j++) memcpy(lat + j * R, p.cl + j * QA, sizeof(float) * (size_t)R);
    if (wt_n) pool_for(s->pool, H, 1, x_transpose_kb, &p);
    int64_t rbkv = lw->wkv_b.data ? dtype_row_bytes(lw->wkv_b.type, lw->wkv_b.cols) : 0;
    int64_t rbv = lw->wv_b.data ? dtype_row_bytes(lw->wv_b.type, lw->wv_b.cols) : 0;
    for (int64_t h0 = 0; h0 < H; h0 += G) {
        int64_t g_n = H - h0 < G ? H - h0 : G;
        for (int64_t g = 0; g < g_n; g++) {
            int64_t h = h0 + g;
            mat *uk = &views[2 * g], *uv = &views[2 * g + 1];
            if (lw->wkv_b.data) { /* kv_b_proj: head h's Dn key rows, then its Dv value rows */
                *uk = lw->wkv_b;
                uk->data = (const char *)lw->wkv_b.data + h * (Dn + Dv) * rbkv;
                uk->rows = Dn;
                *uv = lw->wkv_b;
                uv->data = (const char *)lw->wkv_b.data + (h * (Dn + Dv) + Dn) * rbkv;
                uv->rows = Dv;
            } else {
                *uk = (mat){p.wt + h * Dn * R, DT_F32, Dn, R};
                *uv = lw->wv_b;
                uv->data = (const char *)lw->wv_b.data + h * Dv * rbv;
                uv->rows = Dv;
            }
            tasks[2 * g] = (mm_task){uk, lat, p.kn + g * L * Dn, L};
            tasks[2 * g + 1] = (mm_task){uv, lat, p.vt + g * L * Dv, L};
        }
        matmul_grouped(s->pool, tasks, (int)(2 * g_n));
        p.h0 = h0;
        p.G = g_n;
        pool_for(s->pool, g_n, 1, x_assemble, &p);
        pool_for(s->pool, (T + ATTN_QUERY_BLOCK - 1) / ATTN_QUERY_BLOCK * g_n, 1, x_attend, &p);
        p.G = G;
    }
    free(views);
    free(tasks);
    if (p.fail) /* no scratch for a block: visible, never silently wrong */
        for (int64_t i = 0; i < (int64_t)T * H * Dv; i++) out[i] = __builtin_nanf("");
    return 0;
}
