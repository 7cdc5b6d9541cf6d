/*
 * safetensors.c - the safetensors reader (mmap, every header field checked
 * against the file before a pointer is formed) and the atomic writer.
 *
 * Reader checks, in the order a malicious file would hit them: file length
 * >= 8, header length within the file and <= ST_MAX_HEADER, header is a JSON
 * object and nothing but whitespace follows it, each entry has a string
 * dtype (F32/F16/BF16), an array shape of <= 8 non-negative integers, two
 * integer data_offsets; product(shape) * size fits int64 and equals
 * end - begin; begin <= end <= data region; data aligned for its type; no two
 * tensors of a file overlap (gaps are tolerated); names unique across files.
 *
 * Writer: the layout of the reference implementation (huggingface/safetensors):
 * tensors sorted by dtype (F32, BF16, F16) then name, header padded with
 * spaces to a multiple of 8 so every offset is aligned for its type.
 */
#include "formats/safetensors.h"
#include "base/atomic.h"
#include "base/err.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* JSON numbers are doubles: integers above 2^53 are not exact. */
#define ST_MAX_JSON_INT 9007199254740992.0
/* model.safetensors.index.json is a name -> file map, ~90 bytes per tensor:
 * 16 MiB holds ~180k tensors; parsed into a cJSON tree (up to ~45 bytes of
 * memory per byte, see ST_MAX_HEADER). */
#define ST_MAX_INDEX_BYTES ((size_t)16 << 20)

/* ------------------------------------------------------------ dtype names */

static int st_dtype_parse(const char *s, dtype *out) {
    if (!strcmp(s, "F32")) *out = DT_F32;
    else if (!strcmp(s, "F16")) *out = DT_F16;
    else if (!strcmp(s, "BF16")) *out = DT_BF16;
    else if (!strcmp(s, "U8")) *out = DT_U8; /* MXFP4 blocks and scales */
    else return -1;
    return 0;
}

