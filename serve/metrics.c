/*
 * metrics.c - counters, gauges and histograms for GET /metrics (metrics.h),
 * written out in the Prometheus text exposition format 0.0.4.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define MAX_STATUS 16 /* distinct HTTP statuses counted */

typedef struct histogram {
    int n;                /* buckets (upper bounds), +Inf implied */
    const double *le;     /* [n] upper bounds */
    uint64_t count[32];   /* [n + 1] observations per bucket (not cumulative) */
    double sum;
    uint64_t total;
} histogram;

static const double batch_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static const double ttft_le[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double tpot_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

struct serve_metrics {
    pthread_mutex_t mu;
    int status[MAX_STATUS];          /* HTTP status codes seen */
    uint64_t status_count[MAX_STATUS];
    int n_status;
    uint64_t prompt_tokens, generated_tokens, cached_tokens;
    int queued, running;
    histogram batch, ttft, tpot;
    int n_layers, stride;
    uint8_t *reported;               /* [n_layers] 1: an MoE layer */
    int *layer_E;                    /* [n_layers] its experts */
    uint64_t *expert;                /* [n_layers][stride] (token, slot) pairs per expert */
    uint64_t routed;                 /* tokens routed (counted at the first MoE layer seen) */
    int first_moe;                   /* that layer (-1 until one reports) */
    int top_k;                       /* experts per token, as reported */
    /* the last SERVE_ROUTE_WINDOW tokens of each layer: a ring of their
     * chosen experts ([n_layers][WINDOW][SERVE_ROUTE_MAX_K], -1 past K) */
    int16_t *recent;
    int *recent_n, *recent_at;       /* [n_layers] tokens held, next index */
    moe_cache *cache;                /* the model's expert cache, or NULL */
};

static void hist_init(histogram *h, const double *le, int n) {
    memset(h, 0, sizeof *h);
    h->le = le;
    h->n = n;
}

static void hist_add(histogram *h, double v) {
    int b = 0;
    while (b < h->n && v > h->le[b]) b++;
    h->count[b]++;
    h->sum += v;
    h->total++;
}

serve_metrics *serve_metrics_new(const moe_config *cfg) {
    int stride = 1;
    for (int l = 0; l < cfg->n_layers; l++)
        if (cfg->layer[l].moe && cfg->layer[l].n_experts > stride) stride = cfg->layer[l].n_experts;
    serve_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    hist_init(&m->batch, batch_le, (int)(sizeof batch_le / sizeof batch_le[0]));
    hist_init(&m->ttft, ttft_le, (int)(sizeof ttft_le / sizeof ttft_le[0]));
    hist_init(&m->tpot, tpot_le, (int)(sizeof tpot_le / sizeof tpot_le[0]));
    m->n_layers = cfg->n_layers > 0 ? cfg->n_layers : 0;
    m->stride = stride;
    m->reported = calloc((size_t)m->n_layers + 1, 1);
    m->layer_E = calloc((size_t)m->n_layers + 1, sizeof *m->layer_E);
    m->expert = calloc((size_t)m->n_layers * m->stride + 1, sizeof *m->expert);
    m->recent = malloc(((size_t)m->n_layers * SERVE_ROUTE_WINDOW * SERVE_ROUTE_MAX_K + 1) * sizeof *m->recent);
    m->recent_n = calloc((size_t)m->n_layers + 1, sizeof *m->recent_n);
    m->recent_at = calloc((size_t)m->n_layers + 1, sizeof *m->recent_at);
    m->first_moe = -1;
    if (!m->reported || !m->layer_E || !m->expert || !m->recent || !m->recent_n || !m->recent_at) {
        serve_metrics_free(m);
        return NULL;
    }
    for (int l = 0; l < m->n_layers; l++) {
        m->reported[l] = (uint8_t)(cfg->layer[l].moe != 0);
        m->layer_E[l] = cfg->layer[l].moe ? cfg->layer[l].n_experts : 0;
    }
    return m;
}

void serve_metrics_free(serve_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m->reported);
    free(m->layer_E);
    free(m->expert);
    free(m->recent);
    free(m->recent_n);
    free(m->recent_at);
    free(m);
}

