/*
 * test_gguf.c - the GGUF reader and writer (src/formats/gguf.h): round trips
 * of every value type and every tensor type, the streaming writer and what it
 * refuses, the real ggml vocab file (tests/fixtures/gguf/ggml-vocab-llama-spm.gguf),
 * a file written by the Python gguf package checked against that package's
 * own reading of it (py_all_types.gguf/.txt, from tools/gguf_crosscheck.py),
 * and every truncation of a valid file. Malformed files built byte by byte
 * are in test_gguf_bad.c.
 */
#include "test.h"
#include "formats/gguf.h"
#include "gguf_canon.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

static const char *tpath(const char *name) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", test_tmpdir(), name);
    return buf[k];
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)sz + 1);
    *n = fread(p, 1, (size_t)sz, f);
    fclose(f);
    return p;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

/* ------------------------------------------------------------ type table */

TEST(gguf_type_table) {
    /* ggml-common.h: block_q4_0 {f16 d; u8 qs[16]}, block_q8_0 {f16 d; i8 qs[32]},
     * block_q4_K {f16 d, dmin; u8 scales[12], qs[128]}, block_q5_K (+ qh[32]),
     * block_q6_K {u8 ql[128], qh[64]; i8 scales[16]; f16 d} */
    struct { int t, block, size; const char *name; } want[] = {
        {0, 1, 4, "F32"},     {1, 1, 2, "F16"},      {2, 32, 18, "Q4_0"},  {8, 32, 34, "Q8_0"},
        {12, 256, 144, "Q4_K"}, {13, 256, 176, "Q5_K"}, {14, 256, 210, "Q6_K"}, {30, 1, 2, "BF16"},
        {39, 32, 17, "MXFP4"}, /* block_mxfp4 {u8 e; u8 qs[16]} */
        {3, 32, 20, "Q4_1"},   /* {f16 d, m; u8 qs[16]} */
        {6, 32, 22, "Q5_0"},   /* {f16 d; u8 qh[4], qs[16]} */
        {7, 32, 24, "Q5_1"},   /* {f16 d, m; u8 qh[4], qs[16]} */
        {10, 256, 84, "Q2_K"}, /* {u8 scales[16], qs[64]; f16 d, dmin} */
        {11, 256, 110, "Q3_K"}, /* {u8 hmask[32], qs[64], scales[12]; f16 d} */
        {20, 32, 18, "IQ4_NL"}, /* {f16 d; u8 qs[16]} */
        {23, 256, 136, "IQ4_XS"}, /* {f16 d; u16 scales_h; u8 scales_l[4], qs[128]} */
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK_EQ_INT(gguf_type_block(want[i].t), want[i].block);
        CHECK_EQ_INT(gguf_type_size(want[i].t), want[i].size);
        CHECK(!strcmp(gguf_type_name(want[i].t), want[i].name));
    }
    CHECK_EQ_INT(gguf_type_block(35), 0); /* TQ2_0: a ggml type we do not take */
    CHECK(!strcmp(gguf_type_name(35), "TQ2_0"));
    CHECK(gguf_type_name(4) == NULL && gguf_type_name(-1) == NULL && gguf_type_name(1000) == NULL);
    CHECK_EQ_INT(gguf_type_size(99), 0);
    int64_t ne[4] = {512, 3, 1, 1};
    CHECK_EQ_INT(gguf_nbytes(GGUF_TYPE_Q4_K, 2, ne), 2 * 3 * 144);
    ne[0] = 100;
    CHECK_EQ_INT(gguf_nbytes(GGUF_TYPE_Q4_K, 2, ne), -1);
    CHECK_EQ_INT(gguf_nbytes(GGUF_TYPE_F32, 2, ne), 1200);
    CHECK_EQ_INT(gguf_vtype_size(GGUF_VT_F64), 8);
    CHECK_EQ_INT(gguf_vtype_size(GGUF_VT_STR), 0);
    CHECK(!strcmp(gguf_vtype_name(GGUF_VT_BOOL), "bool") && !strcmp(gguf_vtype_name(77), "?"));
}

/* ------------------------------------------------------------ round trip */

static const gguf_type all_types[8] = {GGUF_TYPE_F32,  GGUF_TYPE_F16,  GGUF_TYPE_BF16,
                                       GGUF_TYPE_Q4_0, GGUF_TYPE_Q8_0, GGUF_TYPE_Q4_K,
                                       GGUF_TYPE_Q5_K, GGUF_TYPE_Q6_K};

