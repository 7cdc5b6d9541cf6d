/*
 * model_load.c - from a Hugging Face checkpoint directory to a moe_model:
 * read config.json, map the safetensors files, and point every weight of
 * the model at its bytes, checking each tensor's presence, shape and dtype.
 *
 * Tensor names follow transformers' checkpoints:
 *   model.embed_tokens.weight, model.norm.weight, lm_head.weight
 *   model.layers.N.{input_layernorm,post_attention_layernorm}.weight
 *   model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias}, .{q,k}_norm.weight
 *   dense:   model.layers.N.mlp.{gate,up,down}_proj.weight
 *   mixtral: model.layers.N.block_sparse_moe.gate.weight,
 *            ....block_sparse_moe.experts.J.{w1,w3,w2}.weight (gate, up, down)
 *   others:  model.layers.N.mlp.gate.weight, mlp.experts.J.{gate,up,down}_proj.weight,
 *            mlp.shared_expert.*_proj.weight, mlp.shared_expert_gate.weight
 * A vision-language checkpoint (qwen3_5_moe) keeps its text model under
 * model.language_model. (model.language_model.layers.N..., .embed_tokens,
 * .norm; lm_head.weight as it is) beside its vision tower (model.visual.*,
 * not loaded); every "model." name is also looked for there.
 * Stacked expert tensors (PREFIX.experts.gate_up_proj [E][2F][D] and
 * PREFIX.experts.down_proj [E][D][F], as transformers 5 holds them in memory)
 * are accepted too; per-expert pointers then point into the stack.
 * The names come from the weight-role table (tensor_map.h); the checks and
 * the placing are weights.c's, shared with the GGUF loader.
 */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "cache/cache.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "model/weights.h"

typedef struct hf_src {
    const moe_model *m;
    const char *dir;
} hf_src;

static void from_st(const st_tensor *t, wt_tensor *out) {
    *out = (wt_tensor){t->data, t->type, t->n_dims, {0}, (int64_t)t->nbytes};
    for (int i = 0; i < t->n_dims && i < 4; i++) out->shape[i] = t->shape[i];
    if (t->n_dims > 4) out->n_dims = 5; /* refused by the shape checks */
}

/* name with "model." -> "model.language_model." into buf; NULL when it
 * does not start so or does not fit. */
static const char *lm_name(char *buf, size_t n, const char *name) {
    if (strncmp(name, "model.", 6)) return NULL;
    int r = snprintf(buf, n, "model.language_model.%s", name + 6);
    return r > 0 && (size_t)r < n ? buf : NULL;
}

/* A tensor by name, or under model.language_model. */
static const st_tensor *find_either(const hf_src *S, const char *name) {
    char buf[300];
    const st_tensor *t = st_find(&S->m->st, name);
    const char *alt = t ? NULL : lm_name(buf, sizeof buf, name);
    return alt ? st_find(&S->m->st, alt) : t;
}

/* One expert of a fused stack: PREFIX.experts.gate_up_proj [E][2F][D]
 * (gate rows, then up rows) or PREFIX.experts.down_proj [E][D][F]. */
static int hf_fused(const hf_src *S, const tm_entry *e, int alt, wt_tensor *out, moe_err *err) {
    const moe_config *c = &S->m->cfg;
    const tm_arch_info *ai = tm_arch_of(c->arch);
    const char *moe = alt ? ai->hf_moe_alt : ai->hf_moe;
    if (!moe) return 1;
    int down = e->role == TM_EXP_DOWN;
    char name[200];
    snprintf(name, sizeof name, "model.layers.%d.%s.experts.%s", e->layer, moe,
             down ? "down_proj" : "gate_up_proj");
    const st_tensor *t = find_either(S, name);
    if (!t) return 1;
    int64_t E = c->layer[e->layer].n_experts, R = down ? e->rows : 2 * e->rows;
    if (t->n_dims != 3 || t->shape[0] != E || t->shape[1] != R || t->shape[2] != e->cols)
        return moe_fail(err, "%s: tensor %s has the wrong shape, expected [%lld, %lld, %lld]",
                        S->dir, t->name, (long long)E, (long long)R, (long long)e->cols);
    size_t rb = (size_t)dtype_row_bytes(t->type, e->cols);
    size_t at = ((size_t)e->expert * (size_t)R + (e->role == TM_EXP_UP ? (size_t)e->rows : 0)) * rb;
    *out = (wt_tensor){(const char *)t->data + at, t->type, 2, {e->rows, e->cols, 0},
                       (int64_t)((size_t)e->rows * rb)};
    return 0;
}

