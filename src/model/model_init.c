/*
 * model_init.c - a random-weight model of any moe_config, written in the
 * Hugging Face layout (DIR/config.json + DIR/model.safetensors, per-expert
 * tensor names as published checkpoints have them), so transformers and
 * moe both load it. `moe init` (real shapes, for benchmarks) and `moe
 * train` (fresh models) use it.
 *
 * Weights (biases included) are N(0, std), norms 1 (zero-centred ones 0),
 * selection biases 0; conv1d weights are written [C][1][K] as nn.Conv1d has them.
 * gpt_oss's fused expert matrices may be written as the released checkpoints
 * have them instead: NAME_blocks [E][R][C/32][16] and NAME_scales
 * [E][R][C/32] (U8, R x C the nn.Linear orientation; weights.c has the
 * layout), each row N(0, std) quantized to MXFP4, with the config's
 * "quantization_config" saying so.
 * Each tensor's values come from generators seeded by (seed, tensor name,
 * chunk), so a layer is the same whatever the layer count or the thread
 * count. Chunks are made in parallel and written in order as
 * they are made: a multi-GB model needs a few MiB of memory.
 */
#include "model/model_init.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/rng.h"
#include "formats/hf_config.h"
#include "formats/st_stream.h"
#include "kernels/quant.h"
#include "model/tensor_map.h"

#define NAME_LEN 192
#define CHUNK MODEL_INIT_CHUNK
#define BATCH 64        /* chunks made in parallel, then written */

/* ------------------------------------------------------------ the layout
 * The tensors, names and fills are the weight-role table's (tensor_map.h). */

typedef struct plan {
    st_write_tensor *t; /* [n] */
    char (*names)[NAME_LEN];
    unsigned char *is_norm; /* [n] 1: filled with ones, 2: with zeros */
    unsigned char *embed;   /* [n] 1: the token embedding (model_init_std) */
    unsigned char *mx;      /* [n] 1: MXFP4 blocks, 2: MXFP4 scales of a fused expert matrix */
    int n, cap;
    int mxfp4;              /* fused expert matrices as MXFP4 */
    const moe_config *c;
} plan;

static int64_t numel(const st_write_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
    return n;
}

/* One tensor of the weight-role table's walk: its name, shape and fill. */
static int plan_add(void *ctx, const tm_entry *e) {
    plan *p = ctx;
    if (p->n >= p->cap) return -1; /* counted in advance; cannot happen */
    if (tm_hf_name(p->names[p->n], NAME_LEN, p->c, e)) return -1;
    st_write_tensor *t = &p->t[p->n];
    memset(t, 0, sizeof *t);
    t->name = p->names[p->n];
    t->n_dims = e->rows ? 2 : 1;
    t->shape[0] = e->rows ? e->rows : e->cols;
    t->shape[1] = e->rows ? e->cols : 0;
    if (e->planes > 1) { /* a fused expert stack */
        t->n_dims = 3;
        t->shape[0] = e->planes;
        t->shape[1] = e->rows;
        t->shape[2] = e->cols;
    }
    unsigned f = tm_role_of(e->role)->flags;
    if (f & TMF_MID1) { /* a conv1d weight: [rows][1][cols] */
        t->n_dims = 3;
        t->shape[1] = 1;
        t->shape[2] = e->cols;
    }
    p->is_norm[p->n] = (unsigned char)model_init_fill(p->c, e->role);
    p->embed[p->n] = e->role == TM_EMBED;
    p->mx[p->n] = 0;
    if (p->mxfp4 && (e->role == TM_EXP_GATE_UP || e->role == TM_EXP_DOWN_T)) {
        int64_t R = e->cols, C = e->rows; /* nn.Linear orientation */
        if (C % QK_MXFP4 || C > CHUNK / 2 || p->n + 1 >= p->cap) return -1;
        char base[NAME_LEN];
        memcpy(base, p->names[p->n], NAME_LEN);
        for (int k = 0; k < 2; k++) {
            st_write_tensor *x = &p->t[p->n];
            snprintf(p->names[p->n], NAME_LEN, "%.170s_%s", base, k ? "scales" : "blocks");
            *x = (st_write_tensor){.name = p->names[p->n], .type = DT_U8, .n_dims = k ? 3 : 4,
                                   .shape = {e->planes, R, C / QK_MXFP4, QK_MXFP4 / 2}};
            p->is_norm[p->n] = 0;
            p->embed[p->n] = 0;
            p->mx[p->n] = (unsigned char)(1 + k);
            p->n++;
        }
        return 0;
    }
    p->n++;
    return 0;
}

