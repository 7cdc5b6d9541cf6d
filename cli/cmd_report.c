/*
 * cmd_report.c - `moe report RUN_DIR`: one self-contained HTML page of a
 * training run (inline SVG, no scripts, nothing fetched): loss curves, the
 * schedule, throughput, per-layer expert load over time, balance (max
 * violation, dead experts, router entropy), dropped pairs and, with routing
 * statistics (`moe route --data` JSON, computed here with --route-data or
 * read from RUN/route.json), a domain x expert heatmap per layer with
 * I(domain; expert), and with group-limited routing a domain x group one
 * with I(domain; group). The head lists the run's settings (report_header.c);
 * the log is read by report_log.c, charts drawn by svg.c.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "moe_file.h"
#include "args.h"
#include "cli.h"
#include "report_header.h"
#include "report_log.h"
#include "route_data.h"
#include "svg.h"

#define PAGE_W 1140    /* content width in pixels */
#define HALF_W 560     /* a chart in a two-column row */
#define CHART_H 290

typedef struct page {
    FILE *f;
    int next_id; /* svg_chart ids */
} page;

/* ------------------------------------------------------------ page parts */

static void page_head(FILE *f, const char *run) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>moe report: ", f);
    svg_escape(f, run);
    fputs("</title>\n<style>\n"
          "body{font-family:sans-serif;color:#222;margin:16px auto;max-width:1200px;padding:0 10px}\n"
          "h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:26px 0 6px;border-bottom:1px solid #ccc;"
          "padding-bottom:3px}\n"
          "h3{font-size:13px;margin:4px 0 2px;font-weight:600}\n"
          ".row{display:flex;flex-wrap:wrap;gap:10px 16px}\nfigure{margin:0}\n"
          "p.note{font-size:12px;color:#555;margin:2px 0 8px}\n"
          "table{border-collapse:collapse;font-size:13px}td,th{padding:2px 10px 2px 0;text-align:left;"
          "vertical-align:top}\n"
          "th{color:#555;font-weight:normal}\ntable.tok td{font-size:12px;border-top:1px solid #eee}\n"
          "code{background:#f3f3f3;padding:0 3px;border-radius:2px}\n"
          "summary{font-size:13px;cursor:pointer;margin:2px 0 4px}\n"
          "</style></head><body>\n",
          f);
}

static void section(FILE *f, const char *title, const char *note) {
    fputs("<h2>", f);
    svg_escape(f, title);
    fputs("</h2>\n", f);
    if (note) {
        fputs("<p class=\"note\">", f);
        svg_escape(f, note);
        fputs("</p>\n", f);
    }
}

static void fig_begin(FILE *f, const char *title) {
    fputs("<figure><h3>", f);
    svg_escape(f, title);
    fputs("</h3>\n", f);
}

/* A line chart of columns of the log against the step. */
static void line_fig(page *p, const char *title, const char *ylabel, const svg_series *s, int n,
                     int y_zero, int integer_y, int width) {
    fig_begin(p->f, title);
    svg_chart c = {p->next_id++, "step", ylabel, width, CHART_H, y_zero, integer_y};
    svg_line_chart(p->f, &c, s, n);
    fputs("</figure>\n", p->f);
}

static int col_has_data(const report_log *r, int c) {
    for (int i = 0; i < r->n; i++)
        if (isfinite(r->col[c][i])) return 1;
    return 0;
}

static svg_series col_series(const report_log *r, int c, const char *label, int color) {
    return (svg_series){label, r->col[RL_STEP], r->col[c], r->n, svg_palette(color), 0, 0};
}

/* ------------------------------------------------------------- sections */