/* Valid safetensors dtypes we do not compute with: "unsupported", not "unknown". */
static int st_dtype_known(const char *s) {
    static const char *const other[] = {"F64", "I64", "U64", "I32", "U32", "I16", "U16", "I8",
                                        "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "E8M0",
                                        "F4", "F6_E2M3", "F6_E3M2", "C64"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (!strcmp(s, other[i])) return 1;
    return 0;
}

static const char *st_dtype_str(dtype t) {
    switch (t) {
    case DT_F32: return "F32";
    case DT_F16: return "F16";
    case DT_BF16: return "BF16";
    case DT_U8: return "U8";
    default: return NULL;
    }
}

/* ------------------------------------------------------------ the reader */

/* A JSON number that is a non-negative integer exactly representable.
 * Returns 0, or -1 negative, -2 not an integer, -3 too large, -4 not a number. */
static int st_json_uint(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -4;
    double d = v->valuedouble;
    if (d != d) return -2;
    if (d < 0) return -1;
    if (d > ST_MAX_JSON_INT) return -3;
    if (floor(d) != d) return -2;
    *out = (int64_t)d;
    return 0;
}

static const char *st_uint_problem(int rc) {
    switch (rc) {
    case -1: return "negative";
    case -2: return "not an integer";
    case -3: return "too large";
    default: return "not a number";
    }
}

typedef struct st_span {
    uint64_t begin, end;
    const char *name;
} st_span;

static int st_span_cmp(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int st_tensor_cmp(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Parse one tensor entry of file `fi` into *t (name not yet set). */
static int st_parse_entry(const st_store *s, int fi, const cJSON *e, const unsigned char *data,
                          uint64_t data_len, st_tensor *t, uint64_t *begin, uint64_t *end,
                          moe_err *err) {
    const char *path = s->paths[fi], *name = e->string;
    if (!cJSON_IsObject(e))
        return moe_fail(err, "%s: tensor %s: entry is not a JSON object", path, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!jd) return moe_fail(err, "%s: tensor %s: missing dtype", path, name);
    if (!js) return moe_fail(err, "%s: tensor %s: missing shape", path, name);
    if (!jo) return moe_fail(err, "%s: tensor %s: missing data_offsets", path, name);
    if (!cJSON_IsString(jd))
        return moe_fail(err, "%s: tensor %s: dtype is not a string", path, name);
    if (!cJSON_IsArray(js))
        return moe_fail(err, "%s: tensor %s: shape is not an array", path, name);
    if (!cJSON_IsArray(jo))
        return moe_fail(err, "%s: tensor %s: data_offsets is not an array", path, name);

    if (st_dtype_parse(jd->valuestring, &t->type)) {
        if (st_dtype_known(jd->valuestring))
            return moe_fail(err, "%s: tensor %s: unsupported dtype %s (F32, F16, BF16, U8 only)",
                            path, name, jd->valuestring);
        return moe_fail(err, "%s: tensor %s: unknown dtype \"%.32s\"", path, name,
                        jd->valuestring);
    }
    int esize = dtype_size(t->type);

    int nd = cJSON_GetArraySize(js);
    if (nd > ST_MAX_DIMS)
        return moe_fail(err, "%s: tensor %s: %d dims, more than %d", path, name, nd, ST_MAX_DIMS);
    t->n_dims = nd;
    int64_t n = 1;
    int i = 0;
    for (const cJSON *d = js->child; d; d = d->next, i++) {
        int64_t v;
        int rc = st_json_uint(d, &v);
        if (rc) return moe_fail(err, "%s: tensor %s: shape dim %d is %s", path, name, i,
                                st_uint_problem(rc));
        t->shape[i] = v;
        if (__builtin_mul_overflow(n, v, &n))
            return moe_fail(err, "%s: tensor %s: element count overflows int64", path, name);
    }
    for (; i < ST_MAX_DIMS; i++) t->shape[i] = 0;
    t->n_elems = n;
    int64_t nbytes;
    if (__builtin_mul_overflow(n, (int64_t)esize, &nbytes))
        return moe_fail(err, "%s: tensor %s: byte size overflows int64", path, name);

    if (cJSON_GetArraySize(jo) != 2)
        return moe_fail(err, "%s: tensor %s: data_offsets must have 2 entries, not %d", path, name,
                        cJSON_GetArraySize(jo));
    int64_t b, en;
    int rc = st_json_uint(jo->child, &b);
    if (rc) return moe_fail(err, "%s: tensor %s: data_offsets begin is %s", path, name,
                            st_uint_problem(rc));
    rc = st_json_uint(jo->child->next, &en);
    if (rc) return moe_fail(err, "%s: tensor %s: data_offsets end is %s", path, name,
                            st_uint_problem(rc));
    if (b > en)
        return moe_fail(err, "%s: tensor %s: data_offsets begin %lld > end %lld", path, name,
                        (long long)b, (long long)en);
    if ((uint64_t)en > data_len)
        return moe_fail(err, "%s: tensor %s: data_offsets end %lld past the end of the data "
                        "region (%llu bytes)", path, name, (long long)en,
                        (unsigned long long)data_len);
    if (en - b != nbytes)
        return moe_fail(err, "%s: tensor %s: data_offsets span %lld bytes but shape x %s needs "
                        "%lld (size mismatch)", path, name, (long long)(en - b),
                        st_dtype_str(t->type), (long long)nbytes);
    t->data = data + b;
    if ((uintptr_t)t->data % (uintptr_t)esize)
        return moe_fail(err, "%s: tensor %s: data at offset %lld not aligned to %d bytes "
                        "(misaligned)", path, name, (long long)b, esize);
    t->nbytes = (size_t)nbytes;
    t->file = fi;
    *begin = (uint64_t)b;
    *end = (uint64_t)en;
    return 0;
}

/* __metadata__ is a map of string to string (as the reference requires). */
static int st_check_metadata(const char *path, const cJSON *m, moe_err *err) {
    if (!cJSON_IsObject(m)) return moe_fail(err, "%s: __metadata__ is not a JSON object", path);
    for (const cJSON *c = m->child; c; c = c->next)
        if (!cJSON_IsString(c))
            return moe_fail(err, "%s: __metadata__ value \"%s\" is not a string", path, c->string);
    return 0;
}

/* Parse the header of s->files[fi] and append its tensors to s->tensors. */
static int st_parse_file(st_store *s, int fi, moe_err *err) {
    const char *path = s->paths[fi];
    const mapped_file *f = &s->files[fi];
    if (f->size < 8)
        return moe_fail(err, "%s: file too short (%zu bytes) for a safetensors header", path,
                        f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->data[i];
    if (hlen > ST_MAX_HEADER)
        return moe_fail(err, "%s: header length %llu too large (more than %llu)", path,
                        (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return moe_fail(err, "%s: header length %llu past the end of the file (%zu bytes)",
                        path, (unsigned long long)hlen, f->size);
    const unsigned char *data = f->data + 8 + hlen;
    uint64_t data_len = f->size - 8 - hlen;

    /* cJSON wants a NUL-terminated copy: a mapped header has no NUL after it. */
    char *txt = malloc(hlen + 1);
    if (!txt) return moe_fail(err, "%s: out of memory for a %llu-byte header", path,
                              (unsigned long long)hlen);
    memcpy(txt, f->data + 8, hlen);
    txt[hlen] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(txt, hlen, &end, 0);
    if (!root) {
        long pos = end ? (long)(end - txt) : -1;
        free(txt);
        return moe_fail(err, "%s: header is not valid JSON (error near byte %ld)", path, pos);
    }
    for (const char *p = end; p < txt + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            long pos = (long)(p - txt);
            free(txt);
            cJSON_Delete(root);
            return moe_fail(err, "%s: header is not valid JSON: trailing bytes at %ld", path, pos);
        }
    }
    free(txt);

    int rc = -1;
    st_span *spans = NULL;
    if (!cJSON_IsObject(root)) {
        moe_fail(err, "%s: header is not a JSON object", path);
        goto done;
    }
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next) n++;
    st_tensor *grown = realloc(s->tensors, ((size_t)s->n_tensors + (size_t)n + 1) * sizeof *grown);
    spans = malloc(((size_t)n + 1) * sizeof *spans);
    if (grown) s->tensors = grown;
    if (!grown || !spans) {
        moe_fail(err, "%s: out of memory for %d tensor entries", path, n);
        goto done;
    }
    int ns = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (st_check_metadata(path, e, err)) goto done;
            continue;
        }
        st_tensor *t = &s->tensors[s->n_tensors];
        memset(t, 0, sizeof *t);
        if (st_parse_entry(s, fi, e, data, data_len, t, &spans[ns].begin, &spans[ns].end, err))
            goto done;
        t->name = strdup(e->string);
        if (!t->name) {
            moe_fail(err, "%s: out of memory", path);
            goto done;
        }
        spans[ns++].name = t->name;
        s->n_tensors++;
    }
    qsort(spans, (size_t)ns, sizeof *spans, st_span_cmp);
    for (int i = 1; i < ns; i++) {
        if (spans[i].begin < spans[i - 1].end) {
            moe_fail(err, "%s: tensor %s [%llu, %llu) overlaps tensor %s [%llu, %llu)", path,
                     spans[i].name, (unsigned long long)spans[i].begin,
                     (unsigned long long)spans[i].end, spans[i - 1].name,
                     (unsigned long long)spans[i - 1].begin, (unsigned long long)spans[i - 1].end);
            goto done;
        }
    }
    rc = 0;
done:
    free(spans);
    cJSON_Delete(root);
    return rc;
}

/* Map path and append it to s->files / s->paths. Returns its index or -1. */
static int st_add_file(st_store *s, const char *path, moe_err *err) {
    mapped_file *nf = realloc(s->files, ((size_t)s->n_files + 1) * sizeof *nf);
    if (nf) s->files = nf;
    char **np = realloc(s->paths, ((size_t)s->n_files + 1) * sizeof *np);
    if (np) s->paths = np;
    if (!nf || !np) return moe_fail(err, "%s: out of memory", path);
    char *p = strdup(path);
    if (!p) return moe_fail(err, "%s: out of memory", path);
    if (s->weights ? mapped_open_weights(&s->files[s->n_files], path, err)
                   : mapped_open(&s->files[s->n_files], path, err)) {
        free(p);
        return -1;
    }
    s->paths[s->n_files] = p;
    return s->n_files++;
}

/* Sort by name and refuse duplicates (within a file: cJSON keeps repeated
 * keys; across shards: the same name in two files). */
static int st_finish(st_store *s, moe_err *err) {
    qsort(s->tensors, (size_t)s->n_tensors, sizeof *s->tensors, st_tensor_cmp);
    for (int i = 1; i < s->n_tensors; i++) {
        const st_tensor *a = &s->tensors[i - 1], *b = &s->tensors[i];
        if (!strcmp(a->name, b->name)) {
            if (a->file == b->file)
                return moe_fail(err, "%s: tensor %s: duplicate name", s->paths[a->file], a->name);
            return moe_fail(err, "tensor %s: duplicate name in %s and %s", a->name,
                            s->paths[a->file], s->paths[b->file]);
        }
    }
    return 0;
}

static int st_open_file_as(st_store *s, const char *path, int weights, moe_err *err) {
    memset(s, 0, sizeof *s);
    s->weights = weights;
    int fi = st_add_file(s, path, err);
    if (fi < 0 || st_parse_file(s, fi, err) || st_finish(s, err)) {
        st_close(s);
        return -1;
    }
    return 0;
}

void st_close(st_store *s) {
    for (int i = 0; i < s->n_tensors; i++) free(s->tensors[i].name);
    for (int i = 0; i < s->n_files; i++) {
        mapped_close(&s->files[i]);
        free(s->paths[i]);
    }
    free(s->tensors);
    free(s->files);
    free(s->paths);
    memset(s, 0, sizeof *s);
}

const st_tensor *st_find(const st_store *s, const char *name) {
    int lo = 0, hi = s->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(s->tensors[mid].name, name);
        if (!c) return &s->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* ---------------------------------------------------------- directories */

static int st_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

typedef struct st_wm {
    const char *tensor, *shard;
    int file; /* index into the store once opened */
} st_wm;

static int st_wm_by_shard(const void *a, const void *b) {
    return strcmp(((const st_wm *)a)->shard, ((const st_wm *)b)->shard);
}

static int st_wm_by_tensor(const void *a, const void *b) {
    return strcmp(((const st_wm *)a)->tensor, ((const st_wm *)b)->tensor);
}

/* Open the shards named by index.json's weight_map and check it against them. */
static int st_open_index(st_store *s, const char *dir, const char *ipath, moe_err *err) {
    char *txt = NULL;
    size_t len = 0;
    if (read_file(ipath, ST_MAX_INDEX_BYTES, &txt, &len, err)) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    if (!root) {
        moe_fail(err, "%s: not valid JSON (error near byte %ld)", ipath,
                 end ? (long)(end - txt) : -1L);
        free(txt);
        return -1;
    }
    free(txt);
    int rc = -1, n = 0;
    st_wm *wm = NULL;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root) || !map) {
        moe_fail(err, "%s: missing weight_map", ipath);
        goto done;
    }
    if (!cJSON_IsObject(map)) {
        moe_fail(err, "%s: weight_map is not a JSON object", ipath);
        goto done;
    }
    for (const cJSON *c = map->child; c; c = c->next) n++;
    if (n == 0) {
        moe_fail(err, "%s: weight_map is empty", ipath);
        goto done;
    }
    wm = malloc((size_t)n * sizeof *wm);
    if (!wm) {
        moe_fail(err, "%s: out of memory", ipath);
        goto done;
    }
    int i = 0;
    for (const cJSON *c = map->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c)) {
            moe_fail(err, "%s: weight_map entry %s is not a string", ipath, c->string);
            goto done;
        }
        const char *f = c->valuestring;
        if (!*f || strchr(f, '/') || strstr(f, "..")) {
            moe_fail(err, "%s: weight_map entry %s: bad shard file name \"%.64s\"", ipath,
                     c->string, f);
            goto done;
        }
        wm[i] = (st_wm){c->string, f, -1};
    }

    /* Open each distinct shard once, in name order. */
    qsort(wm, (size_t)n, sizeof *wm, st_wm_by_shard);
    char path[4096];
    for (i = 0; i < n; i++) {
        if (i > 0 && !strcmp(wm[i].shard, wm[i - 1].shard)) {
            wm[i].file = wm[i - 1].file;
            continue;
        }
        if (snprintf(path, sizeof path, "%s/%s", dir, wm[i].shard) >= (int)sizeof path) {
            moe_fail(err, "%s: shard path too long", ipath);
            goto done;
        }
        int fi = st_add_file(s, path, err);
        if (fi < 0 || st_parse_file(s, fi, err)) {
            moe_fail_prefix(err, "%s: shard of weight_map", ipath);
            goto done;
        }
        wm[i].file = fi;
    }
    if (st_finish(s, err)) goto done;

    /* Both directions: each listed tensor is in its shard, each tensor is listed. */
    qsort(wm, (size_t)n, sizeof *wm, st_wm_by_tensor);
    for (i = 0; i < n; i++) {
        if (i > 0 && !strcmp(wm[i].tensor, wm[i - 1].tensor)) {
            moe_fail(err, "%s: weight_map lists tensor %s twice (duplicate)", ipath, wm[i].tensor);
            goto done;
        }
        const st_tensor *t = st_find(s, wm[i].tensor);
        if (!t) {
            moe_fail(err, "%s: tensor %s: weight_map says %s but it is missing from that shard",
                     ipath, wm[i].tensor, wm[i].shard);
            goto done;
        }
        if (t->file != wm[i].file) {
            moe_fail(err, "%s: tensor %s: weight_map says %s but it is missing from that shard "
                     "(found in %s)", ipath, wm[i].tensor, wm[i].shard, s->paths[t->file]);
            goto done;
        }
    }
    if (s->n_tensors != n) {
        for (int k = 0; k < s->n_tensors; k++) {
            st_wm key = {s->tensors[k].name, NULL, 0};
            if (!bsearch(&key, wm, (size_t)n, sizeof *wm, st_wm_by_tensor)) {
                moe_fail(err, "%s: tensor %s: in %s but missing from weight_map", ipath,
                         s->tensors[k].name, s->paths[s->tensors[k].file]);
                goto done;
            }
        }
    }
    rc = 0;
