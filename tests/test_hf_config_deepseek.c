/*
 * test_hf_config_deepseek.c - config.json of deepseek_v2, deepseek_v3,
 * kimi_k2 and glm4_moe: the released checkpoints' configs (typed after
 * DeepSeek-V3, Kimi-K2, DeepSeek-V2-Lite and GLM-4.5-Air) give the sizes and
 * switches transformers 5.23 computes with; the transformers-5 spelling
 * (rope_parameters) reads the same as the released one (rope_theta and
 * rope_scaling at the top level); what we cannot run is refused by name;
 * what hf_config_write writes reads back as the same moe_config.
 */
#include "test.h"
#include "formats/hf_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static moe_config g_a, g_b;

static int parse_into(moe_config *c, const char *json, moe_err *err) {
    memset(err, 0, sizeof *err);
    return hf_config_parse(c, json, strlen(json), "cfg.json", err);
}

#define PARSE_OK(c, j)                                                          \
    do {                                                                        \
        moe_err e_;                                                             \
        int rc_ = parse_into(c, j, &e_);                                        \
        CHECK_MSG(rc_ == 0, "line %d: %s", __LINE__, e_.msg);                   \
        if (rc_) return;                                                        \
    } while (0)

static void parse_bad(const char *json, const char *needle, int line) {
    moe_err err;
    int rc = parse_into(&g_b, json, &err);
    CHECK_MSG(rc == -1, "line %d: accepted a bad config (wanted \"%s\")", line, needle);
    if (rc == -1)
        CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: \"%s\" does not contain \"%s\"", line,
                  err.msg, needle);
}
#define PARSE_BAD(j, needle) parse_bad(j, needle, __LINE__)

/* DeepSeek-V3's config.json as released (rope_scaling at the top level). */
#define DS3_BODY                                                                                   \
    "\"hidden_size\": 7168, \"intermediate_size\": 18432, \"moe_intermediate_size\": 2048, "     \
    "\"num_hidden_layers\": 61, \"num_attention_heads\": 128, \"num_key_value_heads\": 128, "    \
    "\"n_shared_experts\": 1, \"n_routed_experts\": 256, \"routed_scaling_factor\": 2.5, "        \
    "\"kv_lora_rank\": 512, \"q_lora_rank\": 1536, \"qk_rope_head_dim\": 64, "                    \
    "\"v_head_dim\": 128, \"qk_nope_head_dim\": 128, \"topk_method\": \"noaux_tc\", "             \
    "\"n_group\": 8, \"topk_group\": 4, \"num_experts_per_tok\": 8, \"moe_layer_freq\": 1, "      \
    "\"first_k_dense_replace\": 3, \"norm_topk_prob\": true, \"scoring_func\": \"sigmoid\", "     \
    "\"num_nextn_predict_layers\": 1, \"vocab_size\": 129280, \"rms_norm_eps\": 1e-06, "          \
    "\"max_position_embeddings\": 163840, \"bos_token_id\": 0, \"eos_token_id\": 1, "             \
    "\"tie_word_embeddings\": false, \"attention_bias\": false"
#define DS3_ROPE_OLD                                                                               \
    "\"rope_theta\": 10000, \"rope_scaling\": {\"beta_fast\": 32, \"beta_slow\": 1, "             \
    "\"factor\": 40, \"mscale\": 1.0, \"mscale_all_dim\": 1.0, "                                  \
    "\"original_max_position_embeddings\": 4096, \"type\": \"yarn\"}"
#define DS3_ROPE_NEW                                                                               \
    "\"rope_parameters\": {\"beta_fast\": 32, \"beta_slow\": 1, \"factor\": 40, "                 \
    "\"mscale\": 1.0, \"mscale_all_dim\": 1.0, \"original_max_position_embeddings\": 4096, "      \
    "\"rope_type\": \"yarn\", \"rope_theta\": 10000.0}"

