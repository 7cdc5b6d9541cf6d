/*
 * gguf.h - read (mmap) and write GGUF files, the single-file model format of
 * ggml / llama.cpp.
 *
 * The file, all integers little-endian, every string a u64 byte length then
 * that many bytes (UTF-8, no terminating NUL):
 *
 *  1. Magic "GGUF" (4 bytes).
 *  2. Version (u32): 2 or 3. (Version 1 used u32 counts and lengths and is
 *     refused, as ggml does; 3 differs from 2 only in allowing big-endian
 *     files, which we do not read: a byte-swapped version reads as an
 *     unsupported one.)
 *  3. Tensor count (u64).
 *  4. Metadata key/value count (u64).
 *  5. For each key/value pair:
 *     1. The key (string): non-empty, no NUL bytes, unique in the file. By
 *        convention lower_snake_case words joined by '.' ("general.name").
 *     2. The value type (u32, gguf_vtype): U8 0, I8 1, U16 2, I16 3, U32 4,
 *        I32 5, F32 6, BOOL 7, STRING 8, ARRAY 9, U64 10, I64 11, F64 12.
 *     3a. ARRAY: the element type (u32, any type but ARRAY: arrays do not
 *         nest), the element count (u64), then the elements back to back
 *         (strings each with their own length).
 *     3b. Otherwise the value: 1, 2, 4 or 8 bytes (BOOL is one byte, 0 or 1),
 *         or a string.
 *  6. For each tensor, its info:
 *     1. The name (string): non-empty, no NUL bytes, unique in the file
 *        (ggml also limits it to 63 bytes; our writer keeps to that).
 *     2. The number of dimensions n_dims (u32), 1..4.
 *     3. n_dims sizes (u64 each), ne[0] first: ne[0] is the fastest-varying
 *        (the row length), so a [rows][cols] matrix is stored ne = {cols, rows}.
 *        Every size > 0; their product (the element count) fits int64;
 *        ne[0] is a multiple of the type's block size.
 *     4. The tensor type (u32, gguf_type: ggml's numbering).
 *     5. The offset of its data (u64), relative to the data section, a
 *        multiple of the alignment.
 *  7. Padding (zero bytes) to the alignment: the value of the key
 *     "general.alignment" (type U32, a power of two) or 32 when absent.
 *  8. The data section, to the end of the file: each tensor's bytes at its
 *     offset, element count / block size * type size of them. A file with no
 *     tensors may end before the padding.
 *
 * The reader checks everything against the file before use and returns an
 * error naming the file and the key or tensor at fault: bad magic or version;
 * counts that cannot fit in the bytes left (nothing is allocated in
 * proportion to a claimed count: tables grow as entries are actually read);
 * string and array lengths past the end; unknown value types, nested arrays,
 * bools other than 0/1; empty, NUL-containing or duplicate keys and names;
 * a general.alignment that is not a U32 power of two; n_dims 0 or > 4, sizes
 * <= 0, element count or byte size overflowing int64, ne[0] not a multiple of
 * the block, unknown tensor types; offsets not aligned, data past the end of
 * the file, two tensors overlapping (gaps and any order are accepted: ggml's
 * own files are packed in order, others need not be), data not aligned for
 * its type in memory.
 *
 * The writer produces what ggml writes: version 3, tensors packed in the
 * order given, each padded to the alignment. It writes to a temporary file,
 * fsyncs and renames, so a failure never leaves a half-written file.
 *
 * Host byte order is assumed little-endian (checked at compile time): values
 * and tensor data are used in place.
 */
#ifndef MOE_FORMATS_GGUF_H
#define MOE_FORMATS_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "moe.h"
#include "base/mapfile.h"

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_NAME_MAX 63 /* ggml's GGML_MAX_NAME - 1: longest tensor name the writer takes */

/* ------------------------------------------------------------------ types */

/* Metadata value types (the ids on disk). */
typedef enum gguf_vtype {
    GGUF_VT_U8 = 0,
    GGUF_VT_I8 = 1,
    GGUF_VT_U16 = 2,
    GGUF_VT_I16 = 3,
    GGUF_VT_U32 = 4,
    GGUF_VT_I32 = 5,
    GGUF_VT_F32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STR = 8,
    GGUF_VT_ARR = 9,
    GGUF_VT_U64 = 10,
    GGUF_VT_I64 = 11,
    GGUF_VT_F64 = 12,
    GGUF_VT_COUNT
} gguf_vtype;

/* Tensor types we read and write, with ggml's numeric ids. Other ggml types
 * (TQ1_0, TQ2_0, ...) are refused by name as unsupported. */
