/*
 * test_cache.c - the expert cache (moe_cache.h): a model loaded with an
 * expert memory budget gives logits bit-identical (memcmp) to the same
 * model loaded whole, with each policy, at the smallest budget (every layer
 * evicts) and a larger one, in prefill (one chunk using every expert),
 * token-by-token decode and several sequences through moe_decode; for a
 * quantized GGUF (Q8_0), a safetensors directory and a sharded one. Also:
 * the budget's minimum is named, a file truncated after loading is reported
 * by the decode that needs the lost bytes, re-laid experts are refused, the
 * size parser refuses garbage, and the statistics add up.
 */
#include "test.h"
#include "test_util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moe_cache.h"
#include "moe_quant.h"
#include "cache/cache.h"
#include "model/model.h"
#include "model/model_init.h"

#define PROMPT 24
#define STEPS 6
#define NSEQ 3

/* A random 2-layer model with 8 experts of top-2, 256 wide (Q8_0 rows fit). */
static const char *random_model(void) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/cache_st", test_tmpdir());
    struct stat st;
    if (!stat(dir, &st)) return dir;
    moe_config c;
    memset(&c, 0, sizeof c);
    c.arch = MOE_ARCH_QWEN3_MOE;
    snprintf(c.model_type, sizeof c.model_type, "qwen3_moe");
    c.vocab = 512;
    c.dim = 256;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    c.max_pos = 128;
    c.rope_theta = 10000.0f;
    c.norm_eps = 1e-5f;
    c.bos_id = c.eos_id = -1;
    c.qk_norm = MOE_QKNORM_HEAD;
    for (int i = 0; i < c.n_layers; i++)
        c.layer[i] = (moe_layer_config){.moe = 1, .n_experts = 8, .top_k = 2, .expert_dim = 256,
                                        .norm_topk = 1, .routed_scale = 1.0f};
    moe_err err = {{0}};
    model_init_opts o = {DT_F32, 11, 0.05f, NULL, NULL, NULL, 0, 0};
    if (mkdir(dir, 0755) || model_init_random(&c, dir, &o, &err)) {
        CHECK_MSG(0, "init %s: %s", dir, err.msg);
        return NULL;
    }
    return dir;
}

/* The random model as Q8_0 GGUF. */
static const char *random_gguf(void) {
    static char path[512];
    snprintf(path, sizeof path, "%s/cache_q8.gguf", test_tmpdir());
    struct stat st;
    if (!stat(path, &st)) return path;
    const char *dir = random_model();
    if (!dir) return NULL;
    moe_model *m = NULL;
    moe_quant_plan *p = NULL;
    moe_err err = {{0}};
    moe_quant_opts qo = {.mode = MOE_QUANT_TYPE, .type = MOE_QTYPE_Q8_0, .pure = 1};
    moe_quant_write_opts wo = {.n_threads = 2};
    int ok = !moe_model_load(&m, dir, &err) && !moe_quant_plan_new(&p, m, &qo, &err) &&
             !moe_quant_write_gguf(m, p, path, &wo, &err);
    CHECK_MSG(ok, "q8_0 gguf: %s", err.msg);
    moe_quant_plan_free(p);
    moe_model_free(m);
    return ok ? path : NULL;
}

static int32_t tok(int seq, int i, int V) { return (int32_t)((seq * 131 + i * 37 + 5) % V); }

/* Logits of: a prefill chunk of PROMPT tokens, STEPS decode steps (seq 0),
 * then NSEQ interleaved sequences through moe_decode (3 steps of 2 tokens
 * each per sequence). rows: [PROMPT + STEPS + NSEQ*6][V], malloc'd. */