TEST(hf_config_deepseek_v3_released) {
    PARSE_OK(&g_a, "{\"model_type\": \"deepseek_v3\", " DS3_BODY ", " DS3_ROPE_OLD "}");
    const moe_config *c = &g_a;
    CHECK_EQ_INT(c->arch, MOE_ARCH_DEEPSEEK_V3);
    CHECK_EQ_INT(c->q_lora_rank, 1536);
    CHECK_EQ_INT(c->kv_lora_rank, 512);
    CHECK_EQ_INT(c->head_dim, 192);
    CHECK_EQ_INT(c->rope_dim, 64);
    CHECK_EQ_INT(c->v_head_dim, 128);
    CHECK_EQ_INT(c->rope_interleave, 1);
    CHECK_EQ_INT(c->rope_kind, MOE_ROPE_YARN);
    CHECK_EQ_INT(c->n_mtp_layers, 1);
    double m = 0.1 * log(40.0) + 1.0; /* mscale(40, mscale_all_dim 1) */
    CHECK_NEAR(c->attn_scale, m * m / sqrt(192.0), 1e-6);
    CHECK_NEAR(c->rope_attn_factor, 1.0, 1e-6); /* mscale / mscale_all_dim */
    for (int i = 0; i < 3; i++) CHECK(!c->layer[i].moe && c->layer[i].ffn_dim == 18432);
    const moe_layer_config *l = &c->layer[3];
    CHECK(l->moe && l->n_experts == 256 && l->top_k == 8 && l->expert_dim == 2048);
    CHECK(l->score == MOE_SCORE_SIGMOID && l->select_bias && l->norm_topk);
    CHECK(l->group == MOE_GROUP_TOP2_SUM && l->n_group == 8 && l->topk_group == 4);
    CHECK(l->n_shared == 1 && l->shared_dim == 2048 && !l->shared_gate);
    CHECK_NEAR(l->routed_scale, 2.5, 1e-6);
    CHECK(c->layer[60].moe);

    /* transformers 5's spelling reads the same */
    PARSE_OK(&g_b, "{\"model_type\": \"deepseek_v3\", " DS3_BODY ", " DS3_ROPE_NEW "}");
    CHECK(memcmp(&g_a, &g_b, sizeof g_a) == 0);
}

TEST(hf_config_kimi_k2_is_deepseek_v3) {
    /* Kimi-K2: model_type kimi_k2, one group, 384 experts, 64 heads */
    PARSE_OK(&g_a, "{\"model_type\": \"kimi_k2\", \"hidden_size\": 7168, "
                   "\"intermediate_size\": 18432, \"moe_intermediate_size\": 2048, "
                   "\"num_hidden_layers\": 61, \"num_attention_heads\": 64, "
                   "\"num_key_value_heads\": 64, \"n_shared_experts\": 1, "
                   "\"n_routed_experts\": 384, \"routed_scaling_factor\": 2.827, "
                   "\"kv_lora_rank\": 512, \"q_lora_rank\": 1536, \"qk_rope_head_dim\": 64, "
                   "\"v_head_dim\": 128, \"qk_nope_head_dim\": 128, \"n_group\": 1, "
                   "\"topk_group\": 1, \"num_experts_per_tok\": 8, \"first_k_dense_replace\": 1, "
                   "\"norm_topk_prob\": true, \"vocab_size\": 163840, "
                   "\"num_nextn_predict_layers\": 0, \"rope_theta\": 50000.0, "
                   "\"rope_scaling\": {\"beta_fast\": 1.0, \"beta_slow\": 1.0, \"factor\": 32.0, "
                   "\"mscale\": 1.0, \"mscale_all_dim\": 1.0, "
                   "\"original_max_position_embeddings\": 4096, \"type\": \"yarn\"}}");
    CHECK_EQ_INT(g_a.arch, MOE_ARCH_DEEPSEEK_V3);
    CHECK(!strcmp(g_a.model_type, "kimi_k2"));
    CHECK(!g_a.layer[0].moe && g_a.layer[1].moe);
    CHECK(g_a.layer[1].n_experts == 384 && g_a.layer[1].group == MOE_GROUP_NONE);
    CHECK_EQ_INT(g_a.n_mtp_layers, 0);
    CHECK_NEAR(g_a.layer[1].routed_scale, 2.827, 1e-6);
}

