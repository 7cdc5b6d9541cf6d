/*
 * tok_internal.h - the pieces of a loaded HF tokenizer shared by the files of
 * src/tokenizer/. The public face is the moe_tokenizer_* part of moe.h.
 *
 * The pipeline mirrors HF `tokenizers` (TokenizerImpl::encode) step by step,
 * because ids must match it exactly:
 *   text -> valid UTF-8 (utf8.c) -> split out added tokens matched on the raw
 *   text (added.c) -> normalize each remaining segment (normalize.c) -> split
 *   out added tokens matched on the normalized text -> pre-tokenize into pieces
 *   (pretok.c) -> BPE each piece (bpe.c) -> post-process (encode.c).
 * Decoding runs the decoder chain (decode.c). Loading is tokenizer_json.c
 * (tokenizer.json) or tokenizer_gguf.c (a GGUF file's metadata).
 */
#ifndef MOE_TOKENIZER_INTERNAL_H
#define MOE_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "moe.h"

struct cJSON;

/* ------------------------------------------------------------ byte buffer */

/* A growable byte buffer. Grows geometrically; a failed growth leaves it
 * unchanged and returns -1. */
typedef struct tok_buf {
    char *p;    /* bytes (not NUL-terminated unless put there) */
    size_t n;   /* bytes used */
    size_t cap; /* bytes allocated */
} tok_buf;

int buf_reserve(tok_buf *b, size_t extra);
int buf_put(tok_buf *b, const void *s, size_t n);
void buf_free(tok_buf *b);

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the UTF-8 sequence starting with lead byte c (1 for bytes that
 * cannot start one; callers only use it on valid text). */
int utf8_len(unsigned char c);
/* Decode the code point at s (valid UTF-8 assumed), store its length. */
int32_t utf8_decode(const char *s, int *len);
/* Encode code point cp into out (4 bytes room), return its length. */
int utf8_encode(int32_t cp, char *out);
/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if s starts an
 * invalid one; *bad then gets the length of the maximal invalid subpart
 * (what one U+FFFD replaces, as Python's errors="replace" and Rust's
 * from_utf8_lossy do). */
int utf8_valid_at(const unsigned char *s, size_t n, int *bad);
/* Append s[0..n) to out with every invalid UTF-8 subpart replaced by U+FFFD.
 * Returns -1 on allocation failure. */
int utf8_lossy(tok_buf *out, const char *s, size_t n);
/* 1 if s[0..n) is valid UTF-8. */
int utf8_is_valid(const char *s, size_t n);

/* Unicode classes matching Rust's char::is_whitespace and regex \w, used
 * for the lstrip/rstrip/single_word rules of added tokens. */
int uni_is_space(int32_t cp);
int uni_is_word(int32_t cp);

/* ------------------------------------------------------------- hash maps */

/* string -> id over strings kept in a caller-owned pool (open addressing,
 * linear probing, power-of-two capacity, load <= 1/2). */
typedef struct tok_strmap {
    struct strmap_slot *slot; /* [cap] */
    size_t cap;               /* 0 or a power of two */
    size_t count;             /* entries */
} tok_strmap;

int strmap_init(tok_strmap *m, size_t expected);
void strmap_free(tok_strmap *m);
/* Insert or overwrite (later wins, as a Rust HashMap collect does). s must
 * stay valid while the map lives. */
int strmap_put(tok_strmap *m, const char *s, uint32_t n, int32_t id);
/* id for s[0..n), or -1. */
int32_t strmap_get(const tok_strmap *m, const char *s, size_t n);
/* The distinct key lengths of m, ascending, in *lens (malloc'd). */
int strmap_lengths(const tok_strmap *m, uint32_t **lens, size_t *n);
/* Every split of s[0..n) into two keys of m, s[0..k) + s[k..n), k at a
 * code-point boundary (stepping by utf8_len from s[0]), in increasing k:
 * fn(ctx, k, left id, right id, code points in s[0..k)); a non-zero return
 * stops the walk and is returned. lens: strmap_lengths(m). The prefix hash
 * is carried from one k to the next and the suffix is looked up only when
 * its length is some key's length and the prefix is a key, so a string of
 * n bytes costs O(n log) plus O(n) per such k - not O(n^2) (SentencePiece
 * merges from scores over a 1 MB token: milliseconds, not minutes). */
typedef int (*tok_split_fn)(void *ctx, uint32_t k, int32_t a, int32_t b, uint32_t cp_left);
int strmap_splits(const tok_strmap *m, const uint32_t *lens, size_t n_lens, const char *s,
                  uint32_t n, tok_split_fn fn, void *ctx);

