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
 *
 * Each of an expert's ranges is read in parts of about c->part bytes (1 MiB),
 * and a part is what a reader takes: the readers take the parts of the slot
 * at the head of the FIFO (in the order `want` asked for the experts) until
 * none is left, then the next slot's. A lone miss is read by every idle
 * reader at once instead of one reading its ranges in turn, so the layer
 * waiting for it waits less; an acquire waiting for a slot whose parts are
 * not all taken reads them itself too.
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

/* The CACHE_ALIGN blocks of each part of range r: about c->part bytes,
 * and at most CACHE_MAX_PARTS parts. */
static int64_t part_blocks(const moe_cache *c, const cache_read *r) {
    int64_t blocks = (r->len + CACHE_ALIGN - 1) / CACHE_ALIGN, k = (r->len + c->part / 2) / c->part;
    k = k < 1 ? 1 : k > CACHE_MAX_PARTS ? CACHE_MAX_PARTS : k;
    int64_t b = (blocks + k - 1) / k;
    return b < 1 ? 1 : b;
}

/* The parts of range r. */
static int parts_of(const moe_cache *c, const cache_read *r) {
    int64_t b = part_blocks(c, r) * CACHE_ALIGN;
    return r->len <= b ? 1 : (int)((r->len + b - 1) / b);
}

int cache_parts(const moe_cache *c, const cache_expert *x) {
    int n = 0;
    for (int i = 0; i < x->n_reads; i++) n += parts_of(c, &x->rd[i]);
    return n;
}

/* Part p of expert x's reads (p < cache_parts(x)). */
static cache_read part_of(const moe_cache *c, const cache_expert *x, int p) {
    int i = 0;
    while (p >= parts_of(c, &x->rd[i])) p -= parts_of(c, &x->rd[i++]);
    const cache_read *r = &x->rd[i];
    const int64_t step = part_blocks(c, r) * CACHE_ALIGN;
    const int64_t at = step * p, len = r->len - at < step ? r->len - at : step;
    const int64_t need = r->need - at < 0 ? 0 : r->need - at > len ? len : r->need - at;
    return (cache_read){r->file, r->off + at, len, need, r->dst + at};
}

int cache_read_part(moe_cache *c, int s, moe_err *err) {
    cache_slot *sl = &c->slots[s];
    const cache_expert *x = &c->ex[sl->expert];
    const int n = cache_parts(c, x);
    if (sl->state == SLOT_QUEUED) {
        sl->state = SLOT_READING;
        sl->part_next = sl->part_out = 0;
        sl->part_rc = 0;
        sl->part_bytes = 0;
        cache_read_start(c);
    }
    const int p = sl->part_next++;
    if (sl->part_next == n) cache_queue_remove(c, s);
    sl->part_out++;
    const cache_read r = part_of(c, x, p);
    pthread_mutex_unlock(&c->mu);
    double t0 = now_s();
    int rc = read_one(c, x, &r, sl->buf, err);
    double dt = now_s() - t0;
    pthread_mutex_lock(&c->mu);
    c->st.read_seconds += dt;
    sl->part_out--;
    if (rc) sl->part_rc = -1;
    else sl->part_bytes += r.len;
    if (sl->part_next == n && sl->part_out == 0) cache_read_done(c, s, sl->part_rc, sl->part_bytes);
    return rc;
}

int cache_parts_left(const moe_cache *c, int s) {
    const cache_slot *sl = &c->slots[s];
    if (sl->state == SLOT_QUEUED) return 1;
    return sl->state == SLOT_READING && sl->expert >= 0 && sl->part_next < cache_parts(c, &c->ex[sl->expert]);
}

void *cache_reader_main(void *arg) {
    moe_cache *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && c->q_head < 0) pthread_cond_wait(&c->cv_work, &c->mu);
        if (c->stop) break;
        moe_err err; /* a failed part leaves the slot FREE; the expert's acquire reads it again and reports why */
        cache_read_part(c, c->q_head, &err);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}
