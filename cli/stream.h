/*
 * stream.h - writing generated text to stdout as it is produced (moe
 * generate, moe chat). The generated ids are decoded again after each token,
 * behind a few prompt tokens of context (so a leading space or a word joined
 * to the prompt comes out as the whole decode would write it), and only text
 * that can no longer change is printed: never a partial UTF-8 sequence, and
 * not a trailing U+FFFD, which a byte-level tokenizer writes for a character
 * whose remaining bytes are still to come.
 */
#ifndef MOE_CLI_STREAM_H
#define MOE_CLI_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "moe.h"

#define CONTEXT_TOKENS 4 /* prompt tokens decoded in front of the output */

typedef struct streamer {
    const moe_tokenizer *tok;
    int tok_vocab;
    int32_t *ids;     /* [n_ctx_ids + max_new] context tokens, then the generated ones */
    int n_ids;
    int n_ctx_ids;    /* context tokens in front */
    char *prefix;     /* decode of the context tokens */
    size_t prefix_len;
    size_t printed;   /* bytes of the continuation already written */
} streamer;

/* Decode ids and write what is new. final: write everything left. */
int stream_emit(streamer *st, int final, moe_err *err);

#endif
