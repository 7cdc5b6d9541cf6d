/*
 * test_batch.c - the batch API (moe_decode, moe_seq_rm, moe_seq_cp,
 * moe_seq_pos) and the session hooks. Every batched result is held to the
 * same tokens run alone, one sequence per fresh session:
 *   - four sequences of different lengths, interleaved in one call;
 *   - decode steps that mix sequences at different positions;
 *   - forgetting a suffix, then reusing the positions;
 *   - a prompt copied to two sequences, then two continuations;
 *   - each error case, which leaves the session as it was;
 *   - the dispatch hook and the expert provider give the same logits, and
 *     a failing hook's message reaches the caller;
 *   - two sessions of two models, alternately and from two threads,
 *     bit-identical to each alone.
 */
#include "test.h"
#include "test_util.h"

#include <pthread.h>
#include <stdlib.h>

#include "base/err.h"
#include "formats/hf_config.h"
#include "model/model.h"
#include "model/model_init.h"

#define NSEQ 4
static const int LEN[NSEQ] = {9, 3, 14, 6};

static int32_t tok(int seq, int i, int V) { return (int32_t)((seq * 131 + i * 37 + 5) % V); }

/* Four sequences interleaved round-robin in one call, every row asked for;
 * then three decode steps over changing subsets of the sequences. */
static void check_interleaved(const char *variant) {
    moe_model *m = test_load_variant(variant);
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    int total = 0, steps = 3;
    for (int q = 0; q < NSEQ; q++) total += LEN[q] + steps;
    int32_t *all[NSEQ];
    float *ref[NSEQ];
    for (int q = 0; q < NSEQ; q++) {
        all[q] = malloc(sizeof(int32_t) * (size_t)(LEN[q] + steps));
        for (int i = 0; i < LEN[q] + steps; i++) all[q][i] = tok(q, i, V);
        ref[q] = test_session_logits(m, all[q], LEN[q] + steps, 1);
    }
    moe_session *s = NULL;
    moe_err err = {{0}};
    /* max_batch 8 splits the 32-token call into chunks across sequences */
    moe_session_opts o = {.n_ctx = 32, .n_threads = 2, .max_batch = 8, .n_seq = NSEQ};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    int32_t token[64], seq[64], pos[64];
    int8_t want[64];
    int n = 0, next[NSEQ] = {0};
    for (int round = 0; n < 32; round++)
        for (int q = 0; q < NSEQ; q++)
            if (next[q] < LEN[q]) {
                token[n] = all[q][next[q]], seq[n] = q, pos[n] = next[q]++, want[n] = 1;
                n++;
            }
    float *lg = malloc(sizeof(float) * (size_t)n * (size_t)V);
    moe_batch b = {n, token, seq, pos, want};
    CHECK(moe_decode(s, &b, lg, &err) == 0);
    for (int i = 0; i < n && !test_failed_now; i++) {
        double e = test_rel_err(lg + (size_t)i * V, ref[seq[i]] + (size_t)pos[i] * V, V);
        CHECK_MSG(e <= 1e-5, "%s: token %d (seq %d pos %d): rel err %g", variant, i, seq[i], pos[i], e);
    }
    for (int q = 0; q < NSEQ; q++) CHECK(moe_seq_pos(s, q) == LEN[q]);

    /* decode steps: each step a different subset, one or two tokens each,
     * logits of the last token of each sequence (logits == NULL) */
    static const int take[3][NSEQ] = {{1, 0, 2, 1}, {0, 2, 1, 1}, {2, 1, 0, 1}};
    for (int st = 0; st < 3; st++) {
        n = 0;
        for (int q = NSEQ - 1; q >= 0; q--) /* an order other than by sequence */
            for (int j = 0; j < take[st][q] && next[q] < LEN[q] + steps; j++)
                token[n] = all[q][next[q]], seq[n] = q, pos[n] = next[q]++, n++;
        moe_batch d = {n, token, seq, pos, NULL};
        CHECK(moe_decode(s, &d, lg, &err) == 0);
        int row = 0;
        for (int i = 0; i < n; i++) {
            int last = i + 1 == n || seq[i + 1] != seq[i];
            if (!last) continue;
            double e = test_rel_err(lg + (size_t)row * V, ref[seq[i]] + (size_t)pos[i] * V, V);
            CHECK_MSG(e <= 1e-5, "%s: step %d seq %d pos %d: rel err %g", variant, st, seq[i],
                      pos[i], e);
            row++;
        }
    }
    free(lg);
    for (int q = 0; q < NSEQ; q++) {
        free(all[q]);
        free(ref[q]);
    }
    moe_session_free(s);
    moe_model_free(m);
}

