/*
 * bpe.c - the BPE model: turn one pre-tokenized piece into ids.
 *
 * This is HF's models/bpe (BPE::merge_word + Word::merge_all), kept
 * step-for-step because the order of merges decides the ids:
 *  1. each char becomes a symbol: its vocab id, else its bytes as <0xNN>
 *     tokens (byte_fallback), else the unk token (consecutive unks fused
 *     when fuse_unk), else it is dropped (no unk token: what HF does);
 *  2. every adjacent pair with a merge goes into a min-heap ordered by
 *     (merge rank, position); the top is applied unless stale (the pair at
 *     that position no longer yields the same merged id), and the new pairs
 *     with its neighbours are pushed.
 * A piece of n chars costs O(n log n): at most n-1 merges, each pushing two
 * heap entries, so the heap never holds more than 3n entries.
 *
 * SentencePiece-style files (no pre-tokenizer, or Metaspace with split
 * false: Mixtral) hand BPE the whole text as one word, and one heap over a
 * long text is slow (cache misses). Such words are cut where no merge can
 * ever reach across: between chars x, y that are adjacent in no vocab token
 * (t->char_pairs). No symbol can then span the cut, so each side merges on
 * its own, in the same order as in one heap: the ids are identical.
 */
#include "tokenizer/tok_internal.h"
#include "base/err.h"

#include <stdlib.h>
#include <string.h>

typedef struct bpe_sym {
    int32_t id;         /* token id */
    int32_t prev, next; /* neighbours in the word, -1 at the ends */
    uint32_t len;       /* bytes covered; 0 once merged into its left neighbour */
    int32_t cp;         /* the char, for a one-char vocab symbol; -1 otherwise */
} bpe_sym;

typedef struct bpe_merge {
    uint32_t rank;  /* merge priority: lower first */
    uint32_t pos;   /* left symbol: lower first among equal ranks */
    int32_t new_id; /* the id the pair merges into (to detect stale entries) */
} bpe_merge;

struct bpe_scratch {
    bpe_sym *sym;   /* [sym_cap] */
    size_t sym_cap;
    bpe_merge *heap; /* [heap_cap] */
    size_t heap_cap;
};

void bpe_scratch_free(bpe_scratch *s) {
    if (!s) return;
    free(s->sym);
    free(s->heap);
    free(s);
}

/* ---------------------------------------------------------------- heap */

static int merge_less(const bpe_merge *a, const bpe_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(bpe_merge *h, size_t *n, bpe_merge m) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!merge_less(&m, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = m;
}

static bpe_merge heap_pop(bpe_merge *h, size_t *n) {
    bpe_merge top = h[0], last = h[--(*n)];
    size_t i = 0, cnt = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= cnt) break;
        if (c + 1 < cnt && merge_less(&h[c + 1], &h[c])) c++;
        if (!merge_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (cnt) h[i] = last;
    return top;
}

/* --------------------------------------------------------------- words */

static int scratch_fit(bpe_scratch **sp, size_t n_chars, moe_err *err) {
    if (!*sp) {
        *sp = calloc(1, sizeof **sp);
        if (!*sp) return moe_fail(err, "tokenizer: out of memory");
    }
    bpe_scratch *s = *sp;
    /* byte fallback can make up to 4 symbols per char: size by bytes */
    if (s->sym_cap < n_chars) {
        size_t cap = n_chars < 64 ? 64 : n_chars;
        if (s->sym_cap * 2 > cap) cap = s->sym_cap * 2;
        bpe_sym *p = realloc(s->sym, cap * sizeof *p);
        if (!p) return moe_fail(err, "tokenizer: out of memory for a %zu-byte word", n_chars);
        s->sym = p;
        s->sym_cap = cap;
    }
    if (s->heap_cap < 3 * n_chars) {
        size_t cap = 3 * s->sym_cap;
        bpe_merge *p = realloc(s->heap, cap * sizeof *p);
        if (!p) return moe_fail(err, "tokenizer: out of memory for a %zu-byte word", n_chars);
        s->heap = p;
        s->heap_cap = cap;
    }
    return 0;
}

static void sym_add(bpe_sym *sym, size_t *n, int32_t id, uint32_t len, int32_t cp) {
    size_t i = (*n)++;
    sym[i] = (bpe_sym){id, (int32_t)i - 1, -1, len, cp};
    if (i > 0) sym[i - 1].next = (int32_t)i;
}

static int ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id, moe_err *err) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        int32_t *p = realloc(*ids, c * sizeof *p);
        if (!p) return moe_fail(err, "tokenizer: out of memory for %zu ids", c);
        *ids = p;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

