/*
 * freeze.c - see freeze.h. The groups are a function of the weight-role
 * table's roles; the walk of the table over the model finds each trained
 * tensor (by its offset in the parameter array) and what of it stays.
 */
#include "train/freeze.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "model/tensor_map.h"

static const char *const k_names[] = {"router", "experts", "attention", "embeddings",
                                      "norms",  "old-experts", "old-router"};
#define N_GROUPS ((int)(sizeof k_names / sizeof k_names[0]))

int freeze_parse(const char *list, unsigned *groups, moe_err *err) {
    *groups = 0;
    if (!list || !*list) return 0;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int g = 0;
        while (g < N_GROUPS && !(strlen(k_names[g]) == len && !strncmp(p, k_names[g], len))) g++;
        if (g == N_GROUPS)
            return moe_fail(err, "freeze: '%.*s' is no parameter group (router, experts, attention, "
                                 "embeddings, norms, old-experts, old-router)",
                            (int)len, p);
        *groups |= 1u << g;
        if (!end) return 0;
        p = end + 1;
    }
}

void freeze_format(unsigned groups, char *buf, size_t n) {
    size_t at = 0;
    if (n) buf[0] = 0;
    for (int g = 0; g < N_GROUPS; g++)
        if (groups & (1u << g) && at < n)
            at += (size_t)snprintf(buf + at, n - at, "%s%s", at ? "," : "", k_names[g]);
}

/* The group of a role (one of the first five bits). No default: a new role
 * is a compile warning until it is placed. */
static unsigned role_group(tm_role r) {
    switch (r) {
    case TM_ROUTER:
    case TM_ROUTER_NOISE:
    case TM_SEL_BIAS:
    case TM_ROUTER_BIAS:
    case TM_SHEXP_INP:
    case TM_EXP_PROBS_B:
    case TM_MOD_ROUTER:
        return FREEZE_ROUTER;
    case TM_FFN_GATE:
    case TM_FFN_UP:
    case TM_FFN_DOWN:
    case TM_EXP_GATE:
    case TM_EXP_UP:
    case TM_EXP_DOWN:
    case TM_SHEXP_GATE:
    case TM_SHEXP_UP:
    case TM_SHEXP_DOWN:
    case TM_EXP_GATE_UP:
    case TM_EXP_GATE_UP_BIAS:
    case TM_EXP_DOWN_T:
    case TM_EXP_DOWN_BIAS:
    case TM_EXP_GATE_B:
    case TM_EXP_UP_B:
    case TM_EXP_DOWN_B:
        return FREEZE_EXPERTS;
    case TM_ATTN_Q:
    case TM_ATTN_K:
    case TM_ATTN_V:
    case TM_ATTN_O:
    case TM_ATTN_Q_BIAS:
    case TM_ATTN_K_BIAS:
    case TM_ATTN_V_BIAS:
    case TM_ATTN_O_BIAS:
    case TM_ATTN_SINKS:
    case TM_LIN_QKVZ:
    case TM_LIN_BA:
    case TM_LIN_CONV:
    case TM_LIN_DT_BIAS:
    case TM_LIN_A_LOG:
    case TM_LIN_OUT:
    case TM_LIN_QKV:
    case TM_LIN_Z:
    case TM_LIN_B:
    case TM_LIN_A:
    case TM_LIN_SSM_A:
    case TM_ATTN_Q_A:
    case TM_ATTN_Q_B:
    case TM_ATTN_KV_A:
    case TM_ATTN_KV_B:
    case TM_ATTN_K_B:
    case TM_ATTN_V_B:
        return FREEZE_ATTENTION;
    case TM_EMBED:
    case TM_OUTPUT:
        return FREEZE_EMBEDDINGS;
    case TM_OUTPUT_NORM:
    case TM_ATTN_NORM:
    case TM_ATTN_Q_NORM:
    case TM_ATTN_K_NORM:
    case TM_FFN_NORM:
    case TM_LIN_NORM:
    case TM_POST_NORM:
    case TM_ATTN_Q_A_NORM:
    case TM_ATTN_KV_A_NORM:
        return FREEZE_NORMS;
    case TM_ROLE_COUNT:
        break;
    }
    return 0;
}

/* Roles indexed by routed expert: one tensor per expert (entry expert >= 0)
 * or E first along their leading dimension. */
