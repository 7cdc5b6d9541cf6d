/*
 * test_cache_fallback.c - the expert cache's resident low-precision copy
 * (moe_load_opts.fallback):
 *   - every expert from the copy (no reader threads: nothing is ever read)
 *     gives logits bit-identical (memcmp) to the file `moe quantize` writes
 *     with the experts at that type and everything else as stored, for
 *     Q2_K, Q3_K and Q4_K (the down matrices, rows of 128, take the
 *     substitutes Q4_0 and Q5_0), and within a stated mean KL of exact
 *     (0.05, 0.02, 0.005 nats);
 *   - some experts exact and some from the copy: bit-identical to the model
 *     whose own experts have those types, computed in one wave (types mixed
 *     in one grouped product);
 *   - a budget holding every expert, warmed until nothing is missing: the
 *     copy is never used and the logits are exact;
 *   - a read queued for a pass that took the copy is dropped when the layer
 *     comes again without the expert;
 *   - the engine computes typed weights with their types, and refuses types
 *     it does not know or whose blocks do not fit the rows;
 *   - the counter is 0 without a fallback; bad types and a budget too small
 *     for the copy and the slots are refused naming the sizes.
 */
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moe_cache.h"
#include "moe_quant.h"
#include "cache/cache.h"
#include "model/model.h"
#include "model/model_init.h"

#define PROMPT 20
#define STEPS 6
#define ROWS (PROMPT + STEPS)

/* A random 2-layer model, 8 experts of top-2, dim 256, expert width 128, as
 * a Q8_0 GGUF (under test_tmpdir). */
static const char *q8_model(void) {
    static char path[512];
    snprintf(path, sizeof path, "%s/cache_fb_q8.gguf", test_tmpdir());
    struct stat st;
    if (!stat(path, &st)) return path;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/cache_fb_st", test_tmpdir());
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
        c.layer[i] = (moe_layer_config){.moe = 1, .n_experts = 8, .top_k = 2, .expert_dim = 128,
                                        .norm_topk = 1, .routed_scale = 1.0f};
    moe_err err = {{0}};
    model_init_opts o = {DT_F32, 23, 0.05f, NULL, NULL, NULL, 0, 0};
    moe_model *m = NULL;
    moe_quant_plan *p = NULL;
    moe_quant_opts qo = {.mode = MOE_QUANT_TYPE, .type = MOE_QTYPE_Q8_0, .pure = 1};
    moe_quant_write_opts wo = {.n_threads = 2};
    int ok = !mkdir(dir, 0755) && !model_init_random(&c, dir, &o, &err) &&
             !moe_model_load(&m, dir, &err) && !moe_quant_plan_new(&p, m, &qo, &err) &&
             !moe_quant_write_gguf(m, p, path, &wo, &err);
    CHECK_MSG(ok, "q8_0 model: %s", err.msg);
    moe_quant_plan_free(p);
    moe_model_free(m);
    return ok ? path : NULL;
}

/* `moe quantize --type q8_0 --pure --experts TYPE` of src: every tensor as
 * stored but the experts, at type (or its substitute). */
static const char *experts_at(const char *src, int type) {
    static char path[512];
    snprintf(path, sizeof path, "%s/cache_fb_%s.gguf", test_tmpdir(), moe_qtype_name(type));
    moe_model *m = NULL;
    moe_quant_plan *p = NULL;
    moe_err err = {{0}};
    moe_quant_opts qo = {.mode = MOE_QUANT_TYPE, .type = MOE_QTYPE_Q8_0, .pure = 1, .experts = type};
    moe_quant_write_opts wo = {.n_threads = 2};
    int ok = !moe_model_load(&m, src, &err) && !moe_quant_plan_new(&p, m, &qo, &err) &&
             !moe_quant_write_gguf(m, p, path, &wo, &err);
    CHECK_MSG(ok, "experts at %s: %s", moe_qtype_name(type), err.msg);
    moe_quant_plan_free(p);
    moe_model_free(m);
    return ok ? path : NULL;
}

static int32_t tok(int i, int V) { return (int32_t)((i * 37 + 5) % V); }

