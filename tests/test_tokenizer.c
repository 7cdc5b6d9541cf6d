/*
 * test_tokenizer.c - the tokenizer against HF `tokenizers`: every text of
 * tests/fixtures/tokenizers/vectors.json (made by
 * tools/make_tokenizer_fixtures.py) must give HF's ids with and without
 * special tokens, and HF's decoded strings with and without skip_special,
 * for each fixture tokenizer (llama-spm, mpt, qwen2-style) and each variant
 * of it (a patch of its tokenizer.json: Metaspace layouts, prefix space,
 * ignore_merges, lstrip/rstrip/single_word added tokens, templates).
 * decode(encode(x)) == x is checked where HF's own round trip holds (it does
 * not for the SentencePiece Metaspace layouts, which drop a leading space,
 * nor for text NFC changes). Then BOS/EOS, bad input of every class, and
 * long inputs (no quadratic blow-up).
 */
#include "test.h"
#include "test_util.h"
#include "base/mapfile.h"
#include "moe.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------- helpers */

static char g_path[1024];

static const char *fixture(const char *rel) {
    snprintf(g_path, sizeof g_path, "%s/tokenizers/%s", test_fixtures(), rel);
    return g_path;
}

static cJSON *load_json(const char *path) { return test_load_json(path); }

static int write_text(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(s, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* Replace the values at dotted paths ("model.ignore_merges") in root. */
static void apply_patch(cJSON *root, const cJSON *patch) {
    const cJSON *p;
    cJSON_ArrayForEach(p, patch) {
        char path[256];
        snprintf(path, sizeof path, "%s", p->string);
        cJSON *node = root;
        char *key = path, *dot;
        while ((dot = strchr(key, '.')) != NULL) {
            *dot = 0;
            node = cJSON_GetObjectItemCaseSensitive(node, key);
            key = dot + 1;
        }
        if (!node) continue;
        cJSON *v = cJSON_Duplicate(p, 1);
        if (cJSON_HasObjectItem(node, key)) cJSON_ReplaceItemInObjectCaseSensitive(node, key, v);
        else cJSON_AddItemToObject(node, key, v);
    }
}

static int ids_equal(const int32_t *got, int n, const cJSON *want) {
    if (n != cJSON_GetArraySize(want)) return 0;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, want) if (got[i++] != (int32_t)v->valuedouble) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, int n) {
    fprintf(stderr, "    %s:", what);
    for (int i = 0; i < n && i < 24; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 24 ? " ...\n" : "\n");
}

typedef struct counts {
    int cases, checks;
} counts;

/* One case: ids (plain and with specials), decodes, round trip. */
static void check_case(const moe_tokenizer *t, const cJSON *c, const char *name, counts *k) {
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    size_t len = strlen(text);
    const cJSON *want = cJSON_GetObjectItem(c, "ids");
    const cJSON *want_sp = cJSON_GetObjectItem(c, "ids_special");
    moe_err err = {{0}};
    int32_t *ids = NULL, *ids_sp = NULL;
    int n = 0, n_sp = 0;
    k->cases++;
    int rc = moe_tokenize(t, text, len, 0, &ids, &n, &err);
    CHECK_MSG(rc == 0, "%s: tokenize failed: %s", name, err.msg);
    k->checks++;
    if (rc == 0 && !ids_equal(ids, n, want)) {
        CHECK_MSG(0, "%s: ids differ for %.60s", name, text);
        print_ids("got ", ids, n);
    }
    rc = moe_tokenize(t, text, len, 1, &ids_sp, &n_sp, &err);
    k->checks++;
    CHECK_MSG(rc == 0 && ids_equal(ids_sp, n_sp, want_sp), "%s: ids with specials differ for %.60s",
              name, text);
    if (rc == 0) {
        static const char *const keys[2] = {"decode", "decode_skip"};
        for (int skip = 0; skip < 2; skip++) {
            char *out = NULL;
            size_t out_len = 0;
            const char *w = cJSON_GetObjectItem(c, keys[skip])->valuestring;
            rc = moe_detokenize(t, ids_sp, n_sp, skip, &out, &out_len, &err);
            k->checks++;
            CHECK_MSG(rc == 0 && out_len == strlen(w) && memcmp(out, w, out_len) == 0,
                      "%s: %s gives \"%.60s\", HF \"%.60s\" (text %.40s)", name, keys[skip],
                      out ? out : err.msg, w, text);
            free(out);
        }
    }
    if (cJSON_IsTrue(cJSON_GetObjectItem(c, "roundtrip")) && ids) {
        char *out = NULL;
        size_t out_len = 0;
        rc = moe_detokenize(t, ids, n, 0, &out, &out_len, &err);
        k->checks++;
        CHECK_MSG(rc == 0 && out_len == len && memcmp(out, text, len) == 0,
                  "%s: decode(encode(x)) != x for %.60s", name, text);
        free(out);
    }
    free(ids);
    free(ids_sp);
}

/* Every variant of one fixture tokenizer, its vectors in the file `vectors`. */
static void check_fixture_in(const char *vectors, const char *tok_name) {
    cJSON *vec = load_json(fixture(vectors));
    CHECK_MSG(vec != NULL, "cannot read %s", fixture(vectors));
    if (!vec) return;
    const cJSON *tk = NULL, *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(vec, "tokenizers"))
        if (strcmp(cJSON_GetObjectItem(e, "name")->valuestring, tok_name) == 0) tk = e;
    CHECK_MSG(tk != NULL, "vectors.json has no %s", tok_name);
    counts k = {0, 0};
    const cJSON *var;
    const cJSON *variants = tk ? cJSON_GetObjectItem(tk, "variants") : NULL;
    cJSON_ArrayForEach(var, variants) {
        const char *vname = cJSON_GetObjectItem(var, "name")->valuestring;
        const cJSON *patch = cJSON_GetObjectItem(var, "patch");
        char dir[1024], path[1200], name[128];
        snprintf(dir, sizeof dir, "%s", fixture(tok_name));
        snprintf(name, sizeof name, "%s/%s", tok_name, vname);
        moe_tokenizer *t = NULL;
        moe_err err = {{0}};
        if (cJSON_GetArraySize(patch) == 0) { /* load the directory as a model dir is */
            CHECK_MSG(moe_tokenizer_load(&t, dir, &err) == 0, "%s: %s", name, err.msg);
        } else {
            snprintf(path, sizeof path, "%s/tokenizer.json", dir);
            cJSON *tj = load_json(path);
            CHECK(tj != NULL);
            if (!tj) continue;
            apply_patch(tj, patch);
            char *s = cJSON_PrintUnformatted(tj);
            snprintf(path, sizeof path, "%s/%s-%s.json", test_tmpdir(), tok_name, vname);
            CHECK(s && write_text(path, s, strlen(s)) == 0);
            free(s);
            cJSON_Delete(tj);
            CHECK_MSG(moe_tokenizer_load(&t, path, &err) == 0, "%s: %s", name, err.msg);
        }
        if (!t) continue;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(var, "cases")) check_case(t, c, name, &k);
        moe_tokenizer_free(t);
    }
    if (getenv("MOE_TEST_VERBOSE"))
        fprintf(stderr, "  %s: %d cases, %d checks\n", tok_name, k.cases, k.checks);
    CHECK(k.cases > 100);
    cJSON_Delete(vec);
}

