/*
 * util.c - helpers the commands share (see cli.h): loading with actionable
 * messages, id lists, human-readable sizes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "moe_train.h"
#include "moe_file.h"

void cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "moe %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_warn_positions(const char *cmd, const char *path, const moe_model *m, int ctx) {
    const int max_pos = moe_model_config(m)->max_pos;
    if (max_pos <= 0 || ctx <= max_pos) return;
    fprintf(stderr,
            "moe %s: warning: a context of %d tokens is longer than the %d positions %s was "
            "trained for (max_position_embeddings); positions %d and on are run all the same, "
            "with rotary angles the model never saw, and their predictions are usually worse\n",
            cmd, ctx, max_pos, path, max_pos);
}

static int path_exists(const char *cmd, const char *path, struct stat *st) {
    if (stat(path, st) == 0) return 0;
    cli_error(cmd, "%s: %s", path,
              errno == ENOENT ? "no such file or directory (expected a model directory with "
                                "config.json and *.safetensors)"
                              : strerror(errno));
    return -1;
}

int cli_load_model(const char *cmd, const char *path, moe_model **m) {
    return cli_load_model_opts(cmd, path, NULL, m);
}

int cli_load_model_opts(const char *cmd, const char *path, const moe_load_opts *o, moe_model **m) {
    struct stat st;
    if (path_exists(cmd, path, &st)) return -1;
    moe_err err = {{0}};
    if (moe_model_load_opts(m, path, o, &err)) {
        if (o && strstr(err.msg, "below the minimum"))
            cli_error(cmd, "--mem: %s", err.msg);
        else
            cli_error(cmd, "cannot load model: %s", err.msg);
        return -1;
    }
    return 0;
}

int cli_load_tokenizer(const char *cmd, const char *path, moe_tokenizer **t) {
    struct stat st;
    if (path_exists(cmd, path, &st)) return -1;
    if (S_ISDIR(st.st_mode)) {
        char file[4096];
        struct stat fst;
        snprintf(file, sizeof file, "%s/tokenizer.json", path);
        if (stat(file, &fst) != 0) {
            cli_error(cmd,
                      "no tokenizer: %s not found (copy tokenizer.json from the model's "
                      "Hugging Face repository into the model directory)",
                      file);
            return -1;
        }
    }
    moe_err err = {{0}};
    if (moe_tokenizer_load(t, path, &err)) {
        cli_error(cmd, "cannot load tokenizer: %s", err.msg);
        return -1;
    }
    return 0;
}

int cli_parse_ids(const char *cmd, const char *what, const char *s, int32_t **ids, int *n) {
    *ids = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',' || isspace((unsigned char)*p);
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) {
        cli_error(cmd, "out of memory");
        return -1;
    }
    int k = 0;
    const char *p = s;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || (*end && *end != ',' && !isspace((unsigned char)*end))) {
            cli_error(cmd, "%s: '%s' is not a list of token ids like 1,2,3", what, s);
            free(v);
            return -1;
        }
        if (errno == ERANGE || x < 0 || x > INT32_MAX) {
            cli_error(cmd, "%s: token id %.*s is out of range [0, %d]", what, (int)(end - p), p,
                      INT32_MAX);
            free(v);
            return -1;
        }
        v[k++] = (int32_t)x;
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') {
            p++;
            while (isspace((unsigned char)*p)) p++;
            if (!*p || *p == ',') {
                cli_error(cmd, "%s: '%s' has an empty entry", what, s);
                free(v);
                return -1;
            }
        }
    }
    if (k == 0) {
        cli_error(cmd, "%s: no token ids given", what);
        free(v);
        return -1;
    }
    *ids = v;
    *n = k;
    return 0;
}

const char *cli_bytes(int64_t n, char *buf, size_t size) {
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)n;
    int u = 0;
    while (x >= 1024 && u < 4) {
        x /= 1024;
        u++;
    }
    if (u == 0) snprintf(buf, size, "%lld B", (long long)n);
    else snprintf(buf, size, "%.2f %s", x, unit[u]);
    return buf;
}

const char *cli_count(int64_t n, char *buf, size_t size) {
    double x = (double)n;
    if (x >= 1e9) snprintf(buf, size, "%.2f B", x / 1e9);
    else if (x >= 1e6) snprintf(buf, size, "%.2f M", x / 1e6);
    else if (x >= 1e3) snprintf(buf, size, "%.2f K", x / 1e3);
    else snprintf(buf, size, "%lld", (long long)n);
    return buf;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cli_median(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cli_read_file(const char *path, size_t max_bytes, char **out, size_t *len, moe_err *err) {
    size_t n = 0;
    int rc = moe_file_read(path, max_bytes, out, &n, err);
    if (len) *len = rc ? 0 : n;
    return rc;
}

int cli_apply_lora(const char *cmd, moe_model *m, const char *dir, struct moe_lora **l) {
    *l = NULL;
    if (!dir) return 0;
    moe_err err = {{0}};
    if (moe_lora_apply(m, dir, l, &err)) {
        cli_error(cmd, "--lora %s: %s", dir, err.msg);
        return -1;
    }
    return 0;
}
