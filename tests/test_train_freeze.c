/*
 * test_train_freeze.c - `moe train --freeze` (train/freeze.h): the group
 * list parsed and printed back; on the PyTorch fixtures of
 * tests/fixtures/train, the trained tensors' gradients equal PyTorch's and
 * the global norm is theirs alone, the frozen tensors keep their bits
 * through an AdamW step with packed moments (no state for them); and whole
 * runs (moe_train): frozen tensors bit-identical after steps, the trained
 * ones the same after one step as in a run without the freeze, no moments
 * in optimizer.safetensors for the frozen, a resumed run freezing the same,
 * and --add-experts with old-experts,old-router frozen training only the
 * new experts and router rows.
 */
#include "test.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "moe_train.h"
#include "base/mapfile.h"
#include "formats/safetensors.h"
#include "train/backward.h"
#include "train/freeze.h"
#include "train/params.h"
#include "test_util.h"

TEST(train_freeze_parse) {
    moe_err err = {{0}};
    unsigned g = 99;
    char buf[128];
    CHECK(freeze_parse(NULL, &g, &err) == 0 && g == 0);
    CHECK(freeze_parse("", &g, &err) == 0 && g == 0);
    CHECK(freeze_parse("router", &g, &err) == 0 && g == FREEZE_ROUTER);
    CHECK(freeze_parse("old-router,norms,attention,router", &g, &err) == 0);
    CHECK(g == (FREEZE_OLD_ROUTER | FREEZE_NORMS | FREEZE_ATTENTION | FREEZE_ROUTER));
    freeze_format(g, buf, sizeof buf);
    CHECK_MSG(!strcmp(buf, "router,attention,norms,old-router"), "%s", buf);
    freeze_format(0, buf, sizeof buf);
    CHECK(buf[0] == 0);
    const char *bad[] = {"routers", "router,", ",router", "experts,,norms", "Router"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err.msg[0] = 0;
        CHECK_MSG(freeze_parse(bad[i], &g, &err) != 0, "'%s' accepted", bad[i]);
        CHECK_STR_CONTAINS(err.msg, "is no parameter group (router, experts");
    }
}

/* ----------------------------------------------- against PyTorch's grads */

/* The fixture's step-0 batch into in/tg ([B*T] each). */
static void batch0(const cJSON *batch, int B, int T, int32_t *in, int32_t *tg) {
    const cJSON *step = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(batch, "ids"), 0);
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= T; t++) {
            int v = cJSON_GetArrayItem(cJSON_GetArrayItem(step, b), t)->valueint;
            if (t < T) in[b * T + t] = v;
            if (t > 0) tg[b * T + t - 1] = v;
        }
}

/* The tensor of m holding parameter element `at` (relative to P.base). */
static const st_tensor *tensor_at(const moe_model *m, const train_params *P, int64_t at) {
    for (int i = 0; i < m->st.n_tensors; i++) {
        const st_tensor *t = &m->st.tensors[i];
        int64_t o = (const float *)t->data - P->base;
        if (at >= o && at < o + t->n_elems) return t;
    }
    return NULL;
}

/* One step of variant with groups frozen (added: experts counted as
 * appended), checked against grads.safetensors. */
