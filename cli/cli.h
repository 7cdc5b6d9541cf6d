/*
 * cli.h - what the `moe` commands share: the command entry points (one
 * cmd_*.c file each, dispatched from main.c) and helpers that load a model
 * or tokenizer with messages a user can act on. Only cli/ prints and exits.
 *
 * Exit codes: 0 success, 1 the work failed (bad model file, I/O error),
 * 2 the command line was wrong.
 */
#ifndef MOE_CLI_H
#define MOE_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "moe.h"
#include "moe_cache.h"

#define MOE_VERSION "0.1.0"

int cmd_info(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_lora(int argc, char **argv);
int cmd_route(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* "moe CMD: message\n" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Load a model, saying clearly when the path does not exist. 0 or -1 (printed). */
int cli_load_model(const char *cmd, const char *path, moe_model **m);

/* The same with load options (an expert memory budget); o may be NULL. */
int cli_load_model_opts(const char *cmd, const char *path, const moe_load_opts *o, moe_model **m);

/* --lora DIR: the adapter applied to a loaded model (before any session),
 * *l to free after the model; nothing when dir is NULL. Errors printed. */
struct moe_lora;
int cli_apply_lora(const char *cmd, moe_model *m, const char *dir, struct moe_lora **l);

/* The expert memory budget options (--mem, --cache-policy, --prefetch,
 * --mem-fallback) and --repack / --no-repack of
 * the commands that run a model (cache_opts.c). ARG_CACHE(&cc) in a
 * command's option table; cli_cache_parse turns them into load options
 * (0, or -1 printed: exit 2). */
typedef struct cli_cache {
    const char *mem;    /* --mem SIZE, or NULL: no budget */
    const char *policy; /* --cache-policy */
    int prefetch;       /* --prefetch N; -1: the default */
    const char *fallback; /* --mem-fallback TYPE, or NULL: none */
    int repack;         /* --repack */
    int no_repack;      /* --no-repack */
} cli_cache;
#define CLI_CACHE_INIT {NULL, NULL, -1, NULL, 0, 0}
#define ARG_CACHE(cc)                                                                              \
    {"--mem", NULL, ARG_STR, &(cc)->mem, 0, 0, 0, "SIZE",                                         \
     "expert memory: routed experts read on demand into SIZE (e.g. 512M, 16G) (docs/CACHE.md)"},  \
    {"--cache-policy", NULL, ARG_STR, &(cc)->policy, 0, 0, 0, "P",                               \
     "with --mem: eviction policy lru, lfu or history (default history)"},                         \
    {"--prefetch", NULL, ARG_INT, &(cc)->prefetch, 0, 8, 0, "N",                                  \
     "with --mem: later MoE layers whose experts are predicted and read ahead (default "   \
     CLI_STR(MOE_CACHE_PREFETCH_DEFAULT) ")"},                                                    \
    {"--mem-fallback", NULL, ARG_STR, &(cc)->fallback, 0, 0, 0, "TYPE",                          \
     "with --mem: a resident TYPE (q2_k, q3_k, q4_k, ...) copy of every expert, inside SIZE, "   \
     "used instead of waiting for a read; changes the logits (default off)"},                     \
    {"--repack", NULL, ARG_FLAG, &(cc)->repack, 0, 0, 0, NULL,                                    \
     "pack the routed experts' q8_0, q4_k, q5_k, q6_k and iq4_xs matrices at load as the AVX2 kernels read "   \
     "them, or fail "                                                                              \
     "(prefill faster there, the same logits; needs the weights in memory, not with --mem; "     \
     "default: packed when the kernels are AVX2's and the weights are in memory)"},               \
    {"--no-repack", NULL, ARG_FLAG, &(cc)->no_repack, 0, 0, 0, NULL,                              \
     "leave every matrix as the file stores it"}
#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)
#define ARG_CACHE_N 6 /* options ARG_CACHE adds */
int cli_cache_parse(const char *cmd, const cli_cache *cc, moe_load_opts *o);
/* The cache of m (if any) becomes s's expert provider. */
void cli_cache_attach(moe_model *m, moe_session *s);
/* n more tokens ran (bytes per token). */
void cli_cache_tokens(moe_model *m, int64_t n);
/* "moe CMD: expert cache ...: hits ..., read ...\n" to f; nothing without a cache. */
void cli_cache_line(const char *cmd, const moe_model *m, FILE *f);
/* The statistics as one JSON object (null without a cache). */
void cli_cache_json(const moe_model *m, FILE *f);

/* Load the tokenizer of a model (PATH/tokenizer.json for a directory). When it
 * is missing the message names the file looked for. 0 or -1 (printed). */
int cli_load_tokenizer(const char *cmd, const char *path, moe_tokenizer **t);

/* Warn on stderr when a context of ctx tokens runs past the positions the
 * model was trained for (config max_position_embeddings), saying what
 * happens then. Nothing when it fits. */
void cli_warn_positions(const char *cmd, const char *path, const moe_model *m, int ctx);

/* Parse "1,2,3" (commas and/or whitespace) into a malloc'd array of ids in
 * [0, INT32_MAX]. 0 or -1 (printed). */
int cli_parse_ids(const char *cmd, const char *what, const char *s, int32_t **ids, int *n);

/* "1.23 GiB", "456 MiB", ... into buf. */
const char *cli_bytes(int64_t n, char *buf, size_t size);
/* "6.92 B", "1.28 B", "345.6 M", ... into buf. */
const char *cli_count(int64_t n, char *buf, size_t size);

/* Write s as a JSON string literal (quotes, escapes) to f. */
void cli_json_str(FILE *f, const char *s);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* A regular file read whole (at most max_bytes) into a malloc'd,
 * NUL-terminated buffer. 0, or -1 with err naming the file and the cause. */
int cli_read_file(const char *path, size_t max_bytes, char **out, size_t *len, moe_err *err);

/* Median of n values (sorts v in place). */
double cli_median(double *v, int n);

#endif