void serve_metrics_request(serve_metrics *m, int status) {
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_status && m->status[i] != status) i++;
    if (i == m->n_status && i < MAX_STATUS) m->status[m->n_status++] = status;
    if (i < MAX_STATUS) m->status_count[i]++;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_tokens(serve_metrics *m, int prompt, int generated) {
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (uint64_t)prompt;
    m->generated_tokens += (uint64_t)generated;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_cached(serve_metrics *m, int tokens) {
    pthread_mutex_lock(&m->mu);
    m->cached_tokens += (uint64_t)(tokens > 0 ? tokens : 0);
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_load(serve_metrics *m, int queued, int running) {
    pthread_mutex_lock(&m->mu);
    m->queued = queued;
    m->running = running;
    pthread_mutex_unlock(&m->mu);
}

#define OBSERVE(name, field)                                  \
    void name(serve_metrics *m, double v) {                   \
        pthread_mutex_lock(&m->mu);                           \
        hist_add(&m->field, v);                               \
        pthread_mutex_unlock(&m->mu);                         \
    }
OBSERVE(serve_metrics_ttft, ttft)
OBSERVE(serve_metrics_tpot, tpot)

void serve_metrics_batch(serve_metrics *m, int tokens) {
    pthread_mutex_lock(&m->mu);
    hist_add(&m->batch, tokens);
    moe_cache *c = m->cache;
    pthread_mutex_unlock(&m->mu);
    if (c) moe_cache_add_tokens(c, tokens);
}

void serve_metrics_set_cache(serve_metrics *m, moe_cache *c) {
    pthread_mutex_lock(&m->mu);
    m->cache = c;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_route(void *user, const moe_route_info *r) {
    serve_metrics *m = user;
    if (r->layer < 0 || r->layer >= m->n_layers || r->E > m->stride) return;
    pthread_mutex_lock(&m->mu);
    uint64_t *c = m->expert + (size_t)r->layer * m->stride;
    for (int i = 0; i < r->T * r->K; i++)
        if (r->expert[i] >= 0 && r->expert[i] < r->E) c[r->expert[i]]++;
    if (m->first_moe < 0) m->first_moe = r->layer;
    if (r->layer == m->first_moe) m->routed += (uint64_t)(r->T > 0 ? r->T : 0);
    m->top_k = r->K;
    int l = r->layer, k = r->K < SERVE_ROUTE_MAX_K ? r->K : SERVE_ROUTE_MAX_K;
    for (int t = 0; t < r->T; t++) {
        int16_t *row = m->recent + ((size_t)l * SERVE_ROUTE_WINDOW + (size_t)m->recent_at[l]) * SERVE_ROUTE_MAX_K;
        for (int j = 0; j < SERVE_ROUTE_MAX_K; j++) {
            int e = j < k ? r->expert[(size_t)t * r->K + j] : -1;
            row[j] = (int16_t)(e >= 0 && e < r->E && e < 32768 ? e : -1);
        }
        m->recent_at[l] = (m->recent_at[l] + 1) % SERVE_ROUTE_WINDOW;
        if (m->recent_n[l] < SERVE_ROUTE_WINDOW) m->recent_n[l]++;
    }
    m->reported[r->layer] = 1;
    m->layer_E[r->layer] = r->E;
    pthread_mutex_unlock(&m->mu);
}

/* ----------------------------------------------------------- exposition */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static void put_hist(sbuf *b, const char *name, const char *help, const histogram *h) {
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->count[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], (unsigned long long)cum);
    }
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->total);
    put(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->total);
}

