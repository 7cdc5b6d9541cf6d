/*
 * test_train_ref.c - the trainer's math against PyTorch: for each fixture
 * in tests/fixtures/train (tools/gen_train_fixtures.py), the loss parts and
 * the gradient of every parameter at step 0, then a 10-step AdamW
 * trajectory (loss parts and gradient norm at every step): every routing
 * kind, gpt_oss, latent attention (deepseek_v3 with and without
 * q_lora_rank, deepseek_v2) and glm4_moe's partial rotary with biases and
 * q/k norm. And
 * the models without a backward (qwen3_next's Gated DeltaNet) refused by
 * name.
 */
#include "test.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "train/backward.h"
#include "train/params.h"

typedef struct fixture {
    cJSON *batch, *ref;
    int B, T, steps;
} fixture;

static cJSON *load_json(const char *dir, const char *name) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return test_load_json(path);
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* ids of step s: inputs [B][T] and targets [B][T] */
static void step_ids(const fixture *f, int s, int32_t *in, int32_t *tg) {
    const cJSON *step = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(f->batch, "ids"), s);
    for (int b = 0; b < f->B; b++) {
        const cJSON *seq = cJSON_GetArrayItem(step, b);
        for (int t = 0; t <= f->T; t++) {
            int v = cJSON_GetArrayItem(seq, t)->valueint;
            if (t < f->T) in[b * f->T + t] = v;
            if (t > 0) tg[b * f->T + t - 1] = v;
        }
    }
}

static int rel_ok(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(1.0, fabs(b)); }

static void run_variant(const char *variant) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/train/%s", test_fixtures(), variant);
    fixture f = {load_json(dir, "batch.json"), load_json(dir, "ref.json"), 0, 0, 0};
    if (!f.batch || !f.ref) {
        test_fail_at(__FILE__, __LINE__, "%s: cannot read batch.json/ref.json", variant);
        goto out_json;
    }
    f.B = (int)num(f.batch, "B");
    f.T = (int)num(f.batch, "T");
    f.steps = (int)num(f.batch, "steps");
    const cJSON *hyper = cJSON_GetObjectItemCaseSensitive(f.batch, "hyper");
    const cJSON *adam = cJSON_GetObjectItemCaseSensitive(hyper, "adamw");
    loss_coefs coefs = {(float)num(hyper, "alpha_aux"), (float)num(hyper, "beta_z"),
                        (float)num(hyper, "gamma_kl"), 0.0f};
    adamw_opts ao = {num(adam, "beta1"), num(adam, "beta2"), num(adam, "eps"),
                     num(adam, "weight_decay"), num(hyper, "clip_grad_norm")};
    const cJSON *bu = cJSON_GetObjectItemCaseSensitive(hyper, "bias_update");
    double bias_rate = bu ? num(bu, "rate") : 0.0;

    moe_err err = {{0}};
    moe_model *m = NULL;
    if (moe_model_load(&m, dir, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", variant, err.msg);
        goto out_json;
    }
    train_params P;
    moe_session *s = NULL;
    bwd_ws *ws = NULL;
    int N = f.B * f.T, V = m->cfg.vocab;
    moe_session_opts so = {.n_ctx = f.T, .n_threads = 2, .max_batch = N, .n_seq = f.B};
    CHECK(train_params_init(&P, m, &err) == 0);
    CHECK(moe_session_new(&s, m, &so, &err) == 0);
    CHECK(model_acts_enable(s, N, &err) == 0);
    moe_session_set_mode(s, MOE_MODE_TRAIN);
    CHECK(bwd_ws_new(&ws, s, N, &err) == 0);
    if (test_failed_now) {
        test_fail_at(__FILE__, __LINE__, "%s: setup: %s", variant, err.msg);
        goto out;
    }
    float *grads = calloc((size_t)P.n, sizeof(float));
    float *am = calloc((size_t)P.n, sizeof(float)), *av = calloc((size_t)P.n, sizeof(float));
    float *logits = malloc(sizeof(float) * (size_t)N * V);
    int32_t *in = malloc(sizeof(int32_t) * (size_t)N), *tg = malloc(sizeof(int32_t) * (size_t)N);
    train_grads G = {P.base, grads, P.n};
    const cJSON *traj = cJSON_GetObjectItemCaseSensitive(f.ref, "trajectory");
    const cJSON *lrs = cJSON_GetObjectItemCaseSensitive(hyper, "lr");

    for (int step = 0; step < f.steps && !test_failed_now; step++) {
        const cJSON *r = cJSON_GetArrayItem(traj, step);
        step_ids(&f, step, in, tg);
        memset(grads, 0, sizeof(float) * (size_t)P.n);
        loss_parts lp;
        CHECK(model_forward_seqs(s, in, f.B, f.T, logits, &err) == 0);
        CHECK(model_backward(s, ws, &G, tg, f.B, f.T, logits, 1.0f / N, &coefs, 1.0f, &lp, &err) == 0);
        double ce = lp.ce_sum / (double)lp.ce_count;
        double loss = ce + coefs.aux * lp.aux + coefs.z * lp.z + coefs.kl * lp.kl;
        if (getenv("MOE_TEST_VERBOSE"))
            fprintf(stderr, "%s step %d: loss %.7f (ref %.7f) ce %.7f aux %.7f z %.7f kl %.7f\n",
                    variant, step, loss, num(r, "loss"), ce, lp.aux, lp.z, lp.kl);
        CHECK_MSG(rel_ok(loss, num(r, "loss"), 2e-5), "%s step %d: loss %.9g vs %.9g", variant,
                  step, loss, num(r, "loss"));
        CHECK_MSG(rel_ok(ce, num(r, "ce"), 2e-5), "%s step %d: ce %.9g vs %.9g", variant, step, ce,
                  num(r, "ce"));
        CHECK_MSG(rel_ok(lp.aux, num(r, "aux_loss"), 2e-5), "%s step %d: aux %.9g vs %.9g", variant,
                  step, lp.aux, num(r, "aux_loss"));
        CHECK_MSG(rel_ok(lp.z, num(r, "z_loss"), 2e-5), "%s step %d: z %.9g vs %.9g", variant, step,
                  lp.z, num(r, "z_loss"));
        CHECK_MSG(rel_ok(lp.kl, num(r, "kl_loss"), 2e-5), "%s step %d: kl %.9g vs %.9g", variant,
                  step, lp.kl, num(r, "kl_loss"));
        if (step == 0) { /* every parameter's gradient */
            char gpath[600];
            snprintf(gpath, sizeof gpath, "%s/grads.safetensors", dir);
            st_store ref;
            CHECK(st_open_file(&ref, gpath, &err) == 0);
            for (int i = 0; i < ref.n_tensors && !test_failed_now; i++) {
                const st_tensor *rt = &ref.tensors[i];
                const st_tensor *mt = st_find(&m->st, rt->name);
                if (!mt) {
                    test_fail_at(__FILE__, __LINE__, "%s: no parameter %s", variant, rt->name);
                    continue;
                }
                const float *a = grad_of(&G, mt->data), *b = rt->data;
                double worst = 0, scale = 1e-12;
                for (int64_t k = 0; k < rt->n_elems; k++) {
                    worst = fmax(worst, fabs((double)a[k] - b[k]));
                    scale = fmax(scale, fabs((double)b[k]));
                }
                CHECK_MSG(worst / scale <= 1e-4 || worst < 1e-9, "%s: grad %s rel err %g (scale %g)",
                          variant, rt->name, worst / scale, scale);
            }
            st_close(&ref);
        }
        double gn = 0;
        CHECK(adamw_step(s->pool, P.base, grads, am, av, P.n, P.tensors, P.n_tensors, step + 1,
                         cJSON_GetArrayItem(lrs, step)->valuedouble, &ao, &gn, &err) == 0);
        CHECK_MSG(rel_ok(gn, num(r, "grad_norm"), 1e-4), "%s step %d: grad norm %.9g vs %.9g",
                  variant, step, gn, num(r, "grad_norm"));
        train_params_sync(&P, m); /* fused expert tensors (gpt_oss): the forward's copies */
        if (P.n_bias) train_bias_update(s, (float)bias_rate);
    }
    free(grads);
    free(am);
    free(av);
    free(logits);
    free(in);
    free(tg);
out:
    bwd_ws_free(ws);
    moe_session_free(s);
    train_params_free(&P);
    moe_model_free(m);
out_json:
    cJSON_Delete(f.batch);
    cJSON_Delete(f.ref);
}

