/*
 * chat_prompt.c - a conversation turned into a model's prompt with its chat
 * template, as transformers' apply_chat_template passes it (moe template,
 * moe chat): the messages (reasoning fields aliased), tools, documents,
 * add_generation_prompt and the model's BOS/EOS token texts.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "chat_prompt.h"
#include "cli.h"

#define TEMPLATE_MAX_FILE ((size_t)64 << 20)

/* The text of token id (special tokens kept), or "" when id < 0. */
static char *token_text(const moe_tokenizer *t, int id) {
    char *text = NULL;
    size_t len = 0;
    moe_err err = {{0}};
    int32_t i = id;
    if (id < 0 || moe_detokenize(t, &i, 1, 0, &text, &len, &err)) return strdup("");
    return text;
}

/* transformers' _alias_reasoning_fields: a message with reasoning under any
 * of reasoning_content / thinking / reasoning gets it under "thinking" (first)
 * and "reasoning_content" too, as apply_chat_template passes it. */
static cJSON *alias_reasoning(cJSON *m) {
    static const char *const fields[] = {"reasoning_content", "thinking", "reasoning"};
    const cJSON *r = NULL;
    for (int i = 0; i < 3 && !r; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, fields[i]);
        if (v && !cJSON_IsNull(v)) r = v;
    }
    if (!r || !cJSON_IsObject(m)) return m;
    cJSON *out = cJSON_CreateObject();
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(m, "thinking");
    cJSON_AddItemToObject(out, "thinking", cJSON_Duplicate(th ? th : r, 1));
    int has_rc = 0;
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!strcmp(c->string, "thinking")) continue;
        has_rc |= !strcmp(c->string, "reasoning_content");
        cJSON_AddItemToObject(out, c->string, cJSON_Duplicate(!strcmp(c->string, "reasoning_content") ? r : c, 1));
    }
    if (!has_rc) cJSON_AddItemToObject(out, "reasoning_content", cJSON_Duplicate(r, 1));
    return out;
}

int chat_load_template(const char *cmd, const char *model, const char *file, moe_chat_template **t) {
    moe_err err = {{0}};
    if (file) {
        char *src;
        size_t len;
        if (cli_read_file(file, TEMPLATE_MAX_FILE, &src, &len, &err)) {
            cli_error(cmd, "--chat-template: %s", err.msg);
            return -1;
        }
        int rc = moe_chat_template_parse(t, src, len, file, &err);
        free(src);
        if (rc) cli_error(cmd, "%s", err.msg);
        return rc;
    }
    if (moe_chat_template_load(t, model, &err)) {
        cli_error(cmd, "%s", err.msg);
        return -1;
    }
    if (!*t) {
        cli_error("template",
                  "%s ships no chat template (tokenizer_config.json \"chat_template\", chat_template.jinja, "
                  "chat_template.json or GGUF tokenizer.chat_template); give one with --chat-template FILE",
                  model);
        return -1;
    }
    return 0;
}

/* The template's variables: the --messages object (or {"messages": array}),
 * --tools, add_generation_prompt, and the model's bos/eos token texts. */
static cJSON *build_context(const cJSON *msgs, const cJSON *tools, int gen, const moe_tokenizer *tok) {
    cJSON *ctx;
    if (cJSON_IsArray(msgs)) {
        ctx = cJSON_CreateObject();
        cJSON_AddItemToObject(ctx, "messages", cJSON_Duplicate(msgs, 1));
    } else {
        ctx = cJSON_Duplicate(msgs, 1);
    }
    cJSON *list = cJSON_GetObjectItemCaseSensitive(ctx, "messages");
    cJSON *aliased = cJSON_CreateArray();
    for (cJSON *m = list ? list->child : NULL; m; m = m->next) {
        cJSON *a = alias_reasoning(m);
        cJSON_AddItemToArray(aliased, a == m ? cJSON_Duplicate(m, 1) : a);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(ctx, "messages", aliased);
    if (tools) {
        cJSON_DeleteItemFromObjectCaseSensitive(ctx, "tools");
        cJSON_AddItemToObject(ctx, "tools", cJSON_Duplicate(tools, 1));
    } else if (!cJSON_GetObjectItemCaseSensitive(ctx, "tools")) {
        cJSON_AddNullToObject(ctx, "tools");
    }
    if (!cJSON_GetObjectItemCaseSensitive(ctx, "documents")) cJSON_AddNullToObject(ctx, "documents");
    cJSON_DeleteItemFromObjectCaseSensitive(ctx, "add_generation_prompt");
    cJSON_AddBoolToObject(ctx, "add_generation_prompt", gen);
    if (tok) {
        static const char *const keys[] = {"bos_token", "eos_token"};
        int ids[] = {moe_tokenizer_bos(tok), moe_tokenizer_eos(tok)};
        for (int i = 0; i < 2; i++) {
            char *text = token_text(tok, ids[i]);
            cJSON_DeleteItemFromObjectCaseSensitive(ctx, keys[i]);
            cJSON_AddStringToObject(ctx, keys[i], text);
            free(text);
        }
    }
    return ctx;
}

/* The number literals of text (outside strings), in document order, walked
 * alongside the tree's number nodes (cJSON builds them in that order). */
typedef struct num_scan {
    const char *text;
    size_t len, pos;
} num_scan;

static int next_number(num_scan *sc, const char **lit, size_t *n) {
    const char *t = sc->text;
    for (size_t i = sc->pos; i < sc->len; i++) {
        if (t[i] == '"') {
            for (i++; i < sc->len && t[i] != '"'; i++)
                if (t[i] == '\\') i++;
        } else if (t[i] == '-' || (t[i] >= '0' && t[i] <= '9')) {
            size_t j = i;
            while (j < sc->len && (strchr("+-.eE", t[j]) || (t[j] >= '0' && t[j] <= '9'))) j++;
            *lit = t + i;
            *n = j - i;
            sc->pos = j;
            return 1;
        }
    }
    return 0;
}

static int keep_literals(cJSON *node, num_scan *sc) {
    for (; node; node = node->next) {
        if (cJSON_IsNumber(node)) {
            const char *lit;
            size_t n;
            if (!next_number(sc, &lit, &n)) return -1;
            char *raw = malloc(n + 1);
            if (!raw) return -1;
            memcpy(raw, lit, n);
            raw[n] = 0;
            node->type = cJSON_Raw;
            node->valuestring = raw;
        } else if (node->child && keep_literals(node->child, sc)) {
            return -1;
        }
    }
    return 0;
}

int chat_keep_number_literals(cJSON *root, const char *text, size_t len) {
    num_scan sc = {text, len, 0};
    return keep_literals(root, &sc);
}

int chat_render(const char *cmd, const moe_chat_template *t, const cJSON *msgs, const cJSON *tools, int gen,
                const moe_tokenizer *tok, char **out, size_t *len) {
    cJSON *ctx = build_context(msgs, tools, gen, tok);
    char *json = ctx ? cJSON_PrintUnformatted(ctx) : NULL;
    cJSON_Delete(ctx);
    moe_err err = {{0}};
    *out = NULL;
    if (!json) {
        cli_error(cmd, "out of memory");
        return -1;
    }
    int rc = moe_chat_template_render(t, json, strlen(json), out, len, &err);
    if (rc) cli_error(cmd, "%s", err.msg);
    free(json);
    return rc;
}