TEST(hf_config_deepseek_v2_lite) {
    PARSE_OK(&g_a, "{\"model_type\": \"deepseek_v2\", \"hidden_size\": 2048, "
                   "\"intermediate_size\": 10944, \"moe_intermediate_size\": 1408, "
                   "\"num_hidden_layers\": 27, \"num_attention_heads\": 16, "
                   "\"num_key_value_heads\": 16, \"n_shared_experts\": 2, "
                   "\"n_routed_experts\": 64, \"routed_scaling_factor\": 1.0, "
                   "\"kv_lora_rank\": 512, \"q_lora_rank\": null, \"qk_rope_head_dim\": 64, "
                   "\"v_head_dim\": 128, \"qk_nope_head_dim\": 128, \"topk_method\": \"greedy\", "
                   "\"n_group\": 1, \"topk_group\": 1, \"num_experts_per_tok\": 6, "
                   "\"moe_layer_freq\": 1, \"first_k_dense_replace\": 1, "
                   "\"norm_topk_prob\": false, \"scoring_func\": \"softmax\", "
                   "\"vocab_size\": 102400, \"rope_theta\": 10000, \"rope_scaling\": "
                   "{\"beta_fast\": 32, \"beta_slow\": 1, \"factor\": 40, \"mscale\": 0.707, "
                   "\"mscale_all_dim\": 0.707, \"original_max_position_embeddings\": 4096, "
                   "\"type\": \"yarn\"}}");
    CHECK_EQ_INT(g_a.arch, MOE_ARCH_DEEPSEEK_V2);
    CHECK_EQ_INT(g_a.q_lora_rank, 0);
    CHECK_EQ_INT(g_a.rope_interleave, 1);
    const moe_layer_config *l = &g_a.layer[1];
    CHECK(!g_a.layer[0].moe && g_a.layer[0].ffn_dim == 10944);
    CHECK(l->score == MOE_SCORE_SOFTMAX && !l->norm_topk && !l->select_bias);
    CHECK(l->group == MOE_GROUP_NONE && l->top_k == 6 && l->shared_dim == 2 * 1408);
    double m = 0.1 * 0.707 * log(40.0) + 1.0;
    CHECK_NEAR(g_a.attn_scale, m * m / sqrt(192.0), 1e-6);
}

TEST(hf_config_glm4_5_air) {
    PARSE_OK(&g_a, "{\"model_type\": \"glm4_moe\", \"hidden_size\": 4096, \"head_dim\": 128, "
                   "\"intermediate_size\": 10944, \"moe_intermediate_size\": 1408, "
                   "\"num_hidden_layers\": 46, \"num_attention_heads\": 96, "
                   "\"num_key_value_heads\": 8, \"n_shared_experts\": 1, "
                   "\"n_routed_experts\": 128, \"routed_scaling_factor\": 1.0, \"n_group\": 1, "
                   "\"topk_group\": 1, \"num_experts_per_tok\": 8, \"first_k_dense_replace\": 1, "
                   "\"norm_topk_prob\": true, \"attention_bias\": true, \"use_qk_norm\": false, "
                   "\"partial_rotary_factor\": 0.5, \"rope_theta\": 1000000, "
                   "\"num_nextn_predict_layers\": 1, \"vocab_size\": 151552, "
                   "\"max_position_embeddings\": 131072, \"rms_norm_eps\": 1e-05}");
    CHECK_EQ_INT(g_a.arch, MOE_ARCH_GLM4_MOE);
    CHECK(g_a.head_dim == 128 && g_a.rope_dim == 64 && g_a.n_kv_heads == 8);
    CHECK(g_a.qkv_bias == 1 && g_a.o_bias == 0 && g_a.qk_norm == MOE_QKNORM_NONE);
    CHECK(g_a.kv_lora_rank == 0 && g_a.n_mtp_layers == 1);
    CHECK(!g_a.layer[0].moe && g_a.layer[1].moe && g_a.layer[1].select_bias);
    CHECK(g_a.layer[1].score == MOE_SCORE_SIGMOID && g_a.layer[1].group == MOE_GROUP_NONE);
    /* partial_rotary_factor inside rope_parameters (transformers 5) */
    PARSE_OK(&g_b, "{\"model_type\": \"glm4_moe\", \"hidden_size\": 64, \"head_dim\": 16, "
                   "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                   "\"num_hidden_layers\": 2, \"use_qk_norm\": true, \"rope_parameters\": "
                   "{\"rope_type\": \"default\", \"rope_theta\": 10000.0, "
                   "\"partial_rotary_factor\": 0.25}}");
    CHECK(g_b.rope_dim == 4 && g_b.qk_norm == MOE_QKNORM_HEAD);
}

