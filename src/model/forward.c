/*
 * forward.c - the one forward pass. A call runs T tokens of one sequence at
 * positions pos..pos+T-1: prefill (T large), decode (T = 1) and anything in
 * between go through the same code. Per layer:
 *     x += o_proj(attention(rmsnorm(x)))           (attention.c)
 *     x += ffn(rmsnorm(x))   dense SwiGLU here, MoE in moe_ffn.c
 * then logits = lm_head(rmsnorm(x)).
 */
#include "model/model.h"

#include <string.h>

#include "base/err.h"

typedef struct rows_ctx {
    float *y;
    const float *x;
    const float *w;
    int64_t n;
    float eps;
} rows_ctx;

static void rmsnorm_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    rows_ctx *c = ctx;
    for (int64_t i = i0; i < i1; i++) rmsnorm(c->y + i * c->n, c->x + i * c->n, c->w, (int)c->n, c->eps);
}

typedef struct silu_ctx {
    float *g;
    const float *u;
    int64_t n;
} silu_ctx;

static void silu_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    silu_ctx *c = ctx;
    for (int64_t i = i0; i < i1; i++) silu_mul(c->g + i * c->n, c->u + i * c->n, (int)c->n);
}

/* out[T][D] = down(silu(gate xn) * up xn) */
void ffn_dense(moe_session *s, const ffn_w *w, const float *xn, float *out, int T, int64_t F,
               float *save_g, float *save_u) {
    mm_task t[2] = {{&w->gate, xn, s->h_gate, T}, {&w->up, xn, s->h_up, T}};
    matmul_grouped(s->pool, t, 2);
    if (save_g) {
        memcpy(save_g, s->h_gate, sizeof(float) * (size_t)(T * F));
        memcpy(save_u, s->h_up, sizeof(float) * (size_t)(T * F));
    }
    silu_ctx sc = {s->h_gate, s->h_up, F};
    pool_for(s->pool, T, 1 + 4096 / (F + 1), silu_rows, &sc);
    matmul(s->pool, out, s->h_gate, &w->down, T);
}

static void add_rows(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

static void save(float *dst, const float *src, int64_t n) {
    if (dst) memcpy(dst, src, sizeof(float) * (size_t)n);
}

/* One chunk of T <= max_batch tokens whose sequence and position are in
 * s->tok_seq / s->tok_pos; writes logits rows if asked. */
static void forward_chunk(moe_session *s, const int32_t *ids, int T, float *logits,
                          int all_logits) {
    moe_model *m = s->m;
    const moe_config *c = &m->cfg;
    int64_t D = c->dim, V = c->vocab;
    for (int t = 0; t < T; t++) {
        mat_row_f32(s->x + t * D, &m->embed, ids[t]);
        s->tok_id[t] = ids[t];
    }

    for (int l = 0; l < c->n_layers; l++) {
        const layer_w *lw = &m->layers[l];
        layer_acts *a = s->acts ? &s->acts->layer[l] : NULL;
        rows_ctx rc = {s->xn, s->x, lw->attn_norm, D, c->norm_eps};
        pool_for(s->pool, T, 8, rmsnorm_rows, &rc);
        if (a) {
            save(a->x_attn, s->x, T * D);
            save(a->xn_attn, s->xn, T * D);
        }
        attention_block(s, l, T); /* s->tmp = o_proj(attention) */
        add_rows(s->x, s->tmp, T * D);

        rc.w = lw->ffn_norm;
        pool_for(s->pool, T, 8, rmsnorm_rows, &rc);
        if (a) {
            save(a->x_ffn, s->x, T * D);
            save(a->xn_ffn, s->xn, T * D);
        }
        if (c->layer[l].moe)
            moe_block(s, l, T); /* s->tmp = moe(xn) */
        else
            ffn_dense(s, &lw->dense, s->xn, s->tmp, T, c->layer[l].ffn_dim, a ? a->h_gate : NULL,
                      a ? a->h_up : NULL);
        add_rows(s->x, s->tmp, T * D);
    }
    if (s->acts) {
        save(s->acts->x_final, s->x, T * D);
        s->acts->last_tokens = T;
    }
    if (!logits) return;
    /* Only the rows asked for go through the final norm and the head. */
    int first = all_logits ? 0 : T - 1;
    int n = T - first;
    rows_ctx rc = {s->xn, s->x + (int64_t)first * D, m->final_norm, D, c->norm_eps};
    pool_for(s->pool, n, 8, rmsnorm_rows, &rc);
    if (s->acts && all_logits) save(s->acts->xn_final, s->xn, T * D);
    matmul(s->pool, all_logits ? logits : s->logit_row, s->xn, &m->lm_head, n);
    if (!all_logits) memcpy(logits, s->logit_row, (size_t)V * sizeof(float));
}

static int check_ids(const moe_config *c, const int32_t *ids, int64_t n, moe_err *err) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return moe_fail(err, "forward: token id %d at index %lld is outside the vocabulary [0, %d)",
                            ids[i], (long long)i, c->vocab);
    return 0;
}

int moe_forward(moe_session *s, const int32_t *ids, int n, float *logits, int all_logits,
                moe_err *err) {
    const moe_config *c = &s->m->cfg;
    if (n <= 0) return moe_fail(err, "forward: no tokens given");
    if ((int64_t)s->pos + n > s->n_ctx)
        return moe_fail(err, "forward: %d tokens at position %d exceed the context of %d positions",
                        n, s->pos, s->n_ctx);
    if (check_ids(c, ids, n, err)) return -1;
    for (int l = 0; l < c->n_layers; l++)
        if (c->layer[l].moe && c->layer[l].kind == MOE_ROUTE_EXPERT_CHOICE &&
            (s->pos > 0 || n > s->max_batch))
            return moe_fail(err, "forward: layer %d routes by expert choice, which looks at the "
                                 "whole sequence: run it in one call from position 0 (at most %d "
                                 "tokens), not incrementally",
                            l, s->max_batch);
    for (int done = 0; done < n;) {
        int T = n - done < s->max_batch ? n - done : s->max_batch;
        int last = done + T == n;
        float *out = NULL;
        if (logits && all_logits) out = logits + (int64_t)done * c->vocab;
        else if (logits && last) out = logits;
        for (int t = 0; t < T; t++) {
            s->tok_seq[t] = 0;
            s->tok_pos[t] = s->pos + t;
        }
        forward_chunk(s, ids + done, T, out, all_logits);
        s->pos += T;
        done += T;
    }
    return 0;
}

int model_forward_seqs(moe_session *s, const int32_t *ids, int B, int T, float *logits,
                       moe_err *err) {
    if (B <= 0 || T <= 0) return moe_fail(err, "forward: empty batch (%d x %d)", B, T);
    if (B > s->n_seq || T > s->n_ctx || (int64_t)B * T > s->max_batch ||
        (s->acts && (int64_t)B * T > s->acts->n_tokens))
        return moe_fail(err, "forward: batch %d x %d does not fit the session (%d sequences, "
                             "%d positions, %d tokens per call)",
                        B, T, s->n_seq, s->n_ctx, s->max_batch);
    if (check_ids(&s->m->cfg, ids, (int64_t)B * T, err)) return -1;
    for (int i = 0; i < B * T; i++) {
        s->tok_seq[i] = i / T;
        s->tok_pos[i] = i % T;
    }
    s->pos = 0;
    forward_chunk(s, ids, B * T, logits, 1);
    return 0;
}
