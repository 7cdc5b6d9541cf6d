/*
 * test_gguf_qwen35moe.c - llama.cpp's qwen35moe GGUF files (Qwen3.5-MoE:
 * model_gguf.c's gconfig_qwen35moe, the qwen3_5_moe rows of tensor_map.c)
 * against the safetensors models they were converted from
 * (tests/fixtures/gguf_models/qwen3_5_moe*.gguf, made by llama.cpp's
 * converter, tools/gen_gguf_fixtures.sh):
 *   - qwen3_5_moe_f32 (2 key heads / 4 value heads: the converter tiles the
 *     value heads, the forward reads them so, lin_v_tiled): the config field
 *     for field and the logits within f32 rounding (ssm_out's columns, in
 *     the tiled order, are summed in another order than transformers');
 *     qwen3_5_moe_text_f32 (one value head per key head): bit for bit;
 *   - GGUF -> HF: the heads grouped again, the logits of the written
 *     directory bit for bit those of the directory the GGUF came from;
 *   - Q8_0: within a KL bound;
 *   - bad files: ssm_beta / ssm_alpha / attn_qkv missing or mis-shaped,
 *     rope.dimension_sections missing or malformed, refused with the
 *     tensor or key named.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "moe.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model/quantize.h"
#include "test.h"
#include "test_util.h"

#define NTOK 12
static const int32_t k_ids[NTOK] = {1, 5, 17, 3, 99, 42, 7, 0, 127, 64, 23, 11};

static void fixture(char *buf, size_t n, const char *sub, const char *name) {
    snprintf(buf, n, "%s/%s/%s", test_fixtures(), sub, name);
}

/* logits of the two models: equal bit for bit (tol 0) or within tol of the largest */
static void same_logits(const char *a_path, const char *b_path, double tol) {
    int V1 = 0, V2 = 0;
    float *a = test_model_logits(a_path, k_ids, NTOK, &V1);
    float *b = test_model_logits(b_path, k_ids, NTOK, &V2);
    CHECK(a && b && V1 == V2);
    if (a && b && V1 == V2) {
        double e = test_rel_err(b, a, NTOK * V1);
        if (tol == 0)
            CHECK_MSG(!memcmp(a, b, sizeof(float) * NTOK * (size_t)V1),
                      "%s vs %s: logits differ (%.3g)", a_path, b_path, e);
        else
            CHECK_MSG(e <= tol, "%s vs %s: logits differ by %.3g (> %.3g)", a_path, b_path, e, tol);
    }
    free(a);
    free(b);
}

static void same_config(const char *st, const char *gg) {
    moe_model *m1 = NULL, *m2 = NULL;
    moe_err err = {{0}};
    CHECK_MSG(!moe_model_load(&m1, st, &err) && !moe_model_load(&m2, gg, &err), "%s", err.msg);
    if (m1 && m2) {
        const moe_config *x = moe_model_config(m1), *y = moe_model_config(m2);
        CHECK_EQ_INT(x->arch, y->arch);
        CHECK_EQ_INT(x->head_dim, y->head_dim);
        CHECK_EQ_INT(x->rope_dim, y->rope_dim);
        CHECK_EQ_INT(x->attn_out_gate, y->attn_out_gate);
        CHECK_EQ_INT(x->norm_offset, y->norm_offset);
        CHECK_EQ_INT(x->qk_norm, y->qk_norm);
        CHECK_EQ_INT(x->lin_k_heads, y->lin_k_heads);
        CHECK_EQ_INT(x->lin_v_heads, y->lin_v_heads);
        CHECK_EQ_INT(x->lin_k_dim, y->lin_k_dim);
        CHECK_EQ_INT(x->lin_v_dim, y->lin_v_dim);
        CHECK_EQ_INT(x->lin_conv, y->lin_conv);
        CHECK(!memcmp(x->rope_sections, y->rope_sections, sizeof x->rope_sections));
        CHECK_EQ_INT(x->lin_v_tiled, 0); /* transformers' order */
        CHECK_EQ_INT(y->lin_v_tiled, 1); /* the converter's */
        for (int i = 0; i < x->n_layers; i++) {
            const moe_layer_config *p = &x->layer[i], *q = &y->layer[i];
            CHECK(p->linear_attn == q->linear_attn && p->moe == q->moe &&
                  p->n_experts == q->n_experts && p->top_k == q->top_k &&
                  p->expert_dim == q->expert_dim && p->shared_dim == q->shared_dim &&
                  p->shared_gate == q->shared_gate && p->norm_topk == q->norm_topk);
        }
    }
    moe_model_free(m1);
    moe_model_free(m2);
}

