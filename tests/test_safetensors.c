/*
 * test_safetensors.c - the safetensors reader and writer: round trips, the
 * reference implementation's bytes (tests/fixtures/st_reference.safetensors,
 * from tools/gen_safetensors_fixture.py), sharded directories, and every
 * class of malformed file, each built byte by byte and rejected with a
 * message naming the problem.
 */
#include "test.h"
#include "formats/safetensors.h"
#include "base/err.h"

#include <dirent.h>
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

static void put_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    if (n) CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}

static char *get_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)sz + 1);
    *n = fread(p, 1, (size_t)sz, f);
    fclose(f);
    return p;
}

/* A file: u64 header length hlen_field, then header, then data_len bytes. */
static void put_st_raw(const char *path, uint64_t hlen_field, const char *header,
                       size_t data_len) {
    size_t hl = strlen(header);
    size_t n = 8 + hl + data_len;
    unsigned char *b = calloc(1, n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen_field >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (unsigned char)i;
    put_file(path, b, n);
    free(b);
}

/* Header padded with spaces to a multiple of 8 (aligned data), then data. */
static void put_st(const char *path, const char *header, size_t data_len) {
    size_t hl = strlen(header), pl = (hl + 7) / 8 * 8;
    char *h = malloc(pl + 1);
    memcpy(h, header, hl);
    memset(h + hl, ' ', pl - hl);
    h[pl] = 0;
    put_st_raw(path, pl, h, data_len);
    free(h);
}

/* The file must be refused with a message containing `needle`. */
static void expect_bad_file(const char *path, const char *needle, int line) {
    st_store s;
    moe_err err = {{0}};
    int rc = st_open_file(&s, path, &err);
    CHECK_MSG(rc == -1, "line %d: malformed file accepted (wanted \"%s\")", line, needle);
    if (rc == 0) {
        st_close(&s);
        return;
    }
    CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: \"%s\" does not contain \"%s\"", line,
              err.msg, needle);
    CHECK(s.n_tensors == 0 && s.tensors == NULL && s.n_files == 0);
}

static void expect_bad(const char *header, size_t data_len, const char *needle, int line) {
    const char *p = tpath("bad.safetensors");
    put_st(p, header, data_len);
    expect_bad_file(p, needle, line);
}
#define BAD(h, n, needle) expect_bad(h, n, needle, __LINE__)

static const char *T_A = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

/* ------------------------------------------------------------ round trip */

