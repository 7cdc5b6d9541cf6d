/*
 * test_gguf_tokenizer.c - tokenizers built from GGUF metadata against HF
 * `tokenizers`:
 *  - the fixtures of tools/gen_gguf_tokenizer_fixtures.py (GGUFs written by
 *    llama.cpp's convert_hf_to_gguf.py from a byte-level tokenizer.json and
 *    from a SentencePiece tokenizer.model, and a model GGUF carrying its
 *    tokenizer): ids with and without specials, both decodes, round trip;
 *    and every byte-level pre-tokenizer family, by rewriting
 *    tokenizer.ggml.pre in the GGUF;
 *  - llama.cpp's own vocab file of the real Llama tokenizer
 *    (tests/fixtures/gguf/ggml-vocab-llama-spm.gguf) and, when ../shared has
 *    it, the GPT-NeoX one, against the HF ids of tests/fixtures/tokenizers;
 *  - the GGUF-built and the tokenizer.json-built tokenizer of one
 *    vocabulary on random texts (ids) and random ids (text);
 *  - bad metadata of every class, each refused with a message naming the key,
 *    truncated files, and randomly mutated ones (load or refuse, no crash).
 */
#include "test.h"
#include "test_util.h"
#include "base/mapfile.h"
#include "formats/gguf.h"
#include "moe.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

static char g_path[1024];

static const char *fixture(const char *rel) {
    snprintf(g_path, sizeof g_path, "%s/%s", test_fixtures(), rel);
    return g_path;
}

static cJSON *load_json(const char *path) { return test_load_json(path); }

static moe_tokenizer *load_ok(const char *path) {
    moe_tokenizer *t = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_tokenizer_load(&t, path, &err) == 0, "load %s: %s", path, err.msg);
    return t;
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

/* One vectors case: ids (plain, with specials), decodes, round trip.
 * Returns the number of checks made. */
static int check_case(const moe_tokenizer *t, const cJSON *c, const char *name, int full) {
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    size_t len = strlen(text);
    moe_err err = {{0}};
    int32_t *ids = NULL, *ids_sp = NULL;
    int n = 0, n_sp = 0, checks = 1;
    int rc = moe_tokenize(t, text, len, 0, &ids, &n, &err);
    CHECK_MSG(rc == 0, "%s: tokenize failed: %s", name, err.msg);
    if (rc == 0 && !ids_equal(ids, n, cJSON_GetObjectItem(c, "ids"))) {
        CHECK_MSG(0, "%s: ids differ for %.60s", name, text);
        print_ids("got ", ids, n);
    }
    if (full) {
        rc = moe_tokenize(t, text, len, 1, &ids_sp, &n_sp, &err);
        checks++;
        CHECK_MSG(rc == 0 && ids_equal(ids_sp, n_sp, cJSON_GetObjectItem(c, "ids_special")),
                  "%s: ids with specials differ for %.60s", name, text);
        static const char *const keys[2] = {"decode", "decode_skip"};
        for (int skip = 0; rc == 0 && skip < 2; skip++) {
            char *out = NULL;
            size_t out_len = 0;
            const char *w = cJSON_GetObjectItem(c, keys[skip])->valuestring;
            int r = moe_detokenize(t, ids_sp, n_sp, skip, &out, &out_len, &err);
            checks++;
            CHECK_MSG(r == 0 && out_len == strlen(w) && memcmp(out, w, out_len) == 0,
                      "%s: %s gives \"%.60s\", HF \"%.60s\"", name, keys[skip], out ? out : err.msg, w);
            free(out);
        }
        if (cJSON_IsTrue(cJSON_GetObjectItem(c, "roundtrip")) && ids) {
            char *out = NULL;
            size_t out_len = 0;
            int r = moe_detokenize(t, ids, n, 0, &out, &out_len, &err);
            checks++;
            CHECK_MSG(r == 0 && out_len == len && memcmp(out, text, len) == 0,
                      "%s: decode(encode(x)) != x for %.60s", name, text);
            free(out);
        }
    }
    free(ids);
    free(ids_sp);
    return checks;
}

/* ------------------------------------------------------ GGUF rewriting */

/* A key's value as the writer takes it (pointing into the open file). */
static gguf_wkv kv_copy(const gguf_kv *kv) {
    gguf_wkv w = {.key = kv->key, .type = kv->type};
    if (kv->type == GGUF_VT_STR) {
        w.str = kv->strs[0];
        w.lens = kv->lens;
    } else if (kv->type == GGUF_VT_ARR) {
        w.arr_type = kv->arr_type;
        w.n = kv->n;
        if (kv->arr_type == GGUF_VT_STR) {
            w.strs = kv->strs;
            w.lens = kv->lens;
        } else {
            w.arr = kv->raw;
        }
    } else {
        memcpy(&w.v, kv->raw, (size_t)gguf_vtype_size(kv->type));
    }
    return w;
}

/* Write src to dst with the keys of set[] replaced (or added) and the keys
 * in drop[] left out; tensors copied. */
static int gguf_rewrite(const char *src, const char *dst, const gguf_wkv *set, int n_set,
                        const char *const *drop, int n_drop) {
    gguf_file g;
    moe_err err = {{0}};
    if (gguf_open(&g, src, &err) != 0) {
        CHECK_MSG(0, "open %s: %s", src, err.msg);
        return -1;
    }
    gguf_wkv *kv = calloc((size_t)(g.n_kv + n_set + 1), sizeof *kv);
    gguf_wtensor *wt = calloc((size_t)g.n_tensors + 1, sizeof *wt);
    int n = 0;
    for (int i = 0; i < g.n_kv; i++) {
        const char *k = g.kvs[i].key;
        int skip = 0;
        for (int d = 0; d < n_drop; d++) skip |= strcmp(drop[d], k) == 0;
        for (int s = 0; s < n_set; s++) skip |= strcmp(set[s].key, k) == 0;
        if (!skip) kv[n++] = kv_copy(&g.kvs[i]);
    }
    for (int s = 0; s < n_set; s++) kv[n++] = set[s];
    for (int i = 0; i < g.n_tensors; i++) {
        const gguf_tensor *t = &g.tensors[i];
        wt[i] = (gguf_wtensor){.name = t->name, .type = t->type, .n_dims = t->n_dims, .data = t->data};
        memcpy(wt[i].ne, t->ne, sizeof t->ne);
    }
    int rc = gguf_write(dst, kv, n, wt, g.n_tensors, &err);
    CHECK_MSG(rc == 0, "write %s: %s", dst, err.msg);
    free(kv);
    free(wt);
    gguf_close(&g);
    return rc;
}

