/*
 * test_train_recompute.c - activation recomputation (`moe train
 * --recompute`: an inputs_only tape, each layer re-run in the backward by
 * model_layer_replay) against the full tape, bit for bit. For every model
 * of tests/fixtures/train (token choice top-1/top-2, shared experts, q/k
 * norms and clipping, KL loss, sigmoid routing with a selection bias and its
 * update, group-limited routing, expert choice, hash routing, capacity
 * drops, gpt_oss, latent attention with and without q_lora_rank, dense
 * layers, partial rotary) and a noisy top-k model: three steps of two
 * micro-batches, comparing the logits, the loss parts, the logits'
 * gradient, every parameter gradient, the parameters after AdamW and the
 * bias update, the routing record the trainer's statistics read (loads,
 * kept pairs, router logits, noise draws), the session's expert counts, the
 * route observer's calls and the noise generator's state: nothing a replay
 * does may count, observe or draw twice. And the inputs-only tape is the
 * smaller one.
 */
#include "test.h"

#include <stdlib.h>

#include "base/err.h"
#include "formats/hf_config.h"
#include "model/model_init.h"
#include "train/backward.h"
#include "train/params.h"

#define MAXL 16

typedef struct observed {
    int64_t calls[MAXL]; /* route observer calls per layer */
    int64_t tokens;      /* tokens it was shown */
} observed;

static void observe(void *user, const moe_route_info *r) {
    observed *o = user;
    if (r->layer < MAXL) o->calls[r->layer]++;
    o->tokens += r->T;
}

typedef struct trained {
    moe_model *m;
    moe_session *s;
    bwd_ws *ws;
    train_params P;
    float *g, *am, *av, *logits;
    observed obs;
} trained;

static int open_run(trained *r, const char *dir, int B, int T, int inputs_only, int expand_min,
                    moe_err *err) {
    memset(r, 0, sizeof *r);
    int N = B * T;
    moe_session_opts so = {.n_ctx = T, .n_threads = 2, .max_batch = N, .n_seq = B};
    if (moe_model_load(&r->m, dir, err) || train_params_init(&r->P, r->m, err) ||
        moe_session_new(&r->s, r->m, &so, err) ||
        model_acts_enable_keep(r->s, N, inputs_only, err) || bwd_ws_new(&r->ws, r->s, N, err))
        return -1;
    moe_session_set_mode(r->s, MOE_MODE_TRAIN);
    moe_session_set_route_observer(r->s, observe, &r->obs);
    rng_init(&r->s->noise_rng, 99);
    if (expand_min) r->s->mla_expand_min = expand_min;
    r->g = calloc((size_t)r->P.n, sizeof(float));
    r->am = calloc((size_t)r->P.n, sizeof(float));
    r->av = calloc((size_t)r->P.n, sizeof(float));
    r->logits = malloc(sizeof(float) * (size_t)N * r->m->cfg.vocab);
    return r->g && r->am && r->av && r->logits ? 0 : moe_fail(err, "out of memory");
}

static void close_run(trained *r) {
    free(r->g);
    free(r->am);
    free(r->av);
    free(r->logits);
    bwd_ws_free(r->ws);
    moe_session_free(r->s);
    train_params_free(&r->P);
    moe_model_free(r->m);
}

static int same(const void *a, const void *b, size_t bytes) {
    return (!a && !b) || (a && b && memcmp(a, b, bytes) == 0);
}

/* What the trainer reads after the backward (gather_stats, train_bias_update)
 * and what must not move twice: the routing records, the expert counts, the
 * observer's calls, the noise generator. */
static void check_state(const char *what, const trained *a, const trained *b, int N, int forwards) {
    const moe_config *c = &a->m->cfg;
    for (int l = 0; l < c->n_layers; l++) {
        const moe_layer_config *lc = &c->layer[l];
        if (!lc->moe) continue;
        const layer_acts *x = &a->s->acts->layer[l], *y = &b->s->acts->layer[l];
        int64_t E = lc->n_experts, K = lc->top_k;
        CHECK_MSG(x->n_pairs == y->n_pairs, "%s layer %d: kept pairs %d vs %d", what, l,
                  x->n_pairs, y->n_pairs);
        CHECK_MSG(same(x->expert_start, y->expert_start, sizeof(int) * (size_t)(E + 1)),
                  "%s layer %d: expert loads differ", what, l);
        CHECK_MSG(same(x->sel_expert, y->sel_expert, sizeof(int) * (size_t)(N * K)),
                  "%s layer %d: selected experts differ", what, l);
        CHECK_MSG(same(x->router_logits, y->router_logits, sizeof(float) * (size_t)(N * E)),
                  "%s layer %d: router logits differ", what, l);
        CHECK_MSG(same(x->noise_eps, y->noise_eps, sizeof(float) * (size_t)(N * E)),
                  "%s layer %d: noise draws differ", what, l);
        CHECK_MSG(a->obs.calls[l] == forwards && b->obs.calls[l] == forwards,
                  "%s layer %d: route observer called %lld / %lld times for %d forwards", what,
                  l, (long long)a->obs.calls[l], (long long)b->obs.calls[l], forwards);
    }
    CHECK_MSG(a->obs.tokens == b->obs.tokens, "%s: observer saw %lld vs %lld tokens", what,
              (long long)a->obs.tokens, (long long)b->obs.tokens);
    size_t nc = (size_t)c->n_layers * (size_t)moe_session_counts_stride(a->s) * sizeof(int64_t);
    CHECK_MSG(same(moe_session_expert_counts(a->s), moe_session_expert_counts(b->s), nc),
              "%s: the session's expert counts differ", what);
    CHECK_MSG(same(&a->s->noise_rng, &b->s->noise_rng, sizeof(rng)),
              "%s: the noise generator moved differently", what);
}