static void check_fixture(const char *tok_name) { check_fixture_in("vectors.json", tok_name); }

TEST(tokenizer_hf_llama_spm) { check_fixture("llama-spm"); }
TEST(tokenizer_hf_mpt) { check_fixture("mpt"); }
TEST(tokenizer_hf_qwen2_style) { check_fixture("qwen2-style"); }
/* gpt-oss's shape: no normalizer, Split(o200k regex) + ByteLevel(use_regex false), harmony
 * specials (tools/make_o200k_tokenizer_fixture.py) */
TEST(tokenizer_hf_o200k_style) { check_fixture_in("o200k-style/vectors.json", "o200k-style"); }

/* Long inputs vs HF: 64 KiB of one repeated string (long words, long runs
 * of one class, many specials) and of the test texts; the vectors keep the
 * id count and an FNV-1a hash of the ids. */
static uint32_t fnv1a_ids(const int32_t *ids, int n) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) h = (h ^ (((uint32_t)ids[i] >> (8 * b)) & 0xFF)) * 16777619u;
    return h;
}

static void check_long(const char *vectors, int min_checked) {
    cJSON *vec = load_json(fixture(vectors));
    CHECK(vec != NULL);
    if (!vec) return;
    const cJSON *tk;
    int n_checked = 0;
    cJSON_ArrayForEach(tk, cJSON_GetObjectItem(vec, "tokenizers")) {
        const char *name = cJSON_GetObjectItem(tk, "name")->valuestring;
        moe_tokenizer *t = NULL;
        moe_err err = {{0}};
        CHECK_MSG(moe_tokenizer_load(&t, fixture(name), &err) == 0, "%s: %s", name, err.msg);
        if (!t) continue;
        /* the test texts joined by newlines (the cases of the first variant) */
        size_t cap = 1 << 17, len = 0;
        char *mixed = malloc(cap);
        const cJSON *c, *var = cJSON_GetArrayItem(cJSON_GetObjectItem(tk, "variants"), 0);
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(var, "cases")) {
            const char *s = cJSON_GetObjectItem(c, "text")->valuestring;
            size_t n = strlen(s);
            if (len + n + 1 > cap) break;
            if (len) mixed[len++] = '\n';
            memcpy(mixed + len, s, n);
            len += n;
        }
        const cJSON *lc;
        cJSON_ArrayForEach(lc, cJSON_GetObjectItem(tk, "long")) {
            const char *fill = cJSON_GetObjectItem(lc, "fill")->valuestring;
            size_t bytes = (size_t)cJSON_GetObjectItem(lc, "bytes")->valuedouble;
            int repeat = (int)cJSON_GetObjectItem(lc, "repeat")->valuedouble;
            int is_mixed = strcmp(fill, "(test texts)") == 0;
            const char *unit = is_mixed ? mixed : fill;
            size_t ul = is_mixed ? len : strlen(fill);
            char *text = malloc(bytes + ul + 1); /* unit repeated, cut to `bytes` */
            size_t at = 0;
            for (int r = 0; at < bytes && (is_mixed || r < repeat); r++) {
                memcpy(text + at, unit, ul);
                at += ul;
            }
            int32_t *ids = NULL;
            int n = 0;
            int rc = moe_tokenize(t, text, bytes, 0, &ids, &n, &err);
            CHECK_MSG(rc == 0, "%s long %s: %s", name, fill, err.msg);
            if (rc == 0) {
                CHECK_MSG(n == (int)cJSON_GetObjectItem(lc, "n_ids")->valuedouble &&
                              fnv1a_ids(ids, n) == (uint32_t)cJSON_GetObjectItem(lc, "fnv1a")->valuedouble,
                          "%s long \"%s\" x%d: %d ids differ from HF's", name, fill, repeat, n);
                n_checked++;
            }
            free(ids);
            free(text);
        }
        free(mixed);
        moe_tokenizer_free(t);
    }
    CHECK(n_checked >= min_checked);
    cJSON_Delete(vec);
}