static void summary(page *p, const report_log *r, const char *run) {
    FILE *f = p->f;
    fputs("<h1>Training report: ", f);
    svg_escape(f, run);
    fputs("</h1>\n<table>\n", f);
    report_header_rows(f, r, run);
    int last = r->n - 1;
    fprintf(f, "<tr><th>steps logged</th><td>%d (steps %.0f to %.0f; %d lines)</td></tr>\n", r->n,
            r->col[RL_STEP][0], r->col[RL_STEP][last], r->lines);
    fprintf(f, "<tr><th>last loss</th><td>%.4f (cross-entropy %.4f)</td></tr>\n", r->col[RL_LOSS][last],
            r->col[RL_CE][last]);
    int best = -1;
    for (int i = 0; i < r->n; i++)
        if (isfinite(r->col[RL_VAL_LOSS][i]) && (best < 0 || r->col[RL_VAL_LOSS][i] < r->col[RL_VAL_LOSS][best]))
            best = i;
    if (best >= 0)
        fprintf(f, "<tr><th>best val loss</th><td>%.4f at step %.0f (perplexity %.2f)</td></tr>\n",
                r->col[RL_VAL_LOSS][best], r->col[RL_STEP][best], exp(r->col[RL_VAL_LOSS][best]));
    double *tps = malloc(sizeof *tps * (size_t)r->n);
    int nt = 0;
    for (int i = 0; tps && i < r->n; i++)
        if (isfinite(r->col[RL_TOKENS_PER_S][i])) tps[nt++] = r->col[RL_TOKENS_PER_S][i];
    if (nt) fprintf(f, "<tr><th>tokens/s</th><td>%.0f (median)</td></tr>\n", cli_median(tps, nt));
    free(tps);
    fputs("<tr><th>MoE layers</th><td>", f);
    for (int l = 0; l < r->n_layers; l++)
        fprintf(f, "%slayer %d: %d experts", l ? "; " : "", r->layer[l].layer, r->layer[l].E);
    if (!r->n_layers) fputs("none logged", f);
    fputs("</td></tr>\n</table>\n", f);
}

static void loss_section(page *p, const report_log *r) {
    section(p->f, "Loss", "Training loss per step (total and its cross-entropy part) and validation "
                          "cross-entropy at each evaluation.");
    fputs("<div class=\"row\">\n", p->f);
    /* the evaluations as their own series so they join up */
    double *vx = malloc(sizeof *vx * (size_t)r->n), *vy = malloc(sizeof *vy * (size_t)r->n);
    int nv = 0;
    for (int i = 0; vx && vy && i < r->n; i++)
        if (isfinite(r->col[RL_VAL_LOSS][i])) {
            vx[nv] = r->col[RL_STEP][i];
            vy[nv++] = r->col[RL_VAL_LOSS][i];
        }
    svg_series s[3] = {col_series(r, RL_LOSS, "train loss", 0), col_series(r, RL_CE, "train CE", 2),
                       {"val loss", vx, vy, nv, svg_palette(3), 1, 0}};
    s[1].dashed = 1;
    line_fig(p, "Train and validation loss", "loss (nats)", s, 3, 0, 0, HALF_W);
    free(vx);
    free(vy);
    svg_series b[3] = {col_series(r, RL_AUX, "aux (load balance)", 4), col_series(r, RL_Z, "z (router)", 1),
                       col_series(r, RL_KL, "kl", 9)};
    line_fig(p, "Balancing losses (unweighted)", "loss", b, col_has_data(r, RL_KL) ? 3 : 2, 0, 0, HALF_W);
    fputs("</div>\n", p->f);
}

static void schedule_section(page *p, const report_log *r) {
    section(p->f, "Learning rate and throughput", NULL);
    fputs("<div class=\"row\">\n", p->f);
    svg_series lr = col_series(r, RL_LR, NULL, 0);
    line_fig(p, "Learning rate", "learning rate", &lr, 1, 1, 0, HALF_W);
    svg_series tps = col_series(r, RL_TOKENS_PER_S, NULL, 2);
    line_fig(p, "Throughput (training tokens per second)", "tokens/s", &tps, 1, 1, 0, HALF_W);
    svg_series gn = col_series(r, RL_GRAD_NORM, NULL, 4);
    line_fig(p, "Gradient norm (before clipping)", "global norm", &gn, 1, 1, 0, HALF_W);
    fputs("</div>\n", p->f);
}

/* Heatmap columns for the load: about 6000 cells a layer at most. */
static int load_cols(const report_log *r, int E) {
    int cols = 6000 / E;
    if (cols > 300) cols = 300;
    if (cols < 20) cols = 20;
    int kept = (r->n + r->load_stride - 1) / r->load_stride;
    return kept < cols ? kept : cols;
}

/* The tooltip of a load cell: "layer 2, expert 5, steps 101-150: 13.1% of
 * the layer's pairs (even: 12.5%)". */
