/*
 * pool.c - the persistent thread pool behind pool_for().
 *
 * Decode calls pool_for() hundreds of times per token, so a call must cost
 * about a microsecond, not a futex round trip per worker. The scheme:
 *   - a job is the range [0, n) cut into n_chunks chunks. The caller writes
 *     the job fields, then stores `remaining` = n_chunks (release) and bumps
 *     `gen` so idle workers notice;
 *   - any thread claims a chunk by a compare-and-swap of `remaining` to
 *     remaining - 1 (never below 0), then reads the job fields. A successful
 *     claim synchronizes with the store that published the job, and the job
 *     cannot finish (so its fields cannot change) until the claimed chunk is
 *     done; so a worker that wakes late can never run a stale job: it either
 *     claims a chunk of the current job or finds nothing left;
 *   - finished chunks are counted in `done`; the caller (thread 0) claims
 *     chunks too and returns when done == n_chunks. It never waits for a
 *     worker that took no chunk, so a preempted or sleeping worker costs
 *     nothing but its share of the work.
 * Idle workers spin on `gen` (pause, then sched_yield so an oversubscribed
 * machine still makes progress) for SPIN_US, then sleep on a condition
 * variable. Sleeping uses a Dekker-style handshake: a worker bumps `sleepers`
 * and re-reads `gen` under the mutex; the caller bumps `gen` and then reads
 * `sleepers` (both seq_cst), so one of them always sees the other.
 */
#include "base/pool.h"
#include "moe.h"

#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long an idle worker waits for the next job before sleeping, in
 * microseconds: long enough to bridge the serial parts of a decode step
 * (norms, attention, sampling), short enough that an idle program stops
 * burning CPU at once. MOE_POOL_SPIN_US overrides it (0 = sleep at once). */
#define SPIN_US_DEFAULT 1000
/* Of that, the first part is a pure pause loop (lowest wake latency); after
 * it the worker also yields the CPU between checks. */
#define SPIN_PURE_US 50

/* Chunks per thread the scheduler aims for: enough to balance uneven work,
 * few enough that claiming stays noise. */
#define CHUNKS_PER_THREAD 8

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

struct pool {
    int n_threads;      /* counting the caller */
    unsigned char *scratch; /* [n_threads][per_thread] then [shared] */
    size_t per_thread, shared;
    double spin_us;     /* idle wait before sleeping */
    const struct kern_cfg *kern; /* the owner's kernel choice; NULL = default */
    pthread_t *threads; /* [n_threads - 1] workers */
    int n_started;      /* workers actually created */

    /* One cache line holds the wake signal, the claim counter and the job,
     * so a worker that sees a new generation has the job in hand. The job
     * fields are written by the caller before `remaining` is set and read
     * only by a thread holding a claimed chunk. */
    alignas(64) atomic_uint gen;     /* bumped per job: the wake signal */
    atomic_int_fast64_t remaining;   /* chunks not yet claimed */
    pool_fn fn;
    void *ctx;
    int64_t n, chunk, n_chunks;

    atomic_int_fast64_t misses;           /* scratch requests beyond the reservation */

