/*
 * pool.h - one persistent thread pool. pool_for() splits a range over the
 * pool's threads (the caller is thread 0) and returns when all are done.
 * No allocation happens per call; workers sleep between calls.
 */
#ifndef MOE_BASE_POOL_H
#define MOE_BASE_POOL_H

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

#endif
