/*
 * test_gguf_vocab.c - the vocabulary `moe convert` / `moe quantize` write
 * into a GGUF (src/formats/gguf_vocab_write.c) against independent
 * references:
 *  - key by key against what llama.cpp's convert_hf_to_gguf.py wrote from
 *    the same tokenizer files (the committed gguf_tokenizers fixtures, made
 *    by tools/gen_gguf_tokenizer_fixtures.py from gguf_tokenizers/hf/), and
 *    against llama.cpp's vocab file of the real Llama tokenizer (from
 *    tokenizer.model: the rebuilt scores must equal SentencePiece's but for
 *    the whitespace pieces it scores -1e9);
 *  - the pre-tokenizer llama.cpp names by its probe hash (GPT-NeoX -> "olmo")
 *    and by the tokenizer.json layout of each family;
 *  - the written file's tokenizer gives the ids of the tokenizer.json one
 *    (HF's, tests/test_tokenizer.c) on the test texts and on random texts;
 *  - SHA-256 against FIPS 180-4's vectors; bad and unsupported tokenizer
 *    directories, each refused with a note (no vocabulary) and no crash.
 */
#include "test.h"
#include "test_util.h"
#include "base/mapfile.h"
#include "base/sha256.h"
#include "formats/gguf.h"
#include "moe.h"
#include "formats/gguf_vocab_write.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------- helpers */

static char g_buf[2][1100];

static const char *fx(int slot, const char *rel) {
    snprintf(g_buf[slot], sizeof g_buf[slot], "%s/%s", test_fixtures(), rel);
    return g_buf[slot];
}

