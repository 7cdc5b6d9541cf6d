/*
 * test_train_norm_topk.c - top-1 routing and the renormalization of the
 * top-k weights ("moe": {"norm_topk": ...} in config.json). With k = 1 and
 * renormalization the chosen expert's weight is p / p = 1 whatever the
 * router says, so the language-model loss gives the router no gradient at
 * all (the Mixtral layout's default; a Switch-style top-1 run trained that
 * way learns its routing from the balancing losses alone). Without it the
 * weight is the softmax probability p and the router learns from the loss.
 * Both with the balancing losses off (aux = z = kl = 0): the cross-entropy
 * alone. Renormalized, what is left is rounding (~1e-16 against ~7 summed
 * over the routers' elements). Without renormalization the gradient also
 * matches a central difference of the loss along a random direction.
 */
#include "test.h"

#include <stdlib.h>
#include <sys/stat.h>

#include "formats/hf_config.h"
#include "model/model_init.h"
#include "train/backward.h"
#include "train/params.h"

#define CFG_FMT                                                                                   \
    "{\"model_type\":\"mixtral\",\"vocab_size\":48,\"hidden_size\":32,\"intermediate_size\":24,"  \
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"                \
    "\"num_local_experts\":4,\"num_experts_per_tok\":1,\"max_position_embeddings\":64,"           \
    "\"rope_theta\":10000.0,\"rms_norm_eps\":1e-5,\"moe\":{\"norm_topk\":%s}}"

typedef struct run {
    moe_model *m;
    moe_session *s;
    bwd_ws *ws;
    train_params P;
    float *grads, *logits;
    int32_t in[16], tg[16];
} run;

/* Cross-entropy alone, its gradient into r->grads. */
static double ce_at(run *r, moe_err *err) {
    memset(r->grads, 0, sizeof(float) * (size_t)r->P.n);
    loss_coefs co = {0.0f, 0.0f, 0.0f, 0.0f};
    loss_parts lp;
    if (model_forward_seqs(r->s, r->in, 2, 8, r->logits, err)) return NAN;
    if (model_backward(r->s, r->ws, &(train_grads){r->P.base, r->grads, r->P.n}, r->tg, 2, 8,
                       r->logits, 1.0f / 16, &co, 1.0f, &lp, err))
        return NAN;
    return lp.ce_sum / lp.ce_count;
}

static void run_free(run *r) {
    free(r->grads);
    free(r->logits);
    bwd_ws_free(r->ws);
    moe_session_free(r->s);
    train_params_free(&r->P);
    moe_model_free(r->m);
}

/* A random model with norm_topk as given, its CE gradient at a fixed batch.
 * *gsum: sum over both layers' routers of |dCE/dW_router|, *gsum_other: the
 * same over one expert's gate matrix (it must get a gradient either way). */
