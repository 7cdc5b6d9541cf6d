/*
 * http.h - the HTTP side of `moe serve` (http.c), on libmicrohttpd: routes,
 * the API key, body limits, and answering requests from the engine (whole,
 * or streamed as server-sent events). The server starts listening before
 * the model is loaded and answers 503 until serve_http_ready.
 */
#ifndef MOE_SERVE_HTTP_H
#define MOE_SERVE_HTTP_H

#include "chat.h"
#include "metrics.h"
#include "sched.h"

#define SERVE_MAX_BODY (4u << 20)      /* bytes of a request body */
#define SERVE_MAX_DISCARD (64u << 20)  /* a larger body is refused unread */
#define SERVE_CONN_LIMIT 256           /* connections at once */
#define SERVE_CONN_TIMEOUT 60          /* seconds a connection may sit idle */
#define SERVE_CONN_MEMORY (128u << 10) /* libmicrohttpd's buffer per connection */

typedef struct serve_http serve_http;

typedef struct serve_http_opts {
    const char *host;       /* address to bind (numeric or a name) */
    int port;               /* 0: any free port (serve_http_port says which) */
    const char *api_key;    /* NULL or "": no key asked for */
    const char *model_name; /* the id /v1/models lists */
    double timeout;         /* seconds a request may run */
} serve_http_opts;

/* What answers requests once the model is loaded (all the caller's). */
typedef struct serve_engine {
    serve_sched *sched;
    const moe_tokenizer *tok;
    serve_metrics *metrics;
    int vocab;              /* the model's: prompt ids must be below it */
    int ctx;                /* positions per sequence */
    const moe_chat_template *chat; /* NULL: /v1/chat/completions answers 501 */
    const char *bos_text, *eos_text; /* the template's bos_token, eos_token */
} serve_engine;

/* Bind and start answering (503 for the API until serve_http_ready). 0, or
 * -1 with err filled. */
int serve_http_start(serve_http **out, const serve_http_opts *o, moe_err *err);
int serve_http_port(const serve_http *h);
/* The engine is ready: the API answers from now on. */
void serve_http_ready(serve_http *h, const serve_engine *e);
/* Shutting down: stop accepting connections; requests on open ones get 503. */
void serve_http_quiesce(serve_http *h);
/* Answers under way: queued, running, or their last bytes still going out. */
int serve_http_busy(const serve_http *h);
/* Close every connection and free (after the engine has ended its requests). */
void serve_http_stop(serve_http *h);

#endif
