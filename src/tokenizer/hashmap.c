/*
 * hashmap.c - the two maps BPE needs: token string -> id and (left id,
 * right id) -> (merge rank, merged id). Open addressing with linear probing
 * over a power-of-two table kept at most half full, so a lookup is a couple
 * of cache lines and encoding stays O(n log n) on any input.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

struct strmap_slot {
    const char *s; /* key bytes (not owned); NULL = empty slot */
    uint32_t n;    /* key length */
    uint32_t hash; /* full hash, to skip most memcmp calls */
    int32_t id;
};

struct pairmap_slot {
    uint64_t key; /* (a << 32) | b; UINT64_MAX = empty */
    uint32_t rank;
    int32_t new_id;
};

static size_t table_size(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 1) cap *= 2;
    return cap;
}

/* FNV-1a: token strings are short (a few bytes), so a simple byte hash is as
 * fast as anything and spreads well once mixed. */
#define FNV_START 2166136261u
static uint32_t fnv_step(uint32_t h, unsigned char c) { return (h ^ c) * 16777619u; }

static uint32_t hash_mix(uint32_t h) {
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return h;
}

static uint32_t hash_str(const char *s, size_t n) {
    uint32_t h = FNV_START;
    for (size_t i = 0; i < n; i++) h = fnv_step(h, (unsigned char)s[i]);
    return hash_mix(h);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* ---------------------------------------------------------------- strmap */

int strmap_init(tok_strmap *m, size_t expected) {
    m->cap = table_size(expected);
    m->count = 0;
    m->slot = calloc(m->cap, sizeof *m->slot);
    return m->slot ? 0 : -1;
}

void strmap_free(tok_strmap *m) {
    free(m->slot);
    m->slot = NULL;
    m->cap = m->count = 0;
}

static int strmap_grow(tok_strmap *m) {
    tok_strmap bigger = {calloc(m->cap * 2, sizeof *m->slot), m->cap * 2, 0};
    if (!bigger.slot) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        struct strmap_slot *e = &m->slot[i];
        if (!e->s) continue;
        size_t j = e->hash & (bigger.cap - 1);
        while (bigger.slot[j].s) j = (j + 1) & (bigger.cap - 1);
        bigger.slot[j] = *e;
        bigger.count++;
    }
    free(m->slot);
    *m = bigger;
    return 0;
}

int strmap_put(tok_strmap *m, const char *s, uint32_t n, int32_t id) {
    if ((m->count + 1) * 2 > m->cap && strmap_grow(m) != 0) return -1;
    uint32_t h = hash_str(s, n);
    size_t j = h & (m->cap - 1);
    for (;;) {
        struct strmap_slot *e = &m->slot[j];
        if (!e->s) {
            *e = (struct strmap_slot){s, n, h, id};
            m->count++;
            return 0;
        }
        if (e->hash == h && e->n == n && memcmp(e->s, s, n) == 0) {
            e->id = id;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
}

static int32_t strmap_get_hashed(const tok_strmap *m, const char *s, size_t n, uint32_t h) {
    if (!m->cap) return -1;
    size_t j = h & (m->cap - 1);
    for (;;) {
        const struct strmap_slot *e = &m->slot[j];
        if (!e->s) return -1;
        if (e->hash == h && e->n == n && memcmp(e->s, s, n) == 0) return e->id;
        j = (j + 1) & (m->cap - 1);
    }
}

int32_t strmap_get(const tok_strmap *m, const char *s, size_t n) {
    return strmap_get_hashed(m, s, n, hash_str(s, n));
}

static int u32_cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int strmap_lengths(const tok_strmap *m, uint32_t **lens, size_t *n) {
    *n = 0;
    *lens = malloc((m->count + 1) * sizeof **lens);
    if (!*lens) return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slot[i].s) (*lens)[(*n)++] = m->slot[i].n;
    qsort(*lens, *n, sizeof **lens, u32_cmp);
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (k == 0 || (*lens)[k - 1] != (*lens)[i]) (*lens)[k++] = (*lens)[i];
    *n = k;
    return 0;
}

static int has_len(const uint32_t *lens, size_t n, uint32_t x) {
    return bsearch(&x, lens, n, sizeof x, u32_cmp) != NULL;
}

int strmap_splits(const tok_strmap *m, const uint32_t *lens, size_t n_lens, const char *s,
                  uint32_t n, tok_split_fn fn, void *ctx) {
    if (n == 0) return 0;
    uint32_t h = FNV_START, k = 0, cps = 0;
    uint32_t next = (uint32_t)utf8_len((unsigned char)s[0]);
    for (;;) {
        /* extend the prefix hash to the next code-point boundary */
        for (; k < next && k < n; k++) h = fnv_step(h, (unsigned char)s[k]);
        cps++;
        if (k >= n) return 0;
        int32_t a = has_len(lens, n_lens, n - k) ? strmap_get_hashed(m, s, k, hash_mix(h)) : -1;
        if (a >= 0) {
            int32_t b = strmap_get(m, s + k, n - k);
            if (b >= 0) {
                int rc = fn(ctx, k, a, b, cps);
                if (rc != 0) return rc;
            }
        }
        next = k + (uint32_t)utf8_len((unsigned char)s[k]);
    }
}

/* --------------------------------------------------------------- pairmap */

int pairmap_init(tok_pairmap *m, size_t expected) {
    m->cap = table_size(expected);
    m->count = 0;
    m->slot = malloc(m->cap * sizeof *m->slot);
    if (!m->slot) return -1;
    for (size_t i = 0; i < m->cap; i++) m->slot[i].key = UINT64_MAX;
    return 0;
}

void pairmap_free(tok_pairmap *m) {
    free(m->slot);
    m->slot = NULL;
    m->cap = m->count = 0;
}

static int pairmap_grow(tok_pairmap *m) {
    tok_pairmap bigger;
    if (pairmap_init(&bigger, m->cap) != 0) return -1; /* table_size(cap) = 2 * cap */
    for (size_t i = 0; i < m->cap; i++) {
        struct pairmap_slot *e = &m->slot[i];
        if (e->key == UINT64_MAX) continue;
        size_t j = hash_u64(e->key) & (bigger.cap - 1);
        while (bigger.slot[j].key != UINT64_MAX) j = (j + 1) & (bigger.cap - 1);
        bigger.slot[j] = *e;
        bigger.count++;
    }
    free(m->slot);
    *m = bigger;
    return 0;
}

int pairmap_put(tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    if ((m->count + 1) * 2 > m->cap && pairmap_grow(m) != 0) return -1;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t j = hash_u64(key) & (m->cap - 1);
    for (;;) {
        struct pairmap_slot *e = &m->slot[j];
        if (e->key == UINT64_MAX) {
            *e = (struct pairmap_slot){key, rank, new_id};
            m->count++;
            return 0;
        }
        if (e->key == key) { /* a repeated merge: the later line wins, as in HF */
            e->rank = rank;
            e->new_id = new_id;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
}

int pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id) {
    if (!m->cap) return 0;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t j = hash_u64(key) & (m->cap - 1);
    for (;;) {
        const struct pairmap_slot *e = &m->slot[j];
        if (e->key == key) {
            *rank = e->rank;
            *new_id = e->new_id;
            return 1;
        }
        if (e->key == UINT64_MAX) return 0;
        j = (j + 1) & (m->cap - 1);
    }
}