TEST(safetensors_roundtrip) {
    float a[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    uint16_t h[3] = {f32_to_f16(1), f32_to_f16(-0.5f), f32_to_f16(65504)};
    uint16_t b[4] = {f32_to_bf16(1), f32_to_bf16(2), f32_to_bf16(-3), f32_to_bf16(1e20f)};
    float sc = 42;
    st_write_tensor w[] = {
        {"model.layers.0.w", DT_F16, 1, {3}, h},
        {"a_matrix", DT_F32, 2, {2, 3}, a},
        {"bf", DT_BF16, 3, {1, 2, 2}, b},
        {"scalar", DT_F32, 0, {0}, &sc},
        {"empty", DT_F32, 2, {0, 5}, NULL},
    };
    const char *p = tpath("rt.safetensors");
    moe_err err = {{0}};
    CHECK_EQ_INT(st_write(p, w, 5, "{\"format\":\"pt\",\"note\":\"q\\\"uote\"}", &err), 0);
    st_store s;
    CHECK_EQ_INT(st_open_file(&s, p, &err), 0);
    CHECK_EQ_INT(s.n_tensors, 5);
    CHECK_EQ_INT(s.n_files, 1);
    for (int i = 1; i < s.n_tensors; i++) CHECK(strcmp(s.tensors[i - 1].name, s.tensors[i].name) < 0);
    const st_tensor *t = st_find(&s, "a_matrix");
    CHECK(t && t->type == DT_F32 && t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    CHECK(t && t->n_elems == 6 && t->nbytes == 24 && !memcmp(t->data, a, 24));
    CHECK(t && (uintptr_t)t->data % 4 == 0);
    t = st_find(&s, "model.layers.0.w");
    CHECK(t && t->type == DT_F16 && t->n_elems == 3 && !memcmp(t->data, h, 6));
    t = st_find(&s, "bf");
    CHECK(t && t->type == DT_BF16 && t->n_dims == 3 && t->shape[2] == 2 && !memcmp(t->data, b, 8));
    t = st_find(&s, "scalar");
    CHECK(t && t->n_dims == 0 && t->n_elems == 1 && *(const float *)t->data == 42);
    t = st_find(&s, "empty");
    CHECK(t && t->n_elems == 0 && t->nbytes == 0 && t->shape[1] == 5);
    CHECK(st_find(&s, "missing") == NULL);
    CHECK(st_find(&s, "") == NULL);
    /* Header padded to 8: the data region is 8-aligned. */
    CHECK(s.files[0].data[0] % 8 == 0);
    st_close(&s);
    CHECK(s.n_tensors == 0 && s.tensors == NULL);

    /* No temporary files left beside it. */
    DIR *d = opendir(test_tmpdir());
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    CHECK_EQ_INT(n, 1);
}

TEST(safetensors_no_metadata_and_overwrite) {
    float x[2] = {1, 2}, y[3] = {3, 4, 5};
    st_write_tensor w = {"x", DT_F32, 1, {2}, x};
    const char *p = tpath("o.safetensors");
    moe_err err = {{0}};
    CHECK_EQ_INT(st_write(p, &w, 1, NULL, &err), 0);
    size_t n;
    char *txt = get_file(p, &n);
    CHECK(txt && !strstr(txt + 8, "__metadata__"));
    free(txt);
    /* Replace atomically: the new contents, nothing else. */
    st_write_tensor w2 = {"y", DT_F32, 1, {3}, y};
    CHECK_EQ_INT(st_write(p, &w2, 1, NULL, &err), 0);
    st_store s;
    CHECK_EQ_INT(st_open_file(&s, p, &err), 0);
    CHECK(st_find(&s, "x") == NULL);
    const st_tensor *t = st_find(&s, "y");
    CHECK(t && ((const float *)t->data)[2] == 5);
    st_close(&s);
    /* A failed write leaves the old file intact. */
    st_write_tensor dup[2] = {{"q", DT_F32, 1, {2}, x}, {"q", DT_F16, 1, {1}, x}};
    CHECK_EQ_INT(st_write(p, dup, 2, NULL, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "duplicate");
    CHECK_EQ_INT(st_open_file(&s, p, &err), 0);
    CHECK(st_find(&s, "y") != NULL);
    st_close(&s);
    /* Zero tensors: a valid (empty) file. */
    CHECK_EQ_INT(st_write(p, NULL, 0, NULL, &err), 0);
    CHECK_EQ_INT(st_open_file(&s, p, &err), 0);
    CHECK_EQ_INT(s.n_tensors, 0);
    st_close(&s);
}

TEST(safetensors_many_names_binary_search) {
    enum { N = 300 };
    static float v[N];
    st_write_tensor w[N];
    char names[N][32];
    for (int i = 0; i < N; i++) {
        v[i] = (float)i;
        snprintf(names[i], sizeof names[i], "t.%d.w", (i * 7919) % N);
        w[i] = (st_write_tensor){names[i], DT_F32, 1, {1}, &v[i]};
    }
    const char *p = tpath("many.safetensors");
    moe_err err = {{0}};
    CHECK_EQ_INT(st_write(p, w, N, NULL, &err), 0);
    st_store s;
    CHECK_EQ_INT(st_open_file(&s, p, &err), 0);
    CHECK_EQ_INT(s.n_tensors, N);
    for (int i = 0; i < N; i++) {
        const st_tensor *t = st_find(&s, names[i]);
        CHECK(t && *(const float *)t->data == v[i]);
    }
    CHECK(st_find(&s, "t.300.w") == NULL && st_find(&s, "a") == NULL && st_find(&s, "z") == NULL);
    st_close(&s);
}

/* The reference implementation wrote the fixture: read it, and write the
 * same tensors to the same bytes. */
TEST(safetensors_reference_bytes) {
    char ref[1024];
    snprintf(ref, sizeof ref, "%s/st_reference.safetensors", test_fixtures());
    st_store s;
    moe_err err = {{0}};
    if (st_open_file(&s, ref, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    CHECK_EQ_INT(s.n_tensors, 5);
    const st_tensor *a = st_find(&s, "a"), *b = st_find(&s, "b"), *c = st_find(&s, "c");
    const st_tensor *sc = st_find(&s, "s"), *z = st_find(&s, "z");
    CHECK(a && b && c && sc && z);
    if (!(a && b && c && sc && z)) {
        st_close(&s);
        return;
    }
    CHECK(a->type == DT_F32 && ((const float *)a->data)[5] == 2.5f);
    CHECK(b->type == DT_F16 && f16_to_f32(((const uint16_t *)b->data)[1]) == -2.0f);
    CHECK(c->type == DT_BF16 && bf16_to_f32(((const uint16_t *)c->data)[3]) == -4.0f);
    CHECK(sc->n_dims == 0 && *(const float *)sc->data == 7.0f);
    CHECK(z->n_dims == 1 && z->n_elems == 0);

    st_write_tensor w[5];
    const st_tensor *all[5] = {c, z, a, sc, b}; /* any order: the writer sorts */
    for (int i = 0; i < 5; i++) {
        w[i] = (st_write_tensor){all[i]->name, all[i]->type, all[i]->n_dims, {0}, all[i]->data};
        memcpy(w[i].shape, all[i]->shape, sizeof w[i].shape);
    }
    const char *p = tpath("mine.safetensors");
    CHECK_EQ_INT(st_write(p, w, 5, "{\"format\":\"pt\"}", &err), 0);
    size_t n1, n2;
    char *x = get_file(ref, &n1), *y = get_file(p, &n2);
    CHECK(x && y && n1 == n2 && !memcmp(x, y, n1));
    free(x);
    free(y);
    st_close(&s);
}

/* ------------------------------------------------------- malformed files */

TEST(safetensors_bad_length) {
    const char *p = tpath("short.safetensors");
    put_file(p, "", 0);
    expect_bad_file(p, "too short", __LINE__);
    put_file(p, "\x05\0\0\0\0", 5);
    expect_bad_file(p, "too short", __LINE__);
    put_st_raw(p, 1000, "{}", 0);
    expect_bad_file(p, "past the end", __LINE__);
    put_st_raw(p, 3, "{}", 0); /* one byte past */
    expect_bad_file(p, "past the end", __LINE__);
    put_st_raw(p, (uint64_t)1 << 40, "{}", 0);
    expect_bad_file(p, "too large", __LINE__);
    put_st_raw(p, UINT64_MAX, "{}", 0);
    expect_bad_file(p, "too large", __LINE__);
    put_st_raw(p, 0, "", 0);
    expect_bad_file(p, "JSON", __LINE__);
    expect_bad_file(tpath("does_not_exist.safetensors"), "cannot open", __LINE__);
}

TEST(safetensors_bad_json) {
    BAD("{\"a\": {\"dtype\": \"F32\", ", 0, "JSON");
    BAD("not json at all", 0, "JSON");
    BAD("{} trailing", 0, "JSON");
    BAD("{}{}", 0, "JSON");
    BAD("[1, 2, 3]", 0, "object");
    BAD("\"a string\"", 0, "object");
    BAD("{\"a\": 5}", 0, "object");
    BAD("{\"a\": [\"F32\"]}", 0, "object");
    /* A NUL inside the header is not whitespace. */
    const char *p = tpath("nul.safetensors");
    put_st_raw(p, 4, "{}", 2); /* header = "{}" and the bytes 0x00 0x01 */
    expect_bad_file(p, "JSON", __LINE__);
}

TEST(safetensors_bad_fields) {
    BAD("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "missing dtype");
    BAD("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "missing shape");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "missing data_offsets");
    BAD("{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype is not a string");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8,
        "shape is not an array");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,8]}}", 8,
        "shape is not an array");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":8}}", 8,
        "data_offsets is not an array");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "2 entries");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, "2 entries");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",8]}}", 8, "not a number");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,null]}}", 8, "not a number");
    BAD("{\"__metadata__\":[1],\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
        "__metadata__");
    BAD("{\"__metadata__\":{\"k\":1},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
        8, "__metadata__");
}

