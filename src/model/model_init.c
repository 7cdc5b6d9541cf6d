/*
 * model_init.c - a random-weight model of any moe_config, written in the
 * Hugging Face layout (DIR/config.json + DIR/model.safetensors, per-expert
 * tensor names as published checkpoints have them), so transformers and
 * moe both load it. `moe init` (real shapes, for benchmarks) and `moe
 * train` (fresh models) use it.
 *
 * Weights (biases included) are N(0, std), norms 1 (zero-centred ones 0),
 * selection biases 0; conv1d weights are written [C][1][K] as nn.Conv1d has them.
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
#include "model/tensor_map.h"

#define NAME_LEN 192
#define CHUNK (1 << 16) /* elements per random stream */
#define BATCH 64        /* chunks made in parallel, then written */

/* ------------------------------------------------------------ the layout
 * The tensors, names and fills are the weight-role table's (tensor_map.h). */

typedef struct plan {
    st_write_tensor *t; /* [n] */
    char (*names)[NAME_LEN];
    unsigned char *is_norm; /* [n] 1: filled with ones, 2: with zeros */
    int n, cap;
    const moe_config *c;
} plan;

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
    unsigned f = tm_role_of(e->role)->flags;
    if (f & TMF_MID1) { /* a conv1d weight: [rows][1][cols] */
        t->n_dims = 3;
        t->shape[1] = 1;
        t->shape[2] = e->cols;
    }
    /* a zero-centred norm (norm_offset) is 1 + w: w = 0 */
    int ones = (f & TMF_INIT_ONES) && !tm_norm_offset(p->c, e->role);
    p->is_norm[p->n] = ones ? 1 : f & (TMF_INIT_ONES | TMF_INIT_ZEROS) ? 2 : 0;
    p->n++;
    return 0;
}

/* Every tensor of cfg, HF names, in file order. */
static int plan_build(plan *p, const moe_config *c) {
    int n = tm_list(c, TM_HF, NULL, NULL, 0);
    p->c = c;
    p->cap = n;
    p->n = 0;
    p->t = calloc((size_t)n, sizeof *p->t);
    p->names = calloc((size_t)n, sizeof *p->names);
    p->is_norm = calloc((size_t)n, 1);
    if (!p->t || !p->names || !p->is_norm) return -1;
    return tm_walk(c, TM_HF, NULL, plan_add, p) ? -1 : 0;
}

static int64_t n_elems(const st_write_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
    return n;
}

static void plan_free(plan *p) {
    free(p->t);
    free(p->names);
    free(p->is_norm);
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
        if (j->is_norm) {
            for (int e = 0; e < m; e++) v[e] = j->is_norm == 1 ? 1.0f : 0.0f;
        } else {
            rng g;
            rng_seed(&g, j->seed, j->name, k);
            fill_normal(&g, v, m, j->std);
        }
        convert(v, m, j->type, j->out + (size_t)c * CHUNK * (size_t)dtype_size(j->type));
    }
}

/* ------------------------------------------------------------ writing */

int model_init_random(const moe_config *cfg, const char *dir, const model_init_opts *o,
                      moe_err *err) {
    if (moe_config_validate(cfg, dir, err)) return -1;
    plan p = {0};
    if (plan_build(&p, cfg)) {
        plan_free(&p);
        return moe_fail(err, "%s: out of memory planning the tensors", dir);
    }
    for (int i = 0; i < p.n; i++) p.t[i].type = o->type;
    int64_t total = 0;
    for (int i = 0; i < p.n; i++)
        total += n_elems(&p.t[i]) * dtype_size(o->type);

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
        int64_t n = n_elems(&p.t[i]);
        int64_t n_chunks = (n + CHUNK - 1) / CHUNK;
        gen_job job = {p.t[i].name, o->seed, n, 0, p.is_norm[i], o->std, o->type, bytes, tmp};
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
    if (hf_config_write(cfg, cfg_path, torch, err)) goto done;
    rc = 0;
done:
    if (started) sts_abort(&w);
    free(tmp);
    free(bytes);
    plan_free(&p);
    return rc;
}

int64_t model_init_bytes(const moe_config *cfg, dtype type, int64_t *n_params, int *n_tensors) {
    plan p = {0};
    if (plan_build(&p, cfg)) {
        plan_free(&p);
        return -1;
    }
    int64_t params = 0;
    for (int i = 0; i < p.n; i++) params += n_elems(&p.t[i]);
    if (n_params) *n_params = params;
    if (n_tensors) *n_tensors = p.n;
    plan_free(&p);
    return params * dtype_size(type);
}
