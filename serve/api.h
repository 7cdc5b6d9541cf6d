/*
 * api.h - the OpenAI request bodies `moe serve` accepts, parsed and checked
 * (api.c), and the JSON it answers with (reply.c). Nothing here touches the
 * network or the engine: a body goes in, a serve_params or a serve_error
 * comes out, so the validation is tested on its own (tests/test_serve_api.c).
 *
 * Rules (docs/SERVER.md): unknown fields are ignored; null counts as absent;
 * a known field of the wrong type or out of range is refused with status 400
 * and an OpenAI-style error object naming the field ("param").
 */
#ifndef MOE_SERVE_API_H
#define MOE_SERVE_API_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "moe.h"

#define SERVE_MAX_STOP 4            /* stop strings per request (OpenAI's limit) */
#define SERVE_MAX_STOP_LEN 256      /* bytes per stop string */
#define SERVE_MAX_TOP_LOGPROBS 20   /* alternatives per token in logprobs */
#define SERVE_MAX_MESSAGES 4096     /* chat messages per request */

typedef enum {
    SERVE_COMPLETION = 0, /* POST /v1/completions */
    SERVE_CHAT,           /* POST /v1/chat/completions */
} serve_kind;

/* A request, checked. Sampling fields hold OpenAI's defaults when absent. */
typedef struct serve_params {
    serve_kind kind;
    char *prompt;          /* completions: the prompt text (malloc'd), or NULL */
    int32_t *prompt_ids;   /* completions: the prompt as token ids (malloc'd), or NULL */
    int n_prompt_ids;
    cJSON *messages;       /* chat: the messages, normalized (content always a string) */
    cJSON *tools;          /* chat: the "tools" array if given, else NULL */
    int max_tokens;        /* -1: not given (completions: 16; chat: up to the context) */
    float temperature;     /* [0, 2], default 1 */
    float top_p;           /* (0, 1], default 1 */
    int top_k;             /* >= 0, 0 = off (an extension; OpenAI has none) */
    uint64_t seed;         /* valid when has_seed */
    int has_seed;
    int ignore_eos;        /* 1: EOS does not end the answer (an extension) */
    char *stop[SERVE_MAX_STOP]; /* malloc'd, non-empty */
    int n_stop;
    int stream;            /* 1: server-sent events */
    int logprobs;          /* 1: return each token's log-probability */
    int top_logprobs;      /* alternatives per token, 0..SERVE_MAX_TOP_LOGPROBS */
} serve_params;

/* Why a request is refused: HTTP status, message, the field at fault. */
typedef struct serve_error {
    int status;            /* 400, 401, 404, 405, 413, 429, 500, 501, 503 */
    char message[256];
    char param[64];        /* "" when no single field is at fault */
} serve_error;

/* Fill e (status, param or NULL, message); returns -1. */
int serve_fail(serve_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parse and check a request body of len bytes. vocab: token ids in a prompt
 * given as ids must lie in [0, vocab). 0, or -1 with *e filled (p is then
 * empty). The body must be valid UTF-8 holding one JSON object. */
int serve_parse_request(serve_kind kind, const char *body, size_t len, int vocab, serve_params *p,
                        serve_error *e);
void serve_params_free(serve_params *p);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates or code points
 * past U+10FFFF). */
int serve_utf8_valid(const char *s, size_t n);

/* {"error": {"message", "type", "param", "code": null}} (malloc'd). type is
 * "invalid_request_error" for 4xx (but "authentication_error" for 401 and
 * "rate_limit_error" for 429), "server_error" for 5xx. */
char *serve_error_json(const serve_error *e);

/* ---------------------------------------------------------------- replies */

/* One generated token's log-probability and its best alternatives. */
typedef struct serve_logprob {
    int32_t token;
    float logprob;
    int n_top;
    int32_t top_id[SERVE_MAX_TOP_LOGPROBS];
    float top_lp[SERVE_MAX_TOP_LOGPROBS];
} serve_logprob;

/* What a reply is built from. */
typedef struct serve_reply {
    serve_kind kind;
    const char *id;          /* "cmpl-7", "chatcmpl-7" */
    const char *model;       /* model name */
    long long created;       /* Unix seconds */
    const moe_tokenizer *tok;/* names the tokens of logprobs */
    int logprobs;            /* 1: include logprobs (lp may be empty) */
} serve_reply;

/* The whole answer of a request that did not stream. */
char *serve_reply_final(const serve_reply *r, const char *text, size_t len,
                        const serve_logprob *lp, int n_lp, const char *finish, int prompt_tokens,
                        int completion_tokens);

/* One server-sent event "data: {...}\n\n" of a stream. first: the chat
 * delta also carries the role. finish: NULL for a middle chunk; on the last
 * chunk the finish reason, and the usage is added. */
char *serve_reply_chunk(const serve_reply *r, const char *text, size_t len,
                        const serve_logprob *lp, int n_lp, int first, const char *finish,
                        int prompt_tokens, int completion_tokens);

#endif
