/*
 * init_gguf.c - a random-weight model written straight to a GGUF file
 * (`moe init --type T OUT.gguf`): the model model_init.c writes to
 * safetensors (the same values: streams seeded by (seed, HF tensor name,
 * chunk), rounded to the stored dtype), written as `moe quantize --type T`
 * (or `moe convert`) writes that model once loaded: quantize_plan.c's types,
 * quantize_gguf.c's metadata and layout, quantize_rows.c's conversion. The
 * two files are the same bytes.
 *
 * Nothing is held whole. A GGUF tensor is made plane by plane, a batch of
 * output rows at a time: the chunks of the HF tensor that hold the batch's
 * source rows (a span) are made in parallel, the rows are converted in
 * parallel, then written in order. How an output row comes from the HF
 * tensors is what the loader (weights.c) and the writer (quantize_gguf.c)
 * do between them, as a view:
 *   rows   output row g is source row map(g) of the plane (llama's q/k
 *          permutation, qwen3_next's attn_qkv / attn_gate out of
 *          in_proj_qkvz, qwen3_5_moe's tiled value heads), columns maybe
 *          permuted (its out_proj);
 *   cols   output row g is source column g * mul + add of the plane
 *          (gpt_oss's fused float experts, x @ W: the plane is made whole,
 *          a few tens of MiB);
 *   mx     output row g is MXFP4 row g * mul + add of gpt_oss's fused
 *          expert matrix (as released);
 *   vectors (norms, biases, sinks; gpt_oss's interleaved expert biases;
 *          ssm_a = -exp(A_log)) are made whole: they are small.
 */
#include "model/model_init.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe_init.h"
#include "base/err.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "model/quantize.h"
#include "model/quantize_impl.h"

#define CHUNK MODEL_INIT_CHUNK
#define SPAN_ELEMS ((int64_t)4 << 20) /* source values made for one batch (at most) */
#define NAME_LEN 192

typedef enum { V_ROWS, V_COLS, V_MX } view_kind;

/* Where plane p of an output tensor comes from. */
typedef struct view {
    char name[NAME_LEN]; /* the HF tensor: the random streams' name */
    int fill;            /* model_init_fill */
    int embed;           /* the token embedding (model_init_opts.embed_std) */
    view_kind kind;
    int64_t off;         /* first element of the plane in the HF tensor */
    int64_t sc;          /* a source row's length */
    int64_t mul, add;    /* cols / mx / vector: source column (row) g * mul + add */
    int64_t perm_dh;     /* rows: llama's q/k permutation with this head dim */
    int64_t *row_map;    /* rows: [rows] source row of output row g, or NULL */
    int64_t *col_map;    /* [cols] source column of output column c, or NULL */
    int plus_one;        /* vector: 1 + w (a zero-centred norm, as loaded) */
    int neg_exp;         /* vector: -exp(w) (ssm_a out of A_log) */
} view;

typedef struct gen {
    const moe_config *c;
    const model_init_opts *o;
    const qz_plan *p;
    dtype st;            /* the stored float type of the values */
    size_t es;           /* its bytes */
    int threads;
    unsigned char *span; /* [SPAN_ELEMS] values of st (or a whole cols plane) */
    size_t span_cap;     /* bytes */
    char span_name[NAME_LEN]; /* what span holds: (name, first, n) */
    int64_t span_a, span_n;
    unsigned char *src;  /* cols / mx: [rows of a batch] source rows */
    size_t src_cap;
    unsigned char *out;  /* one batch of output rows */
    size_t out_cap;
    float *tmp;          /* [threads][CHUNK] */
    float *scratch;      /* [threads][2 * max cols] for qz_convert_rows */
    int64_t *map;        /* [max rows] rows / cols maps of the current view */
    int64_t *map2;
    int64_t *rel;        /* [batch rows] source row within the span */
} gen;

/* ------------------------------------------------------------ spans */

typedef struct span_job {
    gen *g;
    const view *v;
    int64_t a, n;        /* elements [a, a + n) of the tensor */
    unsigned char *dst;
} span_job;