static int copy_file(const char *src, const char *dst) {
    char *buf;
    size_t len;
    moe_err err;
    if (read_file(src, (size_t)64 << 20, &buf, &len, &err) != 0) return -1;
    FILE *f = fopen(dst, "wb");
    int rc = f && fwrite(buf, 1, len, f) == len ? 0 : -1;
    if (f) fclose(f);
    free(buf);
    return rc;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* A fresh directory under the test's temp dir holding the named files of
 * the fixture directories src (NULL entries end the list). */
static const char *make_dir(const char *name, const char *const *files) {
    static char d[1100];
    snprintf(d, sizeof d, "%s/%s", test_tmpdir(), name);
    mkdir(d, 0755);
    for (int i = 0; files[i]; i++) {
        char dst[1300];
        const char *base = strrchr(files[i], '/');
        snprintf(dst, sizeof dst, "%s/%s", d, base ? base + 1 : files[i]);
        CHECK_MSG(copy_file(fx(0, files[i]), dst) == 0, "copy %s", files[i]);
    }
    return d;
}

/* Build dir's vocabulary and write it as a vocab-only GGUF at out. */
static int build_write(const char *dir, const char *arch, int n_vocab, const char *out, tok_gguf_vocab *v) {
    moe_err err = {{0}};
    int rc = tok_gguf_vocab_build(v, dir, arch, n_vocab, &err);
    CHECK_MSG(rc == 0, "build %s: rc %d: %s %s", dir, rc, err.msg, v->note);
    if (rc != 0) return -1;
    gguf_wkv *kv = calloc((size_t)v->n_kv + 1, sizeof *kv);
    kv[0] = gguf_wstr("general.architecture", arch);
    memcpy(kv + 1, v->kv, (size_t)v->n_kv * sizeof *kv);
    rc = gguf_write(out, kv, v->n_kv + 1, NULL, 0, &err);
    CHECK_MSG(rc == 0, "write %s: %s", out, err.msg);
    free(kv);
    return rc;
}

/* Every tokenizer.* key of ref and of ours: the same type and bytes. Keys
 * in skip[] are left to the caller; returns how many keys differ. */
static int same_keys(const char *ours, const char *ref, const char *const *skip, int n_skip) {
    gguf_file a, b;
    moe_err err;
    if (gguf_open(&a, ours, &err) != 0 || gguf_open(&b, ref, &err) != 0) {
        CHECK_MSG(0, "open: %s", err.msg);
        return -1;
    }
    int bad = 0;
    for (int pass = 0; pass < 2; pass++) {
        const gguf_file *x = pass ? &a : &b, *y = pass ? &b : &a;
        for (int i = 0; i < x->n_kv; i++) {
            const gguf_kv *k = &x->kvs[i];
            int skipped = 0;
            for (int s = 0; s < n_skip; s++) skipped |= strcmp(skip[s], k->key) == 0;
            if (strncmp(k->key, "tokenizer.", 10) != 0 || skipped) continue;
            const gguf_kv *o = gguf_find_kv(y, k->key);
            if (!o) {
                CHECK_MSG(0, "%s: key %s only in %s", ours, k->key, pass ? "moe's file" : ref);
                bad++;
                continue;
            }
            if (pass) continue; /* compared once */
            int eq = k->type == o->type && k->n == o->n && (k->type != GGUF_VT_ARR || k->arr_type == o->arr_type);
            if (eq && (k->type == GGUF_VT_STR || (k->type == GGUF_VT_ARR && k->arr_type == GGUF_VT_STR))) {
                for (uint64_t j = 0; eq && j < k->n; j++)
                    eq = k->lens[j] == o->lens[j] && memcmp(k->strs[j], o->strs[j], k->lens[j]) == 0;
            } else if (eq) {
                size_t nb = (size_t)gguf_vtype_size(k->type == GGUF_VT_ARR ? k->arr_type : k->type) * k->n;
                eq = memcmp(k->raw, o->raw, nb) == 0;
            }
            CHECK_MSG(eq, "%s: key %s differs from %s", ours, k->key, ref);
            bad += !eq;
        }
    }
    gguf_close(&a);
    gguf_close(&b);
    return bad;
}

/* The written file's tokenizer against the directory's tokenizer.json: the
 * test texts of tests/fixtures/tokenizers/vectors.json and random texts
 * cut from them with special tokens and odd characters, with and without
 * special tokens. */
static uint64_t rng_next(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static void same_ids(const char *dir, const char *gguf_path, int n_random) {
    moe_tokenizer *a = NULL, *b = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_tokenizer_load(&a, dir, &err) == 0, "load %s: %s", dir, err.msg);
    CHECK_MSG(moe_tokenizer_load(&b, gguf_path, &err) == 0, "load %s: %s", gguf_path, err.msg);
    char *buf = NULL;
    size_t len = 0;
    cJSON *vec = NULL;
    if (read_file(fx(1, "tokenizers/vectors.json"), (size_t)64 << 20, &buf, &len, &err) == 0)
        vec = cJSON_ParseWithLength(buf, len);
    free(buf);
    CHECK(vec != NULL);
    if (!a || !b || !vec) {
        moe_tokenizer_free(a);
        moe_tokenizer_free(b);
        cJSON_Delete(vec);
        return;
    }
    const cJSON *cases = cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(vec, "tokenizers"), 0),
                                               "variants"), 0), "cases");
    int n_src = cJSON_GetArraySize(cases), n_bad = 0, n = 0;
    static const char *const extra[] = {
        "<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "[INST]", "<think>",
        " ", "  ", "\n", "\t", "\xE2\x96\x81", "\xF0\x9F\x98\x80", "\xE4\xB8\xAD", "e\xCC\x81", "\xC3\xA9",
        "'s", "123", "\xC2\xA0", "\xE3\x80\x80", "\x01"};
    uint64_t s = 99;
    char text[2048];
    for (int k = 0; k < n_src + n_random; k++) {
        size_t tl = 0;
        if (k < n_src) {
            const char *t = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, k), "text")->valuestring;
            tl = strlen(t) < sizeof text ? strlen(t) : sizeof text - 1;
            memcpy(text, t, tl);
        } else {
            for (int p = 0, np = 1 + (int)(rng_next(&s) % 10); p < np; p++) {
                const char *src;
                size_t sl;
                if (rng_next(&s) % 3 == 0) {
                    src = extra[rng_next(&s) % (sizeof extra / sizeof extra[0])];
                    sl = strlen(src);
                } else {
                    const char *w = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, (int)(rng_next(&s) % (uint64_t)n_src)),
                                                        "text")->valuestring;
                    size_t wl = strlen(w), at = wl ? rng_next(&s) % wl : 0;
                    sl = 1 + rng_next(&s) % 40;
                    if (at + sl > wl) sl = wl - at;
                    src = w + at;
                }
                if (tl + sl >= sizeof text) break;
                memcpy(text + tl, src, sl);
                tl += sl;
            }
        }
        for (int sp = 0; sp < 2; sp++) {
            int32_t *x = NULL, *y = NULL;
            int nx = 0, ny = 0;
            int rx = moe_tokenize(a, text, tl, sp, &x, &nx, &err), ry = moe_tokenize(b, text, tl, sp, &y, &ny, &err);
            n++;
            if (rx != 0 || ry != 0 || nx != ny || memcmp(x, y, (size_t)nx * sizeof *x) != 0) {
                if (n_bad++ < 3) CHECK_MSG(0, "%s: ids differ from tokenizer.json for \"%.*s\"", gguf_path,
                                           (int)(tl > 60 ? 60 : tl), text);
            }
            free(x);
            free(y);
        }
    }
    CHECK_EQ_INT(n_bad, 0);
    if (getenv("MOE_TEST_VERBOSE")) fprintf(stderr, "  %s: %d encodings, %d differ\n", gguf_path, n, n_bad);
    int same = 0, total = 0;
    CHECK_MSG(tok_gguf_vocab_check(gguf_path, dir, &same, &total, &err) == 0, "check: %s", err.msg);
    CHECK(total >= 30);
    CHECK_EQ_INT(same, total);
    moe_tokenizer_free(a);
    moe_tokenizer_free(b);
    cJSON_Delete(vec);
}