typedef enum gguf_type {
    GGUF_TYPE_F32 = 0,
    GGUF_TYPE_F16 = 1,
    GGUF_TYPE_Q4_0 = 2,  /* 32 elements in 18 bytes: f16 scale, 16 bytes of nibbles */
    GGUF_TYPE_Q8_0 = 8,  /* 32 elements in 34 bytes: f16 scale, 32 int8 */
    GGUF_TYPE_Q4_K = 12, /* 256 elements in 144 bytes */
    GGUF_TYPE_Q5_K = 13, /* 256 elements in 176 bytes */
    GGUF_TYPE_Q6_K = 14, /* 256 elements in 210 bytes */
    GGUF_TYPE_BF16 = 30,
    GGUF_TYPE_MXFP4 = 39, /* 32 elements in 17 bytes: E8M0 scale, 16 bytes of E2M1 nibbles */
    GGUF_TYPE_IQ2_XXS = 16, /* the grid i-quants, 256 elements per block (kernels/quant.h) */
    GGUF_TYPE_IQ2_XS = 17,
    GGUF_TYPE_IQ3_XXS = 18,
    GGUF_TYPE_IQ1_S = 19,
    GGUF_TYPE_IQ3_S = 21,
    GGUF_TYPE_IQ2_S = 22,
    GGUF_TYPE_IQ1_M = 29,
    GGUF_TYPE_Q4_1 = 3,    /* 32 elements in 20 bytes: f16 scale and min, 16 bytes of nibbles */
    GGUF_TYPE_Q5_0 = 6,    /* 32 elements in 22 bytes: f16 scale, 4 bytes of fifth bits, nibbles */
    GGUF_TYPE_Q5_1 = 7,    /* 32 elements in 24 bytes: as Q5_0 with an f16 min */
    GGUF_TYPE_Q2_K = 10,   /* 256 elements in 84 bytes */
    GGUF_TYPE_Q3_K = 11,   /* 256 elements in 110 bytes */
    GGUF_TYPE_IQ4_NL = 20, /* 32 elements in 18 bytes: f16 scale, 16 bytes of table indices */
    GGUF_TYPE_IQ4_XS = 23, /* 256 elements in 136 bytes */
} gguf_type;

/* Elements per block of a supported type (1 for F32/F16/BF16), 0 otherwise. */
int gguf_type_block(int type);
/* Bytes per block of a supported type, 0 otherwise. */
int gguf_type_size(int type);
/* ggml's name of any ggml type id ("Q4_K"), NULL for ids ggml never had. */
const char *gguf_type_name(int type);
/* "u32", "str", "arr", ...; "?" for an unknown id. */
const char *gguf_vtype_name(int vtype);
/* Bytes of one scalar of vtype; 0 for STR, ARR and unknown ids. */
int gguf_vtype_size(int vtype);

/* ----------------------------------------------------------------- reader */

/* One metadata pair. Strings are copied (NUL-terminated); scalar bytes are
 * left in the file and may be unaligned: read them with the getters below. */
typedef struct gguf_kv {
    const char *key;          /* NUL-terminated, owned by the gguf_file */
    gguf_vtype type;          /* value type */
    gguf_vtype arr_type;      /* element type when type == GGUF_VT_ARR */
    uint64_t n;               /* element count of an array; 1 for a scalar */
    const void *raw;          /* scalar / scalar-array bytes, little-endian, in the file */
    const char *const *strs;  /* [n] STR value or STR array elements, NUL-terminated */
    const uint64_t *lens;     /* [n] their byte lengths (a value may contain NUL bytes) */
    uint64_t offset;          /* file offset of the pair (for messages and tools) */
} gguf_kv;

/* An array value, as the getter hands it out. */
typedef struct gguf_arr {
    gguf_vtype type;          /* element type */
    uint64_t n;               /* elements */
    const void *raw;          /* [n] scalars (unaligned, little-endian); NULL for strings */
    const char *const *strs;  /* [n] strings when type == GGUF_VT_STR */
    const uint64_t *lens;     /* [n] their byte lengths */
} gguf_arr;

typedef struct gguf_tensor {
    const char *name;             /* NUL-terminated, owned by the gguf_file */
    gguf_type type;
    int n_dims;                   /* 1..4 */
    int64_t ne[GGUF_MAX_DIMS];    /* ne[0] fastest (row length); unused dims are 1 */
    int64_t shape[GGUF_MAX_DIMS]; /* the same sizes slowest first, as safetensors and
                                   * PyTorch write them: shape[i] = ne[n_dims-1-i]; 0 past n_dims */
    int64_t n_elems;
    uint64_t offset;              /* relative to the data section */
    const void *data;             /* in the mapping, aligned for the type */
    size_t nbytes;                /* n_elems / block * type size */
} gguf_tensor;

