/*
 * test_gguf_bad.c - every class of malformed GGUF file, built byte by byte in
 * the test's temporary directory and refused by the reader (src/formats/gguf.c)
 * from a file and from memory, each with a message naming the file and the
 * problem; and the unusual but valid layouts it must still accept.
 */
#include "test.h"
#include "formats/gguf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

static const char *tpath(const char *name) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", test_tmpdir(), name);
    return buf[k];
}

/* Bytes of a hand-made file. */
typedef struct bb {
    unsigned char *p;
    size_t n, cap;
} bb;

static void bb_raw(bb *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void bb_u8(bb *b, uint8_t v) { bb_raw(b, &v, 1); }
static void bb_u32(bb *b, uint32_t v) { bb_raw(b, &v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_raw(b, &v, 8); }
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_raw(b, s, strlen(s));
}
static void bb_zeros(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) bb_u8(b, 0);
}
static void bb_pad(bb *b, size_t align) {
    while (b->n % align) bb_u8(b, 0);
}
static void bb_head(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_raw(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, GGUF_VT_U32);
    bb_u32(b, v);
}
/* A tensor info with up to 4 dims. */
static void bb_ti(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                  uint64_t offset) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, offset);
}

/* One tensor, no pairs: header, info, padding to 32, data_bytes of data. */
static void one_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                       uint32_t type, uint64_t offset, size_t data_bytes) {
    bb_head(b, 3, 1, 0);
    bb_ti(b, name, n_dims, ne, type, offset);
    bb_pad(b, 32);
    bb_zeros(b, data_bytes);
}

/* The bytes must be refused, from a file and from memory, with a message
 * containing needle and naming the file. */
static void expect_bad(bb *b, const char *needle, int line) {
    const char *p = tpath("bad.gguf");
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    if (!f) return;
    if (b->n) fwrite(b->p, 1, b->n, f);
    fclose(f);
    gguf_file g;
    moe_err err = {{0}};
    int rc = gguf_open(&g, p, &err);
    CHECK_MSG(rc == -1, "line %d: malformed file accepted (wanted \"%s\")", line, needle);
    if (rc == 0) gguf_close(&g);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: \"%s\" does not contain \"%s\"", line,
              err.msg, needle);
    CHECK_MSG(strstr(err.msg, "bad.gguf") != NULL, "line %d: \"%s\" does not name the file",
              line, err.msg);
    CHECK(g.kvs == NULL && g.tensors == NULL && g.n_kv == 0 && g.path == NULL);
    /* the same from an exactly-sized heap copy (ASan sees any overread) */
    unsigned char *copy = malloc(b->n + 1);
    if (b->n) memcpy(copy, b->p, b->n);
    moe_err err2 = {{0}};
    rc = gguf_open_mem(&g, copy, b->n, "mem.gguf", &err2);
    CHECK_MSG(rc == -1, "line %d: accepted from memory", line);
    if (rc == 0) gguf_close(&g);
    CHECK_MSG(strstr(err2.msg, needle) != NULL, "line %d: \"%s\" (memory) lacks \"%s\"", line,
              err2.msg, needle);
    free(copy);
    free(b->p);
    memset(b, 0, sizeof *b);
}
#define BAD(b, needle) expect_bad(b, needle, __LINE__)

/* The bytes must be accepted; returns 0 and an open g (from memory, b kept). */
static int open_good(bb *b, gguf_file *g, int line) {
    moe_err err = {{0}};
    int rc = gguf_open_mem(g, b->p, b->n, "good.gguf", &err);
    CHECK_MSG(rc == 0, "line %d: valid file refused: %s", line, err.msg);
    return rc;
}

/* -------------------------------------------------------- malformed files */

TEST(gguf_bad_header) {
    bb b = {0};
    BAD(&b, "too short");
    bb_raw(&b, "GGUF", 4);
    bb_u32(&b, 3);
    BAD(&b, "too short");
    bb_head(&b, 3, 0, 0);
    b.p[0] = 'X';
    BAD(&b, "bad magic");
    bb_head(&b, 1, 0, 0);
    BAD(&b, "unsupported version 1");
    bb_head(&b, 4, 0, 0);
    BAD(&b, "unsupported version 4");
    bb_head(&b, 0x03000000, 0, 0);
    BAD(&b, "big-endian");
    bb_head(&b, 2, 0, 0); /* version 2 is fine */
    gguf_file g;
    if (open_good(&b, &g, __LINE__) == 0) {
        CHECK(g.version == 2 && g.n_kv == 0 && g.n_tensors == 0);
        gguf_close(&g);
    }
    free(b.p);
}

