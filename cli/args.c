/*
 * args.c - see args.h. Accepted forms: "--name value", "--name=value",
 * "-p value"; options and positional arguments may be mixed; "--" makes the
 * rest positional (for a TEXT starting with '-'). A lone "-" is positional.
 */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage_hint(const arg_cmd *c) {
    fprintf(stderr, "run 'moe %s --help' for usage\n", c->name);
}

int args_int(const char *s, long long min, long long max, long long *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s) return -1;
    if (v < min || v > max) return -1;
    *out = v;
    return 0;
}

static const arg_opt *find_opt(const arg_cmd *c, const char *name, size_t len) {
    for (int i = 0; i < c->n_opts; i++) {
        const arg_opt *o = &c->opts[i];
        if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
        if (o->alias && strlen(o->alias) == len && !strncmp(o->alias, name, len)) return o;
    }
    return NULL;
}

static void range_text(const arg_opt *o, char *buf, size_t n) {
    if (o->kind == ARG_INT)
        snprintf(buf, n, "[%.0f, %.0f]", o->min, o->max);
    else
        snprintf(buf, n, "%s%g, %g]", o->min_open ? "(" : "[", o->min, o->max);
}

/* Store value v of option o; print the problem and return -1 if it is bad. */
static int set_value(const arg_cmd *c, const arg_opt *o, const char *v) {
    char *end;
    char range[96];
    switch (o->kind) {
    case ARG_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case ARG_STR:
        *(const char **)o->dst = v;
        return 0;
    case ARG_INT: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno == EINVAL) {
            fprintf(stderr, "moe %s: %s: '%s' is not an integer\n", c->name, o->name, v);
            return -1;
        }
        if (errno == ERANGE || (double)x < o->min || (double)x > o->max) {
            range_text(o, range, sizeof range);
            fprintf(stderr, "moe %s: %s: %s is out of range %s\n", c->name, o->name, v, range);
            return -1;
        }
        *(int *)o->dst = (int)x;
        return 0;
    }
    case ARG_U64: {
        errno = 0;
        unsigned long long x = strtoull(v, &end, 0);
        if (!*v || *end || v[0] == '-' || errno) {
            fprintf(stderr, "moe %s: %s: '%s' is not an unsigned 64-bit integer\n", c->name,
                    o->name, v);
            return -1;
        }
        *(uint64_t *)o->dst = (uint64_t)x;
        return 0;
    }
    case ARG_FLOAT: {
        errno = 0;
        double x = strtod(v, &end);
        if (!*v || *end || !isfinite(x)) {
            fprintf(stderr, "moe %s: %s: '%s' is not a number\n", c->name, o->name, v);
            return -1;
        }
        if (x > o->max || x < o->min || (o->min_open && x == o->min)) {
            range_text(o, range, sizeof range);
            fprintf(stderr, "moe %s: %s: %s is out of range %s\n", c->name, o->name, v, range);
            return -1;
        }
        *(float *)o->dst = (float)x;
        return 0;
    }
    }
    return -1;
}

int args_parse(const arg_cmd *c, int argc, char **argv, const char **pos, int *n_pos) {
    int np = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            args_help(c);
            return ARGS_HELP;
        }
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (only_pos || a[0] != '-' || a[1] == 0) {
            if (np >= c->n_pos_max) {
                fprintf(stderr, "moe %s: unexpected argument '%s' (expected %s)\n", c->name, a,
                        c->pos_names && *c->pos_names ? c->pos_names : "no arguments");
                usage_hint(c);
                return ARGS_ERR;
            }
            pos[np++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq && a[1] == '-' ? (size_t)(eq - a) : strlen(a);
        const arg_opt *o = find_opt(c, a, len);
        if (!o) {
            fprintf(stderr, "moe %s: unknown option '%.*s'\n", c->name, (int)len, a);
            usage_hint(c);
            return ARGS_ERR;
        }
        const char *v = NULL;
        if (o->kind == ARG_FLAG) {
            if (len != strlen(a)) {
                fprintf(stderr, "moe %s: %s takes no value\n", c->name, o->name);
                return ARGS_ERR;
            }
        } else if (len != strlen(a)) {
            v = a + len + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            fprintf(stderr, "moe %s: %s needs a value (%s)\n", c->name, o->name,
                    o->meta ? o->meta : "VALUE");
            usage_hint(c);
            return ARGS_ERR;
        }
        if (set_value(c, o, v)) return ARGS_ERR;
    }
    if (np < c->n_pos_min) {
        fprintf(stderr, "moe %s: missing argument%s: expected %s\n", c->name,
                c->n_pos_min - np > 1 ? "s" : "", c->pos_names ? c->pos_names : "arguments");
        usage_hint(c);
        return ARGS_ERR;
    }
    *n_pos = np;
    return ARGS_OK;
}

void args_help(const arg_cmd *c) {
    printf("usage: moe %s %s\n\n%s\n", c->name, c->usage, c->summary);
    if (c->n_opts) printf("\noptions:\n");
    for (int i = 0; i < c->n_opts; i++) {
        const arg_opt *o = &c->opts[i];
        char lhs[64];
        snprintf(lhs, sizeof lhs, "%s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "",
                 o->name, o->kind == ARG_FLAG ? "" : " ",
                 o->kind == ARG_FLAG ? "" : (o->meta ? o->meta : "VALUE"));
        printf("  %-22s %s\n", lhs, o->help);
    }
    printf("  %-22s %s\n", "-h, --help", "show this help");
    if (c->details) printf("\n%s\n", c->details);
}