done:
    free(wm);
    cJSON_Delete(root);
    return rc;
}

static int st_open_dir_as(st_store *s, const char *dir, int weights, moe_err *err) {
    memset(s, 0, sizeof *s);
    s->weights = weights;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/model.safetensors", dir) >= (int)sizeof path)
        return moe_fail(err, "%s: path too long", dir);
    if (st_exists(path)) return st_open_file_as(s, path, weights, err);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!st_exists(path))
        return moe_fail(err, "%s: no weights found: looked for model.safetensors and "
                        "model.safetensors.index.json", dir);
    if (st_open_index(s, dir, path, err)) {
        st_close(s);
        return -1;
    }
    return 0;
}

int st_open_file(st_store *s, const char *path, moe_err *err) { return st_open_file_as(s, path, 0, err); }
int st_open_dir(st_store *s, const char *dir, moe_err *err) { return st_open_dir_as(s, dir, 0, err); }
int st_open_dir_weights(st_store *s, const char *dir, moe_err *err) { return st_open_dir_as(s, dir, 1, err); }

/* ------------------------------------------------------------ the writer */

typedef struct st_buf {
    char *p;
    size_t n, cap;
    int oom;
} st_buf;

static void st_put(st_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void st_puts(st_buf *b, const char *s) { st_put(b, s, strlen(s)); }

/* A JSON string literal: escape what JSON requires, pass UTF-8 through. */
static void st_put_json_str(st_buf *b, const char *s) {
    st_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            st_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            st_put(b, esc, 6);
        } else {
            st_put(b, (const char *)&c, 1);
        }
    }
    st_put(b, "\"", 1);
}

