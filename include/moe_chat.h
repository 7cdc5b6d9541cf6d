/*
 * moe_chat.h - chat templates: the Jinja programs models ship to turn a list
 * of messages into the prompt text they were trained on.
 *
 * The interpreter renders byte-identically to Python jinja2 as transformers'
 * apply_chat_template configures it: an ImmutableSandboxedEnvironment with
 * trim_blocks and lstrip_blocks, the loopcontrols extension ({% break %},
 * {% continue %}), the {% generation %} block, and the globals
 * raise_exception(msg), strftime_now(fmt), namespace(...), dict(...), range().
 * tojson is transformers' (ensure_ascii=False, indent=, separators=,
 * sort_keys=). A template that uses a feature this interpreter lacks is
 * refused at parse time with an error naming the feature and line; a
 * template that refuses a conversation (raise_exception) fails the render
 * with its message and line. Rendering is bounded (recursion depth, loop
 * iterations, output and working memory), so a hostile template gets an
 * error, never a hang or a crash.
 */
#ifndef MOE_CHAT_H
#define MOE_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "moe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moe_chat_template moe_chat_template;

/* Parse template source (len bytes). name is used in error messages. A
 * template that uses a feature this interpreter lacks is refused here with
 * an error naming the feature and line. */
int moe_chat_template_parse(moe_chat_template **out, const char *src, size_t len, const char *name,
                            moe_err *err);

/* The template a model ships: tokenizer_config.json "chat_template" (a
 * string, or a list of {"name","template"} where "default" is used), or
 * chat_template.jinja / chat_template.json in the model directory, or GGUF
 * metadata tokenizer.chat_template. *out = NULL (return 0) if none. */
int moe_chat_template_load(moe_chat_template **out, const char *model_path, moe_err *err);

void moe_chat_template_free(moe_chat_template *t);

/* ctx_json: a JSON object whose keys become the template's global variables
 * (messages, tools, add_generation_prompt, bos_token, eos_token, ... as
 * transformers passes them). On success *out is a malloc'd NUL-terminated
 * string of *out_len bytes. Errors (including raise_exception) name the
 * line. */
int moe_chat_template_render(const moe_chat_template *t, const char *ctx_json, size_t ctx_len,
                             char **out, size_t *out_len, moe_err *err);

/* The template's source text as parsed (NUL-terminated). */
const char *moe_chat_template_source(const moe_chat_template *t);

/* Fix the clock strftime_now() reads to unix_time (seconds, formatted as
 * UTC), for reproducible renders; a negative value returns to the local
 * time of each render. */
void moe_chat_template_set_time(moe_chat_template *t, int64_t unix_time);

#ifdef __cplusplus
}
#endif

#endif
