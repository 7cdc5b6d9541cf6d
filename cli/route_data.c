/*
 * route_data.c - `moe route --data`: run a model over the sequential
 * windows of a token shard and count where its routers send the tokens:
 * per MoE layer the (token, slot) pairs per expert, the load, the largest
 * load over the mean, dead experts, the router entropy, a domain x expert
 * table and its mutual information, and the tokens each expert receives
 * most. The JSON layout is docs/ROUTING.md's; `moe report` reads the same.
 */
#include "route_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "moe_route.h"
#include "base/err.h"
#include "train/data.h"

/* Memory kept for the top-token tables: 8 bytes per (token, slot) pair of
 * every MoE layer. Past this the user is asked for fewer tokens. */
#define ROUTE_MAX_KEY_BYTES ((int64_t)2 << 30)

/* ----------------------------------------------------------- JSON helpers */

double route_round6(double x) {
    if (!isfinite(x) || x == 0) return x;
    double m = pow(10.0, 5 - (int)floor(log10(fabs(x))));
    return round(x * m) / m;
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static int utf8_valid_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    int len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if ((size_t)len > n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return len;
}

char *route_utf8_clean(const char *s, size_t len) {
    /* at most 3 output bytes per input byte */
    char *out = malloc(len * 3 + 1);
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int k = p[i] ? utf8_valid_len(p + i, len - i) : 0;
        if (k > 0) {
            memcpy(out + o, p + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3); /* U+FFFD (also for a NUL byte) */
            o += 3;
            i++;
        }
    }
    out[o] = 0;
    return out;
}

char *route_token_text(const moe_tokenizer *t, int32_t id) {
    char *text = NULL;
    size_t len = 0;
    moe_err err = {{0}};
    if (moe_detokenize(t, &id, 1, 0, &text, &len, &err)) return NULL;
    char *out = route_utf8_clean(text, len);
    free(text);
    return out;
}

static int print_compact(FILE *f, const cJSON *v) {
    char *s = cJSON_PrintUnformatted(v);
    if (!s) return -1;
    fputs(s, f);
    cJSON_free(s);
    return 0;
}

int route_json_print(FILE *f, const cJSON *root) {
    fputs("{\n", f);
    for (const cJSON *k = root->child; k; k = k->next) {
        cJSON *name = cJSON_CreateString(k->string ? k->string : "");
        if (!name) return -1;
        int rc = print_compact(f, name);
        cJSON_Delete(name);
        if (rc) return -1;
        fputs(": ", f);
        int split = cJSON_IsArray(k) && k->child &&
                    (cJSON_IsObject(k->child) || cJSON_IsArray(k->child));
        if (split) {
            fputs("[\n", f);
            for (const cJSON *e = k->child; e; e = e->next) {
                if (print_compact(f, e)) return -1;
                fputs(e->next ? ",\n" : "\n", f);
            }
            fputs("]", f);
        } else if (print_compact(f, k)) {
            return -1;
        }
        fputs(k->next ? ",\n" : "\n", f);
    }
    fputs("}\n", f);
    return 0;
}

/* ------------------------------------------------------------ statistics */

typedef struct agg_layer {
    int layer, E, K;
    moe_route_kind kind;
    int64_t *count;    /* [E] pairs per expert */
    int64_t *dom;      /* [D][E] pairs per (domain, expert) */
    uint64_t *keys;    /* [N*K] expert << 32 | token id, for the top tokens */
    int64_t n_keys;
    double ent_sum;    /* sum over tokens of the router entropy (nats) */
    int64_t ent_n;
} agg_layer;

typedef struct agg {
    int n_layers;      /* MoE layers */
    agg_layer *l;      /* [n_layers] */
    int *slot;         /* [L] index into l, -1 for dense layers */
    int D;             /* domains */
    const int32_t *ids;/* [T] ids of the current window */
    const int *dom;    /* [T] their domains */
} agg;