/* Logits [ROWS][V] of a prefill chunk of PROMPT tokens (every expert used)
 * and STEPS token-by-token steps; malloc'd, NULL on failure. */
static float *run(moe_model *m) {
    int V = moe_model_config(m)->vocab;
    float *out = calloc((size_t)ROWS * (size_t)V, sizeof *out);
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts so = {.n_ctx = 64, .n_threads = 2, .max_batch = 32};
    int32_t ids[ROWS];
    for (int i = 0; i < ROWS; i++) ids[i] = tok(i, V);
    int ok = out && !moe_session_new(&s, m, &so, &err);
    if (ok && moe_model_cache(m)) moe_cache_attach(moe_model_cache(m), s);
    ok = ok && !moe_forward(s, ids, PROMPT, out, 1, &err);
    for (int i = 0; ok && i < STEPS; i++)
        ok = !moe_forward(s, ids + PROMPT + i, 1, out + (size_t)(PROMPT + i) * V, 0, &err);
    CHECK_MSG(ok, "run: %s", err.msg);
    moe_session_free(s);
    if (!ok) free(out), out = NULL;
    return out;
}

static float *run_path(const char *path) {
    moe_model *m = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_model_load(&m, path, &err) == 0, "%s: %s", path, err.msg);
    float *r = m ? run(m) : NULL;
    moe_model_free(m);
    return r;
}

static int rows_equal(const float *a, const float *b, int V) {
    for (int r = 0; r < ROWS; r++)
        if (memcmp(a + (size_t)r * V, b + (size_t)r * V, sizeof(float) * (size_t)V)) return 0;
    return 1;
}

/* Mean over rows of KL(softmax(p) || softmax(q)), and the share of rows
 * whose argmax agrees. */
static double mean_kl(const float *p, const float *q, int V, double *top1) {
    double kl = 0;
    int agree = 0;
    for (int r = 0; r < ROWS; r++) {
        const float *a = p + (size_t)r * V, *b = q + (size_t)r * V;
        double ma = a[0], mb = b[0], sa = 0, sb = 0, k = 0;
        int ia = 0, ib = 0;
        for (int v = 1; v < V; v++) {
            if (a[v] > ma) ma = a[v], ia = v;
            if (b[v] > mb) mb = b[v], ib = v;
        }
        for (int v = 0; v < V; v++) sa += exp(a[v] - ma), sb += exp(b[v] - mb);
        for (int v = 0; v < V; v++) {
            double la = a[v] - ma - log(sa), lb = b[v] - mb - log(sb);
            k += exp(la) * (la - lb);
        }
        kl += k;
        agree += ia == ib;
    }
    *top1 = (double)agree / ROWS;
    return kl / ROWS;
}

/* The smallest budget with a fallback of type t: the copy and top_k slots. */
static int64_t min_budget(const char *path, int type, char *msg, size_t size) {
    moe_model *m = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.mem = 1, .prefetch = -1, .fallback = type};
    CHECK(moe_model_load_opts(&m, path, &o, &err) == -1 && m == NULL);
    if (msg) snprintf(msg, size, "%s", err.msg);
    const char *at = strstr(err.msg, "give at least ");
    CHECK_MSG(at != NULL, "%s", err.msg);
    return at ? strtoll(at + strlen("give at least "), NULL, 10) : 0;
}

