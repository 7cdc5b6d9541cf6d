/*
 * bpe_train.c - moe_tokenizer_train: stream text files through the same
 * normalizer and split regex a Qwen2 tokenizer.json uses, count the distinct
 * words, learn merges (bpe_learn.c), and write tokenizer.json and
 * tokenizer_config.json in the layout HF tokenizers 0.23 reads.
 *
 * The text pipeline is not written again here: the normalizer and Split
 * pre-tokenizer are parsed from the very JSON we write out (normalize.c,
 * pretok.c, regex.c), so the words counted are the words the written
 * tokenizer will see. Words are counted as raw bytes; the ByteLevel step
 * (bytes -> printable chars) is a bijection applied only when writing.
 *
 * Memory: files are read in 4 MiB chunks cut where the split cannot change
 * (bpe_safe_cut), and the word table holds at most max_words distinct words:
 * past that the rarest are dropped (a documented approximation, as
 * SentencePiece's trainer does), so a corpus of any size fits.
 */
#include "tokenizer/bpe_train.h"
#include "tokenizer/tok_internal.h"
#include "base/atomic.h"
#include "base/err.h"
#include "base/mapfile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK ((size_t)4 << 20)  /* bytes read at a time */
#define MAX_CHUNK ((size_t)64 << 20)  /* text held while looking for a safe cut */
#define DEFAULT_MAX_WORDS 2000000
#define PRUNE_HIST 64                 /* counts tracked when choosing a prune threshold */

/* ---------------------------------------------------------- the pipeline */

/* The normalizer / pre_tokenizer / post_processor / decoder of a Qwen2
 * tokenizer.json, added to root. */
static int add_pipeline(cJSON *root) {
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    if (!norm || !pre || !cJSON_AddStringToObject(norm, "type", "NFC") ||
        !cJSON_AddStringToObject(pre, "type", "Sequence"))
        return -1;
    cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject(), *bl = cJSON_CreateObject();
    if (!list || !split || !bl) {
        cJSON_Delete(split);
        cJSON_Delete(bl);
        return -1;
    }
    cJSON_AddItemToArray(list, split);
    cJSON_AddItemToArray(list, bl);
    cJSON *pat = cJSON_AddStringToObject(split, "type", "Split")
                     ? cJSON_AddObjectToObject(split, "pattern")
                     : NULL;
    if (!pat || !cJSON_AddStringToObject(pat, "Regex", BPE_QWEN2_REGEX) ||
        !cJSON_AddStringToObject(split, "behavior", "Isolated") ||
        !cJSON_AddFalseToObject(split, "invert"))
        return -1;
    static const char *const kinds[] = {NULL, "post_processor", "decoder"};
    for (int k = 0; k < 3; k++) {
        cJSON *o = k == 0 ? bl : cJSON_AddObjectToObject(root, kinds[k]);
        if (!o || !cJSON_AddStringToObject(o, "type", "ByteLevel") ||
            !cJSON_AddFalseToObject(o, "add_prefix_space") ||
            !cJSON_AddFalseToObject(o, "trim_offsets") || !cJSON_AddFalseToObject(o, "use_regex"))
            return -1;
    }
    return 0;
}

