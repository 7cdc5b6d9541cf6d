/*
 * chat_prompt.h - a conversation turned into a model's prompt with its chat
 * template (moe template, moe chat).
 */
#ifndef MOE_CLI_CHAT_PROMPT_H
#define MOE_CLI_CHAT_PROMPT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "moe.h"
#include "moe_chat.h"

/* The template in file if given, else model's own (saying where it looked
 * when it has none). 0, or -1 with the message printed as "moe CMD: ...". */
int chat_load_template(const char *cmd, const char *model, const char *file, moe_chat_template **t);

/* Make every number of root (parsed from text[0..len)) a raw node holding
 * its literal, so the context the template sees keeps 21.0 a float and 21
 * an int as Python's json does (cJSON keeps only a double). 0 or -1. */
int chat_keep_number_literals(cJSON *root, const char *text, size_t len);

/* Render msgs (a list of messages, or an object with a "messages" list whose
 * other keys become template variables) with tools (a list or NULL),
 * add_generation_prompt = gen, and tok's BOS/EOS texts (tok may be NULL).
 * *out is malloc'd. 0, or -1 with the message printed. */
int chat_render(const char *cmd, const moe_chat_template *t, const cJSON *msgs, const cJSON *tools, int gen,
                const moe_tokenizer *tok, char **out, size_t *len);

#endif
