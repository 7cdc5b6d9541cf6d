/* mapfile.c - see mapfile.h. */
#include "base/mapfile.h"
#include "base/err.h"
#include "base/numa.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int open_regular(const char *path, struct stat *st, moe_err *err) {
    /* O_NONBLOCK: opening a FIFO for reading waits for a writer, and a device
     * may wait too; non-blocking, open() returns at once and fstat tells. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return moe_fail(err, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        return moe_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return moe_fail(err, "%s: not a regular file (%s)", path,
                        S_ISDIR(st->st_mode)    ? "a directory"
                        : S_ISFIFO(st->st_mode) ? "a FIFO"
                        : S_ISSOCK(st->st_mode) ? "a socket"
                                                : "a device");
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return moe_fail(err, "%s: cannot clear O_NONBLOCK: %s", path, strerror(e));
    }
    return fd;
}

int mapped_open(mapped_file *m, const char *path, moe_err *err) {
    m->data = NULL;
    m->size = 0;
    m->span = 0;
    struct stat st;
    int fd = open_regular(path, &st, err);
    if (fd < 0) return -1;
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return moe_fail(err, "%s: cannot map %lld bytes: %s", path, (long long)st.st_size,
                            strerror(e));
        }
        m->data = p;
        m->size = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

void mapped_close(mapped_file *m) {
    if (m->data) munmap((void *)m->data, m->span ? m->span : m->size);
    m->data = NULL;
    m->size = 0;
    m->span = 0;
}

/* The first unsigned number in a file, or -1 (also for "max"). */
static long long read_number(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1) v = -1;
    fclose(f);
    return v;
}

/* What the memory cgroup this process runs in leaves it: the smallest
 * limit - usage over the cgroup and its ancestors (v1 memory controller,
 * or v2), or SIZE_MAX where none is set. A container's limit is not in
 * /proc/meminfo. */
static size_t cgroup_room(void) {
    size_t room = SIZE_MAX;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return room;
    char line[1024], path[1400];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (!b) continue;
        int v1 = !strncmp(a + 1, "memory:", 7) || strstr(a + 1, ",memory:") != NULL;
        int v2 = b == a + 1;
        if (!v1 && !v2) continue;
        static const char *roots1[] = {"/sys/fs/cgroup/memory"};
        static const char *roots2[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
        const char **roots = v1 ? roots1 : roots2;
        int nroots = v1 ? 1 : 2;
        for (int r = 0; r < nroots; r++) {
            char cg[1024];
            snprintf(cg, sizeof cg, "%s", b + 1);
            for (;;) { /* the cgroup, then each ancestor */
                long long lim, use;
                snprintf(path, sizeof path, "%s%s/%s", roots[r], cg,
                         v1 ? "memory.limit_in_bytes" : "memory.max");
                lim = read_number(path);
                snprintf(path, sizeof path, "%s%s/%s", roots[r], cg,
                         v1 ? "memory.usage_in_bytes" : "memory.current");
                use = read_number(path);
                if (lim > 0 && use >= 0 && (unsigned long long)lim < (1ULL << 60)) {
                    size_t left = lim > use ? (size_t)(lim - use) : 0;
                    if (left < room) room = left;
                }
                char *slash = strrchr(cg, '/');
                if (!slash || slash == cg) {
                    if (cg[0] == '/' && cg[1]) {
                        cg[1] = 0;
                        continue;
                    }
                    break;
                }
                *slash = 0;
            }
        }
    }
    fclose(f);
    return room;
}

/* MemAvailable in bytes (less where a memory cgroup leaves less), or 0 if
 * it cannot be read. */
static size_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    size_t avail = (size_t)kb * 1024, room = cgroup_room();
    return room < avail ? room : avail;
}

#define HUGE_PAGE ((size_t)2 << 20)
#define READ_MIN ((size_t)64 << 20) /* smaller files: a mapping is as good */

int mapped_open_weights(mapped_file *m, const char *path, moe_err *err) {
    m->data = NULL;
    m->size = 0;
    m->span = 0;
    if (numa_mode(err) < 0) return -1; /* a bad MOE_NUMA fails every load, read or mapped */
    const char *mode = getenv("MOE_LOAD");
    int force = mode && !strcmp(mode, "read");
    if (mode && !strcmp(mode, "mmap")) return mapped_open(m, path, err);
    struct stat st;
    int fd = open_regular(path, &st, err);
    if (fd < 0) return -1;
    size_t n = (size_t)st.st_size;
    if (!(force ? n > 0 : n >= READ_MIN && n <= mem_available() / 2)) {
        close(fd);
        return mapped_open(m, path, err);
    }
    size_t span = (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    /* one huge page more, to start the region on a huge-page boundary */
    void *raw = mmap(NULL, span + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        close(fd);
        return mapped_open(m, path, err); /* no memory for a copy: map it */
    }
    uintptr_t a = ((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    if (a > (uintptr_t)raw) munmap(raw, a - (uintptr_t)raw);
    if ((uintptr_t)raw + span + HUGE_PAGE > a + span)
        munmap((void *)(a + span), (uintptr_t)raw + span + HUGE_PAGE - (a + span));
    unsigned char *p = (unsigned char *)a;
    if (numa_place(p, span, err) < 0) { /* before any page is touched (numa.h) */
        munmap(p, span);
        close(fd);
        return -1;
    }
    madvise(p, span, MADV_HUGEPAGE);
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < ((size_t)1 << 30) ? n - got : ((size_t)1 << 30);
        ssize_t r = pread(fd, p + got, want, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            munmap(p, span);
            close(fd);
            if (r == 0) return moe_fail(err, "%s: the file ended after %zu of its %zu bytes", path, got, n);
            return moe_fail(err, "%s: read failed after %zu of %zu bytes: %s", path, got, n, strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    mprotect(p, span, PROT_READ); /* read-only, as a mapping would be */
    m->data = p;
    m->size = n;
    m->span = span;
    return 0;
}

int mapped_set_writable(mapped_file *m, int w) {
    if (!m->span) return -1;
    return mprotect((void *)m->data, m->span, w ? PROT_READ | PROT_WRITE : PROT_READ) ? -1 : 0;
}

int read_file(const char *path, size_t max_bytes, char **out, size_t *len, moe_err *err) {
    *out = NULL;
    if (len) *len = 0;
    struct stat st;
    int fd = open_regular(path, &st, err);
    if (fd < 0) return -1;
    if ((size_t)st.st_size > max_bytes) {
        close(fd);
        return moe_fail(err, "%s: %lld bytes, more than the %zu allowed", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return moe_fail(err, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            close(fd);
            return moe_fail(err, "%s: read failed after %zu of %zu bytes", path, got, n);
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}
