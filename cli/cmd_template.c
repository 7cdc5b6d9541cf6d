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
#include "chat_prompt.h"

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
    if (!j) cli_error("template", "%s: %s is not valid JSON", what, path);
    else if (chat_keep_number_literals(j, buf, len)) {
        cli_error("template", "%s: %s: out of memory", what, path);
        cJSON_Delete(j);
        j = NULL;
    }
    free(buf);
    return j;
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
    char *out = NULL;
    size_t len = 0;
    if (chat_load_template("template", model, tpl_file, &t)) goto done;
    if (model && cli_load_tokenizer("template", model, &tok)) goto done;
    if (chat_render("template", t, msgs, tools, !no_gen, tok, &out, &len) == 0) {
        fwrite(out, 1, len, stdout);
        rc = 0;
    }
    free(out);
done:
    moe_chat_template_free(t);
    moe_tokenizer_free(tok);
    cJSON_Delete(msgs);
    cJSON_Delete(tools);
    return rc;
}