/* -------------------------------------------------- the generated fixtures */

static const cJSON *vec_fixture(const cJSON *vec, const char *name) {
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(vec, "fixtures"))
        if (strcmp(cJSON_GetObjectItem(f, "name")->valuestring, name) == 0) return f;
    return NULL;
}

static void check_generated(const char *name) {
    cJSON *vec = load_json(fixture("gguf_tokenizers/vectors.json"));
    CHECK_MSG(vec != NULL, "cannot read gguf_tokenizers/vectors.json");
    const cJSON *fx = vec ? vec_fixture(vec, name) : NULL;
    CHECK_MSG(fx != NULL, "vectors.json has no %s", name);
    if (!fx) {
        cJSON_Delete(vec);
        return;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/gguf_tokenizers/%s", test_fixtures(),
             cJSON_GetObjectItem(fx, "gguf")->valuestring);
    moe_tokenizer *t = load_ok(path);
    int checks = 0, cases = 0;
    if (t) {
        CHECK_EQ_INT(moe_tokenizer_vocab(t), cJSON_GetObjectItem(fx, "vocab")->valueint);
        CHECK_EQ_INT(moe_tokenizer_bos(t), cJSON_GetObjectItem(fx, "bos")->valueint);
        CHECK_EQ_INT(moe_tokenizer_eos(t), cJSON_GetObjectItem(fx, "eos")->valueint);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases")) {
            checks += check_case(t, c, name, 1);
            cases++;
        }
        moe_tokenizer_free(t);
    }
    CHECK(cases >= 24);
    /* the same vocabulary under each byte-level family's pre-tokenizer */
    const cJSON *var;
    int n_var = 0;
    cJSON_ArrayForEach(var, cJSON_GetObjectItem(fx, "variants")) {
        const char *pre = cJSON_GetObjectItem(var, "pre")->valuestring;
        char dst[1100], vname[160];
        snprintf(dst, sizeof dst, "%s/%s-%s.gguf", test_tmpdir(), name, pre);
        snprintf(vname, sizeof vname, "%s pre=%s", name, pre);
        gguf_wkv set = gguf_wstr("tokenizer.ggml.pre", pre);
        if (gguf_rewrite(path, dst, &set, 1, NULL, 0) != 0) continue;
        moe_tokenizer *tv = load_ok(dst);
        if (!tv) continue;
        const cJSON *want = cJSON_GetObjectItem(var, "ids"), *c = cJSON_GetObjectItem(fx, "cases")->child;
        const cJSON *w;
        cJSON_ArrayForEach(w, want) {
            cJSON *tmp = cJSON_CreateObject();
            cJSON_AddStringToObject(tmp, "text", cJSON_GetObjectItem(c, "text")->valuestring);
            cJSON_AddItemToObject(tmp, "ids", cJSON_Duplicate(w, 1));
            checks += check_case(tv, tmp, vname, 0);
            cJSON_Delete(tmp);
            c = c->next;
        }
        moe_tokenizer_free(tv);
        n_var++;
    }
    if (getenv("MOE_TEST_VERBOSE"))
        fprintf(stderr, "  %s: %d cases, %d pre variants, %d checks\n", name, cases, n_var, checks);
    cJSON_Delete(vec);
}

TEST(gguf_tokenizer_qwen2_style) { check_generated("qwen2_style"); }
TEST(gguf_tokenizer_byte_level_families) { check_generated("bl_mixed"); }
TEST(gguf_tokenizer_spm_small) { check_generated("spm_small"); }
TEST(gguf_tokenizer_byte_model) { check_generated("byte_model"); }

/* ------------------------------------- llama.cpp's vocab files, HF ids */

/* The cases of one variant of tests/fixtures/tokenizers/vectors.json. */
static void check_vocab_file(const char *gguf_path, const char *tok_name, const char *variant) {
    cJSON *vec = load_json(fixture("tokenizers/vectors.json"));
    CHECK(vec != NULL);
    if (!vec) return;
    const cJSON *tk, *var = NULL, *v;
    cJSON_ArrayForEach(tk, cJSON_GetObjectItem(vec, "tokenizers")) {
        if (strcmp(cJSON_GetObjectItem(tk, "name")->valuestring, tok_name) != 0) continue;
        cJSON_ArrayForEach(v, cJSON_GetObjectItem(tk, "variants"))
            if (strcmp(cJSON_GetObjectItem(v, "name")->valuestring, variant) == 0) var = v;
    }
    CHECK_MSG(var != NULL, "no %s/%s in vectors.json", tok_name, variant);
    moe_tokenizer *t = var ? load_ok(gguf_path) : NULL;
    int cases = 0;
    if (t) {
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(var, "cases")) {
            check_case(t, c, tok_name, 1);
            cases++;
        }
        moe_tokenizer_free(t);
    }
    CHECK(cases >= 70);
    cJSON_Delete(vec);
}

TEST(gguf_tokenizer_llama_spm_vocab) {
    char path[1100];
    snprintf(path, sizeof path, "%s/gguf/ggml-vocab-llama-spm.gguf", test_fixtures());
    check_vocab_file(path, "llama-spm", "legacy");
    moe_tokenizer *t = load_ok(path);
    if (!t) return;
    CHECK_EQ_INT(moe_tokenizer_vocab(t), 32000);
    CHECK_EQ_INT(moe_tokenizer_bos(t), 1);
    CHECK_EQ_INT(moe_tokenizer_eos(t), 2);
    moe_tokenizer_free(t);
}

