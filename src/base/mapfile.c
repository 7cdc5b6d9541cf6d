/* mapfile.c - see mapfile.h. */
#include "base/mapfile.h"
#include "base/err.h"

#include <errno.h>
#include <fcntl.h>
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
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
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
