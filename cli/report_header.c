/*
 * report_header.c - the settings at the head of `moe report`'s page: the
 * model's shape and router from config.json (read by the library, as a
 * model load reads it; the "moe" object shown as written), the training
 * shape from the log and RUN/latest/trainer_state.json, the wall time.
 */
#include "report_header.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "moe_init.h"
#include "svg.h"

static void row(FILE *f, const char *name, const char *text) {
    fputs("<tr><th>", f);
    svg_escape(f, name);
    fputs("</th><td>", f);
    svg_escape(f, text);
    fputs("</td></tr>\n", f);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static const char *kind_name(moe_route_kind k) {
    return k == MOE_ROUTE_EXPERT_CHOICE ? "expert choice" : k == MOE_ROUTE_HASH ? "hash"
                                                                                : "token choice";
}

/* The JSON of config.json's "moe" object, or NULL (malloc'd). */
static char *moe_key(const char *path) {
    char *text = NULL, *out = NULL;
    size_t len = 0;
    moe_err err = {{0}};
    if (cli_read_file(path, (size_t)1 << 24, &text, &len, &err)) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "moe");
    if (m) out = cJSON_PrintUnformatted(m);
    cJSON_Delete(root);
    free(text);
    return out;
}

/* One MoE layer's router: "4 experts, top-2, softmax, token choice, dropless". */
static void router_text(const moe_layer_config *l, char *b, size_t n) {
    int o = snprintf(b, n, "%d experts, top-%d, %s, %s, ", l->n_experts, l->top_k,
                     l->score == MOE_SCORE_SIGMOID ? "sigmoid" : "softmax", kind_name(l->kind));
    if (l->capacity_factor > 0) o += snprintf(b + o, n - (size_t)o, "capacity factor %.3g", l->capacity_factor);
    else o += snprintf(b + o, n - (size_t)o, "dropless");
    if (l->noise > 0) o += snprintf(b + o, n - (size_t)o, ", noise %.3g", l->noise);
    if (l->n_shared) snprintf(b + o, n - (size_t)o, ", %d shared expert%s", l->n_shared, l->n_shared > 1 ? "s" : "");
}

static void model_rows(FILE *f, const char *run) {
    char dir[4096], path[4200], b[1024];
    snprintf(dir, sizeof dir, "%s", run);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!exists(path)) {
        snprintf(dir, sizeof dir, "%s/latest", run);
        snprintf(path, sizeof path, "%s/config.json", dir);
    }
    moe_config *c = malloc(sizeof *c);
    moe_err err = {{0}};
    if (!c || moe_config_load(c, dir, &err)) {
        row(f, "model", c ? err.msg : "out of memory");
        free(c);
        return;
    }
    row(f, "config", path);
    snprintf(b, sizeof b, "%s: %d layers, dim %d, %d heads (%d KV, head dim %d), vocab %d, "
             "%d positions", c->model_type, c->n_layers, c->dim, c->n_heads, c->n_kv_heads,
             c->head_dim, c->vocab, c->max_pos);
    row(f, "model", b);
    int first = -1, n_moe = 0, same = 1;
    for (int i = 0; i < c->n_layers; i++) {
        if (!c->layer[i].moe) continue;
        if (first < 0) first = i;
        else same &= !memcmp(&c->layer[i], &c->layer[first], sizeof c->layer[i]);
        n_moe++;
    }
    if (first < 0) row(f, "router", "no MoE layer");
    else {
        char r[512];
        router_text(&c->layer[first], r, sizeof r);
        snprintf(b, sizeof b, "%s (%d of %d layers MoE%s)", r, n_moe, c->n_layers,
                 same ? "" : "; the first shown, the others differ");
        row(f, "router", b);
    }
    char *m = moe_key(path);
    row(f, "config \"moe\"", m ? m : "none (the architecture's defaults)");
    cJSON_free(m);
    free(c);
}

/* batch, seq, accum of RUN/latest/trainer_state.json; -1 if unreadable. */
static int read_state(const char *run, int *batch, int *seq, int *accum) {
    char path[4200], *text = NULL;
    size_t len = 0;
    moe_err err = {{0}};
    snprintf(path, sizeof path, "%s/latest/trainer_state.json", run);
    if (cli_read_file(path, 1 << 20, &text, &len, &err)) return -1;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "batch");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "seq");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "accum");
    int ok = cJSON_IsNumber(b) && cJSON_IsNumber(s) && b->valueint > 0 && s->valueint > 0;
    if (ok) {
        *batch = b->valueint;
        *seq = s->valueint;
        *accum = cJSON_IsNumber(a) && a->valueint > 0 ? a->valueint : 1;
    }
    cJSON_Delete(j);
    return ok ? 0 : -1;
}

/* "12.3 s", "4 min 05 s", "2 h 03 min". */
static void duration(double s, char *b, size_t n) {
    if (s < 60) snprintf(b, n, "%.1f s", s);
    else if (s < 3600) snprintf(b, n, "%d min %02d s", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(b, n, "%d h %02d min", (int)(s / 3600), (int)fmod(s / 60, 60));
}

static void training_rows(FILE *f, const report_log *r, const char *run) {
    char b[1024], t[64];
    int last = r->n - 1, batch = 0, seq = 0, accum = 1;
    int have_state = read_state(run, &batch, &seq, &accum) == 0;
    double step = r->col[RL_STEP][last], tokens = r->col[RL_TOKENS][last];
    /* tokens a step: batch x seq x accum, else as the log counts them */
    double per_step = have_state ? (double)batch * seq * accum
                      : isfinite(tokens) && step > 0 ? tokens / step : NAN;
    if (!isfinite(tokens) && isfinite(per_step)) tokens = per_step * step;
    int o = snprintf(b, sizeof b, "%.0f steps", step);
    if (isfinite(tokens)) o += snprintf(b + o, sizeof b - (size_t)o, ", %.0f tokens trained", tokens);
    if (have_state)
        snprintf(b + o, sizeof b - (size_t)o, "; batch %d x seq %d%s", batch, seq,
                 accum > 1 ? (snprintf(t, sizeof t, " x %d micro-batches", accum), t) : "");
    else if (isfinite(per_step))
        snprintf(b + o, sizeof b - (size_t)o, "; %.0f tokens a step (batch x seq not recorded)",
                 per_step);
    row(f, "training", b);
    /* wall time: the steps' own times; a log without step_s: tokens / tokens_per_s */
    double wall = 0;
    int timed = 0, estimated = 0;
    for (int i = 0; i < r->n; i++) {
        double s = r->col[RL_STEP_S][i], tps = r->col[RL_TOKENS_PER_S][i];
        if (isfinite(s)) wall += s, timed++;
        else if (isfinite(per_step) && isfinite(tps) && tps > 0) wall += per_step / tps, estimated++;
    }
    if (!timed && !estimated) {
        row(f, "wall time", "not logged (no step_s or tokens_per_s)");
        return;
    }
    duration(wall, t, sizeof t);
    if (!estimated)
        snprintf(b, sizeof b, "%s: the sum of the %d logged steps' step_s (each step's wall "
                 "time, evaluation and checkpoints included)", t, timed);
    else
        snprintf(b, sizeof b, "%s: the sum of %d logged steps' times, %d of them as tokens a "
                 "step / tokens_per_s (compute only, no evaluation or checkpoints)", t,
                 timed + estimated, estimated);
    row(f, "wall time", b);
}

void report_header_rows(FILE *f, const report_log *r, const char *run) {
    model_rows(f, run);
    training_rows(f, r, run);
}
