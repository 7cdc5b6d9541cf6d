/*
 * gguf_write.c - the GGUF writer (see gguf.h): ggml's layout (version 3,
 * tensors packed in the order given, each padded to the alignment), written
 * to PATH.tmp.XXXXXX, fsync'd and renamed so a failed run never leaves a
 * half-written PATH. Everything is checked before the first byte is written,
 * with the reader's rules, so what we write we can read back.
 */
#include "formats/gguf.h"
#include "base/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_write.c writes values in host byte order"
#endif

/* ---------------------------------------------------------------- checks */

static int key_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A string's length: lens[i] when given, else strlen. */
static uint64_t str_len(const char *s, const uint64_t *lens, uint64_t i) {
    return lens ? lens[i] : (uint64_t)strlen(s);
}

/* Keys present, unique, types valid; general.alignment (if any) sets *align. */
static int check_kvs(const char *path, const gguf_wkv *kv, int n_kv, uint32_t *align,
                     moe_err *err) {
    *align = GGUF_DEFAULT_ALIGNMENT;
    if (n_kv < 0) return moe_fail(err, "%s: negative kv count %d", path, n_kv);
    if (n_kv && !kv) return moe_fail(err, "%s: %d pairs but no array", path, n_kv);
    const char **keys = malloc(((size_t)n_kv + 1) * sizeof *keys);
    if (!keys) return moe_fail(err, "%s: out of memory", path);
    int rc = -1;
    for (int i = 0; i < n_kv; i++) {
        const gguf_wkv *x = &kv[i];
        if (!x->key || !x->key[0]) {
            moe_fail(err, "%s: kv %d: empty key", path, i);
            goto done;
        }
        keys[i] = x->key;
        if ((int)x->type < 0 || x->type >= GGUF_VT_COUNT) {
            moe_fail(err, "%s: key \"%s\": unknown value type %d", path, x->key, (int)x->type);
            goto done;
        }
        if (x->type == GGUF_VT_STR && !x->str) {
            moe_fail(err, "%s: key \"%s\": string value is NULL", path, x->key);
            goto done;
        }
        if (x->type == GGUF_VT_ARR) {
            if (x->arr_type == GGUF_VT_ARR) {
                moe_fail(err, "%s: key \"%s\": nested array (not allowed)", path, x->key);
                goto done;
            }
            if ((int)x->arr_type < 0 || x->arr_type >= GGUF_VT_COUNT) {
                moe_fail(err, "%s: key \"%s\": unknown array element type %d", path, x->key,
                         (int)x->arr_type);
                goto done;
            }
            if (x->n && (x->arr_type == GGUF_VT_STR ? !x->strs : !x->arr)) {
                moe_fail(err, "%s: key \"%s\": %llu elements but no data", path, x->key,
                         (unsigned long long)x->n);
                goto done;
            }
            if (x->arr_type == GGUF_VT_STR)
                for (uint64_t j = 0; j < x->n; j++)
                    if (!x->strs[j]) {
                        moe_fail(err, "%s: key \"%s\": string %llu is NULL", path, x->key,
                                 (unsigned long long)j);
                        goto done;
                    }
        }
        if (!strcmp(x->key, "general.alignment")) {
            if (x->type != GGUF_VT_U32) {
                moe_fail(err, "%s: key \"general.alignment\": is %s, must be u32 (wrong type)",
                         path, gguf_vtype_name(x->type));
                goto done;
            }
            uint32_t a = x->v.u32;
            if (a == 0 || (a & (a - 1))) {
                moe_fail(err, "%s: key \"general.alignment\": %u is not a power of two", path, a);
                goto done;
            }
            *align = a;
        }
    }
    qsort(keys, (size_t)n_kv, sizeof *keys, key_cmp);
    for (int i = 1; i < n_kv; i++)
        if (!strcmp(keys[i], keys[i - 1])) {
            moe_fail(err, "%s: duplicate key \"%s\"", path, keys[i]);
            goto done;
        }
    rc = 0;
done:
    free(keys);
    return rc;
}