static void on_route(void *user, const moe_route_info *r) {
    agg *a = user;
    agg_layer *l = &a->l[a->slot[r->layer]];
    for (int t = 0; t < r->T; t++) {
        int tok = r->t0 + t;
        int64_t *drow = l->dom + (int64_t)a->dom[tok] * l->E;
        for (int j = 0; j < r->K; j++) {
            int e = r->expert[t * r->K + j];
            l->count[e]++;
            drow[e]++;
            l->keys[l->n_keys++] = (uint64_t)e << 32 | (uint32_t)a->ids[tok];
        }
        if (l->kind == MOE_ROUTE_HASH) continue;
        /* entropy of the score distribution (sigmoid scores normalized) */
        const float *p = r->score + (int64_t)t * r->E;
        double sum = 0, h = 0;
        for (int e = 0; e < r->E; e++) sum += p[e];
        if (sum <= 0) continue;
        for (int e = 0; e < r->E; e++) {
            double q = p[e] / sum;
            if (q > 0) h -= q * log(q);
        }
        l->ent_sum += h;
        l->ent_n++;
    }
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

static const char *kind_name(moe_route_kind k) {
    return k == MOE_ROUTE_EXPERT_CHOICE ? "expert_choice" : k == MOE_ROUTE_HASH ? "hash" : "token_choice";
}

static cJSON *num_array(const int64_t *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
    return a;
}

typedef struct top_entry {
    int32_t id;
    int64_t count;
} top_entry;

/* Per expert, its `top` most frequent token ids (count desc, id asc). */
static cJSON *top_tokens_json(agg_layer *l, int top, const moe_tokenizer *tok) {
    qsort(l->keys, (size_t)l->n_keys, sizeof *l->keys, cmp_u64);
    cJSON *all = cJSON_CreateArray();
    top_entry *best = malloc(sizeof *best * (size_t)(top > 0 ? top : 1));
    if (!all || !best) {
        free(best);
        cJSON_Delete(all);
        return NULL;
    }
    int64_t i = 0;
    for (int e = 0; e < l->E; e++) {
        int nb = 0;
        while (i < l->n_keys && (int)(l->keys[i] >> 32) == e) {
            int64_t j = i;
            while (j < l->n_keys && l->keys[j] == l->keys[i]) j++;
            top_entry c = {(int32_t)(uint32_t)l->keys[i], j - i};
            /* insertion into the sorted short list; equal counts keep id order */
            int at = nb;
            while (at > 0 && best[at - 1].count < c.count) at--;
            if (at < top) {
                int last = nb < top ? nb : top - 1;
                for (int m = last; m > at; m--) best[m] = best[m - 1];
                best[at] = c;
                if (nb < top) nb++;
            }
            i = j;
        }
        cJSON *list = cJSON_CreateArray();
        for (int b = 0; list && b < nb; b++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "id", best[b].id);
            char *text = tok ? route_token_text(tok, best[b].id) : NULL;
            if (text) cJSON_AddStringToObject(o, "text", text);
            else cJSON_AddNullToObject(o, "text");
            free(text);
            cJSON_AddNumberToObject(o, "count", (double)best[b].count);
            cJSON_AddItemToArray(list, o);
        }
        cJSON_AddItemToArray(all, list);
    }
    free(best);
    return all;
}

