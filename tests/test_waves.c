/*
 * test_waves.c - the expert provider's full contract (moe.h): want before
 * the acquires, experts computed in waves of at most max_held with the
 * ready ones first, predictions of later layers. A provider that copies
 * each expert into its own buffers (as a cache's slots would) must give
 * logits bit-identical to the model's own weights, in prefill and decode,
 * whatever the waves; it never holds more than max_held; a hash-routed
 * model's predictions are exactly the experts then used, in the order of
 * the token's choices.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "model/model.h"
#include "test.h"
#include "test_util.h"

#define MAXE 64

typedef struct copier {
    const moe_model *m;
    int max_held, predict, with_ready;
    int held, most_held, acquired, released;
    void *buf[8][MAXE][3];       /* [layer][expert] copies while held */
    int wanted[8][MAXE];         /* the last demanded list of each layer */
    int predicted[8][MAXE];      /* the last prediction for each layer */
    int n_want, n_pred, bad_order, pred_checked, pred_exact;
    int32_t tok;                 /* the token of a one-token chunk (run) */
    int hash_order, hash_bad;    /* predictions in the order hash routing ranks them */
    unsigned rng;
} copier;

static size_t mat_bytes(const mat *w) {
    return (size_t)(w->rows * dtype_row_bytes(w->type, w->cols));
}

static void want(void *user, int layer, const int *ex, int n, int predicted) {
    copier *c = user;
    int E = c->m->cfg.layer[layer].n_experts;
    /* demands ascending; a guess likeliest first, each expert once */
    for (int i = 0; i < n; i++)
        if (ex[i] < 0 || ex[i] >= E || (!predicted && i && ex[i] <= ex[i - 1])) c->bad_order++;
    int *row = predicted ? c->predicted[layer] : c->wanted[layer];
    memset(row, 0, sizeof(int) * MAXE);
    for (int i = 0; i < n; i++)
        if (ex[i] >= 0 && ex[i] < MAXE) c->bad_order += row[ex[i]]++ > 0;
    if (predicted) {
        c->n_pred++;
        if (c->hash_order) { /* one token: its j-th choice at place j */
            int K = c->m->cfg.layer[layer].top_k;
            c->hash_bad += n != K;
            for (int j = 0; j < n && j < K; j++)
                c->hash_bad += ex[j] != router_hash_expert(c->tok, E, j);
        }
        return;
    }
    c->n_want++;
    /* a demand for a layer predicted earlier in this token: compare */
    int any = 0, same = 1;
    for (int e = 0; e < E; e++) {
        any |= c->predicted[layer][e];
        if (c->predicted[layer][e] != c->wanted[layer][e]) same = 0;
    }
    if (any) {
        c->pred_checked++;
        c->pred_exact += same;
        memset(c->predicted[layer], 0, sizeof(int) * MAXE);
    }
}

static int ready(void *user, int layer, int expert) {
    copier *c = user;
    c->rng = c->rng * 1103515245u + 12345u;
    return (c->rng >> 16) & 1;
}

static int acquire(void *user, int layer, int expert, moe_expert_weights *w, moe_err *err) {
    copier *c = user;
    const ffn_w *f = &c->m->layers[layer].experts[expert];
    const mat *ms[3] = {&f->gate, &f->up, &f->down};
    for (int i = 0; i < 3; i++) {
        size_t n = mat_bytes(ms[i]);
        c->buf[layer][expert][i] = malloc(n);
        if (!c->buf[layer][expert][i]) return moe_fail(err, "out of memory");
        memcpy(c->buf[layer][expert][i], ms[i]->data, n);
    }
    *w = (moe_expert_weights){.gate = c->buf[layer][expert][0], .up = c->buf[layer][expert][1],
                              .down = c->buf[layer][expert][2]};
    c->acquired++;
    if (++c->held > c->most_held) c->most_held = c->held;
    return 0;
}

static void release(void *user, int layer, int expert) {
    copier *c = user;
    for (int i = 0; i < 3; i++) {
        /* poison before freeing: a read after release changes the logits */
        const ffn_w *f = &c->m->layers[layer].experts[expert];
        const mat *ms[3] = {&f->gate, &f->up, &f->down};
        memset(c->buf[layer][expert][i], 0x7f, mat_bytes(ms[i]));
        free(c->buf[layer][expert][i]);
        c->buf[layer][expert][i] = NULL;
    }
    c->released++;
    c->held--;
}