/* The expert cache's counters (moe_cache_stats) as moe_cache_* series. */
static void put_cache(sbuf *b, moe_cache *c) {
    moe_cache_stats st;
    moe_cache_stats_get(c, &st);
    static const struct { const char *name, *type, *help; } d[] = {
        {"moe_cache_hits_total", "counter", "Experts a layer needed that were in a slot (or being read ahead)."},
        {"moe_cache_misses_total", "counter", "Experts a layer needed that had to be read."},
        {"moe_cache_reads_total", "counter", "Expert reads from the model file."},
        {"moe_cache_read_bytes_total", "counter", "Bytes read from the model file into expert slots."},
        {"moe_cache_tokens_total", "counter", "Tokens run through the forward pass (for bytes per token)."},
        {"moe_cache_prefetch_issued_total", "counter", "Reads queued for predicted experts."},
        {"moe_cache_prefetch_used_total", "counter", "Predicted reads whose expert was then used."},
        {"moe_cache_prefetch_wasted_total", "counter", "Predicted reads whose expert was not used."},
        {"moe_cache_prefetch_cancelled_total", "counter", "Predicted reads dropped before they began (wrong or replaced guesses)."},
        {"moe_cache_prefetch_dropped_total", "counter", "Predictions not read: no slot could be taken."},
        {"moe_cache_predicted_total", "counter", "Experts predicted for a later layer."},
        {"moe_cache_predicted_used_total", "counter", "Predicted experts the layer then used."},
        {"moe_cache_used_after_prediction_total", "counter", "Experts used by layers that had a prediction."},
        {"moe_cache_stalls_total", "counter", "Acquires that waited for a read or a slot."},
        {"moe_cache_stall_seconds_total", "counter", "Time those acquires waited."},
        {"moe_cache_fallbacks_total", "counter", "Acquires answered with the resident low-precision copy (--mem-fallback)."},
        {"moe_cache_fallback_dropped_total", "counter", "Reads queued for a layer pass that took the copy, dropped unread when the layer came again."},
        {"moe_cache_read_seconds_total", "counter", "Time spent in reads, summed over the threads reading."},
        {"moe_cache_read_busy_seconds_total", "counter", "Wall time with at least one read in flight."},
        {"moe_cache_budget_bytes", "gauge", "The expert memory budget (--mem)."},
        {"moe_cache_slots", "gauge", "Expert slots in the pool."},
        {"moe_cache_direct_io", "gauge", "1: reads bypass the page cache with O_DIRECT."},
        {"moe_cache_fallback_bytes", "gauge", "Bytes of the resident low-precision copy of the experts (0: none)."},
    };
    const double v[] = {(double)st.hits, (double)st.misses, (double)st.reads, (double)st.bytes_read,
                        (double)st.tokens, (double)st.prefetch_issued, (double)st.prefetch_used,
                        (double)st.prefetch_wasted, (double)st.prefetch_cancelled,
                        (double)st.prefetch_dropped,
                        (double)st.predicted, (double)st.predicted_used,
                        (double)st.used_after_prediction, (double)st.stalls, st.stall_seconds,
                        (double)st.fallbacks, (double)st.fallback_dropped,
                        st.read_seconds, st.read_busy_seconds, (double)st.mem, (double)st.n_slots, (double)st.direct_io,
                        (double)st.fallback_bytes};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        put(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", d[i].name, d[i].help, d[i].name, d[i].type,
            d[i].name, v[i]);
}

