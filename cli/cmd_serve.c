/*
 * cmd_serve.c - `moe serve MODEL`: an OpenAI-compatible HTTP server
 * (serve/, docs/SERVER.md). Starts listening at once (the API answers 503
 * while the model loads), then runs until SIGTERM or SIGINT: it stops
 * accepting, lets the requests in flight finish for --grace seconds, ends
 * the rest, and exits 0.
 */
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../serve/http.h"
#include "args.h"
#include "cli.h"

/* The name /v1/models lists: the model path's last component. */
static void model_name(const char *path, char *out, size_t size) {
    char *copy = strdup(path);
    if (!copy) {
        snprintf(out, size, "moe");
        return;
    }
    size_t n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/') copy[--n] = 0;
    snprintf(out, size, "%s", basename(copy));
    free(copy);
}

/* Wait for SIGTERM or SIGINT (blocked in every thread). */
static int wait_signal(const sigset_t *set) {
    int sig = 0;
    while (sigwait(set, &sig) != 0) {
    }
    return sig;
}

/* The chat template: FILE if given, else the model's own (none is fine:
 * the chat endpoint then answers 501). 0 or -1 (printed). */
static int load_chat(const char *model, const char *file, moe_chat_template **out) {
    moe_err err = {{0}};
    *out = NULL;
    if (!file) {
        if (moe_chat_template_load(out, model, &err) == 0) return 0;
        cli_error("serve", "the model's chat template: %s", err.msg);
        return -1;
    }
    char *src = NULL;
    size_t len = 0;
    if (cli_read_file(file, (size_t)16 << 20, &src, &len, &err)) {
        cli_error("serve", "--chat-template: %s", err.msg);
        return -1;
    }
    int rc = moe_chat_template_parse(out, src, len, file, &err);
    free(src);
    if (rc) cli_error("serve", "--chat-template: %s", err.msg);
    return rc;
}