TEST(gguf_bad_counts) {
    bb b = {0};
    bb_head(&b, 3, 0, 1000);
    bb_zeros(&b, 100);
    BAD(&b, "kv count 1000 cannot fit");
    bb_head(&b, 3, 0, UINT64_MAX);
    BAD(&b, "cannot fit");
    bb_head(&b, 3, (uint64_t)1 << 62, 0);
    bb_zeros(&b, 64);
    BAD(&b, "tensor count 4611686018427387904 cannot fit");
    bb_head(&b, 3, 3, 5); /* each fits alone, not both: 5*14 + 3*33 > 120 */
    bb_zeros(&b, 120);
    BAD(&b, "cannot fit");
}

TEST(gguf_bad_strings_and_arrays) {
    bb b = {0};
    /* key length past the end */
    bb_head(&b, 3, 0, 1);
    bb_u64(&b, 1000);
    bb_zeros(&b, 20);
    BAD(&b, "key length 1000 at offset 24 runs past the end of the file");
    bb_head(&b, 3, 0, 1);
    bb_u64(&b, UINT64_MAX);
    bb_zeros(&b, 20);
    BAD(&b, "past the end");
    /* string value length past the end */
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_VT_STR);
    bb_u64(&b, 50);
    bb_zeros(&b, 10);
    BAD(&b, "key \"k\": string length 50");
    /* scalar cut short */
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_VT_U64);
    bb_zeros(&b, 4);
    BAD(&b, "value needs 8 bytes");
    /* array of u32 past the end, and one whose byte size would overflow */
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_VT_ARR);
    bb_u32(&b, GGUF_VT_U32);
    bb_u64(&b, 100);
    bb_zeros(&b, 16);
    BAD(&b, "array of 100 u32 (4 bytes each) runs past the end");
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_VT_ARR);
    bb_u32(&b, GGUF_VT_F64);
    bb_u64(&b, (uint64_t)1 << 61); /* * 8 wraps to 0 */
    bb_zeros(&b, 16);
    BAD(&b, "past the end");
    /* string array claiming more strings than bytes */
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_VT_ARR);
    bb_u32(&b, GGUF_VT_STR);
    bb_u64(&b, 1000000);
    bb_zeros(&b, 64);
    BAD(&b, "array of 1000000 strings cannot fit");
    /* one string of the array past the end */
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_VT_ARR);
    bb_u32(&b, GGUF_VT_STR);
    bb_u64(&b, 2);
    bb_str(&b, "ok");
    bb_u64(&b, 99);
    bb_zeros(&b, 8);
    BAD(&b, "array string length 99");
}

TEST(gguf_bad_values) {
    bb b = {0};
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, 13);
    bb_zeros(&b, 8);
    BAD(&b, "unknown value type 13");
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_VT_ARR);
    bb_u32(&b, GGUF_VT_ARR);
    bb_u64(&b, 1);
    bb_zeros(&b, 16);
    BAD(&b, "nested array");
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_VT_ARR);
    bb_u32(&b, 200);
    bb_u64(&b, 1);
    bb_zeros(&b, 16);
    BAD(&b, "unknown array element type 200");
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_VT_BOOL);
    bb_u8(&b, 2);
    BAD(&b, "bool value 2");
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_VT_ARR);
    bb_u32(&b, GGUF_VT_BOOL);
    bb_u64(&b, 3);
    bb_u8(&b, 1);
    bb_u8(&b, 0);
    bb_u8(&b, 255);
    BAD(&b, "bool value 255 (must be 0 or 1) at element 2");
    /* keys: empty, with a NUL, twice */
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "");
    bb_u32(&b, GGUF_VT_U8);
    bb_u8(&b, 1);
    bb_zeros(&b, 8);
    BAD(&b, "empty key");
    bb_head(&b, 3, 0, 1);
    bb_u64(&b, 3);
    bb_raw(&b, "a\0b", 3);
    bb_u32(&b, GGUF_VT_U8);
    bb_u8(&b, 1);
    bb_zeros(&b, 8);
    BAD(&b, "key contains a NUL byte");
    bb_head(&b, 3, 0, 3);
    bb_kv_u32(&b, "a.b", 1);
    bb_kv_u32(&b, "c", 2);
    bb_kv_u32(&b, "a.b", 3);
    BAD(&b, "duplicate key \"a.b\"");
}