/* Names present, unique, at most GGUF_NAME_MAX bytes; sizes valid for the type. */
static int check_tensors(const char *path, const gguf_wtensor *t, int n, int64_t *nbytes,
                         moe_err *err) {
    if (n < 0) return moe_fail(err, "%s: negative tensor count %d", path, n);
    if (n && !t) return moe_fail(err, "%s: %d tensors but no array", path, n);
    const char **names = malloc(((size_t)n + 1) * sizeof *names);
    if (!names) return moe_fail(err, "%s: out of memory", path);
    int rc = -1;
    for (int i = 0; i < n; i++) {
        const gguf_wtensor *w = &t[i];
        if (!w->name || !w->name[0]) {
            moe_fail(err, "%s: tensor %d: empty name", path, i);
            goto done;
        }
        if (strlen(w->name) > GGUF_NAME_MAX) {
            moe_fail(err, "%s: tensor \"%s\": name longer than %d bytes (ggml's limit)", path,
                     w->name, GGUF_NAME_MAX);
            goto done;
        }
        names[i] = w->name;
        int block = gguf_type_block(w->type);
        if (!block) {
            const char *tn = gguf_type_name(w->type);
            moe_fail(err, "%s: tensor \"%s\": %s type %s (%d)", path, w->name,
                     tn ? "unsupported" : "unknown", tn ? tn : "?", (int)w->type);
            goto done;
        }
        if (w->n_dims < 1 || w->n_dims > GGUF_MAX_DIMS) {
            moe_fail(err, "%s: tensor \"%s\": n_dims %d (must be 1..%d)", path, w->name,
                     w->n_dims, GGUF_MAX_DIMS);
            goto done;
        }
        for (int d = 0; d < w->n_dims; d++)
            if (w->ne[d] <= 0) {
                moe_fail(err, "%s: tensor \"%s\": dim %d is %lld (must be > 0)", path, w->name,
                         d, (long long)w->ne[d]);
                goto done;
            }
        if (w->ne[0] % block) {
            moe_fail(err, "%s: tensor \"%s\": row length ne[0] = %lld is not a multiple of the "
                     "block size %d of %s", path, w->name, (long long)w->ne[0], block,
                     gguf_type_name(w->type));
            goto done;
        }
        nbytes[i] = gguf_nbytes(w->type, w->n_dims, w->ne);
        if (nbytes[i] < 0) {
            moe_fail(err, "%s: tensor \"%s\": size overflows int64", path, w->name);
            goto done;
        }
    }
    qsort(names, (size_t)n, sizeof *names, key_cmp);
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i], names[i - 1])) {
            moe_fail(err, "%s: duplicate tensor name \"%s\"", path, names[i]);
            goto done;
        }
    rc = 0;
done:
    free(names);
    return rc;
}

/* ---------------------------------------------------------------- output */

static int out(gguf_stream *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->f) != n) return -1;
    w->pos += n;
    return 0;
}

static int out_u32(gguf_stream *w, uint32_t v) { return out(w, &v, 4); }
static int out_u64(gguf_stream *w, uint64_t v) { return out(w, &v, 8); }

static int out_str(gguf_stream *w, const char *s, uint64_t len) {
    return out_u64(w, len) || out(w, s, (size_t)len);
}

/* Zero bytes up to the next multiple of the alignment. */
static int out_pad(gguf_stream *w) {
    static const unsigned char zero[256];
    uint64_t need = (w->alignment - w->pos % w->alignment) % w->alignment;
    while (need) {
        size_t k = need < sizeof zero ? (size_t)need : sizeof zero;
        if (out(w, zero, k)) return -1;
        need -= k;
    }
    return 0;
}

