/*
 * route_table.c - the text tables of `moe route --data --table` (see
 * route_table.h), read back from the JSON object route_data_run builds, so
 * the tables and the JSON can never disagree. Shares are percentages: of a
 * layer's (token, slot) pairs for the load, of each domain's pairs for the
 * domain x expert rows (the rows the report's heatmap draws); with
 * group-limited routing, the groups' shares and domain x group rows too.
 */
#include <string.h>

#include "route_table.h"

/* obj[key] as a number; -1 if absent or not a number. */
static int num(const cJSON *obj, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) return -1;
    *out = v->valuedouble;
    return 0;
}

/* a[i] as a number for i < n; -1 unless a is an array of n numbers. */
static int num_array(const cJSON *a, int n, double *out) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return -1;
    int i = 0;
    for (const cJSON *v = a->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v)) return -1;
        out[i] = v->valuedouble;
    }
    return 0;
}

/* Is this layer object complete enough to print? E within [1, 4096]. */
static int layer_ok(const cJSON *l, int D) {
    double x;
    if (!cJSON_IsObject(l) || num(l, "layer", &x) || num(l, "n_experts", &x) || x < 1 || x > 4096 ||
        num(l, "top_k", &x) || num(l, "pairs", &x) || num(l, "max_violation", &x) || num(l, "dead", &x) ||
        num(l, "mi_bits", &x) || num(l, "mi_max_bits", &x))
        return 0;
    int E = (int)cJSON_GetObjectItemCaseSensitive(l, "n_experts")->valuedouble;
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(l, "counts");
    const cJSON *dc = cJSON_GetObjectItemCaseSensitive(l, "domain_counts");
    if (!cJSON_IsArray(counts) || cJSON_GetArraySize(counts) != E) return 0;
    if (!cJSON_IsArray(dc) || cJSON_GetArraySize(dc) != D) return 0;
    for (const cJSON *row = dc->child; row; row = row->next)
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != E) return 0;
    return 1;
}

/* Column titles e0..eN: "e%d" right-aligned in 6 columns. */
static void expert_titles(FILE *f, int E) {
    char t[16];
    for (int e = 0; e < E; e++) {
        snprintf(t, sizeof t, "e%d", e);
        fprintf(f, " %6s", t);
    }
}

/* 100 * part / whole as " 12.3%", or "     -" when whole is 0. */
static void share(FILE *f, double part, double whole) {
    if (whole > 0) fprintf(f, " %5.1f%%", 100.0 * part / whole);
    else fprintf(f, " %6s", "-");
}

/* A token's text between quotes, with newline, tab and other control
 * characters escaped so a row stays on one line. */
static void token_text(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    fputc('\'', f);
}

static void print_load(FILE *f, const cJSON *layers, int E_max, double tokens) {
    double K = 0;
    num(layers->child, "top_k", &K);
    fprintf(f, "expert load: share of each layer's %.0f (token, slot) pairs (even: %.1f%%)\n", tokens * K,
            100.0 / E_max);
    fprintf(f, "layer");
    expert_titles(f, E_max);
    fprintf(f, "  max viol  dead  entropy/max (nats)\n");
    double counts[4096];
    for (const cJSON *l = layers->child; l; l = l->next) {
        double layer = 0, E = 0, pairs = 0, viol = 0, dead = 0, ent = 0, ent_max = 0;
        num(l, "layer", &layer);
        num(l, "n_experts", &E);
        num(l, "pairs", &pairs);
        num(l, "max_violation", &viol);
        num(l, "dead", &dead);
        num(l, "router_entropy_max", &ent_max);
        num_array(cJSON_GetObjectItemCaseSensitive(l, "counts"), (int)E, counts);
        fprintf(f, "%5.0f", layer);
        for (int e = 0; e < E_max; e++) {
            if (e < (int)E) share(f, counts[e], pairs);
            else fprintf(f, " %6s", "");
        }
        fprintf(f, "  %8.3f  %4.0f", viol, dead);
        if (num(l, "router_entropy", &ent) == 0) fprintf(f, "  %.3f/%.3f\n", ent, ent_max);
        else fprintf(f, "  -\n");
    }
}

static void print_domains(FILE *f, const cJSON *l, const cJSON *domains, int name_w) {
    double layer = 0, E = 0, mi = 0, mi_max = 0;
    num(l, "layer", &layer);
    num(l, "n_experts", &E);
    num(l, "mi_bits", &mi);
    num(l, "mi_max_bits", &mi_max);
    fprintf(f, "\nlayer %.0f: domain x expert, share of each domain's pairs; I(domain; expert) = %.3f bits (max %.3f)\n",
            layer, mi, mi_max);
    fprintf(f, "%-*s %9s", name_w, "domain", "tokens");
    expert_titles(f, (int)E);
    fputc('\n', f);
    double row[4096];
    const cJSON *d = domains->child;
    for (const cJSON *r = cJSON_GetObjectItemCaseSensitive(l, "domain_counts")->child; r && d;
         r = r->next, d = d->next) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "name");
        double dt = 0, sum = 0;
        num(d, "tokens", &dt);
        if (num_array(r, (int)E, row)) continue;
        for (int e = 0; e < (int)E; e++) sum += row[e];
        fprintf(f, "%-*.*s %9.0f", name_w, name_w, cJSON_IsString(name) ? name->valuestring : "?", dt);
        for (int e = 0; e < (int)E; e++) share(f, row[e], sum);
        fputc('\n', f);
    }
}