    alignas(64) atomic_int_fast64_t done; /* chunks finished */
    alignas(64) atomic_int sleepers;      /* workers in (or entering) cond_wait */
    atomic_int stop;                      /* workers exit when set */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

typedef struct {
    pool *p;
    int tid;
} worker_arg;

/* Claim one chunk; returns its index or -1 when none is left. */
static inline int64_t pool_claim(pool *p) {
    int_fast64_t r = atomic_load_explicit(&p->remaining, memory_order_relaxed);
    while (r > 0) {
        if (atomic_compare_exchange_weak_explicit(&p->remaining, &r, r - 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return p->n_chunks - r; /* fields are safe to read now */
    }
    return -1;
}

/* Claim and run chunks until none is left. */
static void pool_work(pool *p, int tid) {
    int64_t c;
    while ((c = pool_claim(p)) >= 0) {
        int64_t i0 = c * p->chunk;
        int64_t i1 = i0 + p->chunk < p->n ? i0 + p->chunk : p->n;
        p->fn(p->ctx, i0, i1, tid);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

/* Wait until `gen` differs from `seen`; returns the new generation. */
static unsigned pool_wait_job(pool *p, unsigned seen) {
    unsigned g;
    if (p->spin_us > 0) {
        double t0 = now_us();
        for (int i = 1;; i++) {
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
            if (g != seen) return g;
            if ((i & 31) == 0) {
                double t = now_us() - t0;
                if (t > p->spin_us) break;
                if (t > SPIN_PURE_US) sched_yield();
            }
            cpu_relax();
        }
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1); /* seq_cst: ordered before the gen re-read */
    while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->cv, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *pool_worker(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    pool *p = wa.p;
    unsigned seen = 0;
    for (;;) {
        seen = pool_wait_job(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        pool_work(p, wa.tid);
    }
    return NULL;
}

/* Bump the generation and wake sleepers if there are any. */
static void pool_signal(pool *p) {
    atomic_fetch_add(&p->gen, 1); /* seq_cst: ordered before the sleepers read */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

pool *pool_create(int n_threads) {
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > MOE_MAX_THREADS) n_threads = MOE_MAX_THREADS;
    pool *p = aligned_alloc(64, (sizeof(pool) + 63) / 64 * 64);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->n_threads = n_threads;
    p->spin_us = SPIN_US_DEFAULT;
    const char *e = getenv("MOE_POOL_SPIN_US");
    if (e && *e) p->spin_us = atof(e);
    atomic_init(&p->remaining, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->gen, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->misses, 0);
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    if (n_threads > 1) {
        p->threads = calloc((size_t)(n_threads - 1), sizeof(pthread_t));
        if (!p->threads) goto fail;
        for (int t = 1; t < n_threads; t++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa) break;
            wa->p = p;
            wa->tid = t;
            if (pthread_create(&p->threads[t - 1], NULL, pool_worker, wa) != 0) {
                free(wa);
                break;
            }
            p->n_started++;
        }
        if (p->n_started != n_threads - 1) goto fail;
    }
    return p;
fail:
    pool_free(p);
    return NULL;
}

void pool_free(pool *p) {
    if (!p) return;
    atomic_store(&p->stop, 1);
    pool_signal(p);
    for (int t = 0; t < p->n_started; t++) pthread_join(p->threads[t], NULL);
    free(p->threads);
    free(p->scratch);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int pool_size(const pool *p) { return p ? p->n_threads : 1; }

void pool_set_kern(pool *p, const struct kern_cfg *k) {
    if (p) p->kern = k;
}

const struct kern_cfg *pool_kern(const pool *p) { return p ? p->kern : NULL; }

void pool_for(pool *p, int64_t n, int64_t grain, pool_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (!p || p->n_threads <= 1 || n <= grain) {
        fn(ctx, 0, n, 0);
        return;
    }
    int64_t parts = (int64_t)p->n_threads * CHUNKS_PER_THREAD;
    int64_t chunk = n / parts + (n % parts != 0);
    if (chunk < grain) chunk = grain;
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->chunk = chunk;
    p->n_chunks = n / chunk + (n % chunk != 0);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    /* Publishes the fields above to whoever claims a chunk. */
    atomic_store_explicit(&p->remaining, p->n_chunks, memory_order_release);
    pool_signal(p);
    pool_work(p, 0);
    /* Only chunks already claimed (and running) remain; if their thread has
     * been preempted, stop competing with it for the CPU. */
    for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < p->n_chunks; i++) {
        if (i < 2048)
            cpu_relax();
        else
            sched_yield();
    }
}

int pool_reserve(pool *p, size_t per_thread, size_t shared) {
    per_thread = (per_thread + 63) & ~(size_t)63;
    shared = (shared + 63) & ~(size_t)63;
    if (per_thread < p->per_thread) per_thread = p->per_thread;
    if (shared < p->shared) shared = p->shared;
    if (per_thread == p->per_thread && shared == p->shared) return 0;
    size_t n = (size_t)p->n_threads;
    if (per_thread && n > (SIZE_MAX - shared) / per_thread) return -1;
    unsigned char *m = aligned_alloc(64, n * per_thread + shared);
    if (!m) return -1;
    free(p->scratch);
    p->scratch = m;
    p->per_thread = per_thread;
    p->shared = shared;
    return 0;
}

void *pool_scratch(pool *p, int tid, size_t bytes) {
    if (!p || tid < 0 || tid >= p->n_threads) return NULL;
    if (bytes > p->per_thread) {
        atomic_fetch_add_explicit(&p->misses, 1, memory_order_relaxed);
        return NULL;
    }
    return p->scratch + (size_t)tid * p->per_thread;
}

void *pool_shared(pool *p, size_t bytes) {
    if (!p) return NULL;
    if (bytes > p->shared) {
        atomic_fetch_add_explicit(&p->misses, 1, memory_order_relaxed);
        return NULL;
    }
    return p->scratch + (size_t)p->n_threads * p->per_thread;
}

int64_t pool_scratch_misses(const pool *p) {
    return p ? (int64_t)atomic_load_explicit(&((pool *)p)->misses, memory_order_relaxed) : 0;
}
