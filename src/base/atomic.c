/* atomic.c - see atomic.h. */
#include "base/atomic.h"
#include "base/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int atomic_open(atomic_file *a, const char *path, moe_err *err) {
    size_t n = strlen(path);
    a->path = malloc(n + 1);
    a->tmp = malloc(n + 12);
    a->fd = -1;
    a->f = NULL;
    if (!a->path || !a->tmp) {
        atomic_abort(a);
        return moe_fail(err, "%s: out of memory", path);
    }
    memcpy(a->path, path, n + 1);
    memcpy(a->tmp, path, n);
    memcpy(a->tmp + n, ".tmp.XXXXXX", 12);
    a->fd = mkstemp(a->tmp);
    if (a->fd < 0) {
        int e = errno;
        free(a->tmp);
        a->tmp = NULL;
        atomic_abort(a);
        return moe_fail(err, "%s: cannot create a temporary file: %s", path, strerror(e));
    }
    if (fchmod(a->fd, 0644) != 0) {
        int e = errno;
        atomic_abort(a);
        return moe_fail(err, "%s: cannot set the mode of a temporary file: %s", path, strerror(e));
    }
    return 0;
}

int atomic_stream(atomic_file *a, moe_err *err) {
    a->f = fdopen(a->fd, "w+b");
    if (!a->f) return moe_fail(err, "%s: cannot open a stream: %s", a->tmp, strerror(errno));
    return 0;
}

int atomic_put(atomic_file *a, const void *data, size_t n, moe_err *err) {
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(a->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return moe_fail(err, "%s: write failed: %s", a->tmp, w < 0 ? strerror(errno) : "no progress");
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int atomic_finish(atomic_file *a, moe_err *err) {
    int bad = 0, e = 0;
    if (a->f) {
        if (fflush(a->f) != 0) bad = 1, e = errno;
    }
    if (!bad && fsync(a->fd) != 0) bad = 1, e = errno;
    int rc = a->f ? fclose(a->f) : close(a->fd);
    if (rc != 0 && !bad) bad = 1, e = errno;
    a->f = NULL;
    a->fd = -1;
    return bad ? moe_fail(err, "%s: write failed: %s", a->tmp, strerror(e)) : 0;
}

int atomic_rename(atomic_file *a, moe_err *err) {
    if (rename(a->tmp, a->path) != 0)
        return moe_fail(err, "%s: cannot move into place: %s", a->path, strerror(errno));
    free(a->tmp);
    a->tmp = NULL;
    return 0;
}

int atomic_sync_dir(const char *path, moe_err *err) {
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    if (slash) {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(n + 1);
        if (!dir) return moe_fail(err, "%s: out of memory", path);
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    const char *d = dir ? dir : ".";
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0) {
        rc = moe_fail(err, "%s: cannot open directory %s: %s", path, d, strerror(errno));
    } else {
        /* some file systems cannot sync a directory (EINVAL): nothing to do there */
        if (fsync(fd) != 0 && errno != EINVAL)
            rc = moe_fail(err, "%s: cannot sync directory %s: %s", path, d, strerror(errno));
        close(fd);
    }
    free(dir);
    return rc;
}

int atomic_commit(atomic_file *a, moe_err *err) {
    int rc = atomic_finish(a, err);
    if (rc == 0) rc = atomic_rename(a, err);
    if (rc == 0) rc = atomic_sync_dir(a->path, err);
    atomic_abort(a);
    return rc;
}

void atomic_abort(atomic_file *a) {
    if (a->f) fclose(a->f);
    else if (a->fd >= 0) close(a->fd);
    a->f = NULL;
    a->fd = -1;
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    free(a->path);
    a->tmp = a->path = NULL;
}

int atomic_write(const char *path, const void *data, size_t n, moe_err *err) {
    atomic_file a;
    if (atomic_open(&a, path, err) != 0) return -1;
    if (atomic_put(&a, data, n, err) != 0) {
        atomic_abort(&a);
        return -1;
    }
    return atomic_commit(&a, err);
}