/* logits of ids [n] fed `chunk` tokens per call, all rows kept */
static float *run(moe_model *m, const copier *proto, copier *c, const int32_t *ids, int n,
                  int chunk) {
    int V = m->cfg.vocab;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 64, .n_threads = 2};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    if (!s) return NULL;
    if (proto) {
        *c = *proto;
        moe_expert_provider p = {acquire, release, c, want, c->with_ready ? ready : NULL,
                                 c->max_held, c->predict};
        moe_session_set_expert_provider(s, &p);
    }
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)V);
    for (int i = 0; i < n && out; i += chunk) {
        int k = n - i < chunk ? n - i : chunk;
        if (c) c->tok = ids[i];
        int rc = moe_forward(s, ids + i, k, out + (size_t)i * V, 1, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (rc) break;
    }
    moe_session_free(s);
    return out;
}

static void same_bits(const char *variant, int max_held, int predict, int with_ready) {
    moe_model *m = test_load_variant(variant);
    if (!m) return;
    int V = m->cfg.vocab, n = 12;
    CHECK(m->cfg.n_layers <= 8);
    int32_t ids[12];
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((i * 37 + 5) % V);
    for (int chunk = 1; chunk <= n && !test_failed_now; chunk = chunk == 1 ? 5 : chunk + 100) {
        float *ref = run(m, NULL, NULL, ids, n, chunk);
        copier proto = {.m = m, .max_held = max_held, .predict = predict, .with_ready = with_ready,
                        .rng = 7};
        copier c;
        float *got = run(m, &proto, &c, ids, n, chunk);
        if (ref && got)
            CHECK_MSG(!memcmp(ref, got, sizeof(float) * (size_t)n * (size_t)V),
                      "%s chunk %d max_held %d: logits differ", variant, chunk, max_held);
        CHECK(c.acquired > 0 && c.acquired == c.released && c.held == 0);
        CHECK_MSG(!max_held || c.most_held <= max_held, "held %d > %d", c.most_held, max_held);
        CHECK(c.n_want > 0 && !c.bad_order);
        if (predict && chunk == 1) CHECK(c.n_pred > 0);
        if (!predict) CHECK(c.n_pred == 0);
        free(ref);
        free(got);
    }
    moe_model_free(m);
}

TEST(waves_one_at_a_time_same_bits) { same_bits("olmoe_base", 1, 0, 0); }
TEST(waves_ready_first_same_bits) { same_bits("mixtral_base", 2, 1, 1); }
TEST(waves_unlimited_predict_two_same_bits) { same_bits("qwen2_moe_base", 0, 2, 1); }
TEST(waves_gpt_oss_biases_same_bits) { same_bits("gpt_oss_base", 3, 1, 1); }

/* Hash routing depends on the token id alone: every prediction is exact. */
TEST(waves_hash_predictions_exact) {
    moe_model *m = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_model_load(&m, "tests/fixtures/train/hash", &err) == 0, "%s", err.msg);
    if (!m) return;
    int32_t ids[10];
    for (int i = 0; i < 10; i++) ids[i] = (int32_t)((i * 13 + 3) % m->cfg.vocab);
    copier proto = {.m = m, .max_held = 1, .predict = 1, .with_ready = 1, .rng = 3,
                    .hash_order = 1}, c;
    float *ref = run(m, NULL, NULL, ids, 10, 1), *got = run(m, &proto, &c, ids, 10, 1);
    if (ref && got) CHECK(!memcmp(ref, got, sizeof(float) * 10 * (size_t)m->cfg.vocab));
    CHECK_MSG(c.pred_checked == 10 * (m->cfg.n_layers - 1), "%d checked", c.pred_checked);
    CHECK(c.pred_exact == c.pred_checked);
    CHECK_MSG(c.n_pred > 0 && c.hash_bad == 0 && !c.bad_order, "%d guesses, %d out of order",
              c.n_pred, c.hash_bad);
    free(ref);
    free(got);
    moe_model_free(m);
}

/* A learned router: predictions are top-k sets of the right size. */
TEST(waves_predictions_are_topk_sets) {
    moe_model *m = test_load_variant("qwen3_moe_base");
    if (!m) return;
    int32_t ids[6] = {1, 5, 9, 2, 7, 3};
    copier proto = {.m = m, .max_held = 2, .predict = 1, .with_ready = 0}, c;
    float *got = run(m, &proto, &c, ids, 6, 1);
    CHECK_MSG(c.n_pred == 6 * (m->cfg.n_layers - 1), "%d guesses", c.n_pred);
    CHECK(c.pred_checked == c.n_pred && !c.bad_order);
    int k = 0;
    for (int e = 0; e < MAXE; e++) k += c.predicted[m->cfg.n_layers - 1][e];
    CHECK(k == 0); /* consumed by the last demand */
    free(got);
    moe_model_free(m);
}
