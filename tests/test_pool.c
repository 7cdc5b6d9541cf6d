/*
 * test_pool.c - the thread pool: every index covered exactly once for many
 * thread counts, grains and sizes; chunks respect the grain; thread ids in
 * range; the spin, sleep and wake paths; the NULL / one-thread shortcuts.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/pool.h"
#include "test.h"

typedef struct {
    atomic_int *hits;   /* [n] times each index was visited */
    atomic_int bad;     /* chunks that broke a rule */
    atomic_int tids;    /* bit t set when thread t ran a chunk */
    atomic_long calls;  /* fn invocations */
    int64_t n, grain;
    int nt;
    int sleep_us;       /* per item, to give workers time to join */
} cover_ctx;

static void cover_fn(void *vc, int64_t i0, int64_t i1, int tid) {
    cover_ctx *c = vc;
    atomic_fetch_add(&c->calls, 1);
    if (i0 < 0 || i1 > c->n || i0 >= i1 || tid < 0 || tid >= c->nt) {
        atomic_fetch_add(&c->bad, 1);
        return;
    }
    if (i1 - i0 < c->grain && i1 != c->n) atomic_fetch_add(&c->bad, 1); /* only the last may be short */
    if (tid < 30) atomic_fetch_or(&c->tids, 1 << tid);
    for (int64_t i = i0; i < i1; i++) {
        atomic_fetch_add(&c->hits[i], 1);
        if (c->sleep_us) usleep((useconds_t)c->sleep_us);
    }
}

/* Run pool_for once and check each index of [0, n) was visited once. */
static int cover_check(pool *p, int64_t n, int64_t grain) {
    cover_ctx c;
    memset(&c, 0, sizeof c);
    c.hits = calloc((size_t)(n > 0 ? n : 1), sizeof *c.hits);
    if (!c.hits) return 0;
    c.n = n;
    c.grain = grain < 1 ? 1 : grain;
    c.nt = pool_size(p);
    pool_for(p, n, grain, cover_fn, &c);
    int ok = atomic_load(&c.bad) == 0;
    for (int64_t i = 0; i < n; i++) ok &= atomic_load(&c.hits[i]) == 1;
    if (n <= 0) ok &= atomic_load(&c.calls) == 0;
    free(c.hits);
    return ok;
}

TEST(pool_create_sizes) {
    pool *p = pool_create(0);
    CHECK(p != NULL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK_EQ_INT(pool_size(p), cpus > 0 ? cpus : 1);
    pool_free(p);
    p = pool_create(1);
    CHECK(p != NULL);
    CHECK_EQ_INT(pool_size(p), 1);
    pool_free(p);
    p = pool_create(5);
    CHECK(p != NULL);
    CHECK_EQ_INT(pool_size(p), 5);
    pool_free(p);
    CHECK_EQ_INT(pool_size(NULL), 1);
    pool_free(NULL); /* no-op */
}

TEST(pool_covers_every_index_once) {
    static const int threads[] = {1, 2, 3, 4, 8};
    static const int64_t grains[] = {0, 1, 3, 7, 64, 1000};
    static const int64_t sizes[] = {0, 1, 2, 5, 63, 100, 1001, 10007};
    for (size_t a = 0; a < sizeof threads / sizeof threads[0]; a++) {
        pool *p = pool_create(threads[a]);
        CHECK(p != NULL);
        if (!p) continue;
        for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
                CHECK_MSG(cover_check(p, sizes[s], grains[g]), "threads %d grain %lld n %lld",
                          threads[a], (long long)grains[g], (long long)sizes[s]);
        pool_free(p);
    }
}

TEST(pool_null_and_single_thread_run_inline) {
    cover_ctx c;
    memset(&c, 0, sizeof c);
    atomic_int hits[10];
    for (int i = 0; i < 10; i++) atomic_init(&hits[i], 0);
    c.hits = hits;
    c.n = 10;
    c.grain = 1;
    c.nt = 1;
    pool_for(NULL, 10, 1, cover_fn, &c);
    CHECK_EQ_INT(atomic_load(&c.calls), 1); /* one call for the whole range */
    CHECK_EQ_INT(atomic_load(&c.bad), 0);
    pool *p = pool_create(1);
    CHECK(p != NULL);
    pool_for(p, 10, 1, cover_fn, &c);
    CHECK_EQ_INT(atomic_load(&c.calls), 2);
    for (int i = 0; i < 10; i++) CHECK_EQ_INT(atomic_load(&hits[i]), 2);
    pool_free(p);
}

typedef struct {
    atomic_long sum;
} sum_ctx;

static void sum_fn(void *vc, int64_t i0, int64_t i1, int tid) {
    sum_ctx *c = vc;
    long s = 0;
    for (int64_t i = i0; i < i1; i++) s += (long)i;
    atomic_fetch_add(&c->sum, s);
}

/* Many back-to-back calls: the spin path, as decode uses it. */
TEST(pool_many_small_calls) {
    pool *p = pool_create(3);
    CHECK(p != NULL);
    if (!p) return;
    sum_ctx c;
    atomic_init(&c.sum, 0);
    long expect = 0;
    for (int it = 0; it < 20000; it++) {
        int64_t n = 1 + it % 13;
        pool_for(p, n, 1, sum_fn, &c);
        expect += (long)(n * (n - 1) / 2);
    }
    CHECK_EQ_INT(atomic_load(&c.sum), expect);
    pool_free(p);
}

/* Workers that have gone to sleep (spin disabled, or pauses longer than
 * the spin) must wake for the next call. */
TEST(pool_sleep_and_wake) {
    setenv("MOE_POOL_SPIN_US", "0", 1);
    pool *p = pool_create(2);
    unsetenv("MOE_POOL_SPIN_US");
    CHECK(p != NULL);
    if (!p) return;
    for (int it = 0; it < 500; it++) CHECK(cover_check(p, 1 + it % 37, 1));
    pool_free(p);

    setenv("MOE_POOL_SPIN_US", "50", 1);
    p = pool_create(3);
    unsetenv("MOE_POOL_SPIN_US");
    CHECK(p != NULL);
    if (!p) return;
    for (int it = 0; it < 20; it++) {
        CHECK(cover_check(p, 100, 1));
        usleep(it % 2 ? 200 : 2000); /* longer than the spin: workers sleep */
    }
    pool_free(p);
}

/* Work is shared: with slow items, a second thread takes some of them. */
TEST(pool_workers_take_part) {
    pool *p = pool_create(2);
    CHECK(p != NULL);
    if (!p) return;
    int both = 0;
    for (int attempt = 0; attempt < 10 && !both; attempt++) {
        cover_ctx c;
        memset(&c, 0, sizeof c);
        atomic_int hits[32];
        for (int i = 0; i < 32; i++) atomic_init(&hits[i], 0);
        c.hits = hits;
        c.n = 32;
        c.grain = 1;
        c.nt = 2;
        c.sleep_us = 500;
        pool_for(p, 32, 1, cover_fn, &c);
        both = atomic_load(&c.tids) == 3;
    }
    CHECK(both);
    pool_free(p);
}

/* Create and free repeatedly (thread start/exit, no leaks under ASan). */
TEST(pool_create_free_loop) {
    for (int it = 0; it < 50; it++) {
        pool *p = pool_create(1 + it % 4);
        CHECK(p != NULL);
        if (it % 2) CHECK(cover_check(p, 50, 1));
        pool_free(p);
    }
}