static int out_kv(gguf_stream *w, const gguf_wkv *x) {
    if (out_str(w, x->key, strlen(x->key)) || out_u32(w, (uint32_t)x->type)) return -1;
    if (x->type == GGUF_VT_STR) return out_str(w, x->str, str_len(x->str, x->lens, 0));
    if (x->type == GGUF_VT_BOOL) {
        unsigned char b = x->v.b ? 1 : 0;
        return out(w, &b, 1);
    }
    if (x->type != GGUF_VT_ARR) return out(w, &x->v, (size_t)gguf_vtype_size(x->type));
    if (out_u32(w, (uint32_t)x->arr_type) || out_u64(w, x->n)) return -1;
    if (x->arr_type == GGUF_VT_STR) {
        for (uint64_t j = 0; j < x->n; j++)
            if (out_str(w, x->strs[j], str_len(x->strs[j], x->lens, j))) return -1;
        return 0;
    }
    if (x->arr_type == GGUF_VT_BOOL) { /* a bool in memory may hold any nonzero byte */
        const unsigned char *p = x->arr;
        for (uint64_t j = 0; j < x->n; j++) {
            unsigned char b = p[j] ? 1 : 0;
            if (out(w, &b, 1)) return -1;
        }
        return 0;
    }
    uint64_t es = (uint64_t)gguf_vtype_size(x->arr_type);
    if (x->n > SIZE_MAX / es) return -1;
    return out(w, x->arr, (size_t)(x->n * es));
}

/* The tensor after the current one is complete: pad, then move on. */
static int next_tensor(gguf_stream *w) {
    while (w->cur < w->n && w->cur_left == 0) {
        if (out_pad(w)) return -1;
        if (++w->cur < w->n) w->cur_left = (uint64_t)w->nbytes[w->cur];
    }
    return 0;
}

/* ---------------------------------------------------------------- stream */

static void stream_free(gguf_stream *w) {
    free(w->path);
    free(w->tmp);
    free(w->nbytes);
    w->path = w->tmp = NULL;
    w->nbytes = NULL;
}

int gguf_stream_begin(gguf_stream *w, const char *path, const gguf_wkv *kv, int n_kv,
                      const gguf_wtensor *t, int n, moe_err *err) {
    memset(w, 0, sizeof *w);
    w->t = t;
    w->n = n;
    w->nbytes = malloc(((size_t)(n > 0 ? n : 0) + 1) * sizeof *w->nbytes);
    w->path = strdup(path);
    size_t plen = strlen(path);
    w->tmp = malloc(plen + 16);
    if (!w->nbytes || !w->path || !w->tmp) {
        stream_free(w);
        return moe_fail(err, "%s: out of memory", path);
    }
    if (check_kvs(path, kv, n_kv, &w->alignment, err) ||
        check_tensors(path, t, n, w->nbytes, err)) {
        stream_free(w);
        return -1;
    }
    memcpy(w->tmp, path, plen);
    memcpy(w->tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        moe_fail(err, "%s: cannot create a temporary file: %s", path, strerror(errno));
        stream_free(w);
        return -1;
    }
    w->f = fdopen(fd, "wb");
    if (!w->f) {
        moe_fail(err, "%s: cannot open %s: %s", path, w->tmp, strerror(errno));
        close(fd);
        unlink(w->tmp);
        stream_free(w);
        return -1;
    }
    if (fchmod(fd, 0644)) goto io_fail;

    if (out(w, "GGUF", 4) || out_u32(w, 3) || out_u64(w, (uint64_t)n) ||
        out_u64(w, (uint64_t)n_kv))
        goto io_fail;
    for (int i = 0; i < n_kv; i++)
        if (out_kv(w, &kv[i])) goto io_fail;
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (out_str(w, t[i].name, strlen(t[i].name)) || out_u32(w, (uint32_t)t[i].n_dims))
            goto io_fail;
        for (int d = 0; d < t[i].n_dims; d++)
            if (out_u64(w, (uint64_t)t[i].ne[d])) goto io_fail;
        if (out_u32(w, (uint32_t)t[i].type) || out_u64(w, off)) goto io_fail;
        uint64_t padded = ((uint64_t)w->nbytes[i] + w->alignment - 1) / w->alignment *
                          w->alignment;
        if (__builtin_add_overflow(off, padded, &off) || off > (uint64_t)INT64_MAX) {
            moe_fail(err, "%s: total data size overflows", path);
            gguf_stream_abort(w);
            return -1;
        }
    }
    /* the data section starts aligned; with no tensors there is none (as the
     * Python writer does: no padding, which a huge alignment would make costly) */
    if (n > 0 && out_pad(w)) goto io_fail;
    w->cur = 0;
    w->cur_left = n > 0 ? (uint64_t)w->nbytes[0] : 0;
    return 0;