TEST(gguf_bad_alignment) {
    bb b = {0};
    uint32_t bad[] = {0, 3, 48, 0x80000001u};
    for (int i = 0; i < 4; i++) {
        bb_head(&b, 3, 0, 1);
        bb_kv_u32(&b, "general.alignment", bad[i]);
        BAD(&b, "is not a power of two");
    }
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, GGUF_VT_U64);
    bb_u64(&b, 32);
    BAD(&b, "must be u32");
    /* a good one is used for the data section and the offsets */
    uint64_t ne[1] = {4};
    bb_head(&b, 3, 1, 1);
    bb_kv_u32(&b, "general.alignment", 128);
    bb_ti(&b, "w", 1, ne, GGUF_TYPE_F32, 0);
    bb_pad(&b, 128);
    bb_zeros(&b, 16);
    gguf_file g;
    if (open_good(&b, &g, __LINE__) == 0) {
        CHECK(g.alignment == 128 && g.data_offset == 128 && g.tensors[0].data == b.p + 128);
        gguf_close(&g);
    }
    free(b.p);
    memset(&b, 0, sizeof b);
    bb_head(&b, 3, 1, 1);
    bb_kv_u32(&b, "general.alignment", 128);
    bb_ti(&b, "w", 1, ne, GGUF_TYPE_F32, 32); /* aligned to 32 but not to 128 */
    bb_pad(&b, 128);
    bb_zeros(&b, 64);
    BAD(&b, "offset 32 is not a multiple of the alignment 128 (not aligned)");
}

TEST(gguf_bad_tensor_infos) {
    bb b = {0};
    uint64_t ne[5] = {4, 2, 1, 1, 1};
    one_tensor(&b, "w", 0, ne, GGUF_TYPE_F32, 0, 32);
    BAD(&b, "tensor \"w\": n_dims 0 (must be 1..4)");
    one_tensor(&b, "w", 5, ne, GGUF_TYPE_F32, 0, 32);
    BAD(&b, "n_dims 5");
    uint64_t zero[2] = {4, 0};
    one_tensor(&b, "w", 2, zero, GGUF_TYPE_F32, 0, 32);
    BAD(&b, "dim 1 is 0 (must be > 0)");
    uint64_t neg[2] = {4, (uint64_t)-3};
    one_tensor(&b, "w", 2, neg, GGUF_TYPE_F32, 0, 32);
    BAD(&b, "dim 1 is -3");
    uint64_t huge[3] = {(uint64_t)1 << 32, (uint64_t)1 << 31, 2};
    one_tensor(&b, "w", 3, huge, GGUF_TYPE_F32, 0, 32);
    BAD(&b, "element count overflows int64");
    uint64_t big[1] = {(uint64_t)1 << 61};
    one_tensor(&b, "w", 1, big, GGUF_TYPE_F32, 0, 32);
    BAD(&b, "byte size overflows");
    one_tensor(&b, "w", 2, ne, 99, 0, 32);
    BAD(&b, "tensor \"w\": unknown type 99");
    one_tensor(&b, "w", 2, ne, 35, 0, 32);
    BAD(&b, "unsupported type TQ2_0 (35)");
    one_tensor(&b, "w", 2, ne, 34, 0, 32);
    BAD(&b, "unsupported type TQ1_0");
    uint64_t q[2] = {33, 1};
    one_tensor(&b, "w", 2, q, GGUF_TYPE_Q8_0, 0, 64);
    BAD(&b, "ne[0] = 33 is not a multiple of the block size 32 of Q8_0");
    uint64_t qk[2] = {128, 4};
    one_tensor(&b, "w", 2, qk, GGUF_TYPE_Q6_K, 0, 1024);
    BAD(&b, "block size 256 of Q6_K");
    one_tensor(&b, "", 2, ne, GGUF_TYPE_F32, 0, 32);
    BAD(&b, "tensor 0: empty tensor name");
    bb_head(&b, 3, 1, 0);
    bb_u64(&b, 2);
    bb_raw(&b, "w\0", 2);
    bb_u32(&b, 1);
    bb_u64(&b, 4);
    bb_u32(&b, GGUF_TYPE_F32);
    bb_u64(&b, 0);
    bb_pad(&b, 32);
    bb_zeros(&b, 16);
    BAD(&b, "tensor name contains a NUL byte");
    one_tensor(&b, "w", 2, ne, GGUF_TYPE_F32, 0, 32);
    b.n = 60; /* cut inside the tensor info (bytes 24..65): in its offset */
    BAD(&b, "past the end of the file");
}

