/*
 * forward.c - the one forward pass. A chunk runs T tokens, each with its own
 * (sequence, position): prefill of many sequences, their decode steps, or
 * both at once go through the same code (moe_decode; moe_forward is its
 * one-sequence form). Per layer:
 *     x += o_proj(attention(rmsnorm(x)))           (attention.c)
 *     x += ffn(rmsnorm(x))   dense SwiGLU here, MoE in moe_ffn.c
 * (a Mixture-of-Depths layer runs both on the tokens its router takes:
 * mod.c), then logits = lm_head(rmsnorm(x)).
 */
#include "model/model.h"

#include <string.h>

#include "base/err.h"
#include "kernels/vmath.h"

typedef struct rows_ctx {
    float *y;
    const float *x;
    const float *w;
    int64_t n;
    float eps;
    float *sum;       /* add_norm_rows: sum = x + add (may be x) */
    const float *add;
} rows_ctx;

static void rmsnorm_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    rows_ctx *c = ctx;
    for (int64_t i = i0; i < i1; i++) rmsnorm(c->y + i * c->n, c->x + i * c->n, c->w, (int)c->n, c->eps);
}

/* The residual add of a block's output, then the next norm, per row. */
static void add_norm_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    rows_ctx *c = ctx;
    for (int64_t i = i0; i < i1; i++) {
        float *x = c->sum + i * c->n;
        const float *a = c->x + i * c->n, *b = c->add + i * c->n;
        for (int64_t d = 0; d < c->n; d++) x[d] = a[d] + b[d];
        if (c->w) rmsnorm(c->y + i * c->n, x, c->w, (int)c->n, c->eps);
    }
}

typedef struct silu_ctx {
    float *h;
    const float *g, *u;
    int64_t n;
    const kern_cfg *k; /* the session's kernel choice */
} silu_ctx;

static void silu_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    silu_ctx *c = ctx;
    /* h = silu(g) * u (silu_mul's math, out of place) */
    for (int64_t i = i0; i < i1; i++) vmath_swiglu(c->k, c->h + i * c->n, c->g + i * c->n, c->u + i * c->n, c->n);
}

/* out[T][D] = down(silu(gate xn) * up xn). With save_g/save_u the gate and
 * up projections are written there (the tape) and kept. */
void ffn_dense(moe_session *s, const ffn_w *w, const float *xn, float *out, int T, int64_t F,
               float *save_g, float *save_u) {
    float *g = save_g ? save_g : s->h_gate, *u = save_u ? save_u : s->h_up;
    mm_task t[2] = {{&w->gate, xn, g, T}, {&w->up, xn, u, T}};
    matmul_grouped(s->pool, t, 2);
    silu_ctx sc = {s->h_gate, g, u, F, kern_of(s->pool)};
    pool_for(s->pool, T, 1 + 4096 / (F + 1), silu_rows, &sc);
    matmul(s->pool, out, s->h_gate, &w->down, T);
}

/* Layer l's two blocks from its input x [T][D] and xn, its attention norm:
 * the attention block, x2 = x + its output and xn2 = x2's FFN norm, then
 * the FFN block into s->tmp (the tape's buffers where the session records).
 * 0, or -1 when a hook failed. */
static int layer_blocks(moe_session *s, int l, int T, const float *x, float *xn, float *x2,
                        float *xn2) {
    const moe_config *c = &s->m->cfg;
    const layer_w *lw = &s->m->layers[l];
    train_acts *A = session_tape(s);
    layer_acts *a = A ? &A->layer[l] : NULL;
    s->xn = xn;
    if (c->layer[l].linear_attn)
        linear_attn_block(s, l, T); /* s->tmp = out_proj(Gated DeltaNet) */
    else
        attention_block(s, l, T); /* s->tmp = o_proj(attention) */
    rows_ctx rc = {xn2, x, lw->ffn_norm, c->dim, c->norm_eps, x2, s->tmp};
    pool_for(s->pool, T, 8, add_norm_rows, &rc);
    s->xn = xn2;
    if (c->layer[l].moe) return moe_block(s, l, T); /* s->tmp = moe(xn) */
    ffn_dense(s, &lw->dense, xn2, s->tmp, T, c->layer[l].ffn_dim, a ? a->h_gate : NULL,
              a ? a->h_up : NULL);
    return 0;
}

/* One chunk of T <= max_batch tokens whose sequence and position are in
 * s->tok_seq / s->tok_pos. Logits of the rows s->out_rows[0..n_out) go to
 * logits, in that order. When the session records (training mode with a
 * tape), the residual stream and the norms' outputs live in the tape: each
 * block reads its input rows there and the residual add writes the next
 * block's input there, so nothing is copied into it. 0, or -1 when a hook
 * failed (s->hook_err). */