static cJSON *layer_json(agg_layer *l, int D, int top, const moe_tokenizer *tok) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    int64_t total = 0, mx = 0;
    for (int e = 0; e < l->E; e++) {
        total += l->count[e];
        if (l->count[e] > mx) mx = l->count[e];
    }
    cJSON_AddNumberToObject(o, "layer", l->layer);
    cJSON_AddNumberToObject(o, "n_experts", l->E);
    cJSON_AddNumberToObject(o, "top_k", l->K);
    cJSON_AddStringToObject(o, "kind", kind_name(l->kind));
    cJSON_AddNumberToObject(o, "pairs", (double)total);
    cJSON_AddItemToObject(o, "counts", num_array(l->count, l->E));
    cJSON *load = cJSON_AddArrayToObject(o, "load");
    for (int e = 0; load && e < l->E; e++)
        cJSON_AddItemToArray(load, cJSON_CreateNumber(
                                       total ? route_round6((double)l->count[e] / total) : 0.0));
    double mean = (double)total / l->E;
    cJSON_AddNumberToObject(o, "max_violation", mean > 0 ? route_round6(mx / mean - 1.0) : 0.0);
    cJSON *dead = cJSON_CreateArray();
    for (int e = 0; dead && e < l->E; e++)
        if (l->count[e] == 0) cJSON_AddItemToArray(dead, cJSON_CreateNumber(e));
    cJSON_AddNumberToObject(o, "dead", cJSON_GetArraySize(dead));
    cJSON_AddItemToObject(o, "dead_experts", dead);
    if (l->ent_n) cJSON_AddNumberToObject(o, "router_entropy", route_round6(l->ent_sum / l->ent_n));
    else cJSON_AddNullToObject(o, "router_entropy");
    cJSON_AddNumberToObject(o, "router_entropy_max", route_round6(log((double)l->E)));
    cJSON *dc = cJSON_AddArrayToObject(o, "domain_counts");
    for (int d = 0; dc && d < D; d++) cJSON_AddItemToArray(dc, num_array(l->dom + (int64_t)d * l->E, l->E));
    cJSON_AddNumberToObject(o, "mi_bits", route_round6(moe_route_mutual_info(l->dom, D, l->E)));
    cJSON_AddNumberToObject(o, "mi_max_bits", route_round6(log2((double)(D < l->E ? D : l->E))));
    cJSON_AddItemToObject(o, "top_tokens", top_tokens_json(l, top, tok));
    return o;
}

/* ------------------------------------------------------------------ run */

static int load_optional_tokenizer(const char *cmd, const route_data_opts *o, moe_tokenizer **t) {
    *t = NULL;
    if (o->tokenizer) return cli_load_tokenizer(cmd, o->tokenizer, t);
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/tokenizer.json", o->model);
    if (stat(path, &st) != 0) return 0; /* no texts, ids only */
    return cli_load_tokenizer(cmd, o->model, t);
}

