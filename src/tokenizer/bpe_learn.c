/*
 * bpe_learn.c - learning BPE merges from counted words (see bpe_train.h).
 *
 * The standard incremental algorithm (as HF's BpeTrainer and SentencePiece):
 *   - every distinct word is a sequence of symbol ids, starting as bytes;
 *   - every adjacent pair (a, b) has an exact count (sum of the counts of the
 *     words it occurs in, with repeats) and a list of the words that may hold
 *     it (stale entries and repeats allowed, checked when used);
 *   - a max-queue of (count, a, b) entries with lazy invalidation: an entry
 *     whose count is no longer the pair's is pushed back with the right
 *     count or dropped. Every pair with count > 0 always has an entry at
 *     least as large as its count, so the first entry popped whose count is
 *     current is the true maximum;
 *   - merging (a, b) -> X walks only the words on the pair's list and, for
 *     each occurrence, moves counts from (prev, a) and (b, next) to
 *     (prev, X) and (X, next). Pairs that grew are pushed once per step.
 * So a merge costs the words it touches, never a pass over all words.
 *
 * Determinism: the queue orders by count, then by smaller left id, then by
 * smaller right id; ids are given in merge order. Nothing depends on hash
 * or word order. When a+b spells a token that already exists (from another
 * split of the same bytes) that id is reused, as HF's trainer does, and the
 * vocabulary budget counts distinct tokens.
 */
#include "tokenizer/bpe_train.h"
#include "tokenizer/tok_internal.h"
#include "base/err.h"

#include <stdlib.h>
#include <string.h>

typedef struct lpair {
    int32_t a, b;     /* left, right symbol */
    int64_t count;    /* occurrences over all words, weighted by word count */
    uint32_t *w;      /* [nw] words that may hold the pair */
    uint32_t nw, cw;
    uint32_t last_w;  /* last word appended (one word is listed once per run of appends) */
    uint32_t epoch;   /* step that last raised count */
    uint8_t merged;   /* its merge line is written already */
} lpair;

typedef struct qentry {
    int64_t count;
    int32_t a, b;
    uint32_t pair; /* index into pair[] */
} qentry;

typedef struct learner {
    size_t n_words;
    uint64_t *w_off;     /* [n_words] first symbol in sym */
    uint32_t *w_len;     /* [n_words] symbols now */
    uint64_t *w_cnt;     /* [n_words] occurrences of the word */
    int32_t *sym;        /* symbols of all words */
    lpair *pair;         /* [n_pairs] */
    size_t n_pairs, cap_pairs;
    tok_pairmap index;   /* (a, b) -> pair index (in the rank field) */
    qentry *q;           /* binary max-heap */
    size_t n_q, cap_q;
    uint32_t *touched;   /* pairs whose count rose this step */
    size_t n_touched, cap_touched;
    uint32_t epoch;
    tok_strmap tokmap;   /* token bytes -> id, to reuse a spelling */
} learner;

static const char OOM[] = "tokenizer training: out of memory learning merges";

/* ------------------------------------------------------------ byte ids */

int bpe_byte_id(unsigned char b) {
    /* Chars < 256 are the printable bytes themselves (188 of them), sorted;
     * the other 68 map to 256 + k in byte order, after them. */
    int32_t c = tok_byte_char(b);
    if (c >= 256) return 188 + (c - 256);
    int id = 0;
    for (int x = 0; x < c; x++) id += tok_char_byte(x) >= 0;
    return id;
}

/* ----------------------------------------------------------------- queue */

static int q_better(const qentry *x, const qentry *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static int q_push(learner *L, const qentry *e) {
    if (L->n_q == L->cap_q) {
        size_t cap = L->cap_q ? L->cap_q * 2 : 1024;
        qentry *q = realloc(L->q, cap * sizeof *q);
        if (!q) return -1;
        L->q = q;
        L->cap_q = cap;
    }
    size_t i = L->n_q++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!q_better(e, &L->q[up])) break;
        L->q[i] = L->q[up];
        i = up;
    }
    L->q[i] = *e;
    return 0;
}

