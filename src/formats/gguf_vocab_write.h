/*
 * gguf_vocab_write.h - the vocabulary of a Hugging Face tokenizer
 * directory (tokenizer.json, tokenizer_config.json, config.json) as the
 * tokenizer.* metadata of a GGUF file: the keys and values llama.cpp's
 * convert_hf_to_gguf.py writes for the model families moe runs, so that a
 * GGUF written by `moe convert` / `moe quantize` carries its tokenizer
 * (docs/GGUF_TOKENIZER.md, "Writing").
 *
 *   byte-level BPE          tokenizer.ggml.model "gpt2": tokens, token_type,
 *   (Qwen, OLMoE, Llama 3)  merges, pre (the pre-tokenizer, named as the
 *                           converter names it), special ids and flags
 *   BPE with byte fallback  "llama" (SentencePiece): tokens, scores,
 *   (Mixtral, Llama 2)      token_type, special ids and flags. tokenizer.json
 *                           has no scores: they are rebuilt from its merges so
 *                           that the SentencePiece rule (best score first)
 *                           merges in tokenizer.json's order.
 *
 * And the reverse: a tokenizer.json + tokenizer_config.json rebuilt from a
 * GGUF file's metadata (src/tokenizer/tokenizer_gguf_json.c).
 */
#ifndef MOE_FORMATS_GGUF_VOCAB_WRITE_H
#define MOE_FORMATS_GGUF_VOCAB_WRITE_H

#include <stdint.h>

#include "moe.h"
#include "formats/gguf.h"

typedef struct tok_gguf_vocab {
    gguf_wkv *kv;           /* [n_kv] the tokenizer.* pairs, in the converter's order */
    int n_kv, cap_kv;
    const char *model;      /* "gpt2" or "llama" */
    char pre[32];           /* tokenizer.ggml.pre */
    const char *pre_how;    /* how pre was found: "hash" (llama.cpp's probe hash),
                               "layout" (tokenizer.json's normalizer and splits; and
                               for "llama", always "default" as the converter writes),
                               "none" (not recognized: "default") */
    int32_t n_tokens;       /* = the model's vocabulary (embedding rows) */
    int32_t n_padded;       /* ids tokenizer.json does not name ("[PADn]" tokens) */
    char note[1024];        /* what the user should know ("" if nothing) */
    /* storage the pairs point into */
    void **owned;            /* malloc'd blocks */
    int n_owned, cap_owned;
    struct cJSON *json[3];   /* tokenizer.json, tokenizer_config.json, config.json */
    moe_tokenizer *tok;      /* tokenizer.json as moe loads it */
} tok_gguf_vocab;

/* Build the pairs for dir's tokenizer, for a model of n_vocab embedding
 * rows (ids past the tokenizer's become "[PADn]" tokens, as the converter
 * writes them). arch is the GGUF architecture ("llama" reads
 * tokenizer_config.json's add_prefix_space, as the converter does for it).
 * Returns 0 (built), 1 (nothing to write: dir has no tokenizer.json, or
 * one GGUF cannot carry; v->note says why) or -1 (out of memory). v is
 * always fit for tok_gguf_vocab_free. */
int tok_gguf_vocab_build(tok_gguf_vocab *v, const char *dir, const char *arch, int32_t n_vocab,
                         moe_err *err);
void tok_gguf_vocab_free(tok_gguf_vocab *v);

/* Check a written file: the tokenizer its metadata gives against dir's
 * tokenizer.json on probe texts (ASCII, accents, CJK, emoji, code, number
 * and whitespace runs, each added token inside text), with and without
 * special tokens. *same of *total agree. 0, or -1 when either cannot be
 * loaded. */
int tok_gguf_vocab_check(const char *gguf_path, const char *dir, int *same, int *total,
                         moe_err *err);

/* The reverse: dir/tokenizer.json and dir/tokenizer_config.json rebuilt
 * from the tokenizer metadata of a GGUF file, so that HF `tokenizers` (and
 * moe) load it and give the GGUF tokenizer's ids. Returns 0, 1 when the file
 * carries no vocabulary moe reads (note says why), -1 on a write error. */
int tok_gguf_to_json(const char *gguf_path, const char *dir, char *note, size_t note_size,
                     moe_err *err);

#endif
