/*
 * test_qwen3_5_moe.c - what qwen3_5_moe adds beyond the conformance fixtures
 * (tests/test_conformance.c holds qwen3_5_moe_vl / _text / _legacy to
 * transformers), and config.json output of both Gated DeltaNet archs:
 *   - a qwen3_5_moe config.json (text_config beside vision_config) and a
 *     bare qwen3_5_moe_text one onto the feature flags, with
 *     Qwen3_5MoeTextConfig's defaults, and every refusal;
 *   - missing, mis-shaped or mis-typed DeltaNet tensors refused by name;
 *   - hf_config_write + moe_quant_write_hf of qwen3_next and qwen3_5_moe:
 *     the config reads back the same, the model computes the same logits.
 */
#include "test.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "formats/hf_config.h"
#include "moe_quant.h"

static moe_config g_cfg, g_back;

static int parse(const char *json, moe_err *err) {
    memset(err, 0, sizeof *err);
    return hf_config_parse(&g_cfg, json, strlen(json), "cfg.json", err);
}

static void parse_bad(const char *json, const char *needle, int line) {
    moe_err err;
    int rc = parse(json, &err);
    CHECK_MSG(rc == -1, "line %d: accepted a bad config (wanted \"%s\")", line, needle);
    if (rc == -1)
        CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: \"%s\" does not contain \"%s\"", line,
                  err.msg, needle);
}
#define PARSE_BAD(j, n) parse_bad(j, n, __LINE__)
#define WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Qwen3_5MoeTextConfig() of transformers 5.23, field by field. */
static void check_text_defaults(const moe_config *c) {
    CHECK(c->arch == MOE_ARCH_QWEN3_5_MOE);
    CHECK_EQ_INT(c->vocab, 248320);
    CHECK_EQ_INT(c->dim, 2048);
    CHECK_EQ_INT(c->n_layers, 40);
    CHECK_EQ_INT(c->n_heads, 16);
    CHECK_EQ_INT(c->n_kv_heads, 2);
    CHECK_EQ_INT(c->head_dim, 256);
    CHECK_EQ_INT(c->rope_dim, 64); /* partial_rotary_factor 0.25 */
    CHECK_EQ_INT(c->max_pos, 32768);
    CHECK(c->rope_theta == 10000.0f && c->norm_eps == 1e-6f);
    CHECK(c->norm_offset == 1 && c->attn_out_gate == 1 && c->qk_norm == MOE_QKNORM_HEAD);
    CHECK(c->qkv_bias == 0 && c->o_bias == 0 && c->tied_embeddings == 0);
    CHECK(c->bos_id == -1 && c->eos_id == -1);
    CHECK_EQ_INT(c->lin_k_heads, 16);
    CHECK_EQ_INT(c->lin_v_heads, 32);
    CHECK_EQ_INT(c->lin_k_dim, 128);
    CHECK_EQ_INT(c->lin_v_dim, 128);
    CHECK_EQ_INT(c->lin_conv, 4);
    int n_lin = 0;
    for (int i = 0; i < c->n_layers; i++) {
        const moe_layer_config *l = &c->layer[i];
        CHECK_EQ_INT(l->linear_attn, (i + 1) % 4 != 0);
        n_lin += l->linear_attn;
        CHECK(l->moe && l->n_experts == 256 && l->top_k == 8 && l->expert_dim == 512);
        CHECK(l->n_shared == 1 && l->shared_gate && l->shared_dim == 512 && l->norm_topk == 1);
    }
    CHECK_EQ_INT(n_lin, 30);
}

TEST(qwen3_5_moe_config_defaults) {
    moe_err err;
    CHECK_MSG(parse("{\"model_type\": \"qwen3_5_moe\", \"text_config\": {}}", &err) == 0, "%s",
              err.msg);
    check_text_defaults(&g_cfg);
    CHECK_EQ_INT(g_cfg.vision_tower, 0);
    CHECK_MSG(parse("{\"model_type\": \"qwen3_5_moe\", \"vision_config\": {\"depth\": 27},"
                    " \"text_config\": {\"model_type\": \"qwen3_5_moe_text\"}}", &err) == 0,
              "%s", err.msg);
    check_text_defaults(&g_cfg);
    CHECK_EQ_INT(g_cfg.vision_tower, 1);
    CHECK_MSG(parse("{\"model_type\": \"qwen3_5_moe_text\"}", &err) == 0, "%s", err.msg);
    check_text_defaults(&g_cfg);
    CHECK_EQ_INT(g_cfg.vision_tower, 0);
}