/* The GPT-NeoX vocab (1.7 MB) stays in ../shared; checked when present. */
TEST(gguf_tokenizer_mpt_vocab) {
    const char *cands[] = {"../shared/vocab/ggml-vocab-mpt.gguf", "/work/shared/vocab/ggml-vocab-mpt.gguf"};
    const char *path = NULL;
    for (int i = 0; i < 2 && !path; i++) {
        FILE *f = fopen(cands[i], "rb");
        if (f) {
            fclose(f);
            path = cands[i];
        }
    }
    if (!path) SKIP("ggml-vocab-mpt.gguf not found");
    check_vocab_file(path, "mpt", "neox");
}

/* ---------------------- llama.cpp's vocab files and their test vectors */

/* The ids of each text against want (a JSON array of arrays); returns how
 * many texts differ, reporting the first few. */
static int check_texts(const moe_tokenizer *t, const char *name, const cJSON *texts, const cJSON *want,
                       int report) {
    int bad = 0, i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, texts) {
        const cJSON *w = cJSON_GetArrayItem(want, i++);
        int32_t *ids = NULL;
        int n = 0;
        moe_err err = {{0}};
        int rc = moe_tokenize(t, x->valuestring, strlen(x->valuestring), 0, &ids, &n, &err);
        if (rc != 0 || !w || !ids_equal(ids, n, w)) {
            if (report && bad < 3) {
                CHECK_MSG(0, "%s: ids differ for \"%.50s\" (%s)", name, x->valuestring, rc ? err.msg : "");
                print_ids("got ", ids, n);
            }
            bad++;
        }
        free(ids);
    }
    return bad;
}

/* The vocabularies of llama.cpp's tokenizer tests (tests/fixtures/gguf_vocab: each
 * ggml-vocab-NAME.gguf cut by tools/prune_gguf_vocab.py to the tokens its test
 * texts reach, with the HF ids of NAME.gguf.out renumbered): every text gives
 * HF's ids. The byte-level ones also must give other ids under another
 * family's pre-tokenizer somewhere, or the texts would not test the mapping. */
TEST(gguf_tokenizer_llamacpp_vocabs) {
    static const struct {
        const char *name, *other_pre; /* NULL: SentencePiece, no pre-tokenizer */
    } V[] = {{"gpt-2", "llama-bpe"},  {"mpt", "llama-bpe"},   {"deepseek-llm", "gpt-2"},
             {"deepseek-coder", "gpt-2"}, {"falcon", "gpt-2"}, {"starcoder", "gpt-2"},
             {"phi-3", NULL},         {"llama-spm", NULL}};
    for (size_t k = 0; k < sizeof V / sizeof V[0]; k++) {
        char gg[1100], js[1100], dst[1100], vname[160];
        snprintf(gg, sizeof gg, "%s/gguf_vocab/%s.gguf", test_fixtures(), V[k].name);
        snprintf(js, sizeof js, "%s/gguf_vocab/%s.json", test_fixtures(), V[k].name);
        cJSON *vec = load_json(js);
        CHECK_MSG(vec != NULL, "cannot read %s", js);
        moe_tokenizer *t = vec ? load_ok(gg) : NULL;
        if (!t) {
            cJSON_Delete(vec);
            continue;
        }
        const cJSON *texts = cJSON_GetObjectItem(vec, "texts"), *want = cJSON_GetObjectItem(vec, "ids");
        CHECK(cJSON_GetArraySize(texts) >= 40 && cJSON_GetArraySize(want) == cJSON_GetArraySize(texts));
        check_texts(t, V[k].name, texts, want, 1);
        moe_tokenizer_free(t);
        if (V[k].other_pre) {
            snprintf(dst, sizeof dst, "%s/%s-as-%s.gguf", test_tmpdir(), V[k].name, V[k].other_pre);
            snprintf(vname, sizeof vname, "%s pre=%s", V[k].name, V[k].other_pre);
            gguf_wkv set = gguf_wstr("tokenizer.ggml.pre", V[k].other_pre);
            moe_tokenizer *tv = gguf_rewrite(gg, dst, &set, 1, NULL, 0) == 0 ? load_ok(dst) : NULL;
            if (tv) CHECK_MSG(check_texts(tv, vname, texts, want, 0) > 0, "%s: no text tells the two apart", vname);
            moe_tokenizer_free(tv);
        }
        cJSON_Delete(vec);
    }
}

/* The families with no llama.cpp vocab file (tools/gen_gguf_pre_fixtures.py:
 * HF ids under each family's own tokenizer.json pre-tokenizer over one small
 * vocabulary whose merges cross their boundaries): tokenizer.ggml.pre
 * rewritten to each name. */
TEST(gguf_tokenizer_pre_families) {
    cJSON *vec = load_json(fixture("gguf_tokenizers/pre_families.json"));
    CHECK(vec != NULL);
    if (!vec) return;
    char src[1100];
    snprintf(src, sizeof src, "%s/gguf_tokenizers/%s", test_fixtures(),
             cJSON_GetObjectItem(vec, "gguf")->valuestring);
    const cJSON *texts = cJSON_GetObjectItem(vec, "texts"), *f;
    int n_fam = 0;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(vec, "families")) {
        const char *pre = cJSON_GetObjectItem(f, "pre")->valuestring;
        char dst[1100], vname[160];
        snprintf(dst, sizeof dst, "%s/families-%s.gguf", test_tmpdir(), pre);
        snprintf(vname, sizeof vname, "pre_families pre=%s", pre);
        gguf_wkv set = gguf_wstr("tokenizer.ggml.pre", pre);
        moe_tokenizer *t = gguf_rewrite(src, dst, &set, 1, NULL, 0) == 0 ? load_ok(dst) : NULL;
        if (!t) continue;
        CHECK_EQ_INT(moe_tokenizer_vocab(t), cJSON_GetObjectItem(vec, "vocab")->valueint);
        check_texts(t, vname, texts, cJSON_GetObjectItem(f, "ids"), 1);
        moe_tokenizer_free(t);
        n_fam++;
    }
    CHECK(n_fam >= 10 && cJSON_GetArraySize(texts) >= 20);
    cJSON_Delete(vec);
}