TEST(tokenizer_hf_long) { check_long("vectors.json", 36); }
TEST(tokenizer_hf_o200k_long) { check_long("o200k-style/vectors.json", 13); }

/* ------------------------------------------------------ specials, ids */

static moe_tokenizer *load_ok(const char *path) {
    moe_tokenizer *t = NULL;
    moe_err err = {{0}};
    int rc = moe_tokenizer_load(&t, path, &err);
    CHECK_MSG(rc == 0, "load %s: %s", path, err.msg);
    return t;
}

static int encode(const moe_tokenizer *t, const char *s, size_t n, int sp, int32_t *out, int max) {
    int32_t *ids;
    int k;
    moe_err err;
    if (moe_tokenize(t, s, n, sp, &ids, &k, &err) != 0) return -1;
    for (int i = 0; i < k && i < max; i++) out[i] = ids[i];
    free(ids);
    return k;
}

TEST(tokenizer_bos_eos_vocab) {
    moe_tokenizer *t = load_ok(fixture("llama-spm"));
    if (t) {
        CHECK_EQ_INT(moe_tokenizer_vocab(t), 32000);
        CHECK_EQ_INT(moe_tokenizer_bos(t), 1);
        CHECK_EQ_INT(moe_tokenizer_eos(t), 2);
        int32_t ids[8];
        CHECK_EQ_INT(encode(t, "", 0, 1, ids, 8), 1); /* BOS only */
        CHECK_EQ_INT(ids[0], 1);
        CHECK_EQ_INT(encode(t, "", 0, 0, ids, 8), 0);
        moe_tokenizer_free(t);
    }
    /* mpt: names from tokenizer_config.json, or only the usual names */
    if ((t = load_ok(fixture("mpt")))) {
        CHECK_EQ_INT(moe_tokenizer_vocab(t), 50277);
        CHECK_EQ_INT(moe_tokenizer_bos(t), 0);
        CHECK_EQ_INT(moe_tokenizer_eos(t), 0);
        moe_tokenizer_free(t);
    }
    if ((t = load_ok(fixture("mpt/tokenizer.json")))) {
        CHECK_EQ_INT(moe_tokenizer_bos(t), -1);
        CHECK_EQ_INT(moe_tokenizer_eos(t), 0);
        moe_tokenizer_free(t);
    }
    /* Qwen: bos_token null; eos <|im_end|> from the config, else <|endoftext|> */
    if ((t = load_ok(fixture("qwen2-style")))) {
        CHECK_EQ_INT(moe_tokenizer_vocab(t), 3003);
        CHECK_EQ_INT(moe_tokenizer_bos(t), -1);
        CHECK_EQ_INT(moe_tokenizer_eos(t), 3002);
        int32_t ids[8];
        CHECK_EQ_INT(encode(t, "<|im_end|>", 10, 1, ids, 8), 1);
        CHECK_EQ_INT(ids[0], 3002);
        moe_tokenizer_free(t);
    }
    if ((t = load_ok(fixture("qwen2-style/tokenizer.json")))) {
        CHECK_EQ_INT(moe_tokenizer_bos(t), -1);
        CHECK_EQ_INT(moe_tokenizer_eos(t), 3000);
        moe_tokenizer_free(t);
    }
}

