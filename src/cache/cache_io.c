/*
 * cache_io.c - reading experts from the model file into slots.
 *
 * Reads bypass the page cache: O_DIRECT into the (aligned) slot, so the
 * budget is what the process holds and nothing piles up in the kernel's
 * cache. Where the file system refuses O_DIRECT (tmpfs before Linux 6.6,
 * some overlay mounts) or the caller asks, reads are buffered and the range is dropped from the page cache
 * right after (posix_fadvise DONTNEED); the statistics say which.
 *
 * A pool of reader threads doing pread, not io_uring: an expert is a few
 * reads of hundreds of KiB to MiBs, so a system call per read costs nothing
 * next to the transfer, and n threads keep n reads in flight; io_uring is
 * blocked by the default seccomp profiles of container runtimes (Docker
 * since 25.0), and would need its own fallback to the same code anyway.
 * Readers take reads from the FIFO in the order `want` asked for them.
 */
#include "cache/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* pread until len bytes or the end of the file: bytes read, or -1 (errno). */
static int64_t read_full(int fd, unsigned char *buf, int64_t len, int64_t off) {
    int64_t got = 0;
    while (got < len) {
        ssize_t k = pread(fd, buf + got, (size_t)(len - got), (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) break;
        got += k;
    }
    return got;
}

static int read_one(moe_cache *c, const cache_expert *x, const cache_read *r, unsigned char *buf,
                    moe_err *err) {
    cache_file *f = &c->files[r->file];
    int64_t got;
    if (__atomic_load_n(&f->direct, __ATOMIC_RELAXED)) {
        got = read_full(f->fd_direct, buf + r->dst, r->len, r->off);
        if (got >= 0 || errno != EINVAL) goto check;
        /* the file system took the open but refuses these reads: buffered from now on */
        __atomic_store_n(&f->direct, 0, __ATOMIC_RELAXED);
    }
    got = read_full(f->fd, buf + r->dst, r->len, r->off);
    if (got > 0) posix_fadvise(f->fd, (off_t)r->off, (off_t)got, POSIX_FADV_DONTNEED);
check:
    if (got < 0)
        return moe_fail(err, "%s: layer %d expert %d: reading %lld bytes at offset %lld: %s",
                        f->path, x->layer, x->expert, (long long)r->len, (long long)r->off,
                        strerror(errno));
    if (got < r->need)
        return moe_fail(err, "%s: layer %d expert %d: the file ends at offset %lld, before the "
                        "expert's bytes end at %lld (was the file truncated or replaced after "
                        "loading?)", f->path, x->layer, x->expert, (long long)(r->off + got),
                        (long long)(r->off + r->need));
    return 0;
}

int cache_read_expert(moe_cache *c, const cache_expert *x, unsigned char *buf, int64_t *bytes,
                      moe_err *err) {
    *bytes = 0;
    for (int i = 0; i < x->n_reads; i++) {
        if (read_one(c, x, &x->rd[i], buf, err)) return -1;
        *bytes += x->rd[i].len;
    }
    return 0;
}

void *cache_reader_main(void *arg) {
    moe_cache *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && c->q_head < 0) pthread_cond_wait(&c->cv_work, &c->mu);
        if (c->stop) break;
        int s = cache_queue_pop(c);
        cache_slot *sl = &c->slots[s];
        sl->state = SLOT_READING;
        cache_read_start(c);
        const cache_expert *x = &c->ex[sl->expert];
        pthread_mutex_unlock(&c->mu);
        moe_err err;
        int64_t bytes;
        double t0 = now_s();
        int rc = cache_read_expert(c, x, sl->buf, &bytes, &err);
        double dt = now_s() - t0;
        pthread_mutex_lock(&c->mu);
        cache_read_done(c, s, rc, bytes, dt);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}