static void span_chunks(void *ctx, int64_t i0, int64_t i1, int tid) {
    const span_job *j = ctx;
    float *tmp = j->g->tmp + (size_t)tid * CHUNK;
    int64_t k0 = j->a / CHUNK;
    for (int64_t i = i0; i < i1; i++) {
        int64_t k = k0 + i, lo = k * CHUNK, hi = lo + CHUNK;
        if (lo < j->a) lo = j->a;
        if (hi > j->a + j->n) hi = j->a + j->n;
        model_init_values(j->v->name, j->g->o->seed, model_init_std(j->g->o, j->v->embed), j->v->fill, k,
                          (int)(lo - k * CHUNK), (int)(hi - k * CHUNK), j->g->st,
                          j->dst + (size_t)(lo - j->a) * j->g->es, tmp);
    }
}

/* Elements [a, a + n) of v's tensor into g->span (kept when it holds them). */
static int make_span(gen *g, const view *v, int64_t a, int64_t n, moe_err *err) {
    if (!strcmp(g->span_name, v->name) && g->span_a == a && g->span_n == n) return 0;
    if ((size_t)n * g->es > g->span_cap) {
        free(g->span);
        g->span_cap = (size_t)n * g->es;
        g->span = malloc(g->span_cap);
        if (!g->span) {
            g->span_cap = 0;
            return moe_fail(err, "%s: out of memory (%lld values)", v->name, (long long)n);
        }
    }
    span_job j = {g, v, a, n, g->span};
    int64_t nk = (a + n - 1) / CHUNK - a / CHUNK + 1;
    pool_for(g->o->pool, nk, 1, span_chunks, &j);
    snprintf(g->span_name, sizeof g->span_name, "%s", v->name);
    g->span_a = a;
    g->span_n = n;
    return 0;
}

static void *grow(void **buf, size_t *cap, size_t need) {
    if (need <= *cap) return *buf;
    free(*buf);
    *buf = malloc(need);
    *cap = *buf ? need : 0;
    return *buf;
}

/* ------------------------------------------------------------ views */

static int64_t src_row(const view *v, int64_t g) {
    return v->row_map ? v->row_map[g] : qz_perm_row(g, v->perm_dh);
}