TEST(cache_fallback_all_is_the_quantized_file) {
    const char *src = q8_model();
    if (!src) return;
    float *exact = run_path(src);
    const int types[3] = {MOE_QTYPE_Q2_K, MOE_QTYPE_Q3_K, MOE_QTYPE_Q4_K};
    /* measured: mean KL 0.019, 0.0081, 0.0021; top-1 69%, 81%, 85% (a random model's
     * logits are nearly flat, so its argmax moves easily) */
    const double kl_max[3] = {0.05, 0.02, 0.005};
    for (int i = 0; i < 3 && exact; i++) {
        const char *qpath = experts_at(src, types[i]);
        float *ref = qpath ? run_path(qpath) : NULL;
        moe_model *m = NULL;
        moe_err err = {{0}};
        moe_load_opts o = {.mem = min_budget(src, types[i], NULL, 0), .prefetch = 1, .readers = -1,
                           .fallback = types[i]};
        CHECK_MSG(moe_model_load_opts(&m, src, &o, &err) == 0, "%s", err.msg);
        float *got = m && ref ? run(m) : NULL;
        if (got) {
            int V = moe_model_config(m)->vocab;
            CHECK_MSG(rows_equal(got, ref, V), "%s: the copy differs from moe quantize's file",
                      moe_qtype_name(types[i]));
            double top1, kl = mean_kl(exact, got, V, &top1);
            CHECK_MSG(kl > 0 && kl < kl_max[i] && top1 >= 0.5, "%s: mean KL %g, top-1 %g",
                      moe_qtype_name(types[i]), kl, top1);
            moe_cache_stats st;
            moe_cache_stats_get(moe_model_cache(m), &st);
            CHECK(st.reads == 0 && st.fallbacks == st.hits + st.misses && st.fallbacks > 0);
            CHECK(st.fallback_type == types[i] && st.fallback_bytes > 0 && st.stalls == 0);
        }
        free(got);
        free(ref);
        moe_model_free(m);
    }
    free(exact);
}

/* Experts 0-3 of each layer exact (in slots, read before the run), 4-7
 * from the copy (no readers): the same bits as the model whose own experts
 * 4-7 are the copy's matrices, run without a cache in one wave of mixed
 * types. */
TEST(cache_fallback_mixed_waves) {
    const char *src = q8_model();
    if (!src) return;
    moe_model *m = NULL, *ref = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.mem = (int64_t)1 << 30, .prefetch = 0, .readers = -1,
                       .fallback = MOE_QTYPE_Q2_K};
    CHECK_MSG(moe_model_load_opts(&m, src, &o, &err) == 0, "%s", err.msg);
    CHECK_MSG(moe_model_load(&ref, src, &err) == 0, "%s", err.msg);
    if (!m || !ref) goto done;
    moe_cache *c = moe_model_cache(m);
    CHECK(c->n_slots == c->n_ex);
    for (int g = 0, s = 0; g < c->n_ex; g++) {
        cache_expert *x = &c->ex[g];
        if (x->expert < 4) { /* read into a slot by hand */
            int64_t bytes;
            CHECK(cache_read_expert(c, x, c->slots[s].buf, &bytes, &err) == 0);
            c->slots[s].expert = g, c->slots[s].state = SLOT_READY, x->slot = s++;
            continue;
        }
        ffn_w *f = &ref->layers[x->layer].experts[x->expert];
        mat *w[3] = {&f->gate, &f->up, &f->down};
        for (int i = 0; i < 3; i++)
            w[i]->data = c->fb + x->fb_at[i], w[i]->type = dtype_from_ggml(x->fb_type[i]);
    }
    float *want = run(ref), *got = run(m);
    if (want && got) CHECK(rows_equal(got, want, moe_model_config(m)->vocab));
    moe_cache_stats st;
    moe_cache_stats_get(c, &st);
    CHECK(st.fallbacks > 0 && st.fallbacks < st.hits + st.misses && st.reads == 0);
    free(want);
    free(got);
done:
    moe_model_free(ref); /* its experts point into m's copy: freed first */
    moe_model_free(m);
}

/* Wait until no read is queued or in flight. */
static void wait_reads(moe_cache *c) {
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&c->mu);
        int busy = c->q_head >= 0 || c->reading > 0;
        pthread_mutex_unlock(&c->mu);
        if (!busy) return;
        usleep(1000);
    }
}

