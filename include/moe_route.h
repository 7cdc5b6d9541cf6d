/*
 * moe_route.h - what the routers decide: run tokens through a session and
 * receive, for every MoE layer, the experts each token was sent to and their
 * weights (and the router's scores), without touching the model's internals.
 * `moe route` and `moe report` are built on it; docs/ROUTING.md describes
 * the statistics they derive.
 *
 * Same conventions as moe.h: 0 on success, -1 with *err filled on error;
 * nothing here prints, exits or keeps global state.
 */
#ifndef MOE_ROUTE_H
#define MOE_ROUTE_H

#include <stdint.h>

#include "moe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One MoE layer's routing of a run of T consecutive tokens. The pointers are
 * the session's own buffers: valid only during the callback. */
typedef struct moe_route_info {
    int layer;           /* decoder layer index (dense layers are never reported) */
    int t0;              /* index, in the ids given to moe_route_trace, of the first token */
    int T;               /* tokens in this run */
    int K;               /* experts per token (top_k) */
    int E;               /* experts of the layer */
    const int *expert;   /* [T][K] chosen experts, best first */
    const float *weight; /* [T][K] their weights as the forward applies them
                            (renormalized, scaled) */
    const float *score;  /* [T][E] router scores: softmax or sigmoid of the
                            router logits, without any selection bias */
    const int *seq;      /* [T] sequence of each token */
    const int *pos;      /* [T] its position in that sequence */
    int n_group;         /* G: expert groups of group-limited routing; 0 = none */
    const uint8_t *group;/* [T][G] 1 for the groups each token kept (topk_group of
                            them; its experts are among theirs); NULL when G = 0 */
    const int *row;      /* NULL: token t is the caller's t0 + t. A Mixture-of-Depths
                            layer reports only the tokens it took: row [T] gives each
                            one's index in the chunk (moe_route_token) */
} moe_route_info;

/* Index, in the caller's tokens, of the token reported at t. */
static inline int moe_route_token(const moe_route_info *r, int t) {
    return r->t0 + (r->row ? r->row[t] : t);
}

typedef void (*moe_route_fn)(void *user, const moe_route_info *r);

/* The route observer: fn is called once per MoE layer per forward chunk of
 * every moe_decode / moe_forward on this session, right after routing, from
 * the calling thread; t0 counts tokens from the start of the call. NULL fn
 * removes it. (Statistics, traces and a server's metrics plug in here.) */
void moe_session_set_route_observer(moe_session *s, moe_route_fn fn, void *user);

/* Run ids[n] through the session like moe_forward (appended at the current
 * position of sequence 0; no logits are computed) and call fn once per MoE
 * layer per chunk of at most the session's max_batch tokens, in layer order
 * within a chunk, chunks in order. Every token is reported exactly once per
 * MoE layer.
 *
 * What `expert` holds is each token's choice before any capacity drop; in
 * inference nothing is dropped, so it is what the forward computed. For an
 * expert-choice router expert/weight are each token's top-K by score and
 * their token-choice weights (the view the aux loss counts), not the tokens
 * each expert took nor the weights it applied. For a hash router they are
 * the hash's experts (weight 1) and `score` carries no information. */
int moe_route_trace(moe_session *s, const int32_t *ids, int n, moe_route_fn fn, void *user,
                    moe_err *err);

/* ------------------------------------------------------------ statistics
 * The one definition of each routing statistic, used by the training log
 * (moe_train), `moe route` and `moe report` alike (docs/ROUTING.md). counts
 * are (token, slot) pairs per expert of one layer. */

/* Largest load over the mean load, minus 1: max(counts) / (sum / E) - 1.
 * 0 for a perfectly even layer, E - 1 when one expert takes every pair;
 * 0 when there are no pairs. */
double moe_route_max_violation(const int64_t *counts, int E);

/* Experts that received no pair. */
int moe_route_dead(const int64_t *counts, int E);

