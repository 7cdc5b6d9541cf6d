/*
 * chat.c - a chat request's prompt (chat.h).
 */
#include <stdlib.h>
#include <string.h>

#include "chat.h"

char *serve_chat_special(const moe_tokenizer *tok, int id) {
    char *text = NULL;
    size_t len = 0;
    moe_err err;
    if (id < 0 || moe_detokenize(tok, (const int32_t *)&id, 1, 0, &text, &len, &err)) return strdup("");
    return text;
}

int serve_chat_prompt(const moe_chat_template *t, const moe_tokenizer *tok, const char *bos,
                      const char *eos, const serve_params *p, int32_t **ids, int *n_ids,
                      serve_error *e) {
    *ids = NULL;
    *n_ids = 0;
    cJSON *ctx = cJSON_CreateObject();
    if (!ctx) return serve_fail(e, 500, NULL, "out of memory");
    /* borrowed: the request keeps owning messages and tools */
    cJSON_AddItemReferenceToObject(ctx, "messages", p->messages);
    if (p->tools) cJSON_AddItemReferenceToObject(ctx, "tools", p->tools);
    cJSON_AddBoolToObject(ctx, "add_generation_prompt", 1);
    cJSON_AddStringToObject(ctx, "bos_token", bos ? bos : "");
    cJSON_AddStringToObject(ctx, "eos_token", eos ? eos : "");
    char *json = cJSON_PrintUnformatted(ctx);
    cJSON_Delete(ctx);
    if (!json) return serve_fail(e, 500, NULL, "out of memory");
    char *text = NULL;
    size_t len = 0;
    moe_err err = {{0}};
    int rc = moe_chat_template_render(t, json, strlen(json), &text, &len, &err);
    free(json);
    if (rc) return serve_fail(e, 400, "messages", "the chat template refused the messages: %s", err.msg);
    rc = moe_tokenize(tok, text, len, 0, ids, n_ids, &err);
    free(text);
    if (rc) return serve_fail(e, 500, NULL, "tokenizing the chat prompt: %s", err.msg);
    return 0;
}