TEST(safetensors_bad_dtype) {
    BAD("{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype");
    BAD("{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype");
    BAD("{\"w\":{\"dtype\":\"\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype");
    BAD("{\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
        "tensor w: unsupported dtype I64");
    BAD("{\"w\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "unsupported dtype");
    BAD("{\"w\":{\"dtype\":\"I8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, "unsupported dtype");
    /* U8 (MXFP4 blocks and scales) is read, one byte an element */
    BAD("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8,
        "data_offsets span 8 bytes but shape x U8 needs 4");
    BAD("{\"w\":{\"dtype\":\"BOOL\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, "unsupported dtype");
    BAD("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8,
        "unsupported dtype");
}

TEST(safetensors_bad_shape) {
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "negative");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, "not an integer");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "not a number");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8, "too large");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
        "more than 8");
    /* 2^32 * 2^32 elements overflow int64; 2^31 * 2^31 * 4 bytes too. */
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
        "overflow");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,8]}}", 8,
        "overflow");
    /* 8 dims is fine. */
    const char *p = tpath("dims8.safetensors");
    const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}";
    put_st(p, h, 8);
    st_store s;
    moe_err err = {{0}};
    CHECK_EQ_INT(st_open_file(&s, p, &err), 0);
    CHECK(s.n_tensors == 1 && s.tensors[0].n_dims == 8 && s.tensors[0].n_elems == 2);
    st_close(&s);
}

