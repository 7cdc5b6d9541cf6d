/*
 * report_log.c - read a `moe train` JSONL log into columns (report_log.h).
 * Lines are parsed one at a time with cJSON, so memory is what the columns
 * hold; the per-expert loads, the big part, are kept for every k-th record
 * when a long run would need more than REPORT_LOAD_BYTES.
 */
#include "report_log.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_LOAD_BYTES ((size_t)256 << 20)
#define REPORT_MAX_EXPERTS 65536
#define REPORT_MAX_LAYERS 4096

static const char *const col_key[RL_N_COLS] = {
    "step", "loss", "ce", "aux_loss", "z_loss", "kl_loss", "lr", "grad_norm", "tokens_per_s",
    "dropped_frac", "router_entropy", "val_loss", "tokens", "step_s"};

static int fail(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -1;
}

void report_log_free(report_log *r) {
    for (int c = 0; c < RL_N_COLS; c++) free(r->col[c]);
    for (int l = 0; l < r->n_layers; l++) {
        free(r->layer[l].viol);
        free(r->layer[l].dead);
        free(r->layer[l].frac);
    }
    free(r->layer);
    memset(r, 0, sizeof *r);
}

static int grow_layer(rl_layer *L, int old_cap, int cap, int stride) {
    double *v = realloc(L->viol, sizeof *v * (size_t)cap);
    if (v) L->viol = v;
    double *d = realloc(L->dead, sizeof *d * (size_t)cap);
    if (d) L->dead = d;
    size_t old_slots = (size_t)((old_cap + stride - 1) / stride), slots = (size_t)((cap + stride - 1) / stride);
    float *fr = realloc(L->frac, sizeof *fr * slots * (size_t)L->E);
    if (fr) L->frac = fr;
    if (!v || !d || !fr) return -1;
    for (int i = old_cap; i < cap; i++) L->viol[i] = L->dead[i] = NAN;
    for (size_t i = old_slots * (size_t)L->E; i < slots * (size_t)L->E; i++) L->frac[i] = NAN;
    return 0;
}

static int grow(report_log *r) {
    int cap = r->cap ? r->cap * 2 : 256;
    for (int c = 0; c < RL_N_COLS; c++) {
        double *p = realloc(r->col[c], sizeof *p * (size_t)cap);
        if (!p) return -1;
        r->col[c] = p;
    }
    for (int l = 0; l < r->n_layers; l++)
        if (grow_layer(&r->layer[l], r->cap, cap, r->load_stride)) return -1;
    r->cap = cap;
    return 0;
}

/* The layer with decoder index id, added (NaN history) when first seen. */
static rl_layer *layer_of(report_log *r, int id, int E) {
    for (int l = 0; l < r->n_layers; l++)
        if (r->layer[l].layer == id) return &r->layer[l];
    if (r->n_layers >= REPORT_MAX_LAYERS) return NULL;
    rl_layer *p = realloc(r->layer, sizeof *p * (size_t)(r->n_layers + 1));
    if (!p) return NULL;
    r->layer = p;
    rl_layer *L = &p[r->n_layers];
    memset(L, 0, sizeof *L);
    L->layer = id;
    L->E = E;
    if (grow_layer(L, 0, r->cap, r->load_stride)) {
        free(L->viol);
        free(L->dead);
        free(L->frac);
        return NULL;
    }
    r->n_layers++;
    return L;
}

/* A numeric field or NaN; -1 if present but not a number (or null). */
static int num_field(const cJSON *o, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NAN;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return -1;
    *out = v->valuedouble;
    return 0;
}

