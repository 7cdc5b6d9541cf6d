/*
 * chat_api.c - the public face of the chat-template interpreter
 * (moe_chat.h): parse a template (chat_lex.c, chat_parse.c, chat_stmt.c),
 * render it over a JSON context (chat_eval.c), free it. A render owns one
 * arena and one jmp_buf: every error inside it unwinds to here, and the
 * arena goes with everything the render allocated.
 */
#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "tokenizer/chat_internal.h"

int moe_chat_template_render(const moe_chat_template *t, const char *ctx_json, size_t ctx_len, char **out,
                             size_t *out_len, moe_err *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    chat_rt *rt = calloc(1, sizeof *rt);
    if (!rt) return moe_fail(err, "%s: out of memory", t->name);
    rt->t = t;
    rt->err = err;
    rt->arena.limit = CHAT_MAX_ARENA;
    cJSON *volatile ctx = NULL;
    if (setjmp(rt->jmp)) {
        cJSON_Delete(ctx);
        arena_free(&rt->arena);
        free(rt);
        return -1;
    }
    rt->globals = chat_frame_new(rt, NULL);
    if (ctx_json && ctx_len) {
        ctx = cJSON_ParseWithLength(ctx_json, ctx_len);
        if (!ctx || !cJSON_IsObject(ctx)) rt_fail(rt, "the context is not a JSON object");
        size_t n_flags, idx = 0;
        unsigned char *flags = json_float_flags(rt, ctx_json, ctx_len, &n_flags);
        for (const cJSON *c = ctx->child; c; c = c->next) {
            size_t kl = strlen(c->string);
            char *name = rt_alloc(rt, kl + 1);
            memcpy(name, c->string, kl);
            chat_frame_set(rt, rt->globals, name, jv_from_cjson(rt, c, flags, n_flags, &idx));
        }
    }
    chat_frame *top = chat_frame_new(rt, rt->globals);
    sbuf o = {.rt = rt};
    sb_put(&o, "", 0);
    chat_exec(rt, top, t->body, &o);
    char *res = malloc(o.n + 1);
    if (!res) rt_fail(rt, "out of memory");
    memcpy(res, o.p, o.n + 1);
    *out = res;
    if (out_len) *out_len = o.n;
    cJSON_Delete(ctx);
    arena_free(&rt->arena);
    free(rt);
    return 0;
}

int moe_chat_template_parse(moe_chat_template **out, const char *src, size_t len, const char *name, moe_err *err) {
    *out = NULL;
    if (!name) name = "template";
    moe_chat_template *t = calloc(1, sizeof *t);
    if (!t) return moe_fail(err, "%s: out of memory", name);
    t->fixed_time = -1;
    t->arena.limit = CHAT_MAX_ARENA;
    t->name = strdup(name);
    t->src = malloc(len + 1);
    if (!t->name || !t->src) {
        moe_chat_template_free(t);
        return moe_fail(err, "%s: out of memory", name);
    }
    if (len) memcpy(t->src, src, len);
    t->src[len] = 0;
    chat_tok *toks;
    int n = chat_lex(&t->arena, src, len, t->name, &toks, err);
    if (n < 0 || chat_parse(&t->arena, toks, n, t->name, &t->body, err)) {
        moe_chat_template_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void moe_chat_template_free(moe_chat_template *t) {
    if (!t) return;
    arena_free(&t->arena);
    free(t->name);
    free(t->src);
    free(t);
}

const char *moe_chat_template_source(const moe_chat_template *t) { return t->src; }

void moe_chat_template_set_time(moe_chat_template *t, int64_t unix_time) { t->fixed_time = unix_time < 0 ? -1 : unix_time; }