static float *run(moe_model *m, int *n_rows, moe_err *err) {
    int V = moe_model_config(m)->vocab, n = PROMPT + STEPS + NSEQ * 6;
    float *out = calloc((size_t)n * (size_t)V, sizeof *out);
    moe_session *s = NULL;
    moe_session_opts so = {.n_ctx = 64, .n_threads = 2, .max_batch = 32, .n_seq = NSEQ};
    if (!out || moe_session_new(&s, m, &so, err)) goto fail;
    if (moe_model_cache(m)) moe_cache_attach(moe_model_cache(m), s);
    int32_t ids[PROMPT + STEPS];
    for (int i = 0; i < PROMPT + STEPS; i++) ids[i] = tok(0, i, V);
    if (moe_forward(s, ids, PROMPT, out, 1, err)) goto fail;
    for (int i = 0; i < STEPS; i++)
        if (moe_forward(s, ids + PROMPT + i, 1, out + (size_t)(PROMPT + i) * V, 0, err)) goto fail;
    moe_session_reset(s);
    float *o = out + (size_t)(PROMPT + STEPS) * V;
    for (int step = 0; step < 3; step++) {
        int32_t tk[2 * NSEQ], sq[2 * NSEQ], ps[2 * NSEQ];
        int8_t want[2 * NSEQ];
        int k = 0;
        for (int j = 0; j < 2; j++)
            for (int q = 0; q < NSEQ; q++) {
                int p = step * 2 + j;
                tk[k] = tok(q + 1, p, V), sq[k] = q, ps[k] = p, want[k] = 1;
                k++;
            }
        moe_batch b = {k, tk, sq, ps, want};
        if (moe_decode(s, &b, o, err)) goto fail;
        o += (size_t)k * V;
    }
    moe_session_free(s);
    *n_rows = n;
    return out;
fail:
    moe_session_free(s);
    free(out);
    return NULL;
}

static int64_t slot_bytes_of(const char *path) {
    moe_model *m = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.mem = (int64_t)1 << 40, .prefetch = -1};
    if (moe_model_load_opts(&m, path, &o, &err)) {
        CHECK_MSG(0, "%s: %s", path, err.msg);
        return 0;
    }
    moe_cache_stats st;
    moe_cache_stats_get(moe_model_cache(m), &st);
    int total = 0;
    for (int l = 0; l < moe_model_config(m)->n_layers; l++)
        total += moe_model_config(m)->layer[l].moe ? moe_model_config(m)->layer[l].n_experts : 0;
    CHECK_EQ_INT(st.n_slots, total); /* never more slots than experts */
    moe_model_free(m);
    return st.slot_bytes;
}

/* top_k 0: the largest of the model's layers */
static void check_exact(const char *path, int top_k) {
    if (!path) return;
    moe_model *m = NULL;
    moe_err err = {{0}};
    int nr = 0, nc = 0;
    CHECK_MSG(moe_model_load(&m, path, &err) == 0, "%s: %s", path, err.msg);
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    for (int l = 0; !top_k && l < moe_model_config(m)->n_layers; l++) {
        const moe_layer_config *lc = &moe_model_config(m)->layer[l];
        if (lc->moe && lc->top_k > top_k) top_k = lc->top_k;
    }
    int n_moe = 0; /* MoE layers: with one, nothing is predicted nor evicted by another */
    for (int l = 0; l < moe_model_config(m)->n_layers; l++) n_moe += moe_model_config(m)->layer[l].moe;
    float *ref = run(m, &nr, &err);
    CHECK_MSG(ref != NULL, "%s: %s", path, err.msg);
    moe_model_free(m);
    int64_t slot = slot_bytes_of(path);
    const int64_t budgets[2] = {top_k * slot, 5 * slot + slot / 2};
    for (int pol = 0; pol < 3 && ref; pol++)
        for (int b = 0; b < 2; b++)
            for (int pf = 0; pf < 2; pf++) {
                /* with prefetch, every range in parts of two 4096-byte blocks (cache_io.c) */
                moe_load_opts o = {.mem = budgets[b], .policy = (moe_cache_policy)pol, .prefetch = pf,
                                   .readers = 1 + b, .read_part = pf ? 8192 : 0};
                m = NULL;
                if (moe_model_load_opts(&m, path, &o, &err)) {
                    CHECK_MSG(0, "%s: %s", path, err.msg);
                    continue;
                }
                float *got = run(m, &nc, &err);
                CHECK_MSG(got != NULL, "%s %s mem %lld: %s", path,
                          moe_cache_policy_name((moe_cache_policy)pol), (long long)budgets[b], err.msg);
                if (got) {
                    CHECK_EQ_INT(nc, nr);
                    for (int r = 0; r < nr; r++)
                        if (memcmp(got + (size_t)r * V, ref + (size_t)r * V, sizeof(float) * (size_t)V)) {
                            CHECK_MSG(0, "%s %s mem %lld prefetch %d: row %d differs", path,
                                      moe_cache_policy_name((moe_cache_policy)pol),
                                      (long long)budgets[b], pf, r);
                            break;
                        }
                }
                moe_cache_stats st;
                moe_cache_stats_get(moe_model_cache(m), &st);
                CHECK(st.hits + st.misses > 0 && st.reads > 0 && st.bytes_read >= st.reads * 4096);
                CHECK(st.resident_bytes > 0 && st.expert_bytes > 0);
                if (b == 0) CHECK(st.n_slots == top_k && st.max_held == top_k);
                if (b == 0 && n_moe > 1) CHECK(st.misses >= nr); /* every layer evicts */
                if (pf && n_moe > 1) CHECK(st.predicted > 0);
                CHECK(st.prefetch_used + st.prefetch_wasted <= st.prefetch_issued);
                free(got);
                moe_model_free(m);
            }
    free(ref);
}

