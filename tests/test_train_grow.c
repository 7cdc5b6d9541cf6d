/*
 * test_train_grow.c - the starting models of `moe train --upcycle` and
 * `--add-experts` (train/grow.h). Upcycling: with no noise the MoE computes
 * the dense model's logits (every expert a copy of the dense FFN, the top-k
 * weights summing to 1), from a dense qwen2_moe and from a one-expert
 * Mixtral; noise moves them; a model that is an MoE already, or one
 * Mixtral's layout cannot hold, is refused. Adding experts: the config's
 * count raised with its other keys kept, old tensors bit-identical, new
 * experts copies of old ones, new router rows zero, for per-expert tensors
 * (mixtral, qwen2_moe with a shared expert and a dense layer) and gpt_oss's
 * stacked ones; and a run with --freeze old-experts,old-router keeps the
 * old experts and router rows bit for bit while the new ones train.
 */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "moe_train.h"
#include "base/mapfile.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "model/model_init.h"
#include "train/grow.h"
#include "test_util.h"

/* A random f32 model of config text `json` in dir (created). */
static int make_model(const char *dir, const char *json, uint64_t seed) {
    moe_err err = {{0}};
    moe_config *c = malloc(sizeof *c);
    mkdir(dir, 0755);
    int rc = !c || hf_config_parse(c, json, strlen(json), dir, &err);
    model_init_opts io = {DT_F32, seed, 0.1f, NULL, NULL, NULL, 0, 0};
    if (!rc) rc = model_init_random(c, dir, &io, &err);
    if (rc) test_fail_at(__FILE__, __LINE__, "%s: %s", dir, err.msg);
    free(c);
    return rc;
}

/* Logits of one sequence of n ids through the model in dir into out[n][V]
 * (V = 64); its config into *cfg (may be NULL). */
