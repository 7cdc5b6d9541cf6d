/*
 * api.c - parse and check the bodies of POST /v1/completions and
 * POST /v1/chat/completions (api.h). Every refusal names the field and says
 * what was expected; the caller answers it with status 400.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

int serve_fail(serve_error *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

int serve_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned cp, min;
        if (c >= 0xC2 && c <= 0xDF) need = 1, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) need = 2, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) need = 3, cp = c & 0x07, min = 0x10000;
        else return 0;
        if (n - i <= need) return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((u[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (u[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

char *serve_error_json(const serve_error *e) {
    const char *type = e->status == 401   ? "authentication_error"
                       : e->status == 429 ? "rate_limit_error"
                       : e->status >= 500 ? "server_error"
                                          : "invalid_request_error";
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", type);
    if (e->param[0]) cJSON_AddStringToObject(err, "param", e->param);
    else cJSON_AddNullToObject(err, "param");
    cJSON_AddNullToObject(err, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

void serve_params_free(serve_params *p) {
    free(p->prompt);
    free(p->prompt_ids);
    cJSON_Delete(p->messages);
    cJSON_Delete(p->tools);
    for (int i = 0; i < p->n_stop; i++) free(p->stop[i]);
    memset(p, 0, sizeof *p);
}

/* ------------------------------------------------------------ field reads */

/* The field, or NULL when absent or null. */
static const cJSON *field(const cJSON *o, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return f && !cJSON_IsNull(f) ? f : NULL;
}

static int get_bool(const cJSON *o, const char *name, int *out, serve_error *e) {
    const cJSON *f = field(o, name);
    if (!f) return 0;
    if (!cJSON_IsBool(f)) return serve_fail(e, 400, name, "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(f);
    return 0;
}

/* A number in [lo, hi]; integral when integer is set. */
static int get_num(const cJSON *o, const char *name, double lo, double hi, int integer,
                   double *out, int *given, serve_error *e) {
    const cJSON *f = field(o, name);
    if (given) *given = f != NULL;
    if (!f) return 0;
    if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble))
        return serve_fail(e, 400, name, "'%s' must be %s", name, integer ? "an integer" : "a number");
    double v = f->valuedouble;
    if (integer && v != floor(v)) return serve_fail(e, 400, name, "'%s' must be an integer", name);
    if (v < lo || v > hi)
        return serve_fail(e, 400, name, "'%s' is %g, outside [%g, %g]", name, v, lo, hi);
    *out = v;
    return 0;
}

/* A field that must hold the default (features this server lacks). */
static int must_be(const cJSON *o, const char *name, double want, serve_error *e) {
    const cJSON *f = field(o, name);
    if (!f) return 0;
    if (!cJSON_IsNumber(f)) return serve_fail(e, 400, name, "'%s' must be a number", name);
    if (f->valuedouble != want)
        return serve_fail(e, 400, name, "'%s' other than %g is not supported", name, want);
    return 0;
}

static int get_stop(const cJSON *o, serve_params *p, serve_error *e) {
    const cJSON *f = field(o, "stop");
    if (!f) return 0;
    const cJSON *one = cJSON_IsString(f) ? f : NULL;
    if (!one && !cJSON_IsArray(f))
        return serve_fail(e, 400, "stop", "'stop' must be a string or an array of strings");
    int n = one ? 1 : cJSON_GetArraySize(f);
    if (n > SERVE_MAX_STOP)
        return serve_fail(e, 400, "stop", "'stop' holds %d strings, at most %d", n, SERVE_MAX_STOP);
    for (int i = 0; i < n; i++) {
        const cJSON *s = one ? one : cJSON_GetArrayItem(f, i);
        if (!cJSON_IsString(s))
            return serve_fail(e, 400, "stop", "'stop' must be a string or an array of strings");
        size_t len = strlen(s->valuestring);
        if (len == 0) return serve_fail(e, 400, "stop", "'stop' strings must not be empty");
        if (len > SERVE_MAX_STOP_LEN)
            return serve_fail(e, 400, "stop", "a 'stop' string is %zu bytes, at most %d", len,
                              SERVE_MAX_STOP_LEN);
        if (!(p->stop[p->n_stop] = strdup(s->valuestring)))
            return serve_fail(e, 500, NULL, "out of memory");
        p->n_stop++;
    }
    return 0;
}

/* ---------------------------------------------------------------- prompts */