TEST(gguf_qwen3_5_moe_f32) {
    char st[512], gg[512];
    fixture(st, sizeof st, "models", "qwen3_5_moe_vl");
    fixture(gg, sizeof gg, "gguf_models", "qwen3_5_moe_f32.gguf");
    same_config(st, gg);
    same_logits(st, gg, 1e-5);
    moe_model *m = NULL;
    moe_err err = {{0}};
    if (!moe_model_load(&m, gg, &err)) {
        static const int want[4] = {2, 1, 1, 0}; /* mrope_section [2, 1, 1] */
        CHECK(!memcmp(moe_model_config(m)->rope_sections, want, sizeof want));
    }
    moe_model_free(m);
    fixture(st, sizeof st, "models", "qwen3_5_moe_text");
    fixture(gg, sizeof gg, "gguf_models", "qwen3_5_moe_text_f32.gguf");
    same_config(st, gg);
    same_logits(st, gg, 0);
}

/* Q8_0 rounds the activations of every product too (see
 * test_gguf_qwen3next.c). Measured: KL mean 0.0038, max 0.011 nats; a
 * mis-mapped value head gives several nats. */
TEST(gguf_qwen3_5_moe_q8_0) {
    char st[512], gg[512];
    fixture(st, sizeof st, "models", "qwen3_5_moe_vl");
    fixture(gg, sizeof gg, "gguf_models", "qwen3_5_moe_q8_0.gguf");
    int V1 = 0, V2 = 0;
    float *a = test_model_logits(st, k_ids, NTOK, &V1), *b = test_model_logits(gg, k_ids, NTOK, &V2);
    CHECK(a && b && V1 == V2);
    if (a && b && V1 == V2) {
        double mean, mx;
        test_logits_kl(a, b, NTOK, V1, &mean, &mx);
        if (getenv("MOE_TEST_VERBOSE")) fprintf(stderr, "qwen35moe q8_0: KL mean %.3g max %.3g\n", mean, mx);
        CHECK_MSG(mean <= 0.05 && mx <= 0.3, "KL mean %.3g max %.3g", mean, mx);
    }
    free(a);
    free(b);
}

/* GGUF -> HF: the written directory runs as the one the GGUF came from, bit
 * for bit (value heads grouped again, A_log = log(-ssm_a), norms - 1, the
 * sections back as mrope_section) */