TEST(tokenizer_detokenize_special) {
    moe_tokenizer *t = load_ok(fixture("qwen2-style"));
    if (!t) return;
    moe_err err;
    const char *s = "<|im_start|>user\nHi<|im_end|>";
    int32_t *ids;
    int n;
    CHECK(moe_tokenize(t, s, strlen(s), 0, &ids, &n, &err) == 0);
    CHECK_EQ_INT(ids[0], 3001);
    CHECK_EQ_INT(ids[n - 1], 3002);
    char *out;
    size_t len;
    CHECK(moe_detokenize(t, ids, n, 0, &out, &len, &err) == 0);
    CHECK(len == strlen(s) && strcmp(out, s) == 0);
    free(out);
    CHECK(moe_detokenize(t, ids, n, 1, &out, &len, &err) == 0);
    CHECK(strcmp(out, "user\nHi") == 0);
    free(out);
    /* ids naming no token are dropped, as HF does (a padded embedding) */
    int32_t odd[] = {-5, ids[1], 99999, ids[2], 3003};
    CHECK(moe_detokenize(t, odd, 5, 0, &out, &len, &err) == 0);
    CHECK(out && strlen(out) == len && len > 0);
    free(out);
    CHECK(moe_detokenize(t, ids, 0, 0, &out, &len, &err) == 0);
    CHECK(out && out[0] == 0 && len == 0);
    free(out);
    CHECK(moe_detokenize(t, ids, -1, 0, &out, &len, &err) == -1);
    CHECK(moe_detokenize(t, NULL, 3, 0, &out, &len, &err) == -1);
    free(ids);
    moe_tokenizer_free(t);
}

/* Invalid UTF-8 is replaced by U+FFFD per maximal invalid subpart, as
 * Python's errors="replace" (and so HF on that text) does. */