/* A moe_tokenizer holding only the normalizer and the Split step. */
static int pipeline_new(moe_tokenizer **out, moe_err *err) {
    *out = NULL;
    moe_tokenizer *t = calloc(1, sizeof *t);
    cJSON *root = cJSON_CreateObject();
    int rc = (!t || !root || add_pipeline(root) != 0)
                 ? moe_fail(err, "tokenizer training: out of memory")
                 : 0;
    if (rc == 0) {
        const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
        rc = norm_parse(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err);
        if (rc == 0)
            rc = pre_parse(t, cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers"), 0),
                           err);
    }
    cJSON_Delete(root);
    if (rc != 0 && t) {
        norm_free(t);
        pre_free(t);
        free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* ------------------------------------------------------------ the counter */

typedef struct word_slot {
    uint64_t off;   /* key bytes at keys.p + off */
    uint64_t count; /* 0: empty slot */
    uint32_t len;
    uint32_t hash;
} word_slot;

struct bpe_counter {
    moe_tokenizer *pipe;         /* NFC + Split */
    tok_matcher mt;
    tok_buf clean, norm, tmp;    /* scratch: valid UTF-8, normalized text */
    tok_pieces pieces, scratch;  /* scratch: split pieces */
    char *special[BPE_MAX_SPECIAL];
    size_t special_len[BPE_MAX_SPECIAL];
    size_t special_next[BPE_MAX_SPECIAL]; /* next match at or after the scan point */
    int n_special;
    word_slot *slot;             /* [cap], a power of two, at most half full */
    size_t cap, count;
    tok_buf keys;                /* every kept word's bytes */
    int64_t max_words, words, pruned;
};

/* 8 bytes at a time, then a final mix: words are short and many. */
static uint32_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        h = (h ^ x) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    uint64_t x = 0;
    memcpy(&x, s + i, n - i);
    h = (h ^ x) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 32;
    return (uint32_t)h;
}

static int table_alloc(word_slot **slot, size_t cap) {
    *slot = calloc(cap, sizeof **slot);
    return *slot ? 0 : -1;
}

static void table_insert(word_slot *slot, size_t cap, const word_slot *e) {
    size_t j = e->hash & (cap - 1);
    while (slot[j].count) j = (j + 1) & (cap - 1);
    slot[j] = *e;
}

static int counter_grow(bpe_counter *c) {
    word_slot *bigger;
    if (c->cap > SIZE_MAX / 2 / sizeof *bigger || table_alloc(&bigger, c->cap * 2) != 0) return -1;
    for (size_t i = 0; i < c->cap; i++)
        if (c->slot[i].count) table_insert(bigger, c->cap * 2, &c->slot[i]);
    free(c->slot);
    c->slot = bigger;
    c->cap *= 2;
    return 0;
}

/* Words with count > k. */
static size_t count_above(const bpe_counter *c, uint64_t k) {
    size_t n = 0;
    for (size_t i = 0; i < c->cap; i++) n += c->slot[i].count > k;
    return n;
}

/* Drop the rarest words so at most half of max_words remain (and their
 * bytes fit): the smallest threshold k with #(count > k) under the goal,
 * exact for small counts (a histogram), doubling past PRUNE_HIST. */
static int counter_prune(bpe_counter *c) {
    size_t hist[PRUNE_HIST + 1] = {0};
    for (size_t i = 0; i < c->cap; i++)
        if (c->slot[i].count) hist[c->slot[i].count < PRUNE_HIST ? c->slot[i].count : PRUNE_HIST]++;
    size_t keep = c->count, goal = (size_t)c->max_words / 2;
    uint64_t k = 0;
    while (keep > goal && k < PRUNE_HIST - 1) keep -= hist[++k];
    while (keep > goal) keep = count_above(c, k *= 2);
    word_slot *slot;
    tok_buf keys = {0};
    if (table_alloc(&slot, c->cap) != 0) return -1;
    size_t kept = 0;
    for (size_t i = 0; i < c->cap; i++) {
        word_slot e = c->slot[i];
        if (e.count <= k) continue;
        uint64_t off = keys.n;
        if (buf_put(&keys, c->keys.p + e.off, e.len) != 0) {
            free(slot);
            buf_free(&keys);
            return -1;
        }
        e.off = off;
        table_insert(slot, c->cap, &e);
        kept++;
    }
    c->pruned += (int64_t)(c->count - kept);
    free(c->slot);
    buf_free(&c->keys);
    c->slot = slot;
    c->keys = keys;
    c->count = kept;
    return 0;
}

int bpe_counter_add_word(bpe_counter *c, const char *s, size_t n, uint64_t count, moe_err *err) {
    if (n == 0 || count == 0) return 0;
    if (n > UINT32_MAX) return moe_fail(err, "tokenizer training: a word of %zu bytes", n);
    if (!c->slot) return moe_fail(err, "tokenizer training: words added after the counter was cleared");
    c->words += (int64_t)count;
    uint32_t h = hash_bytes(s, n);
    size_t j = h & (c->cap - 1);
    for (;;) {
        word_slot *e = &c->slot[j];
        if (!e->count) break;
        if (e->hash == h && e->len == n && memcmp(c->keys.p + e->off, s, n) == 0) {
            e->count += count;
            return 0;
        }
        j = (j + 1) & (c->cap - 1);
    }
    word_slot e = {c->keys.n, count, (uint32_t)n, h};
    if (buf_put(&c->keys, s, n) != 0) return moe_fail(err, "tokenizer training: out of memory for words");
    c->slot[j] = e;
    c->count++;
    if ((c->count + 1) * 2 > c->cap && counter_grow(c) != 0)
        return moe_fail(err, "tokenizer training: out of memory for %zu words", c->count);
    if (((int64_t)c->count > c->max_words || c->keys.n > (uint64_t)c->max_words * 64) &&
        counter_prune(c) != 0)
        return moe_fail(err, "tokenizer training: out of memory pruning words");
    return 0;
}

int bpe_counter_new(bpe_counter **out, const char *const *special, int n_special,
                    int64_t max_words, moe_err *err) {
    *out = NULL;
    if (n_special < 0 || n_special > BPE_MAX_SPECIAL)
        return moe_fail(err, "tokenizer training: %d special tokens (at most %d)", n_special,
                        BPE_MAX_SPECIAL);
    bpe_counter *c = calloc(1, sizeof *c);
    if (!c) return moe_fail(err, "tokenizer training: out of memory");
    c->max_words = max_words > 0 ? max_words : DEFAULT_MAX_WORDS;
    if (c->max_words < 16) c->max_words = 16;
    c->cap = 1 << 16;
    if (table_alloc(&c->slot, c->cap) != 0) {
        free(c);
        return moe_fail(err, "tokenizer training: out of memory");
    }
    for (int i = 0; i < n_special; i++) {
        size_t n = strlen(special[i]);
        c->special[i] = malloc(n + 1);
        if (!c->special[i]) {
            bpe_counter_free(c);
            return moe_fail(err, "tokenizer training: out of memory");
        }
        memcpy(c->special[i], special[i], n + 1);
        c->special_len[i] = n;
        c->n_special++;
    }
    if (pipeline_new(&c->pipe, err) != 0) {
        bpe_counter_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void bpe_counter_clear(bpe_counter *c) {
    matcher_free(&c->mt);
    buf_free(&c->clean);
    buf_free(&c->norm);
    buf_free(&c->tmp);
    pieces_free(&c->pieces);
    pieces_free(&c->scratch);
    buf_free(&c->keys);
    free(c->slot);
    c->slot = NULL;
    c->cap = c->count = 0;
}

void bpe_counter_free(bpe_counter *c) {
    if (!c) return;
    if (c->pipe) {
        norm_free(c->pipe);
        pre_free(c->pipe);
        free(c->pipe);
    }
    matcher_free(&c->mt);
    buf_free(&c->clean);
    buf_free(&c->norm);
    buf_free(&c->tmp);
    pieces_free(&c->pieces);
    pieces_free(&c->scratch);
    for (int i = 0; i < c->n_special; i++) free(c->special[i]);
    free(c->slot);
    buf_free(&c->keys);
    free(c);
}

int64_t bpe_counter_words(const bpe_counter *c) { return c->words; }
int64_t bpe_counter_unique(const bpe_counter *c) { return (int64_t)c->count; }
int64_t bpe_counter_pruned(const bpe_counter *c) { return c->pruned; }
size_t bpe_counter_slots(const bpe_counter *c) { return c->cap; }

int bpe_counter_get(const bpe_counter *c, size_t slot, const char **s, size_t *n, uint64_t *count) {
    if (slot >= c->cap || !c->slot[slot].count) return 0;
    *s = c->keys.p + c->slot[slot].off;
    *n = c->slot[slot].len;
    *count = c->slot[slot].count;
    return 1;
}

/* NFC of s[0..n) into c->pieces as one piece. NFC never changes across a
 * cut just before an ASCII byte (no composition has an ASCII second char,
 * and an ASCII char is a starter), so only the non-ASCII runs, each with the
 * ASCII char before it (an 'e' may take a combining accent), go through the
 * normalizer: one stray non-ASCII char no longer sends a whole chunk
 * through utf8proc. */
static int normalize_islands(bpe_counter *c, const char *s, size_t n, moe_err *err) {
    tok_buf *out = &c->pieces.text;
    c->pieces.n = 0;
    out->n = 0;
    size_t done = 0, i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        size_t a = i > done ? i - 1 : i, e = i;
        while (e < n && (unsigned char)s[e] >= 0x80) e++;
        if (buf_put(out, s + done, a - done) != 0) goto oom;
        if (norm_apply(c->pipe, &c->mt, s + a, e - a, &c->norm, &c->tmp, err) != 0) return -1;
        if (buf_put(out, c->norm.p, c->norm.n) != 0) goto oom;
        done = i = e;
    }
    if (buf_put(out, s + done, n - done) != 0) goto oom;
    /* the one piece: the whole normalized text (pieces_add would copy it) */
    size_t len = out->n;
    out->n = 0;
    if (pieces_add(&c->pieces, out->p, 0, 1) != 0) goto oom;
    c->pieces.p[0].len = len;
    out->n = len;
    return 0;
oom:
    return moe_fail(err, "tokenizer training: out of memory");
}

/* Normalize and split one stretch without special tokens; count its pieces. */
static int count_segment(bpe_counter *c, const char *s, size_t n, moe_err *err) {
    if (n == 0) return 0;
    if (normalize_islands(c, s, n, err) != 0) return -1;
    if (pre_apply(c->pipe, &c->mt, &c->pieces, &c->scratch, err) != 0) return -1;
    for (size_t i = 0; i < c->pieces.n; i++) {
        const tok_piece *p = &c->pieces.p[i];
        if (bpe_counter_add_word(c, c->pieces.text.p + p->off, p->len, 1, err) != 0) return -1;
    }
    return 0;
}

int bpe_counter_add_text(bpe_counter *c, const char *s, size_t n, moe_err *err) {
    if (n > TOK_MAX_TEXT) return moe_fail(err, "tokenizer training: a text of %zu bytes at once", n);
    if (!utf8_is_valid(s, n)) {
        c->clean.n = 0;
        if (utf8_lossy(&c->clean, s, n) != 0) return moe_fail(err, "tokenizer training: out of memory");
        s = c->clean.p;
        n = c->clean.n;
    }
    /* Cut out special tokens: leftmost match, longest at one position. */
    size_t pos = 0;
    for (int k = 0; k < c->n_special; k++) c->special_next[k] = SIZE_MAX - 1; /* not searched */
    while (pos < n) {
        size_t best = n, best_len = 0;
        for (int k = 0; k < c->n_special; k++) {
            if (c->special_next[k] < pos || c->special_next[k] == SIZE_MAX - 1) {
                const char *m = memmem(s + pos, n - pos, c->special[k], c->special_len[k]);
                c->special_next[k] = m ? (size_t)(m - s) : SIZE_MAX;
            }
            size_t at = c->special_next[k];
            if (at < best || (at == best && at != SIZE_MAX && c->special_len[k] > best_len)) {
                best = at;
                best_len = c->special_len[k];
            }
        }
        if (best > n) best = n;
        if (count_segment(c, s + pos, best - pos, err) != 0) return -1;
        pos = best + best_len;
    }
    return 0;
}

static int is_alnum_ascii(unsigned char b) {
    return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
}

/* Why these cuts are exact for the Qwen2 regex: no alternative matches a
 * '\n' followed by a non-space (\s*[\r\n]+ and [\r\n]* end at the last
 * newline, \s+ at the last space), and none starts with [\r\n] before a
 * letter; a ' ' between two ASCII alphanumerics is matched as the start of
 * the next piece (" word") or alone, with or without what precedes it. The
 * char after the cut is ASCII, a starter NFC never composes backwards. */
size_t bpe_safe_cut(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = n; i-- > 1;) {
        if (u[i - 1] == '\n' && u[i] >= 0x21 && u[i] <= 0x7E) return i;
        if (u[i] == ' ' && i + 1 < n && is_alnum_ascii(u[i - 1]) && is_alnum_ascii(u[i + 1])) return i;
    }
    return 0;
}

/* ------------------------------------------------------------ streaming */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct train_run {
    const moe_tokenizer_train_opts *o;
    moe_tokenizer_train_progress p;
    double t0;
} train_run;

static void report(train_run *r) {
    r->p.seconds = now_s() - r->t0;
    if (r->o->progress) r->o->progress(r->o->user, &r->p);
}

static void merge_tick(void *ctx, int merges_done) {
    train_run *r = ctx;
    r->p.merges_done = merges_done;
    report(r);
}

/* Read one file in chunks cut where bpe_safe_cut allows; count each chunk. */
static int count_file(train_run *r, bpe_counter *c, const char *path, tok_buf *buf, moe_err *err) {
    struct stat st;
    int fd = open_regular(path, &st, err);
    if (fd < 0) return -1;
    buf->n = 0;
    int rc = 0, eof = 0;
    while (!eof && rc == 0) {
        if (buf_reserve(buf, READ_CHUNK) != 0) {
            rc = moe_fail(err, "%s: out of memory", path);
            break;
        }
        ssize_t got = read(fd, buf->p + buf->n, READ_CHUNK);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            rc = moe_fail(err, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        eof = got == 0;
        buf->n += (size_t)got;
        r->p.bytes_done += got;
        size_t cut = eof ? buf->n : bpe_safe_cut(buf->p, buf->n);
        if (cut == 0) {
            if (buf->n < MAX_CHUNK) continue;
            /* No safe cut in 64 MiB (no newline, no space between words):
             * cut at a character boundary; a piece across it is split. */
            cut = buf->n;
            while (cut > 0 && ((unsigned char)buf->p[cut - 1] & 0xC0) == 0x80) cut--;
            if (cut > 0 && (unsigned char)buf->p[cut - 1] >= 0xC0) cut--;
            if (cut == 0) cut = buf->n;
        }
        rc = bpe_counter_add_text(c, buf->p, cut, err);
        if (rc != 0) {
            moe_fail_prefix(err, "%s", path);
            break;
        }
        memmove(buf->p, buf->p + cut, buf->n - cut);
        buf->n -= cut;
        r->p.words = bpe_counter_words(c);
        r->p.unique_words = bpe_counter_unique(c);
        r->p.pruned_words = bpe_counter_pruned(c);
        report(r);
    }
    close(fd);
    return rc;
}

/* -------------------------------------------------------------- writing */

/* DIR/NAME replaced whole (base/atomic.h: temporary file made exclusively,
 * fsynced, renamed, directory fsynced). */
static int write_atomic(const char *dir, const char *name, const char *s, size_t n, moe_err *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return moe_fail(err, "%s: path too long", dir);
    return atomic_write(path, s, n, err);
}

/* Token bytes as their ByteLevel string (each byte one printable char). */
static char *bytelevel_str(const char *s, uint32_t n, tok_buf *b) {
    b->n = 0;
    if (buf_reserve(b, (size_t)n * 2 + 1) != 0) return NULL;
    for (uint32_t i = 0; i < n; i++)
        b->n += (size_t)utf8_encode(tok_byte_char((unsigned char)s[i]), b->p + b->n);
    b->p[b->n] = 0;
    return b->p;
}

static cJSON *tokenizer_json(const bpe_model *m, const char *const *special, int n_special,
                             tok_buf *b) {
    cJSON *root = cJSON_CreateObject();
    if (!root || !cJSON_AddStringToObject(root, "version", "1.0") ||
        !cJSON_AddNullToObject(root, "truncation") || !cJSON_AddNullToObject(root, "padding"))
        goto fail;
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    if (!added) goto fail;
    for (int i = 0; i < n_special; i++) {
        cJSON *a = cJSON_CreateObject();
        if (!a) goto fail;
        cJSON_AddItemToArray(added, a);
        if (!cJSON_AddNumberToObject(a, "id", m->n_tokens + i) ||
            !cJSON_AddStringToObject(a, "content", special[i]) ||
            !cJSON_AddFalseToObject(a, "single_word") || !cJSON_AddFalseToObject(a, "lstrip") ||
            !cJSON_AddFalseToObject(a, "rstrip") || !cJSON_AddFalseToObject(a, "normalized") ||
            !cJSON_AddTrueToObject(a, "special"))
            goto fail;
    }
    if (add_pipeline(root) != 0) goto fail;
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    if (!model || !cJSON_AddStringToObject(model, "type", "BPE") ||
        !cJSON_AddNullToObject(model, "dropout") || !cJSON_AddNullToObject(model, "unk_token") ||
        !cJSON_AddStringToObject(model, "continuing_subword_prefix", "") ||
        !cJSON_AddStringToObject(model, "end_of_word_suffix", "") ||
        !cJSON_AddFalseToObject(model, "fuse_unk") || !cJSON_AddFalseToObject(model, "byte_fallback") ||
        !cJSON_AddFalseToObject(model, "ignore_merges"))
        goto fail;
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    if (!vocab || !merges) goto fail;
    for (int id = 0; id < m->n_tokens; id++) {
        const char *s = bytelevel_str(m->tok[id], m->tok_len[id], b);
        if (!s || !cJSON_AddNumberToObject(vocab, s, id)) goto fail;
    }
    for (int k = 0; k < m->n_merges; k++) {
        cJSON *pair = cJSON_CreateArray();
        if (!pair) goto fail;
        cJSON_AddItemToArray(merges, pair);
        for (int side = 0; side < 2; side++) {
            int32_t id = m->merge[3 * k + side];
            const char *s = bytelevel_str(m->tok[id], m->tok_len[id], b);
            cJSON *str = s ? cJSON_CreateString(s) : NULL;
            if (!str) goto fail;
            cJSON_AddItemToArray(pair, str);
        }
    }
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}

static cJSON *config_json(const char *bos, const char *eos) {
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddStringToObject(c, "tokenizer_class", "PreTrainedTokenizerFast") ||
        !(bos ? cJSON_AddStringToObject(c, "bos_token", bos) : cJSON_AddNullToObject(c, "bos_token")) ||
        !(eos ? cJSON_AddStringToObject(c, "eos_token", eos) : cJSON_AddNullToObject(c, "eos_token")) ||
        !cJSON_AddNullToObject(c, "unk_token") ||
        !cJSON_AddFalseToObject(c, "clean_up_tokenization_spaces")) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

int bpe_write(const bpe_model *m, const char *const *special, int n_special, const char *bos,
              const char *eos, const char *dir, moe_err *err) {
    tok_buf b = {0};
    /* A special token spelled like a learned token would shadow it. */
    for (int i = 0; i < n_special; i++) {
        for (int id = 0; id < m->n_tokens; id++) {
            const char *s = bytelevel_str(m->tok[id], m->tok_len[id], &b);
            if (s && strcmp(s, special[i]) == 0) {
                buf_free(&b);
                return moe_fail(err, "special token \"%s\" is also learned token %d", special[i], id);
            }
        }
    }
    cJSON *tj = tokenizer_json(m, special, n_special, &b);
    cJSON *cj = config_json(bos, eos);
    buf_free(&b);
    char *ts = tj ? cJSON_PrintUnformatted(tj) : NULL;
    char *cs = cj ? cJSON_Print(cj) : NULL;
    cJSON_Delete(tj);
    cJSON_Delete(cj);
    int rc;
    if (!ts || !cs) rc = moe_fail(err, "%s: out of memory writing tokenizer.json", dir);
    else rc = write_atomic(dir, "tokenizer.json", ts, strlen(ts), err);
    if (rc == 0) {
        tok_buf c = {0};
        rc = buf_put(&c, cs, strlen(cs)) != 0 || buf_put(&c, "\n", 1) != 0
                 ? moe_fail(err, "%s: out of memory", dir)
                 : write_atomic(dir, "tokenizer_config.json", c.p, c.n, err);
        buf_free(&c);
    }
    free(ts);
    free(cs);
    return rc;
}

/* ---------------------------------------------------------- entry point */

static int check_opts(const moe_tokenizer_train_opts *o, const char *const *special, int n_special,
                      const char *eos, moe_err *err) {
    if (o->vocab_size < 256 + n_special || o->vocab_size > BPE_MAX_VOCAB)
        return moe_fail(err, "tokenizer training: vocab size %d out of range [%d, %d] (256 byte "
                        "tokens + %d special)", o->vocab_size, 256 + n_special, BPE_MAX_VOCAB, n_special);
    if (o->min_freq < 0) return moe_fail(err, "tokenizer training: min_freq %d < 0", o->min_freq);
    if (n_special > BPE_MAX_SPECIAL)
        return moe_fail(err, "tokenizer training: %d special tokens (at most %d)", n_special, BPE_MAX_SPECIAL);
    for (int i = 0; i < n_special; i++) {
        const char *s = special[i];
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > BPE_MAX_SPECIAL_LEN || !utf8_is_valid(s, n))
            return moe_fail(err, "tokenizer training: special token %d is empty, longer than %d "
                            "bytes or not UTF-8", i, BPE_MAX_SPECIAL_LEN);
        for (int j = 0; j < i; j++)
            if (strcmp(special[j], s) == 0)
                return moe_fail(err, "tokenizer training: special token \"%s\" given twice", s);
    }
    const char *names[2] = {o->bos_token, eos};
    for (int k = 0; k < 2; k++) {
        if (!names[k]) continue;
        int found = 0;
        for (int i = 0; i < n_special; i++) found |= strcmp(special[i], names[k]) == 0;
        if (!found)
            return moe_fail(err, "tokenizer training: %s token \"%s\" is not one of the special tokens",
                            k ? "eos" : "bos", names[k]);
    }
    return 0;
}

static int make_dir(const char *dir, moe_err *err) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return 0;
        return moe_fail(err, "%s: exists and is not a directory", dir);
    }
    if (mkdir(dir, 0777) != 0) return moe_fail(err, "%s: cannot create directory: %s", dir, strerror(errno));
    return 0;
}

