/*
 * gguf_vocab_write_impl.h - what the files writing a vocabulary as GGUF
 * metadata share (gguf_vocab_write.c: tokens, types, scores, merges,
 * the pre-tokenizer; gguf_vocab_special.c: special ids, add_*_token
 * flags and the chat template, as gguf-py's SpecialVocab finds them).
 */
#ifndef MOE_FORMATS_GGUF_VOCAB_WRITE_IMPL_H
#define MOE_FORMATS_GGUF_VOCAB_WRITE_IMPL_H

#include <stddef.h>

#include "tokenizer/tok_internal.h"
#include "formats/gguf_vocab_write.h"

/* llama.cpp's token types (gguf.TokenType) */
enum { TGW_NORMAL = 1, TGW_UNKNOWN = 2, TGW_CONTROL = 3, TGW_USER_DEFINED = 4, TGW_UNUSED = 5,
       TGW_BYTE = 6 };

/* One build: the parsed files and the loaded tokenizer. */
typedef struct tgw {
    tok_gguf_vocab *v;
    const char *dir;
    struct cJSON *tj;      /* tokenizer.json */
    struct cJSON *tc;      /* tokenizer_config.json, or NULL */
    struct cJSON *cfg;     /* config.json, or NULL */
    moe_tokenizer *tok;    /* tokenizer.json as moe loads it */
    int32_t n;             /* tokens written (the model's vocabulary) */
} tgw;

/* Keep p until tok_gguf_vocab_free (freed now if it cannot be kept);
 * returns p, or NULL (p NULL or out of memory). */
void *tgw_keep(tok_gguf_vocab *v, void *p);
/* A kept copy of s[0..n) with a NUL, or NULL. */
char *tgw_strndup(tok_gguf_vocab *v, const char *s, size_t n);
/* Append a pair (the key and everything it points to must stay alive). */
int tgw_add(tok_gguf_vocab *v, gguf_wkv kv, moe_err *err);
/* Append a sentence to v->note. */
void tgw_note(tok_gguf_vocab *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* gguf-py's does_token_look_special. */
int tgw_looks_special(const char *s);

/* gguf_vocab_special.c: the special token ids, add_{bos,eos,sep}_token,
 * tokenizer.chat_template and the normalizer flags, appended in that order
 * (SpecialVocab.add_to_gguf). */
int tgw_special(tgw *g, moe_err *err);

#endif
