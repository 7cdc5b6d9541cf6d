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
} moe_route_info;

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

/* Mutual information, in bits, between the row and the column variable of a
 * joint count table joint[rows][cols] (e.g. domain x expert over (token,
 * slot) pairs): sum p(r,c) log2(p(r,c) / (p(r) p(c))). 0 for an empty table.
 * The result lies in [0, log2(min(rows, cols))] (clamped at 0 against
 * rounding). */
double moe_route_mutual_info(const int64_t *joint, int rows, int cols);

#ifdef __cplusplus
}
#endif
#endif