static int logits_of(const char *dir, const int32_t *ids, int n, float *out, moe_config *cfg) {
    moe_err err = {{0}};
    int V = 0;
    float *l = test_model_logits(dir, ids, n, &V);
    if (!l) return -1;
    memcpy(out, l, sizeof(float) * (size_t)n * (size_t)V);
    free(l);
    if (cfg && hf_config_load(cfg, dir, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", dir, err.msg);
        return -1;
    }
    return V == 64 ? 0 : -1;
}

static double rel_diff(const float *a, const float *b, int n) { return test_rel_err(b, a, n); }

#define DENSE_QWEN2                                                                            \
    "{\"model_type\": \"qwen2_moe\", \"vocab_size\": 64, \"hidden_size\": 32,"                 \
    " \"intermediate_size\": 48, \"moe_intermediate_size\": 16,"                               \
    " \"shared_expert_intermediate_size\": 16, \"num_hidden_layers\": 2,"                      \
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"num_experts\": 0,"             \
    " \"num_experts_per_tok\": 2, \"norm_topk_prob\": true, \"decoder_sparse_step\": 1,"       \
    " \"mlp_only_layers\": [], \"qkv_bias\": %s, \"max_position_embeddings\": 64,"             \
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"tie_word_embeddings\": %s,"         \
    " \"use_sliding_window\": false}"

static const int32_t k_ids[12] = {1, 7, 19, 3, 60, 42, 42, 8, 33, 0, 63, 5};

static int upcycle(const char *from, const char *to, int E, int k, float noise, moe_err *err) {
    mkdir(to, 0755);
    grow_opts o = {from, E, k, NULL, 0, noise, 5, 0.02f};
    return grow_write(&o, to, err);
}

TEST(train_upcycle_computes_the_dense_model) {
    char dense[600], up[600], text[2048];
    const int n = 12, V = 64;
    float *a = malloc(sizeof(float) * n * V), *b = malloc(sizeof(float) * n * V);
    moe_config *c = malloc(sizeof *c);
    moe_err err = {{0}};
    for (int tied = 0; tied < 2; tied++) {
        snprintf(dense, sizeof dense, "%s/dense%d", test_tmpdir(), tied);
        snprintf(text, sizeof text, DENSE_QWEN2, "false", tied ? "true" : "false");
        if (make_model(dense, text, 11 + tied) || logits_of(dense, k_ids, n, a, NULL)) break;
        const int shapes[3][2] = {{4, 0}, {8, 3}, {1, 1}}; /* E, k (0: the dense config's 2) */
        for (int v = 0; v < 3; v++) {
            snprintf(up, sizeof up, "%s/up%d_%d", test_tmpdir(), tied, v);
            CHECK_MSG(upcycle(dense, up, shapes[v][0], shapes[v][1], 0, &err) == 0, "%s", err.msg);
            if (logits_of(up, k_ids, n, b, c)) continue;
            CHECK(c->arch == MOE_ARCH_MIXTRAL && c->tied_embeddings == tied);
            for (int l = 0; l < c->n_layers; l++) {
                CHECK(c->layer[l].moe && c->layer[l].norm_topk);
                CHECK_EQ_INT(c->layer[l].n_experts, shapes[v][0]);
                CHECK_EQ_INT(c->layer[l].top_k, shapes[v][1] ? shapes[v][1] : 2);
                CHECK_EQ_INT(c->layer[l].expert_dim, 48); /* the dense width */
            }
            double d = rel_diff(a, b, n * V);
            CHECK_MSG(d < 1e-5, "E %d k %d tied %d: logits differ by %g of their range",
                      shapes[v][0], shapes[v][1], tied, d);
        }
    }
    /* noise: experts no longer equal, the logits move (a little) */
    snprintf(up, sizeof up, "%s/noisy", test_tmpdir());
    CHECK_MSG(upcycle(dense, up, 4, 2, 0.05f, &err) == 0, "%s", err.msg);
    if (!logits_of(up, k_ids, n, b, NULL)) {
        double d = rel_diff(a, b, n * V);
        CHECK_MSG(d > 1e-4 && d < 0.5, "noise 0.05 moved the logits by %g", d);
    }
    /* a Mixtral with one expert (weight 1) is a dense model too */
    snprintf(dense, sizeof dense, "%s/one", test_tmpdir());
    if (!make_model(dense, "{\"model_type\": \"mixtral\", \"vocab_size\": 64, \"hidden_size\": 32, "
                           "\"intermediate_size\": 24, \"num_hidden_layers\": 2, "
                           "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                           "\"num_local_experts\": 1, \"num_experts_per_tok\": 1, "
                           "\"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-05, "
                           "\"rope_theta\": 10000.0, \"tie_word_embeddings\": false}",
                    17) &&
        !logits_of(dense, k_ids, n, a, NULL)) {
        snprintf(up, sizeof up, "%s/up_one", test_tmpdir());
        CHECK_MSG(upcycle(dense, up, 6, 2, 0, &err) == 0, "%s", err.msg);
        if (!logits_of(up, k_ids, n, b, c)) {
            CHECK(c->layer[1].n_experts == 6 && c->layer[1].expert_dim == 24);
            CHECK_MSG(rel_diff(a, b, n * V) < 1e-5, "one-expert source: %g",
                      rel_diff(a, b, n * V));
        }
    }
    free(a), free(b), free(c);
}

TEST(train_upcycle_refusals) {
    char from[600], up[600], text[2048];
    moe_err err = {{0}};
    snprintf(from, sizeof from, "%s/train/mixtral_top2", test_fixtures());
    snprintf(up, sizeof up, "%s/u1", test_tmpdir());
    CHECK(upcycle(from, up, 4, 2, 0, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "layer 0 is a mixture of 4 experts already");
    snprintf(from, sizeof from, "%s/bias", test_tmpdir());
    snprintf(text, sizeof text, DENSE_QWEN2, "true", "false");
    if (make_model(from, text, 3)) return;
    snprintf(up, sizeof up, "%s/u2", test_tmpdir());
    CHECK(upcycle(from, up, 4, 2, 0, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "cannot be written as a mixtral config.json");
    snprintf(up, sizeof up, "%s/u3", test_tmpdir());
    CHECK(upcycle(from, up, 2, 3, 0, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "top-k 3 is more than the 2 experts");
}

/* ---------------------------------------------------------- added experts */

static const float *tensor(const st_store *s, const char *name, int64_t *n) {
    const st_tensor *t = st_find(s, name);
    if (!t || t->type != DT_F32) {
        test_fail_at(__FILE__, __LINE__, "no f32 tensor %s", name);
        return NULL;
    }
    if (n) *n = t->n_elems;
    return t->data;
}

/* new[j] equals old[src] over `per` elements */
static int rows_equal(const float *a, int64_t ja, const float *b, int64_t jb, int64_t per) {
    return !memcmp(a + ja * per, b + jb * per, sizeof(float) * (size_t)per);
}

static int add(const char *variant, const char *to, int n_add, moe_err *err) {
    char from[600];
    snprintf(from, sizeof from, "%s/train/%s", test_fixtures(), variant);
    mkdir(to, 0755);
    grow_opts o = {NULL, 0, 0, from, n_add, 0, 5, 0.02f};
    return grow_write(&o, to, err);
}

static int open_pair(const char *variant, const char *to, st_store *old, st_store *grown) {
    char p[700];
    moe_err err = {{0}};
    snprintf(p, sizeof p, "%s/train/%s/model.safetensors", test_fixtures(), variant);
    if (st_open_file(old, p, &err)) return -1;
    snprintf(p, sizeof p, "%s/model.safetensors", to);
    if (st_open_file(grown, p, &err)) {
        st_close(old);
        return -1;
    }
    return 0;
}

/* Every tensor of old not named by `skip` parts is in grown bit for bit. */
static void others_equal(const st_store *old, const st_store *grown, const char *const *skip) {
    for (int i = 0; i < old->n_tensors; i++) {
        const st_tensor *t = &old->tensors[i];
        int s = 0;
        for (int k = 0; skip[k]; k++) s |= strstr(t->name, skip[k]) != NULL;
        if (s) continue;
        const st_tensor *u = st_find(grown, t->name);
        CHECK_MSG(u && u->n_elems == t->n_elems && !memcmp(u->data, t->data, (size_t)t->nbytes),
                  "%s not copied", t->name);
    }
}

TEST(train_add_experts_layout) {
    char to[600], p[700], *text = NULL;
    moe_err err = {{0}};
    st_store old, grown;
    /* mixtral: 4 + 3 experts per layer; expert 4 + i copies expert i % 4 */
    snprintf(to, sizeof to, "%s/mix", test_tmpdir());
    CHECK_MSG(add("mixtral_top2", to, 3, &err) == 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s/config.json", to);
    CHECK(read_file(p, 1 << 20, &text, NULL, &err) == 0);
    CHECK_STR_CONTAINS(text, "\"num_local_experts\": 7");
    CHECK_STR_CONTAINS(text, "\"router_aux_loss_coef\": 0.001"); /* kept as written */
    CHECK_STR_CONTAINS(text, "\"dtype\": \"float32\"");
    free(text);
    if (open_pair("mixtral_top2", to, &old, &grown) == 0) {
        for (int l = 0; l < 2; l++) {
            for (int j = 0; j < 7; j++)
                for (int w = 1; w <= 3; w++) {
                    char a[200], b[200];
                    snprintf(a, sizeof a, "model.layers.%d.block_sparse_moe.experts.%d.w%d.weight", l, j, w);
                    snprintf(b, sizeof b, "model.layers.%d.block_sparse_moe.experts.%d.w%d.weight", l, j < 4 ? j : (j - 4) % 4, w);
                    int64_t na = 0, nb = 0;
                    const float *x = tensor(&grown, a, &na), *y = tensor(&old, b, &nb);
                    CHECK_MSG(x && y && na == nb && rows_equal(x, 0, y, 0, na), "%s is not %s", a, b);
                }
            char r[200];
            snprintf(r, sizeof r, "model.layers.%d.block_sparse_moe.gate.weight", l);
            int64_t ng = 0, no = 0;
            const float *g = tensor(&grown, r, &ng), *o = tensor(&old, r, &no);
            CHECK(g && o && ng == 7 * 32 && no == 4 * 32);
            if (g && o) {
                CHECK(rows_equal(g, 0, o, 0, no));
                for (int64_t i = no; i < ng; i++) CHECK_MSG(g[i] == 0, "new router row %lld", (long long)i);
            }
        }
        const char *skip[] = {"block_sparse_moe", NULL};
        others_equal(&old, &grown, skip);
        st_close(&old);
        st_close(&grown);
    }
    /* qwen2_moe: a shared expert and its gate copied, the dense layer kept */
    snprintf(to, sizeof to, "%s/qwen", test_tmpdir());
    CHECK_MSG(add("qwen2_shared", to, 2, &err) == 0, "%s", err.msg);
    if (open_pair("qwen2_shared", to, &old, &grown) == 0) {
        int64_t n = 0;
        CHECK(tensor(&grown, "model.layers.0.mlp.experts.5.up_proj.weight", &n) && n == 16 * 32);
        CHECK(!st_find(&grown, "model.layers.0.mlp.experts.6.up_proj.weight"));
        CHECK(tensor(&grown, "model.layers.0.mlp.gate.weight", &n) && n == 6 * 32);
        const char *skip[] = {"mlp.experts.", "mlp.gate.weight", NULL};
        others_equal(&old, &grown, skip); /* shared expert, its gate, layer 1's dense FFN */
        st_close(&old);
        st_close(&grown);
    }
    /* gpt_oss: stacked [E][...] expert tensors and router bias grow by planes */
    snprintf(to, sizeof to, "%s/oss", test_tmpdir());
    CHECK_MSG(add("gpt_oss", to, 2, &err) == 0, "%s", err.msg);
    if (open_pair("gpt_oss", to, &old, &grown) == 0) {
        const char *names[] = {"experts.gate_up_proj", "experts.gate_up_proj_bias", "experts.down_proj",
                               "experts.down_proj_bias", "router.weight", "router.bias"};
        for (int k = 0; k < 6; k++) {
            char nm[200];
            snprintf(nm, sizeof nm, "model.layers.1.mlp.%s", names[k]);
            int64_t ng = 0, no = 0;
            const float *g = tensor(&grown, nm, &ng), *o = tensor(&old, nm, &no);
            if (!g || !o) continue;
            int64_t per = no / 4;
            CHECK_MSG(ng == per * 6, "%s: %lld elements", nm, (long long)ng);
            CHECK(rows_equal(g, 0, o, 0, 4 * per));
            int router = k >= 4;
            for (int j = 4; j < 6; j++) {
                if (router) {
                    for (int64_t i = 0; i < per; i++) CHECK(g[j * per + i] == 0);
                } else {
                    CHECK_MSG(rows_equal(g, j, o, j - 4, per), "%s plane %d", nm, j);
                }
            }
        }
        const char *skip[] = {"mlp.experts", "mlp.router", NULL};
        others_equal(&old, &grown, skip);
        st_close(&old);
        st_close(&grown);
    }
    /* nothing to add to */
    char dense[600], txt[2048];
    snprintf(dense, sizeof dense, "%s/dense", test_tmpdir());
    snprintf(txt, sizeof txt, DENSE_QWEN2, "false", "false");
    if (!make_model(dense, txt, 2)) {
        snprintf(to, sizeof to, "%s/none", test_tmpdir());
        mkdir(to, 0755);
        grow_opts o = {NULL, 0, 0, dense, 2, 0, 5, 0.02f};
        CHECK(grow_write(&o, to, &err) != 0);
        CHECK_STR_CONTAINS(err.msg, "no MoE layer to add experts to");
    }
}