/* Every tensor of cfg, HF names, in file order. */
static int plan_build(plan *p, const moe_config *c, int mxfp4) {
    int n = 2 * tm_list(c, TM_HF, NULL, NULL, 0); /* room for MXFP4 pairs */
    p->c = c;
    p->mxfp4 = mxfp4;
    p->cap = n;
    p->n = 0;
    p->t = calloc((size_t)n, sizeof *p->t);
    p->names = calloc((size_t)n, sizeof *p->names);
    p->is_norm = calloc((size_t)n, 1);
    p->embed = calloc((size_t)n, 1);
    p->mx = calloc((size_t)n, 1);
    if (!p->t || !p->names || !p->is_norm || !p->embed || !p->mx) return -1;
    return tm_walk(c, TM_HF, NULL, plan_add, p) ? -1 : 0;
}

static void plan_free(plan *p) {
    free(p->t);
    free(p->names);
    free(p->is_norm);
    free(p->embed);
    free(p->mx);
}

/* ------------------------------------------------------------- the values */

/* One stream per (seed, tensor name, chunk): the values do not depend on
 * the order tensors are written or on how many threads make them. */
static void rng_seed(rng *r, uint64_t seed, const char *name, int64_t chunk) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the name */
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) h = (h ^ *c) * 0x100000001b3ull;
    uint64_t x = seed ^ h ^ ((uint64_t)chunk * 0xd1b54a32d192ed03ull);
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix64(&x);
}

/* n values of N(0, std) (Marsaglia's polar method: no trigonometry). */
static void fill_normal(rng *r, float *v, int n, float std) {
    for (int i = 0; i < n;) {
        double u, w, s;
        do {
            u = (double)(rng_next(r) >> 11) * 0x1.0p-52 - 1.0;
            w = (double)(rng_next(r) >> 11) * 0x1.0p-52 - 1.0;
            s = u * u + w * w;
        } while (s >= 1.0 || s == 0.0);
        double f = sqrt(-2.0 * log(s) / s) * std;
        v[i++] = (float)(u * f);
        if (i < n) v[i++] = (float)(w * f);
    }
}

static void convert(const float *v, int n, dtype t, void *out) {
    if (t == DT_F32) {
        memcpy(out, v, (size_t)n * 4);
    } else {
        uint16_t *o = out;
        for (int i = 0; i < n; i++) o[i] = t == DT_BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
    }
}

int model_init_fill(const moe_config *c, tm_role r) {
    unsigned f = tm_role_of(r)->flags;
    /* a zero-centred norm (norm_offset) is 1 + w: w = 0 */
    int ones = (f & TMF_INIT_ONES) && !tm_norm_offset(c, r);
    return ones ? 1 : f & (TMF_INIT_ONES | TMF_INIT_ZEROS) ? 2 : 0;
}

void model_init_values(const char *name, uint64_t seed, float std, int fill, int64_t k, int a,
                       int b, dtype type, void *out, float *tmp) {
    if (fill) {
        for (int e = a; e < b; e++) tmp[e] = fill == 1 ? 1.0f : 0.0f;
    } else {
        rng g;
        rng_seed(&g, seed, name, k);
        fill_normal(&g, tmp, b, std); /* the stream from the chunk's start */
    }
    convert(tmp + a, b - a, type, out);
}