/* ----------------------------------------------------------------- sha256 */

TEST(sha256_fips_vectors) {
    char h[65];
    sha256_hex("", 0, h);
    CHECK(!strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    sha256_hex("abc", 3, h);
    CHECK(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 448 bits: two blocks */
    sha256_hex(m, strlen(m), h);
    CHECK(!strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    sha256_ctx c;
    unsigned char d[32], a[1001];
    memset(a, 'a', sizeof a);
    sha256_init(&c);
    for (int i = 0; i < 1000; i++) sha256_update(&c, a, i % 2 ? 999 : 1001); /* odd chunk sizes */
    sha256_final(&c, d);
    for (int i = 0; i < 32; i++) snprintf(h + 2 * i, 3, "%02x", d[i]);
    CHECK(!strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

/* ------------------------------------- the converter's files, key by key */

TEST(gguf_vocab_qwen2_style_as_converter) {
    const char *files[] = {"tokenizers/qwen2-style/tokenizer.json", "tokenizers/qwen2-style/tokenizer_config.json",
                           "gguf_tokenizers/hf/qwen2_style/config.json", NULL};
    const char *d = make_dir("qwen2_style", files);
    char out[1200];
    snprintf(out, sizeof out, "%s/q.gguf", test_tmpdir());
    tok_gguf_vocab v;
    if (build_write(d, "qwen2moe", 3003, out, &v) == 0) {
        CHECK(!strcmp(v.pre, "qwen2"));
        CHECK(!strcmp(v.pre_how, "layout"));
        CHECK_EQ_INT(v.note[0], 0);
        CHECK_EQ_INT(same_keys(out, fx(1, "gguf_tokenizers/qwen2_style.gguf"), NULL, 0), 0);
        same_ids(d, out, 1500);
    }
    tok_gguf_vocab_free(&v);
}

TEST(gguf_vocab_bl_mixed_as_converter) {
    char out[1200];
    snprintf(out, sizeof out, "%s/b.gguf", test_tmpdir());
    tok_gguf_vocab v;
    const char *d = fx(0, "gguf_tokenizers/hf/bl_mixed");
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", d);
    if (build_write(dir, "llama", 1504, out, &v) == 0) {
        CHECK(!strcmp(v.pre, "llama-bpe")); /* Llama 3's layout: its regex and ignore_merges */
        CHECK_EQ_INT(same_keys(out, fx(1, "gguf_tokenizers/bl_mixed.gguf"), NULL, 0), 0);
        same_ids(dir, out, 1500);
    }
    tok_gguf_vocab_free(&v);
}

/* The converter read tokenizer.model there; we read tokenizer.json: the
 * rebuilt scores are SentencePiece's own, bit for bit. */
TEST(gguf_vocab_spm_small_as_converter) {
    char out[1200], dir[1100];
    snprintf(out, sizeof out, "%s/s.gguf", test_tmpdir());
    snprintf(dir, sizeof dir, "%s", fx(0, "gguf_tokenizers/hf/spm_small"));
    tok_gguf_vocab v;
    if (build_write(dir, "llama", 1800, out, &v) == 0) {
        CHECK(!strcmp(v.model, "llama"));
        CHECK_EQ_INT(v.note[0], 0);
        CHECK_EQ_INT(same_keys(out, fx(1, "gguf_tokenizers/spm_small.gguf"), NULL, 0), 0);
        same_ids(dir, out, 1500);
    }
    tok_gguf_vocab_free(&v);
}

/* The real Llama vocabulary: llama.cpp's vocab file was converted from
 * tokenizer.model. Every key equal but add_sep_token (the current converter
 * adds it, the file predates it) and the scores of the 16 whitespace pieces
 * tokenizer.model scores -1e9: tokenizer.json lists their merges last,
 * and they are placed there. */
TEST(gguf_vocab_llama_spm_as_sentencepiece) {
    char out[1200], dir[1100];
    snprintf(out, sizeof out, "%s/l.gguf", test_tmpdir());
    snprintf(dir, sizeof dir, "%s", fx(0, "tokenizers/llama-spm"));
    tok_gguf_vocab v;
    if (build_write(dir, "llama", 32000, out, &v) != 0) {
        tok_gguf_vocab_free(&v);
        return;
    }
    const char *skip[] = {"tokenizer.ggml.scores", "tokenizer.ggml.add_sep_token"};
    const char *ref = fx(1, "gguf/ggml-vocab-llama-spm.gguf");
    CHECK_EQ_INT(same_keys(out, ref, skip, 2), 0);
    gguf_file a, b;
    moe_err err;
    if (gguf_open(&a, out, &err) == 0 && gguf_open(&b, ref, &err) == 0) {
        gguf_arr sa, sb, tok;
        CHECK(gguf_get_arr(&a, "tokenizer.ggml.scores", GGUF_VT_F32, &sa, &err) == 0);
        CHECK(gguf_get_arr(&b, "tokenizer.ggml.scores", GGUF_VT_F32, &sb, &err) == 0);
        CHECK(gguf_get_arr(&b, "tokenizer.ggml.tokens", GGUF_VT_STR, &tok, &err) == 0);
        int n_diff = 0, n_ws = 0;
        double lowest_other = 0, highest_moved = -1e30;
        for (uint64_t i = 259; i < sa.n && i < sb.n; i++) {
            double x = gguf_arr_float(&sa, i), y = gguf_arr_float(&sb, i);
            const char *s = gguf_arr_str(&tok, i);
            int chars = 0;
            for (const char *c = s; *c; c++) chars += ((unsigned char)*c & 0xC0) != 0x80;
            if (x == y) {
                if (chars > 1 && x < lowest_other) lowest_other = x;
                continue;
            }
            n_diff++;
            int ws = y == -1e9 && strspn(s, "\xE2\x96\x81") == strlen(s); /* all ▁ */
            n_ws += ws;
            CHECK_MSG(ws, "score of token %llu \"%s\": %g, tokenizer.model %g", (unsigned long long)i, s, x, y);
            if (chars > 1 && x > highest_moved) highest_moved = x;
        }
        CHECK_EQ_INT(n_diff, 16);
        CHECK_EQ_INT(n_ws, 16);
        /* below every other piece that merges, as -1e9 is */
        CHECK_MSG(highest_moved < lowest_other, "%g vs %g", highest_moved, lowest_other);
        gguf_close(&a);
        gguf_close(&b);
    }
    same_ids(dir, out, 1500);
    tok_gguf_vocab_free(&v);
}

/* GPT-NeoX's vocabulary: llama.cpp's converter names it by the hash of its
 * ids for the probe text, the same hash as OLMo's ("olmo"); the ids past
 * tokenizer.json's become [PADn] tokens. */
TEST(gguf_vocab_mpt_by_hash) {
    char out[1200], dir[1100];
    snprintf(out, sizeof out, "%s/m.gguf", test_tmpdir());
    snprintf(dir, sizeof dir, "%s", fx(0, "tokenizers/mpt"));
    tok_gguf_vocab v;
    if (build_write(dir, "olmoe", 50432, out, &v) == 0) {
        CHECK(!strcmp(v.pre, "olmo"));
        CHECK(!strcmp(v.pre_how, "hash"));
        CHECK_EQ_INT(v.n_padded, 50432 - 50277);
        gguf_file g;
        moe_err err;
        if (gguf_open(&g, out, &err) == 0) {
            gguf_arr tok, ty;
            CHECK(gguf_get_arr(&g, "tokenizer.ggml.tokens", GGUF_VT_STR, &tok, &err) == 0);
            CHECK(gguf_get_arr(&g, "tokenizer.ggml.token_type", GGUF_VT_I32, &ty, &err) == 0);
            CHECK(!strcmp(gguf_arr_str(&tok, 50431), "[PAD50431]"));
            CHECK_EQ_INT(gguf_arr_int(&ty, 50431), 5);
            CHECK_EQ_INT(gguf_arr_int(&ty, 0), 3);      /* <|endoftext|>: special */
            CHECK_EQ_INT(gguf_arr_int(&ty, 50254), 4);  /* a run of spaces: user-defined */
            gguf_close(&g);
        }
        same_ids(dir, out, 500);
    }
    tok_gguf_vocab_free(&v);
    /* llama.cpp's own vocab file of the real MPT tokenizer (when ../shared has
     * it): the same tokens and merges */
    const char *ref = "/work/shared/vocab/ggml-vocab-mpt.gguf";
    struct stat sb;
    if (stat(ref, &sb) != 0) return;
    const char *skip[] = {"tokenizer.ggml.pre", "tokenizer.ggml.token_type", "tokenizer.ggml.add_bos_token",
                          "tokenizer.ggml.add_eos_token", "tokenizer.ggml.bos_token_id",
                          "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"};
    CHECK_EQ_INT(same_keys(out, ref, skip, 7), 0);
}

/* ------------------------------------------------ pre-tokenizer by layout */

/* qwen2-style's vocabulary with the normalizer / pre-tokenizer /
 * ignore_merges of each family: named by its layout; an unknown layout is
 * "default" with a note. */
TEST(gguf_vocab_pre_by_layout) {
    static const char *const QWEN2 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+"
        "[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+";
    static const char *const LLAMA3 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+"
        "[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+";
    struct {
        const char *norm, *split; /* split NULL: ByteLevel with its regex */
        int ignore, add_prefix;
        const char *want;
    } cases[] = {
        {"null", NULL, 0, 0, "gpt-2"},
        {"{\"type\":\"NFC\"}", NULL, 0, 0, "olmo"},
        {"{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"}]}", NULL, 0, 0, "olmo"},
        {"{\"type\":\"NFC\"}", QWEN2, 0, 0, "qwen2"},
        {"null", LLAMA3, 1, 0, "llama-bpe"},
        {"null", LLAMA3, 0, 0, "default"},        /* Llama 3's regex without ignore_merges */
        {"null", QWEN2, 0, 0, "default"},         /* Qwen2's without NFC */
        {"{\"type\":\"NFKC\"}", NULL, 0, 0, "default"},
        {"null", NULL, 0, 1, "default"},          /* ByteLevel adding a prefix space */
    };
    char *buf;
    size_t len;
    moe_err err;
    CHECK(read_file(fx(0, "tokenizers/qwen2-style/tokenizer.json"), (size_t)64 << 20, &buf, &len, &err) == 0);
    cJSON *tj = cJSON_ParseWithLength(buf, len);
    free(buf);
    for (size_t i = 0; tj && i < sizeof cases / sizeof cases[0]; i++) {
        char name[32], pre[1024], path[1300];
        snprintf(name, sizeof name, "layout%zu", i);
        const char *none[] = {NULL};
        const char *d = make_dir(name, none);
        if (cases[i].split)
            snprintf(pre, sizeof pre, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
                     "{\"Regex\":\"%s\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
                     "\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]}", cases[i].split);
        else
            snprintf(pre, sizeof pre, "{\"type\":\"ByteLevel\",\"add_prefix_space\":%s,\"trim_offsets\":true,"
                     "\"use_regex\":true}", cases[i].add_prefix ? "true" : "false");
        cJSON *t = cJSON_Duplicate(tj, 1);
        cJSON_ReplaceItemInObject(t, "normalizer", cJSON_Parse(cases[i].norm));
        cJSON_ReplaceItemInObject(t, "pre_tokenizer", cJSON_Parse(pre));
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(t, "model"), "ignore_merges", cJSON_CreateBool(cases[i].ignore));
        char *s = cJSON_PrintUnformatted(t);
        snprintf(path, sizeof path, "%s/tokenizer.json", d);
        write_text(path, s);
        free(s);
        cJSON_Delete(t);
        tok_gguf_vocab v;
        int rc = tok_gguf_vocab_build(&v, d, "qwen2moe", 3003, &err);
        CHECK_EQ_INT(rc, 0);
        CHECK_MSG(!strcmp(v.pre, cases[i].want), "case %zu: pre \"%s\", expected \"%s\"", i, v.pre, cases[i].want);
        if (!strcmp(cases[i].want, "default")) {
            CHECK(!strcmp(v.pre_how, "none"));
            CHECK_STR_CONTAINS(v.note, "tokenizer.ggml.pre = \"default\"");
        } else {
            CHECK(!strcmp(v.pre_how, "layout"));
            /* the family's file gives tokenizer.json's ids */
            snprintf(path, sizeof path, "%s/v.gguf", d);
            tok_gguf_vocab_free(&v);
            if (build_write(d, "qwen2moe", 3003, path, &v) == 0) same_ids(d, path, 200);
        }
        tok_gguf_vocab_free(&v);
    }
    cJSON_Delete(tj);
}

/* ----------------------------------------------- special tokens and flags */

/* SpecialVocab's rules: tokenizer_config.json's names -> added token ids,
 * config.json's ids for the rest, the post-processor's add_bos/add_eos, a
 * chat template; a [PAD] past the tokenizer; an id outside the vocabulary
 * left out with a note. */
TEST(gguf_vocab_special_tokens) {
    const char *files[] = {"cli/tokenizer.json", NULL};
    const char *d = make_dir("special", files);
    char p[1300];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", d);
    write_text(p, "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\", \"unk_token\": \"<unk>\","
                  " \"add_eos_token\": true, \"chat_template\": \"{{ messages }}\"}");
    snprintf(p, sizeof p, "%s/config.json", d);
    write_text(p, "{\"pad_token_id\": 0, \"eos_token_id\": 1, \"mask_token_id\": 9999}");
    tok_gguf_vocab v;
    snprintf(p, sizeof p, "%s/sp.gguf", d);
    if (build_write(d, "qwen2moe", 520, p, &v) == 0) {
        CHECK_EQ_INT(v.n_padded, 8);
        CHECK_STR_CONTAINS(v.note, "mask token id 9999 is outside the vocabulary");
        gguf_file g;
        moe_err err;
        if (gguf_open(&g, p, &err) == 0) {
            int64_t x = -1;
            bool b = false;
            const char *s = NULL;
            CHECK(gguf_get_int(&g, "tokenizer.ggml.bos_token_id", &x, &err) == 0 && x == 1);
            CHECK(gguf_get_int(&g, "tokenizer.ggml.eos_token_id", &x, &err) == 0 && x == 2);     /* not config's 1 */
            CHECK(gguf_get_int(&g, "tokenizer.ggml.unknown_token_id", &x, &err) == 0 && x == 0);
            CHECK(gguf_get_int(&g, "tokenizer.ggml.padding_token_id", &x, &err) == 0 && x == 0);
            CHECK(!gguf_find_kv(&g, "tokenizer.ggml.mask_token_id"));
            CHECK(gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &b, &err) == 0 && b);     /* the template */
            CHECK(gguf_get_bool(&g, "tokenizer.ggml.add_eos_token", &b, &err) == 0 && b);     /* the config */
            CHECK(gguf_get_str(&g, "tokenizer.chat_template", &s, NULL, &err) == 0 && !strcmp(s, "{{ messages }}"));
            gguf_close(&g);
        }
        moe_tokenizer *t = NULL;
        CHECK(moe_tokenizer_load(&t, p, &err) == 0);
        int32_t *ids = NULL;
        int n = 0;
        if (t && moe_tokenize(t, "hi", 2, 1, &ids, &n, &err) == 0) {
            CHECK(n >= 3 && ids[0] == 1 && ids[n - 1] == 2);
            free(ids);
        }
        moe_tokenizer_free(t);
    }
    tok_gguf_vocab_free(&v);
    /* no tokenizer_config.json: the template's BOS names the id (no file does) */
    const char *files2[] = {"cli/tokenizer.json", NULL};
    d = make_dir("special2", files2);
    snprintf(p, sizeof p, "%s/sp2.gguf", d);
    if (build_write(d, "llama", 512, p, &v) == 0) {
        CHECK_STR_CONTAINS(v.note, "post-processor adds (<s>)");
        same_ids(d, p, 300);
    }
    tok_gguf_vocab_free(&v);
}

/* --------------------------------------------------------------- bad input */

/* Each class gives no vocabulary (rc 1) and a note saying why, never an
 * error or a crash: the weights still convert. */
TEST(gguf_vocab_bad_input) {
    tok_gguf_vocab v;
    moe_err err = {{0}};
    const char *none[] = {NULL};
    const char *d = make_dir("empty", none);
    CHECK_EQ_INT(tok_gguf_vocab_build(&v, d, "llama", 100, &err), 1); /* no tokenizer.json */
    CHECK_EQ_INT(v.note[0], 0);
    tok_gguf_vocab_free(&v);
    struct {
        const char *json, *note;
        int n_vocab;
    } cases[] = {
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [", "tokenizer.json", 10},
        {"[1, 2, 3]", "tokenizer.json", 10},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", "WordPiece", 10},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}}",
         "neither byte fallback nor ByteLevel", 10},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", "more than the model's 2 embedding rows", 2},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", "tokenizer.json", 10},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 70000000}, \"merges\": []}}", "tokenizer.json", 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32], p[1300];
        snprintf(name, sizeof name, "bad%zu", i);
        d = make_dir(name, none);
        snprintf(p, sizeof p, "%s/tokenizer.json", d);
        write_text(p, cases[i].json);
        int rc = tok_gguf_vocab_build(&v, d, "llama", cases[i].n_vocab, &err);
        CHECK_MSG(rc == 1, "case %zu: rc %d", i, rc);
        CHECK_STR_CONTAINS(v.note, cases[i].note);
        CHECK_STR_CONTAINS(v.note, "no vocabulary");
        tok_gguf_vocab_free(&v);
    }
    /* a broken tokenizer_config.json / config.json beside a good tokenizer.json */
    const char *files[] = {"cli/tokenizer.json", NULL};
    d = make_dir("badcfg", files);
    char p[1300];
    snprintf(p, sizeof p, "%s/config.json", d);
    write_text(p, "{\"bos_token_id\": ");
    int rc = tok_gguf_vocab_build(&v, d, "llama", 512, &err);
    CHECK_EQ_INT(rc, 0);
    CHECK_STR_CONTAINS(v.note, "config.json is not readable JSON");
    tok_gguf_vocab_free(&v);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", d);
    write_text(p, "{\"bos_token\": [1, 2], \"eos_token\": 7, \"chat_template\": 5, \"add_bos_token\": \"yes\"}");
    rc = tok_gguf_vocab_build(&v, d, "llama", 512, &err);
    CHECK_MSG(rc == 0 || rc == 1, "rc %d", rc);
    tok_gguf_vocab_free(&v);
    CHECK_EQ_INT(tok_gguf_vocab_build(&v, d, "llama", 0, &err), 1);
    tok_gguf_vocab_free(&v);
}

/* --------------------------------------------------- GGUF -> tokenizer.json */

/* ids (with and without special tokens) of cases[] against a tokenizer */
static int check_cases(const moe_tokenizer *t, const cJSON *cases, const char *what) {
    int bad = 0, n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        for (int sp = 0; sp < 2; sp++) {
            const cJSON *want = cJSON_GetObjectItem(c, sp ? "ids_special" : "ids");
            int32_t *ids = NULL;
            int k = 0, same;
            moe_err err;
            same = moe_tokenize(t, text, strlen(text), sp, &ids, &k, &err) == 0 && k == cJSON_GetArraySize(want);
            for (int i = 0; same && i < k; i++) same = ids[i] == cJSON_GetArrayItem(want, i)->valueint;
            if (!same && bad++ < 3) CHECK_MSG(0, "%s: ids differ from HF for \"%.50s\"", what, text);
            free(ids);
            n++;
        }
    }
    return n;
}