TEST(safetensors_bad_offsets) {
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "size mismatch");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, "size mismatch");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "begin 8 > end 0");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8, "past the end");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 7, "past the end");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "negative");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8.5]}}", 9, "not an integer");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e19]}}", 8, "too large");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlaps");
    BAD("{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, "overlaps");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlaps");
    /* Gaps between tensors and unused bytes at the end are tolerated. */
    const char *p = tpath("gap.safetensors");
    put_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 20);
    st_store s;
    moe_err err = {{0}};
    CHECK_EQ_INT(st_open_file(&s, p, &err), 0);
    CHECK_EQ_INT(s.n_tensors, 2);
    st_close(&s);
}

TEST(safetensors_duplicate_names) {
    char h[512];
    snprintf(h, sizeof h, "{%s,\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", T_A);
    BAD(h, 12, "tensor a: duplicate");
}

TEST(safetensors_misaligned) {
    /* Unpadded 9-byte-odd header: data region at an odd address. */
    char h[256];
    snprintf(h, sizeof h, "{%s}", T_A);
    char padded[300];
    snprintf(padded, sizeof padded, "%s", h);
    while ((8 + strlen(padded)) % 4 != 1) strcat(padded, " ");
    const char *p = tpath("mis.safetensors");
    put_st_raw(p, strlen(padded), padded, 8);
    expect_bad_file(p, "aligned", __LINE__);
    /* F16 at an odd offset, F32 at offset 2. */
    BAD("{\"w\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[1,3]}}", 4, "aligned");
    BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 8, "aligned");
}

/* ------------------------------------------------------------ directories */

static void write_shard(const char *name, const char *t1, const char *t2, float *v) {
    st_write_tensor w[2] = {{t1, DT_F32, 1, {2}, v}, {t2, DT_F32, 1, {2}, v + 2}};
    moe_err err = {{0}};
    CHECK_EQ_INT(st_write(tpath(name), w, t2 ? 2 : 1, NULL, &err), 0);
}

static void put_text(const char *name, const char *text) {
    put_file(tpath(name), text, strlen(text));
}

static void expect_bad_dir(const char *needle, int line) {
    st_store s;
    moe_err err = {{0}};
    int rc = st_open_dir(&s, test_tmpdir(), &err);
    CHECK_MSG(rc == -1, "line %d: bad directory accepted (wanted \"%s\")", line, needle);
    if (rc == 0) {
        st_close(&s);
        return;
    }
    CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: \"%s\" does not contain \"%s\"", line,
              err.msg, needle);
}