/* Reference order: larger dtype first (F32 > BF16 > F16), then by name. */
static int st_dtype_rank(dtype t) { return t == DT_F32 ? 0 : t == DT_BF16 ? 1 : 2; }

static int st_wt_name_cmp(const void *a, const void *b) {
    return strcmp((*(const st_write_tensor *const *)a)->name,
                  (*(const st_write_tensor *const *)b)->name);
}

static int st_wt_cmp(const void *a, const void *b) {
    const st_write_tensor *x = *(const st_write_tensor *const *)a;
    const st_write_tensor *y = *(const st_write_tensor *const *)b;
    int rx = st_dtype_rank(x->type), ry = st_dtype_rank(y->type);
    if (rx != ry) return rx - ry;
    return strcmp(x->name, y->name);
}

/* Build the header (padded to a multiple of 8) into *hb; sizes into nbytes[]. */
static int st_build_header(const char *path, const st_write_tensor *const *ord, int n,
                           const char *metadata_json, int64_t *nbytes, st_buf *hb,
                           moe_err *err) {
    st_puts(hb, "{");
    int first = 1;
    if (metadata_json) {
        cJSON *m = cJSON_Parse(metadata_json);
        if (!m) return moe_fail(err, "%s: metadata is not valid JSON", path);
        if (!cJSON_IsObject(m)) {
            cJSON_Delete(m);
            return moe_fail(err, "%s: metadata is not a JSON object", path);
        }
        st_puts(hb, "\"__metadata__\":{");
        for (const cJSON *c = m->child; c; c = c->next) {
            if (!cJSON_IsString(c)) {
                moe_fail(err, "%s: metadata value \"%s\" is not a string", path, c->string);
                cJSON_Delete(m);
                return -1;
            }
            for (const cJSON *d = m->child; d != c; d = d->next) {
                if (!strcmp(d->string, c->string)) {
                    moe_fail(err, "%s: metadata key \"%s\" repeated (duplicate)", path, c->string);
                    cJSON_Delete(m);
                    return -1;
                }
            }
            if (c != m->child) st_puts(hb, ",");
            st_put_json_str(hb, c->string);
            st_puts(hb, ":");
            st_put_json_str(hb, c->valuestring);
        }
        st_puts(hb, "}");
        cJSON_Delete(m);
        first = 0;
    }
    int64_t off = 0;
    char num[64];
    for (int i = 0; i < n; i++) {
        const st_write_tensor *t = ord[i];
        if (!first) st_puts(hb, ",");
        first = 0;
        st_put_json_str(hb, t->name);
        st_puts(hb, ":{\"dtype\":\"");
        st_puts(hb, st_dtype_str(t->type));
        st_puts(hb, "\",\"shape\":[");
        for (int d = 0; d < t->n_dims; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            st_puts(hb, num);
        }
        if (__builtin_add_overflow(off, nbytes[i], &off) || (double)off > ST_MAX_JSON_INT)
            return moe_fail(err, "%s: total data size overflows", path);
        snprintf(num, sizeof num, "],\"data_offsets\":[%lld,%lld]}", (long long)(off - nbytes[i]),
                 (long long)off);
        st_puts(hb, num);
    }
    st_puts(hb, "}");
    while (hb->n % 8) st_puts(hb, " ");
    if (hb->oom) return moe_fail(err, "%s: out of memory building the header", path);
    if (hb->n > ST_MAX_HEADER) return moe_fail(err, "%s: header too large", path);
    return 0;
}

