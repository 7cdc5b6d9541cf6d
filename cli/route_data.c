/*
 * route_data.c - `moe route --data`: the routing statistics of a model over
 * a token shard (moe_route_data_run of include/moe_route.h, which runs the
 * model and computes them) as the JSON of docs/ROUTING.md: per MoE layer the
 * (token, slot) pairs per expert, the load, max violation, dead experts, the
 * router entropy, a domain x expert table and its mutual information, and
 * the tokens each expert receives most. `moe report` reads the same JSON.
 */
#include "route_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "moe_route.h"

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

/* ------------------------------------------------------------------ JSON */

static const char *kind_name(moe_route_kind k) {
    return k == MOE_ROUTE_EXPERT_CHOICE ? "expert_choice" : k == MOE_ROUTE_HASH ? "hash" : "token_choice";
}

static cJSON *num_array(const int64_t *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
    return a;
}

/* Per expert its top tokens: {"id", "text" (null without a tokenizer), "count"}. */
static cJSON *top_tokens_json(const moe_route_layer *l, int top, const moe_tokenizer *tok) {
    cJSON *all = cJSON_CreateArray();
    for (int e = 0; all && e < l->E; e++) {
        cJSON *list = cJSON_CreateArray();
        for (int b = 0; list && b < top; b++) {
            int64_t count = l->top_count[(int64_t)e * top + b];
            int32_t id = l->top_id[(int64_t)e * top + b];
            if (count == 0) break;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "id", id);
            char *text = tok ? route_token_text(tok, id) : NULL;
            if (text) cJSON_AddStringToObject(o, "text", text);
            else cJSON_AddNullToObject(o, "text");
            free(text);
            cJSON_AddNumberToObject(o, "count", (double)count);
            cJSON_AddItemToArray(list, o);
        }
        cJSON_AddItemToArray(all, list);
    }
    return all;
}

static cJSON *layer_json(const moe_route_layer *l, int D, int top, const moe_tokenizer *tok) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "layer", l->layer);
    cJSON_AddNumberToObject(o, "n_experts", l->E);
    cJSON_AddNumberToObject(o, "top_k", l->K);
    cJSON_AddStringToObject(o, "kind", kind_name(l->kind));
    cJSON_AddNumberToObject(o, "pairs", (double)l->pairs);
    cJSON_AddItemToObject(o, "counts", num_array(l->counts, l->E));
    cJSON *load = cJSON_AddArrayToObject(o, "load");
    for (int e = 0; load && e < l->E; e++)
        cJSON_AddItemToArray(load, cJSON_CreateNumber(
                                       l->pairs ? route_round6((double)l->counts[e] / l->pairs) : 0.0));
    cJSON_AddNumberToObject(o, "max_violation", route_round6(l->max_violation));
    cJSON *dead = cJSON_CreateArray();
    for (int e = 0; dead && e < l->E; e++)
        if (l->counts[e] == 0) cJSON_AddItemToArray(dead, cJSON_CreateNumber(e));
    cJSON_AddNumberToObject(o, "dead", l->dead);
    cJSON_AddItemToObject(o, "dead_experts", dead);
    if (isnan(l->entropy)) cJSON_AddNullToObject(o, "router_entropy");
    else cJSON_AddNumberToObject(o, "router_entropy", route_round6(l->entropy));
    cJSON_AddNumberToObject(o, "router_entropy_max", route_round6(log((double)l->E)));
    cJSON *dc = cJSON_AddArrayToObject(o, "domain_counts");
    for (int d = 0; dc && d < D; d++)
        cJSON_AddItemToArray(dc, num_array(l->domain_counts + (int64_t)d * l->E, l->E));
    cJSON_AddNumberToObject(o, "mi_bits", route_round6(l->mi_bits));
    cJSON_AddNumberToObject(o, "mi_max_bits", route_round6(log2((double)(D < l->E ? D : l->E))));
    cJSON_AddItemToObject(o, "top_tokens", top_tokens_json(l, top, tok));
    if (l->G > 0) { /* group-limited routing: how often each group is kept */
        cJSON *g = cJSON_AddObjectToObject(o, "groups");
        if (!g) return o;
        cJSON_AddNumberToObject(g, "n_group", l->G);
        cJSON_AddNumberToObject(g, "topk_group", l->TG);
        cJSON_AddItemToObject(g, "counts", num_array(l->group_counts, l->G));
        int64_t tokens = 0;
        for (int k = 0; k < l->G; k++) tokens += l->group_counts[k];
        tokens = l->TG ? tokens / l->TG : 0;
        cJSON *share = cJSON_AddArrayToObject(g, "share");
        for (int k = 0; share && k < l->G; k++)
            cJSON_AddItemToArray(share, cJSON_CreateNumber(
                tokens ? route_round6((double)l->group_counts[k] / (double)tokens) : 0.0));
        cJSON *gd = cJSON_AddArrayToObject(g, "domain_counts");
        for (int d = 0; gd && d < D; d++)
            cJSON_AddItemToArray(gd, num_array(l->domain_group_counts + (int64_t)d * l->G, l->G));
        cJSON_AddNumberToObject(g, "mi_bits", route_round6(l->group_mi_bits));
        cJSON_AddNumberToObject(g, "mi_max_bits", route_round6(log2((double)(D < l->G ? D : l->G))));
    }
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
    moe_model *m = NULL;
    moe_tokenizer *tok = NULL;
    moe_route_data *rd = NULL;
    cJSON *root = NULL;
    if (cli_load_model_opts(cmd, o->model, o->load, &m)) goto done;
    const moe_config *c = moe_model_config(m);
    if (o->seq > 0 && c->max_pos > 0 && o->seq > c->max_pos) {
        cli_error(cmd, "--seq %d is longer than the model's %d positions", o->seq, c->max_pos);
        *code = 2;
        goto done;
    }
    if (load_optional_tokenizer(cmd, o, &tok)) goto done;
    moe_route_data_opts ro = {path, o->max_tokens, o->seq, o->top, o->threads};
    if (moe_route_data_run(m, &ro, &rd, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    cli_cache_tokens(m, rd->tokens);
    cli_cache_line(cmd, m, stderr);

    root = cJSON_CreateObject();
    if (!root) goto oom;
    cJSON_AddStringToObject(root, "mode", "data");
    cJSON_AddStringToObject(root, "model", o->model);
    cJSON_AddStringToObject(root, "data", path);
    cJSON_AddStringToObject(root, "split", o->split);
    cJSON_AddNumberToObject(root, "seq", rd->seq);
    cJSON_AddNumberToObject(root, "windows", (double)rd->windows);
    cJSON_AddNumberToObject(root, "tokens", (double)rd->tokens);
    cJSON *doms = cJSON_AddArrayToObject(root, "domains");
    for (int d = 0; doms && d < rd->n_domains; d++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", rd->domain_name[d]);
        cJSON_AddNumberToObject(x, "tokens", (double)rd->domain_tokens[d]);
        cJSON_AddItemToArray(doms, x);
    }
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int i = 0; layers && i < rd->n_layers; i++) {
        cJSON *x = layer_json(&rd->layer[i], rd->n_domains, rd->top, tok);
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
    moe_route_data_free(rd);
    moe_tokenizer_free(tok);
    moe_model_free(m);
    return root;
}
