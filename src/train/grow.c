/*
 * grow.c - see grow.h. Both ways write a fresh random model of the target
 * config first (model_init_random: every tensor with its name, shape and a
 * fresh value), then replace each tensor of it, walking the weight-role
 * table of the target, by what the source model gives for it.
 */
#include "train/grow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mapfile.h"
#include "base/rng.h"
#include "formats/hf_config.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/model_init.h"
#include "model/tensor_map.h"
#include "train/checkpoint.h"

/* ------------------------------------------------------------ the config */

/* The Mixtral-layout config of the upcycled model, from the dense one. */
static int upcycle_config(const moe_config *d, const grow_opts *o, moe_config *c, moe_err *err) {
    *c = *d;
    c->arch = MOE_ARCH_MIXTRAL;
    snprintf(c->model_type, sizeof c->model_type, "mixtral");
    int k = o->top_k;
    for (int l = 0; l < d->n_layers; l++) {
        const moe_layer_config *s = &d->layer[l];
        if (s->moe && (s->n_experts != 1 || s->n_shared))
            return moe_fail(err, "%s: layer %d is a mixture of %d experts%s already; upcycling "
                                 "starts from a dense model (a dense FFN, or one expert)",
                            o->upcycle, l, s->n_experts, s->n_shared ? " and a shared one" : "");
        if (s->linear_attn)
            return moe_fail(err, "%s: layer %d: linear attention has no Mixtral layout", o->upcycle, l);
        if (k <= 0 && s->top_k > 0 && s->top_k <= o->experts) k = s->top_k;
    }
    if (k <= 0) k = o->experts < 2 ? o->experts : 2;
    if (k > o->experts)
        return moe_fail(err, "upcycle: top-k %d is more than the %d experts", k, o->experts);
    for (int l = 0; l < d->n_layers; l++) {
        const moe_layer_config *s = &d->layer[l];
        moe_layer_config *t = &c->layer[l];
        int F = s->moe ? s->expert_dim : s->ffn_dim;
        memset(t, 0, sizeof *t);
        t->moe = 1;
        t->ffn_dim = F;
        t->n_experts = o->experts;
        t->top_k = k;
        t->expert_dim = F;
        t->score = MOE_SCORE_SOFTMAX;
        t->norm_topk = 1;
        t->routed_scale = 1.0f;
        t->kind = MOE_ROUTE_TOKEN_CHOICE;
        t->act = s->act;
        t->act_alpha = s->act_alpha;
        t->act_limit = s->act_limit;
        t->full_attention = s->full_attention;
        t->mod = s->mod; /* Mixture-of-Depths layers stay (their routers are copied) */
    }
    return 0;
}

/* Replace the integer value of every top-level occurrence of key (at a key
 * position) equal to from by to; the count replaced. */
static int replace_int(char **text, const char *key, int from, int to) {
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    int n = 0;
    for (char *p = strstr(*text, quoted); p; p = strstr(p + 1, quoted)) {
        char *b = p, *v = p + strlen(quoted);
        while (b > *text && strchr(" \t\r\n", b[-1])) b--;
        while (*v && strchr(" \t\r\n", *v)) v++;
        if (b == *text || (b[-1] != '{' && b[-1] != ',') || *v != ':') continue;
        v++;
        while (*v && strchr(" \t\r\n", *v)) v++;
        char *end;
        long x = strtol(v, &end, 10);
        if (end == v || x != from) continue;
        size_t head = (size_t)(v - *text), len = strlen(*text);
        char num[16];
        int nl = snprintf(num, sizeof num, "%d", to);
        char *o = malloc(len + (size_t)nl + 1);
        if (!o) return -1;
        memcpy(o, *text, head);
        memcpy(o + head, num, (size_t)nl);
        strcpy(o + head + nl, end);
        free(*text);
        *text = o;
        p = o + head;
        n++;
    }
    return n;
}

/* The source's config.json text (float32) with its expert count raised,
 * parsed back into *c to check every MoE layer got it. */
static int added_config(const moe_model *src, const grow_opts *o, char **text, moe_config *c,
                        moe_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", o->init);
    if (ckpt_config_f32(path, text, err)) return -1;
    int E = 0;
    for (int l = 0; l < src->cfg.n_layers; l++) {
        const moe_layer_config *s = &src->cfg.layer[l];
        if (!s->moe) continue;
        if (E && s->n_experts != E)
            return moe_fail(err, "%s: layers have %d and %d experts; adding experts needs one count",
                            o->init, E, s->n_experts);
        E = s->n_experts;
    }
    if (!E) return moe_fail(err, "%s: no MoE layer to add experts to", o->init);
    static const char *const keys[] = {"num_local_experts", "num_experts", "n_routed_experts"};
    int n = 0;
    for (int k = 0; k < 3; k++) {
        int r = replace_int(text, keys[k], E, E + o->add_experts);
        if (r < 0) return moe_fail(err, "out of memory");
        n += r;
    }
    if (!n || hf_config_parse(c, *text, strlen(*text), path, err))
        return n ? -1 : moe_fail(err, "%s: no expert count of %d to raise", path, E);
    for (int l = 0; l < c->n_layers; l++)
        if (c->layer[l].moe && c->layer[l].n_experts != E + o->add_experts)
            return moe_fail(err, "%s: layer %d would have %d experts, not %d", path, l,
                            c->layer[l].n_experts, E + o->add_experts);
    return 0;
}

