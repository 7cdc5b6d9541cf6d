/*
 * test_train_mod.c - Mixture-of-Depths layers (src/model/mod.c) against
 * PyTorch (tools/gen_mod_fixtures.py; tests/fixtures/train/mod_*): the
 * step-0 gradient of every parameter and a 10-step AdamW trajectory (loss,
 * cross-entropy, the routers' BCE, its accuracy and the causal share), the
 * logits of the training rule (top-C) and of the causal rule; then decode
 * after prefill, batched sequences, moe_seq_rm and moe_seq_cp on the
 * compacted caches against one full forward; the config written and read
 * back; what is refused (bad "mod" fields, recomputation, GGUF).
 */
#include "test.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "base/mapfile.h"
#include "formats/hf_config.h"
#include "moe_quant.h"
#include "moe_route.h"
#include "train/backward.h"
#include "train/params.h"

static cJSON *load_json(const char *dir, const char *name) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return test_load_json(path);
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int rel_ok(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(1.0, fabs(b)); }

/* ids of step s: inputs [B][T] and targets [B][T] */
static void step_ids(const cJSON *batch, int B, int T, int s, int32_t *in, int32_t *tg) {
    const cJSON *step = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(batch, "ids"), s);
    for (int b = 0; b < B; b++) {
        const cJSON *seq = cJSON_GetArrayItem(step, b);
        for (int t = 0; t <= T; t++) {
            int v = cJSON_GetArrayItem(seq, t)->valueint;
            if (t < T) in[b * T + t] = v;
            if (t > 0) tg[b * T + t - 1] = v;
        }
    }
}

/* worst |a - ref| over the rows of ref [B][T][V], relative to max |ref| */
static double logits_err(const float *a, const cJSON *ref, int B, int T, int V) {
    double worst = 0, scale = 1e-12;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const cJSON *row = cJSON_GetArrayItem(cJSON_GetArrayItem(ref, b), t);
            for (int v = 0; v < V; v++) {
                double r = cJSON_GetArrayItem(row, v)->valuedouble;
                worst = fmax(worst, fabs(a[((int64_t)b * T + t) * V + v] - r));
                scale = fmax(scale, fabs(r));
            }
        }
    return worst / scale;
}