TEST(gguf_bad_tensor_data) {
    bb b = {0};
    uint64_t ne[2] = {4, 2}; /* 32 bytes of F32 */
    one_tensor(&b, "w", 2, ne, GGUF_TYPE_F32, 7, 64);
    BAD(&b, "offset 7 is not a multiple of the alignment 32");
    one_tensor(&b, "w", 2, ne, GGUF_TYPE_F32, 0, 31);
    BAD(&b, "tensor \"w\": data [0, +32) runs past the end of the file (data section holds 31");
    one_tensor(&b, "w", 2, ne, GGUF_TYPE_F32, 32, 32);
    BAD(&b, "runs past the end");
    one_tensor(&b, "w", 2, ne, GGUF_TYPE_F32, (uint64_t)-32, 32);
    BAD(&b, "runs past the end");
    /* the data section itself (its padding) starts past the end */
    bb_head(&b, 3, 1, 0);
    bb_ti(&b, "w", 1, ne, GGUF_TYPE_F32, 0);
    BAD(&b, "data section at offset");
    /* overlap, in either order */
    bb_head(&b, 3, 2, 0);
    bb_ti(&b, "a", 2, ne, GGUF_TYPE_F32, 0);
    uint64_t ne2[1] = {16}; /* 64 bytes */
    bb_ti(&b, "b", 1, ne2, GGUF_TYPE_F32, 0);
    bb_pad(&b, 32);
    bb_zeros(&b, 64);
    BAD(&b, "overlaps tensor");
    bb_head(&b, 3, 2, 0);
    bb_ti(&b, "a", 1, ne2, GGUF_TYPE_F32, 32); /* [32, 96) */
    bb_ti(&b, "b", 1, ne2, GGUF_TYPE_F32, 0);  /* [0, 64) */
    bb_pad(&b, 32);
    bb_zeros(&b, 96);
    BAD(&b, "tensor \"a\" [32, 96) overlaps tensor \"b\" [0, 64)");
    /* the same name twice (not overlapping) */
    bb_head(&b, 3, 2, 0);
    bb_ti(&b, "w", 2, ne, GGUF_TYPE_F32, 0);
    bb_ti(&b, "w", 2, ne, GGUF_TYPE_F32, 32);
    bb_pad(&b, 32);
    bb_zeros(&b, 64);
    BAD(&b, "duplicate tensor name \"w\"");
    /* data misaligned in memory for its type (alignment 1 allows odd offsets) */
    bb_head(&b, 3, 1, 1);
    bb_kv_u32(&b, "general.alignment", 1);
    bb_ti(&b, "w", 2, ne, GGUF_TYPE_F32, 1);
    bb_zeros(&b, 40); /* the data section starts at byte 98: w's data at 99 */
    BAD(&b, "misaligned for F32");
}

/* Out of order offsets and gaps are accepted (only overlap is an error). */
TEST(gguf_out_of_order_offsets_accepted) {
    bb b = {0};
    uint64_t ne[1] = {8}; /* 32 bytes */
    bb_head(&b, 3, 3, 0);
    bb_ti(&b, "c", 1, ne, GGUF_TYPE_F32, 128);
    bb_ti(&b, "a", 1, ne, GGUF_TYPE_F32, 0);
    bb_ti(&b, "b", 1, ne, GGUF_TYPE_F32, 32);
    bb_pad(&b, 32);
    size_t data = b.n;
    for (int i = 0; i < 160; i++) bb_u8(&b, (uint8_t)i);
    gguf_file g;
    if (open_good(&b, &g, __LINE__) == 0) {
        CHECK(!strcmp(g.tensors[0].name, "a") && !strcmp(g.tensors[2].name, "c"));
        const gguf_tensor *c = gguf_find(&g, "c");
        CHECK(c && c->data == b.p + data + 128 && ((const uint8_t *)c->data)[0] == 128);
        gguf_close(&g);
    }
    free(b.p);
}