/* ------------------------------------------------------------- tensors */

typedef struct filler {
    const grow_opts *o;
    const moe_model *src, *dst;
    float **buf;      /* [dst tensors] the values written, by dst tensor index */
    float *tmp;       /* the widened source tensor */
    int64_t tmp_cap;
    rng noise;
    moe_err *err;
} filler;

static const st_tensor *find(const moe_model *m, const tm_entry *e) {
    char name[256];
    const st_tensor *t = NULL;
    if (!tm_hf_name(name, sizeof name, &m->cfg, e)) t = st_find(&m->st, name);
    if (!t && !tm_hf_name_alt(name, sizeof name, &m->cfg, e, 1)) t = st_find(&m->st, name);
    return t;
}

/* The source tensor of entry e widened to f32 into f->tmp; NULL (with the
 * message) when the source has none. */
static const float *widen(filler *f, const tm_entry *e, const st_tensor **out) {
    const st_tensor *s = find(f->src, e);
    if (!s) {
        char name[256] = "?";
        tm_hf_name(name, sizeof name, &f->src->cfg, e);
        moe_fail(f->err, "%s: no tensor %s to copy", f->o->upcycle ? f->o->upcycle : f->o->init, name);
        return NULL;
    }
    if (s->n_elems > f->tmp_cap) {
        float *b = realloc(f->tmp, (size_t)s->n_elems * sizeof(float));
        if (!b) {
            moe_fail(f->err, "out of memory widening %s", s->name);
            return NULL;
        }
        f->tmp = b;
        f->tmp_cap = s->n_elems;
    }
    mat row = {s->data, s->type, 1, s->n_elems};
    mat_row_f32(f->tmp, &row, 0);
    *out = s;
    return f->tmp;
}

static void add_noise(filler *f, float *x, int64_t n) {
    if (f->o->noise <= 0) return;
    for (int64_t i = 0; i < n; i++) x[i] *= 1.0f + f->o->noise * (float)rng_normal(&f->noise);
}

static int is_router_row(tm_role r) {
    return r == TM_ROUTER || r == TM_ROUTER_NOISE || r == TM_ROUTER_BIAS || r == TM_SEL_BIAS ||
           r == TM_EXP_PROBS_B;
}
static int is_routed(tm_role r) {
    return tm_is_expert(r) || r == TM_EXP_GATE_UP_BIAS || r == TM_EXP_DOWN_BIAS ||
           r == TM_EXP_GATE_B || r == TM_EXP_UP_B || r == TM_EXP_DOWN_B;
}

/* Upcycling: experts from the dense FFN, the router fresh, the rest copied. */
static int fill_upcycle(filler *f, const tm_entry *e, float *dst, int64_t n) {
    if (e->role == TM_ROUTER) return 0; /* fresh */
    tm_entry s = *e;
    int expert = e->role == TM_EXP_GATE || e->role == TM_EXP_UP || e->role == TM_EXP_DOWN;
    if (expert) {
        if (f->src->cfg.layer[e->layer].moe) {
            s.expert = 0; /* a one-expert model's expert */
        } else {
            s.role = e->role == TM_EXP_GATE ? TM_FFN_GATE : e->role == TM_EXP_UP ? TM_FFN_UP : TM_FFN_DOWN;
            s.expert = -1;
        }
    }
    const st_tensor *st;
    const float *x = widen(f, &s, &st);
    if (!x) return -1;
    if (st->n_elems != n)
        return moe_fail(f->err, "%s: %s has %lld elements, the upcycled model's %lld", f->o->upcycle,
                        st->name, (long long)st->n_elems, (long long)n);
    memcpy(dst, x, (size_t)n * sizeof(float));
    if (expert) add_noise(f, dst, n);
    return 0;
}

/* Adding experts: old ones copied, new ones copies of old (i mod E_old),
 * new router rows zero. */
static int fill_added(filler *f, const tm_entry *e, float *dst, int64_t n) {
    int E = e->layer >= 0 ? f->dst->cfg.layer[e->layer].n_experts : 0, E_old = E - f->o->add_experts;
    tm_entry s = *e;
    int routed = e->layer >= 0 && (is_routed(e->role) || is_router_row(e->role));
    if (routed && e->expert >= 0) { /* one expert's tensor */
        if (e->expert >= E_old) s.expert = (e->expert - E_old) % E_old;
    } else if (routed) {
        s.planes = E_old;
    }
    const st_tensor *st;
    const float *x = widen(f, &s, &st);
    if (!x) return -1;
    if (!routed || e->expert >= 0) {
        if (st->n_elems != n)
            return moe_fail(f->err, "%s: %s has %lld elements, the grown model's %lld", f->o->init,
                            st->name, (long long)st->n_elems, (long long)n);
        memcpy(dst, x, (size_t)n * sizeof(float));
        if (routed && e->expert >= E_old) add_noise(f, dst, n);
        return 0;
    }
    /* E first along the leading dimension */
    int64_t per = n / E;
    if (per * E != n || st->n_elems != per * E_old)
        return moe_fail(f->err, "%s: %s has %lld elements, not %d experts' of the grown model's %lld",
                        f->o->init, st->name, (long long)st->n_elems, E_old, (long long)n);
    memcpy(dst, x, (size_t)(per * E_old) * sizeof(float));
    for (int j = E_old; j < E; j++) {
        float *row = dst + per * j;
        if (is_router_row(e->role)) {
            memset(row, 0, (size_t)per * sizeof(float));
        } else {
            memcpy(row, x + per * ((j - E_old) % E_old), (size_t)per * sizeof(float));
            add_noise(f, row, per);
        }
    }
    return 0;
}

