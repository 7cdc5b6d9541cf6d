/*
 * http.c - the HTTP side of `moe serve` (http.h).
 *
 * libmicrohttpd runs a thread per connection (MHD_USE_THREAD_PER_CONNECTION
 * under its internal polling thread), bounded by SERVE_CONN_LIMIT, with an
 * idle timeout and a memory limit per connection; it parses HTTP, we never
 * do. A connection's thread may block while the engine works for it: a
 * whole answer waits in the access handler, a stream waits in its content
 * reader. Both look at the client's socket while they wait, so a client
 * that goes away frees its sequence slot at once (the stream's reader then
 * ends with MHD_CONTENT_READER_END_WITH_ERROR).
 *
 * Routes: GET /health, GET /metrics, GET /v1/models, POST /v1/completions,
 * POST /v1/chat/completions (the messages rendered with the chat template,
 * serve/chat.c). The /v1 routes ask for the API key when one is
 * set ("Authorization: Bearer KEY"). Unknown paths answer 404, a known path
 * with another method 405.
 */
#include <netdb.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http.h"

#define WAIT_SLICE 0.1 /* seconds between looks at the client's socket */

enum { ST_LOADING = 0, ST_READY, ST_DRAINING };

struct serve_http {
    struct MHD_Daemon *d;
    serve_http_opts o;
    char *api_key, *model_name;
    serve_engine e;          /* valid once state is ST_READY */
    _Atomic int state;
    _Atomic long long ids;   /* request ids */
    _Atomic int busy;        /* answers under way (queued, running, or still sending) */
    long long started;       /* Unix seconds, /v1/models "created" */
    int port;
};

typedef enum { R_NONE = 0, R_PAGE, R_ROUTING, R_HEALTH, R_METRICS, R_MODELS, R_COMPLETIONS, R_CHAT } route;

/* serve/page.html, built into the binary (Makefile: build/serve/page_html.c) */
extern const char serve_page_html[];
extern const size_t serve_page_html_len;

/* One request on a connection (libmicrohttpd's con_cls). */
typedef struct conn {
    route route;
    char *body;
    size_t len, cap;
    int too_big;            /* 1: past SERVE_MAX_BODY, the rest is dropped */
    size_t dropped;         /* bytes dropped */
} conn;

/* A streamed answer (owned by its MHD_Response, freed with it). */
typedef struct stream {
    serve_http *h;
    serve_req *req;
    serve_reply reply;
    char id[40];
    int fd;                 /* the client's socket */
    char *pending;          /* bytes of events not yet handed to MHD */
    size_t pend_len, pend_off;
    size_t text_sent;       /* bytes of req->text already sent */
    int lp_sent;            /* logprobs already sent */
    int first;              /* 1: the next chunk is the first */
    int ended;              /* 1: [DONE] is in pending */
} stream;

/* ------------------------------------------------------------ answering */

static enum MHD_Result send_bytes(serve_http *h, struct MHD_Connection *c, int status,
                                  const char *type, char *body, size_t len,
                                  const char *extra_name, const char *extra_value) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body ? body : "", body ? MHD_RESPMEM_MUST_FREE
                                                                    : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (extra_name) MHD_add_response_header(r, extra_name, extra_value);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    if (h->state != ST_LOADING && h->e.metrics) serve_metrics_request(h->e.metrics, status);
    return ok;
}

static enum MHD_Result send_json(serve_http *h, struct MHD_Connection *c, int status, char *json) {
    return send_bytes(h, c, status, "application/json", json, json ? strlen(json) : 0, NULL, NULL);
}

static enum MHD_Result send_error(serve_http *h, struct MHD_Connection *c, const serve_error *e) {
    char *json = serve_error_json(e);
    const char *xn = NULL, *xv = NULL;
    if (e->status == 429) xn = "Retry-After", xv = "1";
    else if (e->status == 401) xn = "WWW-Authenticate", xv = "Bearer";
    return send_bytes(h, c, e->status, "application/json", json, json ? strlen(json) : 0, xn, xv);
}

static enum MHD_Result fail(serve_http *h, struct MHD_Connection *c, int status, const char *param,
                            const char *msg) {
    serve_error e;
    serve_fail(&e, status, param, "%s", msg);
    return send_error(h, c, &e);
}