/* (left id, right id) -> (merge rank, merged id). */
typedef struct tok_pairmap {
    struct pairmap_slot *slot; /* [cap] */
    size_t cap;
    size_t count;
} tok_pairmap;

int pairmap_init(tok_pairmap *m, size_t expected);
void pairmap_free(tok_pairmap *m);
int pairmap_put(tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id);
/* 1 and (rank, new_id) if the pair merges, else 0. */
int pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id);

/* --------------------------------------------------------------- regexes */

/* A compiled PCRE2 pattern (UTF + UCP, JIT when the library has it). */
typedef struct tok_regex {
    pcre2_code *code;
} tok_regex;

int regex_compile(tok_regex *r, const char *pattern, size_t len, int literal, moe_err *err);
void regex_free(tok_regex *r);

/* Per-call match state so a const tokenizer can be used from many threads. */
typedef struct tok_matcher {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
} tok_matcher;

/* Find the next match of r in s[0..n) at or after *pos; 1 with [*ms, *me)
 * if found, 0 if none, -1 on a matching error (message in err). */
int regex_next(const tok_regex *r, tok_matcher *mt, const char *s, size_t n, size_t pos,
               size_t *ms, size_t *me, moe_err *err);
void matcher_free(tok_matcher *mt);

/* ---------------------------------------------------------- normalizers */

typedef enum {
    NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD,
    NORM_PREPEND, /* prepend str to non-empty text */
    NORM_REPLACE, /* replace pattern (literal or regex) by str */
    NORM_STRIP,   /* strip Unicode whitespace on the left/right */
} tok_norm_kind;

typedef struct tok_norm {
    tok_norm_kind kind;
    char *str;        /* NORM_PREPEND: text; NORM_REPLACE: replacement */
    size_t str_len;
    tok_regex re;     /* NORM_REPLACE */
    int left, right;  /* NORM_STRIP */
} tok_norm;

/* ------------------------------------------------------- pre-tokenizers */

typedef enum {
    PRE_BYTELEVEL, /* optional prefix space, optional GPT-2 regex, bytes -> chars */
    PRE_SPLIT,     /* regex or literal split with a delimiter behaviour */
    PRE_METASPACE, /* ' ' -> replacement, prepend scheme, optional split */
} tok_pre_kind;

typedef enum {
    SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS,
} tok_split_behavior;

typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } tok_prepend;

typedef struct tok_pre {
    tok_pre_kind kind;
    tok_regex re;                /* PRE_SPLIT; PRE_BYTELEVEL when use_regex */
    int use_regex;               /* PRE_BYTELEVEL */
    int add_prefix_space;        /* PRE_BYTELEVEL */
    tok_split_behavior behavior; /* PRE_SPLIT */
    int invert;                  /* PRE_SPLIT */
    char rep[8];                 /* PRE_METASPACE: replacement char, UTF-8 */
    int rep_len;
    tok_prepend prepend;         /* PRE_METASPACE */
    int split;                   /* PRE_METASPACE */
} tok_pre;

/* -------------------------------------------------------------- decoders */

typedef enum {
    DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE,
} tok_dec_kind;

typedef struct tok_dec {
    tok_dec_kind kind;
    char *pat;             /* DEC_REPLACE: literal pattern */
    size_t pat_len;
    tok_regex re;          /* DEC_REPLACE with a Regex pattern */
    char *str;             /* DEC_REPLACE: replacement */
    size_t str_len;
    int32_t ch;            /* DEC_STRIP: content char; DEC_METASPACE: replacement */
    int start, stop;       /* DEC_STRIP */
    tok_prepend prepend;   /* DEC_METASPACE */
} tok_dec;

/* ---------------------------------------------------------- added tokens */

typedef struct tok_added {
    int32_t id;
    uint32_t off, len;           /* content in the string pool */
    uint32_t noff, nlen;         /* normalized content (normalized tokens) */
    uint8_t special, normalized; /* HF AddedToken flags */
    uint8_t lstrip, rstrip, single_word;
} tok_added;

/* A byte trie over added-token contents, for leftmost-longest matching
 * (what HF's Aho-Corasick with MatchKind::LeftmostLongest finds). */
typedef struct tok_trie_node {
    int32_t child;   /* first child node, -1 if none */
    int32_t sibling; /* next sibling, -1 if none */
    int32_t token;   /* index into tok_added that ends here, -1 if none */
    uint8_t byte;
} tok_trie_node;

typedef struct tok_trie {
    tok_trie_node *node; /* [n]; node 0 is the root */
    int n, cap;
    int32_t root_child[256]; /* root's children by byte (fast start test) */
} tok_trie;

/* ------------------------------------------------------------ tokenizer */

