/*
 * pool.h - one persistent thread pool. pool_for() splits a range over the
 * pool's threads (the caller is thread 0) and returns when all are done.
 * No allocation happens per call; workers sleep between calls.
 */
#ifndef MOE_BASE_POOL_H
#define MOE_BASE_POOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct pool pool;

/* Work on [i0, i1) as thread tid (0 <= tid < pool_size). */
typedef void (*pool_fn)(void *ctx, int64_t i0, int64_t i1, int tid);

/* n_threads total, counting the caller; 0 = online CPUs. NULL on failure. */
pool *pool_create(int n_threads);
void pool_free(pool *p);
int pool_size(const pool *p);

/* Run fn over [0, n) in chunks of at least `grain` items. With a NULL pool or
 * one thread, calls fn(ctx, 0, n, 0) directly. Chunks are handed out
 * dynamically so uneven work balances. Not reentrant: fn must not call
 * pool_for on the same pool. */
void pool_for(pool *p, int64_t n, int64_t grain, pool_fn fn, void *ctx);

/* Scratch owned by the pool, so that kernels keep no state of their own:
 * each thread's region of per_thread bytes, and one region of shared bytes
 * that the calling thread fills during a call and every thread may read
 * (activations quantized once). The owner sizes them before running work
 * (a session does, for its model, at creation); never during a pool_for.
 * Regions only grow. 0, or -1 when out of memory (nothing changed). */
int pool_reserve(pool *p, size_t per_thread, size_t shared);
/* Thread tid's region when it holds `bytes`, else NULL (a NULL pool has
 * none): the caller then uses memory of its own. 64-byte aligned. */
void *pool_scratch(pool *p, int tid, size_t bytes);
void *pool_shared(pool *p, size_t bytes);
/* How many requests of the two above the reservation was too small for
 * (each then allocated its own memory): an owner that sized it for all its
 * work sees 0. */
int64_t pool_scratch_misses(const pool *p);

/* The kernel choice work on this pool runs with (kernels.h: kern_cfg, an
 * entry of a constant table; the pool only holds the pointer). Set by the
 * owner before running work, like the scratch; NULL (the initial value)
 * means the process default. pool_kern of a NULL pool is NULL. */
struct kern_cfg;
void pool_set_kern(pool *p, const struct kern_cfg *k);
const struct kern_cfg *pool_kern(const pool *p);

#endif