/* Three steps of two micro-batches of B x T on the model in dir: a full
 * tape (run 0) and an inputs-only one (run 1) agree bit for bit. */
static void compare(const char *name, const char *dir, int B, int T, int expand_min) {
    moe_err err = {{0}};
    trained r[2];
    int ok = 1;
    for (int k = 0; k < 2 && ok; k++)
        if (open_run(&r[k], dir, B, T, k, expand_min, &err)) {
            test_fail_at(__FILE__, __LINE__, "%s: setup: %s", name, err.msg);
            ok = 0;
            close_run(&r[k]);
            if (k == 1) close_run(&r[0]);
        }
    if (!ok) return;
    CHECK(!r[0].s->acts->inputs_only && r[1].s->acts->inputs_only);
    CHECK_MSG(r[1].s->acts->bytes < r[0].s->acts->bytes, "%s: inputs-only tape %zu bytes, full %zu",
              name, r[1].s->acts->bytes, r[0].s->acts->bytes);
    int N = B * T, V = r[0].m->cfg.vocab, L = r[0].m->cfg.n_layers;
    int64_t n = r[0].P.n;
    CHECK(L <= MAXL && r[1].P.n == n);
    int32_t *in = malloc(sizeof(int32_t) * (size_t)N), *tg = malloc(sizeof(int32_t) * (size_t)N);
    loss_coefs coefs = {0.01f, 0.001f, 0.01f, 0.0f};
    adamw_opts ao = {0.9, 0.95, 1e-8, 0.1, 1.0};
    int forwards = 0;
    for (int step = 0; step < 3 && !test_failed_now; step++) {
        for (int mb = 0; mb < 2 && !test_failed_now; mb++) {
            for (int i = 0; i < N; i++) {
                in[i] = (int32_t)((i * 7 + step * 13 + mb * 29 + 1) % V);
                tg[i] = (int32_t)((i * 11 + step * 5 + mb * 17 + 3) % V);
            }
            loss_parts lp[2];
            for (int k = 0; k < 2; k++)
                CHECK(model_forward_seqs(r[k].s, in, B, T, r[k].logits, &err) == 0);
            CHECK_MSG(same(r[0].logits, r[1].logits, sizeof(float) * (size_t)N * V),
                      "%s step %d.%d: logits differ", name, step, mb);
            for (int k = 0; k < 2; k++) {
                train_grads G = {r[k].P.base, r[k].g, n};
                bwd_ws_set_grads_zero(r[k].ws, mb == 0);
                CHECK_MSG(model_backward(r[k].s, r[k].ws, &G, tg, B, T, r[k].logits,
                                         1.0f / (2.0f * N), &coefs, 0.5f, &lp[k], &err) == 0,
                          "%s: backward: %s", name, err.msg);
            }
            forwards++;
            CHECK_MSG(lp[0].ce_sum == lp[1].ce_sum && lp[0].ce_count == lp[1].ce_count &&
                          lp[0].aux == lp[1].aux && lp[0].z == lp[1].z && lp[0].kl == lp[1].kl,
                      "%s step %d.%d: loss parts differ: ce %.9g/%.9g aux %.9g/%.9g", name, step,
                      mb, lp[0].ce_sum, lp[1].ce_sum, lp[0].aux, lp[1].aux);
            CHECK_MSG(same(r[0].logits, r[1].logits, sizeof(float) * (size_t)N * V),
                      "%s step %d.%d: the logits' gradients differ", name, step, mb);
            char what[128];
            snprintf(what, sizeof what, "%s step %d.%d", name, step, mb);
            check_state(what, &r[0], &r[1], N, forwards);
        }
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += memcmp(&r[0].g[i], &r[1].g[i], sizeof(float)) != 0;
        CHECK_MSG(bad == 0, "%s step %d: %lld of %lld gradients differ", name, step,
                  (long long)bad, (long long)n);
        for (int k = 0; k < 2; k++) {
            CHECK(adamw_step_clear(r[k].s->pool, r[k].P.base, r[k].g, r[k].am, r[k].av, n,
                                   r[k].P.tensors, r[k].P.n_tensors, step + 1, 1e-2, &ao, NULL,
                                   &err) == 0);
            train_params_sync(&r[k].P, r[k].m);
            if (r[k].P.n_bias) train_bias_update(r[k].s, 0.01f);
        }
        CHECK_MSG(same(r[0].P.base, r[1].P.base, sizeof(float) * (size_t)n),
                  "%s step %d: parameters differ after the update", name, step);
        for (int l = 0; l < L; l++) {
            const float *b0 = r[0].m->layers[l].sel_bias, *b1 = r[1].m->layers[l].sel_bias;
            int E = r[0].m->cfg.layer[l].n_experts;
            CHECK_MSG(same(b0, b1, sizeof(float) * (size_t)E), "%s step %d layer %d: selection "
                      "biases differ", name, step, l);
        }
    }
    /* the bias update moved something where there is a bias to move */
    if (r[0].P.n_bias) {
        int moved = 0;
        for (int l = 0; l < L; l++)
            for (int e = 0; r[0].m->layers[l].sel_bias && e < r[0].m->cfg.layer[l].n_experts; e++)
                moved |= r[0].m->layers[l].sel_bias[e] != 0.0f;
        CHECK_MSG(moved, "%s: the selection bias never moved", name);
    }
    free(in);
    free(tg);
    close_run(&r[0]);
    close_run(&r[1]);
}