static void freeze_step(const char *variant, const char *list, int added, const char *frozen_name,
                        const char *trained_name) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/train/%s", test_fixtures(), variant);
    snprintf(path, sizeof path, "%s/batch.json", dir);
    cJSON *batch = test_load_json(path);
    CHECK_MSG(batch != NULL, "%s: no batch.json", variant);
    if (!batch) return;
    int B = cJSON_GetObjectItemCaseSensitive(batch, "B")->valueint;
    int T = cJSON_GetObjectItemCaseSensitive(batch, "T")->valueint, N = B * T;
    const cJSON *hyper = cJSON_GetObjectItemCaseSensitive(batch, "hyper");
    loss_coefs coefs = {(float)cJSON_GetObjectItemCaseSensitive(hyper, "alpha_aux")->valuedouble,
                        (float)cJSON_GetObjectItemCaseSensitive(hyper, "beta_z")->valuedouble,
                        (float)cJSON_GetObjectItemCaseSensitive(hyper, "gamma_kl")->valuedouble, 0.0f};
    moe_err err = {{0}};
    moe_model *m = NULL;
    moe_session *s = NULL;
    bwd_ws *ws = NULL;
    train_params P = {0};
    unsigned groups = 0;
    CHECK(freeze_parse(list, &groups, &err) == 0);
    CHECK_MSG(moe_model_load(&m, dir, &err) == 0, "%s", err.msg);
    if (!m) goto out;
    CHECK(train_params_init(&P, m, &err) == 0);
    int64_t full_state = P.n_state, full_tensors = P.n_tensors;
    CHECK_MSG(freeze_apply(&P, m, groups, added, &err) == 0, "%s %s: %s", variant, list, err.msg);
    CHECK_MSG(P.n_tensors <= full_tensors && P.n_state < full_state, "%s %s: nothing frozen", variant,
              list);
    int64_t sum = 0;
    for (int i = 0; i < P.n_tensors; i++) sum += P.tensors[i].size;
    CHECK_EQ_INT(P.n_state, sum);
    moe_session_opts so = {.n_ctx = T, .n_threads = 2, .max_batch = N, .n_seq = B};
    CHECK(moe_session_new(&s, m, &so, &err) == 0 && model_acts_enable(s, N, &err) == 0);
    if (test_failed_now) goto out;
    moe_session_set_mode(s, MOE_MODE_TRAIN);
    CHECK(bwd_ws_new(&ws, s, N, &err) == 0);
    float *grads = calloc((size_t)P.n, sizeof(float)), *logits = malloc(sizeof(float) * (size_t)N * m->cfg.vocab);
    float *am = calloc((size_t)P.n_state, sizeof(float)), *av = calloc((size_t)P.n_state, sizeof(float));
    float *before = malloc(sizeof(float) * (size_t)P.n);
    int32_t *in = malloc(sizeof(int32_t) * (size_t)N), *tg = malloc(sizeof(int32_t) * (size_t)N);
    memcpy(before, P.base, sizeof(float) * (size_t)P.n);
    batch0(batch, B, T, in, tg);
    train_grads G = {P.base, grads, P.n};
    loss_parts lp;
    CHECK(model_forward_seqs(s, in, B, T, logits, &err) == 0);
    CHECK(model_backward(s, ws, &G, tg, B, T, logits, 1.0f / N, &coefs, 1.0f, &lp, &err) == 0);
    /* the trained ranges' gradients are PyTorch's; their norm is the norm */
    st_store ref;
    snprintf(path, sizeof path, "%s/grads.safetensors", dir);
    CHECK(st_open_file(&ref, path, &err) == 0);
    double sq = 0;
    int seen_trained = 0;
    for (int i = 0; i < P.n_tensors && !test_failed_now; i++) {
        const optim_tensor *tn = &P.tensors[i];
        const st_tensor *mt = tensor_at(m, &P, tn->offset);
        const st_tensor *rt = mt ? st_find(&ref, mt->name) : NULL;
        CHECK_MSG(rt != NULL, "%s: no reference gradient for %s", variant, tn->name);
        if (!rt) break;
        int64_t from = tn->offset - ((const float *)mt->data - P.base);
        const float *r = (const float *)rt->data + from, *a = grads + tn->offset;
        double worst = 0, scale = 1e-12;
        for (int64_t k = 0; k < tn->size; k++) {
            sq += (double)r[k] * r[k];
            worst = fmax(worst, fabs((double)a[k] - r[k]));
            scale = fmax(scale, fabs((double)r[k]));
        }
        CHECK_MSG(worst / scale <= 1e-4 || worst < 1e-9, "%s: grad %s rel err %g", variant, tn->name,
                  worst / scale);
        if (trained_name && strstr(mt->name, trained_name)) seen_trained = 1;
        CHECK_MSG(!frozen_name || !strstr(mt->name, frozen_name) || (added && from > 0),
                  "%s %s: %s is still trained", variant, list, mt->name);
    }
    CHECK_MSG(!trained_name || seen_trained, "%s %s: no %s trained", variant, list, trained_name);
    st_close(&ref);
    adamw_opts ao = {0.9, 0.95, 1e-8, 0.1, 1.0};
    double gn = 0;
    CHECK(adamw_step_clear(s->pool, P.base, grads, am, av, P.n, P.tensors, P.n_tensors, 1, 1e-3, &ao,
                           &gn, &err) == 0);
    CHECK_MSG(fabs(gn - sqrt(sq)) <= 1e-4 * sqrt(sq), "%s %s: grad norm %.9g vs PyTorch's %.9g over "
              "the trained tensors", variant, list, gn, sqrt(sq));
    /* frozen bits kept, every trained range moved */
    int64_t at = 0;
    for (int i = 0; i <= P.n_tensors; i++) {
        int64_t end = i < P.n_tensors ? P.tensors[i].offset : P.n;
        CHECK_MSG(!memcmp(before + at, P.base + at, sizeof(float) * (size_t)(end - at)),
                  "%s %s: frozen elements [%lld, %lld) changed", variant, list, (long long)at,
                  (long long)end);
        if (i == P.n_tensors) break;
        const optim_tensor *tn = &P.tensors[i];
        CHECK_MSG(memcmp(before + tn->offset, P.base + tn->offset, sizeof(float) * (size_t)tn->size),
                  "%s %s: %s did not move", variant, list, tn->name);
        at = tn->offset + tn->size;
    }
    for (int64_t k = 0; k < P.n; k++)
        if (grads[k] != 0) {
            CHECK_MSG(0, "%s: gradient %lld not cleared", variant, (long long)k);
            break;
        }
    free(grads), free(logits), free(am), free(av), free(before), free(in), free(tg);