/* Entropy, in nats, of one token's router scores score[E] normalized to sum
 * 1: -sum q ln q with q = score / sum(score). Softmax scores are already a
 * distribution; sigmoid scores are normalized. NAN when the scores do not
 * sum to a positive number. In [0, ln E]. */
double moe_route_entropy(const float *score, int E);

/* Mutual information, in bits, between the row and the column variable of a
 * joint count table joint[rows][cols] (e.g. domain x expert over (token,
 * slot) pairs): sum p(r,c) log2(p(r,c) / (p(r) p(c))). 0 for an empty table.
 * The result lies in [0, log2(min(rows, cols))] (clamped at 0 against
 * rounding). */
double moe_route_mutual_info(const int64_t *joint, int rows, int cols);

/* ------------------------------------------------ routing over a token shard */

/* Default number of tokens moe_route_data_run reads. */
#define MOE_ROUTE_DATA_TOKENS 65536

typedef struct moe_route_data_opts {
    const char *shard;  /* a `moe data` shard (DIR/val.bin, DIR/train.bin) */
    int64_t max_tokens; /* tokens routed: windows spread evenly over the whole
                           shard (not its start, which `moe data` fills with
                           the first domain); 0 or >= the shard: every token */
    int seq;            /* window length T; 0 = min(256, max_position_embeddings) */
    int top;            /* most frequent tokens kept per expert (0 = none) */
    int n_threads;      /* 0 = online CPUs */
} moe_route_data_opts;

/* One MoE layer's routing over the windows. */
typedef struct moe_route_layer {
    int layer;               /* decoder layer index */
    int E, K;                /* experts, experts per token */
    moe_route_kind kind;
    int64_t pairs;           /* (token, slot) pairs: tokens * K */
    int64_t *counts;         /* [E] pairs per expert */
    int64_t *domain_counts;  /* [D][E] pairs of domain d's tokens per expert */
    double max_violation;    /* moe_route_max_violation(counts) */
    int dead;                /* moe_route_dead(counts) */
    double entropy;          /* mean moe_route_entropy over tokens; NAN for hash */
    double mi_bits;          /* moe_route_mutual_info(domain_counts, D, E) */
    int32_t *top_id;         /* [E][top] the ids each expert received most */
    int64_t *top_count;      /* [E][top] how often (0: no such token) */
    int G, TG;               /* group-limited routing: groups, groups kept per token
                                (G = 0: none, and the three below are NULL / 0) */
    int64_t *group_counts;   /* [G] tokens that kept group g */
    int64_t *domain_group_counts; /* [D][G] the same per domain */
    double group_mi_bits;    /* moe_route_mutual_info(domain_group_counts, D, G): how much
                                the groups a token keeps say about its domain */
} moe_route_layer;

typedef struct moe_route_data {
    int seq;                 /* window length used */
    int64_t windows;         /* windows run, each from position 0 */
    int64_t tokens;          /* tokens routed */
    int n_domains;           /* D: the shard's domains, in shard order */
    char (*domain_name)[32]; /* [D] */
    int64_t *domain_tokens;  /* [D] tokens of each domain among those routed */
    int top;                 /* entries per expert in top_id / top_count */
    int n_layers;            /* MoE layers */
    moe_route_layer *layer;  /* [n_layers] in layer order */
} moe_route_data;

/* Run m over windows of a token shard, each window in a fresh KV cache, and
 * count where every MoE layer's router sends each token. Every token counts,
 * EOS included; ids must be below the model's vocabulary. Memory for the top
 * tokens (top > 0): 8 bytes per (token, slot) pair of every MoE layer
 * (refused past 2 GiB). *out is freed with moe_route_data_free. */
int moe_route_data_run(moe_model *m, const moe_route_data_opts *o, moe_route_data **out,
                       moe_err *err);
void moe_route_data_free(moe_route_data *d);

#ifdef __cplusplus
}
#endif
#endif