TEST(qwen3_5_moe_config_fields) {
    moe_err err;
    /* qwen2_moe's feed-forward fields mean nothing here (transformers ignores
     * them: every layer sparse, the router always renormalizes) */
    CHECK_MSG(parse("{\"model_type\": \"qwen3_5_moe_text\", \"num_hidden_layers\": 3,"
                    " \"head_dim\": 16, \"norm_topk_prob\": false, \"mlp_only_layers\": [1],"
                    " \"decoder_sparse_step\": 2, \"intermediate_size\": 7,"
                    " \"layer_types\": [\"full_attention\", \"linear_attention\", \"full_attention\"],"
                    " \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1e7,"
                    " \"partial_rotary_factor\": 0.5, \"mrope_section\": [2, 1, 1],"
                    " \"mrope_interleaved\": true}}", &err) == 0, "%s", err.msg);
    for (int i = 0; i < 3; i++) CHECK(g_cfg.layer[i].moe && g_cfg.layer[i].norm_topk == 1);
    CHECK(!g_cfg.layer[0].linear_attn && g_cfg.layer[1].linear_attn && !g_cfg.layer[2].linear_attn);
    CHECK_EQ_INT(g_cfg.rope_dim, 8);
    CHECK(g_cfg.rope_theta == 1e7f);
    CHECK(g_cfg.rope_sections[0] == 2 && g_cfg.rope_sections[1] == 1 &&
          g_cfg.rope_sections[2] == 1 && g_cfg.rope_sections[3] == 0); /* kept for GGUF */
    /* the older spelling inside text_config */
    CHECK_MSG(parse("{\"model_type\": \"qwen3_5_moe\", \"text_config\": {\"head_dim\": 32,"
                    " \"num_hidden_layers\": 8, \"rope_theta\": 1000, \"partial_rotary_factor\": 0.5,"
                    " \"full_attention_interval\": 2, \"rope_scaling\": {\"rope_type\": \"default\","
                    " \"mrope_section\": [4, 4, 0], \"mrope_interleaved\": true}}}", &err) == 0,
              "%s", err.msg);
    CHECK(g_cfg.rope_theta == 1000.0f);
    CHECK_EQ_INT(g_cfg.rope_dim, 16);
    CHECK(g_cfg.rope_sections[0] == 4 && g_cfg.rope_sections[1] == 4 && g_cfg.rope_sections[2] == 0);
    for (int i = 0; i < 8; i++) CHECK_EQ_INT(g_cfg.layer[i].linear_attn, i % 2 == 0);
}

TEST(qwen3_5_moe_config_refusals) {
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe_text\", \"rope_parameters\": {\"mrope_section\": 3}}",
              "rope_parameters.mrope_section: expected 1 to 4 integers");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe_text\", \"rope_parameters\": {\"mrope_section\":"
              " [1, 2, 3, 4, 5]}}", "expected 1 to 4 integers");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe_text\", \"rope_scaling\": {\"rope_type\": \"default\","
              " \"mrope_section\": [2, -1, 1]}}", "rope_scaling.mrope_section[1]: not an integer");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe\"}", "missing field text_config");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe\", \"text_config\": [1]}", "field text_config");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe\", \"text_config\": {\"model_type\": \"qwen3_next\"}}",
              "text_config.model_type");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe\", \"vision_config\": \"big\", \"text_config\": {}}",
              "field vision_config");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe\", \"tie_word_embeddings\": true, \"text_config\": {}}",
              "tie_word_embeddings");
    /* the text model's own fields, named with where they are */
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe\", \"text_config\": {\"num_hidden_layers\": 2,"
              " \"layer_types\": [\"linear_attention\", \"mamba\"]}}", "layer_types[1]");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe\", \"text_config\": {\"num_hidden_layers\": 2,"
              " \"layer_types\": [\"linear_attention\", \"mamba\"]}}", "(text_config)");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe_text\", \"linear_num_key_heads\": 3}",
              "not a multiple of linear_num_key_heads 3");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe_text\", \"linear_key_head_dim\": 0}",
              "linear_key_head_dim");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe_text\", \"head_dim\": 4}", "partial_rotary_factor");
    /* far out of range: refused before head_dim x factor is made an int */
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe_text\", \"partial_rotary_factor\": 1e300}",
              "partial_rotary_factor");
    PARSE_BAD("{\"model_type\": \"qwen3_next\", \"partial_rotary_factor\": -1e300}",
              "partial_rotary_factor");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe_text\", \"num_experts_per_tok\": 300}",
              "num_experts_per_tok");
    PARSE_BAD("{\"model_type\": \"qwen3_5_moe_text\", \"hidden_act\": \"gelu\"}", "hidden_act");
}