static qentry q_pop(learner *L) {
    qentry top = L->q[0], last = L->q[--L->n_q];
    size_t i = 0, n = L->n_q;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && q_better(&L->q[c + 1], &L->q[c])) c++;
        if (!q_better(&L->q[c], &last)) break;
        L->q[i] = L->q[c];
        i = c;
    }
    if (n) L->q[i] = last;
    return top;
}

/* ----------------------------------------------------------------- pairs */


/* count += d for (a, b) in word w (created if new; w listed if d > 0). */
static int pair_add(learner *L, int32_t a, int32_t b, int64_t d, uint32_t w) {
    uint32_t idx;
    int32_t unused;
    if (!pairmap_get(&L->index, a, b, &idx, &unused)) {
        if (d < 0) return -1; /* every pair taken from was counted */
        if (L->n_pairs == L->cap_pairs) {
            size_t cap = L->cap_pairs ? L->cap_pairs * 2 : 4096;
            lpair *p = realloc(L->pair, cap * sizeof *p);
            if (!p) return -1;
            L->pair = p;
            L->cap_pairs = cap;
        }
        if (L->n_pairs >= UINT32_MAX) return -1;
        idx = (uint32_t)L->n_pairs++;
        L->pair[idx] = (lpair){.a = a, .b = b, .last_w = UINT32_MAX};
        if (pairmap_put(&L->index, a, b, idx, 0) != 0) return -1;
    }
    lpair *p = &L->pair[idx];
    p->count += d;
    if (d <= 0) return 0;
    if (p->last_w != w) {
        if (p->nw == p->cw) {
            uint32_t cap = p->cw ? p->cw * 2 : 4;
            uint32_t *x = realloc(p->w, (size_t)cap * sizeof *x);
            if (!x) return -1;
            p->w = x;
            p->cw = cap;
        }
        p->w[p->nw++] = w;
        p->last_w = w;
    }
    if (p->epoch != L->epoch) {
        p->epoch = L->epoch;
        if (L->n_touched == L->cap_touched) {
            size_t cap = L->cap_touched ? L->cap_touched * 2 : 1024;
            uint32_t *t = realloc(L->touched, cap * sizeof *t);
            if (!t) return -1;
            L->touched = t;
            L->cap_touched = cap;
        }
        L->touched[L->n_touched++] = idx;
    }
    return 0;
}

/* Queue every pair that grew this step, at its count now. */
static int push_touched(learner *L) {
    for (size_t i = 0; i < L->n_touched; i++) {
        const lpair *p = &L->pair[L->touched[i]];
        qentry e = {p->count, p->a, p->b, L->touched[i]};
        if (p->count > 0 && q_push(L, &e) != 0) return -1;
    }
    L->n_touched = 0;
    return 0;
}

/* --------------------------------------------------------------- words */

/* Replace every (a, b) in word w by x, left to right, moving the counts of
 * the neighbouring pairs. In place: the write index j never passes i. */
