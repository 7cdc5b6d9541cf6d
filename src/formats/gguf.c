/*
 * gguf.c - the GGUF reader (see gguf.h for the format and the checks).
 *
 * One pass over the header: every count, length and offset is checked
 * against the bytes left before it is used, and the pairs and tensor infos
 * are recorded in private tables that grow as entries are actually read (a
 * claimed count never sizes an allocation). Then the strings are copied into
 * one arena, the public tables built at their exact size, sorted, and
 * checked for duplicates and overlaps.
 */
#include "formats/gguf.h"
#include "base/dtype.h"
#include "base/err.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c uses little-endian values and tensor data in place"
#endif

#define GGUF_MAGIC "GGUF"
#define GGUF_HEADER_BYTES 24
/* The smallest pair: key length (8), a 1-byte key, value type (4), a 1-byte value. */
#define GGUF_MIN_KV 14
/* The smallest tensor info: name length (8), 1 byte, n_dims (4), one dim (8),
 * type (4), offset (8). */
#define GGUF_MIN_TI 33

/* ------------------------------------------------------------ type tables */

static const char *const gguf_ggml_names[] = {
    [0] = "F32",      [1] = "F16",      [2] = "Q4_0",    [3] = "Q4_1",     [6] = "Q5_0",
    [7] = "Q5_1",     [8] = "Q8_0",     [9] = "Q8_1",    [10] = "Q2_K",    [11] = "Q3_K",
    [12] = "Q4_K",    [13] = "Q5_K",    [14] = "Q6_K",   [15] = "Q8_K",    [16] = "IQ2_XXS",
    [17] = "IQ2_XS",  [18] = "IQ3_XXS", [19] = "IQ1_S",  [20] = "IQ4_NL",  [21] = "IQ3_S",
    [22] = "IQ2_S",   [23] = "IQ4_XS",  [24] = "I8",     [25] = "I16",     [26] = "I32",
    [27] = "I64",     [28] = "F64",     [29] = "IQ1_M",  [30] = "BF16",    [34] = "TQ1_0",
    [35] = "TQ2_0",   [39] = "MXFP4",   [40] = "NVFP4",  [41] = "Q1_0",
};

const char *gguf_type_name(int type) {
    if (type < 0 || type >= (int)(sizeof gguf_ggml_names / sizeof gguf_ggml_names[0]))
        return NULL;
    return gguf_ggml_names[type];
}

/* Block geometry of the supported types and the alignment their data needs
 * in memory: the rows of dtype.h's one table of types. */