static int ids_from_array(const cJSON *a, int vocab, serve_params *p, serve_error *e) {
    int n = cJSON_GetArraySize(a);
    if (n == 0) return serve_fail(e, 400, "prompt", "'prompt' is an empty list of token ids");
    if (!(p->prompt_ids = malloc((size_t)n * sizeof *p->prompt_ids)))
        return serve_fail(e, 500, NULL, "out of memory");
    int i = 0;
    for (const cJSON *t = a->child; t; t = t->next, i++) {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble))
            return serve_fail(e, 400, "prompt", "'prompt' token %d is not an integer", i);
        if (t->valuedouble < 0 || t->valuedouble >= vocab)
            return serve_fail(e, 400, "prompt", "'prompt' token %d is %g, outside [0, %d)", i,
                              t->valuedouble, vocab);
        p->prompt_ids[i] = (int32_t)t->valuedouble;
    }
    p->n_prompt_ids = n;
    return 0;
}

/* A string, a list of token ids, or a list holding one of those. */
static int get_prompt(const cJSON *o, int vocab, serve_params *p, serve_error *e) {
    const cJSON *f = field(o, "prompt");
    if (!f) return serve_fail(e, 400, "prompt", "'prompt' is required");
    if (cJSON_IsArray(f) && cJSON_GetArraySize(f) >= 1 && !cJSON_IsNumber(f->child)) {
        if (cJSON_GetArraySize(f) > 1)
            return serve_fail(e, 400, "prompt", "one prompt per request (got %d)",
                              cJSON_GetArraySize(f));
        f = f->child;
    }
    if (cJSON_IsString(f)) {
        if (!(p->prompt = strdup(f->valuestring))) return serve_fail(e, 500, NULL, "out of memory");
        return 0;
    }
    if (cJSON_IsArray(f)) return ids_from_array(f, vocab, p, e);
    return serve_fail(e, 400, "prompt", "'prompt' must be a string or an array of token ids");
}

/* A message's content as one string: a string, or text parts joined. */
static int content_text(const cJSON *c, int i, char **out, serve_error *e) {
    if (!c || cJSON_IsNull(c)) return (*out = strdup("")) ? 0 : serve_fail(e, 500, NULL, "out of memory");
    if (cJSON_IsString(c)) return (*out = strdup(c->valuestring)) ? 0 : serve_fail(e, 500, NULL, "out of memory");
    if (!cJSON_IsArray(c))
        return serve_fail(e, 400, "messages", "messages[%d].content must be a string or an array of parts", i);
    size_t len = 0;
    for (const cJSON *part = c->child; part; part = part->next) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) || strcmp(type->valuestring, "text"))
            return serve_fail(e, 400, "messages", "messages[%d].content: only parts of type \"text\" are supported", i);
        if (!cJSON_IsString(text))
            return serve_fail(e, 400, "messages", "messages[%d].content: a text part needs a string 'text'", i);
        len += strlen(text->valuestring);
    }
    if (!(*out = malloc(len + 1))) return serve_fail(e, 500, NULL, "out of memory");
    size_t at = 0;
    for (const cJSON *part = c->child; part; part = part->next) {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        size_t n = strlen(t);
        memcpy(*out + at, t, n);
        at += n;
    }
    (*out)[at] = 0;
    return 0;
}

/* The messages copied with each content made a plain string (what chat
 * templates expect); other keys of a message (name, tool_calls, ...) kept. */
static int get_messages(const cJSON *o, serve_params *p, serve_error *e) {
    const cJSON *f = field(o, "messages");
    if (!f) return serve_fail(e, 400, "messages", "'messages' is required");
    if (!cJSON_IsArray(f)) return serve_fail(e, 400, "messages", "'messages' must be an array");
    int n = cJSON_GetArraySize(f);
    if (n == 0) return serve_fail(e, 400, "messages", "'messages' is empty");
    if (n > SERVE_MAX_MESSAGES)
        return serve_fail(e, 400, "messages", "'messages' holds %d messages, at most %d", n, SERVE_MAX_MESSAGES);
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool"};
    if (!(p->messages = cJSON_CreateArray())) return serve_fail(e, 500, NULL, "out of memory");
    int i = 0;
    for (const cJSON *m = f->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m)) return serve_fail(e, 400, "messages", "messages[%d] must be an object", i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role)) return serve_fail(e, 400, "messages", "messages[%d].role must be a string", i);
        int known = 0;
        for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++) known |= !strcmp(role->valuestring, roles[r]);
        if (!known)
            return serve_fail(e, 400, "messages", "messages[%d].role must be system, developer, user, assistant or tool", i);
        char *text = NULL;
        if (content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), i, &text, e)) return -1;
        cJSON *copy = cJSON_Duplicate(m, 1);
        if (!copy) {
            free(text);
            return serve_fail(e, 500, NULL, "out of memory");
        }
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "content");
        cJSON_AddStringToObject(copy, "content", text);
        free(text);
        cJSON_AddItemToArray(p->messages, copy);
    }
    const cJSON *tools = field(o, "tools");
    if (tools) {
        if (!cJSON_IsArray(tools)) return serve_fail(e, 400, "tools", "'tools' must be an array");
        if (!(p->tools = cJSON_Duplicate(tools, 1))) return serve_fail(e, 500, NULL, "out of memory");
    }
    return 0;
}