TEST(cache_exact_gguf_q8) { check_exact(random_gguf(), 2); }
TEST(cache_exact_safetensors) { check_exact(random_model(), 2); }

/* Other layouts: MXFP4 experts with biases (gpt_oss), shared experts and
 * Gated DeltaNet layers (qwen3_next, qwen3_5_moe), a shared expert
 * (qwen2_moe), dense layers among MoE ones (qwen2_moe_dense). */
static void check_fixture(const char *sub, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", test_fixtures(), sub, name);
    check_exact(path, 0);
}
TEST(cache_exact_gpt_oss_mxfp4_gguf) { check_fixture("gguf_models", "gpt_oss_mxfp4.gguf"); }
TEST(cache_exact_qwen3_next_gguf) { check_fixture("gguf_models", "qwen3_next_q8_0.gguf"); }
TEST(cache_exact_qwen3_5_moe_gguf) { check_fixture("gguf_models", "qwen3_5_moe_q8_0.gguf"); }
TEST(cache_exact_qwen2_moe_gguf) { check_fixture("gguf_models", "qwen2_moe_q8_0.gguf"); }
TEST(cache_exact_qwen2_moe_dense) { check_fixture("models", "qwen2_moe_dense"); }

TEST(cache_exact_sharded) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/mixtral_sharded", test_fixtures());
    moe_model *m = NULL;
    moe_err err = {{0}};
    if (moe_model_load(&m, dir, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    int k = moe_model_config(m)->layer[0].top_k;
    moe_model_free(m);
    check_exact(dir, k);
}

TEST(cache_budget_too_small) {
    const char *path = random_gguf();
    if (!path) return;
    int64_t slot = slot_bytes_of(path);
    moe_model *m = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.mem = 2 * slot - 1, .prefetch = -1};
    CHECK(moe_model_load_opts(&m, path, &o, &err) == -1 && m == NULL);
    CHECK_MSG(strstr(err.msg, "below the minimum") && strstr(err.msg, "2 experts of") &&
                  strstr(err.msg, "layer 0"), "%s", err.msg);
}

/* A copy loaded with a budget, then cut short: the decode that needs the
 * lost experts fails naming the file, layer, expert and offset. */
static void truncated_after_load(int64_t read_part) {
    const char *src = random_gguf();
    if (!src) return;
    char path[600];
    snprintf(path, sizeof path, "%s/cut.gguf", test_tmpdir());
    FILE *in = fopen(src, "rb"), *out = fopen(path, "wb");
    CHECK(in && out);
    if (!in || !out) return;
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0) CHECK(fwrite(buf, 1, k, out) == k);
    fclose(in);
    fclose(out);
    moe_model *m = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.mem = 2 * slot_bytes_of(src), .prefetch = 0, .read_part = read_part};
    if (moe_model_load_opts(&m, path, &o, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK(truncate(path, st.st_size / 3) == 0);
    moe_session *s = NULL;
    moe_session_opts so = {.n_ctx = 64, .n_threads = 1, .max_batch = 32};
    CHECK(moe_session_new(&s, m, &so, &err) == 0);
    moe_cache_attach(moe_model_cache(m), s);
    int32_t ids[PROMPT];
    for (int i = 0; i < PROMPT; i++) ids[i] = tok(0, i, 512);
    int rc = 0;
    for (int i = 0; i < PROMPT && !rc; i++) rc = moe_forward(s, ids + i, 1, NULL, 0, &err);
    CHECK(rc == -1);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "layer ") && strstr(err.msg, "expert ") &&
                  strstr(err.msg, "truncated"), "%s", err.msg);
    moe_session_free(s);
    moe_model_free(m);
}
/* whole ranges, and ranges in parts of 8 KiB that readers and the acquire share */
TEST(cache_file_truncated_after_load) {
    truncated_after_load(0);
    truncated_after_load(8192);
}