/* The same with the whole vocab files, where ../shared has them. */
TEST(gguf_tokenizer_llamacpp_vocabs_full) {
    static const char *const names[] = {"gpt-2", "mpt", "deepseek-llm", "deepseek-coder",
                                        "falcon", "starcoder", "phi-3", "llama-spm"};
    static const char *const dirs[] = {"../shared/vocab", "/work/shared/vocab"};
    int found = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char base[600], path[700];
        char *inp = NULL, *out = NULL;
        size_t ni, no;
        moe_err err = {{0}};
        for (int d = 0; d < 2 && !inp; d++) {
            snprintf(base, sizeof base, "%s/ggml-vocab-%s.gguf", dirs[d], names[k]);
            snprintf(path, sizeof path, "%s.inp", base);
            if (read_file(path, 1 << 20, &inp, &ni, &err) != 0) inp = NULL;
        }
        if (!inp) continue;
        snprintf(path, sizeof path, "%s.out", base);
        CHECK(read_file(path, 1 << 20, &out, &no, &err) == 0);
        moe_tokenizer *t = out ? load_ok(base) : NULL;
        cJSON *texts = cJSON_CreateArray(), *want = cJSON_CreateArray();
        static const char SEP[] = "\n__ggml_vocab_test__\n";
        for (char *p = inp, *o = out; t && p;) { /* text k of .inp <-> line k of .out */
            char *e = strstr(p, SEP), *ol = o ? strchr(o, '\n') : NULL;
            if (e) *e = 0;
            if (ol) *ol = 0;
            cJSON_AddItemToArray(texts, cJSON_CreateString(p));
            cJSON *ids = cJSON_CreateArray();
            for (char *q = o, *end; q && *q; q = end) {
                long v = strtol(q, &end, 10);
                if (end == q) break;
                cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)v));
            }
            cJSON_AddItemToArray(want, ids);
            p = e ? e + sizeof SEP - 1 : NULL;
            o = ol ? ol + 1 : NULL;
        }
        if (t) {
            CHECK(cJSON_GetArraySize(texts) >= 40);
            check_texts(t, base, texts, want, 1);
            found++;
        }
        moe_tokenizer_free(t);
        cJSON_Delete(texts);
        cJSON_Delete(want);
        free(inp);
        free(out);
    }
    if (!found) SKIP("no ggml-vocab-*.gguf in ../shared/vocab");
}

/* --------------------------------------- tokenizer.json vs GGUF, random */

static uint64_t rng_next(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* Random texts from slices of the test texts, special tokens, odd
 * characters and whitespace runs: both tokenizers must give the same ids
 * (with and without specials); random id lists must decode the same. */
static void json_vs_gguf(const char *json_dir, const char *gguf_path, int n_texts) {
    moe_tokenizer *a = load_ok(json_dir), *b = load_ok(gguf_path);
    cJSON *vec = load_json(fixture("tokenizers/vectors.json"));
    if (!a || !b || !vec) {
        CHECK(vec != NULL);
        moe_tokenizer_free(a);
        moe_tokenizer_free(b);
        cJSON_Delete(vec);
        return;
    }
    const cJSON *cases = cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(vec, "tokenizers"), 0),
                                               "variants"), 0), "cases");
    int n_src = cJSON_GetArraySize(cases);
    static const char *const extra[] = {
        "<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", " ", "  ", "\n",
        "\t", "\xE2\x96\x81", "\xF0\x9F\x98\x80", "\xE4\xB8\xAD", "e\xCC\x81", "\xC3\xA9", "'s", "123",
        "\xC2\xA0", "[INST]", "\xE3\x80\x80", "\x01", "\xEF\xBF\xBD"};
    uint64_t s = 12345;
    char text[2048];
    int n_bad = 0;
    for (int k = 0; k < n_texts; k++) {
        size_t len = 0;
        int pieces = 1 + (int)(rng_next(&s) % 12);
        for (int p = 0; p < pieces; p++) {
            const char *src;
            size_t sl;
            if (rng_next(&s) % 3 == 0) {
                src = extra[rng_next(&s) % (sizeof extra / sizeof extra[0])];
                sl = strlen(src);
            } else {
                const char *whole =
                    cJSON_GetObjectItem(cJSON_GetArrayItem(cases, (int)(rng_next(&s) % (uint64_t)n_src)), "text")
                        ->valuestring;
                size_t wl = strlen(whole), at = wl ? rng_next(&s) % wl : 0;
                sl = 1 + rng_next(&s) % 40;
                if (at + sl > wl) sl = wl - at;
                src = whole + at; /* may cut a character: invalid UTF-8 is part of the test */
            }
            if (len + sl >= sizeof text) break;
            memcpy(text + len, src, sl);
            len += sl;
        }
        for (int sp = 0; sp < 2; sp++) {
            int32_t *x = NULL, *y = NULL;
            int nx = 0, ny = 0;
            moe_err err;
            int rx = moe_tokenize(a, text, len, sp, &x, &nx, &err);
            int ry = moe_tokenize(b, text, len, sp, &y, &ny, &err);
            if (rx != 0 || ry != 0 || nx != ny || memcmp(x, y, (size_t)nx * sizeof *x) != 0) {
                if (n_bad++ < 3) {
                    CHECK_MSG(0, "%s vs %s: ids differ for \"%.*s\"", json_dir, gguf_path, (int)(len > 60 ? 60 : len), text);
                    print_ids("json", x, nx);
                    print_ids("gguf", y, ny);
                }
            }
            free(x);
            free(y);
        }
    }
    /* random ids, specials among them: the same text (with and without skip) */
    int V = moe_tokenizer_vocab(a) < moe_tokenizer_vocab(b) ? moe_tokenizer_vocab(a) : moe_tokenizer_vocab(b);
    for (int k = 0; k < n_texts / 4; k++) {
        int32_t ids[40];
        int n = 1 + (int)(rng_next(&s) % 40);
        for (int i = 0; i < n; i++) ids[i] = (int32_t)(rng_next(&s) % (uint64_t)V);
        for (int skip = 0; skip < 2; skip++) {
            char *x = NULL, *y = NULL;
            size_t nx = 0, ny = 0;
            moe_err err;
            int rx = moe_detokenize(a, ids, n, skip, &x, &nx, &err);
            int ry = moe_detokenize(b, ids, n, skip, &y, &ny, &err);
            if ((rx != 0 || ry != 0 || nx != ny || memcmp(x, y, nx) != 0) && n_bad++ < 6)
                CHECK_MSG(0, "%s vs %s: decode differs: \"%.60s\" vs \"%.60s\"", json_dir, gguf_path,
                          x ? x : "?", y ? y : "?");
            free(x);
            free(y);
        }
    }
    CHECK_EQ_INT(n_bad, 0);
    moe_tokenizer_free(a);
    moe_tokenizer_free(b);
    cJSON_Delete(vec);
}