TEST(train_recompute_fixtures) {
    static const char *variants[] = {
        "mixtral_top2",  "switch_top1",   "qwen2_shared",    "olmoe_qknorm",
        "qwen3_headnorm", "kl_uniform",   "sigmoid_bias",    "sigmoid_group",
        "softmax_group", "expert_choice", "hash",            "capacity",
        "gpt_oss",       "deepseek_v3_mla", "deepseek_v3_noq", "deepseek_v2_lite",
        "glm4_moe"};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0] && !test_failed_now; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/train/%s", test_fixtures(), variants[i]);
        compare(variants[i], dir, 2, 8, 0);
    }
}

/* Latent attention's expanded form (one sequence of at least mla_expand_min
 * tokens) in the forward and in its replay. */
TEST(train_recompute_mla_expanded) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/train/deepseek_v3_mla", test_fixtures());
    compare("deepseek_v3_mla expanded", dir, 1, 16, 8);
}

/* Noisy top-k: the replay takes the forward's draws (the generator moves
 * once per forward); four layers, where the inputs-only tape is well under
 * half the full one. */
TEST(train_recompute_noisy) {
    static const char *cfg_text =
        "{\"model_type\":\"mixtral\",\"vocab_size\":48,\"hidden_size\":32,"
        "\"intermediate_size\":24,\"num_hidden_layers\":4,\"num_attention_heads\":4,"
        "\"num_key_value_heads\":2,\"num_local_experts\":4,\"num_experts_per_tok\":2,"
        "\"max_position_embeddings\":64,\"rope_theta\":10000.0,\"rms_norm_eps\":1e-5,"
        "\"moe\":{\"noise\":1.0,\"capacity_factor\":1.0}}";
    static moe_config cfg;
    moe_err err = {{0}};
    CHECK(hf_config_parse(&cfg, cfg_text, strlen(cfg_text), "noisy config", &err) == 0);
    model_init_opts io = {DT_F32, 5, 0.2f, NULL, NULL, NULL, 0, 0};
    CHECK(model_init_random(&cfg, test_tmpdir(), &io, &err) == 0);
    if (test_failed_now) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        return;
    }
    compare("noisy top-k", test_tmpdir(), 2, 8, 0);

    trained r[2];
    for (int k = 0; k < 2; k++) CHECK(open_run(&r[k], test_tmpdir(), 4, 16, k, 0, &err) == 0);
    if (!test_failed_now)
        CHECK_MSG(2 * r[1].s->acts->bytes < r[0].s->acts->bytes,
                  "4 layers: inputs-only tape %zu bytes, full %zu", r[1].s->acts->bytes,
                  r[0].s->acts->bytes);
    /* a replay needs an inputs-only tape and a recorded call */
    CHECK(model_layer_replay(r[0].s, 0, &err) == -1 && strstr(err.msg, "inputs-only tape"));
    CHECK(model_layer_replay(r[1].s, 0, &err) == -1 && strstr(err.msg, "no forward was recorded"));
    /* the backward of another batch shape than the recorded one is refused */
    int32_t ids[64] = {0};
    loss_parts lp;
    CHECK(model_forward_seqs(r[1].s, ids, 2, 16, r[1].logits, &err) == 0);
    CHECK(model_backward(r[1].s, r[1].ws, &(train_grads){r[1].P.base, r[1].g, r[1].P.n}, ids, 4,
                         16, r[1].logits, 1.0f, &(loss_coefs){0, 0, 0, 0}, 1.0f, &lp, &err) == -1);
    CHECK(strstr(err.msg, "64 tokens but the recorded forward ran 32") != NULL);
    for (int k = 0; k < 2; k++) close_run(&r[k]);
}
