/*
 * gguf_dump.c - a small tool around src/formats/gguf.c, for comparing our
 * reader and writer with the Python gguf package (tools/gguf_crosscheck.py
 * builds and runs it) and for making the fuzzer's seed corpus. Not part of
 * the library or of CI.
 *
 *   gguf_dump FILE...        canonical dump of each file (tests/gguf_canon.h)
 *   gguf_dump --sample OUT   write a file with every value and tensor type
 *   gguf_dump --seeds DIR    write the seed corpus (fuzz/corpus/gguf)
 *
 * Build: cc -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -Itests tools/gguf_dump.c \
 *          src/formats/gguf.c src/formats/gguf_write.c src/base/err.c src/base/mapfile.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "gguf_canon.h"

/* Deterministic bytes for tensor data. */
static void fill(unsigned char *p, size_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/* Tensors of the given types, ne[0] = one or two blocks, into a (caller-freed) buffer. */
static unsigned char *make_tensors(gguf_wtensor *t, const gguf_type *types, int n,
                                   const char *prefix, char names[][64]) {
    size_t total = 0;
    int64_t nb[16];
    for (int i = 0; i < n; i++) {
        int block = gguf_type_block(types[i]);
        t[i] = (gguf_wtensor){.name = names[i], .type = types[i], .n_dims = 1 + i % 3};
        t[i].ne[0] = block * (block == 1 ? 5 : 1 + i % 2);
        t[i].ne[1] = 2;
        t[i].ne[2] = 3;
        snprintf(names[i], 64, "%s.%d.%s", prefix, i, gguf_type_name(types[i]));
        nb[i] = gguf_nbytes(types[i], t[i].n_dims, t[i].ne);
        total += (size_t)nb[i];
    }
    unsigned char *buf = malloc(total + 1), *p = buf;
    for (int i = 0; i < n; i++) {
        fill(p, (size_t)nb[i], (uint32_t)i + 7);
        t[i].data = p;
        p += nb[i];
    }
    return buf;
}

static int write_sample(const char *path, uint32_t align, int with_tensors) {
    static const uint8_t au8[] = {0, 7, 255};
    static const int8_t ai8[] = {-128, 1, 127};
    static const uint16_t au16[] = {1, 65535};
    static const int16_t ai16[] = {-32768, 32767};
    static const uint32_t au32[] = {0, 4000000000u};
    static const int32_t ai32[] = {-5, 2147483647};
    static const float af32[] = {0.5f, -3.25f, 1e-20f};
    static const bool abool[] = {true, false};
    static const uint64_t au64[] = {18446744073709551615ull};
    static const int64_t ai64[] = {-9223372036854775807ll - 1, 42};
    static const double af64[] = {1e300, -0.0};
    static const char *const strs[] = {"<unk>", "", "a\0b", "\xe2\x96\x81the"};
    static const uint64_t lens[] = {5, 0, 3, 6};
    gguf_wkv kv[32];
    int n = 0;
    kv[n++] = gguf_wstr("general.architecture", "sample");
    if (align != GGUF_DEFAULT_ALIGNMENT) kv[n++] = gguf_wu32("general.alignment", align);
    kv[n++] = gguf_wu8("s.u8", 200);
    kv[n++] = gguf_wi8("s.i8", -100);
    kv[n++] = gguf_wu16("s.u16", 60000);
    kv[n++] = gguf_wi16("s.i16", -30000);
    kv[n++] = gguf_wu32("s.u32", 4000000000u);
    kv[n++] = gguf_wi32("s.i32", -2000000000);
    kv[n++] = gguf_wf32("s.f32", 3.14159f);
    kv[n++] = gguf_wbool("s.bool", true);
    kv[n++] = gguf_wstr("s.str", "h\xc3\xa9llo \"w\"\n");
    kv[n++] = gguf_wu64("s.u64", 18000000000000000000ull);
    kv[n++] = gguf_wi64("s.i64", -9000000000000000000ll);
    kv[n++] = gguf_wf64("s.f64", -2.718281828459045);
    kv[n++] = gguf_warr("a.u8", GGUF_VT_U8, au8, 3);
    kv[n++] = gguf_warr("a.i8", GGUF_VT_I8, ai8, 3);
    kv[n++] = gguf_warr("a.u16", GGUF_VT_U16, au16, 2);
    kv[n++] = gguf_warr("a.i16", GGUF_VT_I16, ai16, 2);
    kv[n++] = gguf_warr("a.u32", GGUF_VT_U32, au32, 2);
    kv[n++] = gguf_warr("a.i32", GGUF_VT_I32, ai32, 2);
    kv[n++] = gguf_warr("a.f32", GGUF_VT_F32, af32, 3);
    kv[n++] = gguf_warr("a.bool", GGUF_VT_BOOL, abool, 2);
    kv[n++] = gguf_warr("a.u64", GGUF_VT_U64, au64, 1);
    kv[n++] = gguf_warr("a.i64", GGUF_VT_I64, ai64, 2);
    kv[n++] = gguf_warr("a.f64", GGUF_VT_F64, af64, 2);
    kv[n++] = gguf_wstrs("a.str", strs, lens, 4);
    kv[n++] = gguf_warr("a.empty", GGUF_VT_I32, NULL, 0);
    static const gguf_type types[] = {GGUF_TYPE_F32, GGUF_TYPE_F16, GGUF_TYPE_BF16,
                                      GGUF_TYPE_Q4_0, GGUF_TYPE_Q8_0, GGUF_TYPE_Q4_K,
                                      GGUF_TYPE_Q5_K, GGUF_TYPE_Q6_K};
    gguf_wtensor t[8];
    char names[8][64];
    int nt = with_tensors ? 8 : 0;
    unsigned char *buf = make_tensors(t, types, nt, "blk", names);
    moe_err err = {{0}};
    int rc = gguf_write(path, kv, n, t, nt, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    free(buf);
    return rc;
}

/* Tokenizer-like metadata and no tensors, as the ggml-vocab files. */
static int write_vocab(const char *path) {
    static const char *const tokens[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81" "a", "b", "ab"};
    static const float scores[] = {0, 0, 0, -1, -2, -3};
    static const int32_t types[] = {2, 3, 3, 1, 1, 1};
    static const char *const merges[] = {"a b"};
    gguf_wkv kv[] = {
        gguf_wstr("general.architecture", "llama"),
        gguf_wstr("tokenizer.ggml.model", "llama"),
        gguf_wstrs("tokenizer.ggml.tokens", tokens, NULL, 6),
        gguf_warr("tokenizer.ggml.scores", GGUF_VT_F32, scores, 6),
        gguf_warr("tokenizer.ggml.token_type", GGUF_VT_I32, types, 6),
        gguf_wstrs("tokenizer.ggml.merges", merges, NULL, 1),
        gguf_wu32("tokenizer.ggml.bos_token_id", 1),
        gguf_wbool("tokenizer.ggml.add_bos_token", true),
    };
    moe_err err = {{0}};
    int rc = gguf_write(path, kv, (int)(sizeof kv / sizeof kv[0]), NULL, 0, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    return rc;
}

static int write_seeds(const char *dir) {
    char p[4096];
    int rc = 0;
    snprintf(p, sizeof p, "%s/all_types.gguf", dir);
    rc |= write_sample(p, GGUF_DEFAULT_ALIGNMENT, 1);
    snprintf(p, sizeof p, "%s/align64.gguf", dir);
    rc |= write_sample(p, 64, 1);
    snprintf(p, sizeof p, "%s/meta_only.gguf", dir);
    rc |= write_sample(p, 8, 0);
    snprintf(p, sizeof p, "%s/vocab.gguf", dir);
    rc |= write_vocab(p);
    snprintf(p, sizeof p, "%s/empty.gguf", dir);
    moe_err err = {{0}};
    rc |= gguf_write(p, NULL, 0, NULL, 0, &err);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--sample"))
        return write_sample(argv[2], GGUF_DEFAULT_ALIGNMENT, 1) ? 1 : 0;
    if (argc == 3 && !strcmp(argv[1], "--seeds")) return write_seeds(argv[2]);
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: gguf_dump FILE... | --sample OUT | --seeds DIR\n");
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        gguf_file g;
        moe_err err = {{0}};
        if (gguf_open(&g, argv[i], &err)) {
            fprintf(stderr, "%s\n", err.msg);
            rc = 1;
            continue;
        }
        canon_dump(&g, stdout);
        gguf_close(&g);
    }
    return rc;
}