/* Group-limited routing: each group's share of the tokens that kept it,
 * and domain x group rows (the share of each domain's group choices). */
static void print_groups(FILE *f, const cJSON *l, const cJSON *domains, int name_w) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(l, "groups");
    double layer = 0, G = 0, TG = 0, mi = 0, mi_max = 0, row[4096];
    if (!cJSON_IsObject(g) || num(g, "n_group", &G) || G < 1 || G > 4096 || num(g, "topk_group", &TG) ||
        num(g, "mi_bits", &mi) || num(g, "mi_max_bits", &mi_max) ||
        num_array(cJSON_GetObjectItemCaseSensitive(g, "share"), (int)G, row))
        return;
    num(l, "layer", &layer);
    fprintf(f, "\nlayer %.0f: groups (%.0f of %.0f kept by each token), share of the tokens keeping each\n",
            layer, TG, G);
    fprintf(f, "%-*s %9s", name_w, "", "");
    for (int k = 0; k < (int)G; k++) {
        char t[16];
        snprintf(t, sizeof t, "g%d", k);
        fprintf(f, " %6s", t);
    }
    fprintf(f, "\n%-*s %9s", name_w, "all", "");
    for (int k = 0; k < (int)G; k++) share(f, row[k], 1.0);
    fprintf(f, "\ndomain x group, share of each domain's group choices; I(domain; group) = %.3f bits "
               "(max %.3f)\n",
            mi, mi_max);
    const cJSON *dc = cJSON_GetObjectItemCaseSensitive(g, "domain_counts");
    const cJSON *d = domains->child;
    for (const cJSON *r = cJSON_IsArray(dc) ? dc->child : NULL; r && d; r = r->next, d = d->next) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "name");
        double dt = 0, sum = 0;
        num(d, "tokens", &dt);
        if (num_array(r, (int)G, row)) continue;
        for (int k = 0; k < (int)G; k++) sum += row[k];
        fprintf(f, "%-*.*s %9.0f", name_w, name_w, cJSON_IsString(name) ? name->valuestring : "?", dt);
        for (int k = 0; k < (int)G; k++) share(f, row[k], sum);
        fputc('\n', f);
    }
}

static void print_top(FILE *f, const cJSON *l, int top) {
    const cJSON *tt = cJSON_GetObjectItemCaseSensitive(l, "top_tokens");
    double layer = 0;
    num(l, "layer", &layer);
    if (!cJSON_IsArray(tt) || !tt->child) return;
    fprintf(f, "\nlayer %.0f: each expert's most frequent tokens\n", layer);
    int e = 0;
    for (const cJSON *list = tt->child; list; list = list->next, e++) {
        fprintf(f, "e%-3d", e);
        int i = 0;
        for (const cJSON *t = cJSON_IsArray(list) ? list->child : NULL; t && i < top; t = t->next, i++) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(t, "text");
            double id = 0;
            fputc(' ', f);
            if (cJSON_IsString(text)) token_text(f, text->valuestring);
            else if (num(t, "id", &id) == 0) fprintf(f, "#%.0f", id);
        }
        fputc('\n', f);
    }
}

int route_table_print(FILE *f, const cJSON *root, int top_tokens) {
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    const cJSON *domains = cJSON_GetObjectItemCaseSensitive(root, "domains");
    double tokens, seq = 0, windows = 0;
    if (num(root, "tokens", &tokens) || !cJSON_IsArray(layers) || !cJSON_IsArray(domains)) return -1;
    int D = cJSON_GetArraySize(domains), E_max = 0, name_w = 6;
    for (const cJSON *d = domains->child; d; d = d->next) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "name");
        if (!cJSON_IsString(name)) return -1;
        int w = (int)strlen(name->valuestring);
        if (w > name_w) name_w = w > 20 ? 20 : w;
    }
    for (const cJSON *l = layers->child; l; l = l->next) {
        if (!layer_ok(l, D)) return -1;
        int E = (int)cJSON_GetObjectItemCaseSensitive(l, "n_experts")->valuedouble;
        if (E > E_max) E_max = E;
    }
    num(root, "seq", &seq);
    num(root, "windows", &windows);
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(root, "split");
    fprintf(f, "routing of %.0f tokens (%s split, %.0f windows of up to %.0f)\n\n", tokens,
            cJSON_IsString(split) ? split->valuestring : "?", windows, seq);
    if (!layers->child) {
        fprintf(f, "no MoE layers\n");
        return 0;
    }
    print_load(f, layers, E_max, tokens);
    for (const cJSON *l = layers->child; l; l = l->next) {
        print_domains(f, l, domains, name_w);
        print_groups(f, l, domains, name_w);
    }
    const cJSON *last = layers->child;
    while (last->next) last = last->next;
    if (top_tokens > 0) print_top(f, last, top_tokens);
    return 0;
}