typedef struct load_tip {
    int layer, E, cols;
    double s0, s1;     /* steps at the left and right edges */
    const double *v;   /* [E][cols] */
} load_tip;

static void load_cell_tip(FILE *f, void *user, int r, int c) {
    const load_tip *t = user;
    double a = t->s0 + c * (t->s1 - t->s0) / t->cols, b = t->s0 + (c + 1) * (t->s1 - t->s0) / t->cols;
    long lo = (long)ceil(a), hi = (long)ceil(b) - 1;
    fprintf(f, "layer %d, expert %d, ", t->layer, r);
    if (hi > lo) fprintf(f, "steps %ld-%ld", lo, hi);
    else fprintf(f, "step %ld", lo);
    fprintf(f, ": %.1f%% of the layer's pairs (even: %.1f%%)", 100 * t->v[(size_t)r * t->cols + c],
            100.0 / t->E);
}

static int load_section(page *p, const report_log *r) {
    section(p->f, "Expert load",
            "Share of each layer's (token, slot) pairs that went to each expert, per step (averaged over "
            "the steps a column covers). White is an even share (1/E); blue, less; red, more.");
    /* column edges: each step is centered on its value */
    double s0 = r->col[RL_STEP][0] - 0.5, s1 = r->col[RL_STEP][r->n - 1] + 0.5;
    for (int l = 0; l < r->n_layers; l++) {
        const rl_layer *L = &r->layer[l];
        int cols = load_cols(r, L->E);
        double *v = calloc((size_t)L->E * (size_t)cols, sizeof *v);
        int *cnt = calloc((size_t)L->E * (size_t)cols, sizeof *cnt);
        if (!v || !cnt) {
            free(v);
            free(cnt);
            return -1;
        }
        for (int i = 0; i < r->n; i += r->load_stride) {
            int b = (int)((r->col[RL_STEP][i] - s0) * cols / (s1 - s0));
            if (b < 0 || b >= cols) continue;
            const float *fr = L->frac + (size_t)(i / r->load_stride) * L->E;
            for (int e = 0; e < L->E; e++)
                if (isfinite(fr[e])) {
                    v[(size_t)e * cols + b] += fr[e];
                    cnt[(size_t)e * cols + b]++;
                }
        }
        for (size_t k = 0; k < (size_t)L->E * cols; k++) v[k] = cnt[k] ? v[k] / cnt[k] : NAN;
        char title[96];
        snprintf(title, sizeof title, "Layer %d: load fraction per expert (%d experts)", L->layer, L->E);
        fig_begin(p->f, title);
        int h = 60 + (L->E * 14 < 120 ? 120 : L->E * 14 > 520 ? 520 : L->E * 14);
        load_tip tip = {L->layer, L->E, cols, s0, s1, v};
        svg_heatmap hm = {L->E, cols, v, 0, 1.0 / L->E, 2.0 / L->E, SVG_MAP_DIVERGING, NULL, NULL, s0, s1,
                          "step", "expert", "load fraction", "%.3f", 1, 0, PAGE_W, h, load_cell_tip, &tip};
        svg_heatmap_draw(p->f, &hm);
        fputs("</figure>\n", p->f);
        free(v);
        free(cnt);
    }
    if (!r->n_layers) fputs("<p class=\"note\">The log has no per-layer loads.</p>\n", p->f);
    return 0;
}

