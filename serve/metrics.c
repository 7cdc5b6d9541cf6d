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
    uint64_t prompt_tokens, generated_tokens;
    int queued, running;
    histogram batch, ttft, tpot;
    int n_layers, stride;
    uint8_t *reported;               /* [n_layers] 1: an MoE layer */
    int *layer_E;                    /* [n_layers] its experts */
    uint64_t *expert;                /* [n_layers][stride] (token, slot) pairs per expert */
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
    if (!m->reported || !m->layer_E || !m->expert) {
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
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_route(void *user, const moe_route_info *r) {
    serve_metrics *m = user;
    if (r->layer < 0 || r->layer >= m->n_layers || r->E > m->stride) return;
    pthread_mutex_lock(&m->mu);
    uint64_t *c = m->expert + (size_t)r->layer * m->stride;
    for (int i = 0; i < r->T * r->K; i++)
        if (r->expert[i] >= 0 && r->expert[i] < r->E) c[r->expert[i]]++;
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
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
