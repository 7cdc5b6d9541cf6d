/*
 * params.c - see params.h. The trained tensors are the weight-role table's
 * (tensor_map.h) walked over the model's config.
 */
#include "train/params.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/err.h"
#include "model/tensor_map.h"
#include "train/grad_ops.h"

/* The walk of the weight-role table over the checkpoint's tensors. */
typedef struct lister {
    train_params *p;
    const moe_model *m;
    int cap;
    moe_err *err;
} lister;

static int add_tensor(void *ctx, const tm_entry *e) {
    lister *L = ctx;
    train_params *p = L->p;
    char name[256];
    const st_tensor *t = NULL;
    if (!tm_hf_name(name, sizeof name, &L->m->cfg, e)) t = st_find(&L->m->st, name);
    if (!t && !tm_hf_name_alt(name, sizeof name, &L->m->cfg, e, 1)) t = st_find(&L->m->st, name);
    if (!t)
        return moe_fail(L->err, "training needs every weight as its own tensor: no tensor for "
                        "%s of layer %d", tm_role_of(e->role)->hf, e->layer);
    if (p->n_tensors + p->n_bias >= L->cap)
        return moe_fail(L->err, "internal: more weights than tensors");
    if (e->role == TM_SEL_BIAS) { /* moved by the load rule, not by the optimizer */
        p->sel_bias[p->n_bias] = (float *)t->data;
        p->sel_bias_len[p->n_bias++] = t->n_elems;
        return 0;
    }
    /* weight decay on matrices only: gpt_oss's stacked expert biases [E][n]
     * have rows but are biases */
    int decay = e->rows > 0 && e->role != TM_EXP_GATE_UP_BIAS && e->role != TM_EXP_DOWN_BIAS;
    p->tensors[p->n_tensors++] =
        (optim_tensor){t->name, (const float *)t->data - p->base, t->n_elems, decay, 0};
    return 0;
}

static int by_offset(const void *a, const void *b) {
    int64_t x = ((const optim_tensor *)a)->offset, y = ((const optim_tensor *)b)->offset;
    return (x > y) - (x < y);
}

int train_params_init(train_params *p, moe_model *m, moe_err *err) {
    memset(p, 0, sizeof *p);
    st_store *st = &m->st;
    if (st->n_files != 1 || st->n_tensors == 0)
        return moe_fail(err, "training needs the weights in one safetensors file (found %d files)",
                        st->n_files);
    const char *lo = NULL, *hi = NULL;
    for (int i = 0; i < st->n_tensors; i++) {
        const st_tensor *t = &st->tensors[i];
        if (t->type != DT_F32)
            return moe_fail(err, "training needs f32 weights: tensor %s is %s", t->name,
                            dtype_name(t->type));
        const char *b = t->data, *e = b + t->nbytes;
        if (!lo || b < lo) lo = b;
        if (!hi || e > hi) hi = e;
    }
    /* private mapping: writes stay in memory */
    const mapped_file *f = &st->files[0];
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)f->data & ~(uintptr_t)(page - 1);
    size_t len = (uintptr_t)f->data + f->size - start;
    if (mprotect((void *)start, len, PROT_READ | PROT_WRITE) != 0)
        return moe_fail(err, "cannot make the weights writable: %s", strerror(errno));
    p->base = (float *)lo;
    p->n = (hi - lo) / (int64_t)sizeof(float);
    p->tensors = calloc((size_t)st->n_tensors, sizeof *p->tensors);
    p->sel_bias = calloc((size_t)st->n_tensors, sizeof *p->sel_bias);
    p->sel_bias_len = calloc((size_t)st->n_tensors, sizeof *p->sel_bias_len);
    if (!p->tensors || !p->sel_bias || !p->sel_bias_len) {
        train_params_free(p);
        return moe_fail(err, "out of memory for the parameter table");
    }
    lister L = {p, m, st->n_tensors, err};
    if (tm_walk(&m->cfg, TM_HF, NULL, add_tensor, &L)) {
        train_params_free(p);
        return -1;
    }
    qsort(p->tensors, (size_t)p->n_tensors, sizeof *p->tensors, by_offset);
    train_params_pack_state(p);
    if (fused_init(&p->fx, m, err)) {
        train_params_free(p);
        return -1;
    }
    return 0;
}

void train_params_pack_state(train_params *p) {
    int64_t at = 0;
    for (int i = 0; i < p->n_tensors; i++) {
        p->tensors[i].state_gap = p->tensors[i].offset - at;
        at += p->tensors[i].size;
    }
    p->n_state = at;
}

void train_params_sync(train_params *p, moe_model *m) {
    if (p->fx.n) fused_sync(&p->fx, m);
}

void train_bias_update(moe_session *s, float rate) {
    const moe_config *c = &s->m->cfg;
    if (!s->acts) return;
    for (int l = 0; l < c->n_layers; l++) {
        const moe_layer_config *lc = &c->layer[l];
        float *bias = (float *)s->m->layers[l].sel_bias;
        if (!lc->moe || !bias) continue;
        const layer_acts *a = &s->acts->layer[l];
        int E = lc->n_experts, K = lc->top_k, N = s->acts->last_tokens;
        int64_t load[1024] = {0};
        for (int i = 0; i < N * K; i++) load[a->sel_expert[i]]++;
        selection_bias_update(bias, load, E, (int64_t)N * K, rate);
    }
}

void train_params_free(train_params *p) {
    free(p->tensors);
    free(p->sel_bias);
    free(p->sel_bias_len);
    fused_free(&p->fx);
    memset(p, 0, sizeof *p);
}