/* 1 when the client closed its end of the connection. */
static int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
    char b;
    return (p.revents & POLLIN) && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* ------------------------------------------------------------- requests */

/* Check, tokenize and queue the body as a request; *out on success, else
 * *e says why (400, 429, 503, 500). */
static int start_request(serve_http *h, conn *cn, serve_req **out, serve_error *e) {
    *out = NULL;
    const serve_engine *en = &h->e;
    serve_req *r = serve_req_new();
    if (!r) return serve_fail(e, 500, NULL, "out of memory");
    serve_kind kind = cn->route == R_CHAT ? SERVE_CHAT : SERVE_COMPLETION;
    if (serve_parse_request(kind, cn->body ? cn->body : "", cn->len, en->vocab, &r->p, e)) goto fail;
    moe_err err = {{0}};
    if (kind == SERVE_CHAT) {
        if (!en->chat) {
            serve_fail(e, 501, NULL, "this model has no chat template (start the server with --chat-template FILE)");
            goto fail;
        }
        if (serve_chat_prompt(en->chat, en->tok, en->bos_text, en->eos_text, &r->p, &r->prompt,
                              &r->n_prompt, e))
            goto fail;
    } else if (r->p.prompt_ids) {
        r->prompt = r->p.prompt_ids;
        r->n_prompt = r->p.n_prompt_ids;
        r->p.prompt_ids = NULL;
    } else if (moe_tokenize(en->tok, r->p.prompt, strlen(r->p.prompt), 1, &r->prompt, &r->n_prompt, &err)) {
        serve_fail(e, 400, "prompt", "tokenizing the prompt: %s", err.msg);
        goto fail;
    }
    if (r->n_prompt == 0) {
        serve_fail(e, 400, "prompt", "the prompt is empty after tokenization");
        goto fail;
    }
    for (int i = 0; i < r->n_prompt; i++) {
        if (r->prompt[i] < 0 || r->prompt[i] >= en->vocab) {
            serve_fail(e, 500, NULL, "the tokenizer produced id %d but the model's vocabulary is %d",
                       r->prompt[i], en->vocab);
            goto fail;
        }
    }
    if (r->n_prompt >= en->ctx) {
        serve_fail(e, 400, kind == SERVE_CHAT ? "messages" : "prompt",
                   "the prompt has %d tokens and the context holds %d", r->n_prompt, en->ctx);
        goto fail;
    }
    int room = en->ctx - r->n_prompt;
    if (r->p.max_tokens > en->ctx) {
        serve_fail(e, 400, "max_tokens",
                   "'max_tokens' is %d, past the context of %d", r->p.max_tokens, en->ctx);
        goto fail;
    }
    r->max_tokens = r->p.max_tokens < 0 ? (kind == SERVE_COMPLETION ? 16 : room) : r->p.max_tokens;
    if (r->max_tokens > room) r->max_tokens = room;
    r->t_arrival = serve_now();
    r->deadline = r->t_arrival + h->o.timeout;
    h->busy++; /* before it is queued: a shutdown waits for it */
    int rc = serve_sched_submit(en->sched, r);
    if (rc != SERVE_SUBMIT_OK) h->busy--;
    if (rc == SERVE_SUBMIT_FULL) {
        serve_fail(e, 429, NULL, "the server is busy: every slot is running and the queue is full");
        goto fail;
    }
    if (rc == SERVE_SUBMIT_CLOSED) {
        serve_fail(e, 503, NULL, "the server is shutting down");
        goto fail;
    }
    *out = r;
    return 0;
fail:
    serve_req_release(NULL, r);
    return -1;
}

static void reply_init(serve_http *h, const serve_req *r, serve_reply *rep, char *id, size_t id_size) {
    snprintf(id, id_size, "%s-%lld", r->p.kind == SERVE_CHAT ? "chatcmpl" : "cmpl", ++h->ids);
    rep->kind = r->p.kind;
    rep->id = id;
    rep->model = h->model_name;
    rep->created = (long long)time(NULL);
    rep->tok = h->e.tok;
    rep->logprobs = r->p.logprobs;
}

