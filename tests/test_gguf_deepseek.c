/*
 * test_gguf_deepseek.c - llama.cpp's deepseek2 and glm4moe GGUF files, made by
 * its own converter from the tests/fixtures/models fixtures
 * (tools/gen_gguf_fixtures.sh), against the same models from safetensors:
 * F32 files give the safetensors logits within 1e-5 relative (latent
 * attention through the split attn_k_b / attn_v_b, sigmoid routing with
 * exp_probs_b, groups, shared experts, dense first layers, YaRN with the
 * yarn_log_multiplier softmax scale, partial rotary, q/k/v biases and norms),
 * a Q8_0 file within a KL bound, and the description read from the metadata
 * agrees with config.json's field by field; token by token equals the whole
 * forward on the GGUF model too.
 */
#include <math.h>
#include <stdlib.h>

#include "moe.h"
#include "test.h"
#include "test_util.h"

#define NTOK 12

static const int32_t k_ids[NTOK] = {1, 5, 17, 3, 99, 42, 7, 0, 127, 64, 23, 11};

static double rel_err(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
        if (fabs((double)b[i]) > r) r = fabs((double)b[i]);
    }
    return r > 0 ? d / r : d;
}

/* Largest KL(p_a || p_b) over the positions, in nats. */
static double kl_max(const float *a0, const float *b0, int V) {
    double mx = 0;
    for (int t = 0; t < NTOK; t++) {
        const float *a = a0 + (size_t)t * V, *b = b0 + (size_t)t * V;
        double ma = a[0], mb = b[0], sa = 0, sb = 0, kl = 0;
        for (int v = 1; v < V; v++) ma = a[v] > ma ? a[v] : ma, mb = b[v] > mb ? b[v] : mb;
        for (int v = 0; v < V; v++) sa += exp(a[v] - ma), sb += exp(b[v] - mb);
        for (int v = 0; v < V; v++) {
            double la = a[v] - ma - log(sa), lb = b[v] - mb - log(sb);
            kl += exp(la) * (la - lb);
        }
        if (kl > mx) mx = kl;
    }
    return mx;
}

/* A GGUF file carries no group rule: groups are scored as llama.cpp scores
 * them (the sum of the best two), so V2's group_limited_greedy (the best one)
 * reads as that; the tokens here pick the same groups either way. */
static int same_group_rule(int st, int gg) {
    return st == gg || (st == MOE_GROUP_MAX && gg == MOE_GROUP_TOP2_SUM);
}

static void same_config(const moe_config *x, const moe_config *y, const char *gguf) {
    CHECK_MSG(x->arch == y->arch, "%s: arch %d vs %d", gguf, x->arch, y->arch);
    CHECK(x->n_layers == y->n_layers && x->n_heads == y->n_heads && x->head_dim == y->head_dim);
    CHECK(x->n_kv_heads == y->n_kv_heads && x->qkv_bias == y->qkv_bias && x->o_bias == y->o_bias);
    CHECK(x->qk_norm == y->qk_norm && x->rope_dim == y->rope_dim);
    CHECK(x->q_lora_rank == y->q_lora_rank && x->kv_lora_rank == y->kv_lora_rank);
    CHECK(x->qk_nope_dim == y->qk_nope_dim && x->qk_rope_dim == y->qk_rope_dim);
    CHECK(x->v_head_dim == y->v_head_dim && x->rope_interleave == y->rope_interleave);
    CHECK(x->rope_kind == y->rope_kind);
    CHECK_NEAR(x->attn_scale, y->attn_scale, 1e-6);
    if (x->rope_kind == MOE_ROPE_YARN) {
        CHECK(x->rope_factor == y->rope_factor && x->rope_orig_max_pos == y->rope_orig_max_pos);
        CHECK_NEAR(x->rope_attn_factor, y->rope_attn_factor, 1e-6);
    }
    for (int i = 0; i < x->n_layers; i++) {
        const moe_layer_config *p = &x->layer[i], *q = &y->layer[i];
        CHECK_MSG(p->moe == q->moe && p->n_experts == q->n_experts && p->top_k == q->top_k &&
                      p->expert_dim == q->expert_dim && p->n_shared == q->n_shared &&
                      p->shared_dim == q->shared_dim && p->shared_gate == q->shared_gate &&
                      p->norm_topk == q->norm_topk && p->score == q->score &&
                      p->select_bias == q->select_bias && p->routed_scale == q->routed_scale &&
                      same_group_rule(p->group, q->group) && p->n_group == q->n_group &&
                      p->topk_group == q->topk_group,
                  "%s: layer %d differs from config.json's", gguf, i);
    }
}