TEST(gguf_tokenizer_same_as_json_qwen2) {
    char json[1100], gguf[1100];
    snprintf(json, sizeof json, "%s/tokenizers/qwen2-style", test_fixtures());
    snprintf(gguf, sizeof gguf, "%s/gguf_tokenizers/qwen2_style.gguf", test_fixtures());
    json_vs_gguf(json, gguf, 2000);
}

TEST(gguf_tokenizer_same_as_json_llama) {
    char json[1100], gguf[1100];
    snprintf(json, sizeof json, "%s/tokenizers/llama-spm", test_fixtures());
    snprintf(gguf, sizeof gguf, "%s/gguf/ggml-vocab-llama-spm.gguf", test_fixtures());
    json_vs_gguf(json, gguf, 2000);
}

/* A model GGUF carries its tokenizer: the model and the tokenizer load from
 * the one file, and the prompt's ids fit the model's vocabulary. */
TEST(gguf_tokenizer_model_file) {
    char path[1100];
    snprintf(path, sizeof path, "%s/gguf_tokenizers/qwen2_moe_q8_0_tok.gguf", test_fixtures());
    moe_model *m = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_model_load(&m, path, &err) == 0, "%s", err.msg);
    moe_tokenizer *t = load_ok(path);
    if (m && t) {
        int32_t *ids;
        int n;
        CHECK(moe_tokenize(t, "Hello world, the end.", 21, 1, &ids, &n, &err) == 0);
        static const int32_t want[] = {41, 70, 121, 80, 110, 107, 77, 69, 13, 98, 1, 106, 69, 15};
        CHECK(n == 14 && memcmp(ids, want, sizeof want) == 0);
        for (int i = 0; i < n; i++) CHECK(ids[i] < moe_model_config(m)->vocab);
        free(ids);
    }
    moe_tokenizer_free(t);
    moe_model_free(m);
    /* a model GGUF without tokenizer metadata names what is missing */
    snprintf(path, sizeof path, "%s/gguf_models/mixtral_f32.gguf", test_fixtures());
    t = NULL;
    CHECK(moe_tokenizer_load(&t, path, &err) == -1 && t == NULL);
    CHECK_STR_CONTAINS(err.msg, "tokenizer.ggml.model");
}

/* ------------------------------------------------------------ bad input */

/* A small valid "llama" vocabulary: <unk> <s> </s> ▁ a b ▁a ab ▁ab, and a
 * "gpt2" one: a b ab <|endoftext|> with the merge "a b". */
static const char *const SPM_TOK[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b",
                                      "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab"};
static const int32_t SPM_TYPE[] = {2, 3, 3, 1, 1, 1, 1, 1, 1};
static const float SPM_SCORE[] = {0, 0, 0, -1, -2, -3, -4, -5, -6};
static const char *const BPE_TOK[] = {"a", "b", "ab", "<|endoftext|>"};
static const int32_t BPE_TYPE[] = {1, 1, 1, 3};
static const char *const BPE_MERGES[] = {"a b"};

enum { MAXKV = 16 };
typedef struct kvset {
    gguf_wkv kv[MAXKV];
    int n;
} kvset;

static void kv_put(kvset *s, gguf_wkv kv) { /* replace or add */
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->kv[i].key, kv.key) == 0) {
            s->kv[i] = kv;
            return;
        }
    s->kv[s->n++] = kv;
}

static void kv_del(kvset *s, const char *key) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->kv[i].key, key) == 0) {
            s->kv[i] = s->kv[--s->n];
            return;
        }
}

static kvset spm_base(void) {
    kvset s = {.n = 0};
    kv_put(&s, gguf_wstr("general.architecture", "llama"));
    kv_put(&s, gguf_wstr("tokenizer.ggml.model", "llama"));
    kv_put(&s, gguf_wstrs("tokenizer.ggml.tokens", SPM_TOK, NULL, 9));
    kv_put(&s, gguf_warr("tokenizer.ggml.token_type", GGUF_VT_I32, SPM_TYPE, 9));
    kv_put(&s, gguf_warr("tokenizer.ggml.scores", GGUF_VT_F32, SPM_SCORE, 9));
    kv_put(&s, gguf_wu32("tokenizer.ggml.bos_token_id", 1));
    kv_put(&s, gguf_wu32("tokenizer.ggml.eos_token_id", 2));
    kv_put(&s, gguf_wu32("tokenizer.ggml.unknown_token_id", 0));
    return s;
}