TEST(cache_fallback_unused_when_all_resident) {
    const char *src = q8_model();
    if (!src) return;
    float *exact = run_path(src);
    moe_model *m = NULL;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.mem = (int64_t)1 << 30, .prefetch = -1, .readers = 2,
                       .fallback = MOE_QTYPE_Q4_K};
    CHECK_MSG(moe_model_load_opts(&m, src, &o, &err) == 0, "%s", err.msg);
    if (!m || !exact) goto done;
    moe_cache *c = moe_model_cache(m);
    /* warm-up: every expert of every layer asked for, its read waited for */
    CHECK(moe_session_new(&s, m, NULL, &err) == 0);
    if (!s) goto done;
    moe_cache_attach(c, s);
    const moe_expert_provider *p = &s->provider;
    const int all[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int l = 0; l < 2; l++) p->want(p->user, l, all, 8, 0);
    wait_reads(c);
    for (int l = 0; l < 2; l++)
        for (int e = 0; e < 8; e++) CHECK(p->ready(p->user, l, e));
    moe_session_free(s);
    moe_cache_stats_reset(c);
    float *got = run(m);
    if (got) CHECK(rows_equal(got, exact, moe_model_config(m)->vocab));
    moe_cache_stats st;
    moe_cache_stats_get(c, &st);
    CHECK(st.fallbacks == 0 && st.misses == 0 && st.hits > 0 && st.fallback_bytes > 0);
    free(got);
done:
    free(exact);
    moe_model_free(m);
}

TEST(cache_fallback_off_counts_nothing) {
    const char *src = q8_model();
    if (!src) return;
    moe_model *m = NULL;
    moe_err err = {{0}};
    char msg[512];
    int64_t min = min_budget(src, MOE_QTYPE_Q4_K, msg, sizeof msg), fb = 0;
    const char *at = strstr(msg, "fallback copy (");
    if (at) fb = strtoll(strchr(at, ',') + 2, NULL, 10);
    CHECK_MSG(fb > 0 && fb < min, "%s", msg);
    moe_load_opts o = {.mem = min - fb, .prefetch = -1}; /* the slots alone: top_k of them */
    CHECK_MSG(moe_model_load_opts(&m, src, &o, &err) == 0, "%s", err.msg);
    float *got = m ? run(m) : NULL;
    moe_cache_stats st;
    if (m) {
        moe_cache_stats_get(moe_model_cache(m), &st);
        CHECK(st.fallbacks == 0 && st.fallback_type == 0 && st.fallback_bytes == 0 && st.misses > 0);
        CHECK(moe_model_cache(m)->n_slots == 2);
    }
    free(got);
    moe_model_free(m);
}

TEST(cache_fallback_bad_input) {
    const char *src = q8_model();
    if (!src) return;
    moe_model *m = NULL;
    moe_err err = {{0}};
    const int bad[3] = {MOE_QTYPE_F16, MOE_QTYPE_BF16, 99};
    for (int i = 0; i < 3; i++) {
        moe_load_opts o = {.mem = (int64_t)1 << 30, .prefetch = -1, .fallback = bad[i]};
        CHECK(moe_model_load_opts(&m, src, &o, &err) == -1 && m == NULL);
        CHECK_MSG(strstr(err.msg, "is not a quantized type that can be written"), "%s", err.msg);
    }
    char msg[512];
    int64_t min = min_budget(src, MOE_QTYPE_Q2_K, msg, sizeof msg);
    CHECK_MSG(strstr(msg, "less the Q2_K fallback copy") && strstr(msg, "below their minimum") &&
                  strstr(msg, "2 experts of") && strstr(msg, "for layer 0"), "%s", msg);
    moe_load_opts o = {.mem = min - 1, .prefetch = -1, .fallback = MOE_QTYPE_Q2_K};
    CHECK(moe_model_load_opts(&m, src, &o, &err) == -1 && m == NULL);
    o.mem = min;
    CHECK_MSG(moe_model_load_opts(&m, src, &o, &err) == 0, "%s", err.msg);
    if (m) CHECK(moe_model_cache(m)->n_slots == 2);
    moe_model_free(m);
}

/* A read queued for a layer's pass that took the copy is dropped unread when
 * the layer comes again without the expert, kept when it uses it again (no
 * readers: the queue stays as the wants leave it). */