TEST(train_ref_mixtral_top2) { run_variant("mixtral_top2"); }
TEST(train_ref_switch_top1) { run_variant("switch_top1"); }
TEST(train_ref_qwen2_shared) { run_variant("qwen2_shared"); }
TEST(train_ref_olmoe_qknorm) { run_variant("olmoe_qknorm"); }
TEST(train_ref_qwen3_headnorm) { run_variant("qwen3_headnorm"); }
TEST(train_ref_kl_uniform) { run_variant("kl_uniform"); }
TEST(train_ref_sigmoid_bias) { run_variant("sigmoid_bias"); }
TEST(train_ref_sigmoid_group) { run_variant("sigmoid_group"); }
TEST(train_ref_softmax_group) { run_variant("softmax_group"); }
TEST(train_ref_expert_choice) { run_variant("expert_choice"); }
TEST(train_ref_hash) { run_variant("hash"); }
TEST(train_ref_capacity) { run_variant("capacity"); }
TEST(train_ref_gpt_oss) { run_variant("gpt_oss"); }
TEST(train_ref_deepseek_v3_mla) { run_variant("deepseek_v3_mla"); }
TEST(train_ref_deepseek_v3_noq) { run_variant("deepseek_v3_noq"); }
TEST(train_ref_deepseek_v2_lite) { run_variant("deepseek_v2_lite"); }
TEST(train_ref_glm4_moe) { run_variant("glm4_moe"); }

TEST(train_refuses_linear_attention) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/qwen3_next_base", test_fixtures());
    moe_err err = {{0}};
    moe_model *m = NULL;
    moe_session *s = NULL;
    bwd_ws *ws = NULL;
    CHECK(moe_model_load(&m, dir, &err) == 0);
    moe_session_opts so = {.n_ctx = 8, .n_threads = 1, .max_batch = 8, .n_seq = 1};
    if (m) CHECK(moe_session_new(&s, m, &so, &err) == 0);
    if (s) {
        CHECK(bwd_check_model(&m->cfg, &err) == -1);
        CHECK_MSG(strstr(err.msg, "linear_attention layer (Gated DeltaNet)") != NULL, "%s", err.msg);
        err.msg[0] = 0;
        CHECK(bwd_ws_new(&ws, s, 8, &err) == -1 && ws == NULL);
        CHECK_MSG(strstr(err.msg, "inference-only") != NULL, "%s", err.msg);
    }
    moe_session_free(s);
    moe_model_free(m);
}