TEST(cache_refuses_relaid_experts) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/gpt_oss_base", test_fixtures());
    moe_model *m = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.mem = (int64_t)1 << 30, .prefetch = -1};
    CHECK(moe_model_load_opts(&m, dir, &o, &err) == -1);
    CHECK_MSG(strstr(err.msg, "GGUF") && strstr(err.msg, "budget"), "%s", err.msg);
}

TEST(cache_parse_size) {
    int64_t v;
    CHECK(moe_parse_size("512M", &v) == 0 && v == (int64_t)512 << 20);
    CHECK(moe_parse_size("16G", &v) == 0 && v == (int64_t)16 << 30);
    CHECK(moe_parse_size("1.5g", &v) == 0 && v == (int64_t)3 << 29);
    CHECK(moe_parse_size("4096", &v) == 0 && v == 4096);
    CHECK(moe_parse_size("64KiB", &v) == 0 && v == 65536);
    CHECK(moe_parse_size("2MiB", &v) == 0 && v == (int64_t)2 << 20);
    CHECK(moe_parse_size("2MB", &v) == 0 && v == 2000000);
    CHECK(moe_parse_size("3gb", &v) == 0 && v == 3000000000);
    CHECK(moe_parse_size("100b", &v) == 0 && v == 100);
    const char *bad[] = {"", "12X", "-5", "0", "0.0001", "M", "1.2.3", " 5M", "5M ", "1e9",
                         "5iB", "nan", "inf", "99999999999999999999", "5MM", "5Mi", "5MBB", "5KiBB", NULL};
    for (int i = 0; bad[i]; i++) CHECK_MSG(moe_parse_size(bad[i], &v) == -1, "\"%s\" accepted", bad[i]);
    moe_cache_policy p;
    CHECK(moe_cache_policy_parse("lfu", &p) == 0 && p == MOE_CACHE_LFU);
    CHECK(moe_cache_policy_parse("LRU", &p) == -1 && moe_cache_policy_parse("mru", &p) == -1);
}

/* Hash routing depends on the token id alone, so every prediction is right:
 * decode token by token with prefetch, and the later layer's experts come
 * from the reads its prediction started (prefetch used, never wasted), with
 * the same logits as the same steps without a cache. */
static float *decode_each(moe_model *m, const int32_t *ids, int n) {
    int V = moe_model_config(m)->vocab;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts so = {.n_ctx = 16, .n_threads = 1, .max_batch = 4};
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)V);
    if (!out || moe_session_new(&s, m, &so, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        free(out);
        return NULL;
    }
    if (moe_model_cache(m)) moe_cache_attach(moe_model_cache(m), s);
    for (int i = 0; i < n; i++)
        if (moe_forward(s, ids + i, 1, out + (size_t)i * V, 0, &err)) {
            CHECK_MSG(0, "token %d: %s", i, err.msg);
            free(out);
            out = NULL;
            break;
        }
    moe_session_free(s);
    return out;
}

TEST(cache_hash_prefetch_used) {
    const char *path = "tests/fixtures/train/hash";
    const int32_t ids[10] = {3, 16, 29, 42, 55, 4, 17, 30, 43, 56};
    moe_model *m = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_model_load(&m, path, &err) == 0, "%s", err.msg);
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    float *ref = decode_each(m, ids, 10);
    moe_model_free(m);
    moe_load_opts o = {.mem = 2 * slot_bytes_of(path), .policy = MOE_CACHE_HISTORY, .prefetch = 1};
    m = NULL;
    if (!ref || moe_model_load_opts(&m, path, &o, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        free(ref);
        return;
    }
    float *got = decode_each(m, ids, 10);
    CHECK(got && !memcmp(got, ref, sizeof(float) * 10 * (size_t)V));
    moe_cache_stats st;
    moe_cache_stats_get(moe_model_cache(m), &st);
    CHECK(st.layer[1].predicted == 10 && st.layer[1].predicted_used == 10 && st.layer[1].used == 10);
    CHECK(st.predicted_used == st.predicted && st.used_after_prediction == st.predicted);
    CHECK_MSG(st.prefetch_used > 0 && st.prefetch_wasted == 0, "prefetch used %lld wasted %lld",
              (long long)st.prefetch_used, (long long)st.prefetch_wasted);
    free(got);
    free(ref);
    moe_model_free(m);
}

