/*
 * route_data.h - routing statistics of a model over a token shard (the
 * `moe route --data` JSON of docs/ROUTING.md), shared by `moe route` and
 * `moe report --route-data`, plus the small JSON helpers both use.
 */
#ifndef MOE_CLI_ROUTE_DATA_H
#define MOE_CLI_ROUTE_DATA_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>

#include "moe.h"

typedef struct route_data_opts {
    const char *model;     /* model directory */
    const char *data_dir;  /* `moe data` output */
    const char *split;     /* "val" or "train" */
    const char *tokenizer; /* tokenizer.json or directory; NULL: the model's, if it has one */
    int64_t max_tokens;    /* tokens routed, in windows spread over the shard; 0 = all */
    int seq;               /* window length; 0 = min(256, max_position_embeddings) */
    int top;               /* top tokens listed per expert */
    int threads;           /* 0 = online CPUs */
    const struct moe_load_opts *load; /* an expert memory budget, or NULL */
} route_data_opts;

/* Run the model over windows of the shard (moe_route_data_run) and build the JSON
 * object of docs/ROUTING.md ("mode": "data"). On error prints
 * "moe CMD: ..." and returns NULL with *code the exit code (1 or 2). */
cJSON *route_data_run(const char *cmd, const route_data_opts *o, int *code);

/* The text of one token as Tokenizer.decode gives it, made valid UTF-8
 * (invalid bytes -> U+FFFD, as a lone byte token of a multi-byte character
 * decodes). malloc'd; NULL if out of memory or the tokenizer refuses. */
char *route_token_text(const moe_tokenizer *t, int32_t id);

/* s[len] as valid UTF-8: each invalid byte (or NUL) -> U+FFFD. malloc'd or NULL. */
char *route_utf8_clean(const char *s, size_t len);

/* A number rounded to 6 significant decimals (keeps the JSON short). */
double route_round6(double x);

/* Print an object with one top-level key per line, and arrays of objects
 * or arrays one element per line (compact JSON each), so that the output is
 * both valid JSON and greppable line by line. 0, or -1 if out of memory. */
int route_json_print(FILE *f, const cJSON *root);

#endif