int moe_tokenizer_train(const moe_tokenizer_train_opts *o, const char *const *files, int n_files,
                        const char *out_dir, moe_err *err) {
    static const char *const default_special[] = {"<|endoftext|>"};
    if (!o || !files || n_files < 1 || !out_dir)
        return moe_fail(err, "moe_tokenizer_train: no options, input files or output directory");
    const char *const *special = o->special;
    int n_special = o->n_special;
    if (!special && n_special == 0) special = default_special, n_special = 1;
    if (!special && n_special > 0) return moe_fail(err, "moe_tokenizer_train: special is NULL");
    const char *eos = o->eos_token ? o->eos_token : n_special > 0 ? special[0] : NULL;
    if (check_opts(o, special, n_special, eos, err) != 0) return -1;

    train_run r = {.o = o, .t0 = now_s()};
    r.p.stage = MOE_TRAIN_COUNT;
    r.p.merges_target = o->vocab_size - n_special - 256;
    for (int i = 0; i < n_files; i++) {
        struct stat st;
        if (!files[i] || stat(files[i], &st) != 0)
            return moe_fail(err, "%s: %s", files[i] ? files[i] : "(null)",
                            files[i] ? strerror(errno) : "no file name");
        if (!S_ISREG(st.st_mode)) return moe_fail(err, "%s: not a regular file", files[i]);
        r.p.bytes_total += st.st_size;
    }
    if (make_dir(out_dir, err) != 0) return -1;

    bpe_counter *c = NULL;
    bpe_model m = {0};
    tok_buf buf = {0};
    int rc = bpe_counter_new(&c, special, n_special, o->max_words, err);
    for (int i = 0; i < n_files && rc == 0; i++) rc = count_file(&r, c, files[i], &buf, err);
    buf_free(&buf);
    if (rc == 0) {
        r.p.stage = MOE_TRAIN_MERGE;
        report(&r);
        rc = bpe_learn(c, o->vocab_size - n_special, o->min_freq ? o->min_freq : 2, merge_tick,
                       &r, &m, err);
    }
    bpe_counter_free(c);
    if (rc == 0) rc = bpe_write(&m, special, n_special, o->bos_token, eos, out_dir, err);
    if (rc == 0) {
        r.p.stage = MOE_TRAIN_DONE;
        r.p.merges_done = m.n_merges;
        r.p.vocab = m.n_tokens + n_special;
        report(&r);
    }
    bpe_model_free(&m);
    return rc;
}
