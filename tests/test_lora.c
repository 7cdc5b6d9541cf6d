/*
 * test_lora.c - LoRA adapters (src/train/lora*.c) against peft and PyTorch,
 * on the fixtures of tools/gen_lora_fixtures.py (tests/fixtures/lora):
 * peft's adapter applied here gives peft's logits; the adapters' gradients
 * equal PyTorch's; merging equals applying; an adapter saved here (by
 * lora_save and by a `moe train` LoRA run) has exactly peft's tensor names
 * and shapes; malformed adapters are refused with a message naming the
 * file, the tensor or the field.
 */
#include "test.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "moe_train.h"
#include "formats/safetensors.h"
#include "train/backward.h"
#include "train/lora.h"
#include "train/params.h"

static const char *k_variants[] = {"mixtral", "qwen3_moe"};
#define N_VARIANTS 2

static void fixture_dir(char *out, size_t n, const char *variant, const char *sub) {
    snprintf(out, n, "%s/lora/%s%s%s", test_fixtures(), variant, sub ? "/" : "", sub ? sub : "");
}

static cJSON *load_json(const char *path) { return test_load_json(path); }

/* All-position logits of ids through m ([n][V], malloc'ed), or NULL. */
static float *logits_of(moe_model *m, const int32_t *ids, int n) {
    moe_err err = {{0}};
    moe_session *s = NULL;
    moe_session_opts so = {.n_ctx = n, .n_threads = 2, .max_batch = n};
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)moe_model_config(m)->vocab);
    if (!out || moe_session_new(&s, m, &so, &err) || moe_forward(s, ids, n, out, 1, &err)) {
        test_fail_at(__FILE__, __LINE__, "forward: %s", err.msg);
        free(out);
        out = NULL;
    }
    moe_session_free(s);
    return out;
}

static int ref_ids(const cJSON *ref, int32_t *ids, int cap) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(ref, "ids");
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (n < cap) ids[n++] = e->valueint;
    return n;
}

static double max_abs(const float *a, const float *b, int64_t n, double *scale) {
    double worst = 0, sc = 1e-12;
    for (int64_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - (b ? b[i] : 0.0f)));
        if (b) sc = fmax(sc, fabs((double)b[i]));
    }
    if (scale) *scale = sc;
    return worst;
}

/* peft's adapter applied by moe_lora_apply gives the PeftModel's logits. */
TEST(lora_peft_logits) {
    for (int v = 0; v < N_VARIANTS; v++) {
        char dir[512], base[600], adapter[600], path[600];
        fixture_dir(dir, sizeof dir, k_variants[v], NULL);
        snprintf(base, sizeof base, "%s/base", dir);
        snprintf(adapter, sizeof adapter, "%s/adapter", dir);
        snprintf(path, sizeof path, "%s/ref.json", dir);
        cJSON *ref = load_json(path);
        CHECK(ref != NULL);
        int32_t ids[64];
        int n = ref ? ref_ids(ref, ids, 64) : 0;
        moe_err err = {{0}};
        moe_model *m = NULL;
        moe_lora *l = NULL;
        st_store rs;
        snprintf(path, sizeof path, "%s/ref.safetensors", dir);
        CHECK(st_open_file(&rs, path, &err) == 0);
        CHECK_MSG(moe_model_load(&m, base, &err) == 0, "%s: %s", base, err.msg);
        CHECK_MSG(m && moe_lora_apply(m, adapter, &l, &err) == 0, "%s: %s", adapter, err.msg);
        if (!test_failed_now) {
            const st_tensor *want = st_find(&rs, "logits"), *plain = st_find(&rs, "base_logits");
            float *got = logits_of(m, ids, n);
            CHECK(want && plain && got && want->n_elems == (int64_t)n * moe_model_config(m)->vocab);
            if (!test_failed_now) {
                double scale, e = max_abs(got, want->data, want->n_elems, &scale);
                CHECK_MSG(e <= 1e-4 * scale, "%s: logits differ from peft's by %g (scale %g)",
                          k_variants[v], e, scale);
                /* and the adapter matters: peft's logits are not the base model's */
                double d = max_abs(want->data, plain->data, want->n_elems, NULL);
                CHECK_MSG(d > 1e-2, "%s: the adapter changes the logits by only %g", k_variants[v], d);
            }
            free(got);
        }
        moe_model_free(m);
        moe_lora_free(l);
        st_close(&rs);
        cJSON_Delete(ref);
    }
}