static int forward_chunk(moe_session *s, const int32_t *ids, int T, float *logits) {
    moe_model *m = s->m;
    const moe_config *c = &m->cfg;
    int64_t D = c->dim;
    train_acts *A = session_tape(s);
    int L = c->n_layers;
    float *xn0 = s->xn;
    if (A) A->live = -1; /* set again once the call is recorded whole */
    /* x: the residual stream entering the next block; xn: its norm */
    float *x = !A ? s->x : L > 0 ? tape_layer_in(A, c, 0) : A->x_final;
    for (int t = 0; t < T; t++) {
        mat_row_f32(x + t * D, &m->embed, ids[t]);
        s->tok_id[t] = ids[t];
    }
    int first = 0; /* the first attention layer (others may be linear attention) */
    while (first < L && c->layer[first].linear_attn) first++;
    if (first < L) rope_tables(s, T); /* they depend only on position: once per call */
    float *xn = A && L > 0 ? A->layer[0].xn_attn : xn0;
    if (L > 0 && !c->layer[0].mod) { /* a MoD layer normalizes the rows it takes */
        rows_ctx rc = {xn, x, m->layers[0].attn_norm, D, c->norm_eps, NULL, NULL};
        pool_for(s->pool, T, 8, rmsnorm_rows, &rc);
    }

    int rc_hook = 0;
    for (int l = 0; l < L && !rc_hook; l++) {
        layer_acts *a = A ? &A->layer[l] : NULL;
        /* the next layer's input and its attention norm */
        float *xo = !A ? x : l + 1 < L ? tape_layer_in(A, c, l + 1) : A->x_final;
        float *xno = A && l + 1 < L ? A->layer[l + 1].xn_attn : xn0;
        const float *wn = l + 1 < L && !c->layer[l + 1].mod ? m->layers[l + 1].attn_norm : NULL;
        if (c->layer[l].mod) {
            rc_hook = mod_layer(s, l, T, x, xo, layer_blocks);
            if (wn) {
                rows_ctx rn = {xno, xo, wn, D, c->norm_eps, NULL, NULL};
                pool_for(s->pool, T, 8, rmsnorm_rows, &rn);
            }
        } else {
            float *x2 = a ? a->x_ffn : x, *xn2 = a ? a->xn_ffn : xn0;
            rc_hook = layer_blocks(s, l, T, x, xn, x2, xn2);
            /* x += ffn; then the next layer's attention norm */
            rows_ctx rn = {xno, x2, wn, D, c->norm_eps, xo, s->tmp};
            pool_for(s->pool, T, 8, add_norm_rows, &rn);
        }
        x = xo;
        xn = xno;
    }
    s->xn = xn0;
    if (rc_hook) return -1;
    if (A) {
        A->last_tokens = T;
        A->live = L - 1; /* an inputs_only tape's shared buffers: the last layer's */
    }
    int n = s->n_out;
    if (!logits || n == 0) return 0;
    /* Only the rows asked for go through the final norm and the head; all
     * of them in order (training) keep the norm's output in the tape. */
    if (n == T) {
        float *xf = A ? A->xn_final : xn0;
        rows_ctx rc = {xf, x, m->final_norm, D, c->norm_eps, NULL, NULL};
        pool_for(s->pool, n, 8, rmsnorm_rows, &rc);
        matmul(s->pool, logits, xf, &m->lm_head, n);
        return 0;
    }
    for (int i = 0; i < n; i++)
        rmsnorm(xn0 + (int64_t)i * D, x + (int64_t)s->out_rows[i] * D, m->final_norm, (int)D,
                c->norm_eps);
    matmul(s->pool, logits, xn0, &m->lm_head, n);
    return 0;
}