static int balance_section(page *p, const report_log *r) {
    section(p->f, "Load balance",
            "max violation = the busiest expert's load over the mean load, minus 1 (0 = perfectly even); "
            "dead experts = experts that got no token in the step; router entropy = mean entropy of the "
            "router's distribution over experts (nats; log E is uniform).");
    int n = r->n_layers ? r->n_layers : 1;
    svg_series *vs = calloc((size_t)n, sizeof *vs), *ds = calloc((size_t)n, sizeof *ds);
    char (*names)[24] = calloc((size_t)n, sizeof *names);
    if (!vs || !ds || !names) {
        free(vs);
        free(ds);
        free(names);
        return -1;
    }
    for (int l = 0; l < r->n_layers; l++) {
        snprintf(names[l], sizeof names[l], "layer %d", r->layer[l].layer);
        vs[l] = (svg_series){names[l], r->col[RL_STEP], r->layer[l].viol, r->n, svg_palette(l), 0, 0};
        ds[l] = vs[l];
        ds[l].y = r->layer[l].dead;
    }
    fputs("<div class=\"row\">\n", p->f);
    line_fig(p, "Max violation per layer", "max load / mean - 1", vs, r->n_layers, 1, 0, HALF_W);
    line_fig(p, "Dead experts per layer", "experts with no token", ds, r->n_layers, 1, 1, HALF_W);
    /* reference: the entropy of a uniform router over the most experts */
    int emax = 1;
    for (int l = 0; l < r->n_layers; l++) emax = r->layer[l].E > emax ? r->layer[l].E : emax;
    double uni_x[2] = {r->col[RL_STEP][0], r->col[RL_STEP][r->n - 1]}, uni_y[2] = {log(emax), log(emax)};
    char uni_name[48];
    snprintf(uni_name, sizeof uni_name, "uniform (ln %d)", emax);
    svg_series ent[2] = {col_series(r, RL_ENTROPY, "router entropy", 6),
                         {uni_name, uni_x, uni_y, 2, "#999999", 0, 1}};
    line_fig(p, "Router entropy", "nats", ent, 2, 1, 0, HALF_W);
    fputs("</div>\n", p->f);
    free(vs);
    free(ds);
    free(names);
    section(p->f, "Dropped tokens",
            "Share of (token, slot) pairs dropped by an expert's capacity limit (0 without one).");
    double *pct = malloc(sizeof *pct * (size_t)r->n);
    if (!pct) return -1;
    for (int i = 0; i < r->n; i++) pct[i] = r->col[RL_DROPPED][i] * 100;
    svg_series dr = {NULL, r->col[RL_STEP], pct, r->n, svg_palette(3), 0, 0};
    fputs("<div class=\"row\">\n", p->f);
    line_fig(p, "Dropped pairs", "dropped (%)", &dr, 1, 1, 0, HALF_W);
    fputs("</div>\n", p->f);
    free(pct);
    return 0;
}

/* ------------------------------------------------------------- routing */

/* Token text for a table cell: spaces and line breaks made visible. */
static void token_cell(FILE *f, const char *s) {
    fputs("<code>", f);
    for (; *s; s++) {
        if (*s == ' ') fputs("\xe2\x90\xa3", f);       /* U+2423 open box */
        else if (*s == '\n') fputs("\xe2\x86\xb5", f); /* U+21B5 */
        else if (*s == '\t') fputs("\xe2\x87\xa5", f); /* U+21E5 */
        else {
            char c[2] = {*s, 0};
            svg_escape(f, c);
        }
    }
    fputs("</code>", f);
}

/* Check the parts of a `moe route --data` object the page uses. */
static int route_check(const cJSON *root, const char *src, char *why, size_t n) {
    const cJSON *doms = cJSON_GetObjectItemCaseSensitive(root, "domains");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsObject(root) || !cJSON_IsArray(doms) || !cJSON_IsArray(layers))
        return snprintf(why, n, "%s: not the JSON of 'moe route --data' (no \"domains\" / \"layers\")", src), -1;
    int D = cJSON_GetArraySize(doms), k = 0;
    if (D < 1) return snprintf(why, n, "%s: \"domains\" is empty", src), -1;
    for (const cJSON *d = doms->child; d; d = d->next)
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "name")))
            return snprintf(why, n, "%s: a domain has no \"name\"", src), -1;
    for (const cJSON *l = layers->child; l; l = l->next, k++) {
        const cJSON *E = cJSON_GetObjectItemCaseSensitive(l, "n_experts");
        const cJSON *dc = cJSON_GetObjectItemCaseSensitive(l, "domain_counts");
        if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(l, "layer")) || !cJSON_IsNumber(E) ||
            E->valuedouble < 1 || E->valuedouble > 65536 ||
            !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(l, "mi_bits")) || !cJSON_IsArray(dc) ||
            cJSON_GetArraySize(dc) != D)
            return snprintf(why, n, "%s: layers[%d]: needs layer, n_experts, mi_bits and %d domain_counts rows",
                            src, k, D), -1;
        for (const cJSON *row = dc->child; row; row = row->next) {
            if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != E->valueint)
                return snprintf(why, n, "%s: layers[%d]: a domain_counts row is not %d numbers", src, k,
                                E->valueint), -1;
            for (const cJSON *x = row->child; x; x = x->next)
                if (!cJSON_IsNumber(x) || x->valuedouble < 0)
                    return snprintf(why, n, "%s: layers[%d]: a domain count is not a count", src, k), -1;
        }
    }
    return 0;
}