/* Wait for the whole answer in this thread, watching the client. */
static enum MHD_Result answer_whole(serve_http *h, struct MHD_Connection *c, serve_req *r) {
    serve_sched *s = h->e.sched;
    int fd = conn_fd(c);
    serve_sched_lock(s);
    while (!r->done) {
        serve_sched_wait(s, r, WAIT_SLICE);
        if (!r->done && client_gone(fd)) {
            serve_sched_unlock(s);
            serve_req_cancel(s, r);
            serve_req_release(s, r);
            h->busy--;
            return MHD_NO; /* closes the connection */
        }
    }
    serve_sched_unlock(s);
    /* done: the engine writes r no more */
    enum MHD_Result ok;
    if (r->error.status) {
        ok = send_error(h, c, &r->error);
    } else {
        serve_reply rep;
        char id[40];
        reply_init(h, r, &rep, id, sizeof id);
        char *json = serve_reply_final(&rep, r->text ? r->text : "", r->text_len, r->lp, r->n_lp,
                                       r->finish, r->n_prompt, r->n_gen);
        ok = json ? send_json(h, c, 200, json) : fail(h, c, 500, NULL, "out of memory");
    }
    serve_req_release(s, r);
    h->busy--;
    return ok;
}

/* ------------------------------------------------------------- streaming */

/* Queue the next events of st into pending; 0, or -1 when the client is gone. */
static int stream_next(stream *st) {
    serve_sched *s = st->h->e.sched;
    serve_req *r = st->req;
    serve_sched_lock(s);
    while (!r->done && r->text_len == st->text_sent && r->n_lp == st->lp_sent && !st->first) {
        serve_sched_wait(s, r, WAIT_SLICE);
        if (!r->done && client_gone(st->fd)) {
            serve_sched_unlock(s);
            return -1;
        }
    }
    /* copy what is new, then format without the lock */
    size_t n_text = r->text_len - st->text_sent;
    int n_lp = r->n_lp - st->lp_sent, done = r->done, n_gen = r->n_gen;
    char *text = malloc(n_text + 1);
    serve_logprob *lp = n_lp ? malloc((size_t)n_lp * sizeof *lp) : NULL;
    if (!text || (n_lp && !lp)) {
        serve_sched_unlock(s);
        free(text);
        free(lp);
        return -1;
    }
    if (n_text) memcpy(text, r->text + st->text_sent, n_text);
    if (n_lp) memcpy(lp, r->lp + st->lp_sent, (size_t)n_lp * sizeof *lp);
    st->text_sent = r->text_len;
    st->lp_sent = r->n_lp;
    serve_sched_unlock(s);

    char *ev;
    if (done && r->error.status) {
        char *json = serve_error_json(&r->error);
        size_t n = json ? strlen(json) : 0;
        ev = malloc(n + 9);
        if (ev) snprintf(ev, n + 9, "data: %s\n\n", json ? json : "{}");
        free(json);
    } else {
        ev = serve_reply_chunk(&st->reply, text, n_text, lp, n_lp, st->first, done ? r->finish : NULL,
                               r->n_prompt, n_gen);
    }
    free(text);
    free(lp);
    if (!ev) return -1;
    st->first = 0;
    size_t n = strlen(ev);
    const char *tail = done ? "data: [DONE]\n\n" : "";
    char *p = malloc(n + strlen(tail) + 1);
    if (!p) {
        free(ev);
        return -1;
    }
    memcpy(p, ev, n);
    strcpy(p + n, tail);
    free(ev);
    free(st->pending);
    st->pending = p;
    st->pend_len = strlen(p);
    st->pend_off = 0;
    st->ended = done;
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    stream *st = cls;
    (void)pos;
    while (st->pend_off == st->pend_len) {
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        if (stream_next(st)) {
            serve_req_cancel(st->h->e.sched, st->req);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = st->pend_len - st->pend_off;
    if (n > max) n = max;
    memcpy(buf, st->pending + st->pend_off, n);
    st->pend_off += n;
    return (ssize_t)n;
}

/* The response is gone (sent, or the connection closed): free the slot. */
static void stream_free(void *cls) {
    stream *st = cls;
    serve_req_cancel(st->h->e.sched, st->req);
    serve_req_release(st->h->e.sched, st->req);
    st->h->busy--;
    free(st->pending);
    free(st);
}

static enum MHD_Result answer_stream(serve_http *h, struct MHD_Connection *c, serve_req *r) {
    stream *st = calloc(1, sizeof *st);
    if (!st) {
        serve_req_cancel(h->e.sched, r);
        serve_req_release(h->e.sched, r);
        h->busy--;
        return fail(h, c, 500, NULL, "out of memory");
    }
    st->h = h;
    st->req = r;
    st->fd = conn_fd(c);
    st->first = r->p.kind == SERVE_CHAT; /* the chat stream opens with the role */
    reply_init(h, r, &st->reply, st->id, sizeof st->id);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    serve_metrics_request(h->e.metrics, 200);
    return ok;
}

/* ------------------------------------------------------------------ routes */

static enum MHD_Result do_models(serve_http *h, struct MHD_Connection *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", h->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)h->started);
    cJSON_AddStringToObject(m, "owned_by", "moe");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), m);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return send_json(h, c, 200, json);
}