TEST(tokenizer_invalid_utf8) {
    static const struct {
        const char *bad, *good;
    } cases[] = {
        {"a\xff" "b", "a\xEF\xBF\xBD" "b"},
        {"\xC3", "\xEF\xBF\xBD"},                              /* truncated 2-byte */
        {"x\xE2\x82", "x\xEF\xBF\xBD"},                        /* truncated 3-byte: one U+FFFD */
        {"\xED\xA0\x80!", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD!"}, /* surrogate: three */
        {"\xF0\x9F\x98", "\xEF\xBF\xBD"},
        {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},              /* overlong */
        {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
    };
    const char *names[] = {"llama-spm", "mpt", "qwen2-style"};
    for (int k = 0; k < 3; k++) {
        moe_tokenizer *t = load_ok(fixture(names[k]));
        if (!t) continue;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int32_t a[32], b[32];
            int na = encode(t, cases[i].bad, strlen(cases[i].bad), 0, a, 32);
            int nb = encode(t, cases[i].good, strlen(cases[i].good), 0, b, 32);
            CHECK_MSG(na >= 0 && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0,
                      "%s: case %zu", names[k], i);
        }
        /* an embedded NUL is a character like any other */
        int32_t a[8];
        CHECK(encode(t, "a\0b", 3, 0, a, 8) >= 2);
        moe_tokenizer_free(t);
    }
}

/* ------------------------------------------------------------ bad input */

static void load_bad_file(const char *json, const char *needle, int line) {
    char path[600];
    snprintf(path, sizeof path, "%s/bad.json", test_tmpdir());
    if (write_text(path, json, strlen(json)) != 0) {
        CHECK_MSG(0, "line %d: cannot write %s", line, path);
        return;
    }
    moe_tokenizer *t = NULL;
    moe_err err = {{0}};
    int rc = moe_tokenizer_load(&t, path, &err);
    CHECK_MSG(rc == -1 && t == NULL, "line %d: accepted (wanted \"%s\")", line, needle);
    if (rc == -1)
        CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: \"%s\" lacks \"%s\"", line, err.msg, needle);
    moe_tokenizer_free(t);
}
#define BAD(json, needle) load_bad_file(json, needle, __LINE__)

#define VOCAB "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2}"
#define MODEL(extra) "{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"a b\"]" extra "}}"
#define MODEL_KV "\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"a b\"]}}"