/* The view of plane p of plan tensor e (see the top of the file). */
static int make_view(gen *g, const tm_entry *e, int p, view *v, moe_err *err) {
    const moe_config *c = g->c;
    const tm_arch_info *ai = tm_arch_of(c->arch);
    memset(v, 0, sizeof *v);
    v->mul = 1;
    tm_entry h = *e; /* the HF tensor */
    h.expert = -1;
    h.planes = 1;
    int64_t rows = e->rows ? e->rows : 1;
    v->sc = e->cols;
    if (e->role == TM_POST_NORM) h.role = TM_FFN_NORM;
    if (tm_is_expert(e->role) && ai->hf_fused) { /* gpt_oss: out of the fused stacks */
        int down = e->role == TM_EXP_DOWN;
        h.role = down ? TM_EXP_DOWN_T : TM_EXP_GATE_UP;
        h.planes = e->planes;
        int64_t R = down ? c->dim : 2 * (int64_t)c->layer[e->layer].expert_dim; /* linear rows */
        v->mul = down ? 1 : 2;
        v->add = e->role == TM_EXP_UP;
        if (g->o->mxfp4_experts) {
            v->kind = V_MX;
            v->off = p * R; /* linear row of the stack */
        } else {
            v->kind = V_COLS; /* plane [C][R] as x @ W */
            v->sc = R;
            v->off = p * R * e->cols;
        }
    } else if (tm_is_expert(e->role)) {
        h.expert = p; /* transformers names experts one by one */
    } else if (e->role == TM_EXP_GATE_B || e->role == TM_EXP_UP_B || e->role == TM_EXP_DOWN_B) {
        int down = e->role == TM_EXP_DOWN_B;
        h.role = down ? TM_EXP_DOWN_BIAS : TM_EXP_GATE_UP_BIAS;
        v->sc = down ? e->cols : 2 * e->cols;
        v->mul = down ? 1 : 2;
        v->add = e->role == TM_EXP_UP_B;
        v->off = p * v->sc;
    } else if ((e->role == TM_LIN_QKV || e->role == TM_LIN_Z) && !tm_lin_split(c)) {
        h.role = TM_LIN_QKVZ; /* qwen3_next: rows of in_proj_qkvz */
        for (int64_t r = 0; r < e->rows; r++) g->map[r] = tm_lin_qkvz_row(c, e->role == TM_LIN_Z, r);
        v->row_map = g->map;
    } else if (e->role == TM_LIN_SSM_A) {
        h.role = TM_LIN_A_LOG;
        v->neg_exp = 1;
    } else if (e->role == TM_EXP_PROBS_B) {
        h.role = TM_SEL_BIAS;
    } else if (e->role == TM_ATTN_K_B || e->role == TM_ATTN_V_B) {
        /* deepseek2: head p of kv_b_proj's rows [W_uk Dn | W_uv Dv] (quantize_gguf.c) */
        int64_t R = c->kv_lora_rank, Dn = c->qk_nope_dim, base = p * (Dn + c->v_head_dim);
        h.role = TM_ATTN_KV_B;
        h.rows = c->n_heads * (Dn + c->v_head_dim);
        v->sc = R;
        if (e->role == TM_ATTN_K_B) {
            v->kind = V_COLS; /* W_uk transposed: output row r is column r */
            v->off = base * R;
        } else {
            v->off = (base + Dn) * R;
        }
    } else if (c->kv_lora_rank && !c->rope_interleave &&
               (e->role == TM_ATTN_Q || e->role == TM_ATTN_Q_B || e->role == TM_ATTN_KV_A)) {
        /* rotary dims as two halves: reordered to llama.cpp's pairs (quantize_gguf.c) */
        int64_t Dr = c->qk_rope_dim, per = e->role == TM_ATTN_KV_A ? e->rows : c->head_dim;
        for (int64_t r = 0; r < e->rows; r++)
            g->map[r] = r % per < per - Dr ? r : r / per * per + per - Dr + qz_perm_row(r % per - (per - Dr), Dr);
        v->row_map = g->map;
    }
    if (tm_name(v->name, sizeof v->name, TM_HF, c, &h))
        return moe_fail(err, "tensor %d of layer %d: no transformers name", (int)e->role, e->layer);
    v->fill = model_init_fill(c, h.role);
    v->embed = h.role == TM_EMBED;
    v->plus_one = tm_norm_offset(c, h.role);
    if (ai->gguf_rope_perm && (tm_role_of(e->role)->flags & TMF_ROPE_PERM)) v->perm_dh = c->head_dim;
    /* qwen3_5_moe: value heads tiled as llama.cpp's converter does */
    int axis = tm_lin_v_axis(e->role);
    if (axis && tm_lin_split(c) && !c->lin_v_tiled && c->lin_v_heads != c->lin_k_heads) {
        int64_t n = axis == 1 ? rows : e->cols;
        int64_t *m = axis == 1 ? g->map : g->map2;
        tm_lin_v_map(c, e->role, 1, m, n);
        if (axis == 1 && e->rows) v->row_map = m;
        else v->col_map = m;
    }
    return 0;
}

/* ------------------------------------------------------------ writing */

/* A vector plane (F32): made whole, as the loader widens it. */
static int write_vector(gen *g, qz_sink *s, const tm_entry *e, const view *v, moe_err *err) {
    int64_t n = e->cols, a = v->off, len = (n - 1) * v->mul + v->add + 1;
    if (v->col_map) len = v->sc > len ? v->sc : len;
    if (make_span(g, v, a, len, err)) return -1;
    float *w = grow((void **)&g->out, &g->out_cap, (size_t)n * sizeof(float));
    if (!w) return moe_fail(err, "%s: out of memory", v->name);
    mat src = {g->span, g->st, 1, len};
    float *row = g->tmp; /* CHUNK floats: vectors are shorter */
    if (len > CHUNK) {
        row = malloc((size_t)len * sizeof *row);
        if (!row) return moe_fail(err, "%s: out of memory", v->name);
    }
    mat_row_f32(row, &src, 0);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = v->col_map ? v->col_map[i] : i * v->mul + v->add;
        float x = row[k];
        if (v->plus_one) x = 1.0f + x;
        if (v->neg_exp) x = -expf(x);
        w[i] = x;
    }
    if (row != g->tmp) free(row);
    return qz_sink_write(s, w, (size_t)n * sizeof(float), err);
}

typedef struct cols_job {
    const gen *g;
    const view *v;
    int64_t g0, cols;
} cols_job;