static int fill_entry(void *ctx, const tm_entry *e) {
    filler *f = ctx;
    const st_tensor *t = find(f->dst, e);
    if (!t) return moe_fail(f->err, "internal: the fresh model lacks a tensor of role %d", e->role);
    int i = (int)(t - f->dst->st.tensors);
    float *dst = f->buf[i];
    return f->o->upcycle ? fill_upcycle(f, e, dst, t->n_elems) : fill_added(f, e, dst, t->n_elems);
}

/* The fresh model in dir, its tensors replaced through the walk. */
static int fill_model(const grow_opts *o, const moe_model *src, const char *dir, moe_err *err) {
    moe_model *dst = NULL;
    if (moe_model_load(&dst, dir, err)) return -1;
    const st_store *S = &dst->st;
    int n = S->n_tensors, rc = -1;
    filler f = {o, src, dst, calloc((size_t)n, sizeof(float *)), NULL, 0, {{0}}, err};
    st_write_tensor *w = calloc((size_t)n, sizeof *w);
    rng_init(&f.noise, o->seed ^ GROW_NOISE_SEED);
    if (!f.buf || !w) {
        moe_fail(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const st_tensor *t = &S->tensors[i];
        if (!(f.buf[i] = malloc((size_t)t->n_elems * sizeof(float)))) {
            moe_fail(err, "out of memory for %s", t->name);
            goto done;
        }
        memcpy(f.buf[i], t->data, (size_t)t->n_elems * sizeof(float)); /* fresh, all f32 */
        w[i] = (st_write_tensor){t->name, DT_F32, t->n_dims, {0}, f.buf[i]};
        memcpy(w[i].shape, t->shape, sizeof t->shape);
    }
    if (tm_walk(&dst->cfg, TM_HF, NULL, fill_entry, &f)) goto done;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = st_write(path, w, n, "{\"format\":\"pt\"}", err);
done:
    for (int i = 0; f.buf && i < n; i++) free(f.buf[i]);
    free(f.buf);
    free(f.tmp);
    free(w);
    moe_model_free(dst);
    return rc;
}

int grow_write(const grow_opts *o, const char *dir, moe_err *err) {
    const char *from = o->upcycle ? o->upcycle : o->init;
    if (!from || (o->upcycle && o->experts < 1) || (!o->upcycle && o->add_experts < 1) ||
        !(o->noise >= 0))
        return moe_fail(err, "grow: a dense model and E >= 1, or a model and experts to add >= 1, "
                             "and noise >= 0");
    moe_model *src = NULL;
    moe_config *c = malloc(sizeof *c); /* large: not on the stack */
    char *text = NULL;
    int rc = -1;
    if (!c) return moe_fail(err, "out of memory");
    if (moe_model_load(&src, from, err)) goto done;
    if (src->gguf) {
        moe_fail(err, "%s: growing starts from a Hugging Face directory, not a GGUF file", from);
        goto done;
    }
    for (int i = 0; i < src->st.n_tensors; i++)
        if ((int)src->st.tensors[i].type >= DT_COUNT) {
            moe_fail(err, "%s: tensor %s is quantized; growing starts from float weights", from,
                     src->st.tensors[i].name);
            goto done;
        }
    if (o->upcycle ? upcycle_config(&src->cfg, o, c, err) : added_config(src, o, &text, c, err))
        goto done;
    model_init_opts io = {DT_F32, o->seed, o->init_std, NULL, NULL, NULL, 0, 0};
    if (model_init_random(c, dir, &io, err)) {
        moe_fail_prefix(err, "%s: %s", from, o->upcycle ? "cannot write the upcycled model"
                                                        : "cannot write the grown model");
        goto done;
    }
    if (text) { /* the source's own config.json, its expert count raised */
        char path[4200];
        snprintf(path, sizeof path, "%s/config.json", dir);
        FILE *fp = fopen(path, "wb");
        int ok = fp && fputs(text, fp) >= 0;
        if (fp) ok = fclose(fp) == 0 && ok;
        if (!ok) {
            moe_fail(err, "%s: cannot write", path);
            goto done;
        }
    }
    rc = fill_model(o, src, dir, err);
done:
    free(text);
    free(c);
    moe_model_free(src);
    return rc;
}
