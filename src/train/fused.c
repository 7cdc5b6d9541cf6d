/*
 * fused.c - see fused.h. Index maps (p expert, j < F, d < D):
 *   gate[p][j][d] = gu[p][d][2j]     up[p][j][d] = gu[p][d][2j+1]
 *   bg[p][j] = gub[p][2j]            bu[p][j] = gub[p][2j+1]
 *   down[p][d][j] = dt[p][j][d]
 */
#include "train/fused.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "model/tensor_map.h"

typedef struct finder {
    fused_experts *f;
    const moe_model *m;
    int cap;
    moe_err *err;
} finder;

static int find_one(void *ctx, const tm_entry *e) {
    finder *F = ctx;
    if (e->role != TM_EXP_GATE_UP && e->role != TM_EXP_GATE_UP_BIAS && e->role != TM_EXP_DOWN_T)
        return 0;
    char name[256];
    const st_tensor *t = NULL;
    if (!tm_hf_name(name, sizeof name, &F->m->cfg, e)) t = st_find(&F->m->st, name);
    if (!t || t->type != DT_F32)
        return moe_fail(F->err, "training: layer %d: no f32 fused expert tensor %s", e->layer, name);
    fused_experts *f = F->f;
    if (!f->n || f->l[f->n - 1].layer != e->layer) {
        if (f->n >= F->cap) return moe_fail(F->err, "internal: more fused layers than layers");
        f->l[f->n++] = (fused_layer){e->layer, NULL, NULL, NULL};
    }
    fused_layer *L = &f->l[f->n - 1];
    float *data = (float *)t->data; /* the writable mapping (train_params_init) */
    if (e->role == TM_EXP_GATE_UP) L->gu = data;
    else if (e->role == TM_EXP_GATE_UP_BIAS) L->gub = data;
    else L->dt = data;
    return 0;
}

static void span(const float **lo, const float **hi, const void *p, int64_t n) {
    const float *a = p;
    if (!a) return;
    if (!*lo || a < *lo) *lo = a;
    if (!*hi || a + n > *hi) *hi = a + n;
}

int fused_init(fused_experts *f, const moe_model *m, moe_err *err) {
    memset(f, 0, sizeof *f);
    const tm_arch_info *ai = tm_arch_of(m->cfg.arch);
    if (!ai || !ai->hf_fused || m->gguf) return 0;
    f->l = calloc((size_t)m->cfg.n_layers + 1, sizeof *f->l);
    if (!f->l) return moe_fail(err, "out of memory for the fused expert table");
    finder F = {f, m, m->cfg.n_layers, err};
    if (tm_walk(&m->cfg, TM_HF, NULL, find_one, &F)) {
        fused_free(f);
        return -1;
    }
    const float *lo = NULL, *hi = NULL;
    for (int i = 0; i < f->n; i++) {
        const moe_layer_config *lc = &m->cfg.layer[f->l[i].layer];
        int64_t F_ = lc->expert_dim, D = m->cfg.dim;
        if (!f->l[i].gu || !f->l[i].dt) {
            int l = f->l[i].layer;
            fused_free(f);
            return moe_fail(err, "training: layer %d: gate_up_proj or down_proj missing", l);
        }
        for (int p = 0; p < lc->n_experts; p++) {
            const ffn_w *x = &m->layers[f->l[i].layer].experts[p];
            span(&lo, &hi, x->gate.data, F_ * D);
            span(&lo, &hi, x->up.data, F_ * D);
            span(&lo, &hi, x->down.data, F_ * D);
            if (f->l[i].gub) {
                span(&lo, &hi, x->bg, F_);
                span(&lo, &hi, x->bu, F_);
            }
        }
    }
    f->own_lo = lo;
    f->own_n = lo ? hi - lo : 0;
    return 0;
}

void fused_free(fused_experts *f) {
    free(f->l);
    memset(f, 0, sizeof *f);
}

void fused_fold(const fused_experts *f, const moe_model *m, const train_grads *G, float *og) {
    for (int i = 0; i < f->n; i++) {
        const fused_layer *L = &f->l[i];
        const moe_layer_config *lc = &m->cfg.layer[L->layer];
        int64_t F = lc->expert_dim, D = m->cfg.dim;
        float *ggu = grad_of(G, L->gu), *gdt = grad_of(G, L->dt);
        float *ggub = L->gub ? grad_of(G, L->gub) : NULL;
        for (int p = 0; p < lc->n_experts; p++) {
            const ffn_w *x = &m->layers[L->layer].experts[p];
            float *gg = fused_grad(f, G, og, x->gate.data), *gu = fused_grad(f, G, og, x->up.data);
            float *gd = fused_grad(f, G, og, x->down.data);
            float *a = ggu + p * D * 2 * F, *b = gdt + p * F * D;
            for (int64_t j = 0; j < F; j++)
                for (int64_t d = 0; d < D; d++) {
                    a[d * 2 * F + 2 * j] += gg[j * D + d];
                    a[d * 2 * F + 2 * j + 1] += gu[j * D + d];
                    b[j * D + d] += gd[d * F + j];
                }
            if (ggub) {
                float *gbg = fused_grad(f, G, og, x->bg), *gbu = fused_grad(f, G, og, x->bu);
                for (int64_t j = 0; j < F; j++) {
                    ggub[p * 2 * F + 2 * j] += gbg[j];
                    ggub[p * 2 * F + 2 * j + 1] += gbu[j];
                }
            }
        }
    }
    if (f->own_n) memset(og, 0, sizeof(float) * (size_t)f->own_n);
}

void fused_sync(const fused_experts *f, moe_model *m) {
    for (int i = 0; i < f->n; i++) {
        const fused_layer *L = &f->l[i];
        const moe_layer_config *lc = &m->cfg.layer[L->layer];
        int64_t F = lc->expert_dim, D = m->cfg.dim;
        for (int p = 0; p < lc->n_experts; p++) {
            ffn_w *x = &m->layers[L->layer].experts[p];
            /* the copies are the loader's own allocation: writable */
            float *g = (float *)x->gate.data, *u = (float *)x->up.data, *dn = (float *)x->down.data;
            const float *a = L->gu + p * D * 2 * F, *b = L->dt + p * F * D;
            for (int64_t j = 0; j < F; j++)
                for (int64_t d = 0; d < D; d++) {
                    g[j * D + d] = a[d * 2 * F + 2 * j];
                    u[j * D + d] = a[d * 2 * F + 2 * j + 1];
                    dn[d * F + j] = b[j * D + d];
                }
            if (L->gub) {
                float *bg = (float *)x->bg, *bu = (float *)x->bu;
                for (int64_t j = 0; j < F; j++) {
                    bg[j] = L->gub[p * 2 * F + 2 * j];
                    bu[j] = L->gub[p * 2 * F + 2 * j + 1];
                }
            }
        }
    }
}