/* Output rows g0 + i out of the whole plane in span (transposed). */
static void gather_cols(void *ctx, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const cols_job *j = ctx;
    size_t es = j->g->es;
    for (int64_t i = i0; i < i1; i++) {
        int64_t col = (j->g0 + i) * j->v->mul + j->v->add;
        unsigned char *o = j->g->src + (size_t)(i * j->cols) * es;
        const unsigned char *s = j->g->span + (size_t)col * es;
        for (int64_t c = 0; c < j->cols; c++)
            memcpy(o + (size_t)c * es, s + (size_t)(c * j->v->sc) * es, es);
    }
}

typedef struct mx_job {
    const gen *g;
    const view *v;
    int64_t g0, C;
} mx_job;

static void mx_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    const mx_job *j = ctx;
    size_t rb = (size_t)(j->C / QK_MXFP4) * sizeof(block_mxfp4);
    for (int64_t i = i0; i < i1; i++)
        model_init_mx_row(j->v->name, j->g->o->seed, j->g->o->std,
                          j->v->off + (j->g0 + i) * j->v->mul + j->v->add, j->C,
                          (block_mxfp4 *)(void *)(j->g->src + (size_t)i * rb),
                          j->g->tmp + (size_t)tid * CHUNK);
}

/* One plane of a matrix: batches of output rows made, converted, written. */
static int write_matrix(gen *g, qz_sink *s, const tm_entry *e, int type, const view *v,
                        moe_err *err) {
    int64_t rows = e->rows, cols = e->cols;
    size_t orb = qz_row_bytes(type, cols);
    if (!orb) return moe_fail(err, "%s: rows of %lld do not suit type %d", v->name,
                              (long long)cols, type);
    int64_t per = (int64_t)(QZ_CHUNK_BYTES / orb);
    if (per < 1) per = 1;
    if (v->kind == V_COLS && make_span(g, v, v->off, cols * v->sc, err)) return -1;
    for (int64_t g0 = 0; g0 < rows;) {
        int64_t n = rows - g0 < per ? rows - g0 : per;
        mat src;
        const int64_t *rel = NULL;
        if (v->kind == V_ROWS) { /* the span of source rows, at most SPAN_ELEMS values */
            int64_t lo = src_row(v, g0), hi = lo;
            int64_t k = 1;
            for (; k < n; k++) {
                int64_t r = src_row(v, g0 + k);
                int64_t l2 = r < lo ? r : lo, h2 = r > hi ? r : hi;
                if ((h2 - l2 + 1) * cols > SPAN_ELEMS) break;
                lo = l2;
                hi = h2;
            }
            n = k;
            for (k = 0; k < n; k++) g->rel[k] = src_row(v, g0 + k) - lo;
            if (make_span(g, v, v->off + lo * cols, (hi - lo + 1) * cols, err)) return -1;
            src = (mat){g->span, g->st, hi - lo + 1, cols};
            rel = g->rel;
        } else if (v->kind == V_COLS) {
            if (!grow((void **)&g->src, &g->src_cap, (size_t)(n * cols) * g->es))
                return moe_fail(err, "%s: out of memory", v->name);
            cols_job j = {g, v, g0, cols};
            pool_for(g->o->pool, n, 16, gather_cols, &j);
            src = (mat){g->src, g->st, n, cols};
        } else {
            size_t rb = (size_t)(cols / QK_MXFP4) * sizeof(block_mxfp4);
            if (cols % QK_MXFP4 || cols > CHUNK)
                return moe_fail(err, "%s: rows of %lld are not whole MXFP4 blocks", v->name,
                                (long long)cols);
            if (!grow((void **)&g->src, &g->src_cap, (size_t)n * rb))
                return moe_fail(err, "%s: out of memory", v->name);
            mx_job j = {g, v, g0, cols};
            pool_for(g->o->pool, n, 4, mx_rows, &j);
            src = (mat){g->src, DT_MXFP4, n, cols};
        }
        if (!grow((void **)&g->out, &g->out_cap, (size_t)n * orb))
            return moe_fail(err, "%s: out of memory", v->name);
        qz_rows job = {&src, 0, n, 0, type, g->out, g->scratch, rel, v->col_map};
        qz_convert_rows(g->o->pool, &job);
        if (qz_sink_write(s, g->out, (size_t)n * orb, err)) return -1;
        g0 += n;
    }
    return 0;
}