TEST(batch_interleaved_mixtral_swa) { check_interleaved("mixtral_swa"); }
TEST(batch_interleaved_qwen2_moe_dense) { check_interleaved("qwen2_moe_dense"); }
TEST(batch_interleaved_qwen3_moe) { check_interleaved("qwen3_moe_base"); }
TEST(batch_interleaved_olmoe) { check_interleaved("olmoe_base"); }
TEST(batch_interleaved_gpt_oss) { check_interleaved("gpt_oss_base"); }
TEST(batch_interleaved_gpt_oss_legacy) { check_interleaved("gpt_oss_legacy"); }
TEST(batch_interleaved_qwen3_next) { check_interleaved("qwen3_next_base"); }
TEST(batch_interleaved_qwen3_next_legacy) { check_interleaved("qwen3_next_legacy"); }
TEST(batch_interleaved_qwen3_5_moe) { check_interleaved("qwen3_5_moe_vl"); }
TEST(batch_interleaved_qwen3_5_moe_text) { check_interleaved("qwen3_5_moe_text"); }
/* latent attention: the cache holds each sequence's latents and rotary keys */
TEST(batch_interleaved_deepseek_v3) { check_interleaved("deepseek_v3_base"); }
TEST(batch_interleaved_deepseek_v2) { check_interleaved("deepseek_v2_base"); }
TEST(batch_interleaved_glm4_moe) { check_interleaved("glm4_moe_base"); }

/* One sequence's tokens through moe_decode, logits of the last. */
static int feed(moe_session *s, int q, const int32_t *ids, int n, float *last, moe_err *err) {
    int32_t seq[64], pos[64];
    int p0 = moe_seq_pos(s, q);
    for (int i = 0; i < n; i++) seq[i] = q, pos[i] = p0 + i;
    moe_batch b = {n, ids, seq, pos, NULL};
    return moe_decode(s, &b, last, err);
}

TEST(batch_seq_rm_then_reuse) {
    moe_model *m = test_load_variant("qwen3_moe_base");
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    int32_t a[10], b[4], ab[10];
    for (int i = 0; i < 10; i++) a[i] = tok(0, i, V);
    for (int i = 0; i < 4; i++) b[i] = tok(3, i, V);
    memcpy(ab, a, sizeof(int32_t) * 6);
    memcpy(ab + 6, b, sizeof(int32_t) * 4);
    float *ref = test_session_logits(m, ab, 10, 1), *lg = malloc(sizeof(float) * (size_t)V);
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 16, .n_threads = 2, .n_seq = 2};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    CHECK(feed(s, 1, a, 10, lg, &err) == 0);
    CHECK(moe_seq_rm(s, 1, 6, -1, &err) == 0);
    CHECK(moe_seq_pos(s, 1) == 6);
    CHECK(feed(s, 1, b, 4, lg, &err) == 0);
    if (ref && !test_failed_now)
        CHECK_MSG(test_rel_err(lg, ref + (size_t)9 * V, V) <= 1e-5, "after rm: rel err %g",
                  test_rel_err(lg, ref + (size_t)9 * V, V));
    /* a middle range is refused; the whole sequence can go */
    CHECK(moe_seq_rm(s, 1, 2, 5, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "before its end");
    CHECK(moe_seq_pos(s, 1) == 10);
    CHECK(moe_seq_rm(s, 1, 8, 10, &err) == 0); /* [8, end) exactly */
    CHECK(moe_seq_pos(s, 1) == 8);
    CHECK(moe_seq_rm(s, -1, 0, -1, &err) == 0);
    CHECK(moe_seq_pos(s, 1) == 0 && moe_seq_pos(s, 0) == 0);
    CHECK(moe_seq_rm(s, 2, 0, -1, &err) == -1);
    free(ref);
    free(lg);
    moe_session_free(s);
    moe_model_free(m);
}