/* d CE / d lora_A, lora_B from the backward's dW equal PyTorch's through peft. */
TEST(lora_grads_vs_pytorch) {
    for (int v = 0; v < N_VARIANTS && !test_failed_now; v++) {
        char dir[512], base[600], adapter[600], path[600];
        fixture_dir(dir, sizeof dir, k_variants[v], NULL);
        snprintf(base, sizeof base, "%s/base", dir);
        snprintf(adapter, sizeof adapter, "%s/adapter", dir);
        snprintf(path, sizeof path, "%s/ref.json", dir);
        cJSON *ref = load_json(path);
        CHECK(ref != NULL);
        if (!ref) continue;
        int B = cJSON_GetObjectItemCaseSensitive(ref, "B")->valueint;
        int T = cJSON_GetObjectItemCaseSensitive(ref, "T")->valueint, N = B * T;
        int32_t *in = malloc(sizeof(int32_t) * (size_t)N), *tg = malloc(sizeof(int32_t) * (size_t)N);
        const cJSON *batch = cJSON_GetObjectItemCaseSensitive(ref, "batch");
        for (int b = 0; b < B; b++)
            for (int t = 0; t <= T; t++) {
                int id = cJSON_GetArrayItem(cJSON_GetArrayItem(batch, b), t)->valueint;
                if (t < T) in[b * T + t] = id;
                if (t > 0) tg[b * T + t - 1] = id;
            }
        moe_err err = {{0}};
        moe_model *m = NULL;
        train_params P;
        lora_adapter a;
        moe_session *s = NULL;
        bwd_ws *ws = NULL;
        CHECK_MSG(moe_model_load(&m, base, &err) == 0, "%s", err.msg);
        CHECK_MSG(train_params_init(&P, m, &err) == 0, "%s", err.msg);
        CHECK_MSG(lora_load(&a, m, adapter, &err) == 0, "%s", err.msg);
        if (test_failed_now) {
            free(in);
            free(tg);
            cJSON_Delete(ref);
            moe_model_free(m);
            return;
        }
        /* merged in place, as the trainer does */
        for (int i = 0; i < a.n; i++)
            for (int j = 0; j < a.t[i].n_w; j++)
                lora_add_delta(&a, &a.t[i], j, (float *)a.t[i].w[j]->data);
        moe_session_opts so = {.n_ctx = T, .n_threads = 2, .max_batch = N, .n_seq = B};
        CHECK(moe_session_new(&s, m, &so, &err) == 0);
        CHECK(model_acts_enable(s, N, &err) == 0);
        moe_session_set_mode(s, MOE_MODE_TRAIN);
        CHECK(bwd_ws_new(&ws, s, N, &err) == 0);
        float *grads = calloc((size_t)P.n, sizeof(float));
        float *logits = malloc(sizeof(float) * (size_t)N * (size_t)m->cfg.vocab);
        float *g = calloc((size_t)a.n_params, sizeof(float));
        train_grads G = {P.base, grads, P.n};
        loss_coefs coefs = {0, 0, 0, 0.0f};
        loss_parts lp;
        CHECK_MSG(model_forward_seqs(s, in, B, T, logits, &err) == 0, "%s", err.msg);
        CHECK_MSG(model_backward(s, ws, &G, tg, B, T, logits, 1.0f / N, &coefs, 1.0f, &lp, &err) == 0,
                  "%s", err.msg);
        double ce = lp.ce_sum / (double)lp.ce_count;
        double want = cJSON_GetObjectItemCaseSensitive(ref, "loss")->valuedouble;
        CHECK_MSG(fabs(ce - want) <= 2e-5 * fabs(want), "%s: loss %.9g vs PyTorch %.9g",
                  k_variants[v], ce, want);
        for (int i = 0; i < a.n; i++)
            for (int j = 0; j < a.t[i].n_w; j++)
                lora_add_grads(&a, &a.t[i], j, grad_of(&G, a.t[i].w[j]->data), g);
        st_store gs;
        snprintf(path, sizeof path, "%s/grads.safetensors", dir);
        CHECK(st_open_file(&gs, path, &err) == 0);
        CHECK_EQ_INT(gs.n_tensors, 2 * a.n);
        for (int i = 0; i < a.n && !test_failed_now; i++) {
            const lora_target *t = &a.t[i];
            for (int k = 0; k < 2; k++) {
                const st_tensor *rt = st_find(&gs, k ? t->name_b : t->name_a);
                int64_t off = k ? t->b_off : t->a_off;
                int64_t n = k ? t->out * t->E * a.r : (int64_t)t->E * a.r * t->in;
                CHECK_MSG(rt && rt->n_elems == n, "%s: grads.safetensors lacks %s", k_variants[v],
                          k ? t->name_b : t->name_a);
                if (!rt || rt->n_elems != n) continue;
                double scale, e = max_abs(g + off, rt->data, n, &scale);
                CHECK_MSG(e <= 1e-4 * scale || e < 1e-9, "%s: grad %s rel err %g (scale %g)",
                          k_variants[v], rt->name, e / scale, scale);
            }
        }
        st_close(&gs);
        free(g);
        free(grads);
        free(logits);
        free(in);
        free(tg);
        bwd_ws_free(ws);
        moe_session_free(s);
        lora_free(&a);
        train_params_free(&P);
        moe_model_free(m);
        cJSON_Delete(ref);
    }
}

