/*
 * moe_gguf.h - the vocabulary a GGUF file written from a model carries, and
 * the way back (`moe convert`, `moe quantize`; docs/GGUF_TOKENIZER.md).
 *
 * A Hugging Face tokenizer directory (tokenizer.json, tokenizer_config.json,
 * config.json) becomes the tokenizer.* metadata llama.cpp's
 * convert_hf_to_gguf.py writes: "gpt2" for byte-level BPE (tokens, types,
 * merges, the pre-tokenizer named as llama.cpp names it), "llama" for BPE
 * with byte fallback (tokens, scores rebuilt from the merges, types), the
 * special ids and flags. moe_quant_write_gguf (moe_quant.h) writes it.
 *
 * Same conventions as moe.h: 0 on success, -1 with *err filled on error.
 */
#ifndef MOE_GGUF_H
#define MOE_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "moe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moe_gguf_vocab moe_gguf_vocab;

/* The vocabulary for a GGUF written from m, loaded from IN (a directory or
 * a .gguf file): the tokenizer of tok (a directory, or a tokenizer.json in
 * one) when given, else of IN when IN is a directory. A GGUF IN that has a
 * vocabulary keeps its own: *out is NULL, as it is when there is no
 * tokenizer to take. Otherwise *out is set even when the tokenizer cannot
 * be carried (WordPiece, Unigram, ...): then the info's note says why and
 * moe_gguf_vocab_writes is 0. */
int moe_gguf_vocab_for(moe_gguf_vocab **out, const moe_model *m, const char *in, const char *tok,
                       moe_err *err);
void moe_gguf_vocab_free(moe_gguf_vocab *v);

/* 1 when v holds tokenizer.* pairs to write (NULL: 0). */
int moe_gguf_vocab_writes(const moe_gguf_vocab *v);

/* What v holds; the strings live as long as v. */
typedef struct moe_gguf_vocab_info {
    const char *dir;     /* the directory whose tokenizer it is */
    const char *model;   /* tokenizer.ggml.model: "gpt2" or "llama" */
    const char *pre;     /* tokenizer.ggml.pre */
    const char *pre_how; /* how pre was found: "hash" (llama.cpp's tokenizer hash),
                            "layout" (tokenizer.json's pre-tokenizer), "none" */
    int32_t n_tokens;    /* = the model's vocabulary (embedding rows) */
    int32_t n_padded;    /* ids past tokenizer.json's, written as "[PADn]" */
    const char *note;    /* what the user should know, "" if nothing */
} moe_gguf_vocab_info;
void moe_gguf_vocab_info_get(const moe_gguf_vocab *v, moe_gguf_vocab_info *info);

/* Check a written file: the tokenizer its metadata gives against dir's
 * tokenizer.json on probe texts (ASCII, accents, CJK, emoji, code, numbers,
 * whitespace runs, each added token inside text), with and without special
 * tokens; *same of *total agree. 0, or -1 when either cannot be loaded. */
int moe_gguf_vocab_check(const char *gguf_path, const char *dir, int *same, int *total,
                         moe_err *err);

/* The way back: dir/tokenizer.json + dir/tokenizer_config.json rebuilt from
 * a GGUF file's tokenizer metadata, which HF `tokenizers` and moe load with
 * the GGUF tokenizer's ids. 0, 1 when the file carries no vocabulary moe
 * reads (note says why), -1 on an error. */
int moe_gguf_to_tokenizer_json(const char *gguf_path, const char *dir, char *note,
                               size_t note_size, moe_err *err);

#ifdef __cplusplus
}
#endif
#endif