static kvset bpe_base(void) {
    kvset s = {.n = 0};
    kv_put(&s, gguf_wstr("general.architecture", "qwen2moe"));
    kv_put(&s, gguf_wstr("tokenizer.ggml.model", "gpt2"));
    kv_put(&s, gguf_wstr("tokenizer.ggml.pre", "qwen2"));
    kv_put(&s, gguf_wstrs("tokenizer.ggml.tokens", BPE_TOK, NULL, 4));
    kv_put(&s, gguf_warr("tokenizer.ggml.token_type", GGUF_VT_I32, BPE_TYPE, 4));
    kv_put(&s, gguf_wstrs("tokenizer.ggml.merges", BPE_MERGES, NULL, 1));
    kv_put(&s, gguf_wu32("tokenizer.ggml.eos_token_id", 3));
    return s;
}

/* Write s and load it: NULL want = must load (then ids of "ab ab" are
 * checked by the caller); else must fail naming key and want. */
static moe_tokenizer *try_load(const kvset *s, const char *key, const char *want, int line) {
    char path[600];
    snprintf(path, sizeof path, "%s/bad.gguf", test_tmpdir());
    moe_err err = {{0}};
    if (gguf_write(path, s->kv, s->n, NULL, 0, &err) != 0) {
        CHECK_MSG(0, "line %d: cannot write: %s", line, err.msg);
        return NULL;
    }
    moe_tokenizer *t = NULL;
    int rc = moe_tokenizer_load(&t, path, &err);
    if (!want) {
        CHECK_MSG(rc == 0, "line %d: refused: %s", line, err.msg);
        return t;
    }
    CHECK_MSG(rc == -1 && t == NULL, "line %d: accepted (wanted \"%s\")", line, want);
    if (rc == -1) {
        CHECK_MSG(strstr(err.msg, key) != NULL, "line %d: \"%s\" does not name %s", line, err.msg, key);
        CHECK_MSG(strstr(err.msg, want) != NULL, "line %d: \"%s\" lacks \"%s\"", line, err.msg, want);
    }
    moe_tokenizer_free(t);
    return NULL;
}
#define BAD(s, key, want) try_load(&(s), key, want, __LINE__)

static void expect_ids(moe_tokenizer *t, const char *text, int add, const int32_t *want, int n_want) {
    int32_t *ids;
    int n;
    moe_err err;
    CHECK(t && moe_tokenize(t, text, strlen(text), add, &ids, &n, &err) == 0);
    if (!t) return;
    CHECK_MSG(n == n_want && memcmp(ids, want, (size_t)n * sizeof *ids) == 0, "ids of \"%s\"", text);
    if (n != n_want || memcmp(ids, want, (size_t)n * sizeof *ids) != 0) print_ids("got", ids, n);
    free(ids);
}

TEST(gguf_tokenizer_small_valid) {
    kvset s = spm_base();
    moe_tokenizer *t = try_load(&s, NULL, NULL, __LINE__);
    /* "ab ab" -> ▁ab ▁ab, BOS first */
    expect_ids(t, "ab ab", 1, (const int32_t[]){1, 8, 8}, 3);
    /* no ▁b, ba: chars; the control token whole; ▁ again after it (llama.cpp's rule) */
    expect_ids(t, "ba<s>ab", 0, (const int32_t[]){3, 5, 4, 1, 8}, 5);
    moe_tokenizer_free(t);
    s = bpe_base();
    t = try_load(&s, NULL, NULL, __LINE__);
    expect_ids(t, "ab<|endoftext|>ba", 0, (const int32_t[]){2, 3, 1, 0}, 4);
    moe_tokenizer_free(t);
    /* llama-bpe adds BOS by default, but only when the file names one */
    kv_put(&s, gguf_wstr("tokenizer.ggml.pre", "llama-bpe"));
    t = try_load(&s, NULL, NULL, __LINE__);
    expect_ids(t, "ab", 1, (const int32_t[]){2}, 1);
    moe_tokenizer_free(t);
    kv_put(&s, gguf_wu32("tokenizer.ggml.bos_token_id", 3));
    t = try_load(&s, NULL, NULL, __LINE__);
    expect_ids(t, "ab", 1, (const int32_t[]){3, 2}, 2);
    moe_tokenizer_free(t);
}