TEST(tokenizer_bad_input) {
    moe_tokenizer *t = NULL;
    moe_err err = {{0}};
    CHECK(moe_tokenizer_load(&t, "/nonexistent/tokenizer.json", &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "cannot open");
    CHECK(moe_tokenizer_load(&t, test_tmpdir(), &err) == -1); /* a directory without one */
    CHECK_STR_CONTAINS(err.msg, "no tokenizer.json");
    CHECK(moe_tokenizer_load(NULL, "x", &err) == -1);

    BAD("", "bad JSON");
    BAD("{\"model\": {\"type\": \"BPE\",", "bad JSON");
    BAD("[1, 2]", "not a JSON object");
    BAD("{}", "no \"model\"");
    BAD("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", "\"WordPiece\" is unsupported");
    BAD("{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}}", "\"Unigram\" is unsupported");
    BAD("{\"model\":{\"vocab\":[[\"a\",0.0]]}}", "\"Unigram\" is unsupported"); /* untyped */
    BAD("{\"model\":{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}}", "vocab is not an object");
    BAD("{\"model\":{\"type\":\"BPE\"," VOCAB "}}", "merges is not a list");
    BAD(MODEL(",\"continuing_subword_prefix\":\"##\""), "continuing_subword_prefix is unsupported");
    BAD(MODEL(",\"end_of_word_suffix\":\"</w>\""), "end_of_word_suffix is unsupported");
    BAD(MODEL(",\"dropout\":0.1"), "dropout is unsupported");
    BAD("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", "not an integer");
    BAD("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1.5},\"merges\":[]}}", "not an integer");
    BAD("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"1\"},\"merges\":[]}}", "not an integer");
    BAD("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1e300},\"merges\":[]}}", "not an integer");
    BAD("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":16000000},\"merges\":[]}}", "too sparse");
    BAD("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", "used by two");
    BAD("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\\udc80\":0},\"merges\":[]}}", "");
    BAD("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"a c\"]}}", "right part not in the vocab");
    BAD("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"b a\"]}}", "merged token not in");
    BAD("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"ab\"]}}", "is not \"a b\"");
    BAD("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"a b c\"]}}", "is not \"a b\"");
    BAD("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[[\"a\"]]}}", "is not \"a b\"");
    BAD("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[7]}}", "is not \"a b\"");
    BAD("{\"added_tokens\":{}," MODEL_KV, "added_tokens is not a list");
    BAD("{\"added_tokens\":[{\"id\":-3,\"content\":\"x\"}]," MODEL_KV, "added_tokens[0]");
    BAD("{\"added_tokens\":[{\"id\":3}]," MODEL_KV, "no \"content\"");
    BAD("{\"normalizer\":{\"type\":\"Lowercase\"}," MODEL_KV, "\"Lowercase\" is unsupported");
    BAD("{\"normalizer\":{\"type\":\"Precompiled\"}," MODEL_KV, "unsupported");
    BAD("{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(\"},\"content\":\"\"}," MODEL_KV,
        "does not compile");
    BAD("{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\"\"},\"content\":\"\"}," MODEL_KV,
        "empty String pattern");
    BAD("{\"normalizer\":7," MODEL_KV, "normalizer");
    BAD("{\"pre_tokenizer\":{\"type\":\"Whitespace\"}," MODEL_KV, "\"Whitespace\" is unsupported");
    BAD("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[a\"},\"behavior\":\"Isolated\"}," MODEL_KV,
        "does not compile");
    BAD("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Odd\"}," MODEL_KV,
        "unknown behavior");
    BAD("{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"ab\"}," MODEL_KV, "one character");
    BAD("{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"prepend_scheme\":\"x\"}," MODEL_KV, "prepend_scheme");
    BAD("{\"decoder\":{\"type\":\"WordPiece\"}," MODEL_KV, "\"WordPiece\" is unsupported");
    BAD("{\"decoder\":{\"type\":\"Strip\",\"content\":\" \",\"start\":-1,\"stop\":0}," MODEL_KV, "Strip");
    BAD("{\"post_processor\":{\"type\":\"Odd\"}," MODEL_KV, "\"Odd\" is unsupported");
    BAD("{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
        "{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{}}," MODEL_KV, "has no ids");
    BAD("{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
        "{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"ids\":[77]}}},"
        MODEL_KV, "not a token");
    BAD("{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[]}," MODEL_KV, "no $A");
    BAD("{\"post_processor\":{\"type\":\"RobertaProcessing\",\"cls\":[\"a\"],\"sep\":[\"b\",1]}," MODEL_KV,
        "cls");

    /* nesting a Sequence in itself is bounded */
    char deep[4096] = "{\"normalizer\":";
    for (int i = 0; i < 8; i++) strcat(deep, "{\"type\":\"Sequence\",\"normalizers\":[");
    strcat(deep, "{\"type\":\"NFC\"}");
    for (int i = 0; i < 8; i++) strcat(deep, "]}");
    strcat(deep, "," MODEL_KV);
    BAD(deep, "nested too deeply");

    /* a real file cut short */
    char *buf;
    size_t len;
    if (read_file(fixture("qwen2-style/tokenizer.json"), (size_t)64 << 20, &buf, &len, &err) == 0) {
        char path[600];
        snprintf(path, sizeof path, "%s/cut.json", test_tmpdir());
        for (size_t cut = 1; cut < len; cut = cut * 3 + 7) {
            CHECK(write_text(path, buf, cut) == 0);
            CHECK_MSG(moe_tokenizer_load(&t, path, &err) == -1, "cut at %zu accepted", cut);
        }
        free(buf);
    }

    /* a minimal file works; the unk token is used when a char is unknown */
    char path[600];
    snprintf(path, sizeof path, "%s/ok.json", test_tmpdir());
    const char *ok = "{\"model\":{\"type\":\"BPE\",\"unk_token\":\"?\",\"fuse_unk\":true,"
                     "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"?\":3},\"merges\":[\"#version: 0.2\",\"a b\"]}}";
    CHECK(write_text(path, ok, strlen(ok)) == 0);
    CHECK(moe_tokenizer_load(&t, path, &err) == 0);
    if (t) {
        int32_t ids[8];
        CHECK_EQ_INT(encode(t, "abxyab", 6, 0, ids, 8), 3); /* ab ? ab (xy fused) */
        CHECK(ids[0] == 2 && ids[1] == 3 && ids[2] == 2);
        char *out;
        size_t n;
        int32_t ab[] = {2, 3};
        CHECK(moe_detokenize(t, ab, 2, 0, &out, &n, &err) == 0); /* no decoder: joined by ' ' */
        CHECK(out && strcmp(out, "ab ?") == 0);
        free(out);
        int32_t *p;
        int k;
        CHECK(moe_tokenize(t, NULL, 5, 0, &p, &k, &err) == -1);
        CHECK(moe_tokenize(t, "ab", (size_t)1 << 31, 0, &p, &k, &err) == -1);
        CHECK_STR_CONTAINS(err.msg, "limit");
        CHECK(moe_tokenize(t, "ab", 2, 0, NULL, &k, &err) == -1);
        CHECK(moe_tokenize(t, NULL, 0, 0, &p, &k, &err) == 0 && k == 0 && p != NULL);
        free(p);
        moe_tokenizer_free(t);
    }
    /* unk_token missing from the vocab: fails when needed, as in HF */
    ok = "{\"model\":{\"type\":\"BPE\",\"unk_token\":\"?\",\"vocab\":{\"a\":0},\"merges\":[]}}";
    CHECK(write_text(path, ok, strlen(ok)) == 0);
    CHECK(moe_tokenizer_load(&t, path, &err) == 0);
    if (t) {
        int32_t ids[4];
        CHECK_EQ_INT(encode(t, "aa", 2, 0, ids, 4), 2);
        CHECK_EQ_INT(encode(t, "ax", 2, 0, ids, 4), -1);
        moe_tokenizer_free(t);
    }
    /* a garbled tokenizer_config.json next to a good tokenizer.json */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/tokenizer.json", test_tmpdir());
    CHECK(write_text(dir, ok, strlen(ok)) == 0);
    snprintf(dir, sizeof dir, "%s/tokenizer_config.json", test_tmpdir());
    CHECK(write_text(dir, "{\"bos_token\":", 13) == 0);
    CHECK(moe_tokenizer_load(&t, test_tmpdir(), &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "tokenizer_config.json");
}

/* ------------------------------------------------------------ long input */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Long words, long runs of one class: must stay near-linear. Sizes are
 * kept small enough for the sanitizer build; MOE_TOK_BENCH=1 runs 1 MiB
 * texts and prints MB/s. */
TEST(tokenizer_long_inputs) {
    const char *names[] = {"llama-spm", "mpt", "qwen2-style"};
    int bench = getenv("MOE_TOK_BENCH") != NULL;
    size_t n = bench ? (size_t)1 << 20 : (size_t)192 << 10;
    char *s = malloc(n + 1);
    if (!s) return;
    static const char *const fills[] = {"a", " ", "\n", "7", "!", "\xE4\xB8\xAD", "ab ", "\xF0\x9F\x98\x80", "x\t"};
    for (int k = 0; k < 3; k++) {
        moe_tokenizer *t = load_ok(fixture(names[k]));
        if (!t) continue;
        for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++) {
            size_t fl = strlen(fills[f]), m = n - n % fl;
            for (size_t i = 0; i < m; i += fl) memcpy(s + i, fills[f], fl);
            double t0 = now_s();
            int32_t *ids;
            int cnt;
            moe_err err;
            int rc = moe_tokenize(t, s, m, 0, &ids, &cnt, &err);
            double dt = now_s() - t0;
            CHECK_MSG(rc == 0, "%s fill %zu: %s", names[k], f, err.msg);
            CHECK_MSG(dt < 20, "%s fill %zu: %.1f s for %zu bytes", names[k], f, dt, m);
            if (bench) fprintf(stderr, "  %-12s fill %-6zu %7.1f MB/s (%d ids)\n", names[k], f, m / dt / 1e6, cnt);
            if (rc == 0) free(ids);
        }
        moe_tokenizer_free(t);
    }
    free(s);
}
