/*
 * file_api.c - include/moe_file.h over the atomic writer (atomic.h) and the
 * checked reader (mapfile.h), for tools built on the library.
 */
#include "moe_file.h"

#include <stdlib.h>

#include "base/atomic.h"
#include "base/err.h"
#include "base/mapfile.h"

struct moe_file_out {
    atomic_file a;
};

int moe_file_out_open(moe_file_out **out, const char *path, FILE **stream, moe_err *err) {
    *out = NULL;
    *stream = NULL;
    moe_file_out *o = calloc(1, sizeof *o);
    if (!o) return moe_fail(err, "%s: out of memory", path);
    if (atomic_open(&o->a, path, err) || atomic_stream(&o->a, err)) {
        atomic_abort(&o->a);
        free(o);
        return -1;
    }
    *out = o;
    *stream = o->a.f;
    return 0;
}

int moe_file_out_commit(moe_file_out *o, moe_err *err) {
    int rc = atomic_commit(&o->a, err);
    atomic_abort(&o->a); /* frees; after a commit there is nothing left to remove */
    free(o);
    return rc;
}

void moe_file_out_abort(moe_file_out *o) {
    if (!o) return;
    atomic_abort(&o->a);
    free(o);
}

int moe_file_write(const char *path, const void *data, size_t n, moe_err *err) {
    return atomic_write(path, data, n, err);
}

int moe_file_read(const char *path, size_t max, char **data, size_t *n, moe_err *err) {
    return read_file(path, max, data, n, err);
}
