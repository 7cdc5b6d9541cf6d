/*
 * mod.c - Mixture-of-Depths layers (Raposo et al. 2024; docs/TRAINING.md
 * "Mixture-of-Depths"). A MoD layer (moe_layer_config.mod) gives each token
 * of its input x a router logit r = w . x (w: mod_router [1][D]). The
 * tokens that go through the layer are
 *   training (the session in training mode, or with mod_topc): per sequence
 *     of the call, the top C = ceil(capacity * n - 1e-6) (at least 1) of its
 *     n tokens by r, ties to the lower position;
 *   otherwise (inference, evaluation) the causal rule r > 0.
 * They are gathered, in order, into a compacted chunk that runs the layer's
 * attention and FFN blocks (forward.c's layer_blocks) with RoPE at their own
 * positions, each attending to the tokens of its sequence the layer took up
 * to itself; then out = x + sigmoid(r) * (layer(x) - x) for them, out = x
 * for the others.
 *
 * The layer's KV cache is compacted: sequence q's rows 0..mod_len[l][q]-1
 * hold the tokens the layer took, mod_pos their positions. A chunk first
 * forgets the rows at or past the position where each of its sequences
 * resumes (what a failed call, moe_seq_rm or a restart at position 0 left
 * there), so the cache follows the sequence's committed positions.
 */
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct mod_rank {
    float r;
    int pos, row;
} mod_rank;

/* Larger r first, then the lower position; NaN counts as -inf (a total order). */
static int rank_cmp(const void *a, const void *b) {
    const mod_rank *x = a, *y = b;
    if (x->r != y->r) return x->r > y->r ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Training's selection: per sequence of the chunk, its top C tokens. */
static void select_top(moe_session *s, const float *r, int T, int *sel) {
    mod_rank *rk = s->mod_rank;
    float cap = s->m->cfg.mod_capacity;
    for (int t = 0; t < T; t++) sel[t] = -1; /* not yet ranked */
    for (int t = 0; t < T; t++) {
        if (sel[t] >= 0) continue;
        int q = s->tok_seq[t], n = 0;
        for (int u = t; u < T; u++)
            if (s->tok_seq[u] == q) {
                rk[n++] = (mod_rank){isnan(r[u]) ? -INFINITY : r[u], s->tok_pos[u], u};
                sel[u] = 0;
            }
        qsort(rk, (size_t)n, sizeof *rk, rank_cmp);
        int C = (int)ceil((double)cap * n - 1e-6);
        if (C < 1) C = 1;
        if (C > n) C = n;
        for (int i = 0; i < C; i++) sel[rk[i].row] = 1;
    }
}

static void mod_enter(moe_session *s) {
    s->chunk_seq = s->tok_seq;
    s->chunk_pos = s->tok_pos;
    s->chunk_kv = s->kv_pos;
    s->chunk_id = s->tok_id;
    s->chunk_cos = s->rope_cos;
    s->chunk_sin = s->rope_sin;
    s->tok_seq = s->mod_seq;
    s->tok_pos = s->mod_tpos;
    s->kv_pos = s->mod_kv;
    s->tok_id = s->mod_id;
    s->rope_cos = s->mod_cos;
    s->rope_sin = s->mod_sin;
}

void mod_leave(moe_session *s) {
    s->tok_seq = s->chunk_seq;
    s->tok_pos = s->chunk_pos;
    s->kv_pos = s->chunk_kv;
    s->tok_id = s->chunk_id;
    s->rope_cos = s->chunk_cos;
    s->rope_sin = s->chunk_sin;
}

/* Compacted row j takes chunk row t: its sequence, position, token, rope. */
static void take_row(moe_session *s, int j, int t, int kv) {
    int64_t half = s->m->cfg.head_dim / 2;
    s->mod_seq[j] = s->tok_seq[t];
    s->mod_tpos[j] = s->tok_pos[t];
    s->mod_kv[j] = kv;
    s->mod_id[j] = s->tok_id[t];
    memcpy(s->mod_cos + j * half, s->rope_cos + t * half, sizeof(float) * (size_t)half);
    memcpy(s->mod_sin + j * half, s->rope_sin + t * half, sizeof(float) * (size_t)half);
}

void mod_enter_recorded(moe_session *s, int l) {
    const layer_acts *a = &s->acts->layer[l];
    for (int j = 0; j < a->mod_n; j++) take_row(s, j, a->mod_row[j], j);
    mod_enter(s);
}

typedef struct norm_ctx {
    float *y;
    const float *x, *w;
    int64_t D;
    float eps;
} norm_ctx;

static void norm_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    norm_ctx *c = ctx;
    for (int64_t i = i0; i < i1; i++) rmsnorm(c->y + i * c->D, c->x + i * c->D, c->w, (int)c->D, c->eps);
}

