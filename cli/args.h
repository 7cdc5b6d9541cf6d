/*
 * args.h - the one argument parser every `moe` command uses. A command
 * describes its options in a table (name, kind, destination, range, help);
 * args_parse fills the destinations, collects positional arguments, prints
 * --help from the same table, and reports every misuse (unknown option,
 * missing value, not a number, out of range, missing or extra argument) to
 * stderr as "moe CMD: ...". Nothing here is global.
 */
#ifndef MOE_CLI_ARGS_H
#define MOE_CLI_ARGS_H

#include <stdint.h>

#include "moe.h"

typedef enum {
    ARG_FLAG,  /* no value; *(int *)dst = 1 */
    ARG_INT,   /* *(int *)dst, range [min, max] */
    ARG_U64,   /* *(uint64_t *)dst, any unsigned 64-bit value */
    ARG_FLOAT, /* *(float *)dst, finite, range [min, max] (min excluded if min_open) */
    ARG_STR,   /* *(const char **)dst = the argument itself */
} arg_kind;

typedef struct arg_opt {
    const char *name;  /* long form, "--temp" */
    const char *alias; /* short form, "-p", or NULL */
    arg_kind kind;
    void *dst;
    double min, max;   /* inclusive range for ARG_INT / ARG_FLOAT */
    int min_open;      /* 1: the range excludes min, (min, max] */
    const char *meta;  /* value name in help, "T" */
    const char *help;  /* one line */
} arg_opt;

typedef struct arg_cmd {
    const char *name;     /* "generate" */
    const char *usage;    /* after "moe generate ": "MODEL -p TEXT [options]" */
    const char *summary;  /* one line: what the command does */
    const char *details;  /* more text after the options, or NULL */
    const arg_opt *opts;
    int n_opts;
    int n_pos_min, n_pos_max; /* positional argument count bounds */
    const char *pos_names;    /* "MODEL TEXT", for the missing-argument message */
} arg_cmd;

/* The --threads option of every command that starts threads: 0 (all online
 * CPUs) .. MOE_MAX_THREADS, so the parser refuses what the library would. */
#define ARG_THREADS(dst, alias, help) \
    {"--threads", alias, ARG_INT, dst, 0, MOE_MAX_THREADS, 0, "N", help}

enum { ARGS_OK = 0, ARGS_HELP = 1, ARGS_ERR = -1 };

/* Parse argv[1..argc) (argv[0] is the command name). Positional arguments
 * go to pos[0..*n_pos) (pos must hold n_pos_max entries). "--" ends the
 * options. Returns ARGS_OK, ARGS_HELP (help printed to stdout: exit 0) or
 * ARGS_ERR (message printed to stderr: exit 2). */
int args_parse(const arg_cmd *c, int argc, char **argv, const char **pos, int *n_pos);

/* Print the help of c to stdout. */
void args_help(const arg_cmd *c);

/* Exit code for a parse result other than ARGS_OK: 0 after help, 2 after a usage error. */
static inline int args_exit(int r) { return r == ARGS_HELP ? 0 : 2; }

/* Numbers with the same checks as options, for positional arguments and
 * lists: 0 on success, -1 if s is not an integer / not in [min, max]. */
int args_int(const char *s, long long min, long long max, long long *out);

#endif