#define GGUF_CHECK(U, l, nm, g, be, bb, al) \
    _Static_assert(GGUF_TYPE_##U == g, "GGUF_TYPE_" #U " and dtype.h disagree");
DTYPE_FLOAT_LIST(GGUF_CHECK)
DTYPE_QUANT_LIST(GGUF_CHECK)
#undef GGUF_CHECK

static int gguf_traits(int type, int *block, int *size, int *align) {
    const dtype_traits *d = dtype_traits_of(dtype_from_ggml(type));
    if (!d) return -1;
    if (block) *block = d->block_elems;
    if (size) *size = d->block_bytes;
    if (align) *align = d->align;
    return 0;
}

int gguf_type_block(int type) {
    int b;
    return gguf_traits(type, &b, NULL, NULL) ? 0 : b;
}

int gguf_type_size(int type) {
    int s;
    return gguf_traits(type, NULL, &s, NULL) ? 0 : s;
}

const char *gguf_vtype_name(int vt) {
    static const char *const names[GGUF_VT_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"};
    return vt >= 0 && vt < GGUF_VT_COUNT ? names[vt] : "?";
}

int gguf_vtype_size(int vt) {
    switch (vt) {
    case GGUF_VT_U8: case GGUF_VT_I8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_U16: case GGUF_VT_I16: return 2;
    case GGUF_VT_U32: case GGUF_VT_I32: case GGUF_VT_F32: return 4;
    case GGUF_VT_U64: case GGUF_VT_I64: case GGUF_VT_F64: return 8;
    default: return 0;
    }
}

int64_t gguf_nbytes(gguf_type type, int n_dims, const int64_t *ne) {
    int block, size;
    if (gguf_traits(type, &block, &size, NULL) || n_dims < 1 || n_dims > GGUF_MAX_DIMS) return -1;
    int64_t n = 1, nb;
    for (int d = 0; d < n_dims; d++)
        if (ne[d] <= 0 || __builtin_mul_overflow(n, ne[d], &n)) return -1;
    if (ne[0] % block || __builtin_mul_overflow(n / block, (int64_t)size, &nb)) return -1;
    return nb;
}

/* ------------------------------------------------------- bounded reading */

typedef struct gguf_rd {
    const unsigned char *p; /* [size] */
    uint64_t size, pos;
    const char *path;
    moe_err *err;
} gguf_rd;

static uint64_t rd_left(const gguf_rd *r) { return r->size - r->pos; }

/* n more bytes must exist; what names the field for the message. */
static int rd_need(gguf_rd *r, uint64_t n, const char *ctx, const char *what) {
    if (n <= rd_left(r)) return 0;
    return moe_fail(r->err, "%s: %s: %s needs %llu bytes at offset %llu, only %llu left (past "
                    "the end of the file)", r->path, ctx, what, (unsigned long long)n,
                    (unsigned long long)r->pos, (unsigned long long)rd_left(r));
}

static int rd_u32(gguf_rd *r, uint32_t *v, const char *ctx, const char *what) {
    if (rd_need(r, 4, ctx, what)) return -1;
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(gguf_rd *r, uint64_t *v, const char *ctx, const char *what) {
    if (rd_need(r, 8, ctx, what)) return -1;
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* A string in place (not NUL-terminated). */
typedef struct gguf_sref {
    const unsigned char *p;
    uint64_t len;
} gguf_sref;

static int rd_str(gguf_rd *r, gguf_sref *s, const char *ctx, const char *what) {
    uint64_t len;
    if (rd_u64(r, &len, ctx, what)) return -1;
    if (len > rd_left(r))
        return moe_fail(r->err, "%s: %s: %s length %llu at offset %llu runs past the end of the "
                        "file (%llu bytes left)", r->path, ctx, what, (unsigned long long)len,
                        (unsigned long long)(r->pos - 8), (unsigned long long)rd_left(r));
    s->p = r->p + r->pos;
    s->len = len;
    r->pos += len;
    return 0;
}

/* ------------------------------------------------------- private records */

/* A pair as read, before its strings are copied out. */
typedef struct gguf_kvx {
    gguf_sref key;
    gguf_vtype type, arr_type;
    uint64_t n;
    const void *raw;
    uint64_t str0; /* first of its strings in the value list */
    uint64_t offset;
} gguf_kvx;

typedef struct gguf_tix {
    gguf_sref name;
    gguf_tensor t; /* all but name and data */
} gguf_tix;

typedef struct gguf_build {
    gguf_kvx *kv;
    uint64_t n_kv, kv_cap;
    gguf_tix *ti;
    uint64_t n_ti, ti_cap;
    gguf_sref *vals; /* every string value, in file order */
    uint64_t n_vals, vals_cap;
    uint64_t arena; /* bytes needed to copy every string with its NUL */
} gguf_build;

static void build_free(gguf_build *b) {
    free(b->kv);
    free(b->ti);
    free(b->vals);
}

/* Make room for one more element in *p (capacity *cap, count n). */
static int grow(void **p, uint64_t *cap, uint64_t n, size_t esize) {
    if (n < *cap) return 0;
    uint64_t nc = *cap ? *cap * 2 : 16;
    if (nc > SIZE_MAX / esize) return -1;
    void *q = realloc(*p, (size_t)nc * esize);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static int push_val(gguf_rd *r, gguf_build *b, gguf_sref s) {
    if (grow((void **)&b->vals, &b->vals_cap, b->n_vals, sizeof *b->vals))
        return moe_fail(r->err, "%s: out of memory for string values", r->path);
    b->vals[b->n_vals++] = s;
    b->arena += s.len + 1;
    return 0;
}

/* A key or tensor name: non-empty and free of NUL bytes (it is looked up as a C string). */
static int check_name(gguf_rd *r, gguf_sref s, const char *ctx, const char *what) {
    if (s.len == 0) return moe_fail(r->err, "%s: %s: empty %s", r->path, ctx, what);
    if (memchr(s.p, 0, s.len))
        return moe_fail(r->err, "%s: %s: %s contains a NUL byte", r->path, ctx, what);
    return 0;
}

/* Bools are one byte, 0 or 1. */
static int check_bools(gguf_rd *r, const unsigned char *p, uint64_t n, const char *ctx) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1)
            return moe_fail(r->err, "%s: %s: bool value %u (must be 0 or 1) at element %llu",
                            r->path, ctx, p[i], (unsigned long long)i);
    return 0;
}

/* The value of pair x, after its key. */
static int read_value(gguf_rd *r, gguf_build *b, gguf_kvx *x, const char *ctx) {
    uint32_t t;
    if (rd_u32(r, &t, ctx, "value type")) return -1;
    if (t >= GGUF_VT_COUNT)
        return moe_fail(r->err, "%s: %s: unknown value type %u", r->path, ctx, t);
    x->type = (gguf_vtype)t;
    x->n = 1;
    x->str0 = b->n_vals;
    if (t == GGUF_VT_STR) {
        gguf_sref s;
        return rd_str(r, &s, ctx, "string") || push_val(r, b, s);
    }
    if (t != GGUF_VT_ARR) {
        int es = gguf_vtype_size((int)t);
        if (rd_need(r, (uint64_t)es, ctx, "value")) return -1;
        x->raw = r->p + r->pos;
        if (t == GGUF_VT_BOOL && check_bools(r, r->p + r->pos, 1, ctx)) return -1;
        r->pos += (uint64_t)es;
        return 0;
    }
    uint32_t et;
    uint64_t n;
    if (rd_u32(r, &et, ctx, "array element type")) return -1;
    if (et == GGUF_VT_ARR)
        return moe_fail(r->err, "%s: %s: nested array (arrays of arrays are not allowed)",
                        r->path, ctx);
    if (et >= GGUF_VT_COUNT)
        return moe_fail(r->err, "%s: %s: unknown array element type %u", r->path, ctx, et);
    if (rd_u64(r, &n, ctx, "array length")) return -1;
    x->arr_type = (gguf_vtype)et;
    x->n = n;
    if (et == GGUF_VT_STR) {
        /* each string takes at least its 8-byte length: this bounds the loop */
        if (n > rd_left(r) / 8)
            return moe_fail(r->err, "%s: %s: array of %llu strings cannot fit in the %llu bytes "
                            "left (past the end of the file)", r->path, ctx,
                            (unsigned long long)n, (unsigned long long)rd_left(r));
        for (uint64_t i = 0; i < n; i++) {
            gguf_sref s;
            if (rd_str(r, &s, ctx, "array string") || push_val(r, b, s)) return -1;
        }
        return 0;
    }
    uint64_t es = (uint64_t)gguf_vtype_size((int)et);
    if (n > rd_left(r) / es)
        return moe_fail(r->err, "%s: %s: array of %llu %s (%d bytes each) runs past the end of "
                        "the file (%llu bytes left)", r->path, ctx, (unsigned long long)n,
                        gguf_vtype_name((int)et), (int)es, (unsigned long long)rd_left(r));
    x->raw = r->p + r->pos;
    if (et == GGUF_VT_BOOL && check_bools(r, r->p + r->pos, n, ctx)) return -1;
    r->pos += n * es;
    return 0;
}

/* "key \"general.name\"" for messages (keys are checked for NUL before use). */
static void key_ctx(char *buf, size_t cap, const char *what, gguf_sref s) {
    int len = s.len > 96 ? 96 : (int)s.len;
    snprintf(buf, cap, "%s \"%.*s%s\"", what, len, (const char *)s.p, s.len > 96 ? "..." : "");
}

static int read_kvs(gguf_rd *r, gguf_build *b, uint64_t n_kv) {
    char ctx[160];
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kvx x = {.offset = r->pos};
        snprintf(ctx, sizeof ctx, "kv %llu", (unsigned long long)i);
        if (rd_str(r, &x.key, ctx, "key") || check_name(r, x.key, ctx, "key")) return -1;
        key_ctx(ctx, sizeof ctx, "key", x.key);
        if (read_value(r, b, &x, ctx)) return -1;
        if (grow((void **)&b->kv, &b->kv_cap, b->n_kv, sizeof *b->kv))
            return moe_fail(r->err, "%s: out of memory for metadata", r->path);
        b->kv[b->n_kv++] = x;
        b->arena += x.key.len + 1;
    }
    return 0;
}

/* general.alignment: a U32 power of two (ggml's rule), else the default. */
static int find_alignment(gguf_rd *r, const gguf_build *b, uint32_t *align) {
    static const char key[] = "general.alignment";
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < b->n_kv; i++) {
        const gguf_kvx *x = &b->kv[i];
        if (x->key.len != sizeof key - 1 || memcmp(x->key.p, key, sizeof key - 1)) continue;
        if (x->type != GGUF_VT_U32)
            return moe_fail(r->err, "%s: key \"%s\": is %s, must be u32 (wrong type)", r->path,
                            key, gguf_vtype_name(x->type));
        uint32_t a;
        memcpy(&a, x->raw, 4);
        if (a == 0 || (a & (a - 1)))
            return moe_fail(r->err, "%s: key \"%s\": %u is not a power of two", r->path, key, a);
        *align = a;
        return 0;
    }
    return 0;
}

static int read_tensor_info(gguf_rd *r, uint64_t i, uint32_t align, gguf_tix *x) {
    char ctx[160];
    snprintf(ctx, sizeof ctx, "tensor %llu", (unsigned long long)i);
    if (rd_str(r, &x->name, ctx, "name") || check_name(r, x->name, ctx, "tensor name"))
        return -1;
    key_ctx(ctx, sizeof ctx, "tensor", x->name);
    gguf_tensor *t = &x->t;
    uint32_t nd, type;
    if (rd_u32(r, &nd, ctx, "n_dims")) return -1;
    if (nd == 0 || nd > GGUF_MAX_DIMS)
        return moe_fail(r->err, "%s: %s: n_dims %u (must be 1..%d)", r->path, ctx, nd,
                        GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    int64_t n = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (int d = 0; d < (int)nd; d++) {
        uint64_t v;
        if (rd_u64(r, &v, ctx, "dim")) return -1;
        if (v == 0 || v > (uint64_t)INT64_MAX)
            return moe_fail(r->err, "%s: %s: dim %d is %lld (must be > 0)", r->path, ctx, d,
                            (long long)v);
        t->ne[d] = (int64_t)v;
        if (__builtin_mul_overflow(n, t->ne[d], &n))
            return moe_fail(r->err, "%s: %s: element count overflows int64", r->path, ctx);
    }
    t->n_elems = n;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->shape[d] = d < (int)nd ? t->ne[nd - 1 - d] : 0;
    if (rd_u32(r, &type, ctx, "type")) return -1;
    int block, size;
    if (gguf_traits((int)type, &block, &size, NULL)) {
        const char *tn = gguf_type_name((int)type);
        if (tn)
            return moe_fail(r->err, "%s: %s: unsupported type %s (%u)", r->path, ctx, tn, type);
        return moe_fail(r->err, "%s: %s: unknown type %u", r->path, ctx, type);
    }
    t->type = (gguf_type)type;
    if (t->ne[0] % block)
        return moe_fail(r->err, "%s: %s: row length ne[0] = %lld is not a multiple of the "
                        "block size %d of %s", r->path, ctx, (long long)t->ne[0], block,
                        gguf_type_name((int)type));
    int64_t nb;
    if (__builtin_mul_overflow(n / block, (int64_t)size, &nb) || (uint64_t)nb > SIZE_MAX)
        return moe_fail(r->err, "%s: %s: byte size overflows int64", r->path, ctx);
    t->nbytes = (size_t)nb;
    if (rd_u64(r, &t->offset, ctx, "offset")) return -1;
    if (t->offset % align)
        return moe_fail(r->err, "%s: %s: offset %llu is not a multiple of the alignment %u "
                        "(not aligned)", r->path, ctx, (unsigned long long)t->offset, align);
    return 0;
}

/* ------------------------------------------------------------- finishing */

static int kv_ptr_cmp(const void *a, const void *b) {
    return strcmp((*(const gguf_kv *const *)a)->key, (*(const gguf_kv *const *)b)->key);
}

static int tensor_cmp(const void *a, const void *b) {
    return strcmp(((const gguf_tensor *)a)->name, ((const gguf_tensor *)b)->name);
}

typedef struct gguf_span {
    uint64_t begin, end;
    const char *name;
} gguf_span;

static int span_cmp(const void *a, const void *b) {
    const gguf_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static const char *arena_put(char **a, gguf_sref s) {
    char *p = *a;
    if (s.len) memcpy(p, s.p, (size_t)s.len);
    p[s.len] = 0;
    *a += s.len + 1;
    return p;
}

/* Build g's tables from b, sort them and check what needs them sorted. */
static int finish(gguf_file *g, gguf_build *b, moe_err *err) {
    const char *path = g->path;
    g->n_kv = (int)b->n_kv;
    g->n_tensors = (int)b->n_ti;
    g->arena = malloc((size_t)b->arena + 1);
    g->strv = malloc(((size_t)b->n_vals + 1) * sizeof *g->strv);
    g->lenv = malloc(((size_t)b->n_vals + 1) * sizeof *g->lenv);
    g->kvs = calloc((size_t)b->n_kv + 1, sizeof *g->kvs);
    g->kv_by_key = malloc(((size_t)b->n_kv + 1) * sizeof *g->kv_by_key);
    g->tensors = calloc((size_t)b->n_ti + 1, sizeof *g->tensors);
    gguf_span *spans = malloc(((size_t)b->n_ti + 1) * sizeof *spans);
    if (!g->arena || !g->strv || !g->lenv || !g->kvs || !g->kv_by_key || !g->tensors || !spans) {
        free(spans);
        return moe_fail(err, "%s: out of memory for the metadata tables", path);
    }
    char *a = g->arena;
    for (uint64_t i = 0; i < b->n_vals; i++) {
        g->strv[i] = arena_put(&a, b->vals[i]);
        g->lenv[i] = b->vals[i].len;
    }
    for (uint64_t i = 0; i < b->n_kv; i++) {
        const gguf_kvx *x = &b->kv[i];
        gguf_kv *kv = &g->kvs[i];
        kv->key = arena_put(&a, x->key);
        kv->type = x->type;
        kv->arr_type = x->arr_type;
        kv->n = x->n;
        kv->raw = x->raw;
        kv->offset = x->offset;
        if (x->type == GGUF_VT_STR || (x->type == GGUF_VT_ARR && x->arr_type == GGUF_VT_STR)) {
            kv->strs = g->strv + x->str0;
            kv->lens = g->lenv + x->str0;
        }
        g->kv_by_key[i] = kv;
    }
    qsort(g->kv_by_key, b->n_kv, sizeof *g->kv_by_key, kv_ptr_cmp);
    for (uint64_t i = 1; i < b->n_kv; i++)
        if (!strcmp(g->kv_by_key[i]->key, g->kv_by_key[i - 1]->key)) {
            free(spans);
            return moe_fail(err, "%s: duplicate key \"%s\"", path, g->kv_by_key[i]->key);
        }

    uint64_t data_size = g->size >= g->data_offset ? g->size - g->data_offset : 0;
    for (uint64_t i = 0; i < b->n_ti; i++) {
        gguf_tensor *t = &g->tensors[i];
        *t = b->ti[i].t;
        t->name = arena_put(&a, b->ti[i].name);
        if (t->offset > data_size || t->nbytes > data_size - t->offset) {
            moe_fail(err, "%s: tensor \"%s\": data [%llu, +%zu) runs past the end of the file "
                     "(data section holds %llu bytes)", path, t->name,
                     (unsigned long long)t->offset, t->nbytes, (unsigned long long)data_size);
            free(spans);
            return -1;
        }
        t->data = g->base + g->data_offset + t->offset;
        int align = 1;
        gguf_traits(t->type, NULL, NULL, &align);
        if ((uintptr_t)t->data % (uintptr_t)align) {
            moe_fail(err, "%s: tensor \"%s\": data at file offset %llu is misaligned for %s "
                     "(needs %d-byte alignment)", path, t->name,
                     (unsigned long long)(g->data_offset + t->offset),
                     gguf_type_name(t->type), align);
            free(spans);
            return -1;
        }
        spans[i] = (gguf_span){t->offset, t->offset + t->nbytes, t->name};
    }
    qsort(spans, b->n_ti, sizeof *spans, span_cmp);
    for (uint64_t i = 1; i < b->n_ti; i++)
        if (spans[i].begin < spans[i - 1].end) {
            moe_fail(err, "%s: tensor \"%s\" [%llu, %llu) overlaps tensor \"%s\" [%llu, %llu)",
                     path, spans[i].name, (unsigned long long)spans[i].begin,
                     (unsigned long long)spans[i].end, spans[i - 1].name,
                     (unsigned long long)spans[i - 1].begin,
                     (unsigned long long)spans[i - 1].end);
            free(spans);
            return -1;
        }
    free(spans);
    qsort(g->tensors, b->n_ti, sizeof *g->tensors, tensor_cmp);
    for (uint64_t i = 1; i < b->n_ti; i++)
        if (!strcmp(g->tensors[i].name, g->tensors[i - 1].name))
            return moe_fail(err, "%s: duplicate tensor name \"%s\"", path, g->tensors[i].name);
    return 0;
}

static int parse(gguf_file *g, moe_err *err) {
    gguf_rd r = {.p = g->base, .size = g->size, .path = g->path, .err = err};
    if (g->size < GGUF_HEADER_BYTES)
        return moe_fail(err, "%s: file too short (%llu bytes) for a GGUF header (%d)", g->path,
                        (unsigned long long)g->size, GGUF_HEADER_BYTES);
    if (memcmp(g->base, GGUF_MAGIC, 4))
        return moe_fail(err, "%s: bad magic %02x %02x %02x %02x (not a GGUF file)", g->path,
                        g->base[0], g->base[1], g->base[2], g->base[3]);
    r.pos = 4;
    uint64_t n_ti, n_kv;
    rd_u32(&r, &g->version, "header", "version");
    if (g->version == 1)
        return moe_fail(err, "%s: unsupported version 1 (GGUFv1 is no longer supported)",
                        g->path);
    if (g->version != 2 && g->version != 3)
        return moe_fail(err, "%s: unsupported version %u (2 and 3 are read%s)", g->path,
                        g->version, (g->version & 0xffff) == 0 ? "; big-endian file?" : "");
    rd_u64(&r, &n_ti, "header", "tensor count");
    rd_u64(&r, &n_kv, "header", "kv count");
    uint64_t left = rd_left(&r);
    if (n_kv > left / GGUF_MIN_KV || n_kv > INT_MAX)
        return moe_fail(err, "%s: kv count %llu cannot fit in the %llu bytes left", g->path,
                        (unsigned long long)n_kv, (unsigned long long)left);
    if (n_ti > left / GGUF_MIN_TI || n_ti > INT_MAX)
        return moe_fail(err, "%s: tensor count %llu cannot fit in the %llu bytes left", g->path,
                        (unsigned long long)n_ti, (unsigned long long)left);
    if (n_kv * GGUF_MIN_KV + n_ti * GGUF_MIN_TI > left)
        return moe_fail(err, "%s: kv count %llu and tensor count %llu cannot fit in the %llu "
                        "bytes left", g->path, (unsigned long long)n_kv,
                        (unsigned long long)n_ti, (unsigned long long)left);

    gguf_build b = {0};
    int rc = -1;
    if (read_kvs(&r, &b, n_kv) || find_alignment(&r, &b, &g->alignment)) goto done;
    for (uint64_t i = 0; i < n_ti; i++) {
        if (grow((void **)&b.ti, &b.ti_cap, b.n_ti, sizeof *b.ti)) {
            moe_fail(err, "%s: out of memory for tensor infos", g->path);
            goto done;
        }
        gguf_tix *x = &b.ti[b.n_ti];
        memset(x, 0, sizeof *x);
        if (read_tensor_info(&r, i, g->alignment, x)) goto done;
        b.n_ti++;
        b.arena += x->name.len + 1;
    }
    /* the data section starts at the next multiple of the alignment */
    g->data_offset = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (n_ti > 0 && g->data_offset > g->size) {
        moe_fail(err, "%s: data section at offset %llu starts past the end of the file (%llu "
                 "bytes)", g->path, (unsigned long long)g->data_offset,
                 (unsigned long long)g->size);
        goto done;
    }
    rc = finish(g, &b, err);
done:
    build_free(&b);
    return rc;
}

/* ----------------------------------------------------------- open, close */

static int open_common(gguf_file *g, moe_err *err) {
    if (parse(g, err)) {
        gguf_close(g);
        return -1;
    }
    return 0;
}

int gguf_open_mem(gguf_file *g, const void *data, size_t size, const char *name,
                  moe_err *err) {
    memset(g, 0, sizeof *g);
    g->path = strdup(name ? name : "(memory)");
    if (!g->path) return moe_fail(err, "%s: out of memory", name ? name : "(memory)");
    g->base = data;
    g->size = size;
    return open_common(g, err);
}

static int gguf_open_as(gguf_file *g, const char *path, int weights, moe_err *err) {
    memset(g, 0, sizeof *g);
    g->path = strdup(path);
    if (!g->path) return moe_fail(err, "%s: out of memory", path);
    if (weights ? mapped_open_weights(&g->map, path, err) : mapped_open(&g->map, path, err)) {
        free(g->path);
        g->path = NULL;
        return -1;
    }
    g->base = g->map.data;
    g->size = g->map.size;
    return open_common(g, err);
}

int gguf_open(gguf_file *g, const char *path, moe_err *err) { return gguf_open_as(g, path, 0, err); }
int gguf_open_weights(gguf_file *g, const char *path, moe_err *err) { return gguf_open_as(g, path, 1, err); }

void gguf_close(gguf_file *g) {
    mapped_close(&g->map);
    free(g->path);
    free(g->kvs);
    free(g->kv_by_key);
    free(g->tensors);
    free(g->arena);
    free(g->strv);
    free(g->lenv);
    memset(g, 0, sizeof *g);
}

/* --------------------------------------------------------------- lookups */

const gguf_tensor *gguf_find(const gguf_file *g, const char *name) {
    int lo = 0, hi = g->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(g->tensors[mid].name, name);
        if (!c) return &g->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key) {
    int lo = 0, hi = g->n_kv - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(g->kv_by_key[mid]->key, key);
        if (!c) return g->kv_by_key[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

static const gguf_kv *want(const gguf_file *g, const char *key, int type, moe_err *err) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) {
        moe_fail(err, "%s: key \"%s\": missing", g->path, key);
        return NULL;
    }
    if ((int)kv->type != type) {
        moe_fail(err, "%s: key \"%s\": is %s, not %s (wrong type)", g->path, key,
                 gguf_vtype_name(kv->type), gguf_vtype_name(type));
        return NULL;
    }
    return kv;
}

#define GGUF_GETTER(fn, ctype, vt)                                                    \
    int fn(const gguf_file *g, const char *key, ctype *out, moe_err *err) {          \
        const gguf_kv *kv = want(g, key, vt, err);                                   \
        if (!kv) return -1;                                                          \
        memcpy(out, kv->raw, sizeof *out);                                           \
        return 0;                                                                    \
    }
GGUF_GETTER(gguf_get_u8, uint8_t, GGUF_VT_U8)
GGUF_GETTER(gguf_get_i8, int8_t, GGUF_VT_I8)
GGUF_GETTER(gguf_get_u16, uint16_t, GGUF_VT_U16)
GGUF_GETTER(gguf_get_i16, int16_t, GGUF_VT_I16)
GGUF_GETTER(gguf_get_u32, uint32_t, GGUF_VT_U32)
GGUF_GETTER(gguf_get_i32, int32_t, GGUF_VT_I32)
GGUF_GETTER(gguf_get_u64, uint64_t, GGUF_VT_U64)
GGUF_GETTER(gguf_get_i64, int64_t, GGUF_VT_I64)
GGUF_GETTER(gguf_get_f32, float, GGUF_VT_F32)
GGUF_GETTER(gguf_get_f64, double, GGUF_VT_F64)
#undef GGUF_GETTER

int gguf_get_bool(const gguf_file *g, const char *key, bool *out, moe_err *err) {
    const gguf_kv *kv = want(g, key, GGUF_VT_BOOL, err);
    if (!kv) return -1;
    *out = *(const unsigned char *)kv->raw != 0;
    return 0;
}

int gguf_get_str(const gguf_file *g, const char *key, const char **out, uint64_t *len,
                 moe_err *err) {
    const gguf_kv *kv = want(g, key, GGUF_VT_STR, err);
    if (!kv) return -1;
    *out = kv->strs[0];
    if (len) *len = kv->lens[0];
    return 0;
}

/* One scalar of type vt at p as int64 (1 and sets *ok = 0 if not an integer type). */
static int64_t scalar_int(int vt, const void *p, int *ok) {
    *ok = 1;
    switch (vt) {
    case GGUF_VT_U8: case GGUF_VT_BOOL: { uint8_t v; memcpy(&v, p, 1); return v; }
    case GGUF_VT_I8: { int8_t v; memcpy(&v, p, 1); return v; }
    case GGUF_VT_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_VT_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_VT_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_VT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_VT_U64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    case GGUF_VT_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    default: *ok = 0; return 0;
    }
}

int gguf_get_int(const gguf_file *g, const char *key, int64_t *out, moe_err *err) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return moe_fail(err, "%s: key \"%s\": missing", g->path, key);
    int ok;
    int64_t v = kv->type == GGUF_VT_BOOL ? 0 : scalar_int(kv->type, kv->raw, &ok);
    if (kv->type == GGUF_VT_BOOL || !ok)
        return moe_fail(err, "%s: key \"%s\": is %s, not an integer (wrong type)", g->path, key,
                        gguf_vtype_name(kv->type));
    if (kv->type == GGUF_VT_U64 && v < 0)
        return moe_fail(err, "%s: key \"%s\": %llu does not fit int64", g->path, key,
                        (unsigned long long)v);
    *out = v;
    return 0;
}

int gguf_get_float(const gguf_file *g, const char *key, double *out, moe_err *err) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return moe_fail(err, "%s: key \"%s\": missing", g->path, key);
    if (kv->type == GGUF_VT_F32) {
        float f;
        memcpy(&f, kv->raw, 4);
        *out = f;
    } else if (kv->type == GGUF_VT_F64) {
        memcpy(out, kv->raw, 8);
    } else {
        return moe_fail(err, "%s: key \"%s\": is %s, not a float (wrong type)", g->path, key,
                        gguf_vtype_name(kv->type));
    }
    return 0;
}

int gguf_get_arr(const gguf_file *g, const char *key, int elem, gguf_arr *out, moe_err *err) {
    const gguf_kv *kv = want(g, key, GGUF_VT_ARR, err);
    if (!kv) return -1;
    if (elem != GGUF_VT_COUNT && (int)kv->arr_type != elem)
        return moe_fail(err, "%s: key \"%s\": is an array of %s, not of %s (wrong type)",
                        g->path, key, gguf_vtype_name(kv->arr_type), gguf_vtype_name(elem));
    out->type = kv->arr_type;
    out->n = kv->n;
    out->raw = kv->raw;
    out->strs = kv->strs;
    out->lens = kv->lens;
    return 0;
}

int64_t gguf_arr_int(const gguf_arr *a, uint64_t i) {
    int ok;
    int es = gguf_vtype_size(a->type);
    if (!a->raw || !es || i >= a->n) return 0;
    return scalar_int(a->type, (const unsigned char *)a->raw + i * (uint64_t)es, &ok);
}

double gguf_arr_float(const gguf_arr *a, uint64_t i) {
    if (!a->raw || i >= a->n) return 0;
    const unsigned char *p = a->raw;
    if (a->type == GGUF_VT_F32) {
        float f;
        memcpy(&f, p + i * 4, 4);
        return f;
    }
    if (a->type == GGUF_VT_F64) {
        double d;
        memcpy(&d, p + i * 8, 8);
        return d;
    }
    return (double)gguf_arr_int(a, i); /* an integer array (0 for anything else) */
}

const char *gguf_arr_str(const gguf_arr *a, uint64_t i) {
    return a->type == GGUF_VT_STR && a->strs && i < a->n ? a->strs[i] : NULL;
}

int gguf_arr_copy(const gguf_arr *a, void *dst) {
    int es = gguf_vtype_size(a->type);
    if (!es) return -1;
    if (a->n) memcpy(dst, a->raw, (size_t)a->n * (size_t)es);
    return 0;
}