TEST(gguf_qwen3_5_moe_to_hf) {
    char st[512], gg[512], dir[600], cj[700];
    fixture(st, sizeof st, "models", "qwen3_5_moe_vl");
    fixture(gg, sizeof gg, "gguf_models", "qwen3_5_moe_f32.gguf");
    snprintf(dir, sizeof dir, "%s/hf-qwen35moe", test_tmpdir());
    CHECK(mkdir(dir, 0755) == 0);
    moe_model *m = NULL;
    moe_err err = {{0}};
    if (moe_model_load(&m, gg, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    qz_write_opts wo = {0};
    CHECK_MSG(qz_write_hf(m, dir, DT_F32, &wo, &err) == 0, "%s", err.msg);
    moe_model_free(m);
    same_logits(st, dir, 0);
    snprintf(cj, sizeof cj, "%s/config.json", dir);
    cJSON *j = test_load_json(cj);
    const cJSON *rp = j ? cJSON_GetObjectItemCaseSensitive(j, "rope_parameters") : NULL;
    const cJSON *ms = rp ? cJSON_GetObjectItemCaseSensitive(rp, "mrope_section") : NULL;
    CHECK_MSG(cJSON_GetArraySize(ms) == 3 && cJSON_GetArrayItem(ms, 0)->valueint == 2 &&
                  cJSON_GetArrayItem(ms, 1)->valueint == 1 &&
                  cJSON_GetArrayItem(ms, 2)->valueint == 1,
              "%s: rope_parameters.mrope_section is not [2, 1, 1]", cj);
    cJSON_Delete(j);
}

/* ------------------------------------------------------------ bad files */

static void expect_fail(const char *name, const test_gguf_edit *ed, const char *want) {
    char src[512];
    fixture(src, sizeof src, "gguf_models", "qwen3_5_moe_f32.gguf");
    test_gguf_expect_fail(src, name, ed, want);
}

TEST(gguf_qwen3_5_moe_bad_files) {
    char src[512], dst[600];
    fixture(src, sizeof src, "gguf_models", "qwen3_5_moe_f32.gguf");
    snprintf(dst, sizeof dst, "%s/q35_same.gguf", test_tmpdir());
    CHECK(test_gguf_rewrite(src, dst, &(test_gguf_edit){0}) == 0);
    moe_model *m = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_model_load(&m, dst, &err) == 0, "%s", err.msg); /* the unchanged copy loads */
    moe_model_free(m);

    /* tensors */
    expect_fail("q35_no_beta", &(test_gguf_edit){.skip_tensor = "blk.0.ssm_beta.weight"},
                "tensor blk.0.ssm_beta.weight is missing");
    expect_fail("q35_no_alpha", &(test_gguf_edit){.skip_tensor = "blk.2.ssm_alpha.weight"},
                "tensor blk.2.ssm_alpha.weight is missing");
    expect_fail("q35_no_qkv", &(test_gguf_edit){.skip_tensor = "blk.2.attn_qkv.weight"},
                "tensor blk.2.attn_qkv.weight is missing");
    expect_fail("q35_no_post", &(test_gguf_edit){.skip_tensor = "blk.3.post_attention_norm.weight"},
                "tensor blk.3.post_attention_norm.weight is missing");
    expect_fail("q35_beta_shape",
                &(test_gguf_edit){.shape_tensor = "blk.0.ssm_beta.weight", .ne0 = 16},
                "tensor blk.0.ssm_beta.weight has shape [4, 16], expected [4, 32]");
    expect_fail("q35_alpha_shape",
                &(test_gguf_edit){.shape_tensor = "blk.2.ssm_alpha.weight", .ne0 = 8},
                "tensor blk.2.ssm_alpha.weight has shape [4, 8], expected [4, 32]");
    expect_fail("q35_qkv_shape",
                &(test_gguf_edit){.shape_tensor = "blk.0.attn_qkv.weight", .ne0 = 16},
                "tensor blk.0.attn_qkv.weight has shape [80, 16], expected [80, 32]");

    /* rope.dimension_sections */
    const char *K = "qwen35moe.rope.dimension_sections";
    expect_fail("q35_no_sections", &(test_gguf_edit){.skip_key = K},
                "key qwen35moe.rope.dimension_sections is missing");
    static const int32_t three[3] = {2, 1, 1}, zero[4] = {0}, neg[4] = {2, -1, 1, 0};
    static const float fl[4] = {2, 1, 1, 0};
    expect_fail("q35_sections_len",
                &(test_gguf_edit){.over = gguf_warr(K, GGUF_VT_I32, three, 3)},
                "an array of 3 i32, expected 4 integers");
    expect_fail("q35_sections_f32",
                &(test_gguf_edit){.over = gguf_warr(K, GGUF_VT_F32, fl, 4)},
                "an array of 4 f32, expected 4 integers");
    expect_fail("q35_sections_neg",
                &(test_gguf_edit){.over = gguf_warr(K, GGUF_VT_I32, neg, 4)},
                "entry 1 is -1, out of range");
    expect_fail("q35_sections_zero",
                &(test_gguf_edit){.over = gguf_warr(K, GGUF_VT_I32, zero, 4)},
                "all four sections are 0");
    expect_fail("q35_sections_scalar", &(test_gguf_edit){.over = gguf_wu32(K, 4)},
                "qwen35moe.rope.dimension_sections");
    /* qwen3next's keys are read as there */
    expect_fail("q35_groups", &(test_gguf_edit){.over = gguf_wu32("qwen35moe.ssm.group_count", 3)},
                "value heads are not a multiple of qwen35moe.ssm.group_count 3");
}