/* Eight tensors, one of each type, 1..4 dims, deterministic bytes in *buf. */
static void make_tensors(gguf_wtensor *t, char names[][32], unsigned char **buf) {
    size_t total = 0, nb[8];
    for (int i = 0; i < 8; i++) {
        int block = gguf_type_block(all_types[i]);
        snprintf(names[i], 32, "w%d.%s", 7 - i, gguf_type_name(all_types[i]));
        t[i] = (gguf_wtensor){.name = names[i], .type = all_types[i], .n_dims = 1 + i % 4};
        int64_t dims[4] = {block * (block == 1 ? 3 : 2), 2, 3, 2};
        for (int d = 0; d < 4; d++) t[i].ne[d] = d < t[i].n_dims ? dims[d] : 1;
        nb[i] = (size_t)gguf_nbytes(t[i].type, t[i].n_dims, t[i].ne);
        total += nb[i];
    }
    *buf = malloc(total);
    uint32_t x = 12345;
    for (size_t i = 0; i < total; i++) {
        x = x * 1103515245u + 12345u;
        (*buf)[i] = (unsigned char)(x >> 16);
    }
    unsigned char *p = *buf;
    for (int i = 0; i < 8; i++) {
        t[i].data = p;
        p += nb[i];
    }
}

static const uint8_t a_u8[] = {0, 1, 255};
static const int8_t a_i8[] = {-128, 0, 127};
static const uint16_t a_u16[] = {0, 65535};
static const int16_t a_i16[] = {-32768, 32767};
static const uint32_t a_u32[] = {7, 4294967295u};
static const int32_t a_i32[] = {-2147483647 - 1, 5, 2147483647};
static const float a_f32[] = {0.5f, -1.25f, 1e30f};
static const bool a_bool[] = {true, false, true};
static const uint64_t a_u64[] = {18446744073709551615ull};
static const int64_t a_i64[] = {-9223372036854775807ll - 1, 9223372036854775807ll};
static const double a_f64[] = {1e-300, -0.0, 3.5};
static const char *const a_str[] = {"<unk>", "", "a\0b", "\xe2\x96\x81the"};
static const uint64_t a_str_len[] = {5, 0, 3, 6};
static const uint64_t nul_len[] = {7};

static int make_kvs(gguf_wkv *kv, uint32_t align) {
    int n = 0;
    kv[n++] = gguf_wstr("general.architecture", "qwen3moe");
    if (align) kv[n++] = gguf_wu32("general.alignment", align);
    kv[n++] = gguf_wu8("s.u8", 255);
    kv[n++] = gguf_wi8("s.i8", -128);
    kv[n++] = gguf_wu16("s.u16", 65535);
    kv[n++] = gguf_wi16("s.i16", -32768);
    kv[n++] = gguf_wu32("s.u32", 4294967295u);
    kv[n++] = gguf_wi32("s.i32", -2147483647 - 1);
    kv[n++] = gguf_wf32("s.f32", 1e-6f);
    kv[n++] = gguf_wbool("s.bool", true);
    kv[n++] = gguf_wbool("s.false", false);
    kv[n++] = gguf_wu64("s.u64", 18446744073709551615ull);
    kv[n++] = gguf_wi64("s.i64", -9223372036854775807ll - 1);
    kv[n++] = gguf_wf64("s.f64", 2.718281828459045);
    kv[n++] = gguf_wstr("s.str", "h\xc3\xa9llo");
    gguf_wkv nul = gguf_wstr("s.nul", "ab\0cdef");
    nul.lens = nul_len;
    kv[n++] = nul;
    kv[n++] = gguf_warr("a.u8", GGUF_VT_U8, a_u8, 3);
    kv[n++] = gguf_warr("a.i8", GGUF_VT_I8, a_i8, 3);
    kv[n++] = gguf_warr("a.u16", GGUF_VT_U16, a_u16, 2);
    kv[n++] = gguf_warr("a.i16", GGUF_VT_I16, a_i16, 2);
    kv[n++] = gguf_warr("a.u32", GGUF_VT_U32, a_u32, 2);
    kv[n++] = gguf_warr("a.i32", GGUF_VT_I32, a_i32, 3);
    kv[n++] = gguf_warr("a.f32", GGUF_VT_F32, a_f32, 3);
    kv[n++] = gguf_warr("a.bool", GGUF_VT_BOOL, a_bool, 3);
    kv[n++] = gguf_warr("a.u64", GGUF_VT_U64, a_u64, 1);
    kv[n++] = gguf_warr("a.i64", GGUF_VT_I64, a_i64, 2);
    kv[n++] = gguf_warr("a.f64", GGUF_VT_F64, a_f64, 3);
    kv[n++] = gguf_wstrs("a.str", a_str, a_str_len, 4);
    kv[n++] = gguf_warr("a.empty", GGUF_VT_F32, NULL, 0);
    return n;
}