int mod_layer(moe_session *s, int l, int T, const float *x, float *out, mod_blocks_fn blocks) {
    const moe_config *c = &s->m->cfg;
    const layer_w *lw = &s->m->layers[l];
    train_acts *A = session_tape(s);
    layer_acts *a = A ? &A->layer[l] : NULL;
    int64_t D = c->dim, C = s->n_ctx;
    float *r = a ? a->mod_logit : s->mod_logit;
    int *sel = a ? a->mod_sel : s->mod_sel, *rows = a ? a->mod_row : s->mod_row;
    matmul(s->pool, r, x, &lw->mod_router, T);
    if (s->mode == MOE_MODE_TRAIN || s->mod_topc)
        select_top(s, r, T, sel);
    else
        for (int t = 0; t < T; t++) sel[t] = r[t] > 0;

    /* forget what lies at or past where each sequence resumes, then append */
    int *len = s->mod_len + (int64_t)l * s->n_seq;
    for (int t = 0; t < T; t++) {
        int q = s->tok_seq[t];
        const int *mp = s->mod_pos + ((int64_t)l * s->n_seq + q) * C;
        while (len[q] > 0 && mp[len[q] - 1] >= s->tok_pos[t]) len[q]--;
    }
    int n = 0;
    for (int t = 0; t < T; t++) {
        if (!sel[t]) continue;
        int q = s->tok_seq[t], kv = len[q]++;
        s->mod_pos[((int64_t)l * s->n_seq + q) * C + kv] = s->tok_pos[t];
        take_row(s, n, t, kv);
        rows[n++] = t;
    }
    if (a) a->mod_n = n;
    if (out != x) memcpy(out, x, sizeof(float) * (size_t)(T * D));
    if (n == 0) return 0;

    /* the compacted rows through the layer's blocks */
    float *xs = a ? a->x_attn : s->mod_x, *xn = a ? a->xn_attn : s->xn;
    float *x2 = a ? a->x_ffn : xs, *xn2 = a ? a->xn_ffn : s->xn;
    for (int j = 0; j < n; j++)
        memcpy(xs + j * D, x + (int64_t)rows[j] * D, sizeof(float) * (size_t)D);
    norm_ctx nc = {xn, xs, lw->attn_norm, D, c->norm_eps};
    pool_for(s->pool, n, 8, norm_rows, &nc);
    mod_enter(s);
    s->route_row = rows;
    int rc = blocks(s, l, n, xs, xn, x2, xn2);
    s->route_row = NULL;
    mod_leave(s);
    if (rc) return -1;

    /* out = x + sigmoid(r) (x2 + ffn - x) for the rows that went through */
    for (int j = 0; j < n; j++) {
        int64_t i = rows[j];
        float g = 1.0f / (1.0f + expf(-r[i]));
        const float *xi = x + i * D, *y2 = x2 + j * D, *f = s->tmp + j * D;
        float *o = out + i * D, *dl = a ? a->mod_delta + j * D : NULL;
        for (int64_t d = 0; d < D; d++) {
            float delta = y2[d] + f[d] - xi[d];
            if (dl) dl[d] = delta;
            o[d] = xi[d] + g * delta;
        }
    }
    return 0;
}

void mod_seq_cp(moe_session *s, int src, int dst) {
    const moe_config *c = &s->m->cfg;
    if (!s->mod_len) return;
    for (int l = 0; l < c->n_layers; l++) {
        if (!c->layer[l].mod) continue;
        int *len = s->mod_len + (int64_t)l * s->n_seq;
        int *base = s->mod_pos + (int64_t)l * s->n_seq * s->n_ctx;
        memcpy(base + (int64_t)dst * s->n_ctx, base + (int64_t)src * s->n_ctx,
               sizeof(int) * (size_t)len[src]);
        len[dst] = len[src];
    }
}

int mod_session_alloc(moe_session *s) {
    const moe_config *c = &s->m->cfg;
    int any = 0;
    for (int l = 0; l < c->n_layers; l++) any |= c->layer[l].mod;
    if (!any) return 0;
    size_t T = (size_t)s->max_batch, L = (size_t)c->n_layers, S = (size_t)s->n_seq;
    size_t half = (size_t)c->head_dim / 2, D = (size_t)c->dim;
    s->mod_len = calloc(L * S, sizeof(int));
    s->mod_pos = malloc(L * S * (size_t)s->n_ctx * sizeof(int));
    s->mod_row = malloc(T * sizeof(int));
    s->mod_sel = malloc(T * sizeof(int));
    s->mod_seq = malloc(T * sizeof(int));
    s->mod_tpos = malloc(T * sizeof(int));
    s->mod_kv = malloc(T * sizeof(int));
    s->mod_id = malloc(T * sizeof(int32_t));
    s->mod_logit = malloc(T * sizeof(float));
    s->mod_x = malloc(T * D * sizeof(float));
    s->mod_cos = malloc(T * half * sizeof(float) + 1);
    s->mod_sin = malloc(T * half * sizeof(float) + 1);
    s->mod_rank = malloc(T * sizeof(mod_rank));
    return s->mod_len && s->mod_pos && s->mod_row && s->mod_sel && s->mod_seq && s->mod_tpos &&
                   s->mod_kv && s->mod_id && s->mod_logit && s->mod_x && s->mod_cos &&
                   s->mod_sin && s->mod_rank
               ? 0
               : -1;
}

void mod_session_free(moe_session *s) {
    free(s->mod_len);
    free(s->mod_pos);
    free(s->mod_row);
    free(s->mod_sel);
    free(s->mod_seq);
    free(s->mod_tpos);
    free(s->mod_kv);
    free(s->mod_id);
    free(s->mod_logit);
    free(s->mod_x);
    free(s->mod_cos);
    free(s->mod_sin);
    free(s->mod_rank);
}