void model_init_mx_row(const char *base, uint64_t seed, float std, int64_t r, int64_t C,
                       block_mxfp4 *out, float *tmp) {
    rng g;
    rng_seed(&g, seed, base, r);
    fill_normal(&g, tmp, (int)C, std);
    quantize_row_mxfp4_ref(tmp, out, C);
}

/* A batch of chunks of one tensor, made in parallel, written in order. */
typedef struct gen_job {
    const char *name;
    uint64_t seed;
    int64_t n;          /* elements in the tensor */
    int64_t chunk0;     /* first chunk of this batch */
    int is_norm;
    float std;
    dtype type;
    unsigned char *out; /* [BATCH][CHUNK] elements of type */
    float *tmp;         /* [threads][CHUNK] */
} gen_job;

static void gen_chunks(void *ctx, int64_t i0, int64_t i1, int tid) {
    const gen_job *j = ctx;
    float *v = j->tmp + (size_t)tid * CHUNK;
    for (int64_t c = i0; c < i1; c++) {
        int64_t k = j->chunk0 + c, first = k * CHUNK;
        int m = (int)(j->n - first < CHUNK ? j->n - first : CHUNK);
        model_init_values(j->name, j->seed, j->std, j->is_norm, k, 0, m, j->type,
                          j->out + (size_t)c * CHUNK * (size_t)dtype_size(j->type), v);
    }
}

/* Rows [r0, r0 + n) of an MXFP4 pair: row r of the stack is N(0, std) from
 * the stream (seed, the matrix's name, r), quantized; its blocks or its
 * scales go out. */
typedef struct mx_job {
    const char *base;   /* the fused matrix's name (the pair shares its values) */
    uint64_t seed;
    int64_t r0, C;
    int scales;         /* 0: blocks, 1: scales */
    float std;
    unsigned char *out; /* [n] rows of C/32 * (16 or 1) bytes */
    float *tmp;         /* [threads][CHUNK] */
} mx_job;

static void gen_mx_rows(void *ctx, int64_t i0, int64_t i1, int tid) {
    const mx_job *j = ctx;
    float *v = j->tmp + (size_t)tid * CHUNK;
    block_mxfp4 *blk = (block_mxfp4 *)(void *)(v + j->C); /* C <= CHUNK / 2 */
    int64_t nb = j->C / QK_MXFP4;
    size_t rb = (size_t)nb * (j->scales ? 1 : QK_MXFP4 / 2);
    for (int64_t i = i0; i < i1; i++) {
        model_init_mx_row(j->base, j->seed, j->std, j->r0 + i, j->C, blk, v);
        unsigned char *o = j->out + (size_t)i * rb;
        mxfp4_to_hf(blk, j->scales ? NULL : o, j->scales ? o : NULL, nb);
    }
}

static int write_mx(st_stream *w, const st_write_tensor *t, int scales, const model_init_opts *o,
                    unsigned char *buf, size_t cap, float *tmp, int64_t *written, int64_t total,
                    moe_err *err) {
    char base[NAME_LEN];
    snprintf(base, sizeof base, "%.*s", (int)strlen(t->name) - 7, t->name); /* less _blocks */
    int64_t rows = t->shape[0] * t->shape[1], C = t->shape[2] * QK_MXFP4;
    size_t rb = (size_t)t->shape[2] * (scales ? 1 : QK_MXFP4 / 2);
    int64_t per = (int64_t)(cap / rb) > 0 ? (int64_t)(cap / rb) : 1;
    mx_job job = {base, o->seed, 0, C, scales, o->std, buf, tmp};
    for (job.r0 = 0; job.r0 < rows; job.r0 += per) {
        int64_t n = rows - job.r0 < per ? rows - job.r0 : per;
        pool_for(o->pool, n, 16, gen_mx_rows, &job);
        if (sts_write(w, buf, (size_t)n * rb, err)) return -1;
        *written += n * (int64_t)rb;
        if (o->progress) o->progress(o->user, *written, total);
    }
    return 0;
}

/* ------------------------------------------------------------ writing */