static void check_values(const gguf_file *g) {
    moe_err err = {{0}};
    uint8_t u8 = 0; int8_t i8 = 0; uint16_t u16 = 0; int16_t i16 = 0; uint32_t u32 = 0;
    int32_t i32 = 0; uint64_t u64 = 0; int64_t i64 = 0; float f32 = 0; double f64 = 0;
    bool b = false;
    const char *s = NULL;
    uint64_t len = 0;
    CHECK(gguf_get_u8(g, "s.u8", &u8, &err) == 0 && u8 == 255);
    CHECK(gguf_get_i8(g, "s.i8", &i8, &err) == 0 && i8 == -128);
    CHECK(gguf_get_u16(g, "s.u16", &u16, &err) == 0 && u16 == 65535);
    CHECK(gguf_get_i16(g, "s.i16", &i16, &err) == 0 && i16 == -32768);
    CHECK(gguf_get_u32(g, "s.u32", &u32, &err) == 0 && u32 == 4294967295u);
    CHECK(gguf_get_i32(g, "s.i32", &i32, &err) == 0 && i32 == -2147483647 - 1);
    CHECK(gguf_get_f32(g, "s.f32", &f32, &err) == 0 && f32 == 1e-6f);
    CHECK(gguf_get_bool(g, "s.bool", &b, &err) == 0 && b);
    CHECK(gguf_get_bool(g, "s.false", &b, &err) == 0 && !b);
    CHECK(gguf_get_u64(g, "s.u64", &u64, &err) == 0 && u64 == 18446744073709551615ull);
    CHECK(gguf_get_i64(g, "s.i64", &i64, &err) == 0 && i64 == -9223372036854775807ll - 1);
    CHECK(gguf_get_f64(g, "s.f64", &f64, &err) == 0 && f64 == 2.718281828459045);
    CHECK(gguf_get_str(g, "general.architecture", &s, &len, &err) == 0 && !strcmp(s, "qwen3moe"));
    CHECK(gguf_get_str(g, "s.str", &s, NULL, &err) == 0 && !strcmp(s, "h\xc3\xa9llo"));
    CHECK(gguf_get_str(g, "s.nul", &s, &len, &err) == 0 && len == 7 && !memcmp(s, "ab\0cdef", 8));

    /* lenient forms */
    CHECK(gguf_get_int(g, "s.u8", &i64, &err) == 0 && i64 == 255);
    CHECK(gguf_get_int(g, "s.i32", &i64, &err) == 0 && i64 == -2147483647 - 1);
    CHECK(gguf_get_int(g, "s.u32", &i64, &err) == 0 && i64 == 4294967295ll);
    CHECK_EQ_INT(gguf_get_int(g, "s.u64", &i64, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "does not fit");
    CHECK_EQ_INT(gguf_get_int(g, "s.str", &i64, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "wrong type");
    CHECK(gguf_get_float(g, "s.f32", &f64, &err) == 0 && f64 == (double)1e-6f);
    CHECK(gguf_get_float(g, "s.f64", &f64, &err) == 0 && f64 == 2.718281828459045);
    CHECK_EQ_INT(gguf_get_float(g, "s.u8", &f64, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "wrong type");

    /* errors name the key */
    CHECK_EQ_INT(gguf_get_u32(g, "no.such.key", &u32, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "\"no.such.key\": missing");
    CHECK_EQ_INT(gguf_get_u32(g, "s.i32", &u32, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "\"s.i32\": is i32, not u32 (wrong type)");
    CHECK_EQ_INT(gguf_get_str(g, "a.str", &s, &len, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "wrong type");

    /* arrays */
    gguf_arr a;
    CHECK(gguf_get_arr(g, "a.u8", GGUF_VT_U8, &a, &err) == 0 && a.n == 3 &&
          gguf_arr_int(&a, 2) == 255);
    CHECK(gguf_get_arr(g, "a.i8", GGUF_VT_I8, &a, &err) == 0 && gguf_arr_int(&a, 0) == -128);
    CHECK(gguf_get_arr(g, "a.u16", GGUF_VT_U16, &a, &err) == 0 && gguf_arr_int(&a, 1) == 65535);
    CHECK(gguf_get_arr(g, "a.i16", GGUF_VT_I16, &a, &err) == 0 && gguf_arr_int(&a, 0) == -32768);
    CHECK(gguf_get_arr(g, "a.u32", GGUF_VT_U32, &a, &err) == 0 &&
          gguf_arr_int(&a, 1) == 4294967295ll);
    CHECK(gguf_get_arr(g, "a.i32", GGUF_VT_I32, &a, &err) == 0 && a.n == 3);
    int32_t i32s[3] = {0};
    CHECK(gguf_arr_copy(&a, i32s) == 0 && !memcmp(i32s, a_i32, sizeof i32s));
    CHECK(gguf_get_arr(g, "a.f32", GGUF_VT_F32, &a, &err) == 0 &&
          gguf_arr_float(&a, 2) == (double)1e30f && gguf_arr_float(&a, 1) == -1.25);
    CHECK(gguf_get_arr(g, "a.bool", GGUF_VT_BOOL, &a, &err) == 0 && gguf_arr_int(&a, 0) == 1 &&
          gguf_arr_int(&a, 1) == 0);
    CHECK(gguf_get_arr(g, "a.u64", GGUF_VT_U64, &a, &err) == 0 && a.n == 1);
    uint64_t u64s[1];
    CHECK(gguf_arr_copy(&a, u64s) == 0 && u64s[0] == 18446744073709551615ull);
    CHECK(gguf_get_arr(g, "a.i64", GGUF_VT_I64, &a, &err) == 0 &&
          gguf_arr_int(&a, 0) == -9223372036854775807ll - 1);
    CHECK(gguf_get_arr(g, "a.f64", GGUF_VT_F64, &a, &err) == 0 && gguf_arr_float(&a, 0) == 1e-300);
    CHECK(gguf_get_arr(g, "a.str", GGUF_VT_STR, &a, &err) == 0 && a.n == 4);
    CHECK(!strcmp(gguf_arr_str(&a, 0), "<unk>") && !strcmp(gguf_arr_str(&a, 1), ""));
    CHECK(a.lens[2] == 3 && !memcmp(gguf_arr_str(&a, 2), "a\0b", 4));
    CHECK(!strcmp(gguf_arr_str(&a, 3), "\xe2\x96\x81the") && gguf_arr_str(&a, 4) == NULL);
    CHECK_EQ_INT(gguf_arr_copy(&a, u64s), -1);
    CHECK(gguf_get_arr(g, "a.empty", GGUF_VT_COUNT, &a, &err) == 0 && a.n == 0 &&
          a.type == GGUF_VT_F32);
    CHECK_EQ_INT(gguf_get_arr(g, "a.str", GGUF_VT_I32, &a, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "is an array of str, not of i32 (wrong type)");
    CHECK_EQ_INT(gguf_get_arr(g, "s.u8", GGUF_VT_U8, &a, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "wrong type");
}

static void check_tensors(const gguf_file *g, const gguf_wtensor *t) {
    CHECK_EQ_INT(g->n_tensors, 8);
    for (int i = 1; i < g->n_tensors; i++)
        CHECK(strcmp(g->tensors[i - 1].name, g->tensors[i].name) < 0);
    uint64_t off = 0;
    for (int i = 0; i < 8; i++) {
        const gguf_tensor *r = gguf_find(g, t[i].name);
        CHECK(r != NULL);
        if (!r) continue;
        CHECK(r->type == t[i].type && r->n_dims == t[i].n_dims);
        int64_t n = 1;
        for (int d = 0; d < 4; d++) {
            CHECK_EQ_INT(r->ne[d], t[i].ne[d]);
            n *= t[i].ne[d];
            CHECK_EQ_INT(r->shape[d], d < r->n_dims ? t[i].ne[r->n_dims - 1 - d] : 0);
        }
        CHECK_EQ_INT(r->n_elems, n);
        CHECK_EQ_INT(r->nbytes, gguf_nbytes(t[i].type, t[i].n_dims, t[i].ne));
        CHECK(!memcmp(r->data, t[i].data, r->nbytes));
        /* packed in the order written, each padded to the alignment */
        CHECK_EQ_INT(r->offset, off);
        off += (r->nbytes + g->alignment - 1) / g->alignment * g->alignment;
        CHECK((uintptr_t)r->data % g->alignment == 0);
    }
    CHECK(gguf_find(g, "missing") == NULL && gguf_find(g, "") == NULL);
    CHECK_EQ_INT(g->data_offset + off, g->size);
}

static void roundtrip(uint32_t align) {
    gguf_wkv kv[40];
    int nkv = make_kvs(kv, align);
    gguf_wtensor t[8];
    char names[8][32];
    unsigned char *buf;
    make_tensors(t, names, &buf);
    const char *p = tpath("rt.gguf");
    moe_err err = {{0}};
    CHECK_MSG(gguf_write(p, kv, nkv, t, 8, &err) == 0, "write: %s", err.msg);
    gguf_file g;
    CHECK_MSG(gguf_open(&g, p, &err) == 0, "open: %s", err.msg);
    if (g.path) {
        CHECK_EQ_INT(g.version, 3);
        CHECK_EQ_INT(g.alignment, align ? align : 32);
        CHECK_EQ_INT(g.data_offset % g.alignment, 0);
        CHECK_EQ_INT(g.n_kv, nkv);
        for (int i = 0; i < nkv && i < g.n_kv; i++) CHECK(!strcmp(g.kvs[i].key, kv[i].key));
        for (int i = 0; i < g.n_kv; i++) CHECK(gguf_find_kv(&g, kv[i].key) == &g.kvs[i]);
        CHECK(gguf_find_kv(&g, "s") == NULL && gguf_find_kv(&g, "zzz") == NULL);
        check_values(&g);
        check_tensors(&g, t);
        gguf_close(&g);
        CHECK(g.kvs == NULL && g.tensors == NULL && g.path == NULL);
    }
    CHECK_EQ_INT(count_files(test_tmpdir()), 1); /* no temporary file left beside it */
    free(buf);
}

TEST(gguf_roundtrip_default_alignment) { roundtrip(0); }
TEST(gguf_roundtrip_alignment_64) { roundtrip(64); }
TEST(gguf_roundtrip_alignment_4) { roundtrip(4); }

TEST(gguf_roundtrip_metadata_only) {
    gguf_wkv kv[] = {gguf_wstr("general.architecture", "x")};
    const char *p = tpath("meta.gguf");
    moe_err err = {{0}};
    CHECK(gguf_write(p, kv, 1, NULL, 0, &err) == 0);
    gguf_file g;
    CHECK(gguf_open(&g, p, &err) == 0);
    CHECK(g.n_kv == 1 && g.n_tensors == 0 && gguf_find(&g, "x") == NULL);
    gguf_close(&g);
    CHECK(gguf_write(p, NULL, 0, NULL, 0, &err) == 0); /* replaces it */
    CHECK(gguf_open(&g, p, &err) == 0);
    CHECK(g.n_kv == 0 && g.n_tensors == 0 && gguf_find_kv(&g, "general.architecture") == NULL);
    gguf_close(&g);
}

/* ---------------------------------------------------------------- stream */

TEST(gguf_stream_matches_write) {
    gguf_wkv kv[40];
    int nkv = make_kvs(kv, 0);
    gguf_wtensor t[8];
    char names[8][32];
    unsigned char *buf;
    make_tensors(t, names, &buf);
    size_t total = 0;
    for (int i = 0; i < 8; i++) total += (size_t)gguf_nbytes(t[i].type, t[i].n_dims, t[i].ne);
    moe_err err = {{0}};
    const char *pa = tpath("a.gguf"), *pb = tpath("b.gguf");
    CHECK(gguf_write(pa, kv, nkv, t, 8, &err) == 0);
    size_t chunks[] = {1, 7, 100000};
    for (int c = 0; c < 3; c++) {
        gguf_stream w;
        CHECK_MSG(gguf_stream_begin(&w, pb, kv, nkv, t, 8, &err) == 0, "%s", err.msg);
        for (size_t at = 0; at < total; at += chunks[c]) {
            size_t k = total - at < chunks[c] ? total - at : chunks[c];
            CHECK(gguf_stream_write(&w, buf + at, k, &err) == 0);
        }
        CHECK_MSG(gguf_stream_finish(&w, &err) == 0, "%s", err.msg);
        size_t na = 0, nb = 0;
        unsigned char *a = slurp(pa, &na), *b = slurp(pb, &nb);
        CHECK(a && b && na == nb && !memcmp(a, b, na));
        free(a);
        free(b);
    }
    CHECK_EQ_INT(count_files(test_tmpdir()), 2);
    free(buf);
}

TEST(gguf_stream_errors_leave_no_file) {
    gguf_wtensor t[8];
    char names[8][32];
    unsigned char *buf;
    make_tensors(t, names, &buf);
    moe_err err = {{0}};
    const char *p = tpath("s.gguf");

    /* finishing early: refused, nothing at p, no temporary left */
    gguf_stream w;
    CHECK(gguf_stream_begin(&w, p, NULL, 0, t, 8, &err) == 0);
    CHECK(gguf_stream_write(&w, buf, 10, &err) == 0);
    CHECK_EQ_INT(gguf_stream_finish(&w, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "is missing");
    CHECK(access(p, F_OK) != 0);
    CHECK_EQ_INT(count_files(test_tmpdir()), 0);

    /* more bytes than the tensors hold */
    CHECK(gguf_stream_begin(&w, p, NULL, 0, t, 1, &err) == 0);
    CHECK_EQ_INT(gguf_stream_write(&w, buf, (size_t)gguf_nbytes(t[0].type, t[0].n_dims, t[0].ne) + 1,
                                   &err), -1);
    CHECK_STR_CONTAINS(err.msg, "more than the tensors hold");
    gguf_stream_abort(&w);
    CHECK_EQ_INT(count_files(test_tmpdir()), 0);

    /* a failed rewrite keeps the old file */
    CHECK(gguf_write(p, NULL, 0, t, 2, &err) == 0);
    size_t n0 = 0;
    unsigned char *old = slurp(p, &n0);
    CHECK(gguf_stream_begin(&w, p, NULL, 0, t, 8, &err) == 0);
    CHECK(gguf_stream_write(&w, buf, 5, &err) == 0);
    gguf_stream_abort(&w);
    size_t n1 = 0;
    unsigned char *now = slurp(p, &n1);
    CHECK(old && now && n0 == n1 && !memcmp(old, now, n0));
    CHECK_EQ_INT(count_files(test_tmpdir()), 1);
    free(old);
    free(now);
    free(buf);
}

/* The writer refuses what the reader would refuse, before writing anything. */
static void expect_write_fails(const gguf_wkv *kv, int nkv, const gguf_wtensor *t, int n,
                               const char *needle, int line) {
    moe_err err = {{0}};
    const char *p = tpath("w.gguf");
    CHECK_MSG(gguf_write(p, kv, nkv, t, n, &err) == -1, "line %d: write accepted", line);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: \"%s\" does not contain \"%s\"", line,
              err.msg, needle);
    CHECK_MSG(access(p, F_OK) != 0 && count_files(test_tmpdir()) == 0,
              "line %d: a file was left behind", line);
}
#define WBAD(kv, nkv, t, n, needle) expect_write_fails(kv, nkv, t, n, needle, __LINE__)

TEST(gguf_write_refuses_bad_input) {
    float data[512] = {0};
    gguf_wtensor ok = {.name = "w", .type = GGUF_TYPE_F32, .n_dims = 2, .ne = {4, 2, 1, 1},
                       .data = data};
    gguf_wkv kv2[2] = {gguf_wu32("k", 1), gguf_wu32("k", 2)};
    WBAD(kv2, 2, &ok, 1, "duplicate key \"k\"");
    kv2[0] = gguf_wu32("", 1);
    WBAD(kv2, 1, &ok, 1, "empty key");
    kv2[0] = gguf_warr("k", GGUF_VT_ARR, data, 1);
    WBAD(kv2, 1, &ok, 1, "nested array");
    kv2[0] = gguf_warr("k", GGUF_VT_I32, NULL, 3);
    WBAD(kv2, 1, &ok, 1, "no data");
    kv2[0] = gguf_wu32("general.alignment", 48);
    WBAD(kv2, 1, &ok, 1, "power of two");
    kv2[0] = gguf_wu64("general.alignment", 64);
    WBAD(kv2, 1, &ok, 1, "must be u32");
    kv2[0] = gguf_wu32("k", 1);
    kv2[0].type = (gguf_vtype)13;
    WBAD(kv2, 1, &ok, 1, "unknown value type");

    gguf_wtensor t[2] = {ok, ok};
    WBAD(NULL, 0, t, 2, "duplicate tensor name \"w\"");
    t[1].name = "";
    WBAD(NULL, 0, t, 2, "empty name");
    t[1].name = "a.name.that.is.much.longer.than.sixty.three.bytes.which.ggml.refuses";
    WBAD(NULL, 0, t, 2, "longer than 63");
    t[1] = ok;
    t[1].name = "q";
    t[1].type = GGUF_TYPE_Q4_K;
    WBAD(NULL, 0, t, 2, "not a multiple of the block size 256 of Q4_K");
    t[1] = ok;
    t[1].name = "q";
    t[1].ne[1] = 0;
    WBAD(NULL, 0, t, 2, "dim 1 is 0");
    t[1].ne[1] = 2;
    t[1].n_dims = 5;
    WBAD(NULL, 0, t, 2, "n_dims 5");
    t[1].n_dims = 0;
    WBAD(NULL, 0, t, 2, "n_dims 0");
    t[1].n_dims = 2;
    t[1].type = (gguf_type)99;
    WBAD(NULL, 0, t, 2, "unknown type");
    t[1].type = (gguf_type)35;
    WBAD(NULL, 0, t, 2, "unsupported type TQ2_0");
    t[1].type = GGUF_TYPE_F32;
    t[1].data = NULL;
    WBAD(NULL, 0, t, 2, "no data");
    t[1] = ok;
    t[1].name = "big";
    t[1].ne[0] = t[1].ne[1] = t[1].ne[2] = 1 << 30;
    t[1].n_dims = 3;
    WBAD(NULL, 0, t, 2, "overflows");
}

/* ------------------------------------------------------------ real files */

TEST(gguf_llama_spm_vocab) {
    char path[1024];
    snprintf(path, sizeof path, "%s/gguf/ggml-vocab-llama-spm.gguf", test_fixtures());
    gguf_file g;
    moe_err err = {{0}};
    CHECK_MSG(gguf_open(&g, path, &err) == 0, "%s", err.msg);
    if (!g.path) return;
    CHECK_EQ_INT(g.version, 3);
    CHECK_EQ_INT(g.n_kv, 22);
    CHECK_EQ_INT(g.n_tensors, 0);
    CHECK_EQ_INT(g.alignment, 32);
    const char *s;
    CHECK(gguf_get_str(&g, "general.architecture", &s, NULL, &err) == 0 && !strcmp(s, "llama"));
    CHECK(gguf_get_str(&g, "tokenizer.ggml.model", &s, NULL, &err) == 0 && !strcmp(s, "llama"));
    CHECK(gguf_get_str(&g, "tokenizer.ggml.pre", &s, NULL, &err) == 0 && !strcmp(s, "default"));
    uint32_t u;
    CHECK(gguf_get_u32(&g, "llama.vocab_size", &u, &err) == 0 && u == 32000);
    CHECK(gguf_get_u32(&g, "tokenizer.ggml.bos_token_id", &u, &err) == 0 && u == 1);
    CHECK(gguf_get_u32(&g, "tokenizer.ggml.eos_token_id", &u, &err) == 0 && u == 2);
    bool b;
    CHECK(gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &b, &err) == 0 && b);
    CHECK(gguf_get_bool(&g, "tokenizer.ggml.add_eos_token", &b, &err) == 0 && !b);
    float eps;
    CHECK(gguf_get_f32(&g, "llama.attention.layer_norm_rms_epsilon", &eps, &err) == 0);
    CHECK_NEAR(eps, 1e-5, 1e-12);
    gguf_arr a;
    CHECK(gguf_get_arr(&g, "tokenizer.ggml.tokens", GGUF_VT_STR, &a, &err) == 0);
    CHECK_EQ_INT(a.n, 32000);
    if (a.n == 32000) {
        CHECK(!strcmp(gguf_arr_str(&a, 0), "<unk>"));
        CHECK(!strcmp(gguf_arr_str(&a, 1), "<s>"));
        CHECK(!strcmp(gguf_arr_str(&a, 2), "</s>"));
        CHECK(!strcmp(gguf_arr_str(&a, 3), "<0x00>"));
        CHECK(!strcmp(gguf_arr_str(&a, 29871), "\xe2\x96\x81"));
        CHECK(!strcmp(gguf_arr_str(&a, 31999), "\xe7\xbb\x99"));
    }
    CHECK(gguf_get_arr(&g, "tokenizer.ggml.scores", GGUF_VT_F32, &a, &err) == 0 && a.n == 32000);
    CHECK(gguf_arr_float(&a, 259) == -1e9f && gguf_arr_float(&a, 31999) == -31740.0);
    CHECK(gguf_get_arr(&g, "tokenizer.ggml.token_type", GGUF_VT_I32, &a, &err) == 0 &&
          a.n == 32000);
    CHECK(gguf_arr_int(&a, 0) == 2 && gguf_arr_int(&a, 1) == 3 && gguf_arr_int(&a, 3) == 6);
    /* no tensors: the file may end before the data section's padding */
    CHECK(g.data_offset >= g.size && g.data_offset - g.size < 32);
    gguf_close(&g);
}

/* The bigger vocab stays in ../shared (not committed); checked when present. */
TEST(gguf_mpt_vocab_if_present) {
    const char *cands[] = {"../shared/vocab/ggml-vocab-mpt.gguf",
                           "/work/shared/vocab/ggml-vocab-mpt.gguf"};
    const char *path = NULL;
    for (int i = 0; i < 2 && !path; i++)
        if (access(cands[i], R_OK) == 0) path = cands[i];
    if (!path) SKIP("ggml-vocab-mpt.gguf not found");
    gguf_file g;
    moe_err err = {{0}};
    CHECK_MSG(gguf_open(&g, path, &err) == 0, "%s", err.msg);
    if (!g.path) return;
    const char *s;
    CHECK(gguf_get_str(&g, "general.architecture", &s, NULL, &err) == 0 && !strcmp(s, "mpt"));
    CHECK(gguf_get_str(&g, "tokenizer.ggml.model", &s, NULL, &err) == 0 && !strcmp(s, "gpt2"));
    gguf_arr a;
    CHECK(gguf_get_arr(&g, "tokenizer.ggml.tokens", GGUF_VT_STR, &a, &err) == 0 && a.n == 50432);
    CHECK(gguf_get_arr(&g, "tokenizer.ggml.merges", GGUF_VT_STR, &a, &err) == 0 && a.n == 50009);
    CHECK(a.n && !strcmp(gguf_arr_str(&a, 0), "\xc4\xa0 \xc4\xa0"));
    gguf_close(&g);
}

/* A file the Python gguf package wrote, against that package's reading of it. */
TEST(gguf_python_written_file) {
    char path[1024], want_path[1024];
    snprintf(path, sizeof path, "%s/gguf/py_all_types.gguf", test_fixtures());
    snprintf(want_path, sizeof want_path, "%s/gguf/py_all_types.txt", test_fixtures());
    gguf_file g;
    moe_err err = {{0}};
    CHECK_MSG(gguf_open(&g, path, &err) == 0, "%s", err.msg);
    if (!g.path) return;
    char *got = NULL;
    size_t got_len = 0, want_len = 0;
    FILE *f = open_memstream(&got, &got_len);
    canon_dump(&g, f);
    fclose(f);
    unsigned char *want = slurp(want_path, &want_len);
    CHECK(want != NULL);
    if (want) {
        /* report the first line that differs */
        size_t i = 0, line = 1;
        while (i < got_len && i < want_len && got[i] == (char)want[i]) line += got[i++] == '\n';
        CHECK_MSG(got_len == want_len && i == got_len, "dump differs from the Python reader's "
                  "at line %zu", line);
    }
    uint32_t u;
    CHECK(gguf_get_u32(&g, "t.u32", &u, &err) == 0 && u == 4000000000u);
    const gguf_tensor *t = gguf_find(&g, "t.q6_k");
    CHECK(t && t->type == GGUF_TYPE_Q6_K && t->n_dims == 4 && t->ne[1] == 2 && t->nbytes == 420);
    t = gguf_find(&g, "t.f32");
    CHECK(t && t->shape[0] == 3 && t->shape[1] == 5); /* numpy (3, 5) */
    free(got);
    free(want);
    gguf_close(&g);
}

/* Every prefix of a valid file is refused (with a message) until the last
 * tensor's bytes are all there; every one-byte corruption of the header is
 * either refused or read without reaching outside the buffer. */
TEST(gguf_truncation_and_corruption) {
    char path[1024];
    snprintf(path, sizeof path, "%s/gguf/py_all_types.gguf", test_fixtures());
    size_t n = 0;
    unsigned char *full = slurp(path, &n);
    CHECK(full != NULL);
    if (!full) return;
    gguf_file g;
    moe_err err = {{0}};
    CHECK(gguf_open_mem(&g, full, n, "full", &err) == 0);
    uint64_t end = 0;
    for (int i = 0; i < g.n_tensors; i++)
        if (g.tensors[i].offset + g.tensors[i].nbytes > end)
            end = g.tensors[i].offset + g.tensors[i].nbytes;
    end += g.data_offset;
    gguf_close(&g);
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        unsigned char *p = malloc(len + 1);
        memcpy(p, full, len);
        err.msg[0] = 0;
        int rc = gguf_open_mem(&g, p, len, "cut", &err);
        if (rc == 0) gguf_close(&g);
        if ((rc == 0) != (len >= end) || (rc && !err.msg[0])) bad++;
        free(p);
    }
    CHECK_EQ_INT(bad, 0);
    size_t header = (size_t)(end < n ? end : n);
    for (size_t at = 0; at < header; at++) {
        unsigned char *p = malloc(n);
        memcpy(p, full, n);
        p[at] ^= (unsigned char)(0x5a + at);
        err.msg[0] = 0;
        int rc = gguf_open_mem(&g, p, n, "flip", &err);
        if (rc == 0) {
            volatile unsigned sink = 0;
            for (int i = 0; i < g.n_tensors; i++) /* inside the buffer (ASan) */
                sink += ((const unsigned char *)g.tensors[i].data)[g.tensors[i].nbytes - 1];
            (void)sink;
            gguf_close(&g);
        } else if (!err.msg[0]) {
            bad++;
        }
        free(p);
    }
    CHECK_EQ_INT(bad, 0);
    free(full);
}

static int by_offset(const void *a, const void *b) {
    const gguf_tensor *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Our writer, given what the Python writer wrote (pairs in file order,
 * tensors in data order), writes the same bytes. */
TEST(gguf_rewrite_python_file_byte_identical) {
    char path[1024];
    snprintf(path, sizeof path, "%s/gguf/py_all_types.gguf", test_fixtures());
    gguf_file g;
    moe_err err = {{0}};
    CHECK_MSG(gguf_open(&g, path, &err) == 0, "%s", err.msg);
    if (!g.path) return;
    gguf_wkv *kv = calloc((size_t)g.n_kv, sizeof *kv);
    gguf_tensor *ord = malloc((size_t)g.n_tensors * sizeof *ord);
    gguf_wtensor *t = calloc((size_t)g.n_tensors, sizeof *t);
    for (int i = 0; i < g.n_kv; i++) {
        const gguf_kv *s = &g.kvs[i];
        kv[i] = (gguf_wkv){.key = s->key, .type = s->type, .arr_type = s->arr_type, .n = s->n};
        if (s->type == GGUF_VT_STR) kv[i].str = s->strs[0], kv[i].lens = s->lens;
        else if (s->type == GGUF_VT_ARR && s->arr_type == GGUF_VT_STR) kv[i].strs = s->strs, kv[i].lens = s->lens;
        else if (s->type == GGUF_VT_ARR) kv[i].arr = s->raw;
        else memcpy(&kv[i].v, s->raw, (size_t)gguf_vtype_size(s->type));
    }
    memcpy(ord, g.tensors, (size_t)g.n_tensors * sizeof *ord);
    qsort(ord, (size_t)g.n_tensors, sizeof *ord, by_offset);
    for (int i = 0; i < g.n_tensors; i++) {
        t[i] = (gguf_wtensor){.name = ord[i].name, .type = ord[i].type, .n_dims = ord[i].n_dims,
                              .data = ord[i].data};
        memcpy(t[i].ne, ord[i].ne, sizeof t[i].ne);
    }
    const char *out = tpath("again.gguf");
    CHECK_MSG(gguf_write(out, kv, g.n_kv, t, g.n_tensors, &err) == 0, "%s", err.msg);
    size_t na = 0, nb = 0;
    unsigned char *a = slurp(path, &na), *b = slurp(out, &nb);
    CHECK(a && b);
    size_t i = 0;
    while (a && b && i < na && i < nb && a[i] == b[i]) i++;
    CHECK_MSG(na == nb && i == na, "differs at byte %zu (sizes %zu, %zu)", i, na, nb);
    free(a);
    free(b);
    free(kv);
    free(ord);
    free(t);
    gguf_close(&g);
}