static int merge_word(learner *L, uint32_t w, int32_t a, int32_t b, int32_t x) {
    int32_t *s = L->sym + L->w_off[w];
    uint32_t n = L->w_len[w], j = 0;
    int64_t c = (int64_t)L->w_cnt[w];
    for (uint32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            if (pair_add(L, a, b, -c, w) != 0) return -1;
            if (j > 0 && (pair_add(L, s[j - 1], a, -c, w) != 0 || pair_add(L, s[j - 1], x, c, w) != 0))
                return -1;
            if (i + 2 < n && (pair_add(L, b, s[i + 2], -c, w) != 0 || pair_add(L, x, s[i + 2], c, w) != 0))
                return -1;
            s[j++] = x;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    L->w_len[w] = j;
    return 0;
}

/* Copy the counter's words (those of 2+ bytes: a 1-byte word has no pair)
 * as byte ids, and count their pairs. */
static int load_words(learner *L, const bpe_counter *c) {
    size_t n_words = 0, n_sym = 0;
    const char *s;
    size_t n;
    uint64_t cnt;
    for (size_t i = 0; i < bpe_counter_slots(c); i++)
        if (bpe_counter_get(c, i, &s, &n, &cnt) && n >= 2) n_words++, n_sym += n;
    if (n_words >= UINT32_MAX) return -1;
    L->w_off = malloc((n_words + 1) * sizeof *L->w_off);
    L->w_len = malloc((n_words + 1) * sizeof *L->w_len);
    L->w_cnt = malloc((n_words + 1) * sizeof *L->w_cnt);
    L->sym = malloc((n_sym + 1) * sizeof *L->sym);
    if (!L->w_off || !L->w_len || !L->w_cnt || !L->sym || pairmap_init(&L->index, 1 << 16) != 0)
        return -1;
    int byte_id[256];
    for (int b = 0; b < 256; b++) byte_id[b] = bpe_byte_id((unsigned char)b);
    size_t w = 0, off = 0;
    L->epoch = 1;
    for (size_t i = 0; i < bpe_counter_slots(c); i++) {
        if (!bpe_counter_get(c, i, &s, &n, &cnt) || n < 2) continue;
        L->w_off[w] = off;
        L->w_len[w] = (uint32_t)n;
        L->w_cnt[w] = cnt;
        for (size_t k = 0; k < n; k++) L->sym[off + k] = byte_id[(unsigned char)s[k]];
        for (size_t k = 0; k + 1 < n; k++)
            if (pair_add(L, L->sym[off + k], L->sym[off + k + 1], (int64_t)cnt, (uint32_t)w) != 0)
                return -1;
        off += n;
        w++;
    }
    L->n_words = w;
    return push_touched(L);
}

static void learner_free(learner *L) {
    free(L->w_off);
    free(L->w_len);
    free(L->w_cnt);
    free(L->sym);
    for (size_t i = 0; i < L->n_pairs; i++) free(L->pair[i].w);
    free(L->pair);
    pairmap_free(&L->index);
    free(L->q);
    free(L->touched);
    strmap_free(&L->tokmap);
}

/* --------------------------------------------------------------- model */

void bpe_model_free(bpe_model *m) {
    for (int i = 0; i < m->n_tokens; i++) free(m->tok[i]);
    free(m->tok);
    free(m->tok_len);
    free(m->merge);
    memset(m, 0, sizeof *m);
}

/* Add token s[0..n) as id m->n_tokens. */
static int model_add(bpe_model *m, learner *L, const char *s, size_t n) {
    if (m->n_tokens == m->cap_tokens) {
        int cap = m->cap_tokens ? m->cap_tokens * 2 : 1024;
        char **tok = realloc(m->tok, (size_t)cap * sizeof *tok);
        if (!tok) return -1;
        m->tok = tok;
        uint32_t *len = realloc(m->tok_len, (size_t)cap * sizeof *len);
        if (!len) return -1;
        m->tok_len = len;
        m->cap_tokens = cap;
    }
    char *t = malloc(n + 1);
    if (!t) return -1;
    memcpy(t, s, n);
    t[n] = 0;
    m->tok[m->n_tokens] = t;
    m->tok_len[m->n_tokens] = (uint32_t)n;
    if (strmap_put(&L->tokmap, t, (uint32_t)n, m->n_tokens) != 0) return -1;
    m->n_tokens++;
    return 0;
}

static int model_merge(bpe_model *m, int32_t a, int32_t b, int32_t x) {
    if (m->n_merges == m->cap_merges) {
        int cap = m->cap_merges ? m->cap_merges * 2 : 1024;
        int32_t *p = realloc(m->merge, (size_t)cap * 3 * sizeof *p);
        if (!p) return -1;
        m->merge = p;
        m->cap_merges = cap;
    }
    int32_t *e = m->merge + 3 * m->n_merges++;
    e[0] = a, e[1] = b, e[2] = x;
    return 0;
}

/* The next pair to merge: pop until an entry's count is current. -1 if none. */
static int next_pair(learner *L) {
    while (L->n_q) {
        qentry e = q_pop(L);
        lpair *p = &L->pair[e.pair];
        if (e.count == p->count) return (int)e.pair;
        if (p->count > 0 && e.count > p->count) { /* it shrank: requeue where it belongs */
            qentry f = {p->count, p->a, p->b, e.pair};
            if (q_push(L, &f) != 0) return -2;
        }
        /* e.count < count: a larger entry was pushed when it grew */
    }
    return -1;
}

int bpe_learn(bpe_counter *c, int n_tokens, int64_t min_freq,
              void (*tick)(void *ctx, int merges_done), void *ctx, bpe_model *m, moe_err *err) {
    memset(m, 0, sizeof *m);
    if (n_tokens < 256 || n_tokens > BPE_MAX_VOCAB)
        return moe_fail(err, "tokenizer training: %d tokens out of range [256, %d]", n_tokens, BPE_MAX_VOCAB);
    if (min_freq < 1) min_freq = 1;
    learner L = {0};
    int rc = strmap_init(&L.tokmap, 4096) != 0 ? -1 : 0; /* grows: n_tokens may be far off */
    unsigned char byte_of[256]; /* id -> byte */
    for (int b = 0; b < 256; b++) byte_of[bpe_byte_id((unsigned char)b)] = (unsigned char)b;
    for (int id = 0; id < 256 && rc == 0; id++) rc = model_add(m, &L, (const char *)&byte_of[id], 1);
    if (rc == 0) rc = load_words(&L, c);
    bpe_counter_clear(c);
    if (rc != 0) {
        learner_free(&L);
        bpe_model_free(m);
        return moe_fail(err, OOM);
    }
    int want = n_tokens - 256, every = want / 100 > 0 ? want / 100 : 1;
    tok_buf ab = {0};
    while (rc == 0 && m->n_tokens < n_tokens) {
        int k = next_pair(&L);
        if (k == -2) rc = moe_fail(err, OOM);
        if (k < 0 || L.pair[k].count < min_freq) break;
        lpair p = L.pair[k];
        ab.n = 0;
        if (buf_put(&ab, m->tok[p.a], m->tok_len[p.a]) != 0 ||
            buf_put(&ab, m->tok[p.b], m->tok_len[p.b]) != 0) {
            rc = moe_fail(err, OOM);
            break;
        }
        int32_t x = strmap_get(&L.tokmap, ab.p, ab.n);
        if (x < 0) {
            x = m->n_tokens;
            if (model_add(m, &L, ab.p, ab.n) != 0) rc = moe_fail(err, OOM);
        }
        /* A pair merged before can come back when a reused id recreates it:
         * apply it again, but its merge line (first rank) stands. */
        if (rc == 0 && !p.merged && model_merge(m, p.a, p.b, x) != 0) rc = moe_fail(err, OOM);
        L.pair[k].merged = 1;
        /* Take the word list: merging can add pairs (moving pair[]). */
        L.pair[k].w = NULL;
        L.pair[k].nw = L.pair[k].cw = 0;
        L.pair[k].last_w = UINT32_MAX;
        L.epoch++;
        for (uint32_t i = 0; i < p.nw && rc == 0; i++)
            if (merge_word(&L, p.w[i], p.a, p.b, x) != 0) rc = moe_fail(err, OOM);
        free(p.w);
        if (rc == 0 && L.pair[k].count != 0)
            rc = moe_fail(err, "tokenizer training: internal error: pair (%d, %d) still counted %lld "
                          "after its merge", p.a, p.b, (long long)L.pair[k].count);
        if (rc == 0 && push_touched(&L) != 0) rc = moe_fail(err, OOM);
        if (rc == 0 && tick && (m->n_merges % every == 0)) tick(ctx, m->n_merges);
    }
    buf_free(&ab);
    learner_free(&L);
    if (rc != 0) {
        bpe_model_free(m);
        return -1;
    }
    if (tick) tick(ctx, m->n_merges);
    return 0;
}