static double num_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void top_tokens_table(FILE *f, const cJSON *tt) {
    if (!cJSON_IsArray(tt)) return;
    fprintf(f, "<details%s><summary>Top tokens per expert</summary>\n<table class=\"tok\">\n",
            cJSON_GetArraySize(tt) <= 16 ? " open" : "");
    int e = 0;
    for (const cJSON *list = tt->child; list; list = list->next, e++) {
        fprintf(f, "<tr><td>expert %d</td><td>", e);
        int k = 0;
        for (const cJSON *t = cJSON_IsArray(list) ? list->child : NULL; t && k < 8; t = t->next, k++) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(t, "text");
            if (cJSON_IsString(text)) token_cell(f, text->valuestring);
            else fprintf(f, "<code>#%.0f</code>", num_of(t, "id"));
            fprintf(f, " %.0f%s", num_of(t, "count"), t->next && k < 7 ? " &nbsp; " : "");
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</table></details>\n", f);
}

/* The tooltip of a domain x expert cell: "layer 2, expert 5, german: 12.3% of
 * its pairs (1,234)". */
typedef struct domain_tip {
    int layer;
    const char **names;  /* [D] */
    const double *share; /* [D][E] */
    const double *count; /* [D][E] */
    int E;
    const char *what;    /* "expert", or "group" (of tokens' group choices) */
} domain_tip;

/* n with thousands separators: 1,234,567 */
static void put_count(FILE *f, double n) {
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%.0f", n);
    for (int i = 0; i < len; i++) {
        fputc(buf[i], f);
        int left = len - 1 - i;
        if (left > 0 && left % 3 == 0 && buf[i] != '-') fputc(',', f);
    }
}

static void domain_cell_tip(FILE *f, void *user, int r, int c) {
    const domain_tip *t = user;
    fprintf(f, "layer %d, %s %d, ", t->layer, t->what, c);
    svg_escape(f, t->names[r]);
    fprintf(f, ": %.1f%% of its %s (", 100 * t->share[(size_t)r * t->E + c],
            strcmp(t->what, "group") ? "pairs" : "group choices");
    put_count(f, t->count[(size_t)r * t->E + c]);
    fputs(")", f);
}

/* A layer's "groups" object of 'moe route --data' (group-limited routing),
 * when it is whole: n_group, share [G], domain_counts [D][G], mi_bits. */
static const cJSON *layer_groups(const cJSON *l, int D) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(l, "groups");
    if (!cJSON_IsObject(g) || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(g, "n_group")) ||
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(g, "mi_bits")))
        return NULL;
    int G = (int)num_of(g, "n_group");
    const cJSON *share = cJSON_GetObjectItemCaseSensitive(g, "share"),
                *dc = cJSON_GetObjectItemCaseSensitive(g, "domain_counts");
    if (G < 1 || G > 4096 || cJSON_GetArraySize(share) != G || cJSON_GetArraySize(dc) != D) return NULL;
    for (const cJSON *x = share->child; x; x = x->next)
        if (!cJSON_IsNumber(x)) return NULL;
    for (const cJSON *row = dc->child; row; row = row->next) {
        if (cJSON_GetArraySize(row) != G) return NULL;
        for (const cJSON *x = row->child; x; x = x->next)
            if (!cJSON_IsNumber(x) || x->valuedouble < 0) return NULL;
    }
    return g;
}

/* One domain x K heatmap in its own figure: rows of dc (D rows of K counts)
 * as each row's shares, K columns named 0..K-1 ("expert" or "group", per
 * `what`), coloured from 0 to vmax (<= 0: this map's largest share), with
 * the top-tokens table under it when top is given. */
