/*
 * added.c - finding added tokens (the "added_tokens" of tokenizer.json:
 * <s>, <|im_end|>, ...) in text before it reaches the model, as HF's
 * AddedVocabulary::find_matches does: leftmost-longest, non-overlapping
 * matches (HF uses Aho-Corasick with MatchKind::LeftmostLongest; a byte trie
 * probed at each position finds the same ones), then per token:
 *   single_word: the match is dropped unless no word char (\w) touches it;
 *   lstrip:      the whitespace before it joins the token (is removed);
 *   rstrip:      the whitespace after it joins the token.
 * A probe costs at most the longest token's length, so a scan is
 * O(len * longest token) with no allocation beyond the segment list.
 */
#include "tokenizer/tok_internal.h"
#include "base/err.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ trie */

static int32_t trie_node_new(tok_trie *tr, uint8_t byte) {
    if (tr->n == tr->cap) {
        int cap = tr->cap ? tr->cap * 2 : 64;
        tok_trie_node *p = realloc(tr->node, (size_t)cap * sizeof *p);
        if (!p) return -1;
        tr->node = p;
        tr->cap = cap;
    }
    tr->node[tr->n] = (tok_trie_node){-1, -1, -1, byte};
    return tr->n++;
}

int trie_add(tok_trie *tr, const char *s, size_t n, int32_t token) {
    if (n == 0) return 0; /* HF ignores empty tokens */
    if (tr->n == 0) {
        if (trie_node_new(tr, 0) < 0) return -1;
        for (int b = 0; b < 256; b++) tr->root_child[b] = -1;
    }
    const uint8_t *u = (const uint8_t *)s;
    int32_t cur = tr->root_child[u[0]];
    if (cur < 0) {
        if ((cur = trie_node_new(tr, u[0])) < 0) return -1;
        tr->root_child[u[0]] = cur;
    }
    for (size_t i = 1; i < n; i++) {
        int32_t c = tr->node[cur].child;
        while (c >= 0 && tr->node[c].byte != u[i]) c = tr->node[c].sibling;
        if (c < 0) {
            if ((c = trie_node_new(tr, u[i])) < 0) return -1;
            tr->node[c].sibling = tr->node[cur].child;
            tr->node[cur].child = c;
        }
        cur = c;
    }
    if (tr->node[cur].token < 0) tr->node[cur].token = token; /* the first pattern wins ties */
    return 0;
}

void trie_free(tok_trie *tr) {
    free(tr->node);
    tr->node = NULL;
    tr->n = tr->cap = 0;
}

/* Longest token starting at s[0..n): its index into added[] and length. */
static int trie_longest(const tok_trie *tr, const char *s, size_t n, int32_t *token, size_t *len) {
    const uint8_t *u = (const uint8_t *)s;
    int32_t cur = tr->root_child[u[0]];
    int found = 0;
    for (size_t i = 1; cur >= 0; i++) {
        if (tr->node[cur].token >= 0) {
            *token = tr->node[cur].token;
            *len = i;
            found = 1;
        }
        if (i >= n) break;
        int32_t c = tr->node[cur].child;
        while (c >= 0 && tr->node[c].byte != u[i]) c = tr->node[c].sibling;
        cur = c;
    }
    return found;
}

/* ---------------------------------------------------------- word checks */

static int32_t char_before(const char *s, size_t at) {
    size_t k = at - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    int l;
    return utf8_decode(s + k, &l);
}

static size_t space_run_before(const char *s, size_t at, size_t floor) {
    while (at > floor) {
        size_t k = at - 1;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        int l;
        if (!uni_is_space(utf8_decode(s + k, &l))) break;
        at = k;
    }
    return at;
}

static size_t space_run_after(const char *s, size_t at, size_t n) {
    while (at < n) {
        int l;
        if (!uni_is_space(utf8_decode(s + at, &l))) break;
        at += (size_t)l;
    }
    return at;
}

/* --------------------------------------------------------------- split */

static int seg_push(tok_seg **segs, size_t *n, size_t *cap, size_t off, size_t len, int32_t id,
                    moe_err *err) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        tok_seg *p = realloc(*segs, c * sizeof *p);
        if (!p) return moe_fail(err, "tokenizer: out of memory splitting added tokens");
        *segs = p;
        *cap = c;
    }
    (*segs)[(*n)++] = (tok_seg){off, len, id};
    return 0;
}

int added_split(const moe_tokenizer *t, const tok_trie *tr, const char *s, size_t n,
                tok_seg **segs, size_t *n_segs, size_t *cap, moe_err *err) {
    *n_segs = 0;
    if (n == 0) return 0;
    if (tr->n == 0) return seg_push(segs, n_segs, cap, 0, n, -1, err);
    size_t start_offset = 0, i = 0;
    while (i < n) {
        int32_t tk;
        size_t len;
        if (tr->root_child[(unsigned char)s[i]] < 0 || !trie_longest(tr, s + i, n - i, &tk, &len)) {
            i++;
            continue;
        }
        const tok_added *a = &t->added[tk];
        size_t start = i, stop = i + len;
        i = stop; /* the scan goes on after the match, kept or not */
        if (a->single_word) {
            int start_space = start == 0 || !uni_is_word(char_before(s, start));
            int l, stop_space = stop == n || !uni_is_word(utf8_decode(s + stop, &l));
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t ns = space_run_before(s, start, 0);
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) stop = space_run_after(s, stop, n);
        if (start_offset < start && seg_push(segs, n_segs, cap, start_offset, start - start_offset, -1, err) != 0)
            return -1;
        if (seg_push(segs, n_segs, cap, start, stop - start, a->id, err) != 0) return -1;
        start_offset = stop;
    }
    if (start_offset < n && seg_push(segs, n_segs, cap, start_offset, n - start_offset, -1, err) != 0)
        return -1;
    return 0;
}
