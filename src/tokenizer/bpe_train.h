/*
 * bpe_train.h - learning a byte-level BPE tokenizer (moe_tokenizer_train in
 * moe.h), in three steps a test can drive one at a time:
 *   1. bpe_counter (bpe_train.c): text -> valid UTF-8 -> special tokens cut
 *      out -> NFC -> Qwen2 split regex -> a table of distinct words (raw
 *      bytes, before the ByteLevel mapping) with their counts.
 *   2. bpe_learn (bpe_learn.c): words -> merges by pair frequency, with pair
 *      counts updated incrementally, so a merge costs the words it touches.
 *   3. bpe_write (bpe_train.c): tokenizer.json + tokenizer_config.json.
 */
#ifndef MOE_TOKENIZER_BPE_TRAIN_H
#define MOE_TOKENIZER_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "moe.h"

/* The pre-tokenizer of Qwen2 / Qwen3 tokenizer.json files. */
#define BPE_QWEN2_REGEX                                                                    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

#define BPE_MAX_SPECIAL 256         /* special tokens one tokenizer may have */
#define BPE_MAX_SPECIAL_LEN 256     /* bytes in one special token */
#define BPE_MAX_VOCAB (1 << 24)     /* what moe_tokenizer_load accepts */

/* ------------------------------------------------------------- counting */

typedef struct bpe_counter bpe_counter;

/* special: tokens cut out of the text before splitting (not counted).
 * max_words: distinct words kept; past it, or past 64 bytes a word on
 * average, the rarest are pruned. */
int bpe_counter_new(bpe_counter **out, const char *const *special, int n_special,
                    int64_t max_words, moe_err *err);
void bpe_counter_free(bpe_counter *c);
/* Count the words of s[0..n). Splitting a text in two at a point
 * bpe_safe_cut picks counts the same words as the whole. */
int bpe_counter_add_text(bpe_counter *c, const char *s, size_t n, moe_err *err);
/* Add count to one word (raw bytes) directly. */
int bpe_counter_add_word(bpe_counter *c, const char *s, size_t n, uint64_t count, moe_err *err);
int64_t bpe_counter_words(const bpe_counter *c);  /* words counted, with repeats */
int64_t bpe_counter_unique(const bpe_counter *c); /* distinct words kept */
int64_t bpe_counter_pruned(const bpe_counter *c); /* distinct words dropped */
/* The i-th distinct word (0 <= i < capacity; returns 0 for an empty slot):
 * walk with bpe_counter_slots. */
size_t bpe_counter_slots(const bpe_counter *c);
int bpe_counter_get(const bpe_counter *c, size_t slot, const char **s, size_t *n, uint64_t *count);
/* Drop every word and scratch buffer (the totals stay). */
void bpe_counter_clear(bpe_counter *c);

/* The largest cut <= n of s where splitting cannot change the pieces the
 * Qwen2 regex and NFC give: after a '\n' followed by printable ASCII, else
 * before a ' ' between two ASCII letters/digits. 0 if there is none. */
size_t bpe_safe_cut(const char *s, size_t n);

/* --------------------------------------------------------------- merges */

typedef struct bpe_model {
    int n_tokens;        /* ids 0..n_tokens-1: 256 bytes, then learned tokens */
    char **tok;          /* [n_tokens] raw bytes of each token (malloc'd, NUL-terminated) */
    uint32_t *tok_len;   /* [n_tokens] */
    int32_t *merge;      /* [n_merges][3]: left id, right id, result id, in rank order */
    int n_merges;
    int cap_tokens, cap_merges;
} bpe_model;

/* The id of byte b: the 256 GPT-2 byte characters sorted by code point. */
int bpe_byte_id(unsigned char b);

/* Learn merges until the model has n_tokens ids or the best pair occurs
 * fewer than min_freq times. Ties: the smaller (left id, right id) first.
 * tick (may be NULL) is called every ~1% of the merges wanted. The
 * counter's memory is released once its words are copied (bpe_counter_clear):
 * free it after as usual. */
int bpe_learn(bpe_counter *c, int n_tokens, int64_t min_freq,
              void (*tick)(void *ctx, int merges_done), void *ctx, bpe_model *m, moe_err *err);
void bpe_model_free(bpe_model *m);

/* Write dir/tokenizer.json and dir/tokenizer_config.json (each through a
 * temporary file renamed into place). Special tokens get ids n_tokens.. */
int bpe_write(const bpe_model *m, const char *const *special, int n_special, const char *bos,
              const char *eos, const char *dir, moe_err *err);

#endif