TEST(hf_config_deepseek_refusals) {
    char buf[4096];
    /* the first of two equal keys counts: the change goes before the body */
#define DS3(extra) (snprintf(buf, sizeof buf, "{\"model_type\": \"deepseek_v3\", %s, %s, " \
                             DS3_ROPE_NEW "}", extra, DS3_BODY), buf)
    PARSE_BAD(DS3("\"moe_layer_freq\": 2"), "moe_layer_freq");
    PARSE_BAD(DS3("\"attention_bias\": true"), "attention_bias");
    PARSE_BAD(DS3("\"n_group\": 3"), "do not divide");
    PARSE_BAD(DS3("\"topk_group\": 9"), "topk_group");
    PARSE_BAD(DS3("\"num_experts_per_tok\": 65, \"topk_group\": 2"), "num_experts_per_tok");
    PARSE_BAD(DS3("\"qk_rope_head_dim\": 63"), "odd");
    PARSE_BAD(DS3("\"moe\": {}"), "field moe");
#undef DS3
    PARSE_BAD("{\"model_type\": \"deepseek_v2\", \"topk_method\": \"noaux_tc\", "
              "\"num_experts_per_tok\": 2}", "topk_method");
    PARSE_BAD("{\"model_type\": \"deepseek_v2\", \"topk_method\": \"group_limited_greedy\", "
              "\"num_experts_per_tok\": 2}", "n_group"); /* its groups must be given */
    PARSE_BAD("{\"model_type\": \"deepseek_v2\"}", "num_experts_per_tok"); /* None by default */
    PARSE_BAD("{\"model_type\": \"glm4_moe\", \"partial_rotary_factor\": 0.01}",
              "partial_rotary_factor");
}

/* config.json written back (hf_config_write checks the re-read itself) and
 * loaded again: the same description, field for field. */