io_fail:
    moe_fail(err, "%s: write failed: %s", w->tmp, strerror(errno));
    gguf_stream_abort(w);
    return -1;
}

int gguf_stream_write(gguf_stream *w, const void *data, size_t nbytes, moe_err *err) {
    const unsigned char *p = data;
    while (nbytes > 0) {
        if (w->cur >= w->n)
            return moe_fail(err, "%s: %zu bytes more than the tensors hold", w->path, nbytes);
        size_t k = nbytes < w->cur_left ? nbytes : (size_t)w->cur_left;
        if (out(w, p, k))
            return moe_fail(err, "%s: write failed (tensor \"%s\", temporary file %s): %s",
                            w->path, w->t[w->cur].name, w->tmp, strerror(errno));
        p += k;
        nbytes -= k;
        w->cur_left -= k;
        if (next_tensor(w))
            return moe_fail(err, "%s: write failed (temporary file %s): %s", w->path, w->tmp,
                            strerror(errno));
    }
    return 0;
}

int gguf_stream_finish(gguf_stream *w, moe_err *err) {
    if (!w->f) return moe_fail(err, "%s: stream already closed", w->path ? w->path : "gguf");
    if (w->cur < w->n) {
        moe_fail(err, "%s: tensor \"%s\" is missing %llu bytes", w->path, w->t[w->cur].name,
                 (unsigned long long)w->cur_left);
        gguf_stream_abort(w);
        return -1;
    }
    if (fflush(w->f) || fsync(fileno(w->f))) {
        moe_fail(err, "%s: write failed (temporary file %s): %s", w->path, w->tmp,
                 strerror(errno));
        gguf_stream_abort(w);
        return -1;
    }
    int rc = fclose(w->f);
    w->f = NULL;
    if (rc || rename(w->tmp, w->path)) {
        moe_fail(err, "%s: cannot move into place: %s", w->path, strerror(errno));
        unlink(w->tmp);
        stream_free(w);
        return -1;
    }
    /* make the rename itself durable */
    char *dir = strdup(w->path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *dname = slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".";
        int dfd = open(dname, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            int r = fsync(dfd), e = errno;
            close(dfd);
            if (r && e != EINVAL) {
                moe_fail(err, "%s: cannot sync directory %s: %s", w->path, dname, strerror(e));
                free(dir);
                stream_free(w);
                return -1;
            }
        }
        free(dir);
    }
    stream_free(w);
    return 0;
}

void gguf_stream_abort(gguf_stream *w) {
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
        if (w->tmp) unlink(w->tmp);
    }
    stream_free(w);
}

int gguf_write(const char *path, const gguf_wkv *kv, int n_kv, const gguf_wtensor *t, int n,
               moe_err *err) {
    for (int i = 0; i < n; i++)
        if (t && !t[i].data)
            return moe_fail(err, "%s: tensor \"%s\": no data", path,
                            t[i].name ? t[i].name : "?");
    gguf_stream w;
    if (gguf_stream_begin(&w, path, kv, n_kv, t, n, err)) return -1;
    for (int i = 0; i < n; i++)
        if (gguf_stream_write(&w, t[i].data, (size_t)w.nbytes[i], err)) {
            gguf_stream_abort(&w);
            return -1;
        }
    return gguf_stream_finish(&w, err);
}