/* ------------------------------------------------------ damaged files */

TEST(qwen3_5_moe_bad_tensors) {
    const char *d;
    char p[800];
#define ST(dir) (snprintf(p, sizeof p, "%s/model.safetensors", dir), p)
    if ((d = fresh_copy("qwen3_5_moe_text", "noz"))) {
        CHECK(st_rewrite(ST(d), "model.layers.1.linear_attn.in_proj_z.weight", 1, NULL, NULL, 0) == 0);
        expect_load_fail("in_proj_z missing", d, WORDS("model.layers.1.linear_attn.in_proj_z.weight"));
    }
    if ((d = fresh_copy("qwen3_5_moe_text", "qkvshape"))) { /* [56][32] as [28][64] */
        const int64_t sh[2] = {28, 64};
        CHECK(st_rewrite(ST(d), "model.layers.0.linear_attn.in_proj_qkv.weight", 0, NULL, sh, 2) == 0);
        expect_load_fail("in_proj_qkv mis-shaped", d, WORDS("in_proj_qkv.weight has shape [28, 64]"));
    }
    if ((d = fresh_copy("qwen3_5_moe_text", "bshape"))) { /* [2][32] as [4][16] */
        const int64_t sh[2] = {4, 16};
        CHECK(st_rewrite(ST(d), "model.layers.0.linear_attn.in_proj_b.weight", 0, NULL, sh, 2) == 0);
        expect_load_fail("in_proj_b mis-shaped", d, WORDS("in_proj_b.weight has shape [4, 16]"));
    }
    if ((d = fresh_copy("qwen3_5_moe_text", "convk"))) { /* [56][1][3] as [42][1][4] */
        const int64_t sh[3] = {42, 1, 4};
        CHECK(st_rewrite(ST(d), "model.layers.0.linear_attn.conv1d.weight", 0, NULL, sh, 3) == 0);
        expect_load_fail("conv1d mis-shaped", d, WORDS("conv1d.weight has shape [42, 1, 4], expected [56, 3]"));
    }
    if ((d = fresh_copy("qwen3_5_moe_vl", "noconv"))) { /* under model.language_model. */
        CHECK(st_rewrite(ST(d), "model.language_model.layers.2.linear_attn.conv1d.weight", 1, NULL,
                         NULL, 0) == 0);
        expect_load_fail("conv1d missing", d, WORDS("layers.2.linear_attn.conv1d.weight is missing "
                                                    "(nor under model.language_model.)"));
    }
    if ((d = fresh_copy("qwen3_5_moe_vl", "fusedshape"))) { /* [6][32][32] as [6][16][64] */
        const int64_t sh[3] = {6, 16, 64};
        CHECK(st_rewrite(ST(d), "model.language_model.layers.1.mlp.experts.gate_up_proj", 0, NULL, sh,
                         3) == 0);
        expect_load_fail("fused experts mis-shaped", d, WORDS("model.language_model.layers.1.mlp.experts.gate_up_proj has the wrong shape"));
    }
    if ((d = fresh_copy("qwen3_next_base", "noqkvz"))) {
        CHECK(st_rewrite(ST(d), "model.layers.2.linear_attn.in_proj_qkvz.weight", 1, NULL, NULL, 0) == 0);
        expect_load_fail("in_proj_qkvz missing", d, WORDS("model.layers.2.linear_attn.in_proj_qkvz.weight"));
    }
    if ((d = fresh_copy("qwen3_next_base", "bashape"))) { /* [8][32] as [4][64] */
        const int64_t sh[2] = {4, 64};
        CHECK(st_rewrite(ST(d), "model.layers.0.linear_attn.in_proj_ba.weight", 0, NULL, sh, 2) == 0);
        expect_load_fail("in_proj_ba mis-shaped", d, WORDS("in_proj_ba.weight has shape [4, 64]"));
    }
#undef ST
}

