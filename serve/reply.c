/*
 * reply.c - the JSON `moe serve` answers with (api.h): a completion or chat
 * completion whole, or one server-sent event of a stream, with usage and
 * finish_reason on the final one, in the shapes the OpenAI clients parse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

/* The text of one token as its own decode writes it (special tokens kept);
 * *len its bytes (it may hold a NUL). */
static char *token_text(const moe_tokenizer *tok, int32_t id, size_t *len) {
    char *text = NULL;
    moe_err err;
    *len = 0;
    if (moe_detokenize(tok, &id, 1, 0, &text, len, &err)) {
        *len = 0;
        return strdup("");
    }
    return text;
}

/* s[0..len) as a JSON string (cJSON's strings end at a NUL; the text a
 * model writes may hold one, and any byte the decoder wrote must come out):
 * control characters escaped, bytes that are not UTF-8 written as U+FFFD,
 * the rest as it is. */
static cJSON *string_n(const char *s, size_t len) {
    char *out = malloc(len * 6 + 3), *o = out;
    if (!out) return cJSON_CreateString("");
    const unsigned char *u = (const unsigned char *)s;
    *o++ = '"';
    for (size_t i = 0; i < len;) {
        unsigned c = u[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            o += sprintf(o, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            *o++ = (char)c;
            i++;
        } else {
            size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2; /* what the lead byte promises */
            if (i + n <= len && serve_utf8_valid(s + i, n)) {
                memcpy(o, s + i, n);
                o += n;
                i += n;
            } else {
                memcpy(o, "\xef\xbf\xbd", 3);
                o += 3;
                i++;
            }
        }
    }
    *o++ = '"';
    *o = 0;
    cJSON *item = cJSON_CreateRaw(out);
    free(out);
    return item;
}

static void add_bytes(cJSON *o, const char *s, size_t len) {
    cJSON *b = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; i < len; i++) cJSON_AddItemToArray(b, cJSON_CreateNumber((unsigned char)s[i]));
}

/* completions: {"tokens", "token_logprobs", "top_logprobs"} */
static cJSON *logprobs_completion(const moe_tokenizer *tok, const serve_logprob *lp, int n) {
    cJSON *o = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    for (int i = 0; i < n; i++) {
        size_t tl;
        char *t = token_text(tok, lp[i].token, &tl);
        cJSON_AddItemToArray(tokens, string_n(t ? t : "", t ? tl : 0));
        free(t);
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(lp[i].logprob));
        cJSON *top = cJSON_CreateObject();
        for (int k = 0; k < lp[i].n_top; k++) {
            size_t al;
            char *a = token_text(tok, lp[i].top_id[k], &al);
            /* two ids can decode alike; keep the first (the likelier) */
            if (a && !cJSON_GetObjectItemCaseSensitive(top, a))
                cJSON_AddNumberToObject(top, a, lp[i].top_lp[k]);
            free(a);
        }
        cJSON_AddItemToArray(tops, top);
    }
    return o;
}

/* chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]} */
static cJSON *logprobs_chat(const moe_tokenizer *tok, const serve_logprob *lp, int n) {
    cJSON *o = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(o, "content");
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        size_t tl;
        char *t = token_text(tok, lp[i].token, &tl);
        cJSON_AddItemToObject(e, "token", string_n(t ? t : "", t ? tl : 0));
        cJSON_AddNumberToObject(e, "logprob", lp[i].logprob);
        add_bytes(e, t ? t : "", t ? tl : 0);
        free(t);
        cJSON *tops = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int k = 0; k < lp[i].n_top; k++) {
            cJSON *a = cJSON_CreateObject();
            size_t sl;
            char *s = token_text(tok, lp[i].top_id[k], &sl);
            cJSON_AddItemToObject(a, "token", string_n(s ? s : "", s ? sl : 0));
            cJSON_AddNumberToObject(a, "logprob", lp[i].top_lp[k]);
            add_bytes(a, s ? s : "", s ? sl : 0);
            free(s);
            cJSON_AddItemToArray(tops, a);
        }
        cJSON_AddItemToArray(content, e);
    }
    return o;
}

static cJSON *head(const serve_reply *r, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)r->created);
    cJSON_AddStringToObject(o, "model", r->model);
    return o;
}

static void add_usage(cJSON *o, int prompt_tokens, int completion_tokens) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", prompt_tokens + completion_tokens);
}

static void add_logprobs(cJSON *choice, const serve_reply *r, const serve_logprob *lp, int n_lp) {
    if (!r->logprobs) cJSON_AddNullToObject(choice, "logprobs");
    else if (r->kind == SERVE_CHAT) cJSON_AddItemToObject(choice, "logprobs", logprobs_chat(r->tok, lp, n_lp));
    else cJSON_AddItemToObject(choice, "logprobs", logprobs_completion(r->tok, lp, n_lp));
}

static char *print(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *serve_reply_final(const serve_reply *r, const char *text, size_t len,
                        const serve_logprob *lp, int n_lp, const char *finish, int prompt_tokens,
                        int completion_tokens) {
    int chat = r->kind == SERVE_CHAT;
    cJSON *o = head(r, chat ? "chat.completion" : "text_completion");
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(choice, "index", 0);
    if (chat) {
        cJSON *msg = cJSON_AddObjectToObject(choice, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddItemToObject(msg, "content", string_n(text, len));
    } else {
        cJSON_AddItemToObject(choice, "text", string_n(text, len));
    }
    add_logprobs(choice, r, lp, n_lp);
    cJSON_AddStringToObject(choice, "finish_reason", finish);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), choice);
    add_usage(o, prompt_tokens, completion_tokens);
    return print(o);
}

char *serve_reply_chunk(const serve_reply *r, const char *text, size_t len,
                        const serve_logprob *lp, int n_lp, int first, const char *finish,
                        int prompt_tokens, int completion_tokens) {
    int chat = r->kind == SERVE_CHAT;
    cJSON *o = head(r, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(choice, "index", 0);
    if (chat) {
        cJSON *delta = cJSON_AddObjectToObject(choice, "delta");
        if (first) cJSON_AddStringToObject(delta, "role", "assistant");
        if (len || first) cJSON_AddItemToObject(delta, "content", string_n(text, len));
    } else {
        cJSON_AddItemToObject(choice, "text", string_n(text, len));
    }
    add_logprobs(choice, r, lp, n_lp);
    if (finish) cJSON_AddStringToObject(choice, "finish_reason", finish);
    else cJSON_AddNullToObject(choice, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), choice);
    if (finish) add_usage(o, prompt_tokens, completion_tokens);
    char *json = print(o);
    if (!json) return NULL;
    size_t n = strlen(json);
    char *ev = malloc(n + 9);
    if (ev) {
        memcpy(ev, "data: ", 6);
        memcpy(ev + 6, json, n);
        memcpy(ev + 6 + n, "\n\n", 3);
    }
    free(json);
    return ev;
}