int st_write(const char *path, const st_write_tensor *t, int n, const char *metadata_json,
             moe_err *err) {
    if (n < 0) return moe_fail(err, "%s: negative tensor count %d", path, n);
    const st_write_tensor **ord = malloc(((size_t)n + 1) * sizeof *ord);
    int64_t *nbytes = malloc(((size_t)n + 1) * sizeof *nbytes);
    st_buf hb = {0};
    int rc = -1;
    if (!ord || !nbytes) {
        moe_fail(err, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const st_write_tensor *w = &t[i];
        if (!w->name) {
            moe_fail(err, "%s: tensor %d has no name", path, i);
            goto done;
        }
        if (!st_dtype_str(w->type)) {
            moe_fail(err, "%s: tensor %s: unknown dtype %d", path, w->name, (int)w->type);
            goto done;
        }
        if (w->n_dims < 0 || w->n_dims > ST_MAX_DIMS) {
            moe_fail(err, "%s: tensor %s: %d dims (0..%d allowed)", path, w->name, w->n_dims,
                     ST_MAX_DIMS);
            goto done;
        }
        int64_t ne = 1;
        for (int d = 0; d < w->n_dims; d++) {
            if (w->shape[d] < 0) {
                moe_fail(err, "%s: tensor %s: negative dim %lld", path, w->name,
                         (long long)w->shape[d]);
                goto done;
            }
            if (__builtin_mul_overflow(ne, w->shape[d], &ne)) {
                moe_fail(err, "%s: tensor %s: element count overflows", path, w->name);
                goto done;
            }
        }
        if (__builtin_mul_overflow(ne, (int64_t)dtype_size(w->type), &nbytes[i])) {
            moe_fail(err, "%s: tensor %s: byte size overflows", path, w->name);
            goto done;
        }
        if (nbytes[i] > 0 && !w->data) {
            moe_fail(err, "%s: tensor %s: no data", path, w->name);
            goto done;
        }
        if (!strcmp(w->name, "__metadata__")) {
            moe_fail(err, "%s: a tensor cannot be named __metadata__", path);
            goto done;
        }
        ord[i] = w;
    }
    qsort(ord, (size_t)n, sizeof *ord, st_wt_name_cmp);
    for (int i = 1; i < n; i++) {
        if (!strcmp(ord[i]->name, ord[i - 1]->name)) {
            moe_fail(err, "%s: tensor %s: duplicate name", path, ord[i]->name);
            goto done;
        }
    }
    qsort(ord, (size_t)n, sizeof *ord, st_wt_cmp);
    for (int i = 0; i < n; i++) { /* sizes in the file's order (checked above) */
        int64_t nb = dtype_size(ord[i]->type);
        for (int d = 0; d < ord[i]->n_dims; d++) nb *= ord[i]->shape[d];
        nbytes[i] = nb;
    }
    if (st_build_header(path, ord, n, metadata_json, nbytes, &hb, err)) goto done;

    atomic_file af;
    if (atomic_open(&af, path, err)) goto done;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hb.n >> (8 * i));
    int bad = atomic_put(&af, len8, 8, err) || atomic_put(&af, hb.p, hb.n, err);
    for (int i = 0; i < n && !bad; i++)
        if (nbytes[i]) bad = atomic_put(&af, ord[i]->data, (size_t)nbytes[i], err);
    if (bad) atomic_abort(&af);
    else rc = atomic_commit(&af, err);
done:
    free(hb.p);
    free(ord);
    free(nbytes);
    return rc;
}