static cJSON *load_json_file(const char *path) { return test_load_json(path); }

/* A GGUF's vocabulary as tokenizer.json: the HF ids of the fixture (the
 * ones its GGUF was checked against) and the GGUF tokenizer's ids on random
 * texts. (tools/check_gguf_vocab.py: HF tokenizers and transformers load
 * the rebuilt files with the same ids.) */
TEST(gguf_vocab_to_tokenizer_json) {
    static const struct {
        const char *gguf, *fixture;
    } cases[] = {
        {"gguf_tokenizers/qwen2_style.gguf", "qwen2_style"},
        {"gguf_tokenizers/bl_mixed.gguf", "bl_mixed"},
        {"gguf_tokenizers/spm_small.gguf", "spm_small"},
        {"gguf_tokenizers/qwen2_moe_q8_0_tok.gguf", "byte_model"},
        {"gguf/ggml-vocab-llama-spm.gguf", NULL},
    };
    cJSON *vec = load_json_file(fx(0, "gguf_tokenizers/vectors.json"));
    cJSON *tvec = load_json_file(fx(0, "tokenizers/vectors.json"));
    CHECK(vec && tvec);
    for (size_t i = 0; vec && tvec && i < sizeof cases / sizeof cases[0]; i++) {
        char d[1200], gguf[1100], note[256];
        snprintf(d, sizeof d, "%s/json%zu", test_tmpdir(), i);
        mkdir(d, 0755);
        snprintf(gguf, sizeof gguf, "%s", fx(0, cases[i].gguf));
        moe_err err = {{0}};
        int rc = tok_gguf_to_json(gguf, d, note, sizeof note, &err);
        CHECK_MSG(rc == 0, "%s: rc %d %s %s", gguf, rc, note, err.msg);
        if (rc != 0) continue;
        moe_tokenizer *t = NULL;
        CHECK_MSG(moe_tokenizer_load(&t, d, &err) == 0, "%s: %s", d, err.msg);
        if (!t) continue;
        const cJSON *cs = NULL, *f;
        if (cases[i].fixture) {
            cJSON_ArrayForEach(f, cJSON_GetObjectItem(vec, "fixtures"))
                if (!strcmp(cJSON_GetObjectItem(f, "name")->valuestring, cases[i].fixture))
                    cs = cJSON_GetObjectItem(f, "cases");
        } else { /* the real Llama tokenizer: tokenizers/vectors.json, llama-spm "legacy" */
            cs = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(
                     cJSON_GetObjectItem(tvec, "tokenizers"), 0), "variants"), 0), "cases");
        }
        CHECK(cs != NULL);
        int n = cs ? check_cases(t, cs, d) : 0;
        CHECK(n >= 48);
        moe_tokenizer_free(t);
        same_ids(d, gguf, 500);
    }
    cJSON_Delete(vec);
    cJSON_Delete(tvec);
    /* a file without a vocabulary: nothing written, a note */
    char path[1200], note[256];
    snprintf(path, sizeof path, "%s/none.gguf", test_tmpdir());
    gguf_wkv kv[2] = {gguf_wstr("general.architecture", "llama"), gguf_wstr("tokenizer.ggml.model", "none")};
    moe_err err = {{0}};
    CHECK(gguf_write(path, kv, 2, NULL, 0, &err) == 0);
    CHECK_EQ_INT(tok_gguf_to_json(path, test_tmpdir(), note, sizeof note, &err), 1);
    CHECK_STR_CONTAINS(note, "carries no vocabulary");
}

