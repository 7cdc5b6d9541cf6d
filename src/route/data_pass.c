/*
 * data_pass.c - moe_route_data_run (include/moe_route.h): run a model over
 * windows of a token shard and count where its routers send the tokens: per
 * MoE layer the (token, slot) pairs per expert, a domain x expert table, the
 * router entropy, the tokens each expert receives most and, for group-limited
 * routing, how often each group is kept (per domain). The statistics
 * themselves are stats.c's. `moe route --data` and `moe report` print this.
 *
 * Windows: when fewer tokens than the shard holds are wanted, the windows
 * are spread over the whole shard with data_spread_window (as the trainer's
 * validation windows are): `moe data` writes a shard domain by domain, so
 * its first tokens are all of the first domain.
 */
#include "moe_route.h"
#include "moe_cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "train/data.h"

/* Memory kept for the top-token tables: 8 bytes per (token, slot) pair of
 * every MoE layer (none when no top tokens are asked for). */
#define ROUTE_MAX_KEY_BYTES ((int64_t)2 << 30)

/* Counting state of one MoE layer beside its public result. */
typedef struct layer_acc {
    moe_route_layer *out;
    uint64_t *keys;    /* [N*K] expert << 32 | token id, for the top tokens */
    int64_t n_keys;
    double ent_sum;    /* sum over tokens of moe_route_entropy (nats) */
    int64_t ent_n;
} layer_acc;

typedef struct pass {
    layer_acc *l;      /* [n] one per MoE layer */
    int n;
    int *slot;         /* [L] index into l, -1 for dense layers */
    const int32_t *ids;/* [T] ids of the current window */
    const int *dom;    /* [T] their domains */
} pass;