cJSON *route_data_run(const char *cmd, const route_data_opts *o, int *code) {
    *code = 1;
    char path[4096];
    struct stat st;
    if (stat(o->data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cli_error(cmd, "%s: not a data directory (expected the output of 'moe data')", o->data_dir);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s.bin", o->data_dir, o->split);
    moe_err err = {{0}};
    data_shard sh;
    memset(&sh, 0, sizeof sh);
    if (data_open(&sh, path, &err)) {
        cli_error(cmd, "%s", err.msg);
        return NULL;
    }
    moe_model *m = NULL;
    moe_tokenizer *tok = NULL;
    moe_session *s = NULL;
    agg a = {0};
    int32_t *ids = NULL;
    int *dom = NULL;
    cJSON *root = NULL;
    if (cli_load_model(cmd, o->model, &m)) goto done;
    const moe_config *c = moe_model_config(m);
    if ((int64_t)sh.vocab > c->vocab) {
        cli_error(cmd, "%s: token ids go up to %u but the model's vocabulary has %d", path,
                  sh.vocab - 1, c->vocab);
        goto done;
    }
    if (load_optional_tokenizer(cmd, o, &tok)) goto done;
    int64_t N = (int64_t)sh.n_tokens;
    if (o->max_tokens > 0 && o->max_tokens < N) N = o->max_tokens;
    if (N == 0) {
        cli_error(cmd, "%s: the shard holds no tokens", path);
        goto done;
    }
    int T = o->seq > 0 ? o->seq : 256;
    if (T > c->max_pos && c->max_pos > 0) {
        if (o->seq > 0) {
            cli_error(cmd, "--seq %d is longer than the model's %d positions", T, c->max_pos);
            *code = 2;
            goto done;
        }
        T = c->max_pos;
    }
    if (T > N) T = (int)N;

    /* layers and their counters */
    int64_t pairs_all = 0;
    a.slot = malloc(sizeof *a.slot * (size_t)c->n_layers);
    a.l = calloc((size_t)c->n_layers, sizeof *a.l);
    a.D = sh.n_domains;
    if (!a.slot || !a.l) goto oom;
    for (int l = 0; l < c->n_layers; l++) {
        a.slot[l] = -1;
        if (c->layer[l].moe) pairs_all += N * c->layer[l].top_k;
    }
    if (pairs_all * 8 > ROUTE_MAX_KEY_BYTES) {
        cli_error(cmd, "%lld tokens over %d layers need %.1f GiB for the top-token tables; "
                       "use --max-tokens to read fewer",
                  (long long)N, c->n_layers, pairs_all * 8.0 / (1 << 30));
        *code = 2;
        goto done;
    }
    for (int l = 0; l < c->n_layers; l++) {
        const moe_layer_config *lc = &c->layer[l];
        if (!lc->moe) continue;
        agg_layer *x = &a.l[a.n_layers];
        a.slot[l] = a.n_layers++;
        x->layer = l;
        x->E = lc->n_experts;
        x->K = lc->top_k;
        x->kind = lc->kind;
        x->count = calloc((size_t)x->E, sizeof *x->count);
        x->dom = calloc((size_t)x->E * (size_t)a.D, sizeof *x->dom);
        x->keys = malloc(sizeof *x->keys * (size_t)(N * x->K));
        if (!x->count || !x->dom || !x->keys) goto oom;
    }
    if (a.n_layers == 0) {
        cli_error(cmd, "%s: the model has no MoE layer", o->model);
        goto done;
    }

    moe_session_opts so = {.n_ctx = T, .n_threads = o->threads, .max_batch = T};
    if (moe_session_new(&s, m, &so, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    ids = malloc(sizeof *ids * (size_t)T);
    dom = malloc(sizeof *dom * (size_t)T);
    if (!ids || !dom) goto oom;
    a.ids = ids;
    a.dom = dom;
    int64_t windows = 0;
    int rc = 0;
    for (int64_t start = 0; start < N && rc == 0; start += T) {
        int n = (int)(N - start < T ? N - start : T);
        rc = data_read(&sh, (uint64_t)start, n, ids, &err);
        /* domains are contiguous ranges: one lookup per range crossed */
        for (int t = 0; t < n && rc == 0;) {
            int d = data_domain_of(&sh, (uint64_t)(start + t));
            if (d < 0) {
                rc = moe_fail(&err, "%s: position %lld is in no domain", path, (long long)(start + t));
                break;
            }
            int64_t end = (int64_t)sh.domain[d].end - start;
            if (end > n) end = n;
            for (; t < end; t++) dom[t] = d;
        }
        if (rc) break;
        moe_session_reset(s);
        rc = moe_route_trace(s, ids, n, on_route, &a, &err);
        windows++;
    }
    if (rc) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }

    root = cJSON_CreateObject();
    if (!root) goto oom;
    cJSON_AddStringToObject(root, "mode", "data");
    cJSON_AddStringToObject(root, "model", o->model);
    cJSON_AddStringToObject(root, "data", path);
    cJSON_AddStringToObject(root, "split", o->split);
    cJSON_AddNumberToObject(root, "seq", T);
    cJSON_AddNumberToObject(root, "windows", (double)windows);
    cJSON_AddNumberToObject(root, "tokens", (double)N);
    cJSON *doms = cJSON_AddArrayToObject(root, "domains");
    for (int d = 0; doms && d < a.D; d++) {
        /* tokens of domain d among the first N */
        uint64_t lo = sh.domain[d].start, hi = sh.domain[d].end;
        if (hi > (uint64_t)N) hi = (uint64_t)N;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", sh.domain[d].name);
        cJSON_AddNumberToObject(x, "tokens", (double)(hi > lo ? hi - lo : 0));
        cJSON_AddItemToArray(doms, x);
    }
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int i = 0; layers && i < a.n_layers; i++) {
        cJSON *x = layer_json(&a.l[i], a.D, o->top, tok);
        if (!x) goto oom;
        cJSON_AddItemToArray(layers, x);
    }
    *code = 0;
    goto done;
oom:
    cli_error(cmd, "out of memory");
    cJSON_Delete(root);
    root = NULL;
done:
    if (a.l)
        for (int i = 0; i < a.n_layers; i++) {
            free(a.l[i].count);
            free(a.l[i].dom);
            free(a.l[i].keys);
        }
    free(a.l);
    free(a.slot);
    free(ids);
    free(dom);
    moe_session_free(s);
    moe_tokenizer_free(tok);
    moe_model_free(m);
    data_close(&sh);
    return root;
}