int model_init_random(const moe_config *cfg, const char *dir, const model_init_opts *o,
                      moe_err *err) {
    if (moe_config_validate(cfg, dir, err)) return -1;
    plan p = {0};
    if (o->mxfp4_experts && cfg->arch != MOE_ARCH_GPT_OSS)
        return moe_fail(err, "%s: MXFP4 experts are written for gpt_oss only", dir);
    if (plan_build(&p, cfg, o->mxfp4_experts)) {
        plan_free(&p);
        return moe_fail(err, "%s: out of memory planning the tensors (or expert rows that are "
                        "not whole MXFP4 blocks)", dir);
    }
    int64_t total = 0;
    for (int i = 0; i < p.n; i++) {
        if (!p.mx[i]) p.t[i].type = o->type;
        total += numel(&p.t[i]) * dtype_size(p.t[i].type);
    }

    char cfg_path[4096], st_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    const size_t esize = (size_t)dtype_size(o->type);
    int threads = o->pool ? pool_size(o->pool) : 1;
    unsigned char *bytes = malloc((size_t)BATCH * CHUNK * esize);
    float *tmp = malloc((size_t)threads * CHUNK * sizeof *tmp);
    st_stream w;
    int started = 0, rc = -1;
    if (!bytes || !tmp) {
        moe_fail(err, "%s: out of memory", dir);
        goto done;
    }
    if (sts_begin(&w, st_path, p.t, p.n, "{\"format\":\"pt\"}", err)) goto done;
    started = 1;
    int64_t written = 0;
    for (int i = 0; i < p.n; i++) {
        if (p.mx[i]) {
            if (write_mx(&w, &p.t[i], p.mx[i] == 2, o, bytes, (size_t)BATCH * CHUNK * esize, tmp,
                         &written, total, err))
                goto done;
            continue;
        }
        int64_t n = numel(&p.t[i]);
        int64_t n_chunks = (n + CHUNK - 1) / CHUNK;
        gen_job job = {p.t[i].name, o->seed, n, 0, p.is_norm[i], model_init_std(o, p.embed[i]), o->type, bytes, tmp};
        for (job.chunk0 = 0; job.chunk0 < n_chunks; job.chunk0 += BATCH) {
            int64_t nc = n_chunks - job.chunk0 < BATCH ? n_chunks - job.chunk0 : BATCH;
            pool_for(o->pool, nc, 1, gen_chunks, &job);
            int64_t m = (n - job.chunk0 * CHUNK < nc * CHUNK) ? n - job.chunk0 * CHUNK : nc * CHUNK;
            if (sts_write(&w, bytes, (size_t)m * esize, err)) goto done;
            written += m * (int64_t)esize;
            if (o->progress) o->progress(o->user, written, total);
        }
    }
    started = 0;
    if (sts_finish(&w, err)) goto done;
    const char *torch = o->type == DT_F32 ? "float32" : o->type == DT_BF16 ? "bfloat16" : "float16";
    if (hf_config_write_q(cfg, cfg_path, torch, o->mxfp4_experts, err)) goto done;
    rc = 0;
done:
    if (started) sts_abort(&w);
    free(tmp);
    free(bytes);
    plan_free(&p);
    return rc;
}

int64_t model_init_bytes(const moe_config *cfg, dtype type, int mxfp4_experts, int64_t *n_params,
                         int *n_tensors) {
    plan p = {0};
    if (plan_build(&p, cfg, mxfp4_experts)) {
        plan_free(&p);
        return -1;
    }
    int64_t params = 0, bytes = 0;
    for (int i = 0; i < p.n; i++) {
        int64_t k = numel(&p.t[i]);
        if (p.mx[i] == 1) params += k * 2; /* two 4-bit values a byte */
        else if (!p.mx[i]) params += k;
        bytes += p.mx[i] ? k : k * dtype_size(type);
    }
    if (n_params) *n_params = params;
    if (n_tensors) *n_tensors = p.n;
    plan_free(&p);
    return bytes;
}