/* The safetensors tensor of e: its name, or the arch's other MoE block name
 * (transformers 5 in-memory naming), or a view into a fused expert stack. */
static int hf_find(void *ctx, const tm_entry *e, const char *name, wt_tensor *out, moe_err *err) {
    const hf_src *S = ctx;
    const st_tensor *t = find_either(S, name);
    char alt[256];
    if (!t && !tm_hf_name_alt(alt, sizeof alt, &S->m->cfg, e, 1)) t = find_either(S, alt);
    if (t) {
        from_st(t, out);
        return 0;
    }
    if (!tm_is_expert(e->role)) return 1;
    int r = hf_fused(S, e, 0, out, err);
    return r == 1 ? hf_fused(S, e, 1, out, err) : r;
}

int moe_model_load(moe_model **out, const char *path, moe_err *err) {
    return moe_model_load_opts(out, path, NULL, err);
}

int moe_model_load_opts(moe_model **out, const char *path, const moe_load_opts *o, moe_err *err) {
    *out = NULL;
    (void)kernels_default(); /* the CPU detected once, before any session runs */
    int budget = o && o->mem > 0; /* experts read on demand: map, never read whole */
    if (o && o->mem < 0) return moe_fail(err, "expert memory budget %lld: not a size", (long long)o->mem);
    moe_model *m = calloc(1, sizeof *m);
    if (!m) return moe_fail(err, "out of memory");
    size_t pl = strlen(path);
    if (pl > 5 && strcmp(path + pl - 5, ".gguf") == 0) { /* a single GGUF file */
        if (model_gguf_load(m, path, budget, err)) goto fail;
        goto loaded;
    }
    if (hf_config_load(&m->cfg, path, err)) goto fail;
    if (budget ? st_open_dir(&m->st, path, err) : st_open_dir_weights(&m->st, path, err)) goto fail;
    hf_src S = {m, path};
    wt_source src = {path, TM_HF, NULL, 0, hf_find, &S, budget};
    if (weights_load(m, &src, err)) {
        size_t n = strlen(err->msg); /* a missing name was looked for there too */
        if (strstr(err->msg, " is missing") &&
            find_either(&S, "model.embed_tokens.weight") != st_find(&m->st, "model.embed_tokens.weight"))
            snprintf(err->msg + n, sizeof err->msg - n, " (nor under model.language_model.)");
        goto fail;
    }
loaded:
    if (budget && cache_new(&m->cache, m, path, o, err)) goto fail;
    const int repack = o ? o->repack : 0;
    if ((repack > 0 || (repack == 0 && model_repack_pays(m))) && model_repack(m, &m->stats.packed, err)) goto fail;
    *out = m;
    return 0;
fail:
    moe_model_free(m);
    return -1;
}

void moe_model_free(moe_model *m) {
    if (!m) return;
    cache_destroy(m->cache); /* its readers stop before the files go */
    st_close(&m->st);
    if (m->gguf) {
        gguf_close(m->gguf);
        free(m->gguf);
    }
    free(m->owned);
    free(m->layers);
    free(m->expert_table);
    free(m);
}

const moe_config *moe_model_config(const moe_model *m) { return &m->cfg; }

void moe_model_stats_get(const moe_model *m, moe_model_stats *st) { *st = m->stats; }