static enum MHD_Result do_completion(serve_http *h, struct MHD_Connection *c, conn *cn) {
    serve_req *r;
    serve_error e;
    if (start_request(h, cn, &r, &e)) return send_error(h, c, &e);
    return r->p.stream ? answer_stream(h, c, r) : answer_whole(h, c, r);
}

static route route_of(const char *url) {
    static const struct { const char *path; route r; } table[] = {
        {"/", R_PAGE}, {"/routing", R_ROUTING},
        {"/health", R_HEALTH}, {"/metrics", R_METRICS}, {"/v1/models", R_MODELS},
        {"/v1/completions", R_COMPLETIONS}, {"/v1/chat/completions", R_CHAT},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(url, table[i].path)) return table[i].r;
    return R_NONE;
}

/* Constant-time comparison of the Authorization header with the key. */
static int key_ok(serve_http *h, struct MHD_Connection *c) {
    if (!h->api_key) return 1;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!a || strncmp(a, "Bearer ", 7)) return 0;
    a += 7;
    size_t n = strlen(a), k = strlen(h->api_key);
    unsigned diff = n != k;
    for (size_t i = 0; i < k; i++) diff |= (unsigned char)h->api_key[i] ^ (unsigned char)(i < n ? a[i] : 0);
    return diff == 0;
}

/* The first call of a request: route, method, key, declared size. Returns
 * MHD_YES to read the body, or the result of an answer already queued
 * (*answered set). */
static enum MHD_Result first_call(serve_http *h, struct MHD_Connection *c, const char *url,
                                  const char *method, conn *cn, int *answered) {
    *answered = 1;
    cn->route = route_of(url);
    if (cn->route == R_NONE) return fail(h, c, 404, NULL, "no such route");
    int post = cn->route == R_COMPLETIONS || cn->route == R_CHAT;
    int get_ok = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (post ? strcmp(method, "POST") : !get_ok) {
        serve_error e;
        serve_fail(&e, 405, NULL, "this route takes only %s", post ? "POST" : "GET");
        char *json = serve_error_json(&e);
        return send_bytes(h, c, 405, "application/json", json, json ? strlen(json) : 0, "Allow",
                          post ? "POST" : "GET, HEAD");
    }
    if (!strncmp(url, "/v1/", 4) && !key_ok(h, c))
        return fail(h, c, 401, NULL, "missing or wrong API key (Authorization: Bearer KEY)");
    /* a body somewhat too large is read and dropped, so that the client
     * gets its 413; one far too large is refused before it is sent */
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
    if (declared > SERVE_MAX_DISCARD) {
        char msg[96];
        snprintf(msg, sizeof msg, "the body is larger than %u bytes", SERVE_MAX_BODY);
        return fail(h, c, 413, NULL, msg);
    }
    cn->too_big = declared > SERVE_MAX_BODY;
    *answered = 0;
    return MHD_YES;
}