/* Two sessions on two threads share one cache at the smallest budget: each
 * prefill gives the logits of the model loaded whole, or (when both hold
 * slots and wait for more) fails with the message that says so; it never
 * hangs. */
typedef struct share_arg {
    moe_model *m;
    const int32_t *ids;
    float *out;
    int rc;
    moe_err err;
} share_arg;

static void *share_run(void *p) {
    share_arg *a = p;
    moe_session *s = NULL;
    moe_session_opts so = {.n_ctx = 64, .n_threads = 1, .max_batch = 32};
    a->rc = moe_session_new(&s, a->m, &so, &a->err);
    if (a->rc) return NULL;
    moe_cache_attach(moe_model_cache(a->m), s);
    for (int r = 0; r < 3 && !a->rc; r++) {
        moe_session_reset(s);
        a->rc = moe_forward(s, a->ids, PROMPT, a->out, 1, &a->err);
    }
    moe_session_free(s);
    return NULL;
}

static void two_sessions_share(int64_t read_part) {
    const char *path = random_gguf();
    if (!path) return;
    moe_model *m = NULL;
    moe_err err = {{0}};
    int32_t ids[2][PROMPT];
    for (int q = 0; q < 2; q++)
        for (int i = 0; i < PROMPT; i++) ids[q][i] = tok(q, i, 512);
    size_t n = (size_t)PROMPT * 512;
    float *ref = malloc(2 * n * sizeof *ref), *got = malloc(2 * n * sizeof *got);
    CHECK(ref && got && moe_model_load(&m, path, &err) == 0);
    for (int q = 0; q < 2 && m; q++) {
        float *r = test_session_logits(m, ids[q], PROMPT, 1);
        if (r) memcpy(ref + q * n, r, n * sizeof *ref);
        free(r);
    }
    moe_model_free(m);
    m = NULL;
    moe_load_opts o = {.mem = 2 * slot_bytes_of(path), .prefetch = 1, .read_part = read_part};
    if (!ref || !got || moe_model_load_opts(&m, path, &o, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        free(ref);
        free(got);
        return;
    }
    share_arg a[2] = {{m, ids[0], got, 0, {{0}}}, {m, ids[1], got + n, 0, {{0}}}};
    pthread_t t[2];
    for (int q = 0; q < 2; q++) CHECK(pthread_create(&t[q], NULL, share_run, &a[q]) == 0);
    for (int q = 0; q < 2; q++) pthread_join(t[q], NULL);
    for (int q = 0; q < 2; q++) {
        if (a[q].rc == 0)
            CHECK_MSG(!memcmp(got + q * n, ref + q * n, n * sizeof *got), "session %d differs", q);
        else
            CHECK_MSG(strstr(a[q].err.msg, "sessions sharing the cache"), "%s", a[q].err.msg);
    }
    free(ref);
    free(got);
    moe_model_free(m);
}
/* whole ranges, and parts of one 4096-byte block that the readers and both
 * sessions' acquires take from the same slots */
TEST(cache_two_sessions_share) {
    two_sessions_share(0);
    two_sessions_share(4096);
}

/* Buffered reads (pages dropped after each), as where O_DIRECT is refused
 * (tmpfs before Linux 6.6, some overlay mounts): asked for, and on
 * /dev/shm as its kernel decides; the statistics say which, and the logits
 * are the same. */
TEST(cache_buffered_reads) {
    const char *src = random_gguf();
    if (!src) return;
    struct stat st;
    if (stat("/dev/shm", &st) || !S_ISDIR(st.st_mode)) SKIP("no /dev/shm");
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/moe-cache-test-%d.gguf", (int)getpid());
    FILE *in = fopen(src, "rb"), *out = fopen(path, "wb");
    if (!in || !out) {
        if (in) fclose(in);
        if (out) fclose(out);
        SKIP("/dev/shm not writable");
    }
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0) CHECK(fwrite(buf, 1, k, out) == k);
    fclose(in);
    fclose(out);
    int32_t ids[PROMPT];
    for (int i = 0; i < PROMPT; i++) ids[i] = tok(2, i, 512);
    moe_model *m = NULL;
    moe_err err = {{0}};
    float *ref = NULL, *got = NULL;
    if (moe_model_load(&m, path, &err) == 0) ref = decode_each(m, ids, 12);
    moe_model_free(m);
    m = NULL;
    for (int buffered = 0; buffered < 2 && ref; buffered++) {
        moe_load_opts o = {.mem = 3 * slot_bytes_of(path), .prefetch = 1, .buffered = buffered};
        CHECK_MSG(moe_model_load_opts(&m, path, &o, &err) == 0, "%s", err.msg);
        if (!m) continue;
        got = decode_each(m, ids, 12);
        CHECK(got && !memcmp(ref, got, sizeof(float) * 12 * 512));
        moe_cache_stats cs;
        moe_cache_stats_get(moe_model_cache(m), &cs);
        CHECK(cs.reads > 0);
        if (buffered)
            CHECK_MSG(!cs.direct_io && strstr(cs.io_note, "buffered reads") &&
                          strstr(cs.io_note, "asked for"), "%s", cs.io_note);
        else
            CHECK_MSG(cs.direct_io ? !strcmp(cs.io_note, "O_DIRECT")
                                   : strstr(cs.io_note, "O_DIRECT") && strstr(cs.io_note, "refused"),
                      "%s", cs.io_note);
        free(got);
        got = NULL;
        moe_model_free(m);
        m = NULL;
    }
    free(ref);
    unlink(path);
}