static void check_seq_cp(const char *variant) {
    moe_model *m = test_load_variant(variant);
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    int32_t full[2][12];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 12; i++) full[k][i] = i < 8 ? tok(0, i, V) : tok(k + 1, i, V);
    float *ref0 = test_session_logits(m, full[0], 12, 1), *ref1 = test_session_logits(m, full[1], 12, 1);
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 16, .n_threads = 2, .n_seq = 3};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    float *lg = malloc(sizeof(float) * 2 * (size_t)V);
    CHECK(feed(s, 0, full[0], 8, lg, &err) == 0); /* the shared prompt, once */
    CHECK(moe_seq_cp(s, 0, 2, &err) == 0);
    CHECK(moe_seq_pos(s, 2) == 8);
    /* both continuations in one call: seq 0 and seq 2 interleaved */
    int32_t token[8], seq[8], pos[8];
    for (int i = 0; i < 4; i++) {
        token[2 * i] = full[0][8 + i], seq[2 * i] = 0, pos[2 * i] = 8 + i;
        token[2 * i + 1] = full[1][8 + i], seq[2 * i + 1] = 2, pos[2 * i + 1] = 8 + i;
    }
    moe_batch b = {8, token, seq, pos, NULL};
    CHECK(moe_decode(s, &b, lg, &err) == 0);
    if (ref0 && ref1 && !test_failed_now) {
        CHECK_MSG(test_rel_err(lg, ref0 + (size_t)11 * V, V) <= 1e-5, "continuation 0");
        CHECK_MSG(test_rel_err(lg + V, ref1 + (size_t)11 * V, V) <= 1e-5, "continuation 1");
    }
    CHECK(moe_seq_cp(s, 0, 3, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "out of range");
    free(ref0);
    free(ref1);
    free(lg);
    moe_session_free(s);
    moe_model_free(m);
}

TEST(batch_seq_cp_prefix_two_continuations) { check_seq_cp("mixtral_base"); }
TEST(batch_seq_cp_latent_cache) { check_seq_cp("deepseek_v3_base"); } /* latent + rotary key rows */