static enum MHD_Result dispatch(serve_http *h, struct MHD_Connection *c, conn *cn) {
    int state = h->state;
    if (cn->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "the body is larger than %u bytes", SERVE_MAX_BODY);
        return fail(h, c, 413, NULL, msg);
    }
    if (cn->route == R_HEALTH) {
        const char *st = state == ST_READY ? "ok" : state == ST_LOADING ? "loading" : "shutting down";
        char *json = malloc(64);
        if (json) snprintf(json, 64, "{\"status\":\"%s\"}", st);
        return send_json(h, c, state == ST_READY ? 200 : 503, json);
    }
    if (state != ST_READY)
        return fail(h, c, 503, NULL, state == ST_LOADING ? "the model is loading" : "the server is shutting down");
    if (cn->route == R_METRICS) {
        char *text = serve_metrics_text(h->e.metrics);
        if (!text) return fail(h, c, 500, NULL, "out of memory");
        return send_bytes(h, c, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text), NULL, NULL);
    }
    if (cn->route == R_MODELS) return do_models(h, c);
    if (cn->route == R_PAGE) {
        char *page = malloc(serve_page_html_len + 1);
        if (!page) return fail(h, c, 500, NULL, "out of memory");
        memcpy(page, serve_page_html, serve_page_html_len + 1);
        return send_bytes(h, c, 200, "text/html; charset=utf-8", page, serve_page_html_len, NULL, NULL);
    }
    if (cn->route == R_ROUTING) {
        char *json = serve_metrics_routing_json(h->e.metrics);
        if (!json) return fail(h, c, 500, NULL, "out of memory");
        return send_json(h, c, 200, json);
    }
    return do_completion(h, c, cn);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    serve_http *h = cls;
    (void)version;
    conn *cn = *con_cls;
    if (!cn) {
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        *con_cls = cn;
        int answered;
        enum MHD_Result r = first_call(h, c, url, method, cn, &answered);
        if (answered) cn->route = R_NONE;
        return r;
    }
    if (cn->route == R_NONE) { /* answered on the first call; drop the body */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cn->too_big || cn->len + n > SERVE_MAX_BODY) {
            cn->too_big = 1;
            cn->dropped += n;
            return cn->dropped > SERVE_MAX_DISCARD ? MHD_NO : MHD_YES;
        }
        if (cn->len + n + 1 > cn->cap) {
            size_t cap = (cn->len + n + 1) * 2;
            if (cap > SERVE_MAX_BODY + 1) cap = SERVE_MAX_BODY + 1;
            char *b = realloc(cn->body, cap);
            if (!b) return MHD_NO;
            cn->body = b;
            cn->cap = cap;
        }
        memcpy(cn->body + cn->len, upload_data, n);
        cn->len += n;
        cn->body[cn->len] = 0;
        return MHD_YES;
    }
    return dispatch(h, c, cn);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    conn *cn = *con_cls;
    if (!cn) return;
    free(cn->body);
    free(cn);
    *con_cls = NULL;
}

/* ------------------------------------------------------------- lifecycle */

int serve_http_start(serve_http **out, const serve_http_opts *o, moe_err *err) {
    *out = NULL;
    serve_http *h = calloc(1, sizeof *h);
    if (!h) return snprintf(err->msg, sizeof err->msg, "out of memory"), -1;
    h->o = *o;
    h->model_name = strdup(o->model_name ? o->model_name : "moe");
    h->api_key = o->api_key && o->api_key[0] ? strdup(o->api_key) : NULL;
    h->started = (long long)time(NULL);
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    int g = getaddrinfo(o->host, port, &hints, &ai);
    if (g || !ai) {
        snprintf(err->msg, sizeof err->msg, "cannot resolve host '%s': %s", o->host, gai_strerror(g));
        goto fail;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_POLL | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    h->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SERVE_CONN_TIMEOUT,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVE_CONN_MEMORY,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVE_CONN_LIMIT,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        snprintf(err->msg, sizeof err->msg, "cannot listen on %s port %d (in use, or not an address of this machine?)",
                 o->host, o->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : o->port;
    *out = h;
    return 0;
fail:
    free(h->model_name);
    free(h->api_key);
    free(h);
    return -1;
}

int serve_http_port(const serve_http *h) { return h->port; }
int serve_http_busy(const serve_http *h) { return h->busy; }

void serve_http_ready(serve_http *h, const serve_engine *e) {
    h->e = *e;
    h->state = ST_READY;
}

void serve_http_quiesce(serve_http *h) {
    h->state = ST_DRAINING;
    MHD_socket fd = MHD_quiesce_daemon(h->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void serve_http_stop(serve_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h->model_name);
    free(h->api_key);
    free(h);
}