TEST(gguf_tokenizer_bad_metadata) {
    static const char *const BAD_UTF8[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a\xff", "b",
                                           "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab"};
    static const char *const DUP[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b",
                                      "\xE2\x96\x81" "a", "a", "\xE2\x96\x81" "ab"};
    static const int32_t TYPES_BAD[] = {2, 3, 3, 1, 1, 9, 1, 1, 1};
    static const float SCORES_NAN[] = {0, 0, 0, -1, -2, NAN, -4, -5, -6};
    static const float SCORES_FLAT[] = {0, 0, 0, -1000, -1000, -1000, -1000, -1000, -1000};
    static const float SCORES_10[] = {0, 0, 0, -1, -2, -3, -4, -5, -6, -7};
    static const char *const STRS[] = {"x", "y"};
    static const char *const M_NOSPACE[] = {"ab"};
    static const char *const M_LEFT[] = {"c b"};
    static const char *const M_RIGHT[] = {"a c"};
    static const char *const M_MERGED[] = {"b a"};
    static const int32_t I32[] = {1, 2};
    kvset s;

#define K_MODEL "tokenizer.ggml.model"
    /* the model */
    s = spm_base(), kv_del(&s, K_MODEL), BAD(s, K_MODEL, "missing");
    s = spm_base(), kv_put(&s, gguf_wstr(K_MODEL, "bert")), BAD(s, K_MODEL, "\"bert\" is unsupported");
    s = spm_base(), kv_put(&s, gguf_wu32(K_MODEL, 1)), BAD(s, K_MODEL, "wrong type");
    s = spm_base(), kv_put(&s, gguf_wstr(K_MODEL, "none")), BAD(s, K_MODEL, "carries no vocabulary");
    /* tokens */
    s = spm_base(), kv_del(&s, "tokenizer.ggml.tokens"), BAD(s, "tokenizer.ggml.tokens", "missing");
    s = spm_base(), kv_put(&s, gguf_warr("tokenizer.ggml.tokens", GGUF_VT_I32, I32, 2)),
        BAD(s, "tokenizer.ggml.tokens", "wrong type");
    s = spm_base(), kv_put(&s, gguf_wstrs("tokenizer.ggml.tokens", STRS, NULL, 0)),
        BAD(s, "tokenizer.ggml.tokens", "0 tokens");
    s = spm_base(), kv_put(&s, gguf_wstrs("tokenizer.ggml.tokens", BAD_UTF8, NULL, 9)),
        BAD(s, "tokenizer.ggml.tokens", "[4] is not valid UTF-8");
    s = spm_base(), kv_put(&s, gguf_wstrs("tokenizer.ggml.tokens", DUP, NULL, 9)),
        BAD(s, "tokenizer.ggml.tokens", "[7] \"a\" repeats token 4");
    /* token types */
    s = spm_base(), kv_put(&s, gguf_warr("tokenizer.ggml.token_type", GGUF_VT_I32, SPM_TYPE, 8)),
        BAD(s, "tokenizer.ggml.token_type", "8 types for 9 tokens");
    s = spm_base(), kv_put(&s, gguf_wstrs("tokenizer.ggml.token_type", STRS, NULL, 2)),
        BAD(s, "tokenizer.ggml.token_type", "wrong type");
    s = spm_base(), kv_put(&s, gguf_warr("tokenizer.ggml.token_type", GGUF_VT_I32, TYPES_BAD, 9)),
        BAD(s, "tokenizer.ggml.token_type", "[5] = 9 is not a token type");
    /* scores */
    s = spm_base(), kv_del(&s, "tokenizer.ggml.scores"), BAD(s, "tokenizer.ggml.scores", "missing");
    s = spm_base(), kv_put(&s, gguf_warr("tokenizer.ggml.scores", GGUF_VT_F32, SCORES_10, 10)),
        BAD(s, "tokenizer.ggml.scores", "10 scores for 9 tokens");
    s = spm_base(), kv_put(&s, gguf_wstrs("tokenizer.ggml.scores", STRS, NULL, 2)),
        BAD(s, "tokenizer.ggml.scores", "wrong type");
    s = spm_base(), kv_put(&s, gguf_warr("tokenizer.ggml.scores", GGUF_VT_F32, SCORES_NAN, 9)),
        BAD(s, "tokenizer.ggml.scores", "[5] = nan is not a finite score");
    s = spm_base(), kv_put(&s, gguf_warr("tokenizer.ggml.scores", GGUF_VT_F32, SCORES_FLAT, 9)),
        BAD(s, "tokenizer.ggml.scores", "merge order is lost");
    /* merges */
    s = bpe_base(), kv_del(&s, "tokenizer.ggml.merges"), BAD(s, "tokenizer.ggml.merges", "missing");
    s = bpe_base(), kv_put(&s, gguf_warr("tokenizer.ggml.merges", GGUF_VT_I32, I32, 2)),
        BAD(s, "tokenizer.ggml.merges", "wrong type");
    s = bpe_base(), kv_put(&s, gguf_wstrs("tokenizer.ggml.merges", M_NOSPACE, NULL, 1)),
        BAD(s, "tokenizer.ggml.merges", "[0] \"ab\" is not \"a b\"");
    s = bpe_base(), kv_put(&s, gguf_wstrs("tokenizer.ggml.merges", M_LEFT, NULL, 1)),
        BAD(s, "tokenizer.ggml.merges", "the left part is not a token");
    s = bpe_base(), kv_put(&s, gguf_wstrs("tokenizer.ggml.merges", M_RIGHT, NULL, 1)),
        BAD(s, "tokenizer.ggml.merges", "the right part is not a token");
    s = bpe_base(), kv_put(&s, gguf_wstrs("tokenizer.ggml.merges", M_MERGED, NULL, 1)),
        BAD(s, "tokenizer.ggml.merges", "the merged token is not a token");
    s = spm_base(), kv_put(&s, gguf_wstrs("tokenizer.ggml.merges", M_MERGED, NULL, 1)),
        BAD(s, "tokenizer.ggml.merges", "the merged token is not a token");
    /* the pre-tokenizer */
    s = bpe_base(), kv_put(&s, gguf_wstr("tokenizer.ggml.pre", "command-r")),
        BAD(s, "tokenizer.ggml.pre", "\"command-r\" is unsupported (supported: default, gpt-2");
    s = bpe_base(), kv_put(&s, gguf_wstr("tokenizer.ggml.pre", "")),
        BAD(s, "tokenizer.ggml.pre", "\"\" is unsupported");
    s = bpe_base(), kv_put(&s, gguf_wu32("tokenizer.ggml.pre", 3)), BAD(s, "tokenizer.ggml.pre", "wrong type");
    /* special ids */
    static const char *const id_keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    for (int k = 0; k < 4; k++) {
        s = spm_base(), kv_put(&s, gguf_wu32(id_keys[k], 9)), BAD(s, id_keys[k], "9 is not a token id");
        s = bpe_base(), kv_put(&s, gguf_wi32(id_keys[k], -1)), BAD(s, id_keys[k], "-1 is not a token id");
        s = bpe_base(), kv_put(&s, gguf_wstr(id_keys[k], "<s>")), BAD(s, id_keys[k], "wrong type");
    }
    /* flags */
    s = bpe_base(), kv_put(&s, gguf_wbool("tokenizer.ggml.add_bos_token", true)),
        BAD(s, "tokenizer.ggml.add_bos_token", "names no BOS");
    s = bpe_base(), kv_del(&s, "tokenizer.ggml.eos_token_id"),
        kv_put(&s, gguf_wbool("tokenizer.ggml.add_eos_token", true)),
        BAD(s, "tokenizer.ggml.add_eos_token", "names no EOS");
    s = spm_base(), kv_put(&s, gguf_wu8("tokenizer.ggml.add_bos_token", 1)),
        BAD(s, "tokenizer.ggml.add_bos_token", "wrong type");
    s = spm_base(), kv_put(&s, gguf_wstr("tokenizer.ggml.add_space_prefix", "yes")),
        BAD(s, "tokenizer.ggml.add_space_prefix", "wrong type");
#undef K_MODEL
}

