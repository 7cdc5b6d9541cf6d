/*
 * st_stream.c - see st_stream.h.
 */
#include "formats/st_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"

static const char *st_dtype(dtype t) {
    switch (t) {
    case DT_F32: return "F32";
    case DT_F16: return "F16";
    case DT_BF16: return "BF16";
    case DT_U8: return "U8"; /* MXFP4 blocks and scales */
    default: return NULL;
    }
}

/* A growing text buffer for the header. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

int sts_begin(st_stream *w, const char *path, const st_write_tensor *t, int n,
              const char *metadata_json, moe_err *err) {
    memset(w, 0, sizeof *w);
    w->out.fd = -1;
    w->t = t;
    w->n = n;

    sbuf b = {0};
    sb_printf(&b, "{");
    if (metadata_json) sb_printf(&b, "\"__metadata__\":%s", metadata_json);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const char *dn = st_dtype(t[i].type);
        if (!dn || t[i].n_dims < 0 || t[i].n_dims > ST_MAX_DIMS) {
            free(b.p);
            return moe_fail(err, "%s: tensor %s: bad dtype or rank", path, t[i].name);
        }
        uint64_t elems = 1;
        sb_printf(&b, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", (i || metadata_json) ? "," : "",
                  t[i].name, dn);
        for (int d = 0; d < t[i].n_dims; d++) {
            sb_printf(&b, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
            elems *= (uint64_t)t[i].shape[d];
        }
        uint64_t bytes = elems * (uint64_t)dtype_size(t[i].type);
        sb_printf(&b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                  (unsigned long long)(off + bytes));
        off += bytes;
    }
    sb_printf(&b, "}");
    while (!b.oom && b.len % 8) sb_printf(&b, " "); /* data starts 8-byte aligned */
    if (b.oom) {
        free(b.p);
        return moe_fail(err, "%s: out of memory for the header", path);
    }
    if (b.len > ST_MAX_HEADER) { /* readers would refuse it */
        free(b.p);
        return moe_fail(err, "%s: header of %zu bytes, more than %llu", path, b.len,
                        (unsigned long long)ST_MAX_HEADER);
    }
    w->total = off;
    if (atomic_open(&w->out, path, err) != 0 || atomic_stream(&w->out, err) != 0) {
        free(b.p);
        sts_abort(w);
        return -1;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)b.len >> (8 * i));
    int ok = fwrite(len8, 1, 8, w->out.f) == 8 && fwrite(b.p, 1, b.len, w->out.f) == b.len;
    free(b.p);
    if (!ok) {
        moe_fail(err, "%s: write failed: %s", w->out.tmp, strerror(errno));
        sts_abort(w);
        return -1;
    }
    /* the first tensor with bytes */
    for (w->cur = 0; w->cur < n; w->cur++) {
        uint64_t e = 1;
        for (int d = 0; d < t[w->cur].n_dims; d++) e *= (uint64_t)t[w->cur].shape[d];
        w->cur_left = e * (uint64_t)dtype_size(t[w->cur].type);
        if (w->cur_left) break;
    }
    return 0;
}

int sts_write(st_stream *w, const void *data, size_t nbytes, moe_err *err) {
    const unsigned char *p = data;
    while (nbytes > 0) {
        if (w->cur >= w->n)
            return moe_fail(err, "%s: %zu bytes more than the tensors hold", w->out.path, nbytes);
        size_t k = nbytes < w->cur_left ? nbytes : (size_t)w->cur_left;
        if (fwrite(p, 1, k, w->out.f) != k)
            return moe_fail(err, "%s: write failed (tensor %s): %s", w->out.tmp, w->t[w->cur].name,
                            strerror(errno));
        p += k;
        nbytes -= k;
        w->cur_left -= k;
        while (w->cur_left == 0 && w->cur < w->n) {
            if (++w->cur == w->n) break;
            uint64_t e = 1;
            for (int d = 0; d < w->t[w->cur].n_dims; d++) e *= (uint64_t)w->t[w->cur].shape[d];
            w->cur_left = e * (uint64_t)dtype_size(w->t[w->cur].type);
        }
    }
    return 0;
}

int sts_finish(st_stream *w, moe_err *err) {
    if (w->cur < w->n) {
        moe_fail(err, "%s: tensor %s is missing %llu bytes", w->out.path, w->t[w->cur].name,
                 (unsigned long long)w->cur_left);
        sts_abort(w);
        return -1;
    }
    return atomic_commit(&w->out, err);
}

void sts_abort(st_stream *w) { atomic_abort(&w->out); }