static void check_twin(const char *fixture, const char *gguf, int q8) {
    char st[512], gg[512];
    snprintf(st, sizeof st, "%s/models/%s", test_fixtures(), fixture);
    snprintf(gg, sizeof gg, "%s/gguf_models/%s", test_fixtures(), gguf);
    int V1 = 0, V2 = 0;
    float *a = test_model_logits(st, k_ids, NTOK, &V1), *b = test_model_logits(gg, k_ids, NTOK, &V2);
    CHECK(a && b && V1 == V2);
    if (a && b && V1 == V2) {
        double r = rel_err(b, a, (size_t)NTOK * V1), kl = kl_max(a, b, V1);
        if (getenv("MOE_TEST_VERBOSE"))
            fprintf(stderr, "%s: rel err %.3g, KL max %.3g\n", gguf, r, kl);
        if (q8) CHECK_MSG(kl <= 5e-3, "%s: KL max %.3g", gguf, kl);
        else CHECK_MSG(r <= 1e-5, "%s: relative error %.3g > 1e-5", gguf, r);
    }
    moe_model *m1 = NULL, *m2 = NULL;
    moe_err err = {{0}};
    if (!moe_model_load(&m1, st, &err) && !moe_model_load(&m2, gg, &err)) {
        if (!q8) same_config(moe_model_config(m1), moe_model_config(m2), gguf);
        /* token by token == the whole forward, on the GGUF model */
        int V = moe_model_config(m2)->vocab;
        float *all = test_session_logits(m2, k_ids, NTOK, 1);
        float *one = malloc(sizeof(float) * (size_t)V);
        moe_session *s = NULL;
        moe_session_opts o = {.n_ctx = 16, .n_threads = 2};
        CHECK(moe_session_new(&s, m2, &o, &err) == 0);
        for (int t = 0; s && all && t < NTOK; t++) {
            CHECK(moe_forward(s, k_ids + t, 1, one, 0, &err) == 0);
            double e = test_rel_err(one, all + (size_t)t * V, V);
            CHECK_MSG(e <= 1e-5, "%s: token %d alone vs whole forward: %.3g", gguf, t, e);
        }
        moe_session_free(s);
        free(all);
        free(one);
    } else {
        CHECK_MSG(0, "%s: %s", gguf, err.msg);
    }
    moe_model_free(m1);
    moe_model_free(m2);
    free(a);
    free(b);
}

TEST(gguf_deepseek_v3_f32) { check_twin("deepseek_v3_base", "deepseek_v3_f32.gguf", 0); }
TEST(gguf_deepseek_v2_f32) { check_twin("deepseek_v2_bf16", "deepseek_v2_f32.gguf", 0); }
TEST(gguf_deepseek_v2_no_q_lora_f32) {
    check_twin("deepseek_v2_base", "deepseek_v2_base_f32.gguf", 0);
}
TEST(gguf_glm4_moe_f32) { check_twin("glm4_moe_base", "glm4_moe_f32.gguf", 0); }
TEST(gguf_glm4_moe_q8_0) { check_twin("glm4_moe_base", "glm4_moe_q8_0.gguf", 1); }