/* A layer's misses never take the slot of an expert the same layer has:
 * with two slots holding experts 1 and 2 (2 used longer ago), a layer that
 * wants 0 and 2 reads 0 into 1's slot and keeps 2 (one read, one hit). The
 * provider is driven directly, as the engine would. */
TEST(cache_miss_spares_the_layers_hits) {
    const char *path = random_gguf();
    if (!path) return;
    int64_t slot = slot_bytes_of(path);
    moe_model *m = NULL;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.mem = 2 * slot, .policy = MOE_CACHE_LRU, .prefetch = 0};
    CHECK_MSG(moe_model_load_opts(&m, path, &o, &err) == 0, "%s", err.msg);
    if (!m) return;
    CHECK(moe_session_new(&s, m, NULL, &err) == 0);
    if (!s) {
        moe_model_free(m);
        return;
    }
    moe_cache_attach(moe_model_cache(m), s);
    const moe_expert_provider *p = &s->provider;
    moe_expert_weights w;
    const int first[2] = {1, 2}, second[2] = {0, 2};
    p->want(p->user, 0, first, 2, 0);
    CHECK(p->acquire(p->user, 0, 2, &w, &err) == 0); /* 2 used first, 1 last */
    p->release(p->user, 0, 2);
    CHECK(p->acquire(p->user, 0, 1, &w, &err) == 0);
    p->release(p->user, 0, 1);
    moe_cache_stats_reset(moe_model_cache(m));
    p->want(p->user, 0, second, 2, 0);
    for (int i = 0; i < 2; i++) {
        CHECK(p->acquire(p->user, 0, second[i], &w, &err) == 0);
        p->release(p->user, 0, second[i]);
    }
    moe_cache_stats st;
    moe_cache_stats_get(moe_model_cache(m), &st);
    CHECK_MSG(st.hits == 1 && st.misses == 1 && st.reads == 1, "hits %lld misses %lld reads %lld",
              (long long)st.hits, (long long)st.misses, (long long)st.reads);
    moe_session_free(s);
    moe_model_free(m);
}

/* The read queue, with no reader threads (readers < 0) so nothing moves
 * until an acquire: a miss of the running layer goes ahead of the queued
 * guesses, which keep the order they were given in (likeliest first); a
 * guess its layer then does not use is dropped unread, as is one a newer
 * guess for the same layer leaves out. Each place in a guess keeps its own
 * record of how often the layer used it. */