static void router_grad(const char *norm, double *gsum, double *gsum_other) {
    char cfg_text[1024], dir[1024];
    snprintf(cfg_text, sizeof cfg_text, CFG_FMT, norm);
    snprintf(dir, sizeof dir, "%s/norm_%s", test_tmpdir(), norm);
    static moe_config cfg;
    moe_err err = {{0}};
    run r = {0};
    *gsum = *gsum_other = -1;
    CHECK(hf_config_parse(&cfg, cfg_text, strlen(cfg_text), "norm_topk config", &err) == 0);
    CHECK_EQ_INT(cfg.layer[0].norm_topk, !strcmp(norm, "true"));
    CHECK_EQ_INT(cfg.layer[0].top_k, 1);
    model_init_opts io = {DT_F32, 5, 0.2f, NULL, NULL, NULL, 0, 0};
    mkdir(dir, 0755);
    CHECK(model_init_random(&cfg, dir, &io, &err) == 0);
    CHECK(moe_model_load(&r.m, dir, &err) == 0);
    if (test_failed_now) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        return;
    }
    /* the written config.json keeps the setting */
    CHECK_EQ_INT(r.m->cfg.layer[1].norm_topk, cfg.layer[1].norm_topk);
    moe_session_opts so = {.n_ctx = 8, .n_threads = 1, .max_batch = 16, .n_seq = 2};
    CHECK(train_params_init(&r.P, r.m, &err) == 0);
    CHECK(moe_session_new(&r.s, r.m, &so, &err) == 0);
    CHECK(model_acts_enable(r.s, 16, &err) == 0);
    moe_session_set_mode(r.s, MOE_MODE_TRAIN);
    CHECK(bwd_ws_new(&r.ws, r.s, 16, &err) == 0);
    r.grads = calloc((size_t)r.P.n, sizeof(float));
    r.logits = malloc(sizeof(float) * 16 * 48);
    for (int i = 0; i < 16; i++) r.in[i] = (i * 7 + 3) % 48, r.tg[i] = (i * 5 + 1) % 48;
    const st_tensor *tr[2] = {st_find(&r.m->st, "model.layers.0.block_sparse_moe.gate.weight"),
                              st_find(&r.m->st, "model.layers.1.block_sparse_moe.gate.weight")};
    const st_tensor *tx = st_find(&r.m->st, "model.layers.0.block_sparse_moe.experts.0.w1.weight");
    CHECK(tr[0] && tr[1] && tx && r.grads && r.logits);
    if (test_failed_now) goto out;
    double l0 = ce_at(&r, &err);
    CHECK_MSG(isfinite(l0), "%s", err.msg);
    if (test_failed_now) goto out;
    float *g0 = malloc(sizeof(float) * (size_t)r.P.n);
    memcpy(g0, r.grads, sizeof(float) * (size_t)r.P.n);
    *gsum = *gsum_other = 0;
    for (int l = 0; l < 2; l++) {
        const float *g = g0 + ((const float *)tr[l]->data - r.P.base);
        for (int64_t i = 0; i < tr[l]->n_elems; i++) *gsum += fabs(g[i]);
    }
    const float *gx = g0 + ((const float *)tx->data - r.P.base);
    for (int64_t i = 0; i < tx->n_elems; i++) *gsum_other += fabs(gx[i]);

    if (*gsum > 0) { /* the gradient is the loss's: a central difference agrees */
        float *w = (float *)tr[1]->data;
        const float *gw = g0 + (w - r.P.base);
        int64_t n = tr[1]->n_elems;
        float *v = malloc(sizeof(float) * (size_t)n), *w0 = malloc(sizeof(float) * (size_t)n);
        rng g;
        rng_init(&g, 3);
        double dir_d = 0, h = 1e-3;
        for (int64_t i = 0; i < n; i++) {
            v[i] = (float)rng_normal(&g);
            dir_d += (double)v[i] * gw[i];
            w0[i] = w[i];
        }
        for (int64_t i = 0; i < n; i++) w[i] = w0[i] + (float)(h * v[i]);
        double lp = ce_at(&r, &err);
        for (int64_t i = 0; i < n; i++) w[i] = w0[i] - (float)(h * v[i]);
        double lm = ce_at(&r, &err);
        memcpy(w, w0, sizeof(float) * (size_t)n);
        double fd = (lp - lm) / (2 * h);
        CHECK_MSG(fabs(fd - dir_d) <= 2e-2 * fabs(dir_d) + 1e-5,
                  "router: directional derivative %g, central difference %g", dir_d, fd);
        free(v);
        free(w0);
    }
    free(g0);
out:
    run_free(&r);
}

TEST(train_top1_router_gradient_norm_topk) {
    double plain, plain_other, renorm, renorm_other;
    router_grad("false", &plain, &plain_other);
    router_grad("true", &renorm, &renorm_other);
    CHECK_MSG(plain > 1e-4, "k = 1 without renormalization: router gradient %g", plain);
    /* w = p / p is exactly 1; what is left is the rounding of the backward's
     * p * (dw - (p * dw) / p), some 1e-16 */
    CHECK_MSG(renorm >= 0 && renorm <= 1e-9 * plain,
              "k = 1 renormalized: router gradient %g (expected 0 up to rounding; %g without)",
              renorm, plain);
    CHECK_MSG(plain_other > 0 && renorm_other > 0, "experts' gradients %g, %g", plain_other,
              renorm_other);
}