static int domain_heatmap(FILE *f, const cJSON *dc, int D, int K, const char **names, int layer,
                          const char *what, const char *title, const char *legend, double vmax,
                          const cJSON *top) {
    double *v = malloc(sizeof *v * (size_t)D * (size_t)K * 2), *cnt = v ? v + (size_t)D * K : NULL;
    char (*cl)[12] = malloc(sizeof *cl * (size_t)K);
    const char **cols = malloc(sizeof *cols * (size_t)K);
    if (!v || !cl || !cols) {
        free(v), free(cl), free(cols);
        return -1;
    }
    for (int k = 0; k < K; k++) {
        snprintf(cl[k], sizeof cl[k], "%d", k);
        cols[k] = cl[k];
    }
    double own = 0;
    int r = 0;
    for (const cJSON *row = dc->child; row; row = row->next, r++) {
        double total = 0;
        for (const cJSON *x = row->child; x; x = x->next) total += x->valuedouble;
        int k = 0;
        for (const cJSON *x = row->child; x; x = x->next, k++) {
            v[(size_t)r * K + k] = total > 0 ? x->valuedouble / total : NAN;
            cnt[(size_t)r * K + k] = x->valuedouble;
            if (total > 0 && x->valuedouble / total > own) own = x->valuedouble / total;
        }
    }
    if (vmax <= 0) vmax = own;
    domain_tip tip = {layer, names, v, cnt, K, what};
    fig_begin(f, title);
    int w = 200 + K * 46 < PAGE_W ? 200 + K * 46 : PAGE_W;
    if (w < 520) w = 520;
    int h = 60 + (D * 26 < 80 ? 80 : D * 26 > 520 ? 520 : D * 26);
    svg_heatmap hm = {D, K, v, 0, NAN, vmax > 0 ? vmax : 1, SVG_MAP_SEQUENTIAL, names, cols, 0, 0,
                      what, "domain", legend, "%.0f%%", 100, 1, w, h, domain_cell_tip, &tip};
    svg_heatmap_draw(f, &hm);
    if (top) top_tokens_table(f, top);
    fputs("</figure>\n", f);
    free(v);
    free(cl);
    free(cols);
    return 0;
}

