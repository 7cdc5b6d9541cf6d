/*
 * chat.h - the prompt of a chat request (chat.c): its messages rendered
 * with the model's chat template (include/moe_chat.h) as transformers'
 * apply_chat_template does, with add_generation_prompt, then tokenized
 * without adding special tokens (the template writes them).
 */
#ifndef MOE_SERVE_CHAT_H
#define MOE_SERVE_CHAT_H

#include "api.h"
#include "moe_chat.h"

/* The token text of BOS and EOS (malloc'd; "" when the tokenizer has none),
 * the bos_token / eos_token a template sees. */
char *serve_chat_special(const moe_tokenizer *tok, int id);

/* Render p->messages (and p->tools) with t; *ids malloc'd. 0, or -1 with
 * *e filled: 400 when the template refuses the conversation (its message),
 * 500 when the text cannot be tokenized. */
int serve_chat_prompt(const moe_chat_template *t, const moe_tokenizer *tok, const char *bos,
                      const char *eos, const serve_params *p, int32_t **ids, int *n_ids,
                      serve_error *e);

#endif
