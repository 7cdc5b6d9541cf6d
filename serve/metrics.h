/*
 * metrics.h - what GET /metrics reports (metrics.c), in the Prometheus text
 * format: requests by status, prompt and generated tokens, queue length,
 * running sequences, tokens per forward pass, time to first token, time per
 * output token, and every MoE layer's expert load since the start (from the
 * session's route observer), and the expert cache's counters when the model
 * runs with an expert memory budget. Updated from the HTTP threads and the engine
 * thread; one mutex guards it.
 */
#ifndef MOE_SERVE_METRICS_H
#define MOE_SERVE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "moe_cache.h"
#include "moe_route.h"

typedef struct serve_metrics serve_metrics;

/* Sized for the model's layers (dense layers are left out of the output). */
serve_metrics *serve_metrics_new(const moe_config *cfg);
void serve_metrics_free(serve_metrics *m);

void serve_metrics_request(serve_metrics *m, int status);      /* one answer sent */
void serve_metrics_tokens(serve_metrics *m, int prompt, int generated);
void serve_metrics_load(serve_metrics *m, int queued, int running);
void serve_metrics_cached(serve_metrics *m, int tokens);        /* prompt tokens taken from a cache */
void serve_metrics_batch(serve_metrics *m, int tokens);         /* one forward pass */
void serve_metrics_ttft(serve_metrics *m, double seconds);
void serve_metrics_tpot(serve_metrics *m, double seconds);
/* The model's expert cache (moe serve --mem): its counters join the
 * exposition (moe_cache_*), and each forward pass's tokens are counted in
 * it (bytes read per token). NULL: none. */
void serve_metrics_set_cache(serve_metrics *m, moe_cache *c);
/* a moe_route_fn: user is the serve_metrics */
void serve_metrics_route(void *user, const moe_route_info *r);

/* The text exposition (malloc'd, NUL-terminated). */
char *serve_metrics_text(serve_metrics *m);

/* GET /routing, the page's live view (malloc'd JSON): {"n_experts", "top_k",
 * "window", "tokens" (routed since the start), "layers": [{"layer",
 * "n_experts", "load": [tokens per expert since the start], "recent": [the
 * chosen experts of each of the layer's last `window` tokens, oldest
 * first, at most SERVE_ROUTE_MAX_K each]}]} over the MoE layers. */
#define SERVE_ROUTE_WINDOW 32
#define SERVE_ROUTE_MAX_K 16
char *serve_metrics_routing_json(serve_metrics *m);

#endif