static int per_expert(tm_role r) {
    switch (r) {
    case TM_EXP_GATE: case TM_EXP_UP: case TM_EXP_DOWN: case TM_EXP_GATE_UP:
    case TM_EXP_GATE_UP_BIAS: case TM_EXP_DOWN_T: case TM_EXP_DOWN_BIAS:
    case TM_EXP_GATE_B: case TM_EXP_UP_B: case TM_EXP_DOWN_B:
    case TM_ROUTER: case TM_ROUTER_NOISE: case TM_ROUTER_BIAS: case TM_SEL_BIAS:
    case TM_EXP_PROBS_B:
        return 1;
    default:
        return 0;
    }
}

typedef struct walker {
    train_params *P;
    const moe_model *m;
    unsigned groups;
    int added;
    int64_t *keep_from; /* [n_tensors] first element that trains (relative) */
    int64_t *keep_to;   /* [n_tensors] past the last one; keep_from == keep_to: frozen */
    moe_err *err;
} walker;

static int find_tensor(const train_params *P, int64_t offset) {
    int lo = 0, hi = P->n_tensors - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (P->tensors[mid].offset == offset) return mid;
        if (P->tensors[mid].offset < offset) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static int visit(void *ctx, const tm_entry *e) {
    walker *w = ctx;
    char name[256];
    const st_tensor *t = NULL;
    if (!tm_hf_name(name, sizeof name, &w->m->cfg, e)) t = st_find(&w->m->st, name);
    if (!t && !tm_hf_name_alt(name, sizeof name, &w->m->cfg, e, 1)) t = st_find(&w->m->st, name);
    if (!t) return 0; /* train_params_init has refused a model without it */
    int i = find_tensor(w->P, (const float *)t->data - w->P->base);
    if (i < 0) return 0; /* not trained by the optimizer (selection bias) */
    unsigned g = role_group(e->role);
    int64_t n = w->P->tensors[i].size;
    if (w->groups & g) { /* the whole group */
        w->keep_to[i] = w->keep_from[i] = 0;
        return 0;
    }
    unsigned old = g == FREEZE_EXPERTS ? FREEZE_OLD_EXPERTS : g == FREEZE_ROUTER ? FREEZE_OLD_ROUTER : 0;
    if (!(w->groups & old)) return 0;
    if (!per_expert(e->role) || e->layer < 0) { /* existed before: shared experts, dense FFNs */
        w->keep_to[i] = w->keep_from[i] = 0;
        return 0;
    }
    int E = w->m->cfg.layer[e->layer].n_experts, E_old = E - w->added;
    if (e->expert >= 0) { /* one expert's tensor */
        if (e->expert < E_old) w->keep_to[i] = w->keep_from[i] = 0;
        return 0;
    }
    if (n % E)
        return moe_fail(w->err, "freeze: tensor %s: %lld elements are not %d experts' rows", t->name,
                        (long long)n, E);
    w->keep_from[i] = n / E * E_old; /* the appended experts' rows, at the end */
    return 0;
}

int freeze_apply(train_params *P, const moe_model *m, unsigned groups, int added, moe_err *err) {
    if (!groups) return 0;
    const moe_config *c = &m->cfg;
    if (groups & (FREEZE_OLD_EXPERTS | FREEZE_OLD_ROUTER)) {
        if (added <= 0)
            return moe_fail(err, "freeze: old-experts and old-router need experts added to the model "
                                 "(--add-experts N)");
        for (int l = 0; l < c->n_layers; l++)
            if (c->layer[l].moe && added >= c->layer[l].n_experts)
                return moe_fail(err, "freeze: layer %d has %d experts, not more than the %d added", l,
                                c->layer[l].n_experts, added);
    }
    int nt = P->n_tensors;
    walker w = {P, m, groups, added, calloc((size_t)nt + 1, sizeof(int64_t)),
                calloc((size_t)nt + 1, sizeof(int64_t)), err};
    if (!w.keep_from || !w.keep_to) {
        free(w.keep_from);
        free(w.keep_to);
        return moe_fail(err, "out of memory");
    }
    for (int i = 0; i < nt; i++) w.keep_to[i] = P->tensors[i].size;
    int rc = tm_walk(c, TM_HF, NULL, visit, &w);
    int k = 0;
    for (int i = 0; !rc && i < nt; i++) {
        if (w.keep_from[i] >= w.keep_to[i]) continue;
        optim_tensor t = P->tensors[i];
        t.offset += w.keep_from[i];
        t.size = w.keep_to[i] - w.keep_from[i];
        P->tensors[k++] = t;
    }
    free(w.keep_from);
    free(w.keep_to);
    if (rc) return -1;
    if (k == 0) {
        char list[128];
        freeze_format(groups, list, sizeof list);
        return moe_fail(err, "freeze: %s leaves nothing to train", list);
    }
    P->n_tensors = k;
    train_params_pack_state(P);
    return 0;
}