/* moe_lora_merge's directory gives the logits of the adapter applied. */
TEST(lora_merge_equals_apply) {
    for (int v = 0; v < N_VARIANTS; v++) {
        char dir[512], base[600], adapter[600], out[600];
        fixture_dir(dir, sizeof dir, k_variants[v], NULL);
        snprintf(base, sizeof base, "%s/base", dir);
        snprintf(adapter, sizeof adapter, "%s/adapter", dir);
        snprintf(out, sizeof out, "%s/merged-%s", test_tmpdir(), k_variants[v]);
        moe_err err = {{0}};
        CHECK_MSG(moe_lora_merge(base, adapter, out, &err) == 0, "%s", err.msg);
        moe_model *ma = NULL, *mm = NULL;
        moe_lora *l = NULL;
        CHECK(moe_model_load(&ma, base, &err) == 0 && moe_lora_apply(ma, adapter, &l, &err) == 0);
        CHECK_MSG(moe_model_load(&mm, out, &err) == 0, "%s: %s", out, err.msg);
        if (!test_failed_now) {
            int32_t ids[6] = {4, 9, 33, 1, 62, 17};
            float *a = logits_of(ma, ids, 6), *b = logits_of(mm, ids, 6);
            double scale;
            CHECK(a && b);
            if (a && b) {
                double e = max_abs(b, a, 6 * (int64_t)moe_model_config(ma)->vocab, &scale);
                CHECK_MSG(e <= 1e-6 * scale, "%s: merged vs applied differ by %g", k_variants[v], e);
            }
            free(a);
            free(b);
        }
        moe_model_free(ma);
        moe_model_free(mm);
        moe_lora_free(l);
    }
}

/* Same tensor names and shapes in two safetensors files; values too when
 * same_values. */
static void check_same_layout(const char *pa, const char *pb, int same_values) {
    st_store a, b;
    moe_err err = {{0}};
    CHECK_MSG(st_open_file(&a, pa, &err) == 0, "%s", err.msg);
    CHECK_MSG(st_open_file(&b, pb, &err) == 0, "%s", err.msg);
    if (test_failed_now) return;
    CHECK_EQ_INT(a.n_tensors, b.n_tensors);
    for (int i = 0; i < a.n_tensors; i++) {
        const st_tensor *x = &a.tensors[i], *y = st_find(&b, x->name);
        CHECK_MSG(y != NULL, "%s has %s, %s does not", pa, x->name, pb);
        if (!y) continue;
        CHECK_MSG(x->n_dims == 2 && y->n_dims == 2 && x->shape[0] == y->shape[0] &&
                      x->shape[1] == y->shape[1],
                  "%s: shapes differ", x->name);
        if (same_values && x->type == DT_F32 && y->type == DT_F32 && x->nbytes == y->nbytes)
            CHECK_MSG(!memcmp(x->data, y->data, x->nbytes), "%s: values differ", x->name);
    }
    st_close(&a);
    st_close(&b);
}

/* lora_save writes back exactly what it read; a `moe train` LoRA run on the
 * same targets and rank writes peft's names and shapes. */