/* Wait up to seconds for every answer to be sent; 1 when they were. */
static int wait_idle(serve_http *h, double seconds) {
    double end = cli_now() + seconds;
    while (serve_http_busy(h) > 0 && cli_now() < end) {
        struct timespec t = {0, 20 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    return serve_http_busy(h) == 0;
}

int cmd_serve(int argc, char **argv) {
    const char *host = "127.0.0.1", *api_key = NULL, *chat_template = NULL;
    int port = 8080, parallel = 4, n_ctx = 0, threads = 0, max_queue = 64, step_tokens = 256;
    float timeout = 600, grace = 10;
    cli_cache cc = CLI_CACHE_INIT;
    const arg_opt opts[] = {
        {"--host", NULL, ARG_STR, &host, 0, 0, 0, "ADDR", "address to listen on (127.0.0.1)"},
        {"--port", NULL, ARG_INT, &port, 0, 65535, 0, "N", "TCP port, 0 = any free one (8080)"},
        {"--api-key", NULL, ARG_STR, &api_key, 0, 0, 0, "KEY",
         "ask for 'Authorization: Bearer KEY' on /v1 (default: $MOE_API_KEY, else none)"},
        {"--parallel", "-P", ARG_INT, &parallel, 1, 256, 0, "N", "sequences run at once (4)"},
        {"--ctx", "-c", ARG_INT, &n_ctx, 0, 1 << 24, 0, "N",
         "context positions per sequence (0 = the model's, at most 4096)"},
        ARG_THREADS(&threads, "-t", "threads (0 = all CPUs)"),
        {"--max-queue", NULL, ARG_INT, &max_queue, 0, 1 << 20, 0, "N",
         "requests waiting for a slot; more are refused with 429 (64)"},
        {"--chat-template", NULL, ARG_STR, &chat_template, 0, 0, 0, "FILE",
         "Jinja chat template for /v1/chat/completions (default: the model's own)"},
        {"--step-tokens", NULL, ARG_INT, &step_tokens, 1, 1 << 16, 0, "N",
         "most tokens in one forward pass: decode tokens plus prefill chunks (256)"},
        {"--timeout", NULL, ARG_FLOAT, &timeout, 0, 1e7, 1, "S",
         "a request running longer is ended with finish_reason \"length\" (600)"},
        {"--grace", NULL, ARG_FLOAT, &grace, 0, 1e6, 0, "S",
         "on SIGTERM/SIGINT, seconds requests in flight may take to finish (10)"},
        ARG_CACHE(&cc),
    };
    const arg_cmd c = {"serve", "MODEL [--host ADDR] [--port N] [--api-key KEY] [--parallel N] "
                       "[--ctx N] [--threads N] [--max-queue N] [--chat-template FILE]",
                       "Serve the model over HTTP with the OpenAI API: /v1/completions,\n"
                       "/v1/chat/completions, /v1/models, /health, /metrics (Prometheus). Requests are batched\n"
                       "continuously: up to --parallel sequences share each forward pass.",
                       "docs/SERVER.md describes the endpoints, their fields and limits. The\n"
                       "address and port in use are printed to stderr once listening.",
                       opts, (int)(sizeof opts / sizeof opts[0]), 1, 1, "MODEL"};
    const char *pos[1];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    moe_load_opts lo;
    if (cli_cache_parse("serve", &cc, &lo)) return 2;
    if (!api_key) api_key = getenv("MOE_API_KEY");

    /* SIGTERM and SIGINT are taken by sigwait below, never by a thread */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    char name[256];
    model_name(pos[0], name, sizeof name);
    moe_err err = {{0}};
    serve_http *http = NULL;
    serve_http_opts ho = {.host = host, .port = port, .api_key = api_key, .model_name = name,
                          .timeout = timeout};
    moe_tokenizer *tok = NULL;
    moe_model *m = NULL;
    moe_session *s = NULL;
    serve_metrics *metrics = NULL;
    serve_sched *sched = NULL;
    moe_chat_template *chat = NULL;
    char *bos_text = NULL, *eos_text = NULL;
    if (serve_http_start(&http, &ho, &err)) {
        cli_error("serve", "%s", err.msg);
        return 1;
    }
    fprintf(stderr, "moe serve: listening on http://%s:%d (loading %s)\n", host, serve_http_port(http), pos[0]);

    if (cli_load_tokenizer("serve", pos[0], &tok) || load_chat(pos[0], chat_template, &chat) ||
        cli_load_model_opts("serve", pos[0], &lo, &m))
        goto done;
    bos_text = serve_chat_special(tok, moe_tokenizer_bos(tok));
    eos_text = serve_chat_special(tok, moe_tokenizer_eos(tok));
    moe_session_opts so = {.n_ctx = n_ctx, .n_threads = threads, .n_seq = parallel,
                           .max_batch = step_tokens};
    if (moe_session_new(&s, m, &so, &err)) {
        cli_error("serve", "%s", err.msg);
        goto done;
    }
    cli_cache_attach(m, s);
    cli_warn_positions("serve", pos[0], m, moe_session_ctx(s));
    if (!(metrics = serve_metrics_new(moe_model_config(m)))) {
        cli_error("serve", "out of memory");
        goto done;
    }
    serve_metrics_set_cache(metrics, moe_model_cache(m));
    serve_sched_opts qo = {.n_slots = parallel, .step_tokens = step_tokens, .max_queue = max_queue};
    if (serve_sched_new(&sched, m, s, tok, metrics, &qo, &err)) {
        cli_error("serve", "%s", err.msg);
        goto done;
    }
    serve_engine en = {.sched = sched, .tok = tok, .metrics = metrics,
                       .vocab = moe_model_config(m)->vocab, .ctx = moe_session_ctx(s),
                       .chat = chat, .bos_text = bos_text, .eos_text = eos_text};
    serve_http_ready(http, &en);
    fprintf(stderr, "moe serve: ready: %d sequences of %d positions, model \"%s\"%s%s\n", parallel,
            moe_session_ctx(s), name, chat ? "" : ", no chat template",
            api_key && api_key[0] ? ", API key required" : "");

    int sig = wait_signal(&sigs);
    fprintf(stderr, "moe serve: %s: no new requests; waiting up to %g s for %d in flight\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", (double)grace, serve_sched_active(sched));
    serve_sched_close(sched);
    serve_http_quiesce(http);
    if (!wait_idle(http, grace)) {
        fprintf(stderr, "moe serve: ending %d requests still running\n", serve_sched_active(sched));
        serve_sched_cancel_all(sched);
        wait_idle(http, 2); /* their streams' last events */
    }
    rc = 0;
done:
    /* the engine first: it ends what is left, so no connection waits on it;
     * the connections then release their requests */
    serve_sched_stop(sched);
    serve_http_stop(http);
    serve_sched_free(sched);
    serve_metrics_free(metrics);
    moe_session_free(s);
    moe_model_free(m);
    moe_tokenizer_free(tok);
    moe_chat_template_free(chat);
    free(bos_text);
    free(eos_text);
    if (rc == 0) fprintf(stderr, "moe serve: stopped\n");
    return rc;
}