#define TOK_MAX_STEPS 16 /* normalizers / pre-tokenizers / decoders per chain */
/* The largest tokenizer.json (or tokenizer_config.json) read. It is parsed
 * into a cJSON tree, which costs up to ~45 bytes of memory per byte of
 * JSON (a 64-byte item plus allocator overhead per value, and a value can
 * be as short as "0,"), so this bounds a hostile file at ~2.9 GiB; real
 * ones cost ~10-15x. The largest common real file, Gemma 3's, is 33 MB
 * (Llama 3: 9 MB, Qwen: 7 MB). */
#define TOK_MAX_JSON ((size_t)64 << 20)
#define TOK_MAX_TEXT ((size_t)1 << 30) /* refuse inputs over 1 GiB */

struct moe_tokenizer {
    char path[256];             /* for messages */
    tok_buf pool;               /* every string the tokenizer keeps */

    /* BPE model */
    int32_t n_ids;              /* ids 0..n_ids-1 (model vocab and added tokens) */
    uint32_t *tok_off;          /* [n_ids] model token string, UINT32_MAX if none */
    uint32_t *tok_len;          /* [n_ids] */
    uint8_t *tok_special;       /* [n_ids] 1: a special added token (skipped by skip_special) */
    int32_t *tok_added;         /* [n_ids] index into added[], -1 if not an added token */
    tok_strmap vocab;           /* model vocab: string -> id */
    tok_pairmap merges;         /* (a, b) -> (rank, merged id) */
    int32_t unk_id;             /* -1 if no unk_token, -2 if it names no vocab entry */
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_id[256];       /* <0xNN> token ids for byte fallback, -1 if missing */
    int split_words;            /* 1: cut words where no token crosses (bpe.c) */
    tok_pairmap char_pairs;     /* (char, char) adjacent inside some vocab token */

    /* added tokens */
    tok_added *added;           /* [n_added] in HF order: special first, then others */
    int n_added;
    tok_strmap added_map;       /* content -> id */
    tok_trie trie_raw;          /* normalized == false tokens, matched on the raw text */
    tok_trie trie_norm;         /* normalized == true tokens, matched after normalizing */

    /* pipeline */
    tok_norm norm[TOK_MAX_STEPS];
    int n_norm;
    tok_pre pre[TOK_MAX_STEPS];
    int n_pre;
    tok_dec dec[TOK_MAX_STEPS];
    int n_dec;
    int has_decoder;            /* 0: decode joins tokens with ' ' as HF does */

    /* post-processor: add_special wraps the ids as prefix + ids + suffix */
    int32_t *prefix, *suffix;
    int n_prefix, n_suffix;

    int32_t bos_id, eos_id;     /* -1 if none */
};

/* ------------------------------------------------------- internal calls */

/* normalize.c */
int norm_parse(moe_tokenizer *t, const struct cJSON *j, moe_err *err);
/* Normalize s[0..n) (valid UTF-8) into out (cleared first). Fails when the
 * chain's output would exceed tok_growth_cap(n). */
int norm_apply(const moe_tokenizer *t, tok_matcher *mt, const char *s, size_t n, tok_buf *out,
               tok_buf *tmp, moe_err *err);
void norm_free(moe_tokenizer *t);
/* Compile a {"String": s} (literal) or {"Regex": r} pattern object. */
int tok_parse_pattern(const struct cJSON *pat, tok_regex *re, const char *what, moe_err *err);
/* Append s with every match of re replaced by rep; fails once out would
 * hold more than cap bytes. */
int tok_replace_all(const tok_regex *re, tok_matcher *mt, const char *s, size_t n,
                    const char *rep, size_t rep_len, size_t cap, tok_buf *out, moe_err *err);
/* The most bytes a chain of normalizers (or decoders) may turn n bytes
 * into: TOK_GROWTH * n + TOK_GROWTH_SLACK. Real chains stay far below (NFKD
 * at most ~11x, U+FDFA; Replace(" ", "▁") 3x; Prepend a few bytes), while
 * 16 chained Replace("a" -> ten "a") would multiply the text by 10^16: such
 * a chain fails with an error instead, and encoding stays O(len). */
#define TOK_GROWTH 16
#define TOK_GROWTH_SLACK 4096
static inline size_t tok_growth_cap(size_t n) {
    return n > (SIZE_MAX - TOK_GROWTH_SLACK) / TOK_GROWTH ? SIZE_MAX : n * TOK_GROWTH + TOK_GROWTH_SLACK;
}

/* pretok.c: a list of pieces, each a byte range of .text */
typedef struct tok_piece {
    size_t off, len;
    int first; /* 1: the piece starts at offset 0 of the original text */
} tok_piece;

typedef struct tok_pieces {
    tok_buf text;
    tok_piece *p;
    size_t n, cap;
} tok_pieces;

