/*
 * kern_pool.h - pools that run a chosen kernel path, for the tests that
 * hold each fast path to the scalar reference.
 */
#ifndef MOE_TESTS_KERN_POOL_H
#define MOE_TESTS_KERN_POOL_H

#include "base/pool.h"
#include "kernels/kernels.h"

/* A pool of n threads (1: the caller only, as a NULL pool runs) with
 * kernel choice k; NULL when k is NULL (the CPU lacks that path). */
static inline pool *kern_pool_cfg(int n, const kern_cfg *k) {
    if (!k) return NULL;
    pool *p = pool_create(n);
    pool_set_kern(p, k);
    return p;
}

/* The same for ISA i with the extras the CPU has (kernels_named). */
static inline pool *kern_pool(int n, isa i) { return kern_pool_cfg(n, kernels_named(isa_name(i))); }

/* One- and two-thread pools for every ISA (NULL where the CPU lacks it). */
typedef struct kern_pools {
    pool *one[ISA_COUNT], *two[ISA_COUNT];
} kern_pools;

static inline void kern_pools_init(kern_pools *k) {
    for (int i = 0; i < ISA_COUNT; i++) k->one[i] = kern_pool(1, (isa)i), k->two[i] = kern_pool(2, (isa)i);
}

static inline void kern_pools_free(kern_pools *k) {
    for (int i = 0; i < ISA_COUNT; i++) pool_free(k->one[i]), pool_free(k->two[i]);
}

#endif
