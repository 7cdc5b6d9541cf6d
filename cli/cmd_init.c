/*
 * cmd_init.c - `moe init --preset NAME [--layers N] OUT`: a random-weight
 * model with the shape of a real one, in the Hugging Face layout
 * (OUT/config.json + OUT/model.safetensors, per-expert tensor names as the
 * published checkpoints have them), so transformers and `moe` both load it.
 *
 * Weights are N(0, std) (std 0.02 as transformers initializes), norms 1.
 * Each tensor's values come from generators seeded by (seed, tensor name,
 * chunk), so a layer is the same whatever --layers or --threads is. Chunks
 * are made in parallel and written in order as they are made: a multi-GB
 * model needs a few MiB of memory.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "args.h"
#include "base/pool.h"
#include "cli.h"
#include "formats/hf_config.h"
#include "kernels/probe.h"
#include "presets.h"
#include "st_stream.h"

#define NAME_LEN 192
#define CHUNK (1 << 16) /* elements per random stream */
#define BATCH 64        /* chunks made in parallel, then written */

/* ------------------------------------------------------------ the layout */

typedef struct plan {
    st_write_tensor *t; /* [n] */
    char (*names)[NAME_LEN];
    unsigned char *is_norm; /* [n] 1: filled with ones */
    int n, cap;
} plan;

static void plan_add(plan *p, int is_norm, int n_dims, int64_t d0, int64_t d1, const char *fmt,
                     ...) __attribute__((format(printf, 6, 7)));
static void plan_add(plan *p, int is_norm, int n_dims, int64_t d0, int64_t d1, const char *fmt,
                     ...) {
    if (p->n >= p->cap) return; /* counted in advance; cannot happen */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->names[p->n], NAME_LEN, fmt, ap);
    va_end(ap);
    st_write_tensor *t = &p->t[p->n];
    memset(t, 0, sizeof *t);
    t->name = p->names[p->n];
    t->n_dims = n_dims;
    t->shape[0] = d0;
    t->shape[1] = d1;
    p->is_norm[p->n] = (unsigned char)is_norm;
    p->n++;
}

static void add_ffn(plan *p, const char *prefix, const char *g, const char *u, const char *d,
                    int64_t D, int64_t F) {
    plan_add(p, 0, 2, F, D, "%s.%s.weight", prefix, g);
    plan_add(p, 0, 2, F, D, "%s.%s.weight", prefix, u);
    plan_add(p, 0, 2, D, F, "%s.%s.weight", prefix, d);
}