/* ----------------------------------------------------- writing them */

/* Fixture v written back as a Hugging Face directory (config.json +
 * model.safetensors, f32): the config reads back the same and the model
 * computes the same logits. */
static void round_trip(const char *v) {
    moe_model *m = test_load_variant(v), *back = NULL;
    if (!m) return;
    moe_err err = {{0}};
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/rt_%s", test_tmpdir(), v);
    mkdir(dir, 0755);
    moe_quant_write_opts wo = {.n_threads = 1};
    CHECK_MSG(moe_quant_write_hf(m, dir, MOE_QTYPE_F32, &wo, &err) == 0, "%s: %s", v, err.msg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_MSG(hf_config_load(&g_back, dir, &err) == 0, "%s: %s", v, err.msg);
    const moe_config *a = moe_model_config(m);
    if (!test_failed_now) {
        CHECK(g_back.arch == a->arch && g_back.n_layers == a->n_layers);
        CHECK(g_back.rope_dim == a->rope_dim && g_back.rope_theta == a->rope_theta);
        CHECK(g_back.lin_k_heads == a->lin_k_heads && g_back.lin_v_heads == a->lin_v_heads);
        CHECK(g_back.lin_k_dim == a->lin_k_dim && g_back.lin_v_dim == a->lin_v_dim);
        CHECK(g_back.lin_conv == a->lin_conv && g_back.norm_offset && g_back.attn_out_gate);
        CHECK_EQ_INT(g_back.vision_tower, 0); /* the text model is what was written */
        for (int i = 0; i < a->n_layers; i++) {
            CHECK_EQ_INT(g_back.layer[i].linear_attn, a->layer[i].linear_attn);
            CHECK_EQ_INT(g_back.layer[i].moe, a->layer[i].moe);
        }
    }
    CHECK_MSG(moe_model_load(&back, dir, &err) == 0, "%s: %s", v, err.msg);
    if (back) {
        int32_t ids[12];
        int V = a->vocab;
        for (int i = 0; i < 12; i++) ids[i] = (int32_t)((i * 37 + 11) % V);
        float *x = test_session_logits(m, ids, 12, 1), *y = test_session_logits(back, ids, 12, 1);
        if (x && y)
            CHECK_MSG(test_rel_err(y, x, 12 * V) <= 1e-6, "%s: written model: rel err %g", v,
                      test_rel_err(y, x, 12 * V));
        free(x);
        free(y);
    }
    moe_model_free(back);
    moe_model_free(m);
}

TEST(qwen3_next_written_back) {
    round_trip("qwen3_next_base");
    round_trip("qwen3_next_legacy"); /* mlp_only_layers, kernel 3, no layer_types */
    round_trip("qwen3_next_bf16");
}

TEST(qwen3_5_moe_written_back) {
    round_trip("qwen3_5_moe_vl"); /* fused experts under model.language_model. */
    round_trip("qwen3_5_moe_text");
    round_trip("qwen3_5_moe_legacy");
}

/* What config.json cannot say for qwen3_5_moe is refused when writing. */
TEST(qwen3_5_moe_write_refusals) {
    moe_err err;
    CHECK_MSG(parse("{\"model_type\": \"qwen3_5_moe_text\", \"num_hidden_layers\": 4}", &err) == 0,
              "%s", err.msg);
    char path[600];
    snprintf(path, sizeof path, "%s/q35_config.json", test_tmpdir());
    moe_config c = g_cfg;
    c.layer[1].moe = 0; /* a dense layer: every layer is MoE there */
    c.layer[1].ffn_dim = 64;
    CHECK(hf_config_write(&c, path, "bfloat16", &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "qwen3_5_moe_text");
    c = g_cfg;
    for (int i = 0; i < 4; i++) c.layer[i].norm_topk = 0; /* its router always renormalizes */
    CHECK(hf_config_write(&c, path, "bfloat16", &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "MoE layer settings");
    c = g_cfg;
    CHECK_MSG(hf_config_write(&c, path, "bfloat16", &err) == 0, "%s", err.msg);
}