TEST(safetensors_dir_single) {
    expect_bad_dir("model.safetensors.index.json", __LINE__);
    float v[4] = {1, 2, 3, 4};
    write_shard("model.safetensors", "x", "y", v);
    st_store s;
    moe_err err = {{0}};
    CHECK_EQ_INT(st_open_dir(&s, test_tmpdir(), &err), 0);
    CHECK_EQ_INT(s.n_tensors, 2);
    const st_tensor *t = st_find(&s, "y");
    CHECK(t && ((const float *)t->data)[1] == 4);
    st_close(&s);
}

TEST(safetensors_dir_sharded) {
    float v[4] = {1, 2, 3, 4}, u[4] = {5, 6, 7, 8};
    write_shard("model-00001-of-00002.safetensors", "layers.0.w", "embed", v);
    write_shard("model-00002-of-00002.safetensors", "layers.1.w", "norm", u);
    const char *idx =
        "{\"metadata\": {\"total_size\": 32}, \"weight_map\": {"
        "\"embed\": \"model-00001-of-00002.safetensors\","
        "\"layers.0.w\": \"model-00001-of-00002.safetensors\","
        "\"layers.1.w\": \"model-00002-of-00002.safetensors\","
        "\"norm\": \"model-00002-of-00002.safetensors\"}}";
    put_text("model.safetensors.index.json", idx);
    st_store s;
    moe_err err = {{0}};
    CHECK_EQ_INT(st_open_dir(&s, test_tmpdir(), &err), 0);
    CHECK_EQ_INT(s.n_files, 2);
    CHECK_EQ_INT(s.n_tensors, 4);
    const st_tensor *a = st_find(&s, "embed"), *b = st_find(&s, "norm");
    CHECK(a && b && a->file != b->file);
    CHECK(a && ((const float *)a->data)[0] == 3);
    CHECK(b && ((const float *)b->data)[1] == 8);
    CHECK(b && strstr(s.paths[b->file], "00002-of") != NULL);
    st_close(&s);
}

TEST(safetensors_dir_bad_index) {
    float v[4] = {1, 2, 3, 4};
    write_shard("s1.safetensors", "a", "b", v);
    write_shard("s2.safetensors", "c", NULL, v);
    const char *I = "model.safetensors.index.json";
    put_text(I, "{\"weight_map\": {\"a\": \"s1.safetensors\", ");
    expect_bad_dir("JSON", __LINE__);
    put_text(I, "{\"metadata\": {}}");
    expect_bad_dir("weight_map", __LINE__);
    put_text(I, "{\"weight_map\": [\"s1.safetensors\"]}");
    expect_bad_dir("weight_map", __LINE__);
    put_text(I, "{\"weight_map\": {}}");
    expect_bad_dir("empty", __LINE__);
    put_text(I, "{\"weight_map\": {\"a\": 1}}");
    expect_bad_dir("not a string", __LINE__);
    put_text(I, "{\"weight_map\": {\"a\": \"../s1.safetensors\"}}");
    expect_bad_dir("bad shard file name", __LINE__);
    put_text(I, "{\"weight_map\": {\"a\": \"sub/s1.safetensors\"}}");
    expect_bad_dir("bad shard file name", __LINE__);
    put_text(I, "{\"weight_map\": {\"a\": \"..\"}}");
    expect_bad_dir("bad shard file name", __LINE__);
    put_text(I, "{\"weight_map\": {\"a\": \"\"}}");
    expect_bad_dir("bad shard file name", __LINE__);
    put_text(I, "{\"weight_map\": {\"a\": \"nope.safetensors\"}}");
    expect_bad_dir("cannot open", __LINE__);
    /* Listed in the wrong shard. */
    put_text(I, "{\"weight_map\": {\"a\": \"s2.safetensors\", \"b\": \"s1.safetensors\","
                " \"c\": \"s1.safetensors\"}}");
    expect_bad_dir("missing", __LINE__);
    /* Listed but in no shard. */
    put_text(I, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\","
                " \"c\": \"s2.safetensors\", \"d\": \"s2.safetensors\"}}");
    expect_bad_dir("tensor d", __LINE__);
    /* In a shard but not listed. */
    put_text(I, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"c\": \"s2.safetensors\"}}");
    expect_bad_dir("missing from weight_map", __LINE__);
    /* Listed twice. */
    put_text(I, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\","
                " \"c\": \"s2.safetensors\", \"c\": \"s2.safetensors\"}}");
    expect_bad_dir("duplicate", __LINE__);
    /* A corrupt shard: its error, named. */
    put_file(tpath("s3.safetensors"), "abc", 3);
    put_text(I, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"z\": \"s3.safetensors\"}}");
    expect_bad_dir("s3.safetensors: file too short", __LINE__);
    /* The good version opens. */
    put_text(I, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\","
                " \"c\": \"s2.safetensors\"}}");
    st_store s;
    moe_err err = {{0}};
    CHECK_EQ_INT(st_open_dir(&s, test_tmpdir(), &err), 0);
    CHECK_EQ_INT(s.n_tensors, 3);
    st_close(&s);
}