char *serve_metrics_text(serve_metrics *m) {
    sbuf b = {malloc(4096), 0, 4096, 0};
    if (!b.s) return NULL;
    b.s[0] = 0;
    pthread_mutex_lock(&m->mu);
    put(&b, "# HELP moe_requests_total HTTP requests answered, by status code.\n"
            "# TYPE moe_requests_total counter\n");
    for (int i = 0; i < m->n_status; i++)
        put(&b, "moe_requests_total{status=\"%d\"} %llu\n", m->status[i],
            (unsigned long long)m->status_count[i]);
    put(&b, "# HELP moe_prompt_tokens_total Prompt tokens of admitted requests.\n"
            "# TYPE moe_prompt_tokens_total counter\nmoe_prompt_tokens_total %llu\n",
        (unsigned long long)m->prompt_tokens);
    put(&b, "# HELP moe_prompt_tokens_cached_total Prompt tokens not computed again: a slot's cache "
            "already held them (a shared prefix).\n# TYPE moe_prompt_tokens_cached_total counter\n"
            "moe_prompt_tokens_cached_total %llu\n",
        (unsigned long long)m->cached_tokens);
    put(&b, "# HELP moe_generated_tokens_total Tokens generated.\n"
            "# TYPE moe_generated_tokens_total counter\nmoe_generated_tokens_total %llu\n",
        (unsigned long long)m->generated_tokens);
    put(&b, "# HELP moe_queue_length Requests waiting for a sequence slot.\n"
            "# TYPE moe_queue_length gauge\nmoe_queue_length %d\n", m->queued);
    put(&b, "# HELP moe_running_sequences Requests in the running batch.\n"
            "# TYPE moe_running_sequences gauge\nmoe_running_sequences %d\n", m->running);
    put_hist(&b, "moe_batch_tokens", "Tokens per forward pass (decode and prefill together).",
             &m->batch);
    put_hist(&b, "moe_time_to_first_token_seconds",
             "From a request's arrival to its first generated token.", &m->ttft);
    put_hist(&b, "moe_time_per_output_token_seconds", "Between consecutive generated tokens.",
             &m->tpot);
    put(&b, "# HELP moe_expert_tokens_total Tokens routed to each expert of each MoE layer "
            "(token, slot pairs) since the start.\n# TYPE moe_expert_tokens_total counter\n");
    for (int l = 0; l < m->n_layers; l++) {
        if (!m->reported[l]) continue;
        const uint64_t *c = m->expert + (size_t)l * m->stride;
        for (int e = 0; e < m->layer_E[l]; e++)
            put(&b, "moe_expert_tokens_total{layer=\"%d\",expert=\"%d\"} %llu\n", l, e,
                (unsigned long long)c[e]);
    }
    if (m->cache) put_cache(&b, m->cache);
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ------------------------------------------------------------- routing */

char *serve_metrics_routing_json(serve_metrics *m) {
    sbuf b = {malloc(4096), 0, 4096, 0};
    if (!b.s) return NULL;
    b.s[0] = 0;
    pthread_mutex_lock(&m->mu);
    int E = 0;
    for (int l = 0; l < m->n_layers; l++)
        if (m->reported[l] && m->layer_E[l] > E) E = m->layer_E[l];
    put(&b, "{\"n_experts\":%d,\"top_k\":%d,\"window\":%d,\"tokens\":%llu,\"layers\":[", E, m->top_k,
        SERVE_ROUTE_WINDOW, (unsigned long long)m->routed);
    int first = 1;
    for (int l = 0; l < m->n_layers; l++) {
        if (!m->reported[l]) continue;
        put(&b, "%s{\"layer\":%d,\"n_experts\":%d,\"load\":[", first ? "" : ",", l, m->layer_E[l]);
        first = 0;
        const uint64_t *c = m->expert + (size_t)l * m->stride;
        for (int e = 0; e < m->layer_E[l]; e++) put(&b, "%s%llu", e ? "," : "", (unsigned long long)c[e]);
        put(&b, "],\"recent\":[");
        int n = m->recent_n[l], at = m->recent_at[l];
        for (int i = 0; i < n; i++) { /* oldest first */
            int slot = (at - n + i + SERVE_ROUTE_WINDOW) % SERVE_ROUTE_WINDOW;
            const int16_t *row = m->recent + ((size_t)l * SERVE_ROUTE_WINDOW + (size_t)slot) * SERVE_ROUTE_MAX_K;
            put(&b, "%s[", i ? "," : "");
            for (int j = 0, w = 0; j < SERVE_ROUTE_MAX_K; j++)
                if (row[j] >= 0) put(&b, "%s%d", w++ ? "," : "", row[j]);
            put(&b, "]");
        }
        put(&b, "]}");
    }
    put(&b, "]}");
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