typedef struct gguf_file {
    char *path;                   /* owned; the name used in messages */
    mapped_file map;              /* when opened from a path */
    const unsigned char *base;    /* [size] the file's bytes */
    uint64_t size;
    uint32_t version;             /* 2 or 3 */
    uint32_t alignment;           /* general.alignment or 32 */
    gguf_kv *kvs;                 /* [n_kv] in file order */
    const gguf_kv **kv_by_key;    /* [n_kv] the same pairs sorted by key */
    int n_kv;
    gguf_tensor *tensors;         /* [n_tensors] sorted by name */
    int n_tensors;
    uint64_t data_offset;         /* file offset of the data section */
    /* storage behind the pointers above */
    char *arena;                  /* every key, name and string value, NUL-terminated */
    const char **strv;            /* all string values, kvs[i].strs point in here */
    uint64_t *lenv;
} gguf_file;

/* Open and check a GGUF file (mmap'd; tensor data stays in the mapping). */
int gguf_open(gguf_file *g, const char *path, moe_err *err);
/* The same for a model's weights: read into huge pages when the file fits
 * in memory (base/mapfile.h, mapped_open_weights). */
int gguf_open_weights(gguf_file *g, const char *path, moe_err *err);

/* The same over bytes already in memory (the fuzzer, tests). The buffer is
 * not copied and must outlive g; name is used in messages. */
int gguf_open_mem(gguf_file *g, const void *data, size_t size, const char *name,
                  moe_err *err);

void gguf_close(gguf_file *g);

/* Lookup by exact name / key; NULL if absent. O(log n). */
const gguf_tensor *gguf_find(const gguf_file *g, const char *name);
const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key);

/* Typed getters: 0 and *out set, or -1 with a message naming the key when it
 * is missing ("missing") or of another type ("wrong type"). */
int gguf_get_u8(const gguf_file *g, const char *key, uint8_t *out, moe_err *err);
int gguf_get_i8(const gguf_file *g, const char *key, int8_t *out, moe_err *err);
int gguf_get_u16(const gguf_file *g, const char *key, uint16_t *out, moe_err *err);
int gguf_get_i16(const gguf_file *g, const char *key, int16_t *out, moe_err *err);
int gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out, moe_err *err);
int gguf_get_i32(const gguf_file *g, const char *key, int32_t *out, moe_err *err);
int gguf_get_u64(const gguf_file *g, const char *key, uint64_t *out, moe_err *err);
int gguf_get_i64(const gguf_file *g, const char *key, int64_t *out, moe_err *err);
int gguf_get_f32(const gguf_file *g, const char *key, float *out, moe_err *err);
int gguf_get_f64(const gguf_file *g, const char *key, double *out, moe_err *err);
int gguf_get_bool(const gguf_file *g, const char *key, bool *out, moe_err *err);
/* *out stays valid until gguf_close; len (may be NULL) gets its byte length. */
int gguf_get_str(const gguf_file *g, const char *key, const char **out, uint64_t *len,
                 moe_err *err);
/* Lenient forms for converters that disagree on widths: any integer type
 * (a U64 above INT64_MAX is refused), any float type. */
int gguf_get_int(const gguf_file *g, const char *key, int64_t *out, moe_err *err);
int gguf_get_float(const gguf_file *g, const char *key, double *out, moe_err *err);
/* An array whose elements are of type elem (GGUF_VT_COUNT: any). */
int gguf_get_arr(const gguf_file *g, const char *key, int elem, gguf_arr *out, moe_err *err);

/* Element i (< a->n) of an integer or bool array, of a float (or integer) array, of a
 * string array. The caller checks the element type first. */
int64_t gguf_arr_int(const gguf_arr *a, uint64_t i);
double gguf_arr_float(const gguf_arr *a, uint64_t i);
const char *gguf_arr_str(const gguf_arr *a, uint64_t i);
/* Copy a scalar array into dst (a->n * gguf_vtype_size(a->type) bytes,
 * aligned for the type). Returns -1 for a string array. */
int gguf_arr_copy(const gguf_arr *a, void *dst);

/* ----------------------------------------------------------------- writer */

/* One metadata pair to write. Build it with the gguf_w* helpers below. */
typedef struct gguf_wkv {
    const char *key;
    gguf_vtype type;          /* a scalar type, STR or ARR */
    gguf_vtype arr_type;      /* element type when type == ARR (not ARR) */
    union {
        uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
        uint64_t u64; int64_t i64; float f32; double f64; bool b;
    } v;                      /* scalar value */
    const char *str;          /* STR value */
    const void *arr;          /* ARR of scalars: [n] elements of arr_type in memory (bool: 1 byte) */
    const char *const *strs;  /* ARR of STR: [n] strings */
    const uint64_t *lens;     /* NULL: strings are NUL-terminated; else [n] (or [1]) byte lengths */
    uint64_t n;               /* ARR: element count (0 allowed) */
} gguf_wkv;