/* ------------------------------------------------------------- the whole */

static int parse_fields(serve_kind kind, const cJSON *o, int vocab, serve_params *p, serve_error *e) {
    const cJSON *model = field(o, "model");
    if (model && !cJSON_IsString(model)) return serve_fail(e, 400, "model", "'model' must be a string");
    if (kind == SERVE_COMPLETION ? get_prompt(o, vocab, p, e) : get_messages(o, p, e)) return -1;

    double v;
    int given;
    /* max_tokens, and for chat its newer name max_completion_tokens */
    const char *mt = kind == SERVE_CHAT && field(o, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (get_num(o, mt, 1, 1 << 24, 1, &v, &given, e)) return -1;
    p->max_tokens = given ? (int)v : -1;
    if (get_num(o, "temperature", 0, 2, 0, &v, &given, e)) return -1;
    if (given) p->temperature = (float)v;
    if (get_num(o, "top_p", 0, 1, 0, &v, &given, e)) return -1;
    if (given && v == 0) return serve_fail(e, 400, "top_p", "'top_p' must be in (0, 1]");
    if (given) p->top_p = (float)v;
    if (get_num(o, "top_k", 0, 1 << 30, 1, &v, &given, e)) return -1;
    if (given) p->top_k = (int)v;
    /* any integer a JSON number holds exactly; negative seeds wrap to uint64 */
    if (get_num(o, "seed", -9007199254740992.0, 9007199254740992.0, 1, &v, &p->has_seed, e)) return -1;
    if (p->has_seed) p->seed = (uint64_t)(int64_t)v;
    if (get_stop(o, p, e) || get_bool(o, "stream", &p->stream, e)) return -1;
    /* an extension as in vLLM and llama.cpp's server: generate past EOS */
    if (get_bool(o, "ignore_eos", &p->ignore_eos, e)) return -1;

    if (kind == SERVE_COMPLETION) {
        /* logprobs: how many alternatives; 0 still returns the tokens' own */
        if (get_num(o, "logprobs", 0, SERVE_MAX_TOP_LOGPROBS, 1, &v, &given, e)) return -1;
        p->logprobs = given;
        p->top_logprobs = given ? (int)v : 0;
        int echo = 0;
        if (get_bool(o, "echo", &echo, e)) return -1;
        if (echo) return serve_fail(e, 400, "echo", "'echo' is not supported");
        const cJSON *suffix = field(o, "suffix");
        if (suffix && (!cJSON_IsString(suffix) || suffix->valuestring[0]))
            return serve_fail(e, 400, "suffix", "'suffix' is not supported");
        if (must_be(o, "best_of", 1, e)) return -1;
    } else {
        if (get_bool(o, "logprobs", &p->logprobs, e)) return -1;
        if (get_num(o, "top_logprobs", 0, SERVE_MAX_TOP_LOGPROBS, 1, &v, &given, e)) return -1;
        if (given && !p->logprobs)
            return serve_fail(e, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
        p->top_logprobs = given ? (int)v : 0;
    }
    if (must_be(o, "n", 1, e) || must_be(o, "presence_penalty", 0, e) ||
        must_be(o, "frequency_penalty", 0, e))
        return -1;
    const cJSON *bias = field(o, "logit_bias");
    if (bias && (!cJSON_IsObject(bias) || bias->child))
        return serve_fail(e, 400, "logit_bias", "'logit_bias' is not supported");
    const cJSON *so = field(o, "stream_options");
    if (so && !cJSON_IsObject(so)) return serve_fail(e, 400, "stream_options", "'stream_options' must be an object");
    return 0;
}

int serve_parse_request(serve_kind kind, const char *body, size_t len, int vocab, serve_params *p,
                        serve_error *e) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->max_tokens = -1;
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    if (!serve_utf8_valid(body, len)) return serve_fail(e, 400, NULL, "the body is not valid UTF-8");
    /* JSON allows no raw control characters (in strings they are escaped);
     * a NUL would also cut a C string short */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return serve_fail(e, 400, NULL, "the body holds a control character (byte 0x%02x at %zu)", c, i);
    }
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!o) return serve_fail(e, 400, NULL, "the body is not valid JSON (near byte %td)",
                              end ? end - body : (ptrdiff_t)0);
    int rc = 0;
    while (end && end < body + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
    if (end && end != body + len) rc = serve_fail(e, 400, NULL, "the body has bytes after its JSON value");
    else if (!cJSON_IsObject(o)) rc = serve_fail(e, 400, NULL, "the body must be a JSON object");
    else rc = parse_fields(kind, o, vocab, p, e);
    cJSON_Delete(o);
    if (rc) serve_params_free(p);
    return rc;
}