static void check_grads(const char *variant, const char *dir, moe_model *m, const train_grads *G) {
    char gpath[600];
    snprintf(gpath, sizeof gpath, "%s/grads.safetensors", dir);
    moe_err err = {{0}};
    st_store ref;
    if (st_open_file(&ref, gpath, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", variant, err.msg);
        return;
    }
    int routers = 0;
    for (int i = 0; i < ref.n_tensors; i++) {
        const st_tensor *rt = &ref.tensors[i];
        const st_tensor *mt = st_find(&m->st, rt->name);
        if (!mt) {
            test_fail_at(__FILE__, __LINE__, "%s: no parameter %s", variant, rt->name);
            continue;
        }
        routers += strstr(rt->name, "mod_router") != NULL;
        const float *a = grad_of(G, mt->data), *b = rt->data;
        double worst = 0, scale = 1e-12;
        for (int64_t k = 0; k < rt->n_elems; k++) {
            worst = fmax(worst, fabs((double)a[k] - b[k]));
            scale = fmax(scale, fabs((double)b[k]));
        }
        CHECK_MSG(worst / scale <= 1e-4 || worst < 1e-9, "%s: grad %s rel err %g (scale %g)",
                  variant, rt->name, worst / scale, scale);
    }
    CHECK_MSG(routers > 0, "%s: the reference has no MoD router gradient", variant);
    st_close(&ref);
}

static void run_variant(const char *variant) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/train/%s", test_fixtures(), variant);
    cJSON *batch = load_json(dir, "batch.json"), *ref = load_json(dir, "ref.json");
    moe_model *m = NULL;
    moe_session *s = NULL;
    bwd_ws *ws = NULL;
    train_params P = {0};
    moe_err err = {{0}};
    if (!batch || !ref || moe_model_load(&m, dir, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s: cannot load: %s", variant, err.msg);
        goto out;
    }
    int B = (int)num(batch, "B"), T = (int)num(batch, "T"), steps = (int)num(batch, "steps");
    int N = B * T, V = m->cfg.vocab;
    const cJSON *hyper = cJSON_GetObjectItemCaseSensitive(batch, "hyper");
    const cJSON *adam = cJSON_GetObjectItemCaseSensitive(hyper, "adamw");
    loss_coefs coefs = {0, 0, 0, (float)num(hyper, "mod_aux")};
    adamw_opts ao = {num(adam, "beta1"), num(adam, "beta2"), num(adam, "eps"),
                     num(adam, "weight_decay"), num(hyper, "clip_grad_norm")};
    CHECK(m->cfg.mod_capacity == 0.5f);
    moe_session_opts so = {.n_ctx = T, .n_threads = 2, .max_batch = N, .n_seq = B};
    CHECK(train_params_init(&P, m, &err) == 0);
    CHECK(moe_session_new(&s, m, &so, &err) == 0);
    if (test_failed_now) goto out;
    float *logits = malloc(sizeof(float) * (size_t)N * V);
    int32_t *in = malloc(sizeof(int32_t) * (size_t)N), *tg = malloc(sizeof(int32_t) * (size_t)N);

    /* both rules' logits with the initial weights, step 0's inputs */
    step_ids(batch, B, T, 0, in, tg);
    moe_session_set_mode(s, MOE_MODE_TRAIN); /* no tape: the top-C rule, nothing recorded */
    CHECK(model_forward_seqs(s, in, B, T, logits, &err) == 0);
    double e = logits_err(logits, cJSON_GetObjectItemCaseSensitive(ref, "logits_topc"), B, T, V);
    CHECK_MSG(e < 2e-5, "%s: top-C logits rel err %g", variant, e);
    moe_session_set_mode(s, MOE_MODE_INFERENCE);
    moe_session_reset(s);
    for (int b = 0; b < B; b++) { /* each sequence alone, as the reference ran them */
        moe_session_reset(s);
        CHECK(moe_forward(s, in + b * T, T, logits + (int64_t)b * T * V, 1, &err) == 0);
    }
    e = logits_err(logits, cJSON_GetObjectItemCaseSensitive(ref, "logits_causal"), B, T, V);
    CHECK_MSG(e < 2e-5, "%s: causal-rule logits rel err %g", variant, e);
    /* evaluation: the B sequences in one call, as the trainer's validation */
    moe_session_reset(s);
    moe_session_set_mode(s, MOE_MODE_EVAL);
    CHECK(model_forward_seqs(s, in, B, T, logits, &err) == 0);
    e = logits_err(logits, cJSON_GetObjectItemCaseSensitive(ref, "logits_causal"), B, T, V);
    CHECK_MSG(e < 2e-5, "%s: evaluation (causal rule, batched) logits rel err %g", variant, e);
    s->mod_topc = 1; /* the trainer's second validation loss: training's choice */
    CHECK(model_forward_seqs(s, in, B, T, logits, &err) == 0);
    s->mod_topc = 0;
    e = logits_err(logits, cJSON_GetObjectItemCaseSensitive(ref, "logits_topc"), B, T, V);
    CHECK_MSG(e < 2e-5, "%s: evaluation with top-C logits rel err %g", variant, e);

    /* training */
    moe_session_reset(s);
    moe_session_set_mode(s, MOE_MODE_TRAIN);
    CHECK(model_acts_enable(s, N, &err) == 0);
    CHECK(bwd_ws_new(&ws, s, N, &err) == 0);
    float *grads = calloc((size_t)P.n, sizeof(float));
    float *am = calloc((size_t)P.n, sizeof(float)), *av = calloc((size_t)P.n, sizeof(float));
    train_grads G = {P.base, grads, P.n};
    const cJSON *traj = cJSON_GetObjectItemCaseSensitive(ref, "trajectory");
    const cJSON *lrs = cJSON_GetObjectItemCaseSensitive(hyper, "lr");
    for (int step = 0; step < steps && !test_failed_now; step++) {
        const cJSON *r = cJSON_GetArrayItem(traj, step);
        step_ids(batch, B, T, step, in, tg);
        memset(grads, 0, sizeof(float) * (size_t)P.n);
        loss_parts lp;
        CHECK(model_forward_seqs(s, in, B, T, logits, &err) == 0);
        CHECK(model_backward(s, ws, &G, tg, B, T, logits, 1.0f / N, &coefs, 1.0f, &lp, &err) == 0);
        double ce = lp.ce_sum / (double)lp.ce_count, loss = ce + coefs.mod * lp.mod_bce;
        CHECK_MSG(rel_ok(loss, num(r, "loss"), 2e-5), "%s step %d: loss %.9g vs %.9g", variant,
                  step, loss, num(r, "loss"));
        CHECK_MSG(rel_ok(ce, num(r, "ce"), 2e-5), "%s step %d: ce %.9g vs %.9g", variant, step, ce,
                  num(r, "ce"));
        CHECK_MSG(rel_ok(lp.mod_bce, num(r, "mod_bce"), 2e-5), "%s step %d: mod_bce %.9g vs %.9g",
                  variant, step, lp.mod_bce, num(r, "mod_bce"));
        CHECK_MSG(fabs(lp.mod_acc - num(r, "mod_acc")) < 1e-9 &&
                      fabs(lp.mod_frac - num(r, "mod_frac")) < 1e-9,
                  "%s step %d: mod_acc %g vs %g, mod_frac %g vs %g", variant, step, lp.mod_acc,
                  num(r, "mod_acc"), lp.mod_frac, num(r, "mod_frac"));
        if (step == 0) check_grads(variant, dir, m, &G);
        double gn = 0;
        CHECK(adamw_step(s->pool, P.base, grads, am, av, P.n, P.tensors, P.n_tensors, step + 1,
                         cJSON_GetArrayItem(lrs, step)->valuedouble, &ao, &gn, &err) == 0);
        CHECK_MSG(rel_ok(gn, num(r, "grad_norm"), 1e-4), "%s step %d: grad norm %.9g vs %.9g",
                  variant, step, gn, num(r, "grad_norm"));
    }
    if (test_failed_now) fprintf(stderr, "%s: %s\n", variant, err.msg);
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
    cJSON_Delete(batch);
    cJSON_Delete(ref);
}

TEST(train_ref_mod_mixtral) { run_variant("mod_mixtral"); }
TEST(train_ref_mod_dense) { run_variant("mod_dense"); }

/* The MoD fixture tests/fixtures/train/VARIANT and a session of it with so:
 * 0, or -1 after a failed check (*m and *s then NULL or to be freed). */
static int open_mod(const char *variant, const moe_session_opts *so, moe_model **m, moe_session **s) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/train/%s", test_fixtures(), variant);
    moe_err err = {{0}};
    *m = NULL;
    *s = NULL;
    if (moe_model_load(m, dir, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", variant, err.msg);
        return -1;
    }
    if (moe_session_new(s, *m, so, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s: session: %s", variant, err.msg);
        return -1;
    }
    return 0;
}

/* worst |a - b| over n floats relative to max |b| */
static double rel_diff(const float *a, const float *b, int64_t n) {
    double worst = 0, scale = 1e-12;
    for (int64_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return worst / scale;
}

/* Decode after prefill, two sequences in one batch, forgetting the end of a
 * sequence and copying one: each the same logits as one full forward of
 * the sequence (the compacted caches of the MoD layers hold the same rows). */
TEST(mod_decode_matches_forward) {
    moe_err err = {{0}};
    moe_model *m;
    moe_session *s;
    moe_session_opts so = {.n_ctx = 32, .n_threads = 2, .max_batch = 64, .n_seq = 3};
    if (open_mod("mod_mixtral", &so, &m, &s)) {
        moe_model_free(m);
        return;
    }
    enum { T = 24, P = 9 };
    int V = m->cfg.vocab;
    int32_t ids[2][T];
    for (int t = 0; t < T; t++) {
        ids[0][t] = (7 * t + 3) % V;
        ids[1][t] = (11 * t + 5) % V;
    }
    float *full = malloc(sizeof(float) * 2 * T * V), *got = malloc(sizeof(float) * 2 * T * V);
    for (int q = 0; s && q < 2; q++) { /* the reference: each sequence in one call */
        moe_session_reset(s);
        CHECK(moe_forward(s, ids[q], T, full + (int64_t)q * T * V, 1, &err) == 0);
    }
    if (!s) goto out;
    /* prefill P tokens of both sequences in one batch, then decode both */
    moe_session_reset(s);
    int32_t tok[2 * T], seq[2 * T], pos[2 * T];
    int8_t want[2 * T];
    int n = 0;
    for (int q = 0; q < 2; q++)
        for (int t = 0; t < P; t++, n++) {
            tok[n] = ids[q][t];
            seq[n] = q;
            pos[n] = t;
            want[n] = 1;
        }
    moe_batch b = {n, tok, seq, pos, want};
    float *out = malloc(sizeof(float) * 2 * T * V);
    CHECK(moe_decode(s, &b, out, &err) == 0);
    for (int q = 0; q < 2; q++)
        memcpy(got + (int64_t)q * T * V, out + (int64_t)q * P * V, sizeof(float) * P * V);
    for (int t = P; t < T; t++) {
        for (int q = 0; q < 2; q++) {
            tok[q] = ids[q][t];
            seq[q] = q;
            pos[q] = t;
            want[q] = 1;
        }
        moe_batch d = {2, tok, seq, pos, want};
        CHECK(moe_decode(s, &d, out, &err) == 0);
        for (int q = 0; q < 2; q++)
            memcpy(got + ((int64_t)q * T + t) * V, out + (int64_t)q * V, sizeof(float) * V);
    }
    double e = rel_diff(got, full, 2 * T * V);
    CHECK_MSG(e < 1e-5, "decode after prefill vs full forward: rel err %g (%s)", e, err.msg);

    /* copy sequence 1 to 2, forget sequence 1 from position 13 and run it
     * again from there; continue the copy: both as the full forward */
    CHECK(moe_seq_cp(s, 1, 2, &err) == 0);
    CHECK(moe_seq_rm(s, 1, 13, -1, &err) == 0);
    for (int t = 13; t < T; t++) {
        tok[0] = ids[1][t];
        seq[0] = 1;
        pos[0] = t;
        moe_batch d = {1, tok, seq, pos, NULL};
        CHECK(moe_decode(s, &d, out, &err) == 0);
        e = rel_diff(out, full + ((int64_t)T + t) * V, V);
        CHECK_MSG(e < 1e-5, "after seq_rm, position %d: rel err %g", t, e);
    }
    CHECK(moe_seq_rm(s, 2, 20, -1, &err) == 0);
    for (int t = 20; t < T; t++) {
        tok[0] = ids[1][t];
        seq[0] = 2;
        pos[0] = t;
        moe_batch d = {1, tok, seq, pos, NULL};
        CHECK(moe_decode(s, &d, out, &err) == 0);
        e = rel_diff(out, full + ((int64_t)T + t) * V, V);
        CHECK_MSG(e < 1e-5, "the copy, position %d: rel err %g", t, e);
    }
    free(out);
out:
    free(full);
    free(got);
    moe_session_free(s);
    moe_model_free(m);
}

/* Training mode ranks whole sequences: incremental calls are refused; so
 * is activation recomputation. */
TEST(mod_refusals) {
    moe_err err = {{0}};
    moe_model *m;
    moe_session *s;
    moe_session_opts so = {.n_ctx = 16, .n_threads = 1, .max_batch = 16, .n_seq = 1};
    if (open_mod("mod_dense", &so, &m, &s)) {
        moe_model_free(m);
        return;
    }
    if (s) {
        int32_t ids[4] = {1, 2, 3, 4};
        moe_session_set_mode(s, MOE_MODE_TRAIN);
        CHECK(moe_forward(s, ids, 2, NULL, 0, &err) == 0);
        CHECK(moe_forward(s, ids + 2, 2, NULL, 0, &err) == -1);
        CHECK_STR_CONTAINS(err.msg, "Mixture-of-Depths");
        CHECK(model_acts_enable_keep(s, 16, 1, &err) == -1);
        CHECK_STR_CONTAINS(err.msg, "--recompute");
    }
    moe_quant_opts qo = {0};
    moe_quant_plan *qp = NULL;
    CHECK(moe_quant_plan_new(&qp, m, &qo, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "Mixture-of-Depths");
    moe_quant_plan_free(qp);
    moe_session_free(s);
    moe_model_free(m);
}

static const char *k_base =
    "{\"model_type\": \"qwen2_moe\", \"vocab_size\": 64, \"hidden_size\": 32, "
    "\"intermediate_size\": 32, \"num_hidden_layers\": 4, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 4, \"num_experts\": 0, %s}";

static int parse_mod(moe_config *c, const char *extra, moe_err *err) {
    char json[1024];
    snprintf(json, sizeof json, k_base, extra);
    return hf_config_parse(c, json, strlen(json), "cfg.json", err);
}

TEST(mod_config) {
    static moe_config c, back;
    moe_err err = {{0}};
    CHECK(parse_mod(&c, "\"moe\": {\"mod\": {\"capacity\": 0.25, \"layers\": \"odd\"}}", &err) == 0);
    CHECK(c.mod_capacity == 0.25f && !c.layer[0].mod && c.layer[1].mod && !c.layer[2].mod &&
          c.layer[3].mod);
    CHECK(parse_mod(&c, "\"moe\": {\"mod\": {\"capacity\": 1, \"layers\": [0, 2]}}", &err) == 0);
    CHECK(c.layer[0].mod && !c.layer[1].mod && c.layer[2].mod && !c.layer[3].mod);
    CHECK(parse_mod(&c, "\"moe\": {\"mod\": {\"capacity\": 0.5}}", &err) == 0);
    CHECK(c.layer[0].mod && c.layer[1].mod && c.layer[2].mod && c.layer[3].mod);
    /* written and read back */
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
    CHECK(parse_mod(&c, "\"moe\": {\"mod\": {\"capacity\": 0.5, \"layers\": [1, 3]}}", &err) == 0);
    CHECK(hf_config_write(&c, path, NULL, &err) == 0);
    char *text = NULL;
    size_t len = 0;
    CHECK(read_file(path, 1 << 20, &text, &len, &err) == 0);
    CHECK(text && hf_config_parse(&back, text, len, path, &err) == 0);
    CHECK(back.mod_capacity == 0.5f && !back.layer[0].mod && back.layer[1].mod &&
          !back.layer[2].mod && back.layer[3].mod);
    free(text);

    static const struct {
        const char *extra, *msg;
    } bad[] = {
        {"\"moe\": {\"mod\": {\"capacity\": 0}}", "moe.mod.capacity: 0 is not in (0, 1]"},
        {"\"moe\": {\"mod\": {\"capacity\": 1.5}}", "moe.mod.capacity: 1.5 is not in (0, 1]"},
        {"\"moe\": {\"mod\": {\"layers\": \"all\"}}", "moe.mod.capacity: missing"},
        {"\"moe\": {\"mod\": {\"capacity\": 0.5, \"layers\": [4]}}",
         "moe.mod.layers: layer 4 out of range (the model has 4 layers"},
        {"\"moe\": {\"mod\": {\"capacity\": 0.5, \"layers\": [-1]}}", "layer -1 out of range"},
        {"\"moe\": {\"mod\": {\"capacity\": 0.5, \"layers\": \"some\"}}",
         "moe.mod.layers: unknown value \"some\""},
        {"\"moe\": {\"mod\": {\"capacity\": 0.5, \"layers\": []}}", "names no layer"},
        {"\"moe\": {\"mod\": {\"capacity\": 0.5, \"depth\": 2}}", "moe.mod.depth: unknown"},
        {"\"moe\": {\"mod\": 0.5}", "moe.mod: wrong JSON type"},
        {"\"use_sliding_window\": true, \"sliding_window\": 8, "
         "\"layer_types\": [\"sliding_attention\", \"sliding_attention\", "
         "\"sliding_attention\", \"sliding_attention\"], "
         "\"moe\": {\"mod\": {\"capacity\": 0.5}}",
         "Mixture-of-Depths with a sliding window is not supported"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECK_MSG(parse_mod(&c, bad[i].extra, &err) == -1, "accepted: %s", bad[i].extra);
        CHECK_MSG(strstr(err.msg, bad[i].msg) != NULL, "%s: got \"%s\"", bad[i].extra, err.msg);
    }
}

typedef struct seen {
    int calls, rows, bad;
} seen;

static void observe(void *user, const moe_route_info *r) {
    seen *o = user;
    if (r->layer != 0) return; /* layer 0 is MoD (with MoE), layer 1 is not */
    o->calls++;
    o->rows += r->T;
    if (!r->row) o->bad++;
    for (int t = 0; r->row && t < r->T; t++) /* one sequence from 0: the row is the position */
        if (r->row[t] != r->pos[t] || (t > 0 && r->row[t] <= r->row[t - 1]) ||
            moe_route_token(r, t) != r->row[t])
            o->bad++;
}

/* The route observer of a MoD layer sees the tokens the layer took, each
 * with its index among the caller's tokens. */
TEST(mod_route_observer) {
    moe_err err = {{0}};
    moe_model *m;
    moe_session *s;
    moe_session_opts so = {.n_ctx = 32, .n_threads = 1, .max_batch = 32, .n_seq = 1};
    if (open_mod("mod_mixtral", &so, &m, &s)) {
        moe_model_free(m);
        return;
    }
    seen o = {0};
    if (s) {
        int32_t ids[16];
        for (int t = 0; t < 16; t++) ids[t] = (5 * t + 1) % m->cfg.vocab;
        moe_session_set_route_observer(s, observe, &o);
        CHECK(moe_forward(s, ids, 16, NULL, 0, &err) == 0);
    }
    CHECK(o.calls == 1 && o.bad == 0);
    CHECK_MSG(o.rows > 0 && o.rows < 16, "layer 0 took %d of 16 tokens", o.rows);
    moe_session_free(s);
    moe_model_free(m);
}