/* A damaged file is refused by the GGUF reader, with its message. */
TEST(gguf_tokenizer_truncated_file) {
    char src[1100], dst[600];
    snprintf(src, sizeof src, "%s/gguf_tokenizers/spm_small.gguf", test_fixtures());
    snprintf(dst, sizeof dst, "%s/cut.gguf", test_tmpdir());
    char *buf;
    size_t len;
    moe_err err = {{0}};
    CHECK(read_file(src, (size_t)16 << 20, &buf, &len, &err) == 0);
    if (!buf) return;
    for (size_t cut = 8; cut < len; cut = cut * 3 + 1) {
        FILE *f = fopen(dst, "wb");
        CHECK(f && fwrite(buf, 1, cut, f) == cut);
        if (f) fclose(f);
        moe_tokenizer *t = NULL;
        CHECK_MSG(moe_tokenizer_load(&t, dst, &err) == -1 && t == NULL, "cut at %zu accepted", cut);
        CHECK_STR_CONTAINS(err.msg, "cut.gguf");
    }
    free(buf);
}

/* The SentencePiece rule: equal scores merge leftmost first (whatever the
 * ids: bc has the lower id here); a better score wins wherever it is;
 * without add_space_prefix no \u2581 is prepended. */
TEST(gguf_tokenizer_spm_rules) {
    static const char *const TOK[] = {"<unk>", "<s>", "</s>", "a", "b", "c", "bc", "ab",
                                      "\xE2\x96\x81", "<0x78>"};
    static const int32_t TYPE[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 6};
    static const float EQUAL[] = {0, 0, 0, -1, -2, -3, -5, -5, -7, 0};
    static const float BC_FIRST[] = {0, 0, 0, -1, -2, -3, -5, -6, -7, 0};
    kvset s = spm_base();
    kv_put(&s, gguf_wstrs("tokenizer.ggml.tokens", TOK, NULL, 10));
    kv_put(&s, gguf_warr("tokenizer.ggml.token_type", GGUF_VT_I32, TYPE, 10));
    kv_put(&s, gguf_wbool("tokenizer.ggml.add_space_prefix", false));
    kv_put(&s, gguf_warr("tokenizer.ggml.scores", GGUF_VT_F32, EQUAL, 10));
    moe_tokenizer *t = try_load(&s, NULL, NULL, __LINE__);
    expect_ids(t, "abc", 0, (const int32_t[]){7, 5}, 2);     /* ab and bc tie: the left one */
    expect_ids(t, "bcab", 0, (const int32_t[]){6, 7}, 2);
    expect_ids(t, "abcx", 0, (const int32_t[]){7, 5, 9}, 3); /* x: byte fallback */
    expect_ids(t, "a bc", 0, (const int32_t[]){3, 8, 6}, 3); /* no prefix space */
    moe_tokenizer_free(t);
    kv_put(&s, gguf_warr("tokenizer.ggml.scores", GGUF_VT_F32, BC_FIRST, 10));
    t = try_load(&s, NULL, NULL, __LINE__);
    expect_ids(t, "abc", 0, (const int32_t[]){3, 6}, 2); /* bc scores better */
    moe_tokenizer_free(t);
}

/* Mutated files (bytes of the metadata changed at random): each loads and
 * tokenizes, or is refused with a message; never a crash (run under ASan). */
TEST(gguf_tokenizer_mutated) {
    static const char *const files[] = {"gguf_tokenizers/spm_small.gguf", "gguf_tokenizers/bl_mixed.gguf"};
    char dst[600];
    snprintf(dst, sizeof dst, "%s/mut.gguf", test_tmpdir());
    uint64_t s = 777;
    int loaded = 0, refused = 0;
    for (int f = 0; f < 2; f++) {
        char *buf;
        size_t len;
        moe_err err = {{0}};
        char src[1100];
        snprintf(src, sizeof src, "%s/%s", test_fixtures(), files[f]);
        CHECK(read_file(src, (size_t)16 << 20, &buf, &len, &err) == 0);
        if (!buf) continue;
        char *m = malloc(len);
        for (int k = 0; k < 150; k++) {
            memcpy(m, buf, len);
            int flips = 1 + (int)(rng_next(&s) % 4);
            for (int i = 0; i < flips; i++) {
                size_t at = 24 + rng_next(&s) % (len - 24);
                m[at] = (char)(rng_next(&s) % 3 == 0 ? m[at] ^ (1 << (rng_next(&s) % 8)) : (int)rng_next(&s));
            }
            FILE *fp = fopen(dst, "wb");
            CHECK(fp && fwrite(m, 1, len, fp) == len);
            if (fp) fclose(fp);
            moe_tokenizer *t = NULL;
            if (moe_tokenizer_load(&t, dst, &err) != 0) {
                CHECK(t == NULL && err.msg[0] != 0);
                refused++;
                continue;
            }
            loaded++;
            int32_t *ids = NULL;
            int n = 0;
            const char *text = "Hello world! caf\xC3\xA9 <s>[INST] 12345 \xE6\x97\xA5\xE6\x9C\xAC";
            if (moe_tokenize(t, text, strlen(text), 1, &ids, &n, &err) == 0) {
                char *out = NULL;
                size_t ol;
                for (int i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < moe_tokenizer_vocab(t));
                if (moe_detokenize(t, ids, n, 0, &out, &ol, &err) == 0) free(out);
            }
            free(ids);
            moe_tokenizer_free(t);
        }
        free(m);
        free(buf);
    }
    if (getenv("MOE_TEST_VERBOSE")) fprintf(stderr, "  mutated: %d loaded, %d refused\n", loaded, refused);
    CHECK(loaded > 0 && refused > 0);
}
