/*
 * test_train_noise.c - noisy top-k routing (Shazeer 2017) in a whole model:
 * with the noise draws held fixed, the backward's gradient along a random
 * direction of the router and the noise projection equals the central
 * difference of the loss; and inference runs without noise.
 */
#include "test.h"

#include <stdlib.h>

#include "formats/hf_config.h"
#include "model/model_init.h"
#include "train/backward.h"
#include "train/params.h"

static const char *CFG =
    "{\"model_type\":\"mixtral\",\"vocab_size\":48,\"hidden_size\":32,\"intermediate_size\":24,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
    "\"num_local_experts\":4,\"num_experts_per_tok\":2,\"max_position_embeddings\":64,"
    "\"rope_theta\":10000.0,\"rms_norm_eps\":1e-5,\"moe\":{\"noise\":1.0}}";

typedef struct run {
    moe_model *m;
    moe_session *s;
    bwd_ws *ws;
    train_params P;
    float *grads, *logits;
    int32_t in[16], tg[16];
} run;

/* Loss (and gradients into r->grads) with the noise stream reset. */
static double loss_at(run *r, moe_err *err) {
    rng_init(&r->s->noise_rng, 77);
    memset(r->grads, 0, sizeof(float) * (size_t)r->P.n);
    loss_coefs co = {0.01f, 0.001f, 0.0f, 0.0f};
    loss_parts lp;
    if (model_forward_seqs(r->s, r->in, 2, 8, r->logits, err)) return NAN;
    if (model_backward(r->s, r->ws, &(train_grads){r->P.base, r->grads, r->P.n}, r->tg, 2, 8,
                       r->logits, 1.0f / 16, &co, 1.0f, &lp, err))
        return NAN;
    return lp.ce_sum / lp.ce_count + 0.01 * lp.aux + 0.001 * lp.z;
}

TEST(train_noisy_topk_gradient) {
    static moe_config cfg;
    moe_err err = {{0}};
    run r = {0};
    CHECK(hf_config_parse(&cfg, CFG, strlen(CFG), "noise config", &err) == 0);
    CHECK(cfg.layer[0].noise == 1.0f);
    model_init_opts io = {DT_F32, 5, 0.2f, NULL, NULL, NULL, 0, 0};
    CHECK(model_init_random(&cfg, test_tmpdir(), &io, &err) == 0);
    CHECK(moe_model_load(&r.m, test_tmpdir(), &err) == 0);
    if (test_failed_now) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        return;
    }
    moe_session_opts so = {.n_ctx = 8, .n_threads = 1, .max_batch = 16, .n_seq = 2};
    CHECK(train_params_init(&r.P, r.m, &err) == 0);
    CHECK(moe_session_new(&r.s, r.m, &so, &err) == 0);
    CHECK(model_acts_enable(r.s, 16, &err) == 0);
    moe_session_set_mode(r.s, MOE_MODE_TRAIN);
    CHECK(bwd_ws_new(&r.ws, r.s, 16, &err) == 0);
    r.grads = calloc((size_t)r.P.n, sizeof(float));
    float *g0 = calloc((size_t)r.P.n, sizeof(float));
    r.logits = malloc(sizeof(float) * 16 * 48);
    for (int i = 0; i < 16; i++) r.in[i] = (i * 7 + 3) % 48, r.tg[i] = (i * 5 + 1) % 48;
    /* the noise projection starts at zero: give it values */
    const st_tensor *tn = st_find(&r.m->st, "model.layers.0.block_sparse_moe.gate_noise.weight");
    const st_tensor *tr = st_find(&r.m->st, "model.layers.1.block_sparse_moe.gate.weight");
    CHECK(tn && tr);
    if (!tn || !tr || test_failed_now) goto out;
    float *wn = (float *)tn->data, *wr = (float *)tr->data;
    rng g;
    rng_init(&g, 3);
    for (int64_t i = 0; i < tn->n_elems; i++) wn[i] = (float)rng_normal(&g) * 0.3f;
    double l0 = loss_at(&r, &err);
    CHECK(isfinite(l0));
    memcpy(g0, r.grads, sizeof(float) * (size_t)r.P.n);
    const float *gn = g0 + (wn - r.P.base), *gr = g0 + (wr - r.P.base);
    double gnorm = 0;
    for (int64_t i = 0; i < tn->n_elems; i++) gnorm += fabs(gn[i]);
    CHECK_MSG(gnorm > 0, "the noise projection gets no gradient");

    for (int which = 0; which < 2; which++) { /* noise projection, then a router */
        float *w = which ? wr : wn;
        const float *gw = which ? gr : gn;
        int64_t n = which ? tr->n_elems : tn->n_elems;
        float *v = malloc(sizeof(float) * (size_t)n), *w0 = malloc(sizeof(float) * (size_t)n);
        memcpy(w0, w, sizeof(float) * (size_t)n);
        double dir = 0, h = 1e-3;
        for (int64_t i = 0; i < n; i++) {
            v[i] = (float)rng_normal(&g);
            dir += (double)v[i] * gw[i];
        }
        for (int64_t i = 0; i < n; i++) w[i] = w0[i] + (float)(h * v[i]);
        double lp = loss_at(&r, &err);
        for (int64_t i = 0; i < n; i++) w[i] = w0[i] - (float)(h * v[i]);
        double lm = loss_at(&r, &err);
        memcpy(w, w0, sizeof(float) * (size_t)n);
        double fd = (lp - lm) / (2 * h);
        CHECK_MSG(fabs(fd - dir) <= 2e-2 * fabs(dir) + 1e-4, "%s: directional derivative %g, FD %g",
                  which ? "router" : "noise projection", dir, fd);
        free(v);
        free(w0);
    }

    /* inference: no noise, so two runs agree and equal a noise-free copy */
    moe_session *inf = NULL;
    moe_session_opts io2 = {.n_ctx = 8, .n_threads = 1};
    float a[48], b[48];
    CHECK(moe_session_new(&inf, r.m, &io2, &err) == 0);
    CHECK(moe_forward(inf, r.in, 8, a, 0, &err) == 0);
    moe_session_reset(inf);
    CHECK(moe_forward(inf, r.in, 8, b, 0, &err) == 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    moe_session_free(inf);
out:
    free(g0);
    free(r.grads);
    free(r.logits);
    bwd_ws_free(r.ws);
    moe_session_free(r.s);
    train_params_free(&r.P);
    moe_model_free(r.m);
}