TEST(safetensors_dir_duplicate_across_shards) {
    float v[4] = {1, 2, 3, 4};
    write_shard("s1.safetensors", "a", "b", v);
    write_shard("s2.safetensors", "a", NULL, v);
    put_text("model.safetensors.index.json",
             "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\"}}");
    /* s2 is not in the map: not opened, so this one is fine... */
    st_store s;
    moe_err err = {{0}};
    CHECK_EQ_INT(st_open_dir(&s, test_tmpdir(), &err), 0);
    st_close(&s);
    /* ...but a map naming both shards sees "a" twice. */
    put_text("model.safetensors.index.json",
             "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\"}}");
    expect_bad_dir("duplicate", __LINE__);
}

/* ----------------------------------------------------------- writer errors */

TEST(safetensors_write_errors) {
    float x[4] = {0};
    moe_err err = {{0}};
    const char *p = tpath("w.safetensors");
    st_write_tensor neg = {"n", DT_F32, 1, {-1}, x};
    CHECK_EQ_INT(st_write(p, &neg, 1, NULL, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "negative");
    st_write_tensor nodata = {"n", DT_F32, 1, {4}, NULL};
    CHECK_EQ_INT(st_write(p, &nodata, 1, NULL, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "no data");
    st_write_tensor dims = {"n", DT_F32, 9, {1}, x};
    CHECK_EQ_INT(st_write(p, &dims, 1, NULL, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "dims");
    st_write_tensor big = {"n", DT_F32, 3, {1 << 30, 1 << 30, 1 << 30}, x};
    CHECK_EQ_INT(st_write(p, &big, 1, NULL, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "overflow");
    st_write_tensor badtype = {"n", DT_COUNT, 1, {1}, x};
    CHECK_EQ_INT(st_write(p, &badtype, 1, NULL, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "dtype");
    st_write_tensor ok = {"n", DT_F32, 1, {1}, x};
    CHECK_EQ_INT(st_write(p, &ok, 1, "{\"a\": 1}", &err), -1);
    CHECK_STR_CONTAINS(err.msg, "not a string");
    CHECK_EQ_INT(st_write(p, &ok, 1, "[\"a\"]", &err), -1);
    CHECK_STR_CONTAINS(err.msg, "metadata");
    CHECK_EQ_INT(st_write(p, &ok, 1, "{\"a\": ", &err), -1);
    CHECK_STR_CONTAINS(err.msg, "JSON");
    CHECK_EQ_INT(st_write(p, &ok, 1, "{\"a\": \"1\", \"a\": \"2\"}", &err), -1);
    CHECK_STR_CONTAINS(err.msg, "duplicate");
    st_write_tensor meta = {"__metadata__", DT_F32, 1, {1}, x};
    CHECK_EQ_INT(st_write(p, &meta, 1, NULL, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "__metadata__");
    CHECK_EQ_INT(st_write(tpath("no/such/dir/x.safetensors"), &ok, 1, NULL, &err), -1);
    CHECK_STR_CONTAINS(err.msg, "cannot create");
    /* Names needing JSON escapes survive the trip. */
    st_write_tensor odd = {"we\"ird\\name\n\x01", DT_F32, 1, {1}, x};
    CHECK_EQ_INT(st_write(p, &odd, 1, NULL, &err), 0);
    st_store s;
    CHECK_EQ_INT(st_open_file(&s, p, &err), 0);
    CHECK(st_find(&s, "we\"ird\\name\n\x01") != NULL);
    st_close(&s);
}
