/*
 * report_log.h - a training log (RUN/log.jsonl, one JSON object per step as
 * `moe train` writes it) read into columns for `moe report`.
 */
#ifndef MOE_CLI_REPORT_LOG_H
#define MOE_CLI_REPORT_LOG_H

#include <stddef.h>

/* Scalar columns of the log, one entry per kept step record; NaN where a
 * record lacks the field. */
enum {
    RL_STEP = 0, RL_LOSS, RL_CE, RL_AUX, RL_Z, RL_KL, RL_LR, RL_GRAD_NORM, RL_TOKENS_PER_S,
    RL_DROPPED, RL_ENTROPY, RL_VAL_LOSS, RL_TOKENS, RL_STEP_S, RL_N_COLS
};

/* One MoE layer over the run. */
typedef struct rl_layer {
    int layer;         /* decoder layer index */
    int E;             /* experts (length of each "load") */
    double *viol;      /* [n] max_violation */
    double *dead;      /* [n] dead experts */
    float *frac;       /* [n / load_stride][E] load fractions (NaN: not logged) */
} rl_layer;

typedef struct report_log {
    int n, cap;        /* step records kept */
    double *col[RL_N_COLS]; /* [cap] each */
    int n_layers;
    rl_layer *layer;   /* [n_layers], in the order first seen */
    int load_stride;   /* loads kept for every load_stride-th record (memory bound) */
    int lines;         /* lines read */
} report_log;

/* Read PATH. Steps must increase; a record whose step is not above the last
 * one (a run resumed from an earlier checkpoint) replaces the records from
 * that step on, as the resumed run did. Errors (unreadable file, a line
 * that is not a JSON object with a numeric "step", a field of the wrong
 * type, a layer whose expert count changes, no step at all) go to why as
 * "PATH:LINE: what" with 0 returned on success, -1 on error. */
int report_log_read(report_log *r, const char *path, char *why, size_t why_size);
void report_log_free(report_log *r);

#endif