/* ------------------------------------------ SentencePiece layouts (llama) */

/* The real Llama vocabulary in the layouts of tests/fixtures/tokenizers'
 * llama-spm variants: no prefix (add_space_prefix false) and BOS+EOS give
 * tokenizer.json's ids; a Metaspace that splits at spaces or prefixes only
 * the first word gets a note (a SentencePiece GGUF can say neither), and
 * still the same ids on texts without special tokens, space runs or a
 * leading space. */
TEST(gguf_vocab_spm_layouts) {
    static const struct {
        const char *variant, *note; /* note: expected in v.note (NULL: none) */
        int all_texts;              /* ids must match on every text, not only plain ones */
    } cases[] = {
        {"metaspace-never", NULL, 1},
        {"bos-eos-template", NULL, 1},
        {"metaspace-first", "text after a special token may tokenize differently", 0},
        {"metaspace-always-split", "runs of spaces may tokenize differently", 0},
    };
    cJSON *tvec = load_json_file(fx(0, "tokenizers/vectors.json"));
    cJSON *tj = load_json_file(fx(1, "tokenizers/llama-spm/tokenizer.json"));
    CHECK(tvec && tj);
    const cJSON *vars = tvec ? cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(tvec, "tokenizers"), 0),
                                                   "variants") : NULL;
    for (size_t i = 0; tj && vars && i < sizeof cases / sizeof cases[0]; i++) {
        const cJSON *var = NULL, *x;
        cJSON_ArrayForEach(x, vars) if (!strcmp(cJSON_GetObjectItem(x, "name")->valuestring, cases[i].variant)) var = x;
        CHECK(var != NULL);
        if (!var) continue;
        cJSON *t = cJSON_Duplicate(tj, 1);
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(var, "patch"))
            cJSON_ReplaceItemInObject(t, p->string, cJSON_Duplicate(p, 1));
        char name[32], path[1300], out[1300];
        snprintf(name, sizeof name, "spm%zu", i);
        const char *files[] = {"tokenizers/llama-spm/tokenizer_config.json", NULL};
        const char *d = make_dir(name, files);
        snprintf(path, sizeof path, "%s/tokenizer.json", d);
        char *s = cJSON_PrintUnformatted(t);
        write_text(path, s);
        free(s);
        cJSON_Delete(t);
        snprintf(out, sizeof out, "%s/v.gguf", d);
        tok_gguf_vocab v;
        if (build_write(d, "llama", 32000, out, &v) == 0) {
            if (cases[i].note) CHECK_STR_CONTAINS(v.note, cases[i].note);
            else CHECK_MSG(!v.note[0], "%s: note \"%s\"", cases[i].variant, v.note);
            moe_tokenizer *a = NULL, *b = NULL;
            moe_err err;
            CHECK(moe_tokenizer_load(&a, d, &err) == 0 && moe_tokenizer_load(&b, out, &err) == 0);
            int n = 0, bad = 0;
            const cJSON *c;
            cJSON_ArrayForEach(c, cJSON_GetObjectItem(var, "cases")) {
                const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
                if (!cases[i].all_texts && (strchr(text, '<') || strstr(text, "  ") || text[0] == ' ')) continue;
                for (int sp = 0; a && b && sp < 2; sp++) {
                    int32_t *x1 = NULL, *y1 = NULL;
                    int nx = 0, ny = 0;
                    moe_tokenize(a, text, strlen(text), sp, &x1, &nx, &err);
                    moe_tokenize(b, text, strlen(text), sp, &y1, &ny, &err);
                    if (nx != ny || memcmp(x1, y1, (size_t)nx * sizeof *x1) != 0)
                        if (bad++ < 2) CHECK_MSG(0, "%s: ids differ for \"%.50s\"", cases[i].variant, text);
                    free(x1);
                    free(y1);
                    n++;
                }
            }
            CHECK(n >= 40);
            moe_tokenizer_free(a);
            moe_tokenizer_free(b);
        }
        tok_gguf_vocab_free(&v);
    }
    cJSON_Delete(tvec);
    cJSON_Delete(tj);
}
