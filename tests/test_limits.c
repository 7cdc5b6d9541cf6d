/*
 * test_limits.c - the costs a hostile file or text can impose are bounded:
 *  - JSON documents (safetensors header and index, config.json,
 *    tokenizer.json) over their caps are refused from their size alone,
 *    before any byte is parsed into a JSON tree;
 *  - a GGUF "llama" vocabulary with a huge token loads in time linear in
 *    its length;
 *  - chained normalizers cannot multiply the text without bound;
 *  - keys cut short by a \u0000 escape are refused;
 *  - numbers out of range in trainer_state.json are refused;
 *  - an empty ByteLevel decode touches no NULL pointer arithmetic (clang's
 *    UBSan flags NULL + 0; this suite's gcc build checks the result).
 */
#include "test.h"
#include "base/mapfile.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "formats/gguf_vocab_write.h"
#include "train/checkpoint.h"
#include "moe.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", test_tmpdir(), name);
    return buf;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* A file of `size` bytes starting with head, the rest a hole (read as zeros). */
static int sparse_file(const char *path, const void *head, size_t n, size_t size) {
    if (write_bytes(path, head, n) != 0) return -1;
    return truncate(path, (off_t)size);
}

/* -------------------------------------------------------- JSON caps */

TEST(limits_json_size_caps) {
    char dir[1024], p[1200];
    moe_err err = {{0}};

    /* a safetensors header just over the cap (the file holds all of it) */
    tmp_path(p, sizeof p, "big.safetensors");
    uint64_t hlen = ST_MAX_HEADER + 8;
    unsigned char len8[9] = {0};
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    len8[8] = '{';
    CHECK(sparse_file(p, len8, 9, (size_t)hlen + 8) == 0);
    st_store s;
    CHECK(st_open_file(&s, p, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "too large");
    CHECK(ST_MAX_HEADER <= ((uint64_t)16 << 20));

    /* model.safetensors.index.json over 16 MiB */
    tmp_path(dir, sizeof dir, "index");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK(sparse_file(p, "{", 1, ((size_t)16 << 20) + 1) == 0);
    CHECK(st_open_dir(&s, dir, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "allowed");

    /* config.json over 1 MiB */
    tmp_path(dir, sizeof dir, "config");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK(sparse_file(p, "{", 1, ((size_t)1 << 20) + 1) == 0);
    moe_config cfg;
    CHECK(hf_config_load(&cfg, dir, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "allowed");

    /* tokenizer.json over 64 MiB */
    tmp_path(p, sizeof p, "tokenizer.json");
    CHECK(sparse_file(p, "{", 1, ((size_t)64 << 20) + 1) == 0);
    moe_tokenizer *t = NULL;
    CHECK(moe_tokenizer_load(&t, p, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "allowed");
    moe_tokenizer_free(t);
}

/* ------------------------------------------------ a huge GGUF token */

TEST(limits_gguf_llama_huge_token_loads_fast) {
    enum { N = 256 << 10 }; /* quadratic splitting: over a minute; linear: milliseconds */
    char *huge = malloc(N + 1), *less = malloc(N);
    memset(huge, 'a', N);
    huge[N] = 0;
    memset(less, 'a', N - 1);
    less[N - 1] = 0;
    const char *tok[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "aa", "\xE2\x96\x81" "a", less, huge};
    static const int32_t type[] = {2, 3, 3, 1, 1, 1, 1, 1, 1};
    static const float score[] = {0, 0, 0, -1, -2, -3, -4, -5, -6};
    gguf_wkv kv[] = {
        gguf_wstr("general.architecture", "llama"),
        gguf_wstr("tokenizer.ggml.model", "llama"),
        gguf_wstrs("tokenizer.ggml.tokens", tok, NULL, 9),
        gguf_warr("tokenizer.ggml.token_type", GGUF_VT_I32, type, 9),
        gguf_warr("tokenizer.ggml.scores", GGUF_VT_F32, score, 9),
        gguf_wu32("tokenizer.ggml.unknown_token_id", 0),
    };
    char p[1100];
    tmp_path(p, sizeof p, "huge.gguf");
    moe_err err = {{0}};
    CHECK_MSG(gguf_write(p, kv, 6, NULL, 0, &err) == 0, "%s", err.msg);
    free(huge);
    free(less);

    double t0 = now_s();
    moe_tokenizer *t = NULL;
    CHECK_MSG(moe_tokenizer_load(&t, p, &err) == 0, "load: %s", err.msg);
    double load_s = now_s() - t0;
    CHECK_MSG(load_s < 5, "a 256 KiB token took %.1f s to load", load_s);
    int32_t *ids = NULL;
    int n = 0;
    CHECK(t && moe_tokenize(t, "aa a", 4, 0, &ids, &n, &err) == 0);
    /* "▁aa▁a": aa (score -3) merges before ▁a (-4); "▁aa" is no token */
    CHECK(n == 3 && ids[0] == 3 && ids[1] == 5 && ids[2] == 6);
    free(ids);
    moe_tokenizer_free(t);

    /* the tokenizer.json rebuilt from it lists the same merges: aa, ▁a and
     * the huge token's two splits (a + a^(N-1), a^(N-1) + a) */
    t0 = now_s();
    char note[256];
    CHECK_MSG(tok_gguf_to_json(p, test_tmpdir(), note, sizeof note, &err) >= 0, "%s", err.msg);
    double json_s = now_s() - t0;
    CHECK_MSG(json_s < 10, "tokenizer.json from it took %.1f s", json_s);
    snprintf(p, sizeof p, "%s/tokenizer.json", test_tmpdir());
    char *txt = NULL;
    size_t len = 0;
    CHECK(read_file(p, (size_t)64 << 20, &txt, &len, &err) == 0);
    cJSON *j = txt ? cJSON_ParseWithLength(txt, len) : NULL;
    const cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "merges");
    CHECK_EQ_INT(cJSON_GetArraySize(merges), 4);
    cJSON_Delete(j);
    free(txt);
}

/* ------------------------------------------------ normalizer growth */

#define REPL_A "{\"type\":\"Replace\",\"pattern\":{\"String\":\"a\"},\"content\":\"aaaaaaaaaa\"}"
#define REPL_SPACE "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}"
#define TINY_MODEL "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"\\u2581\":1,\" \":2},\"merges\":[]}"

static moe_tokenizer *load_text(const char *name, const char *json) {
    char p[1100];
    tmp_path(p, sizeof p, name);
    CHECK(write_bytes(p, json, strlen(json)) == 0);
    moe_tokenizer *t = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_tokenizer_load(&t, p, &err) == 0, "%s: %s", name, err.msg);
    return t;
}

TEST(limits_normalizer_growth_bounded) {
    enum { N = 1000 };
    char text[N];
    memset(text, 'a', N);
    moe_err err = {{0}};
    int32_t *ids = NULL;
    int n = 0;

    /* 4 x Replace(a -> 10 a): 10^4 times the text */
    moe_tokenizer *t = load_text("grow.json", "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["
                                 REPL_A "," REPL_A "," REPL_A "," REPL_A "]}," TINY_MODEL "}");
    double t0 = now_s();
    CHECK(t && moe_tokenize(t, text, N, 0, &ids, &n, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "grow the text past");
    CHECK(now_s() - t0 < 2);
    free(ids);
    ids = NULL;
    /* the empty text still encodes (nothing to grow) */
    CHECK(t && moe_tokenize(t, "", 0, 0, &ids, &n, &err) == 0 && n == 0);
    free(ids);
    ids = NULL;
    moe_tokenizer_free(t);

    /* a real chain (Replace(" ", "▁") triples spaces) is untouched */
    t = load_text("spaces.json", "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["
                  REPL_SPACE "]}," TINY_MODEL "}");
    char spaces[N];
    memset(spaces, ' ', N);
    CHECK_MSG(t && moe_tokenize(t, spaces, N, 0, &ids, &n, &err) == 0, "%s", err.msg);
    CHECK(n == N && ids && ids[0] == 1 && ids[N - 1] == 1);
    free(ids);
    ids = NULL;
    moe_tokenizer_free(t);

    /* the same bound on the decoders */
    t = load_text("dgrow.json", "{\"decoder\":{\"type\":\"Sequence\",\"decoders\":["
                  REPL_A "," REPL_A "," REPL_A "," REPL_A "]}," TINY_MODEL "}");
    int32_t zeros[N] = {0};
    char *out = NULL;
    size_t len = 0;
    CHECK(t && moe_detokenize(t, zeros, N, 0, &out, &len, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "grow the text past");
    free(out);
    moe_tokenizer_free(t);
}

/* ------------------------------------------------------ \u0000 in keys */

TEST(limits_json_nul_keys_refused) {
    static const char *const bad[] = {
        /* a vocab key that would be read as "a" and take over its id */
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"a\\u0000b\":2},\"merges\":[]}}",
        /* an added token */
        "{\"added_tokens\":[{\"id\":1,\"content\":\"x\\u0000y\",\"special\":true}],"
        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]}}",
        /* a merge */
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a\\u0000 b\"]}}",
    };
    static const char *const named[] = {"a\\u0000b", "x\\u0000y", "a\\u0000 b"};
    for (int i = 0; i < 3; i++) {
        char p[1100];
        tmp_path(p, sizeof p, "nul.json");
        CHECK(write_bytes(p, bad[i], strlen(bad[i])) == 0);
        moe_tokenizer *t = NULL;
        moe_err err = {{0}};
        CHECK_MSG(moe_tokenizer_load(&t, p, &err) == -1, "case %d accepted", i);
        CHECK_STR_CONTAINS(err.msg, named[i]);
        moe_tokenizer_free(t);
    }
    /* an escaped backslash before u0000 is no NUL */
    moe_tokenizer *t = load_text("ok.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,"
                                 "\"\\\\u0000\":1},\"merges\":[]}}");
    moe_tokenizer_free(t);
}

/* ---------------------------------------------------- trainer_state.json */

TEST(limits_trainer_state_step_range) {
    static const char *const steps[] = {"1e300", "-1", "0.5", "9007199254740994"};
    char dir[1024], p[1100];
    tmp_path(dir, sizeof dir, "ckpt");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(p, sizeof p, "%s/trainer_state.json", dir);
    for (int i = 0; i < 5; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"step\": %s, \"data_rng\": [\"%016d\", \"%016d\", \"%016d\", \"%016d\"], "
                 "\"noise_rng\": [\"%016d\", \"%016d\", \"%016d\", \"%016d\"], \"batch\": 2, "
                 "\"seq\": 8, \"accum\": 1}",
                 i < 4 ? steps[i] : "42", 1, 2, 3, 4, 5, 6, 7, 8);
        CHECK(write_bytes(p, json, strlen(json)) == 0);
        ckpt_state st;
        memset(&st, 0, sizeof st);
        moe_err err = {{0}};
        int rc = ckpt_read_state(dir, &st, &err);
        if (i < 4) {
            CHECK_MSG(rc == -1, "step %s accepted", steps[i]);
            CHECK_STR_CONTAINS(err.msg, "\"step\"");
        } else {
            CHECK_MSG(rc == 0 && st.step == 42 && st.batch == 2, "%s", err.msg);
        }
    }
}

/* ------------------------------------------------- empty ByteLevel decode */

TEST(limits_empty_bytelevel_decode) {
    moe_tokenizer *t = load_text("bl.json", "{\"decoder\":{\"type\":\"ByteLevel\"},"
                                 "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]}}");
    char *out = NULL;
    size_t len = 7;
    moe_err err = {{0}};
    CHECK_MSG(t && moe_detokenize(t, NULL, 0, 0, &out, &len, &err) == 0, "%s", err.msg);
    CHECK(out && len == 0 && out[0] == 0);
    free(out);
    out = NULL;
    int32_t none = 99; /* no such id: dropped, so the decoder sees nothing */
    CHECK_MSG(t && moe_detokenize(t, &none, 1, 0, &out, &len, &err) == 0, "%s", err.msg);
    CHECK(out && len == 0);
    free(out);
    moe_tokenizer_free(t);
}