static int write_one(void *ctx, qz_sink *s, int i, const char *name, moe_err *err) {
    gen *g = ctx;
    const tm_entry *e = &g->p->t[i];
    for (int p = 0; p < e->planes; p++) {
        view v;
        if (make_view(g, e, p, &v, err)) return -1;
        int rc = e->rows ? write_matrix(g, s, e, g->p->type[i], &v, err)
                         : write_vector(g, s, e, &v, err);
        if (rc) {
            size_t n = strlen(err->msg);
            if (n + strlen(name) + 16 < sizeof err->msg && !strstr(err->msg, name))
                snprintf(err->msg + n, sizeof err->msg - n, " (writing %s)", name);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ the plan */

/* The plan, and into *rc the config `moe quantize` sees: the one read back
 * from the config.json model_init_random writes (defaults included). */
static int make_plan(qz_plan *p, moe_config *rc, const moe_config *cfg, const model_init_opts *o,
                     const qz_opts *q, moe_err *err) {
    if (moe_config_validate(cfg, "init", err)) return -1;
    if (o->mxfp4_experts && cfg->arch != MOE_ARCH_GPT_OSS)
        return moe_fail(err, "MXFP4 experts are written for gpt_oss only");
    const char *torch = o->type == DT_F32 ? "float32" : o->type == DT_BF16 ? "bfloat16" : "float16";
    if (hf_config_reread(cfg, torch, o->mxfp4_experts, rc, err)) return -1;
    int w = dtype_to_ggml(o->type);
    return qz_plan_make_cfg(p, rc, w, o->mxfp4_experts ? GGUF_TYPE_MXFP4 : w, q, err);
}

int64_t model_init_gguf_bytes(const moe_config *cfg, const model_init_opts *o, const qz_opts *q,
                              int64_t *n_params, int *n_tensors, moe_err *err) {
    qz_plan p;
    moe_config *rc = malloc(sizeof *rc); /* ~20 KB */
    if (!rc) return moe_fail(err, "out of memory");
    int bad = make_plan(&p, rc, cfg, o, q, err);
    free(rc);
    if (bad) return -1;
    if (n_params) *n_params = p.params;
    if (n_tensors) *n_tensors = p.n;
    int64_t b = p.bytes;
    qz_plan_free(&p);
    return b;
}

int model_init_gguf(const moe_config *cfg, const char *path, const model_init_opts *o,
                    const qz_opts *q, const char *name, moe_err *err) {
    qz_plan p;
    moe_config *rc_cfg = malloc(sizeof *rc_cfg);
    if (!rc_cfg) return moe_fail(err, "%s: out of memory", path);
    if (make_plan(&p, rc_cfg, cfg, o, q, err)) {
        free(rc_cfg);
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        return moe_fail(err, "%s: %s", path, m);
    }
    cfg = rc_cfg;
    gen g = {0};
    g.c = cfg;
    g.o = o;
    g.p = &p;
    g.st = o->type;
    g.es = (size_t)dtype_size(o->type);
    g.threads = o->pool ? pool_size(o->pool) : 1;
    int64_t max_cols = 1, max_rows = 1;
    for (int i = 0; i < p.n; i++) {
        if (p.t[i].cols > max_cols) max_cols = p.t[i].cols;
        if (p.t[i].rows > max_rows) max_rows = p.t[i].rows;
    }
    g.tmp = malloc(sizeof(float) * CHUNK * (size_t)g.threads);
    g.scratch = malloc(sizeof(float) * 2 * (size_t)max_cols * (size_t)g.threads);
    g.map = malloc(sizeof(int64_t) * (size_t)(max_rows > max_cols ? max_rows : max_cols));
    g.map2 = malloc(sizeof(int64_t) * (size_t)max_cols);
    g.rel = malloc(sizeof(int64_t) * (size_t)max_rows);
    int rc = -1;
    if (!g.tmp || !g.scratch || !g.map || !g.map2 || !g.rel) {
        moe_fail(err, "%s: out of memory", path);
        goto done;
    }
    qz_write_opts wo = {o->pool, name, o->progress, o->user, NULL};
    rc = qz_write_gguf_from(cfg, &p, path, &wo, write_one, &g, err);
done:
    free(g.span);
    free(g.src);
    free(g.out);
    free(g.tmp);
    free(g.scratch);
    free(g.map);
    free(g.map2);
    free(g.rel);
    qz_plan_free(&p);
    free(rc_cfg);
    return rc;
}