static int queued_at(const moe_cache *c, int pos) {
    int s = c->q_head;
    for (int i = 0; i < pos && s >= 0; i++) s = c->slots[s].qnext;
    return s < 0 ? -1 : c->slots[s].expert;
}

TEST(cache_queue_needs_first_wrong_guesses_dropped) {
    const char *path = random_gguf();
    if (!path) return;
    moe_model *m = NULL;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.mem = 8 * slot_bytes_of(path), .policy = MOE_CACHE_LRU, .prefetch = 1,
                       .readers = -1};
    CHECK_MSG(moe_model_load_opts(&m, path, &o, &err) == 0, "%s", err.msg);
    if (!m) return;
    CHECK(moe_session_new(&s, m, NULL, &err) == 0);
    if (!s) {
        moe_model_free(m);
        return;
    }
    moe_cache *c = moe_model_cache(m);
    moe_cache_attach(c, s);
    CHECK(c->n_readers == 0 && c->layer_base[0] >= 0 && c->layer_base[1] >= 0);
    const moe_expert_provider *p = &s->provider;
    moe_expert_weights w;
    const int guess[3] = {2, 1, 3}, newer[2] = {2, 1}, need0[1] = {0}, used1[2] = {1, 0};
    p->want(p->user, 1, guess, 3, 1);
    p->want(p->user, 1, newer, 2, 1); /* replaces the guess: 3 is dropped */
    /* three experts guessed, two of them twice: one guess on the record of
     * each of the first three places */
    for (int r = 0; r < MOE_CACHE_GUESS_PLACES; r++)
        CHECK_MSG(c->guess_n[1][r] == (r < 3 ? 1.0f : 0.0f), "place %d: %g guesses", r,
                  c->guess_n[1][r]);
    p->want(p->user, 0, need0, 1, 0);
    int b0 = c->layer_base[0], b1 = c->layer_base[1];
    CHECK_MSG(queued_at(c, 0) == b0 && queued_at(c, 1) == b1 + 2 && queued_at(c, 2) == b1 + 1 &&
                  queued_at(c, 3) == -1, "queue %d %d %d %d", queued_at(c, 0), queued_at(c, 1),
              queued_at(c, 2), queued_at(c, 3));
    CHECK(c->ex[b1 + 3].slot < 0);
    CHECK(p->acquire(p->user, 0, 0, &w, &err) == 0);
    p->release(p->user, 0, 0);
    p->want(p->user, 1, used1, 2, 0); /* 2 was a wrong guess, never read */
    CHECK(c->ex[b1 + 2].slot < 0 && queued_at(c, 0) == b1 + 1);
    /* the second place (expert 1) was used, the first and third were not */
    CHECK_MSG(c->guess_used[1][0] == 0.0f && c->guess_used[1][1] == 1.0f &&
                  c->guess_used[1][2] == 0.0f,
              "used at places 0-2: %g %g %g", c->guess_used[1][0], c->guess_used[1][1],
              c->guess_used[1][2]);
    for (int i = 0; i < 2; i++) {
        CHECK(p->acquire(p->user, 1, used1[i], &w, &err) == 0);
        p->release(p->user, 1, used1[i]);
    }
    moe_cache_stats st;
    moe_cache_stats_get(c, &st);
    CHECK_MSG(st.reads == 3 && st.prefetch_issued == 3 && st.prefetch_used == 1 &&
                  st.prefetch_cancelled == 2 && st.prefetch_wasted == 0,
              "reads %lld issued %lld used %lld cancelled %lld wasted %lld", (long long)st.reads,
              (long long)st.prefetch_issued, (long long)st.prefetch_used,
              (long long)st.prefetch_cancelled, (long long)st.prefetch_wasted);
    CHECK(st.layer[1].predicted == 2 && st.layer[1].predicted_used == 1);
    /* scored by place in the newer guess {2, 1}: the first unused, the second used */
    CHECK(st.predicted_at[0] == 1 && st.predicted_at_used[0] == 0 && st.predicted_at[1] == 1 &&
          st.predicted_at_used[1] == 1 && st.predicted_at[2] == 0);
    moe_session_free(s);
    moe_model_free(m);
}