/* Every tensor of cfg, HF names, in file order. With p->t == NULL only counts. */
static int plan_build(plan *p, const moe_config *c) {
    const int64_t D = c->dim, V = c->vocab, H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim;
    int n = 3;
    for (int i = 0; i < c->n_layers; i++) {
        const moe_layer_config *l = &c->layer[i];
        n += 6 + 3 + 1 + 2 + (l->moe ? 1 + 3 * l->n_experts + 3 + 1 : 3);
    }
    p->cap = n;
    p->n = 0;
    p->t = calloc((size_t)n, sizeof *p->t);
    p->names = calloc((size_t)n, sizeof *p->names);
    p->is_norm = calloc((size_t)n, 1);
    if (!p->t || !p->names || !p->is_norm) return -1;

    plan_add(p, 0, 2, V, D, "model.embed_tokens.weight");
    for (int i = 0; i < c->n_layers; i++) {
        const moe_layer_config *l = &c->layer[i];
        char pre[32], mp[80], ep[128];
        snprintf(pre, sizeof pre, "model.layers.%d", i);
        plan_add(p, 1, 1, D, 0, "%s.input_layernorm.weight", pre);
        plan_add(p, 0, 2, H * Dh, D, "%s.self_attn.q_proj.weight", pre);
        plan_add(p, 0, 2, G * Dh, D, "%s.self_attn.k_proj.weight", pre);
        plan_add(p, 0, 2, G * Dh, D, "%s.self_attn.v_proj.weight", pre);
        plan_add(p, 0, 2, D, H * Dh, "%s.self_attn.o_proj.weight", pre);
        if (c->qkv_bias) {
            plan_add(p, 0, 1, H * Dh, 0, "%s.self_attn.q_proj.bias", pre);
            plan_add(p, 0, 1, G * Dh, 0, "%s.self_attn.k_proj.bias", pre);
            plan_add(p, 0, 1, G * Dh, 0, "%s.self_attn.v_proj.bias", pre);
        }
        if (c->o_bias) plan_add(p, 0, 1, D, 0, "%s.self_attn.o_proj.bias", pre);
        if (c->qk_norm == MOE_QKNORM_HEAD) {
            plan_add(p, 1, 1, Dh, 0, "%s.self_attn.q_norm.weight", pre);
            plan_add(p, 1, 1, Dh, 0, "%s.self_attn.k_norm.weight", pre);
        } else if (c->qk_norm == MOE_QKNORM_FULL) {
            plan_add(p, 1, 1, H * Dh, 0, "%s.self_attn.q_norm.weight", pre);
            plan_add(p, 1, 1, G * Dh, 0, "%s.self_attn.k_norm.weight", pre);
        }
        plan_add(p, 1, 1, D, 0, "%s.post_attention_layernorm.weight", pre);
        if (!l->moe) {
            snprintf(mp, sizeof mp, "%s.mlp", pre);
            add_ffn(p, mp, "gate_proj", "up_proj", "down_proj", D, l->ffn_dim);
            continue;
        }
        int mixtral = c->arch == MOE_ARCH_MIXTRAL;
        snprintf(mp, sizeof mp, "%s.%s", pre, mixtral ? "block_sparse_moe" : "mlp");
        plan_add(p, 0, 2, l->n_experts, D, "%s.gate.weight", mp);
        for (int e = 0; e < l->n_experts; e++) {
            snprintf(ep, sizeof ep, "%s.experts.%d", mp, e);
            if (mixtral) add_ffn(p, ep, "w1", "w3", "w2", D, l->expert_dim);
            else add_ffn(p, ep, "gate_proj", "up_proj", "down_proj", D, l->expert_dim);
        }
        if (l->n_shared > 0) {
            snprintf(ep, sizeof ep, "%s.shared_expert", mp);
            add_ffn(p, ep, "gate_proj", "up_proj", "down_proj", D, l->shared_dim);
            if (l->shared_gate) plan_add(p, 0, 2, 1, D, "%s.shared_expert_gate.weight", mp);
        }
    }
    plan_add(p, 1, 1, D, 0, "model.norm.weight");
    if (!c->tied_embeddings) plan_add(p, 0, 2, V, D, "lm_head.weight");
    return 0;
}

static void plan_free(plan *p) {
    free(p->t);
    free(p->names);
    free(p->is_norm);
}

/* ------------------------------------------------------------- the values */

typedef struct rng { uint64_t s[4]; } rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_next(rng *r) { /* xoshiro256** */
    uint64_t *s = r->s, x = s[1] * 5, t = s[1] << 17;
    uint64_t out = ((x << 7) | (x >> 57)) * 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return out;
}

/* One stream per (seed, tensor name, chunk): the values do not depend on
 * the order tensors are written or on how many threads make them. */
static void rng_seed(rng *r, uint64_t seed, const char *name, int64_t chunk) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the name */
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) h = (h ^ *c) * 0x100000001b3ull;
    uint64_t x = seed ^ h ^ ((uint64_t)chunk * 0xd1b54a32d192ed03ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
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
            for (int e = 0; e < m; e++) v[e] = 1.0f;
        } else {
            rng g;
            rng_seed(&g, j->seed, j->name, k);
            fill_normal(&g, v, m, j->std);
        }
        convert(v, m, j->type, j->out + (size_t)c * CHUNK * (size_t)dtype_size(j->type));
    }
}

/* ------------------------------------------------------------ the command */