TEST(batch_errors_leave_the_session_as_it_was) {
    moe_model *m = test_load_variant("mixtral_base");
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 4, .n_threads = 1, .n_seq = 2};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    float *lg = malloc(sizeof(float) * 4 * (size_t)V);
    int32_t t[5] = {1, 2, 3, 4, 5}, q0[5] = {0, 0, 0, 0, 0}, p[5] = {0, 1, 2, 3, 4};
    int32_t bad_seq[2] = {0, 2}, bad_pos[2] = {0, 2}, bad_tok[2] = {1, (int32_t)V};
    moe_batch e1 = {2, t, bad_seq, p, NULL};
    CHECK(moe_decode(s, &e1, lg, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "sequence 2");
    moe_batch e2 = {2, t, q0, bad_pos, NULL};
    CHECK(moe_decode(s, &e2, lg, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "next position is 1");
    moe_batch e3 = {5, t, q0, p, NULL};
    CHECK(moe_decode(s, &e3, lg, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "full");
    moe_batch e4 = {2, bad_tok, q0, p, NULL};
    CHECK(moe_decode(s, &e4, lg, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "vocabulary");
    moe_batch e5 = {0, t, q0, p, NULL};
    CHECK(moe_decode(s, &e5, lg, &err) == -1);
    moe_batch e6 = {2, t, NULL, p, NULL};
    CHECK(moe_decode(s, &e6, lg, &err) == -1);
    CHECK(moe_seq_pos(s, 0) == 0 && moe_seq_pos(s, 1) == 0);
    CHECK(moe_seq_pos(s, 2) == -1);
    /* a position already taken is refused too */
    moe_batch ok = {2, t, q0, p, NULL};
    CHECK(moe_decode(s, &ok, lg, &err) == 0);
    CHECK(moe_decode(s, &ok, lg, &err) == -1);
    CHECK(moe_seq_pos(s, 0) == 2);
    free(lg);
    moe_session_free(s);
    moe_model_free(m);
}

/* ---------------------------------------------------------------- hooks */

typedef struct hook_state {
    const moe_model *m;
    int acquired, released, fail_layer;
    int dispatched, observed;
    int last_layer_seen;
} hook_state;

/* A provider that hands out the model's own weights and counts. */
static int acquire(void *user, int layer, int expert, moe_expert_weights *w, moe_err *err) {
    hook_state *h = user;
    if (layer == h->fail_layer) return moe_fail(err, "test provider: expert %d unavailable", expert);
    h->acquired++;
    return moe_model_expert_weights(h->m, layer, expert, w, err);
}
static void release(void *user, int layer, int expert) {
    hook_state *h = user;
    h->released++;
}

/* A dispatcher that computes the odd experts itself with the reference
 * kernels, as another rank would. */
static int dispatch(void *user, moe_dispatch_info *d, moe_err *err) {
    hook_state *h = user;
    const layer_w *lw = &h->m->layers[d->layer];
    int64_t F = h->m->cfg.layer[d->layer].expert_dim, D = d->D;
    for (int e = 1; e < d->E; e += 2) {
        int n = d->expert_start[e + 1] - d->expert_start[e];
        if (!n) continue;
        float *g = malloc(sizeof(float) * (size_t)(n * F)), *u = malloc(sizeof(float) * (size_t)(n * F));
        const float *x = d->x + (int64_t)d->expert_start[e] * D;
        matmul_ref(g, x, &lw->experts[e].gate, n);
        matmul_ref(u, x, &lw->experts[e].up, n);
        for (int64_t i = 0; i < n * F; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        matmul_ref(d->y + (int64_t)d->expert_start[e] * D, g, &lw->experts[e].down, n);
        d->remote[e] = 1;
        h->dispatched++;
        free(g);
        free(u);
    }
    return 0;
}

static void observe(void *user, const moe_route_info *r) {
    hook_state *h = user;
    h->observed++;
    h->last_layer_seen = r->layer;
    for (int t = 0; t < r->T; t++)
        if (r->seq[t] != 0 || r->pos[t] < 0) h->observed = -1000000;
}

TEST(batch_hooks_same_logits) {
    moe_model *m = test_load_variant("qwen2_moe_dense");
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    int32_t ids[12];
    for (int i = 0; i < 12; i++) ids[i] = tok(1, i, V);
    float *ref = test_session_logits(m, ids, 12, 1), *lg = malloc(sizeof(float) * 12 * (size_t)V);
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 16, .n_threads = 2};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    hook_state h = {m, 0, 0, -1, 0, 0, -1};
    moe_expert_provider p = {.acquire = acquire, .release = release, .user = &h};
    moe_session_set_expert_provider(s, &p);
    moe_session_set_dispatch(s, dispatch, &h);
    moe_session_set_route_observer(s, observe, &h);
    CHECK(moe_forward(s, ids, 12, lg, 1, &err) == 0);
    CHECK(h.acquired > 0 && h.acquired == h.released);
    CHECK(h.dispatched > 0);
    CHECK(h.observed > 0);
    for (int i = 0; ref && i < 12 && !test_failed_now; i++)
        CHECK_MSG(test_rel_err(lg + (size_t)i * V, ref + (size_t)i * V, V) <= 1e-5, "row %d", i);

    /* a failing provider: the message reaches the caller, nothing committed */
    moe_session_reset(s);
    h.fail_layer = h.last_layer_seen;
    int before_acq = h.acquired, before_rel = h.released;
    CHECK(moe_forward(s, ids, 4, lg, 0, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "unavailable");
    CHECK(moe_session_pos(s) == 0);
    CHECK(h.acquired - before_acq == h.released - before_rel);
    /* hooks removed: the defaults again */
    moe_session_set_expert_provider(s, NULL);
    moe_session_set_dispatch(s, NULL, NULL);
    moe_session_set_route_observer(s, NULL, NULL);
    CHECK(moe_forward(s, ids, 12, lg, 1, &err) == 0);
    for (int i = 0; ref && i < 12 && !test_failed_now; i++)
        CHECK_MSG(test_rel_err(lg + (size_t)i * V, ref + (size_t)i * V, V) <= 1e-5, "row %d", i);
    free(ref);
    free(lg);
    moe_session_free(s);
    moe_model_free(m);
}

/* ------------------------------------------- sessions side by side */

typedef struct side {
    moe_model *m;
    moe_session *s;
    int32_t ids[16];
    float *out;   /* [16][V] */
    int rc;
    moe_err err;
} side;

static void *run_side(void *arg) {
    side *x = arg;
    moe_session_reset(x->s);
    x->rc = moe_forward(x->s, x->ids, 16, x->out, 1, &x->err);
    return NULL;
}

TEST(batch_two_sessions_two_models_threads) {
    side a = {0}, b = {0};
    a.m = test_load_variant("olmoe_base");
    b.m = test_load_variant("qwen3_moe_base");
    if (!a.m || !b.m) {
        moe_model_free(a.m);
        moe_model_free(b.m);
        return;
    }
    side *both[2] = {&a, &b};
    float *ref[2];
    moe_err err = {{0}};
    for (int k = 0; k < 2; k++) {
        side *x = both[k];
        int V = moe_model_config(x->m)->vocab;
        for (int i = 0; i < 16; i++) x->ids[i] = tok(k, i, V);
        x->out = malloc(sizeof(float) * 16 * (size_t)V);
        moe_session_opts o = {.n_ctx = 16, .n_threads = 2};
        CHECK(moe_session_new(&x->s, x->m, &o, &err) == 0);
        /* alone, in the same kind of session */
        run_side(x);
        CHECK(x->rc == 0);
        ref[k] = malloc(sizeof(float) * 16 * (size_t)V);
        memcpy(ref[k], x->out, sizeof(float) * 16 * (size_t)V);
    }
    /* alternately, then from two threads at once, several rounds */
    for (int round = 0; round < 3 && !test_failed_now; round++) {
        run_side(&b);
        run_side(&a);
        for (int k = 0; k < 2; k++)
            CHECK_MSG(memcmp(both[k]->out, ref[k], sizeof(float) * 16 *
                             (size_t)moe_model_config(both[k]->m)->vocab) == 0,
                      "alternating, model %d differs", k);
        pthread_t th[2];
        for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, run_side, both[k]);
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
        for (int k = 0; k < 2; k++) {
            CHECK(both[k]->rc == 0);
            CHECK_MSG(memcmp(both[k]->out, ref[k], sizeof(float) * 16 *
                             (size_t)moe_model_config(both[k]->m)->vocab) == 0,
                      "threads, model %d differs", k);
        }
    }
    for (int k = 0; k < 2; k++) {
        free(ref[k]);
        free(both[k]->out);
        moe_session_free(both[k]->s);
        moe_model_free(both[k]->m);
    }
}

/* Expert choice ranks a call's tokens against each other: fresh sequences
 * may share a call (as training batches do), a continuing one is refused. */
TEST(batch_expert_choice_fresh_sequences_only) {
    static const char *cfg_json =
        "{\"model_type\":\"mixtral\",\"vocab_size\":40,\"hidden_size\":32,\"intermediate_size\":16,"
        "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
        "\"num_local_experts\":4,\"num_experts_per_tok\":2,\"max_position_embeddings\":32,"
        "\"moe\":{\"router\":\"expert_choice\",\"capacity_factor\":1.0}}";
    static moe_config cfg;
    moe_err err = {{0}};
    moe_model *m = NULL;
    moe_session *s = NULL;
    CHECK(hf_config_parse(&cfg, cfg_json, strlen(cfg_json), "ec config", &err) == 0);
    model_init_opts io = {DT_F32, 3, 0.2f, NULL, NULL, NULL, 0, 0};
    CHECK(model_init_random(&cfg, test_tmpdir(), &io, &err) == 0);
    CHECK(moe_model_load(&m, test_tmpdir(), &err) == 0);
    moe_session_opts o = {.n_ctx = 16, .n_threads = 1, .n_seq = 2};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    if (test_failed_now) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        moe_model_free(m);
        return;
    }
    int32_t t[6] = {1, 2, 3, 4, 5, 6}, q[6] = {0, 0, 0, 1, 1, 1}, p[6] = {0, 1, 2, 0, 1, 2};
    moe_batch b = {6, t, q, p, NULL};
    CHECK_MSG(moe_decode(s, &b, NULL, &err) == 0, "two fresh sequences: %s", err.msg);
    int32_t t2[1] = {7}, q2[1] = {0}, p2[1] = {3};
    moe_batch b2 = {1, t2, q2, p2, NULL};
    CHECK(moe_decode(s, &b2, NULL, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "expert choice");
    CHECK(moe_seq_pos(s, 0) == 3);
    moe_session_free(s);
    moe_model_free(m);
}