int pieces_add(tok_pieces *ps, const char *s, size_t n, int first);
void pieces_free(tok_pieces *ps);
int pre_parse(moe_tokenizer *t, const struct cJSON *j, moe_err *err);
/* A Metaspace "replacement" field: one character (UTF-8 in rep, code point in *cp). */
int tok_parse_replacement(const struct cJSON *j, char *rep, int *rep_len, int32_t *cp,
                          const char *what, moe_err *err);
/* Run the pre-tokenizer chain on in (consumed: it is swapped with scratch). */
int pre_apply(const moe_tokenizer *t, tok_matcher *mt, tok_pieces *in, tok_pieces *scratch,
              moe_err *err);
void pre_free(moe_tokenizer *t);
/* GPT-2 byte <-> char mapping (bytes_to_unicode). */
int32_t tok_byte_char(unsigned char b);
int tok_char_byte(int32_t cp); /* inverse, -1 if cp is not a mapped char */

/* bpe.c */
typedef struct bpe_scratch bpe_scratch;
/* Append the ids of one pre-tokenized piece. */
int bpe_encode(const moe_tokenizer *t, bpe_scratch **scratch, const char *s, size_t n,
               int32_t **ids, size_t *n_ids, size_t *cap_ids, moe_err *err);
void bpe_scratch_free(bpe_scratch *s);

/* added.c */
int trie_add(tok_trie *tr, const char *s, size_t n, int32_t token);
void trie_free(tok_trie *tr);
/* A segment of text: an added token (id >= 0) or text to go on (id == -1). */
typedef struct tok_seg {
    size_t off, len;
    int32_t id;
} tok_seg;
/* Split s[0..n) around matches of tr, applying lstrip/rstrip/single_word. */
int added_split(const moe_tokenizer *t, const tok_trie *tr, const char *s, size_t n,
                tok_seg **segs, size_t *n_segs, size_t *cap, moe_err *err);

/* decode.c */
int dec_parse(moe_tokenizer *t, const struct cJSON *j, moe_err *err);
void dec_free(moe_tokenizer *t);

/* encode.c */
int post_parse(moe_tokenizer *t, const struct cJSON *j, moe_err *err);

/* tokenizer_json.c: id of a token string (added first, then model), -1 */
int32_t tok_lookup(const moe_tokenizer *t, const char *s, size_t n);
/* tokenizer_json.c: t->n_ids = n_ids and the per-id arrays (tok_off,
 * tok_len, tok_special, tok_added) for ids [0, n_ids], all unset. */
int tok_alloc_ids(moe_tokenizer *t, int32_t n_ids, moe_err *err);
/* tokenizer_json.c: t->char_pairs and split_words for a tokenizer whose
 * whole text reaches BPE as one word (no splitting pre-tokenizer). */
int tok_build_char_pairs(moe_tokenizer *t, moe_err *err);

/* tokenizer_gguf.c: 1 if path starts with the GGUF magic; load a tokenizer
 * from a GGUF file's tokenizer.ggml.* metadata. */
int tok_is_gguf(const char *path);
int tok_gguf_load(moe_tokenizer **out, const char *path, moe_err *err);
/* tokenizer_gguf_pre.c: what a tokenizer.ggml.pre name stands for (the
 * tokenizer.json layout the reader builds): an NFC normalizer or none, the
 * pre-tokenizer steps (NULL-terminated), ignore_merges, and llama.cpp's
 * add_bos default. A step is a Split(regex, Isolated), or
 * TOK_GGUF_BYTELEVEL_REGEX: ByteLevel splitting with the GPT-2 regex at that
 * place. Without that step ByteLevel comes last, splitting with the GPT-2
 * regex when there are no steps at all and only mapping bytes otherwise. */
extern const char TOK_GGUF_BYTELEVEL_REGEX[];
typedef struct tok_gguf_pre {
    const char *names[5];  /* tokenizer.ggml.pre values, NULL-terminated */
    int nfc;               /* normalizer NFC */
    const char *splits[7]; /* the steps, NULL-terminated */
    int ignore_merges;     /* a piece that is a token is taken whole */
    int add_bos;           /* llama.cpp's add_bos when the file does not say */
} tok_gguf_pre;
const tok_gguf_pre *tok_gguf_pre_find(const char *name);
/* The known names, ", "-separated, into out (cap bytes); returns the length. */
size_t tok_gguf_pre_names(char *out, size_t cap);
/* The layout of name; -1 for a name the reader does not know. */
int tok_gguf_pre_layout(const char *name, int *nfc, const char *const **splits, int *ignore_merges);
/* The pre_tokenizer object of a step list (a Sequence), or NULL (memory). */
struct cJSON *tok_gguf_pre_json(const char *const *splits);

#endif