static int parse_dtype(const char *s, dtype *t, const char **torch_name) {
    if (!strcmp(s, "bf16")) *t = DT_BF16, *torch_name = "bfloat16";
    else if (!strcmp(s, "f16")) *t = DT_F16, *torch_name = "float16";
    else if (!strcmp(s, "f32")) *t = DT_F32, *torch_name = "float32";
    else return -1;
    return 0;
}

int cmd_init(int argc, char **argv) {
    const char *preset_name = NULL, *dtype_s = "bf16";
    int layers = 0, force = 0, threads = 0;
    uint64_t seed = 0;
    float std = 0.02f;
    const arg_opt opts[] = {
        {"--preset", NULL, ARG_STR, &preset_name, 0, 0, 0, "NAME", "model shape (required; see below)"},
        {"--layers", NULL, ARG_INT, &layers, 1, MOE_MAX_LAYERS, 0, "N",
         "number of layers (default: the real model's)"},
        {"--dtype", NULL, ARG_STR, &dtype_s, 0, 0, 0, "T", "bf16 (default), f16 or f32"},
        {"--seed", NULL, ARG_U64, &seed, 0, 0, 0, "S", "random seed (0)"},
        {"--std", NULL, ARG_FLOAT, &std, 0, 10, 0, "X", "standard deviation of the weights (0.02)"},
        {"--threads", "-t", ARG_INT, &threads, 0, 4096, 0, "N",
         "threads making random numbers (0 = all CPUs; the result does not depend on it)"},
        {"--force", NULL, ARG_FLAG, &force, 0, 0, 0, NULL, "overwrite a model already in OUT"},
    };
    char details[2048];
    int o = snprintf(details, sizeof details, "presets:\n");
    for (int i = 0; i < n_presets && o > 0 && (size_t)o < sizeof details; i++)
        o += snprintf(details + o, sizeof details - (size_t)o, "  %-16s %s\n", presets[i].name,
                      presets[i].about);
    if (o > 0 && (size_t)o < sizeof details)
        snprintf(details + o, sizeof details - (size_t)o,
                 "\nWeights are N(0, std), norms 1; no tokenizer is written. Example:\n"
                 "  moe init --preset olmoe-1b-7b --layers 4 /tmp/olmoe-4l   (about 3.8 GB)");
    const arg_cmd c = {"init", "--preset NAME [--layers N] [--dtype bf16|f16|f32] [--seed S] OUT",
                       "Write a random-weight model with the shape of a real one to the directory OUT\n"
                       "(config.json + model.safetensors, Hugging Face layout).",
                       details, opts, 7, 1, 1, "OUT"};
    const char *pos[1];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    if (!preset_name) {
        cli_error("init", "--preset NAME is required (run 'moe init --help' for the list)");
        return 2;
    }
    const preset *ps = preset_find(preset_name);
    if (!ps) {
        cli_error("init", "--preset: unknown preset '%s' (run 'moe init --help' for the list)",
                  preset_name);
        return 2;
    }
    dtype dt;
    const char *torch_dtype;
    if (parse_dtype(dtype_s, &dt, &torch_dtype)) {
        cli_error("init", "--dtype: '%s' is not one of bf16, f16, f32", dtype_s);
        return 2;
    }
    const char *out = pos[0];

    static moe_config cfg; /* ~20 KB of layer configs: off the stack */
    ps->fill(&cfg);
    if (layers) cfg.n_layers = layers;
    moe_err err = {{0}};
    if (moe_config_validate(&cfg, ps->name, &err)) {
        cli_error("init", "preset %s: %s", ps->name, err.msg);
        return 1;
    }

    /* the directory: create it, or refuse to overwrite a model in it */
    char cfg_path[4096], st_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", out);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", out);
    struct stat sb;
    if (stat(out, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            cli_error("init", "%s exists and is not a directory", out);
            return 1;
        }
        if (!force && (stat(cfg_path, &sb) == 0 || stat(st_path, &sb) == 0)) {
            cli_error("init", "%s already holds a model (use --force to overwrite)", out);
            return 1;
        }
    } else if (mkdir(out, 0755) != 0) {
        cli_error("init", "cannot create directory %s: %s", out, strerror(errno));
        return 1;
    }

    plan p = {0};
    if (plan_build(&p, &cfg)) {
        cli_error("init", "out of memory");
        plan_free(&p);
        return 1;
    }
    for (int i = 0; i < p.n; i++) p.t[i].type = dt;
    int64_t total = 0, params = 0;
    for (int i = 0; i < p.n; i++) {
        int64_t e = p.t[i].shape[0] * (p.t[i].n_dims > 1 ? p.t[i].shape[1] : 1);
        params += e;
        total += e * dtype_size(dt);
    }
    struct statvfs vfs;
    if (statvfs(out, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < (uint64_t)total + (1u << 20)) {
        char b1[32], b2[32];
        cli_error("init", "%s needs %s but only %s is free (fewer --layers?)", out,
                  cli_bytes(total, b1, sizeof b1),
                  cli_bytes((int64_t)((uint64_t)vfs.f_bavail * vfs.f_frsize), b2, sizeof b2));
        plan_free(&p);
        return 1;
    }

    int rc = 1;
    const size_t esize = (size_t)dtype_size(dt);
    pool *pl = pool_create(threads);
    unsigned char *bytes = malloc((size_t)BATCH * CHUNK * esize);
    float *tmp = pl ? malloc((size_t)pool_size(pl) * CHUNK * sizeof *tmp) : NULL;
    st_stream w;
    int started = 0, show = isatty(STDERR_FILENO) && total > (256 << 20);
    double t0 = clock_now();
    if (!pl || !bytes || !tmp) {
        cli_error("init", "out of memory (or no threads)");
        goto done;
    }
    char meta[128];
    snprintf(meta, sizeof meta, "{\"format\":\"pt\",\"moe_preset\":\"%s\"}", ps->name);
    if (sts_begin(&w, st_path, p.t, p.n, meta, &err)) {
        cli_error("init", "%s", err.msg);
        goto done;
    }
    started = 1;
    int64_t written = 0, next_report = total / 20;
    for (int i = 0; i < p.n; i++) {
        int64_t n = p.t[i].shape[0] * (p.t[i].n_dims > 1 ? p.t[i].shape[1] : 1);
        int64_t n_chunks = (n + CHUNK - 1) / CHUNK;
        gen_job job = {p.t[i].name, seed, n, 0, p.is_norm[i], std, dt, bytes, tmp};
        for (job.chunk0 = 0; job.chunk0 < n_chunks; job.chunk0 += BATCH) {
            int64_t nc = n_chunks - job.chunk0 < BATCH ? n_chunks - job.chunk0 : BATCH;
            pool_for(pl, nc, 1, gen_chunks, &job);
            int64_t m = (n - job.chunk0 * CHUNK < nc * CHUNK) ? n - job.chunk0 * CHUNK : nc * CHUNK;
            if (sts_write(&w, bytes, (size_t)m * esize, &err)) {
                cli_error("init", "%s", err.msg);
                goto done;
            }
            written += m * (int64_t)esize;
            if (show && written >= next_report) {
                fprintf(stderr, "\rmoe init: %3d%%", (int)(100 * written / total));
                next_report += total / 20;
            }
        }
    }
    if (show) fprintf(stderr, "\r");
    started = 0;
    if (sts_finish(&w, &err)) {
        cli_error("init", "%s", err.msg);
        goto done;
    }
    if (hf_config_write(&cfg, cfg_path, torch_dtype, &err)) {
        cli_error("init", "%s", err.msg);
        goto done;
    }
    char b1[32], b2[32];
    printf("wrote %s: %s preset, %d layers, %d tensors, %s parameters, %s %s in %.1f s\n", out,
           ps->name, cfg.n_layers, p.n, cli_count(params, b1, sizeof b1),
           cli_bytes(total, b2, sizeof b2), dtype_name(dt), clock_now() - t0);
    rc = 0;
done:
    if (started) sts_abort(&w);
    free(tmp);
    free(bytes);
    pool_free(pl);
    plan_free(&p);
    return rc;
}
