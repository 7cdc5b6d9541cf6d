/*
 * fuzz_chat_template.c - libFuzzer target for the chat-template interpreter
 * (moe_chat_template_parse + _render, src/tokenizer/chat_*.c). The input is
 * a template, optionally followed by a NUL byte and the JSON context to
 * render it with; without one it renders over a fixed conversation with a
 * tool call and a tools list. Parsing and rendering must end with an output
 * or a message, within the interpreter's limits, never a crash or a hang.
 */
#include "fuzz_util.h"
#include "moe_chat.h"

static const char CONTEXT[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"Weather in Paris? \\u00e9\\u65e5\"},"
    " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"abc123def\", \"type\": \"function\","
    "  \"function\": {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 1.5}}}]},"
    " {\"role\": \"tool\", \"tool_call_id\": \"abc123def\", \"content\": \"{\\\"t\\\": 21}\"},"
    " {\"role\": \"assistant\", \"content\": \"21 C\", \"reasoning_content\": \"look it up\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"d\","
    "  \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}],"
    " \"documents\": null, \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *src = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t src_len = nul ? (size_t)(nul - data) : size;
    const char *ctx = nul ? (const char *)nul + 1 : CONTEXT;
    size_t ctx_len = nul ? size - src_len - 1 : sizeof CONTEXT - 1;

    moe_chat_template *t = NULL;
    moe_err err = {{0}};
    if (moe_chat_template_parse(&t, src, src_len, "fuzz", &err) != 0) {
        fuzz_rejected("moe_chat_template_parse", err.msg);
        if (t) fuzz_die("moe_chat_template_parse", "failed but returned a template");
        return 0;
    }
    moe_chat_template_set_time(t, 1768478400);
    char *out = NULL;
    size_t n = 0;
    if (moe_chat_template_render(t, ctx, ctx_len, &out, &n, &err) != 0) {
        fuzz_rejected("moe_chat_template_render", err.msg);
        if (out) fuzz_die("moe_chat_template_render", "failed but returned an output");
    } else {
        if (!out || out[n] != 0) fuzz_die("moe_chat_template_render", "output not NUL-terminated");
        free(out);
    }
    moe_chat_template_free(t);
    return 0;
}