int model_layer_replay(moe_session *s, int layer, moe_err *err) {
    train_acts *A = session_tape(s);
    if (!A || !A->inputs_only)
        return moe_fail(err, "replay of layer %d: the session has no inputs-only tape "
                             "(training mode)", layer);
    if (layer < 0 || layer >= s->m->cfg.n_layers)
        return moe_fail(err, "replay of layer %d: the model has %d layers", layer,
                        s->m->cfg.n_layers);
    if (A->last_tokens <= 0)
        return moe_fail(err, "replay of layer %d: no forward was recorded yet", layer);
    if (A->live == layer) return 0;
    const moe_config *c = &s->m->cfg;
    if (c->layer[layer].mod)
        return moe_fail(err, "replay of layer %d: a Mixture-of-Depths layer is not "
                             "recomputed (train it without activation recomputation)", layer);
    layer_acts *a = &A->layer[layer];
    int T = A->last_tokens;
    float *xn0 = s->xn;
    rows_ctx rc = {a->xn_attn, a->x_attn, s->m->layers[layer].attn_norm, c->dim, c->norm_eps,
                   NULL, NULL};
    pool_for(s->pool, T, 8, rmsnorm_rows, &rc);
    s->replay = 1;
    int rc_hook = layer_blocks(s, layer, T, a->x_attn, a->xn_attn, a->x_ffn, a->xn_ffn);
    s->replay = 0;
    s->xn = xn0;
    A->live = rc_hook ? -1 : layer;
    if (rc_hook && err) *err = s->hook_err;
    return rc_hook ? -1 : 0;
}

static int check_ids(const moe_config *c, const int32_t *ids, int64_t n, moe_err *err) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return moe_fail(err, "forward: token id %d at index %lld is outside the vocabulary [0, %d)",
                            ids[i], (long long)i, c->vocab);
    return 0;
}

/* Expert choice ranks the tokens of a whole call against each other, and a
 * Mixture-of-Depths layer in training mode those of each sequence, so they
 * cannot run incrementally: every sequence must start at position 0 and
 * the call fit one chunk. */
static int check_expert_choice(const moe_session *s, int n, int any_continues, moe_err *err) {
    const moe_config *c = &s->m->cfg;
    for (int l = 0; l < c->n_layers; l++)
        if (c->layer[l].moe && c->layer[l].kind == MOE_ROUTE_EXPERT_CHOICE &&
            (any_continues || n > s->max_batch))
            return moe_fail(err, "forward: layer %d routes by expert choice, which looks at the "
                                 "whole sequence: run it in one call from position 0 (at most %d "
                                 "tokens), not incrementally",
                            l, s->max_batch);
    /* training's Mixture-of-Depths selection ranks a sequence's tokens too */
    for (int l = 0; l < c->n_layers; l++)
        if (c->layer[l].mod && (s->mode == MOE_MODE_TRAIN || s->mod_topc) &&
            (any_continues || n > s->max_batch))
            return moe_fail(err, "forward: layer %d is a Mixture-of-Depths layer: in training "
                                 "mode it takes the top tokens of each whole sequence: run them "
                                 "in one call from position 0 (at most %d tokens)",
                            l, s->max_batch);
    return 0;
}

/* Run one chunk and commit its positions; a failing hook's message goes to
 * err and the chunk's positions are not added. */
static int run_chunk(moe_session *s, const int32_t *ids, int T, float *logits, moe_err *err) {
    if (forward_chunk(s, ids, T, logits)) {
        if (err) *err = s->hook_err;
        /* recurrent states may have taken this chunk's tokens already */
        if (s->lin_state)
            for (int t = 0; t < T; t++) s->lin_stale[s->tok_seq[t]] = 1;
        return -1;
    }
    for (int t = 0; t < T; t++) {
        if (s->tok_pos[t] + 1 > s->seq_pos[s->tok_seq[t]]) s->seq_pos[s->tok_seq[t]] = s->tok_pos[t] + 1;
        if (s->tok_pos[t] == 0) s->lin_stale[s->tok_seq[t]] = 0;
    }
    return 0;
}

/* A sequence whose recurrent states a failed call moved on can only start
 * afresh: pos is where the call starts it. */
static int check_stale(const moe_session *s, int q, int pos, moe_err *err) {
    if (!s->lin_stale[q] || pos == 0) return 0;
    return moe_fail(err, "decode: sequence %d: a failed call left its linear-attention state "
                         "ahead of its positions; forget the sequence (moe_seq_rm with p0 = 0) "
                         "and run it again from position 0", q);
}

