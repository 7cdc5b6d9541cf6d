/*
 * quant_api.c - include/moe_quant.h over quantize_plan.c, quantize_gguf.c
 * and quantize_hf.c: the public types and modes mapped onto qz_*, the plan
 * kept opaque, and a thread pool for each write.
 */
#include "moe_quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "base/err.h"
#include "base/pool.h"
#include "formats/gguf.h"
#include "model/quantize.h"
#include "model/tensor_map.h"

struct moe_quant_plan {
    qz_plan p;
};

int moe_qtype_from_name(const char *s) { return qz_type_from_name(s); }

const char *moe_qtype_name(int type) { return gguf_type_name(type); }

int moe_qtype_is_float(int type) {
    return type == MOE_QTYPE_F32 || type == MOE_QTYPE_F16 || type == MOE_QTYPE_BF16;
}

int moe_quant_plan_new(moe_quant_plan **out, const moe_model *m, const moe_quant_opts *o,
                       moe_err *err) {
    static const qz_mode modes[] = {QZ_KEEP, QZ_FLOAT, QZ_QUANT, QZ_MIXED};
    *out = NULL;
    if ((unsigned)o->mode >= sizeof modes / sizeof modes[0])
        return moe_fail(err, "quantization mode %d is not one of keep, float, type, mixed",
                        (int)o->mode);
    moe_quant_plan *p = calloc(1, sizeof *p);
    if (!p) return moe_fail(err, "out of memory");
    qz_opts qo = {modes[o->mode], o->type, o->pure, o->high, o->low, o->counts, o->stride,
                  o->budget, o->experts};
    if (qz_plan_make(&p->p, m, &qo, err)) {
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void moe_quant_plan_free(moe_quant_plan *p) {
    if (!p) return;
    qz_plan_free(&p->p);
    free(p);
}

void moe_quant_plan_summary(const moe_quant_plan *pl, moe_quant_summary *s) {
    const qz_plan *p = &pl->p;
    memset(s, 0, sizeof *s);
    s->n_tensors = p->n;
    s->bytes = p->bytes;
    s->params = p->params;
    s->min_bytes = p->expert_type ? p->min_bytes : p->bytes;
    s->max_bytes = p->expert_type ? p->max_bytes : p->bytes;
    s->n_high = p->n_high;
    s->n_experts = p->n_experts;
    s->n_fallback = p->n_fallback;
    /* tensors per type; the highest ids (BF16, then the quants) first */
    int counts[64] = {0};
    for (int i = 0; i < p->n; i++)
        if (p->type[i] >= 0 && p->type[i] < 64) counts[p->type[i]]++;
    size_t o = 0, n = sizeof s->types;
    for (int t = 63; t >= 0 && o < n; t--)
        if (counts[t])
            o += (size_t)snprintf(s->types + o, n - o, "%s%s (%d)", o ? ", " : "",
                                  gguf_type_name(t), counts[t]);
}

int moe_quant_plan_tensor(const moe_quant_plan *pl, int i, moe_quant_tensor *t) {
    const qz_plan *p = &pl->p;
    memset(t, 0, sizeof *t);
    if (i < 0 || i >= p->n) return -1;
    const tm_entry *e = &p->t[i];
    tm_gguf_name(t->name, sizeof t->name, e);
    t->type = p->type[i];
    t->n_values = (int64_t)e->planes * (e->rows ? e->rows : 1) * e->cols;
    dtype d = dtype_from_ggml(t->type);
    int be = dtype_block_elems(d);
    t->bytes = be ? t->n_values / be * dtype_block_bytes(d) : 0;
    return 0;
}

int moe_quant_plan_expert_type(const moe_quant_plan *pl, int layer, int expert) {
    const qz_plan *p = &pl->p;
    if (!p->expert_type || layer < 0 || expert < 0 || expert >= p->stride) return -1;
    return p->expert_type[layer * p->stride + expert];
}

int moe_quant_plan_layer_split(const moe_quant_plan *pl, int layer) {
    return layer >= 0 && pl->p.split ? pl->p.split[layer] : 0;
}

int moe_quant_parse_budget(const char *s, int64_t params, int64_t *bytes) {
    return qz_parse_budget(s, params, bytes);
}

int moe_model_float_type(const moe_model *m) {
    const moe_config *c = moe_model_config(m);
    int n = tm_list(c, TM_GGUF, NULL, NULL, 0), t = -1;
    tm_entry *e = malloc(sizeof *e * (size_t)(n > 0 ? n : 1));
    if (!e) return -1;
    tm_list(c, TM_GGUF, NULL, e, n);
    for (int i = 0; i < n; i++) {
        mat w;
        /* vectors and routers are F32 in every GGUF: they do not decide */
        if (!e[i].rows || tm_keep_f32(e[i].role) || tm_source(m, &e[i], 0, &w)) continue;
        int x = dtype_to_ggml(w.type);
        if (!moe_qtype_is_float(x)) x = -2;
        if (t == -1) t = x;
        else if (t != x) t = -2;
    }
    free(e);
    return t < 0 ? -1 : t;
}

/* Run write with a pool of o->n_threads. */
static int with_pool(const moe_quant_write_opts *o, pool **pl, qz_write_opts *wo, moe_err *err) {
    *pl = pool_create(o->n_threads);
    if (!*pl) return moe_fail(err, "cannot start %d threads", o->n_threads);
    *wo = (qz_write_opts){*pl, o->name, o->progress, o->user, qz_vocab_pairs(o->vocab)};
    return 0;
}

int moe_quant_write_gguf(const moe_model *m, const moe_quant_plan *p, const char *path,
                         const moe_quant_write_opts *o, moe_err *err) {
    pool *pl;
    qz_write_opts wo;
    if (with_pool(o, &pl, &wo, err)) return -1;
    int rc = qz_write_gguf(m, &p->p, path, &wo, err);
    pool_free(pl);
    return rc;
}

int moe_quant_write_hf(const moe_model *m, const char *dir, int type,
                       const moe_quant_write_opts *o, moe_err *err) {
    if (!moe_qtype_is_float(type))
        return moe_fail(err, "%s: weights to an HF directory are f32, f16 or bf16, not type %d",
                        dir, type);
    pool *pl;
    qz_write_opts wo;
    if (with_pool(o, &pl, &wo, err)) return -1;
    wo.vocab = NULL;
    int rc = qz_write_hf(m, dir, (int)dtype_from_ggml(type), &wo, err);
    pool_free(pl);
    return rc;
}