TEST(cache_fallback_drops_late_reads) {
    const char *src = q8_model();
    if (!src) return;
    moe_model *m = NULL;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.mem = (int64_t)1 << 30, .prefetch = 0, .readers = -1,
                       .fallback = MOE_QTYPE_Q4_K};
    CHECK_MSG(moe_model_load_opts(&m, src, &o, &err) == 0, "%s", err.msg);
    if (!m || moe_session_new(&s, m, NULL, &err)) goto done;
    moe_cache *c = moe_model_cache(m);
    moe_cache_attach(c, s);
    const moe_expert_provider *p = &s->provider;
    const int first[2] = {0, 1}, again[2] = {1, 2};
    int b0 = c->layer_base[0];
    moe_expert_weights w;
    p->want(p->user, 0, first, 2, 0);
    for (int i = 0; i < 2; i++) {
        CHECK(p->acquire(p->user, 0, first[i], &w, &err) == 0 && w.typed == 1);
        CHECK(w.gate_type == MOE_QTYPE_Q4_K && w.down_type == MOE_QTYPE_Q5_0); /* rows of 128 */
        p->release(p->user, 0, first[i]);
    }
    CHECK(c->ex[b0].slot >= 0 && c->ex[b0 + 1].slot >= 0 && c->ex[b0].fb_held == 0);
    p->want(p->user, 0, again, 2, 0);
    CHECK(c->ex[b0].slot < 0); /* dropped */
    CHECK(c->ex[b0 + 1].slot >= 0 && c->slots[c->ex[b0 + 1].slot].state == SLOT_QUEUED); /* kept */
    CHECK(c->ex[b0 + 2].slot >= 0); /* queued now; 1, queued, counts as a hit */
    moe_cache_stats st;
    moe_cache_stats_get(c, &st);
    CHECK_MSG(st.fallback_dropped == 1 && st.fallbacks == 2 && st.reads == 0 && st.misses == 3 &&
                  st.hits == 1, "dropped %lld fallbacks %lld misses %lld hits %lld",
              (long long)st.fallback_dropped, (long long)st.fallbacks, (long long)st.misses,
              (long long)st.hits);
done:
    moe_session_free(s);
    moe_model_free(m);
}

/* A provider that hands out the model's own weights, typed with the types
 * it is given (engine side of moe_expert_weights.typed). */
typedef struct typed_provider {
    const moe_model *m;
    int type; /* GGUF id handed out for every matrix */
} typed_provider;

static int typed_acquire(void *user, int layer, int expert, moe_expert_weights *w, moe_err *err) {
    typed_provider *p = user;
    if (moe_model_expert_weights(p->m, layer, expert, w, err)) return -1;
    w->typed = 1;
    w->gate_type = w->up_type = w->down_type = p->type;
    return 0;
}

static void typed_release(void *user, int layer, int expert) {}

TEST(cache_fallback_engine_checks_types) {
    const char *src = q8_model();
    if (!src) return;
    float *exact = run_path(src);
    moe_model *m = NULL;
    moe_session *s = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_model_load(&m, src, &err) == 0, "%s", err.msg);
    if (!m || !exact || moe_session_new(&s, m, NULL, &err)) goto done;
    int V = moe_model_config(m)->vocab;
    float *out = calloc((size_t)ROWS * (size_t)V, sizeof *out);
    int32_t ids[PROMPT];
    for (int i = 0; i < PROMPT; i++) ids[i] = tok(i, V);
    typed_provider tp = {m, MOE_QTYPE_Q8_0}; /* the stored type, said out loud: same bits */
    moe_expert_provider p = {typed_acquire, typed_release, &tp, NULL, NULL, 0, 0};
    moe_session_set_expert_provider(s, &p);
    CHECK(out && moe_forward(s, ids, PROMPT, out, 1, &err) == 0);
    if (out) CHECK(!memcmp(out, exact, sizeof(float) * (size_t)PROMPT * (size_t)V));
    moe_session_reset(s);
    const int bad[2] = {99, MOE_QTYPE_Q4_K}; /* unknown; blocks of 256 on rows of 128 (down) */
    for (int i = 0; i < 2 && out; i++) {
        tp.type = bad[i];
        CHECK(moe_forward(s, ids, PROMPT, out, 1, &err) == -1);
        CHECK_MSG(strstr(err.msg, "the expert provider gave types"), "%s", err.msg);
        moe_session_reset(s);
    }
    free(out);
done:
    moe_session_free(s);
    moe_model_free(m);
    free(exact);
}