/* Evaluation mode on a training session: a model with a capacity factor
 * and router noise scores held-out text dropless and noise-free (the
 * logits equal an inference session's), leaves the noise generator where
 * training had it and does not touch the tape; training mode does drop. */
static const char *CFG_CAP =
    "{\"model_type\":\"mixtral\",\"vocab_size\":48,\"hidden_size\":32,\"intermediate_size\":24,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
    "\"num_local_experts\":4,\"num_experts_per_tok\":2,\"max_position_embeddings\":64,"
    "\"rope_theta\":10000.0,\"rms_norm_eps\":1e-5,\"moe\":{\"noise\":1.0,\"capacity_factor\":0.5}}";

TEST(train_eval_mode_dropless_noise_free) {
    static moe_config cfg;
    moe_err err = {{0}};
    moe_model *m = NULL;
    moe_session *s = NULL, *inf = NULL;
    CHECK(hf_config_parse(&cfg, CFG_CAP, strlen(CFG_CAP), "capacity config", &err) == 0);
    model_init_opts io = {DT_F32, 9, 0.3f, NULL, NULL, NULL, 0, 0};
    CHECK(model_init_random(&cfg, test_tmpdir(), &io, &err) == 0);
    CHECK(moe_model_load(&m, test_tmpdir(), &err) == 0);
    if (test_failed_now) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        return;
    }
    /* the weights become writable (training's copy); the noise projection
     * starts at zero: give it values */
    train_params P = {0};
    CHECK(train_params_init(&P, m, &err) == 0);
    const st_tensor *tn = st_find(&m->st, "model.layers.0.block_sparse_moe.gate_noise.weight");
    CHECK(tn != NULL);
    if (!tn) goto out;
    rng g;
    rng_init(&g, 5);
    for (int64_t i = 0; i < tn->n_elems; i++) ((float *)tn->data)[i] = (float)rng_normal(&g) * 0.3f;

    moe_session_opts so = {.n_ctx = 8, .n_threads = 2, .max_batch = 16, .n_seq = 2};
    moe_session_opts io2 = {.n_ctx = 8, .n_threads = 1};
    CHECK(moe_session_new(&s, m, &so, &err) == 0);
    CHECK(model_acts_enable(s, 16, &err) == 0);
    CHECK(moe_session_new(&inf, m, &io2, &err) == 0);
    if (test_failed_now) goto out;
    moe_session_set_mode(s, MOE_MODE_TRAIN);
    int32_t in[16];
    for (int i = 0; i < 16; i++) in[i] = (i * 11 + 2) % 48;
    float *lt = malloc(sizeof(float) * 16 * 48), *le = malloc(sizeof(float) * 16 * 48);
    float *li = malloc(sizeof(float) * 8 * 48);
    CHECK(model_forward_seqs(s, in, 2, 8, lt, &err) == 0);
    /* training dropped pairs: fewer kept than chosen in some layer */
    int dropped = 0;
    for (int l = 0; l < 2; l++) dropped |= s->acts->layer[l].n_pairs < 16 * 2;
    CHECK_MSG(dropped, "capacity 0.5 dropped nothing in training mode");
    rng before = s->noise_rng;
    int pairs0 = s->acts->layer[0].n_pairs;
    float tape0 = s->acts->layer[0].router_logits[3];

    moe_session_set_mode(s, MOE_MODE_EVAL);
    CHECK(moe_session_mode(s) == MOE_MODE_EVAL);
    CHECK(model_forward_seqs(s, in, 2, 8, le, &err) == 0);
    CHECK(memcmp(&before, &s->noise_rng, sizeof before) == 0);
    CHECK(s->acts->layer[0].n_pairs == pairs0);
    CHECK(s->acts->layer[0].router_logits[3] == tape0);
    for (int b = 0; b < 2 && !test_failed_now; b++) {
        moe_session_reset(inf);
        CHECK(moe_forward(inf, in + 8 * b, 8, li, 1, &err) == 0);
        double worst = 0;
        for (int i = 0; i < 8 * 48; i++) worst = fmax(worst, fabs(li[i] - le[b * 8 * 48 + i]));
        CHECK_MSG(worst <= 1e-5, "evaluation vs inference, sequence %d: %g", b, worst);
    }
    /* training mode again: noise drawn and pairs dropped as before */
    moe_session_set_mode(s, MOE_MODE_TRAIN);
    CHECK(model_forward_seqs(s, in, 2, 8, lt, &err) == 0);
    CHECK(memcmp(&before, &s->noise_rng, sizeof before) != 0);
    free(lt);
    free(le);
    free(li);
out:
    moe_session_free(s);
    moe_session_free(inf);
    train_params_free(&P);
    moe_model_free(m);
}
