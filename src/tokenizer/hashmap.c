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
static uint32_t hash_str(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return h;
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

int32_t strmap_get(const tok_strmap *m, const char *s, size_t n) {
    if (!m->cap) return -1;
    uint32_t h = hash_str(s, n);
    size_t j = h & (m->cap - 1);
    for (;;) {
        const struct strmap_slot *e = &m->slot[j];
        if (!e->s) return -1;
        if (e->hash == h && e->n == n && memcmp(e->s, s, n) == 0) return e->id;
        j = (j + 1) & (m->cap - 1);
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