#define GGUF_WKV_SCALAR(fn, ctype, vt, field)                                        \
    static inline gguf_wkv fn(const char *key, ctype x) {                             \
        gguf_wkv kv = {.key = key, .type = vt};                                       \
        kv.v.field = x;                                                              \
        return kv;                                                                   \
    }
GGUF_WKV_SCALAR(gguf_wu8, uint8_t, GGUF_VT_U8, u8)
GGUF_WKV_SCALAR(gguf_wi8, int8_t, GGUF_VT_I8, i8)
GGUF_WKV_SCALAR(gguf_wu16, uint16_t, GGUF_VT_U16, u16)
GGUF_WKV_SCALAR(gguf_wi16, int16_t, GGUF_VT_I16, i16)
GGUF_WKV_SCALAR(gguf_wu32, uint32_t, GGUF_VT_U32, u32)
GGUF_WKV_SCALAR(gguf_wi32, int32_t, GGUF_VT_I32, i32)
GGUF_WKV_SCALAR(gguf_wu64, uint64_t, GGUF_VT_U64, u64)
GGUF_WKV_SCALAR(gguf_wi64, int64_t, GGUF_VT_I64, i64)
GGUF_WKV_SCALAR(gguf_wf32, float, GGUF_VT_F32, f32)
GGUF_WKV_SCALAR(gguf_wf64, double, GGUF_VT_F64, f64)
GGUF_WKV_SCALAR(gguf_wbool, bool, GGUF_VT_BOOL, b)
#undef GGUF_WKV_SCALAR

static inline gguf_wkv gguf_wstr(const char *key, const char *s) {
    gguf_wkv kv = {.key = key, .type = GGUF_VT_STR, .str = s};
    return kv;
}
/* n elements of scalar type elem at p. */
static inline gguf_wkv gguf_warr(const char *key, gguf_vtype elem, const void *p, uint64_t n) {
    gguf_wkv kv = {.key = key, .type = GGUF_VT_ARR, .arr_type = elem, .arr = p, .n = n};
    return kv;
}
/* n strings (lens NULL: NUL-terminated). */
static inline gguf_wkv gguf_wstrs(const char *key, const char *const *s, const uint64_t *lens,
                                  uint64_t n) {
    gguf_wkv kv = {.key = key, .type = GGUF_VT_ARR, .arr_type = GGUF_VT_STR, .strs = s,
                   .lens = lens, .n = n};
    return kv;
}

typedef struct gguf_wtensor {
    const char *name;
    gguf_type type;
    int n_dims;                 /* 1..4 */
    int64_t ne[GGUF_MAX_DIMS];  /* ne[0] fastest (row length), a multiple of the block */
    const void *data;           /* gguf_write: the tensor's bytes; unused by the stream */
} gguf_wtensor;

/* Bytes of a tensor of `type` with n_dims sizes ne (ne[0] fastest); -1 if
 * the sizes are not valid for the type (the writer's own check). */
int64_t gguf_nbytes(gguf_type type, int n_dims, const int64_t *ne);

/* Write metadata and tensors to path atomically. The alignment is
 * general.alignment when kv holds it (a U32 power of two), else 32. */
int gguf_write(const char *path, const gguf_wkv *kv, int n_kv, const gguf_wtensor *t, int n,
               moe_err *err);

/* The same without holding the tensors in memory: begin writes the header
 * (everything but the data is known up front), then gguf_stream_write
 * appends the tensors' bytes in order, in chunks of any size (padding
 * between tensors is added here), and finish syncs and moves the file into
 * place. t must outlive the stream (its data fields are ignored); kv is
 * used only during begin. */
typedef struct gguf_stream {
    FILE *f;
    char *path, *tmp;         /* owned */
    const gguf_wtensor *t;    /* [n] the layout */
    int64_t *nbytes;          /* [n] each tensor's size, owned */
    int n;                    /* tensors */
    int cur;                  /* tensor being written */
    uint64_t cur_left;        /* its bytes still to come */
    uint32_t alignment;
    uint64_t pos;             /* bytes written so far */
} gguf_stream;

int gguf_stream_begin(gguf_stream *w, const char *path, const gguf_wkv *kv, int n_kv,
                      const gguf_wtensor *t, int n, moe_err *err);
int gguf_stream_write(gguf_stream *w, const void *data, size_t nbytes, moe_err *err);
int gguf_stream_finish(gguf_stream *w, moe_err *err);
/* Give up: close and remove the temporary file. Safe after finish. */
void gguf_stream_abort(gguf_stream *w);

#endif