/* BPE::merge_word: chars -> initial symbols. */
static int word_init(const moe_tokenizer *t, bpe_sym *sym, size_t *n_sym, const char *s,
                     size_t n, moe_err *err) {
    int32_t unk = -1;     /* pending unk symbol (id), -1 if none */
    uint32_t unk_len = 0;
    *n_sym = 0;
    for (size_t i = 0; i < n;) {
        size_t l = (size_t)utf8_len((unsigned char)s[i]);
        if (l > n - i) l = n - i;
        int32_t id = strmap_get(&t->vocab, s + i, l);
        if (id >= 0) {
            if (unk >= 0) {
                sym_add(sym, n_sym, unk, unk_len, -1);
                unk = -1;
            }
            int cl;
            sym_add(sym, n_sym, id, (uint32_t)l, utf8_decode(s + i, &cl));
            i += l;
            continue;
        }
        if (t->byte_fallback) {
            size_t k = 0;
            while (k < l && t->byte_id[(unsigned char)s[i + k]] >= 0) k++;
            if (k == l) { /* all bytes have tokens (a pending unk stays pending, as in HF) */
                for (k = 0; k < l; k++) sym_add(sym, n_sym, t->byte_id[(unsigned char)s[i + k]], 1, -1);
                i += l;
                continue;
            }
        }
        if (t->unk_id == -2)
            return moe_fail(err, "%s: unk_token is not in the vocabulary", t->path);
        if (t->unk_id >= 0) {
            if (unk >= 0 && t->fuse_unk) {
                unk_len += (uint32_t)l;
            } else {
                if (unk >= 0) sym_add(sym, n_sym, unk, unk_len, -1);
                unk = t->unk_id;
                unk_len = (uint32_t)l;
            }
        }
        i += l; /* no unk token: the char is dropped, as HF does */
    }
    if (unk >= 0) sym_add(sym, n_sym, unk, unk_len, -1);
    return 0;
}

/* Word::merge_all. */
static void word_merge(const moe_tokenizer *t, bpe_sym *sym, size_t n_sym, bpe_merge *heap) {
    size_t nh = 0;
    uint32_t rank;
    int32_t new_id;
    for (size_t i = 0; i + 1 < n_sym; i++)
        if (pairmap_get(&t->merges, sym[i].id, sym[i + 1].id, &rank, &new_id))
            heap_push(heap, &nh, (bpe_merge){rank, (uint32_t)i, new_id});
    while (nh > 0) {
        bpe_merge top = heap_pop(heap, &nh);
        bpe_sym *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next < 0) continue; /* merged away, or last */
        bpe_sym right = sym[cur->next];
        /* stale: the pair here changed since this entry was pushed */
        if (!pairmap_get(&t->merges, cur->id, right.id, &rank, &new_id) || new_id != top.new_id)
            continue;
        int32_t next_pos = cur->next;
        cur->id = top.new_id;
        cur->len += right.len;
        cur->next = right.next;
        sym[next_pos].len = 0;
        if (right.next >= 0) sym[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0 &&
            pairmap_get(&t->merges, sym[cur->prev].id, cur->id, &rank, &new_id))
            heap_push(heap, &nh, (bpe_merge){rank, (uint32_t)cur->prev, new_id});
        if (cur->next >= 0 && pairmap_get(&t->merges, cur->id, sym[cur->next].id, &rank, &new_id))
            heap_push(heap, &nh, (bpe_merge){rank, top.pos, new_id});
    }
}

int bpe_encode(const moe_tokenizer *t, bpe_scratch **scratch, const char *s, size_t n,
               int32_t **ids, size_t *n_ids, size_t *cap_ids, moe_err *err) {
    if (n == 0) return 0;
    if (t->ignore_merges) { /* a piece that is a token is taken whole */
        int32_t id = strmap_get(&t->vocab, s, n);
        if (id >= 0) return ids_push(ids, n_ids, cap_ids, id, err);
    }
    if (scratch_fit(scratch, n, err) != 0) return -1;
    bpe_scratch *sc = *scratch;
    size_t n_sym;
    if (word_init(t, sc->sym, &n_sym, s, n, err) != 0) return -1;
    if (!t->split_words) {
        word_merge(t, sc->sym, n_sym, sc->heap);
    } else { /* independent regions, each with its own small heap */
        uint32_t r;
        int32_t nid;
        size_t start = 0;
        for (size_t i = 1; i <= n_sym; i++) {
            bpe_sym *a = &sc->sym[i - 1], *b = &sc->sym[i];
            if (i < n_sym && (a->cp < 0 || b->cp < 0 ||
                              pairmap_get(&t->char_pairs, a->cp, b->cp, &r, &nid)))
                continue;
            bpe_sym *reg = sc->sym + start;
            size_t m = i - start;
            for (size_t k = 0; k < m; k++) {
                reg[k].prev = (int32_t)k - 1;
                reg[k].next = k + 1 < m ? (int32_t)k + 1 : -1;
            }
            word_merge(t, reg, m, sc->heap);
            start = i;
        }
    }
    for (size_t i = 0; i < n_sym; i++)
        if (sc->sym[i].len && ids_push(ids, n_ids, cap_ids, sc->sym[i].id, err) != 0) return -1;
    return 0;
}
