/*
 * cmd_template.c - `moe template MODEL --messages FILE`: the prompt a model
 * sees for a conversation, rendered with its chat template as transformers'
 * apply_chat_template(messages, tools=..., add_generation_prompt=True,
 * tokenize=False) renders it.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "moe_chat.h"

#define TEMPLATE_MAX_JSON ((size_t)64 << 20)

static cJSON *read_json(const char *what, const char *path) {
    char *buf;
    size_t len;
    moe_err err = {{0}};
    if (cli_read_file(path, TEMPLATE_MAX_JSON, &buf, &len, &err)) {
        cli_error("template", "%s: %s", what, err.msg);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!j) cli_error("template", "%s: %s is not valid JSON", what, path);
    return j;
}

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

static int load_template(const char *model, const char *file, moe_chat_template **t) {
    moe_err err = {{0}};
    if (file) {
        char *src;
        size_t len;
        if (cli_read_file(file, TEMPLATE_MAX_JSON, &src, &len, &err)) {
            cli_error("template", "--chat-template: %s", err.msg);
            return -1;
        }
        int rc = moe_chat_template_parse(t, src, len, file, &err);
        free(src);
        if (rc) cli_error("template", "%s", err.msg);
        return rc;
    }
    if (moe_chat_template_load(t, model, &err)) {
        cli_error("template", "%s", err.msg);
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
static cJSON *build_context(cJSON *msgs, cJSON *tools, int gen, const moe_tokenizer *tok) {
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

int cmd_template(int argc, char **argv) {
    const char *tpl_file = NULL, *msgs_file = NULL, *tools_file = NULL;
    int no_gen = 0;
    const arg_opt opts[] = {
        {"--messages", "-m", ARG_STR, &msgs_file, 0, 0, 0, "FILE",
         "the conversation: a JSON list of messages, or an object with a \"messages\" list\n                         (its other keys become template variables)"},
        {"--chat-template", NULL, ARG_STR, &tpl_file, 0, 0, 0, "FILE", "a Jinja template file instead of the model's own"},
        {"--tools", NULL, ARG_STR, &tools_file, 0, 0, 0, "FILE", "a JSON list of tool (function) schemas"},
        {"--no-generation-prompt", NULL, ARG_FLAG, &no_gen, 0, 0, 0, NULL,
         "do not end with the assistant's turn opening (add_generation_prompt=False)"},
    };
    const arg_cmd c = {
        "template", "MODEL --messages FILE [options] | --chat-template FILE --messages FILE",
        "Print the prompt a model sees for a conversation: its chat template rendered as\n"
        "transformers' apply_chat_template renders it (add_generation_prompt=True unless\n"
        "--no-generation-prompt), with the model's BOS/EOS token texts.",
        "The template comes from MODEL (chat_template.jinja, chat_template.json,\n"
        "tokenizer_config.json \"chat_template\", or GGUF tokenizer.chat_template) unless\n"
        "--chat-template; without MODEL, bos_token and eos_token are those of the\n"
        "--messages object, if any. The prompt is printed byte for byte, no newline added.",
        opts, (int)(sizeof opts / sizeof *opts), 0, 1, "MODEL"};
    const char *pos[1];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    const char *model = np ? pos[0] : NULL;
    if (!model && !tpl_file) {
        cli_error("template", "give MODEL or --chat-template FILE (run 'moe template --help')");
        return 2;
    }
    if (!msgs_file) {
        cli_error("template", "--messages FILE is required (run 'moe template --help')");
        return 2;
    }
    cJSON *msgs = read_json("--messages", msgs_file), *tools = NULL;
    if (!msgs) return 1;
    if (!cJSON_IsArray(msgs) && !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(msgs, "messages"))) {
        cli_error("template", "--messages: %s is neither a list of messages nor an object with a \"messages\" list", msgs_file);
        cJSON_Delete(msgs);
        return 1;
    }
    if (tools_file && !(tools = read_json("--tools", tools_file))) {
        cJSON_Delete(msgs);
        return 1;
    }
    if (tools && !cJSON_IsArray(tools)) {
        cli_error("template", "--tools: %s is not a JSON list", tools_file);
        cJSON_Delete(msgs);
        cJSON_Delete(tools);
        return 1;
    }
    moe_chat_template *t = NULL;
    moe_tokenizer *tok = NULL;
    int rc = 1;
    if (load_template(model, tpl_file, &t)) goto done;
    if (model && cli_load_tokenizer("template", model, &tok)) goto done;
    cJSON *ctx = build_context(msgs, tools, !no_gen, tok);
    char *json = cJSON_PrintUnformatted(ctx);
    cJSON_Delete(ctx);
    char *out = NULL;
    size_t len = 0;
    moe_err err = {{0}};
    if (!json) cli_error("template", "out of memory");
    else if (moe_chat_template_render(t, json, strlen(json), &out, &len, &err)) cli_error("template", "%s", err.msg);
    else {
        fwrite(out, 1, len, stdout);
        rc = 0;
    }
    free(out);
    free(json);
done:
    moe_chat_template_free(t);
    moe_tokenizer_free(tok);
    cJSON_Delete(msgs);
    cJSON_Delete(tools);
    return rc;
}