static void on_route(void *user, const moe_route_info *r) {
    pass *a = user;
    layer_acc *acc = &a->l[a->slot[r->layer]];
    moe_route_layer *l = acc->out;
    for (int t = 0; t < r->T; t++) {
        int tok = moe_route_token(r, t);
        int64_t *drow = l->domain_counts + (int64_t)a->dom[tok] * l->E;
        for (int j = 0; j < r->K; j++) {
            int e = r->expert[t * r->K + j];
            l->counts[e]++;
            drow[e]++;
            if (acc->keys) acc->keys[acc->n_keys++] = (uint64_t)e << 32 | (uint32_t)a->ids[tok];
        }
        for (int g = 0; r->group && g < l->G; g++)
            if (r->group[(int64_t)t * r->n_group + g]) {
                l->group_counts[g]++;
                l->domain_group_counts[(int64_t)a->dom[tok] * l->G + g]++;
            }
        if (l->kind == MOE_ROUTE_HASH) continue;
        double h = moe_route_entropy(r->score + (int64_t)t * r->E, r->E);
        if (isnan(h)) continue;
        acc->ent_sum += h;
        acc->ent_n++;
    }
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* Per expert, its `top` most frequent token ids (count desc, id asc). */
static void top_tokens(layer_acc *acc, int top) {
    moe_route_layer *l = acc->out;
    qsort(acc->keys, (size_t)acc->n_keys, sizeof *acc->keys, cmp_u64);
    int64_t i = 0;
    for (int e = 0; e < l->E; e++) {
        int32_t *id = l->top_id + (int64_t)e * top;
        int64_t *cnt = l->top_count + (int64_t)e * top;
        int nb = 0;
        while (i < acc->n_keys && (int)(acc->keys[i] >> 32) == e) {
            int64_t j = i;
            while (j < acc->n_keys && acc->keys[j] == acc->keys[i]) j++;
            int32_t cid = (int32_t)(uint32_t)acc->keys[i];
            int64_t c = j - i;
            /* insertion into the sorted short list; equal counts keep id order */
            int at = nb;
            while (at > 0 && cnt[at - 1] < c) at--;
            if (at < top) {
                int last = nb < top ? nb : top - 1;
                for (int m = last; m > at; m--) {
                    id[m] = id[m - 1];
                    cnt[m] = cnt[m - 1];
                }
                id[at] = cid;
                cnt[at] = c;
                if (nb < top) nb++;
            }
            i = j;
        }
    }
}

void moe_route_data_free(moe_route_data *d) {
    if (!d) return;
    for (int i = 0; d->layer && i < d->n_layers; i++) {
        free(d->layer[i].counts);
        free(d->layer[i].domain_counts);
        free(d->layer[i].group_counts);
        free(d->layer[i].domain_group_counts);
        free(d->layer[i].top_id);
        free(d->layer[i].top_count);
    }
    free(d->layer);
    free(d->domain_name);
    free(d->domain_tokens);
    free(d);
}

/* The result's tables, sized for the model's MoE layers and the shard. */
static int alloc_result(moe_route_data *d, const moe_config *c, const data_shard *sh, int64_t N,
                        int top, pass *a, moe_err *err) {
    int64_t pairs_all = 0;
    for (int l = 0; l < c->n_layers; l++) {
        if (!c->layer[l].moe) continue;
        d->n_layers++;
        pairs_all += N * c->layer[l].top_k;
    }
    if (d->n_layers == 0) return moe_fail(err, "route: the model has no MoE layer");
    if (top > 0 && pairs_all * 8 > ROUTE_MAX_KEY_BYTES)
        return moe_fail(err, "route: %lld tokens over %d layers need %.1f GiB for the top-token "
                             "tables; route fewer tokens",
                        (long long)N, c->n_layers, pairs_all * 8.0 / (1 << 30));
    d->n_domains = sh->n_domains;
    d->top = top;
    d->domain_name = calloc((size_t)sh->n_domains, sizeof *d->domain_name);
    d->domain_tokens = calloc((size_t)sh->n_domains, sizeof *d->domain_tokens);
    d->layer = calloc((size_t)d->n_layers, sizeof *d->layer);
    a->l = calloc((size_t)d->n_layers, sizeof *a->l);
    a->slot = malloc(sizeof *a->slot * (size_t)c->n_layers);
    if (!d->domain_name || !d->domain_tokens || !d->layer || !a->l || !a->slot)
        return moe_fail(err, "out of memory");
    a->n = d->n_layers;
    for (int k = 0; k < sh->n_domains; k++)
        memcpy(d->domain_name[k], sh->domain[k].name, sizeof d->domain_name[k]);
    for (int l = 0, i = 0; l < c->n_layers; l++) {
        const moe_layer_config *lc = &c->layer[l];
        a->slot[l] = -1;
        if (!lc->moe) continue;
        moe_route_layer *x = &d->layer[i];
        a->l[i].out = x;
        a->slot[l] = i++;
        x->layer = l;
        x->E = lc->n_experts;
        x->K = lc->top_k;
        x->kind = lc->kind;
        x->counts = calloc((size_t)x->E, sizeof *x->counts);
        x->domain_counts = calloc((size_t)x->E * (size_t)d->n_domains, sizeof *x->domain_counts);
        x->top_id = calloc((size_t)x->E * (size_t)(top > 0 ? top : 1), sizeof *x->top_id);
        x->top_count = calloc((size_t)x->E * (size_t)(top > 0 ? top : 1), sizeof *x->top_count);
        layer_acc *acc = &a->l[a->slot[l]];
        if (top > 0) acc->keys = malloc(sizeof *acc->keys * (size_t)(N * x->K));
        if (!x->counts || !x->domain_counts || !x->top_id || !x->top_count || (top > 0 && !acc->keys))
            return moe_fail(err, "out of memory");
        if (lc->group != MOE_GROUP_NONE) {
            x->G = lc->n_group;
            x->TG = lc->topk_group;
            x->group_counts = calloc((size_t)x->G, sizeof *x->group_counts);
            x->domain_group_counts =
                calloc((size_t)x->G * (size_t)d->n_domains, sizeof *x->domain_group_counts);
            if (!x->group_counts || !x->domain_group_counts) return moe_fail(err, "out of memory");
        }
    }
    return 0;
}

/* ids [start, start + n) and each one's domain. */
static int read_window(const data_shard *sh, uint64_t start, int n, int32_t *ids, int *dom,
                       moe_err *err) {
    if (data_read(sh, start, n, ids, err)) return -1;
    /* domains are contiguous ranges: one lookup per range crossed */
    for (int t = 0; t < n;) {
        int d = data_domain_of(sh, start + (uint64_t)t);
        if (d < 0)
            return moe_fail(err, "%s: position %llu is in no domain", sh->path,
                            (unsigned long long)(start + (uint64_t)t));
        int64_t end = (int64_t)(sh->domain[d].end - start);
        if (end > n) end = n;
        for (; t < end; t++) dom[t] = d;
    }
    return 0;
}

int moe_route_data_run(moe_model *m, const moe_route_data_opts *o, moe_route_data **out,
                       moe_err *err) {
    *out = NULL;
    if (!o->shard) return moe_fail(err, "route: no shard given");
    if (o->max_tokens < 0 || o->seq < 0 || o->top < 0)
        return moe_fail(err, "route: max_tokens, seq and top must be >= 0");
    const moe_config *c = moe_model_config(m);
    if (c->max_pos > 0 && o->seq > c->max_pos)
        return moe_fail(err, "route: windows of %d tokens are longer than the model's %d positions",
                        o->seq, c->max_pos);
    data_shard sh;
    memset(&sh, 0, sizeof sh);
    if (data_open(&sh, o->shard, err)) return -1;
    moe_route_data *d = calloc(1, sizeof *d);
    pass a = {0};
    moe_session *s = NULL;
    int32_t *ids = NULL;
    int *dom = NULL;
    int rc = -1;
    if (!d) {
        moe_fail(err, "out of memory");
        goto done;
    }
    if ((int64_t)sh.vocab > c->vocab) {
        moe_fail(err, "%s: token ids go up to %u but the model's vocabulary has %d", o->shard,
                 sh.vocab - 1, c->vocab);
        goto done;
    }
    int64_t N = (int64_t)sh.n_tokens;
    if (o->max_tokens > 0 && o->max_tokens < N) N = o->max_tokens;
    if (N == 0) {
        moe_fail(err, "%s: the shard holds no tokens", o->shard);
        goto done;
    }
    int T = o->seq > 0 ? o->seq : 256;
    if (o->seq == 0 && c->max_pos > 0 && T > c->max_pos) T = c->max_pos;
    if (T > N) T = (int)N;
    if (alloc_result(d, c, &sh, N, o->top, &a, err)) goto done;

    moe_session_opts so = {.n_ctx = T, .n_threads = o->n_threads, .max_batch = T};
    if (moe_session_new(&s, m, &so, err)) goto done;
    if (moe_model_cache(m)) moe_cache_attach(moe_model_cache(m), s); /* an expert budget */
    ids = malloc(sizeof *ids * (size_t)T);
    dom = malloc(sizeof *dom * (size_t)T);
    if (!ids || !dom) {
        moe_fail(err, "out of memory");
        goto done;
    }
    a.ids = ids;
    a.dom = dom;
    /* n windows of T (the last one shorter), window i at sequential window
     * data_spread_window(i): the first n windows when they cover the shard */
    int64_t n_win = (N + T - 1) / T;
    for (int64_t i = 0; i < n_win; i++) {
        int n = (int)(N - i * T < T ? N - i * T : T);
        uint64_t start = data_spread_window(&sh, T, (uint64_t)i, (uint64_t)n_win) * (uint64_t)T;
        if (read_window(&sh, start, n, ids, dom, err)) goto done;
        for (int t = 0; t < n; t++) d->domain_tokens[dom[t]]++;
        moe_session_reset(s);
        if (moe_route_trace(s, ids, n, on_route, &a, err)) goto done;
    }
    d->seq = T;
    d->windows = n_win;
    d->tokens = N;
    for (int i = 0; i < d->n_layers; i++) {
        moe_route_layer *x = &d->layer[i];
        for (int e = 0; e < x->E; e++) x->pairs += x->counts[e];
        x->max_violation = moe_route_max_violation(x->counts, x->E);
        x->dead = moe_route_dead(x->counts, x->E);
        x->entropy = a.l[i].ent_n ? a.l[i].ent_sum / (double)a.l[i].ent_n : NAN;
        x->mi_bits = moe_route_mutual_info(x->domain_counts, d->n_domains, x->E);
        if (x->G)
            x->group_mi_bits = moe_route_mutual_info(x->domain_group_counts, d->n_domains, x->G);
        if (o->top > 0) top_tokens(&a.l[i], o->top);
    }
    *out = d;
    d = NULL;
    rc = 0;
done:
    for (int i = 0; i < a.n; i++) free(a.l[i].keys);
    free(a.l);
    free(a.slot);
    free(ids);
    free(dom);
    moe_session_free(s);
    moe_route_data_free(d);
    data_close(&sh);
    return rc;
}