static void roundtrip(const char *json, int line) {
    moe_err err = {{0}};
    if (parse_into(&g_a, json, &err)) {
        CHECK_MSG(0, "line %d: %s", line, err.msg);
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
    int rc = hf_config_write(&g_a, path, "bfloat16", &err);
    CHECK_MSG(rc == 0, "line %d: write: %s", line, err.msg);
    if (rc) return;
    rc = hf_config_load(&g_b, test_tmpdir(), &err);
    CHECK_MSG(rc == 0, "line %d: load: %s", line, err.msg);
    if (rc) return;
    if (!strcmp(g_a.model_type, "kimi_k2")) /* written as its architecture */
        snprintf(g_a.model_type, sizeof g_a.model_type, "deepseek_v3");
    CHECK_MSG(memcmp(&g_a, &g_b, sizeof g_a) == 0, "line %d: read back differs", line);
}

TEST(hf_config_deepseek_write_roundtrip) {
    roundtrip("{\"model_type\": \"deepseek_v3\", " DS3_BODY ", " DS3_ROPE_OLD "}", __LINE__);
    char buf[4096];
    snprintf(buf, sizeof buf, "{\"model_type\": \"kimi_k2\", \"n_group\": 1, \"topk_group\": 1, "
             "\"q_lora_rank\": null, \"rope_interleave\": false, \"num_nextn_predict_layers\": 0, "
             "%s, \"rope_theta\": 50000.0}", DS3_BODY);
    roundtrip(buf, __LINE__);
    roundtrip("{\"model_type\": \"deepseek_v2\", \"num_experts_per_tok\": 6, \"n_group\": 8, "
              "\"topk_group\": 3, \"topk_method\": \"group_limited_greedy\", \"q_lora_rank\": null, "
              "\"n_routed_experts\": 64, \"rope_theta\": 10000, \"rope_scaling\": {\"factor\": 40, "
              "\"mscale\": 0.707, \"mscale_all_dim\": 0.707, \"original_max_position_embeddings\": "
              "4096, \"type\": \"yarn\"}}", __LINE__);
    roundtrip("{\"model_type\": \"glm4_moe\", \"head_dim\": 128, \"attention_bias\": true, "
              "\"use_qk_norm\": true, \"n_group\": 4, \"topk_group\": 2, "
              "\"partial_rotary_factor\": 0.25, \"routed_scaling_factor\": 1.5}", __LINE__);
}

/* The group-limited routing of deepseek in other layouts, through our "moe"
 * object (what the trainer's reference for groups uses): parsed, validated,
 * written back. */
TEST(hf_config_moe_groups) {
    PARSE_OK(&g_a, "{\"model_type\": \"mixtral\", \"num_local_experts\": 8, \"moe\": {\"score\": "
                   "\"sigmoid\", \"select_bias\": true, \"group\": \"top2_sum\", \"n_group\": 4, "
                   "\"topk_group\": 2}}");
    const moe_layer_config *l = &g_a.layer[0];
    CHECK(l->group == MOE_GROUP_TOP2_SUM && l->n_group == 4 && l->topk_group == 2);
    CHECK(l->score == MOE_SCORE_SIGMOID && l->select_bias == 1);
    roundtrip("{\"model_type\": \"mixtral\", \"num_local_experts\": 8, \"moe\": {\"score\": "
              "\"sigmoid\", \"select_bias\": true, \"group\": \"top2_sum\", \"n_group\": 4, "
              "\"topk_group\": 2}}", __LINE__);
    roundtrip("{\"model_type\": \"qwen3_moe\", \"num_experts\": 8, \"num_experts_per_tok\": 2, "
              "\"moe\": {\"group\": \"max\", \"n_group\": 2, \"topk_group\": 1}}", __LINE__);
#define MX(moe) "{\"model_type\": \"mixtral\", \"num_local_experts\": 8, \"moe\": {" moe "}}"
    PARSE_BAD(MX("\"group\": \"top2\", \"n_group\": 4, \"topk_group\": 2"), "moe.group");
    PARSE_BAD(MX("\"group\": \"max\", \"n_group\": 4"), "moe.topk_group: missing");
    PARSE_BAD(MX("\"n_group\": 4, \"topk_group\": 2"), "moe.n_group: given without moe.group");
    PARSE_BAD(MX("\"group\": \"max\", \"n_group\": 2.5, \"topk_group\": 1"), "moe.n_group");
    PARSE_BAD(MX("\"group\": \"max\", \"n_group\": 3, \"topk_group\": 1"), "does not divide");
    PARSE_BAD(MX("\"group\": \"max\", \"n_group\": 4, \"topk_group\": 5"), "topk_group");
    PARSE_BAD(MX("\"group\": \"max\", \"n_group\": 8, \"topk_group\": 1"), "top_k");
#undef MX
}