int moe_decode(moe_session *s, const moe_batch *b, float *logits, moe_err *err) {
    const moe_config *c = &s->m->cfg;
    if (!b || b->n <= 0) return moe_fail(err, "decode: no tokens given");
    if (!b->token || !b->seq || !b->pos)
        return moe_fail(err, "decode: the batch needs token, seq and pos arrays");
    if (check_ids(c, b->token, b->n, err)) return -1;
    /* every token at its sequence's next position, nothing past the cache */
    for (int i = 0; i < b->n; i++) {
        int q = b->seq[i];
        if (q < 0 || q >= s->n_seq)
            return moe_fail(err, "decode: token %d names sequence %d; the session holds %d "
                                 "(0..%d)", i, q, s->n_seq, s->n_seq - 1);
        s->seq_next[q] = s->seq_pos[q];
        s->seq_last[q] = -1;
    }
    int continues = 0;
    for (int i = 0; i < b->n; i++) {
        int q = b->seq[i];
        if (s->seq_pos[q] > 0) continues = 1;
        if (b->pos[i] != s->seq_next[q])
            return moe_fail(err, "decode: token %d of sequence %d is at position %d, but the "
                                 "sequence's next position is %d",
                            i, q, b->pos[i], s->seq_next[q]);
        if (s->seq_next[q] >= s->n_ctx)
            return moe_fail(err, "decode: sequence %d is full: its cache holds %d positions", q,
                            s->n_ctx);
        if (check_stale(s, q, s->seq_pos[q], err)) return -1;
        s->seq_next[q]++;
        s->seq_last[q] = i;
    }
    if (check_expert_choice(s, b->n, continues, err)) return -1;
    const train_acts *tape = session_tape(s);
    if (tape && (b->n > s->max_batch || b->n > tape->n_tokens))
        return moe_fail(err, "decode: %d tokens in training mode: the tape records one pass of "
                             "at most %d tokens", b->n,
                        s->max_batch < tape->n_tokens ? s->max_batch : tape->n_tokens);
    int64_t V = c->vocab, out_done = 0;
    for (int done = 0; done < b->n;) {
        int T = b->n - done < s->max_batch ? b->n - done : s->max_batch;
        s->n_out = 0;
        for (int t = 0; t < T; t++) {
            int i = done + t;
            s->tok_seq[t] = b->seq[i];
            s->tok_pos[t] = b->pos[i];
            int want = b->logits ? b->logits[i] != 0 : s->seq_last[b->seq[i]] == i;
            if (want) s->out_rows[s->n_out++] = t;
        }
        if (!logits) s->n_out = 0;
        s->route_t0 = done;
        if (run_chunk(s, b->token + done, T, logits ? logits + out_done * V : NULL, err)) return -1;
        out_done += s->n_out;
        done += T;
    }
    return 0;
}

int moe_forward(moe_session *s, const int32_t *ids, int n, float *logits, int all_logits,
                moe_err *err) {
    const moe_config *c = &s->m->cfg;
    int pos = s->seq_pos[0];
    if (n <= 0) return moe_fail(err, "forward: no tokens given");
    if ((int64_t)pos + n > s->n_ctx)
        return moe_fail(err, "forward: %d tokens at position %d exceed the context of %d positions",
                        n, pos, s->n_ctx);
    if (check_ids(c, ids, n, err)) return -1;
    if (check_stale(s, 0, pos, err)) return -1;
    if (check_expert_choice(s, n, pos > 0, err)) return -1;
    for (int done = 0; done < n;) {
        int T = n - done < s->max_batch ? n - done : s->max_batch;
        int last = done + T == n;
        float *out = NULL;
        s->n_out = 0;
        if (logits && all_logits) {
            out = logits + (int64_t)done * c->vocab;
            for (int t = 0; t < T; t++) s->out_rows[s->n_out++] = t;
        } else if (logits && last) {
            out = logits;
            s->out_rows[s->n_out++] = T - 1;
        }
        for (int t = 0; t < T; t++) {
            s->tok_seq[t] = 0;
            s->tok_pos[t] = s->seq_pos[0] + t;
        }
        s->route_t0 = done;
        if (run_chunk(s, ids + done, T, out, err)) return -1;
        done += T;
    }
    return 0;
}

int model_forward_seqs(moe_session *s, const int32_t *ids, int B, int T, float *logits,
                       moe_err *err) {
    if (B <= 0 || T <= 0) return moe_fail(err, "forward: empty batch (%d x %d)", B, T);
    int recording = session_tape(s) != NULL;
    if (B > s->n_seq || T > s->n_ctx || (int64_t)B * T > s->max_batch ||
        (recording && (int64_t)B * T > s->acts->n_tokens))
        return moe_fail(err, "forward: batch %d x %d does not fit the session (%d sequences, "
                             "%d positions, %d tokens per call)",
                        B, T, s->n_seq, s->n_ctx, s->max_batch);
    if (check_ids(&s->m->cfg, ids, (int64_t)B * T, err)) return -1;
    s->n_out = logits ? B * T : 0;
    for (int i = 0; i < B * T; i++) {
        s->tok_seq[i] = i / T;
        s->tok_pos[i] = i % T;
        s->out_rows[i] = i;
    }
    for (int b = 0; b < B; b++) s->seq_pos[b] = 0;
    s->route_t0 = 0;
    return run_chunk(s, ids, B * T, logits, err);
}