static int read_layers(report_log *r, const cJSON *arr, int i, const char *path, int line, char *why,
                       size_t n) {
    if (!arr) return 0;
    if (!cJSON_IsArray(arr)) return fail(why, n, "%s:%d: \"layers\" is not an array", path, line);
    int k = 0;
    for (const cJSON *o = arr->child; o; o = o->next, k++) {
        double id, viol, dead;
        const cJSON *load = cJSON_GetObjectItemCaseSensitive(o, "load");
        if (!cJSON_IsObject(o) || num_field(o, "layer", &id) || !isfinite(id) || id < 0 ||
            id >= REPORT_MAX_LAYERS || id != floor(id))
            return fail(why, n, "%s:%d: layers[%d] has no integer \"layer\"", path, line, k);
        if (num_field(o, "max_violation", &viol) || num_field(o, "dead", &dead))
            return fail(why, n, "%s:%d: layers[%d]: max_violation / dead is not a number", path, line, k);
        int E = load ? cJSON_GetArraySize(load) : 0;
        if (!cJSON_IsArray(load) || E < 1 || E > REPORT_MAX_EXPERTS)
            return fail(why, n, "%s:%d: layers[%d]: \"load\" is not an array of 1..%d counts", path, line,
                        k, REPORT_MAX_EXPERTS);
        rl_layer *L = layer_of(r, (int)id, E);
        if (!L) return fail(why, n, "%s:%d: out of memory", path, line);
        if (L->E != E)
            return fail(why, n, "%s:%d: layer %d has %d expert loads, earlier lines %d", path, line,
                        (int)id, E, L->E);
        L->viol[i] = viol;
        L->dead[i] = dead;
        if (i % r->load_stride) continue;
        double total = 0;
        for (const cJSON *x = load->child; x; x = x->next) {
            if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0))
                return fail(why, n, "%s:%d: layer %d: a load is not a count", path, line, (int)id);
            total += x->valuedouble;
        }
        float *fr = L->frac + (size_t)(i / r->load_stride) * (size_t)E;
        int e = 0;
        for (const cJSON *x = load->child; x; x = x->next, e++)
            fr[e] = total > 0 ? (float)(x->valuedouble / total) : NAN;
    }
    return 0;
}

static int blank(const char *s) {
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

/* Record number i from one parsed line. */
static int read_record(report_log *r, const cJSON *o, const char *path, int line, char *why, size_t n) {
    double step;
    if (num_field(o, "step", &step) || !isfinite(step))
        return fail(why, n, "%s:%d: no numeric \"step\"", path, line);
    /* a resumed run repeats steps: its records replace the earlier ones */
    while (r->n > 0 && r->col[RL_STEP][r->n - 1] >= step) r->n--;
    if (r->n == r->cap && grow(r)) return fail(why, n, "%s:%d: out of memory", path, line);
    int i = r->n;
    for (int c = 0; c < RL_N_COLS; c++)
        if (num_field(o, col_key[c], &r->col[c][i]))
            return fail(why, n, "%s:%d: \"%s\" is not a number", path, line, col_key[c]);
    for (int l = 0; l < r->n_layers; l++) {
        rl_layer *L = &r->layer[l];
        L->viol[i] = L->dead[i] = NAN;
        if (i % r->load_stride == 0)
            for (int e = 0; e < L->E; e++) L->frac[(size_t)(i / r->load_stride) * L->E + e] = NAN;
    }
    if (read_layers(r, cJSON_GetObjectItemCaseSensitive(o, "layers"), i, path, line, why, n)) return -1;
    r->n++;
    return 0;
}

int report_log_read(report_log *r, const char *path, char *why, size_t why_size) {
    memset(r, 0, sizeof *r);
    r->load_stride = 1;
    FILE *f = fopen(path, "r");
    if (!f) return fail(why, why_size, "%s: %s", path, strerror(errno));
    /* first pass: lines and the longest, to bound the loads kept */
    char *buf = NULL;
    size_t bcap = 0;
    ssize_t len;
    size_t lines = 0, longest = 0;
    while ((len = getline(&buf, &bcap, f)) > 0) {
        lines++;
        if ((size_t)len > longest) longest = (size_t)len;
    }
    /* a load count takes at least 2 bytes of a line ("0,"): floats per line <= len / 2 */
    size_t load_bytes = lines * (longest / 2) * sizeof(float);
    if (load_bytes > REPORT_LOAD_BYTES) r->load_stride = (int)(load_bytes / REPORT_LOAD_BYTES + 1);
    rewind(f);
    int rc = 0, line = 0;
    while (rc == 0 && (len = getline(&buf, &bcap, f)) > 0) {
        line++;
        if (blank(buf)) continue;
        if (memchr(buf, 0, (size_t)len)) {
            rc = fail(why, why_size, "%s:%d: a NUL byte (not a text log)", path, line);
            break;
        }
        cJSON *o = cJSON_Parse(buf);
        if (!o || !cJSON_IsObject(o))
            rc = fail(why, why_size, "%s:%d: not a JSON object%s", path, line,
                      o ? "" : " (invalid JSON)");
        else
            rc = read_record(r, o, path, line, why, why_size);
        cJSON_Delete(o);
    }
    if (rc == 0 && ferror(f)) rc = fail(why, why_size, "%s: read error: %s", path, strerror(errno));
    free(buf);
    fclose(f);
    r->lines = line;
    if (rc == 0 && r->n == 0) rc = fail(why, why_size, "%s: no step records (empty log?)", path);
    if (rc) report_log_free(r);
    return rc;
}