TEST(lora_save_roundtrip) {
    char dir[512], base[600], adapter[600], out[600], pa[700], pb[700];
    fixture_dir(dir, sizeof dir, "mixtral", NULL);
    snprintf(base, sizeof base, "%s/base", dir);
    snprintf(adapter, sizeof adapter, "%s/adapter", dir);
    snprintf(pa, sizeof pa, "%s/adapter_model.safetensors", adapter);
    moe_err err = {{0}};
    moe_model *m = NULL;
    lora_adapter a, b;
    CHECK_MSG(moe_model_load(&m, base, &err) == 0, "%s", err.msg);
    CHECK_MSG(m && lora_load(&a, m, adapter, &err) == 0, "%s", err.msg);
    if (test_failed_now) {
        moe_model_free(m);
        return;
    }
    snprintf(out, sizeof out, "%s/saved", test_tmpdir());
    CHECK_MSG(lora_save(&a, out, &err) == 0, "%s", err.msg);
    snprintf(pb, sizeof pb, "%s/adapter_model.safetensors", out);
    check_same_layout(pa, pb, 1);
    CHECK_MSG(lora_load(&b, m, out, &err) == 0, "%s", err.msg);
    if (!test_failed_now) {
        CHECK_EQ_INT(b.r, a.r);
        CHECK(b.alpha == a.alpha && b.targets == a.targets && b.rslora == a.rslora);
        lora_free(&b);
    }
    lora_free(&a);
    moe_model_free(m);

    /* two steps of a LoRA run on every target at the fixture's rank */
    moe_train_opts o;
    moe_train_defaults(&o);
    char run[600], data[600];
    snprintf(run, sizeof run, "%s/run", test_tmpdir());
    snprintf(data, sizeof data, "%s/train/gpt_oss_data", test_fixtures());
    o.out_dir = run;
    o.data_dir = data;
    o.init = base;
    o.steps = 2;
    o.batch = 2;
    o.seq = 8;
    o.n_threads = 2;
    o.lora_rank = 2;
    o.lora_targets = "all";
    CHECK_MSG(moe_train(&o, &err) == 0, "%s", err.msg);
    snprintf(pb, sizeof pb, "%s/latest/adapter_model.safetensors", run);
    check_same_layout(pa, pb, 0);
    struct stat sb;
    snprintf(pb, sizeof pb, "%s/latest/model.safetensors", run);
    CHECK_MSG(stat(pb, &sb) != 0, "a LoRA checkpoint holds no model weights");
    snprintf(pb, sizeof pb, "%s/latest", run);
    moe_model *mb = NULL;
    moe_lora *l = NULL;
    CHECK(moe_model_load(&mb, base, &err) == 0);
    CHECK_MSG(mb && moe_lora_apply(mb, pb, &l, &err) == 0, "%s", err.msg);
    moe_model_free(mb);
    moe_lora_free(l);
}

/* The GEMM paths the trainer and moe_lora_apply use equal the loops. */
TEST(lora_gemm_vs_loops) {
    for (int v = 0; v < N_VARIANTS; v++) {
        char base[600], adapter[600];
        fixture_dir(base, sizeof base, k_variants[v], "base");
        fixture_dir(adapter, sizeof adapter, k_variants[v], "adapter");
        moe_err err = {{0}};
        moe_model *m = NULL;
        lora_adapter a;
        CHECK_MSG(moe_model_load(&m, base, &err) == 0, "%s", err.msg);
        CHECK_MSG(m && lora_load(&a, m, adapter, &err) == 0, "%s", err.msg);
        if (test_failed_now) {
            moe_model_free(m);
            return;
        }
        float *g1 = calloc((size_t)a.n_params, sizeof(float));
        float *g2 = calloc((size_t)a.n_params, sizeof(float));
        uint64_t x = 88172645463325252ull;
        for (int i = 0; i < a.n; i++) {
            const lora_target *t = &a.t[i];
            int64_t n = lora_w_rows(t) * t->in;
            float *w1 = malloc(sizeof(float) * (size_t)n), *w2 = malloc(sizeof(float) * (size_t)n);
            float *scratch = malloc(sizeof(float) * (size_t)lora_scratch(t, a.r));
            for (int j = 0; j < t->n_w; j++) {
                for (int64_t k = 0; k < n; k++) { /* xorshift: any dW */
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    w1[k] = w2[k] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
                }
                lora_add_grads(&a, t, j, w1, g1);
                lora_add_grads_gemm(NULL, &a, t, j, w2, g2, scratch);
                lora_add_delta(&a, t, j, w1);
                lora_add_delta_gemm(NULL, &a, t, j, w2, scratch);
                double scale, e = max_abs(w2, w1, n, &scale);
                CHECK_MSG(e <= 1e-6 * scale, "%s: %s weight %d: delta differs by %g",
                          k_variants[v], t->key, j, e);
            }
            free(w1);
            free(w2);
            free(scratch);
        }
        double scale, e = max_abs(g2, g1, a.n_params, &scale);
        CHECK_MSG(e <= 1e-5 * scale, "%s: gradients differ by %g (scale %g)", k_variants[v], e, scale);
        free(g1);
        free(g2);
        lora_free(&a);
        moe_model_free(m);
    }
}