static int routing_section(page *p, const cJSON *root, const char *src) {
    FILE *f = p->f;
    const cJSON *doms = cJSON_GetObjectItemCaseSensitive(root, "domains");
    int D = cJSON_GetArraySize(doms);
    const char **names = calloc((size_t)D, sizeof *names);
    if (!names) return -1;
    int d = 0;
    for (const cJSON *x = doms->child; x; x = x->next) names[d++] = cJSON_GetObjectItemCaseSensitive(x, "name")->valuestring;
    section(f, "Routing by domain", NULL);
    fputs("<p class=\"note\">From <code>", f);
    svg_escape(f, src);
    fprintf(f, "</code>: %.0f tokens", num_of(root, "tokens"));
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(root, "split");
    if (cJSON_IsString(split)) {
        fputs(" of the ", f);
        svg_escape(f, split->valuestring);
        fputs(" split", f);
    }
    fputs(". Each row is a domain, each cell the share of that domain's (token, slot) pairs sent to the "
          "expert. I(domain; expert) is the mutual information of the two over all pairs, in bits; "
          "0 means the router ignores the domain. One colour scale for all layers (0 to the largest "
          "share in any layer).</p>\n", f);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    int grouped = 0;
    for (const cJSON *l = layers->child; l; l = l->next) grouped |= layer_groups(l, D) != NULL;
    fputs("<table><tr><th>layer</th><th>I(domain; expert)</th><th>bound log2(min(D, E))</th>", f);
    if (grouped) fputs("<th>I(domain; group)</th><th>bound log2(min(D, G))</th><th>groups kept (share of tokens)</th>", f);
    fputs("</tr>\n", f);
    for (const cJSON *l = layers->child; l; l = l->next) {
        double E = num_of(l, "n_experts");
        fprintf(f, "<tr><td>%.0f</td><td>%.4f bits</td><td>%.4f bits</td>", num_of(l, "layer"),
                num_of(l, "mi_bits"), log2(D < E ? D : E));
        const cJSON *g = layer_groups(l, D);
        if (g) {
            double G = num_of(g, "n_group");
            fprintf(f, "<td>%.4f bits</td><td>%.4f bits</td><td>", num_of(g, "mi_bits"), log2(D < G ? D : G));
            int k = 0;
            for (const cJSON *x = cJSON_GetObjectItemCaseSensitive(g, "share")->child; x; x = x->next, k++)
                fprintf(f, "%s%d: %.0f%%", k ? ", " : "", k, 100 * x->valuedouble);
            fputs("</td>", f);
        } else if (grouped) {
            fputs("<td></td><td></td><td></td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    /* one colour scale for every layer: the largest share of any */
    double vmax = 0;
    for (const cJSON *l = layers->child; l; l = l->next)
        for (const cJSON *row = cJSON_GetObjectItemCaseSensitive(l, "domain_counts")->child; row;
             row = row->next) {
            double total = 0;
            for (const cJSON *x = row->child; x; x = x->next) total += x->valuedouble;
            for (const cJSON *x = row->child; x && total > 0; x = x->next)
                if (x->valuedouble / total > vmax) vmax = x->valuedouble / total;
        }
    for (const cJSON *l = layers->child; l; l = l->next) {
        int layer = (int)num_of(l, "layer");
        char title[160];
        snprintf(title, sizeof title, "Layer %d: I(domain; expert) = %.4f bits", layer, num_of(l, "mi_bits"));
        int fail = domain_heatmap(f, cJSON_GetObjectItemCaseSensitive(l, "domain_counts"), D,
                                  (int)num_of(l, "n_experts"), names, layer, "expert", title,
                                  "% of the domain's pairs", vmax,
                                  cJSON_GetObjectItemCaseSensitive(l, "top_tokens"));
        const cJSON *g = layer_groups(l, D);
        if (!fail && g) { /* groups: each domain's group choices, on their own scale */
            snprintf(title, sizeof title, "Layer %d: groups kept (%.0f of %.0f), I(domain; group) = %.4f bits",
                     layer, num_of(g, "topk_group"), num_of(g, "n_group"), num_of(g, "mi_bits"));
            fail = domain_heatmap(f, cJSON_GetObjectItemCaseSensitive(g, "domain_counts"), D,
                                  (int)num_of(g, "n_group"), names, layer, "group", title,
                                  "% of the domain's group choices", 0, NULL);
        }
        if (fail) {
            free(names);
            return -1;
        }
    }
    free(names);
    return 0;
}

/* Routing statistics: --route-json FILE, else computed with --route-data,
 * else RUN/route.json if it exists; *root NULL when there are none. */
static int load_route(const char *run, const char *json_path, const route_data_opts *ro, cJSON **root,
                      char *src, size_t src_size) {
    *root = NULL;
    char path[4096];
    struct stat st;
    if (!json_path && !ro->data_dir) {
        snprintf(path, sizeof path, "%s/route.json", run);
        if (stat(path, &st) != 0) return 0;
        json_path = path;
    }
    if (json_path) {
        FILE *f = fopen(json_path, "rb");
        if (!f) {
            cli_error("report", "%s: %s", json_path, strerror(errno));
            return 1;
        }
        char *buf = NULL;
        size_t n = 0, cap = 0, got;
        char chunk[65536];
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
            if (n + got + 1 > cap) {
                cap = (n + got + 1) * 2;
                char *b = realloc(buf, cap);
                if (!b) break;
                buf = b;
            }
            memcpy(buf + n, chunk, got);
            n += got;
        }
        fclose(f);
        if (!buf) {
            cli_error("report", "%s: empty file", json_path);
            return 1;
        }
        buf[n] = 0;
        *root = cJSON_ParseWithLength(buf, n);
        free(buf);
        if (!*root) {
            cli_error("report", "%s: not valid JSON", json_path);
            return 1;
        }
        snprintf(src, src_size, "%s", json_path);
    } else {
        int code;
        *root = route_data_run("report", ro, &code);
        if (!*root) return code;
        snprintf(src, src_size, "%s (%s split, model %s)", ro->data_dir, ro->split, ro->model);
    }
    char why[4096 + 512];
    if (route_check(*root, src, why, sizeof why)) {
        cli_error("report", "%s", why);
        cJSON_Delete(*root);
        *root = NULL;
        return 1;
    }
    return 0;
}

int cmd_report(int argc, char **argv) {
    const char *out = NULL, *route_dir = NULL, *route_json = NULL, *split = "val";
    int max_tokens = 16384, threads = 0;
    const arg_opt opts[] = {
        {"--out", "-o", ARG_STR, &out, 0, 0, 0, "FILE.html", "where to write the page (RUN_DIR/report.html)"},
        {"--route-data", NULL, ARG_STR, &route_dir, 0, 0, 0, "DIR",
         "run RUN_DIR/latest over this 'moe data' directory for the routing section"},
        {"--route-split", NULL, ARG_STR, &split, 0, 0, 0, "NAME", "shard of --route-data: val or train (val)"},
        {"--route-max-tokens", NULL, ARG_INT, &max_tokens, 0, 1 << 30, 0, "N",
         "tokens of --route-data to route, in windows spread over the shard; 0 = all (16384)"},
        {"--route-json", NULL, ARG_STR, &route_json, 0, 0, 0, "FILE",
         "routing statistics saved from 'moe route --data' (default RUN_DIR/route.json if present)"},
        ARG_THREADS(&threads, "-t", "threads for --route-data, 0 = online CPUs (0)"),
    };
    const arg_cmd c = {
        "report", "RUN_DIR [--route-data DIR] [--out FILE.html]",
        "Write one self-contained HTML page (inline SVG, no scripts, no external files) about a\n"
        "training run from RUN_DIR/log.jsonl: train and val loss, balancing losses, learning\n"
        "rate, tokens/s, gradient norm, per-layer expert load over time, max violation, dead\n"
        "experts, router entropy, dropped pairs; and with routing statistics a domain x expert\n"
        "heatmap per layer with I(domain; expert).",
        "Routing statistics come from --route-json FILE, else from running RUN_DIR/latest over\n"
        "--route-data DIR, else from RUN_DIR/route.json when it exists (save 'moe route\n"
        "RUN_DIR/latest --data DIR' output there). The page's path is printed on stdout.",
        opts, (int)(sizeof opts / sizeof opts[0]), 1, 1, "RUN_DIR"};
    const char *pos[1];
    int np;
    int rc = args_parse(&c, argc, argv, pos, &np);
    if (rc != ARGS_OK) return args_exit(rc);
    if (strcmp(split, "val") && strcmp(split, "train")) {
        cli_error("report", "--route-split: '%s' is not val or train", split);
        return 2;
    }
    if (route_dir && route_json) {
        cli_error("report", "--route-data and --route-json exclude each other");
        return 2;
    }
    const char *run = pos[0];
    struct stat st;
    if (stat(run, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cli_error("report", "%s: %s", run,
                  stat(run, &st) != 0 ? "no such run directory (expected the --out of 'moe train')"
                                      : "not a directory");
        return 1;
    }
    char log_path[4096], out_path[4096], model[4096], why[1024], src[4096];
    snprintf(log_path, sizeof log_path, "%s/log.jsonl", run);
    snprintf(out_path, sizeof out_path, "%s/report.html", run);
    snprintf(model, sizeof model, "%s/latest", run);
    if (!out) out = out_path;
    report_log r;
    if (report_log_read(&r, log_path, why, sizeof why)) {
        cli_error("report", "%s", why);
        return 1;
    }
    route_data_opts ro = {model, route_dir, split, NULL, max_tokens, 0, 10, threads, NULL};
    cJSON *route = NULL;
    int code = load_route(run, route_json, &ro, &route, src, sizeof src);
    if (code) {
        report_log_free(&r);
        return code;
    }
    /* written to a temporary file beside the target, renamed when whole */
    moe_file_out *fo = NULL;
    FILE *f = NULL;
    moe_err err = {{0}};
    if (moe_file_out_open(&fo, out, &f, &err) != 0) {
        cli_error("report", "%s", err.msg);
        report_log_free(&r);
        cJSON_Delete(route);
        return 1;
    }
    page p = {f, 1};
    page_head(f, run);
    summary(&p, &r, run);
    loss_section(&p, &r);
    schedule_section(&p, &r);
    int bad = load_section(&p, &r) || balance_section(&p, &r) || (route && routing_section(&p, route, src));
    fputs("</body></html>\n", f);
    if (fflush(f) || ferror(f)) bad = 1;
    report_log_free(&r);
    cJSON_Delete(route);
    if (bad) {
        moe_file_out_abort(fo);
        cli_error("report", "%s: out of memory or write error", out);
        return 1;
    }
    if (moe_file_out_commit(fo, &err) != 0) {
        cli_error("report", "%s", err.msg);
        return 1;
    }
    printf("%s\n", out);
    return 0;
}