out:
    bwd_ws_free(ws);
    moe_session_free(s);
    train_params_free(&P);
    moe_model_free(m);
    cJSON_Delete(batch);
}

TEST(train_freeze_grads_match_pytorch) {
    freeze_step("mixtral_top2", "router", 0, "block_sparse_moe.gate.", "experts.");
    freeze_step("mixtral_top2", "experts", 0, "experts.", "gate.");
    freeze_step("mixtral_top2", "attention,embeddings,norms", 0, "self_attn.", "experts.");
    freeze_step("mixtral_top2", "embeddings", 0, "embed_tokens", "q_proj");
    freeze_step("qwen2_shared", "router", 0, "shared_expert_gate", "shared_expert.");
    freeze_step("qwen2_shared", "experts,norms", 0, "shared_expert.", "q_proj");
    /* experts 2 and 3 of 4 counted as appended: only they and their router rows train */
    freeze_step("mixtral_top2", "old-experts,old-router,attention,embeddings,norms", 2, "experts.0.",
                "experts.3.");
    freeze_step("gpt_oss", "old-experts,old-router", 1, "experts.", "experts.");
}

TEST(train_freeze_refusals) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/train/mixtral_top2", test_fixtures());
    moe_err err = {{0}};
    moe_model *m = NULL;
    train_params P;
    CHECK(moe_model_load(&m, dir, &err) == 0);
    if (!m) return;
    CHECK(train_params_init(&P, m, &err) == 0);
    CHECK(freeze_apply(&P, m, FREEZE_OLD_EXPERTS, 0, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "old-experts and old-router need experts added");
    CHECK(freeze_apply(&P, m, FREEZE_OLD_ROUTER, 4, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "layer 0 has 4 experts, not more than the 4 added");
    unsigned all = FREEZE_ROUTER | FREEZE_EXPERTS | FREEZE_ATTENTION | FREEZE_EMBEDDINGS | FREEZE_NORMS;
    CHECK(freeze_apply(&P, m, all, 0, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "freeze: router,experts,attention,embeddings,norms leaves nothing to train");
    train_params_free(&P);
    moe_model_free(m);
}

/* ------------------------------------------------------------ whole runs */

/* dir/train.bin and dir/val.bin: n random ids below vocab, one domain. */
static void write_data(const char *dir, int vocab, int n) {
    char path[1024];
    uint32_t *ids = malloc(sizeof *ids * (size_t)n);
    uint64_t x = 12345, end = (uint64_t)n;
    for (int f = 0; ids && f < 2; f++) {
        for (int i = 0; i < n; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            ids[i] = (uint32_t)((x >> 33) % (uint64_t)vocab);
        }
        snprintf(path, sizeof path, "%s/%s", dir, f ? "val.bin" : "train.bin");
        test_write_shard(path, ids, (uint64_t)n, 2, (uint32_t)vocab, &end, 1);
    }
    free(ids);
}

/* A run of `steps` from a fixture (n_add experts appended) with groups
 * frozen; 0 when it trained. */
static int run_added(const char *out, const char *data, const char *init, int n_add,
                     const char *freeze, int steps, int stop_after, int resume, double clip,
                     moe_err *err) {
    moe_train_opts o;
    moe_train_defaults(&o);
    o.add_experts = n_add;
    o.out_dir = out;
    o.data_dir = data;
    o.init = init;
    o.freeze = freeze;
    o.steps = steps;
    o.batch = 2;
    o.seq = 16;
    o.warmup = 1;
    o.clip = clip;
    o.eval_every = 0;
    o.eval_batches = 1;
    o.n_threads = 2;
    o.stop_after = stop_after;
    o.resume = resume;
    o.keep = 1;
    return moe_train(&o, err);
}

static int run(const char *out, const char *data, const char *init, const char *freeze, int steps,
               int stop_after, int resume, double clip, moe_err *err) {
    return run_added(out, data, init, 0, freeze, steps, stop_after, resume, clip, err);
}

/* Each tensor of the checkpoint at a against b: how many are bit-identical
 * (*same) and how many differ (*diff), for names containing `part` and
 * for the others. */
typedef struct cmp_count { int same_in, diff_in, same_out, diff_out; } cmp_count;
static cmp_count compare(const char *a, const char *b, const char *part) {
    cmp_count c = {0, 0, 0, 0};
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/model.safetensors", a);
    snprintf(pb, sizeof pb, "%s/model.safetensors", b);
    st_store x, y;
    moe_err err;
    if (st_open_file(&x, pa, &err)) return c;
    if (st_open_file(&y, pb, &err)) {
        st_close(&x);
        return c;
    }
    for (int i = 0; i < x.n_tensors; i++) {
        const st_tensor *t = &x.tensors[i], *u = st_find(&y, t->name);
        int same = u && u->n_elems == t->n_elems && t->type == DT_F32 && u->type == DT_F32 &&
                   !memcmp(t->data, u->data, (size_t)t->nbytes);
        int in = strstr(t->name, part) != NULL;
        if (in) same ? c.same_in++ : c.diff_in++;
        else same ? c.same_out++ : c.diff_out++;
    }
    st_close(&x);
    st_close(&y);
    return c;
}

TEST(train_freeze_runs) {
    char fx[512], data[600], o1[600], o2[600], o3[600], o4[600], p[700];
    /* short names: test_tmpdir() is a short path */
    snprintf(fx, sizeof fx, "%s/train/mixtral_top2", test_fixtures());
    snprintf(data, sizeof data, "%s/data", test_tmpdir());
    snprintf(o1, sizeof o1, "%s/frozen", test_tmpdir());
    snprintf(o2, sizeof o2, "%s/free1", test_tmpdir());
    snprintf(o3, sizeof o3, "%s/frozen1", test_tmpdir());
    snprintf(o4, sizeof o4, "%s/resumed", test_tmpdir());
    mkdir(data, 0755);
    write_data(data, 64, 3000);
    moe_err err = {{0}};
    /* 3 steps with the router and the norms frozen: their bits kept */
    CHECK_MSG(run(o1, data, fx, "router,norms", 3, 0, 0, 1.0, &err) == 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s/latest", o1);
    cmp_count c = compare(p, fx, "block_sparse_moe.gate.");
    CHECK_MSG(c.same_in == 2 && c.diff_in == 0, "routers: %d kept, %d changed", c.same_in, c.diff_in);
    c = compare(p, fx, "norm");
    CHECK_MSG(c.same_in == 5 && c.diff_in == 0, "norms: %d kept, %d changed", c.same_in, c.diff_in);
    CHECK_MSG(c.diff_out > 20, "only %d tensors trained", c.diff_out);
    /* no moments for them; the state names the groups */
    char path[800];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", p);
    st_store opt;
    if (st_open_file(&opt, path, &err) == 0) {
        CHECK(!st_find(&opt, "m.model.layers.0.block_sparse_moe.gate.weight"));
        CHECK(!st_find(&opt, "v.model.norm.weight"));
        CHECK(st_find(&opt, "m.model.layers.0.self_attn.q_proj.weight"));
        st_close(&opt);
    } else {
        CHECK_MSG(0, "%s", err.msg);
    }
    snprintf(path, sizeof path, "%s/trainer_state.json", p);
    cJSON *st = test_load_json(path);
    const cJSON *fz = cJSON_GetObjectItemCaseSensitive(st, "freeze");
    CHECK(cJSON_IsString(fz) && !strcmp(fz->valuestring, "router,norms"));
    cJSON_Delete(st);
    /* one step without clipping: the trained tensors get the bits of a run
     * without the freeze (same gradients, elementwise update) */
    CHECK_MSG(run(o2, data, fx, NULL, 3, 1, 0, 0.0, &err) == 0, "%s", err.msg);
    CHECK_MSG(run(o3, data, fx, "router,norms", 3, 1, 0, 0.0, &err) == 0, "%s", err.msg);
    char l2[700], l3[700];
    snprintf(l2, sizeof l2, "%s/latest", o2);
    snprintf(l3, sizeof l3, "%s/latest", o3);
    c = compare(l3, l2, "block_sparse_moe.gate.");
    CHECK_MSG(c.diff_in == 2 && c.diff_out == 5, "%d routers and %d others differ (want 2 and the "
              "5 norms)", c.diff_in, c.diff_out);
    CHECK_MSG(c.same_out > 20, "only %d tensors the same", c.same_out);
    /* stop after 1, resume without --freeze: the checkpoint's groups, the
     * bits of the unbroken run */
    CHECK_MSG(run(o4, data, fx, "router,norms", 3, 1, 0, 1.0, &err) == 0, "%s", err.msg);
    CHECK_MSG(run(o4, data, fx, "router", 3, 0, 1, 1.0, &err) != 0, "another freeze resumed");
    CHECK_STR_CONTAINS(err.msg, "was trained with --freeze 'router,norms'");
    CHECK_MSG(run(o4, data, fx, NULL, 3, 0, 1, 1.0, &err) == 0, "%s", err.msg);
    snprintf(l2, sizeof l2, "%s/latest", o4);
    c = compare(l2, p, "");
    CHECK_MSG(c.diff_in == 0 && c.same_in > 20, "resumed: %d tensors differ", c.diff_in);
}

/* --add-experts 2 with --freeze old-experts,old-router: the four experts
 * and their router rows keep their bits, the two new ones and their rows
 * train, and so does the attention (not frozen); the state counts them. */
TEST(train_freeze_old_experts_run) {
    char fx[512], data[600], out[600], p[700], path[800];
    snprintf(fx, sizeof fx, "%s/train/mixtral_top2", test_fixtures());
    snprintf(data, sizeof data, "%s/data", test_tmpdir());
    snprintf(out, sizeof out, "%s/grown", test_tmpdir());
    mkdir(data, 0755);
    write_data(data, 64, 3000);
    moe_err err = {{0}};
    CHECK_MSG(run_added(out, data, fx, 0, "old-experts", 2, 0, 0, 1.0, &err) != 0, "no experts added");
    CHECK_STR_CONTAINS(err.msg, "old-experts and old-router need experts added");
    CHECK_MSG(run_added(out, data, fx, 2, "old-experts,old-router", 3, 0, 0, 1.0, &err) == 0, "%s",
              err.msg);
    snprintf(p, sizeof p, "%s/latest", out);
    cmp_count c = compare(p, fx, "experts.");
    /* 2 layers x 4 old experts x 3 kept; the new ones are not in the fixture */
    CHECK_MSG(c.same_in == 24 && c.diff_in == 12, "experts: %d kept, %d new", c.same_in, c.diff_in);
    c = compare(p, fx, "self_attn.");
    CHECK_MSG(c.diff_in == 8, "attention: %d of 8 trained", c.diff_in);
    snprintf(path, sizeof path, "%s/model.safetensors", p);
    char fpath[700];
    snprintf(fpath, sizeof fpath, "%s/model.safetensors", fx);
    st_store a, b;
    if (st_open_file(&a, path, &err) == 0) {
        if (st_open_file(&b, fpath, &err) == 0) {
            for (int l = 0; l < 2; l++) {
                char nm[100];
                snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.gate.weight", l);
                const st_tensor *g = st_find(&a, nm), *o = st_find(&b, nm);
                CHECK(g && o && g->n_elems == 6 * 32 && o->n_elems == 4 * 32);
                if (g && o) {
                    CHECK_MSG(!memcmp(g->data, o->data, (size_t)o->nbytes), "%s: old rows moved", nm);
                    CHECK_MSG(memcmp((const float *)g->data + 4 * 32, (const float[64]){0}, 64 * 4),
                              "%s: new rows did not train", nm);
                }
                /* new expert 4 + j started as a copy of expert j */
                for (int j = 0; j < 2; j++) {
                    char e1[120], e0[120];
                    snprintf(e1, sizeof e1, "model.layers.%d.block_sparse_moe.experts.%d.w1.weight", l, 4 + j);
                    snprintf(e0, sizeof e0, "model.layers.%d.block_sparse_moe.experts.%d.w1.weight", l, j);
                    const st_tensor *x = st_find(&a, e1), *y = st_find(&b, e0);
                    CHECK(x && y && x->n_elems == y->n_elems);
                    if (x && y) CHECK_MSG(memcmp(x->data, y->data, (size_t)y->nbytes), "%s did not train", e1);
                }
            }
            st_close(&b);
        }
        st_close(&a);
    }
    snprintf(path, sizeof path, "%s/trainer_state.json", p);
    cJSON *st = test_load_json(path);
    const cJSON *ad = cJSON_GetObjectItemCaseSensitive(st, "added_experts");
    CHECK(cJSON_IsNumber(ad) && ad->valueint == 2);
    cJSON_Delete(st);
}
