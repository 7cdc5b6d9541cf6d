/*
 * test_hf_config.c - config.json <-> moe_config: the four model types with
 * transformers' defaults (configs typed after Mixtral-8x7B, Qwen1.5-MoE-A2.7B,
 * Qwen3-30B-A3B and OLMoE-1B-7B), each switch that changes the computation,
 * every refusal (bad JSON, wrong types, out-of-range values, unsupported
 * RoPE or sliding windows), and hf_config_write round trips.
 */
#include "test.h"
#include "formats/hf_config.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

static moe_config g_cfg, g_back;

static int parse(const char *json, moe_err *err) {
    memset(err, 0, sizeof *err);
    return hf_config_parse(&g_cfg, json, strlen(json), "cfg.json", err);
}

/* Parse must succeed; reports the message if not. */
static int parse_ok(const char *json, int line) {
    moe_err err;
    int rc = parse(json, &err);
    CHECK_MSG(rc == 0, "line %d: %s", line, err.msg);
    return rc == 0;
}
#define PARSE_OK(j) parse_ok(j, __LINE__)

static void parse_bad(const char *json, const char *needle, int line) {
    moe_err err;
    int rc = parse(json, &err);
    CHECK_MSG(rc == -1, "line %d: accepted a bad config (wanted \"%s\")", line, needle);
    if (rc == -1)
        CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: \"%s\" does not contain \"%s\"", line,
                  err.msg, needle);
}
#define PARSE_BAD(j, needle) parse_bad(j, needle, __LINE__)

static int count_moe(const moe_config *c) {
    int n = 0;
    for (int i = 0; i < c->n_layers; i++) n += c->layer[i].moe;
    return n;
}

/* Write g_cfg to a config.json, load it back into g_back, compare. */
static void roundtrip(int line) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
    moe_err err = {{0}};
    int rc = hf_config_write(&g_cfg, path, "bfloat16", &err);
    CHECK_MSG(rc == 0, "line %d: write: %s", line, err.msg);
    if (rc) return;
    rc = hf_config_load(&g_back, test_tmpdir(), &err);
    CHECK_MSG(rc == 0, "line %d: load: %s", line, err.msg);
    if (rc) return;
    CHECK_MSG(!memcmp(&g_cfg, &g_back, sizeof g_cfg), "line %d: config changed in a round trip",
              line);
}
#define ROUNDTRIP() roundtrip(__LINE__)

/* ---------------------------------------------------------------- mixtral */

static const char *MIXTRAL_8X7B =
    "{\n"
    "  \"architectures\": [\"MixtralForCausalLM\"],\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 1,\n"
    "  \"eos_token_id\": 2,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 4096,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 14336,\n"
    "  \"max_position_embeddings\": 32768,\n"
    "  \"model_type\": \"mixtral\",\n"
    "  \"num_attention_heads\": 32,\n"
    "  \"num_experts_per_tok\": 2,\n"
    "  \"num_hidden_layers\": 32,\n"
    "  \"num_key_value_heads\": 8,\n"
    "  \"num_local_experts\": 8,\n"
    "  \"output_router_logits\": false,\n"
    "  \"rms_norm_eps\": 1e-05,\n"
    "  \"rope_theta\": 1000000.0,\n"
    "  \"router_aux_loss_coef\": 0.02,\n"
    "  \"sliding_window\": null,\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"transformers_version\": \"4.36.0.dev0\",\n"
    "  \"use_cache\": true,\n"
    "  \"vocab_size\": 32000\n"
    "}\n";

TEST(hf_config_mixtral_8x7b) {
    if (!PARSE_OK(MIXTRAL_8X7B)) return;
    const moe_config *c = &g_cfg;
    CHECK_EQ_INT(c->arch, MOE_ARCH_MIXTRAL);
    CHECK(!strcmp(c->model_type, "mixtral"));
    CHECK_EQ_INT(c->vocab, 32000);
    CHECK_EQ_INT(c->dim, 4096);
    CHECK_EQ_INT(c->n_layers, 32);
    CHECK_EQ_INT(c->n_heads, 32);
    CHECK_EQ_INT(c->n_kv_heads, 8);
    CHECK_EQ_INT(c->head_dim, 128);
    CHECK_EQ_INT(c->max_pos, 32768);
    CHECK(c->rope_theta == 1e6f);
    CHECK(c->norm_eps == 1e-5f);
    CHECK_EQ_INT(c->qk_norm, MOE_QKNORM_NONE);
    CHECK(!c->qkv_bias && !c->o_bias && c->clip_qkv == 0 && !c->tied_embeddings);
    CHECK_EQ_INT(c->sliding_window, 0);
    CHECK_EQ_INT(c->bos_id, 1);
    CHECK_EQ_INT(c->eos_id, 2);
    CHECK_EQ_INT(count_moe(c), 32);
    const moe_layer_config *l = &c->layer[31];
    CHECK(l->n_experts == 8 && l->top_k == 2 && l->expert_dim == 14336);
    CHECK(l->n_shared == 0 && l->norm_topk == 1 && l->score == MOE_SCORE_SOFTMAX);
    CHECK(l->routed_scale == 1.0f && l->kind == MOE_ROUTE_TOKEN_CHOICE);
    CHECK(l->capacity_factor == 0 && l->noise == 0 && !l->select_bias);
    CHECK_EQ_INT(c->layer[32].moe, 0); /* beyond n_layers: zero */
    ROUNDTRIP();
}

TEST(hf_config_mixtral_defaults_and_switches) {
    if (!PARSE_OK("{\"model_type\": \"mixtral\"}")) return;
    moe_config *c = &g_cfg;
    CHECK(c->vocab == 32000 && c->dim == 4096 && c->n_layers == 32 && c->n_heads == 32);
    CHECK(c->n_kv_heads == 8 && c->head_dim == 128 && c->max_pos == 131072);
    CHECK(c->rope_theta == 1e6f && c->norm_eps == 1e-5f && c->bos_id == 1 && c->eos_id == 2);
    CHECK(c->layer[0].n_experts == 8 && c->layer[0].top_k == 2 && c->layer[0].expert_dim == 14336);

    /* head_dim: explicit, null or 0 (= hidden / heads); sliding window. */
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"hidden_size\": 64, \"num_attention_heads\": 4,"
                 " \"num_key_value_heads\": 4, \"head_dim\": 32, \"sliding_window\": 4096,"
                 " \"num_hidden_layers\": 2, \"tie_word_embeddings\": true}")) {
        CHECK(c->head_dim == 32 && c->n_kv_heads == 4 && c->sliding_window == 4096);
        CHECK(c->tied_embeddings == 1 && c->n_layers == 2);
        ROUNDTRIP();
    }
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"hidden_size\": 64, \"num_attention_heads\": 4,"
                 " \"num_key_value_heads\": 2, \"head_dim\": 0}"))
        CHECK_EQ_INT(c->head_dim, 16);
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"head_dim\": null}")) CHECK_EQ_INT(c->head_dim, 128);
    /* num_experts is an alias of num_local_experts and wins (attribute_map). */
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"num_local_experts\": 4, \"num_experts\": 6}"))
        CHECK_EQ_INT(c->layer[0].n_experts, 6);
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"num_local_experts\": 4}"))
        CHECK_EQ_INT(c->layer[0].n_experts, 4);
    /* num_key_value_heads: int in MixtralConfig, null refused (transformers does too). */
    PARSE_BAD("{\"model_type\": \"mixtral\", \"num_key_value_heads\": null}",
              "num_key_value_heads: is null");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"sliding_window\": 0}", "sliding_window");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"num_local_experts\": 0}", "must be positive");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"num_local_experts\": 1}", "num_experts_per_tok");
}

/* -------------------------------------------------------------- qwen2_moe */

static const char *QWEN15_MOE =
    "{\n"
    "  \"architectures\": [\"Qwen2MoeForCausalLM\"],\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 151643,\n"
    "  \"eos_token_id\": 151643,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 2048,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 5632,\n"
    "  \"max_position_embeddings\": 8192,\n"
    "  \"max_window_layers\": 21,\n"
    "  \"model_type\": \"qwen2_moe\",\n"
    "  \"num_attention_heads\": 16,\n"
    "  \"num_hidden_layers\": 24,\n"
    "  \"num_key_value_heads\": 16,\n"
    "  \"rms_norm_eps\": 1e-06,\n"
    "  \"rope_theta\": 1000000.0,\n"
    "  \"sliding_window\": 32768,\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"transformers_version\": \"4.39.0.dev0\",\n"
    "  \"use_cache\": true,\n"
    "  \"use_sliding_window\": false,\n"
    "  \"vocab_size\": 151936,\n"
    "  \"decoder_sparse_step\": 1,\n"
    "  \"moe_intermediate_size\": 1408,\n"
    "  \"shared_expert_intermediate_size\": 5632,\n"
    "  \"num_experts_per_tok\": 4,\n"
    "  \"num_experts\": 60,\n"
    "  \"norm_topk_prob\": false,\n"
    "  \"output_router_logits\": false,\n"
    "  \"router_aux_loss_coef\": 0.001\n"
    "}\n";

TEST(hf_config_qwen15_moe) {
    if (!PARSE_OK(QWEN15_MOE)) return;
    const moe_config *c = &g_cfg;
    CHECK_EQ_INT(c->arch, MOE_ARCH_QWEN2_MOE);
    CHECK(c->vocab == 151936 && c->dim == 2048 && c->n_layers == 24 && c->n_heads == 16);
    CHECK(c->n_kv_heads == 16 && c->head_dim == 128 && c->max_pos == 8192);
    CHECK(c->rope_theta == 1e6f && c->norm_eps == 1e-6f);
    CHECK(c->qkv_bias == 1 && c->o_bias == 0 && c->qk_norm == MOE_QKNORM_NONE);
    CHECK(c->sliding_window == 0 && c->bos_id == 151643 && c->eos_id == 151643);
    CHECK_EQ_INT(count_moe(c), 24);
    const moe_layer_config *l = &c->layer[5];
    CHECK(l->n_experts == 60 && l->top_k == 4 && l->expert_dim == 1408 && l->norm_topk == 0);
    CHECK(l->n_shared == 1 && l->shared_dim == 5632 && l->shared_gate == 1);
    ROUNDTRIP();
}

TEST(hf_config_qwen2_moe_defaults_and_layers) {
    moe_config *c = &g_cfg;
    if (PARSE_OK("{\"model_type\": \"qwen2_moe\"}")) {
        CHECK(c->vocab == 151936 && c->dim == 2048 && c->n_layers == 24 && c->n_heads == 16);
        CHECK(c->n_kv_heads == 16 && c->max_pos == 32768 && c->norm_eps == 1e-6f);
        CHECK(c->rope_theta == 1e4f && c->bos_id == -1 && c->eos_id == -1 && c->qkv_bias == 1);
        CHECK(c->layer[0].n_experts == 60 && c->layer[0].top_k == 4);
        CHECK(c->layer[0].expert_dim == 1408 && c->layer[0].shared_dim == 5632);
    }
    /* Layer rule: MoE iff not in mlp_only_layers and (i+1) % step == 0. */
    if (PARSE_OK("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 6, "
                 "\"decoder_sparse_step\": 2, \"mlp_only_layers\": [3, 99, -1], "
                 "\"intermediate_size\": 96, \"qkv_bias\": false}")) {
        int want[6] = {0, 1, 0, 0, 0, 1};
        for (int i = 0; i < 6; i++) CHECK_EQ_INT(c->layer[i].moe, want[i]);
        CHECK(c->layer[0].ffn_dim == 96 && c->layer[3].ffn_dim == 96 && c->qkv_bias == 0);
        CHECK(c->layer[1].n_shared == 1 && c->layer[1].expert_dim == 1408);
        ROUNDTRIP();
    }
    if (PARSE_OK("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 3, "
                 "\"mlp_only_layers\": [0, 2], \"norm_topk_prob\": true}")) {
        CHECK(!c->layer[0].moe && c->layer[1].moe && !c->layer[2].moe);
        CHECK(c->layer[1].norm_topk == 1);
        ROUNDTRIP();
    }
    /* num_experts 0: every layer dense. num_local_experts is not read by qwen2_moe. */
    if (PARSE_OK("{\"model_type\": \"qwen2_moe\", \"num_experts\": 0, \"num_hidden_layers\": 2}")) {
        CHECK_EQ_INT(count_moe(c), 0);
        ROUNDTRIP();
    }
    if (PARSE_OK("{\"model_type\": \"qwen2_moe\", \"num_local_experts\": 4}"))
        CHECK_EQ_INT(c->layer[0].n_experts, 60);
    PARSE_BAD("{\"model_type\": \"qwen2_moe\", \"decoder_sparse_step\": 0}", "decoder_sparse_step");
    PARSE_BAD("{\"model_type\": \"qwen2_moe\", \"mlp_only_layers\": 3}", "mlp_only_layers");
    PARSE_BAD("{\"model_type\": \"qwen2_moe\", \"mlp_only_layers\": [\"3\"]}", "mlp_only_layers");
    PARSE_BAD("{\"model_type\": \"qwen2_moe\", \"shared_expert_intermediate_size\": 0}",
              "shared_expert_intermediate_size");
    PARSE_BAD("{\"model_type\": \"qwen2_moe\", \"num_experts\": -1}", "negative");
}

TEST(hf_config_qwen2_moe_sliding) {
    moe_config *c = &g_cfg;
    /* The default layer_types slide on even layers below max_window_layers only. */
    PARSE_BAD("{\"model_type\": \"qwen2_moe\", \"use_sliding_window\": true}", "sliding window");
    PARSE_BAD("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 4, \"layer_types\": "
              "[\"full_attention\", \"sliding_attention\", \"full_attention\", \"full_attention\"],"
              " \"use_sliding_window\": true}", "sliding window");
    PARSE_BAD("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 2, \"layer_types\": "
              "[\"full_attention\"]}", "layer_types");
    PARSE_BAD("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 1, \"layer_types\": "
              "[\"chunked_attention\"]}", "chunked_attention");
    /* Written by transformers 5: layer_types all full. */
    if (PARSE_OK("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 2, \"layer_types\": "
                 "[\"full_attention\", \"full_attention\"], \"use_sliding_window\": false, "
                 "\"sliding_window\": null}"))
        CHECK_EQ_INT(c->sliding_window, 0);
    /* One layer, sliding: uniform, so expressible. */
    if (PARSE_OK("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 1, "
                 "\"use_sliding_window\": true, \"sliding_window\": 64}"))
        CHECK_EQ_INT(c->sliding_window, 64);
    /* ... written back with layer_types saying so (a window on every layer) */
    roundtrip(__LINE__);
    CHECK_EQ_INT(g_back.sliding_window, 64);
}

/* -------------------------------------------------------------- qwen3_moe */

static const char *QWEN3_30B_A3B =
    "{\n"
    "  \"architectures\": [\"Qwen3MoeForCausalLM\"],\n"
    "  \"attention_bias\": false,\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 151643,\n"
    "  \"decoder_sparse_step\": 1,\n"
    "  \"eos_token_id\": 151645,\n"
    "  \"head_dim\": 128,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 2048,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 6144,\n"
    "  \"max_position_embeddings\": 40960,\n"
    "  \"max_window_layers\": 48,\n"
    "  \"mlp_only_layers\": [],\n"
    "  \"model_type\": \"qwen3_moe\",\n"
    "  \"moe_intermediate_size\": 768,\n"
    "  \"norm_topk_prob\": true,\n"
    "  \"num_attention_heads\": 32,\n"
    "  \"num_experts\": 128,\n"
    "  \"num_experts_per_tok\": 8,\n"
    "  \"num_hidden_layers\": 48,\n"
    "  \"num_key_value_heads\": 4,\n"
    "  \"output_router_logits\": false,\n"
    "  \"rms_norm_eps\": 1e-06,\n"
    "  \"rope_scaling\": null,\n"
    "  \"rope_theta\": 1000000.0,\n"
    "  \"router_aux_loss_coef\": 0.001,\n"
    "  \"sliding_window\": null,\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"transformers_version\": \"4.51.0\",\n"
    "  \"use_cache\": true,\n"
    "  \"use_sliding_window\": false,\n"
    "  \"vocab_size\": 151936\n"
    "}\n";

TEST(hf_config_qwen3_30b_a3b) {
    if (!PARSE_OK(QWEN3_30B_A3B)) return;
    const moe_config *c = &g_cfg;
    CHECK_EQ_INT(c->arch, MOE_ARCH_QWEN3_MOE);
    CHECK(c->vocab == 151936 && c->dim == 2048 && c->n_layers == 48 && c->n_heads == 32);
    CHECK(c->n_kv_heads == 4 && c->head_dim == 128 && c->max_pos == 40960);
    CHECK(c->rope_theta == 1e6f && c->norm_eps == 1e-6f && c->qk_norm == MOE_QKNORM_HEAD);
    CHECK(!c->qkv_bias && !c->o_bias && c->sliding_window == 0);
    CHECK(c->bos_id == 151643 && c->eos_id == 151645);
    CHECK_EQ_INT(count_moe(c), 48);
    const moe_layer_config *l = &c->layer[47];
    CHECK(l->n_experts == 128 && l->top_k == 8 && l->expert_dim == 768 && l->norm_topk == 1);
    CHECK(l->n_shared == 0 && l->shared_gate == 0);
    ROUNDTRIP();
}

TEST(hf_config_qwen3_moe_defaults_and_switches) {
    moe_config *c = &g_cfg;
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\"}")) {
        CHECK(c->vocab == 151936 && c->dim == 2048 && c->n_layers == 24 && c->n_heads == 32);
        CHECK(c->n_kv_heads == 4 && c->head_dim == 64 && c->max_pos == 32768);
        CHECK(c->rope_theta == 1e4f && c->norm_eps == 1e-6f && c->bos_id == -1 && c->eos_id == -1);
        CHECK(c->layer[0].n_experts == 128 && c->layer[0].top_k == 8);
        CHECK(c->layer[0].expert_dim == 768 && c->layer[0].norm_topk == 0);
        CHECK(!c->qkv_bias && !c->o_bias && c->sliding_window == 0);
    }
    /* attention_bias puts a bias on q, k, v AND o. */
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"attention_bias\": true}")) {
        CHECK(c->qkv_bias == 1 && c->o_bias == 1);
        ROUNDTRIP();
    }
    /* use_sliding_window: the same window on every layer; default 4096; null = none. */
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"use_sliding_window\": true, "
                 "\"sliding_window\": 128}")) {
        CHECK_EQ_INT(c->sliding_window, 128);
        ROUNDTRIP();
    }
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"use_sliding_window\": true}"))
        CHECK_EQ_INT(c->sliding_window, 4096);
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"use_sliding_window\": true, "
                 "\"sliding_window\": null}"))
        CHECK_EQ_INT(c->sliding_window, 0);
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"use_sliding_window\": false, "
                 "\"sliding_window\": 128}"))
        CHECK_EQ_INT(c->sliding_window, 0);
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"use_sliding_window\": true, "
              "\"sliding_window\": -5}", "sliding_window");
    /* transformers 5 writes num_local_experts for qwen3_moe; it wins over num_experts. */
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"num_local_experts\": 16, \"num_experts\": 32}"))
        CHECK_EQ_INT(c->layer[0].n_experts, 16);
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"num_experts\": 32}"))
        CHECK_EQ_INT(c->layer[0].n_experts, 32);
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"num_hidden_layers\": 4, "
                 "\"decoder_sparse_step\": 2, \"mlp_only_layers\": [1]}")) {
        CHECK(!c->layer[0].moe && !c->layer[1].moe && !c->layer[2].moe && c->layer[3].moe);
        CHECK(c->layer[0].ffn_dim == 6144);
        ROUNDTRIP();
    }
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"head_dim\": 0}", "head_dim");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"head_dim\": 63}", "odd");
}

/* ------------------------------------------------------------------ olmoe */

static const char *OLMOE_1B_7B =
    "{\n"
    "  \"architectures\": [\"OlmoeForCausalLM\"],\n"
    "  \"attention_bias\": false,\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"clip_qkv\": null,\n"
    "  \"eos_token_id\": 50279,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 2048,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 1024,\n"
    "  \"max_position_embeddings\": 4096,\n"
    "  \"model_type\": \"olmoe\",\n"
    "  \"norm_topk_prob\": false,\n"
    "  \"num_attention_heads\": 16,\n"
    "  \"num_experts\": 64,\n"
    "  \"num_experts_per_tok\": 8,\n"
    "  \"num_hidden_layers\": 16,\n"
    "  \"num_key_value_heads\": 16,\n"
    "  \"output_router_logits\": false,\n"
    "  \"pad_token_id\": 1,\n"
    "  \"rms_norm_eps\": 1e-05,\n"
    "  \"rope_scaling\": null,\n"
    "  \"rope_theta\": 10000.0,\n"
    "  \"router_aux_loss_coef\": 0.01,\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"transformers_version\": \"4.43.0.dev0\",\n"
    "  \"use_cache\": true,\n"
    "  \"vocab_size\": 50304\n"
    "}\n";

TEST(hf_config_olmoe_1b_7b) {
    if (!PARSE_OK(OLMOE_1B_7B)) return;
    const moe_config *c = &g_cfg;
    CHECK_EQ_INT(c->arch, MOE_ARCH_OLMOE);
    CHECK(c->vocab == 50304 && c->dim == 2048 && c->n_layers == 16 && c->n_heads == 16);
    CHECK(c->n_kv_heads == 16 && c->head_dim == 128 && c->max_pos == 4096);
    CHECK(c->rope_theta == 1e4f && c->norm_eps == 1e-5f && c->qk_norm == MOE_QKNORM_FULL);
    CHECK(!c->qkv_bias && !c->o_bias && c->clip_qkv == 0 && c->sliding_window == 0);
    CHECK(c->bos_id == -1 && c->eos_id == 50279);
    CHECK_EQ_INT(count_moe(c), 16);
    const moe_layer_config *l = &c->layer[0];
    CHECK(l->n_experts == 64 && l->top_k == 8 && l->expert_dim == 1024 && l->norm_topk == 0);
    CHECK(l->n_shared == 0);
    ROUNDTRIP();
}

TEST(hf_config_olmoe_defaults_and_switches) {
    moe_config *c = &g_cfg;
    if (PARSE_OK("{\"model_type\": \"olmoe\"}")) {
        CHECK(c->vocab == 50304 && c->dim == 2048 && c->n_layers == 16 && c->n_heads == 16);
        CHECK(c->n_kv_heads == 16 && c->max_pos == 4096 && c->eos_id == 50279 && c->bos_id == -1);
        CHECK(c->layer[0].n_experts == 64 && c->layer[0].top_k == 8);
        CHECK(c->layer[0].expert_dim == 2048 && c->layer[0].norm_topk == 0);
    }
    if (PARSE_OK("{\"model_type\": \"olmoe\", \"clip_qkv\": 8.0, \"attention_bias\": true, "
                 "\"norm_topk_prob\": true, \"num_key_value_heads\": 4}")) {
        CHECK(c->clip_qkv == 8.0f && c->qkv_bias && c->o_bias && c->layer[3].norm_topk == 1);
        CHECK_EQ_INT(c->n_kv_heads, 4);
        ROUNDTRIP();
    }
    /* num_key_value_heads null or absent: = heads (OlmoeConfig.__post_init__). */
    if (PARSE_OK("{\"model_type\": \"olmoe\", \"num_attention_heads\": 8, "
                 "\"num_key_value_heads\": null}"))
        CHECK_EQ_INT(c->n_kv_heads, 8);
    /* num_local_experts wins for olmoe. */
    if (PARSE_OK("{\"model_type\": \"olmoe\", \"num_local_experts\": 16, \"num_experts\": 32}"))
        CHECK_EQ_INT(c->layer[0].n_experts, 16);
    PARSE_BAD("{\"model_type\": \"olmoe\", \"clip_qkv\": 0}", "clip_qkv");
    PARSE_BAD("{\"model_type\": \"olmoe\", \"clip_qkv\": -1.0}", "clip_qkv");
    PARSE_BAD("{\"model_type\": \"olmoe\", \"clip_qkv\": \"8\"}", "clip_qkv");
    /* q/k norm over the whole projection: heads x head_dim must be hidden_size. */
    PARSE_BAD("{\"model_type\": \"olmoe\", \"head_dim\": 64}", "whole projection");
}

/* ------------------------------------------------------ shared switches */

TEST(hf_config_rope) {
    moe_config *c = &g_cfg;
    if (PARSE_OK("{\"model_type\": \"olmoe\", \"rope_parameters\": {\"rope_type\": \"default\", "
                 "\"rope_theta\": 500000.0}}"))
        CHECK(c->rope_theta == 5e5f);
    /* rope_parameters wins over the top-level rope_theta (setdefault). */
    if (PARSE_OK("{\"model_type\": \"olmoe\", \"rope_theta\": 1000.0, \"rope_parameters\": "
                 "{\"rope_type\": \"default\", \"rope_theta\": 20000.0}}"))
        CHECK(c->rope_theta == 2e4f);
    if (PARSE_OK("{\"model_type\": \"olmoe\", \"rope_theta\": 1000.0, \"rope_parameters\": "
                 "{\"rope_type\": \"default\"}}"))
        CHECK(c->rope_theta == 1e3f);
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"rope_parameters\": {\"type\": \"default\"}}"))
        CHECK(c->rope_theta == 1e6f);
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"rope_scaling\": {}, \"rope_theta\": 3.0}"))
        CHECK(c->rope_theta == 3.0f);
    PARSE_BAD("{\"model_type\": \"mixtral\", \"rope_scaling\": {\"type\": \"linear\", "
              "\"factor\": 2.0}}", "rope_type \"linear\"");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"rope_parameters\": {\"rope_type\": \"yarn\", "
              "\"factor\": 4.0, \"rope_theta\": 1e6}}", "rope_type \"yarn\"");
    /* rope_scaling takes over rope_parameters when both are given. */
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"rope_parameters\": {\"rope_type\": \"default\"},"
              " \"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2.0}}", "dynamic");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"rope_parameters\": 5}", "rope_parameters");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"rope_scaling\": \"linear\"}", "rope_scaling");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"rope_theta\": 0}", "rope_theta");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"rope_theta\": \"1e6\"}", "rope_theta");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"rope_parameters\": {\"rope_type\": 1}}",
              "rope_type");
}

TEST(hf_config_token_ids) {
    moe_config *c = &g_cfg;
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"eos_token_id\": [151645, 151643], "
                 "\"bos_token_id\": null}"))
        CHECK(c->eos_id == 151645 && c->bos_id == -1);
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"eos_token_id\": [], \"bos_token_id\": 0}"))
        CHECK(c->eos_id == -1 && c->bos_id == 0);
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"eos_token_id\": null}")) CHECK(c->eos_id == -1);
    PARSE_BAD("{\"model_type\": \"mixtral\", \"eos_token_id\": \"2\"}", "eos_token_id");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"eos_token_id\": -3}", "eos_token_id");
}

TEST(hf_config_moe_extras) {
    moe_config *c = &g_cfg;
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"num_hidden_layers\": 3, "
                 "\"mlp_only_layers\": [1], \"moe\": {\"score\": \"sigmoid\", \"router\": "
                 "\"expert_choice\", \"capacity_factor\": 1.25, \"noise\": 0.5, "
                 "\"routed_scaling_factor\": 2.5, \"select_bias\": true}}")) {
        const moe_layer_config *l = &c->layer[2];
        CHECK(l->score == MOE_SCORE_SIGMOID && l->kind == MOE_ROUTE_EXPERT_CHOICE);
        CHECK(l->capacity_factor == 1.25f && l->noise == 0.5f && l->routed_scale == 2.5f);
        CHECK(l->select_bias == 1 && !c->layer[1].moe && c->layer[1].select_bias == 0);
        ROUNDTRIP();
    }
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"moe\": {\"router\": \"hash\"}}")) {
        CHECK(c->layer[0].kind == MOE_ROUTE_HASH);
        ROUNDTRIP();
    }
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"moe\": null}")) CHECK(c->layer[0].kind == 0);
    PARSE_BAD("{\"model_type\": \"mixtral\", \"moe\": {\"scores\": \"softmax\"}}", "moe.scores");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"moe\": {\"score\": \"relu\"}}", "moe.score");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"moe\": {\"router\": 3}}", "moe.router");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"moe\": {\"router\": \"expert_choice\"}}",
              "capacity_factor");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"moe\": {\"noise\": -1}}", "noise");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"moe\": {\"routed_scaling_factor\": 0}}",
              "routed_scaling_factor");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"moe\": {\"select_bias\": 1}}", "select_bias");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"moe\": [1]}", "moe");
}

/* Read what the last roundtrip() wrote into buf. */
static void written(char *buf, size_t size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* moe.norm_topk overrides each layout's renormalization of the top-k
 * weights, and comes back from a write where the layout cannot say it. */
TEST(hf_config_norm_topk) {
    moe_config *c = &g_cfg;
    static char buf[8192];
    /* mixtral: always renormalized unless moe.norm_topk says otherwise */
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"num_experts_per_tok\": 1}")) {
        CHECK_EQ_INT(c->layer[0].norm_topk, 1);
        ROUNDTRIP();
        written(buf, sizeof buf);
        CHECK(strstr(buf, "norm_topk") == NULL);
    }
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"num_experts_per_tok\": 1, "
                 "\"moe\": {\"norm_topk\": false}}")) {
        for (int i = 0; i < c->n_layers; i++) CHECK_EQ_INT(c->layer[i].norm_topk, 0);
        ROUNDTRIP();
        CHECK_EQ_INT(g_back.layer[0].norm_topk, 0);
        written(buf, sizeof buf);
        CHECK_STR_CONTAINS(buf, "\"norm_topk\":\tfalse");
    }
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"moe\": {\"norm_topk\": true}}")) {
        CHECK_EQ_INT(c->layer[0].norm_topk, 1);
        ROUNDTRIP();
        written(buf, sizeof buf);
        CHECK(strstr(buf, "\"moe\"") == NULL); /* the layout's default: nothing to say */
    }
    /* olmoe, qwen2_moe, qwen3_moe: the key wins over norm_topk_prob, and is
     * written back as norm_topk_prob, which transformers reads */
    if (PARSE_OK("{\"model_type\": \"olmoe\", \"norm_topk_prob\": true, "
                 "\"moe\": {\"norm_topk\": false}}")) {
        CHECK_EQ_INT(c->layer[0].norm_topk, 0);
        ROUNDTRIP();
        written(buf, sizeof buf);
        CHECK_STR_CONTAINS(buf, "\"norm_topk_prob\":\tfalse");
        CHECK(strstr(buf, "\"norm_topk\"") == NULL);
    }
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\", \"moe\": {\"norm_topk\": true}}")) {
        CHECK_EQ_INT(c->layer[0].norm_topk, 1);
        ROUNDTRIP();
        written(buf, sizeof buf);
        CHECK_STR_CONTAINS(buf, "\"norm_topk_prob\":\ttrue");
    }
    if (PARSE_OK("{\"model_type\": \"qwen2_moe\", \"norm_topk_prob\": true, \"num_hidden_layers\": "
                 "2, \"mlp_only_layers\": [0], \"moe\": {\"norm_topk\": false}}")) {
        CHECK_EQ_INT(c->layer[1].norm_topk, 0);
        CHECK(!c->layer[0].moe);
        ROUNDTRIP();
    }
    PARSE_BAD("{\"model_type\": \"mixtral\", \"moe\": {\"norm_topk\": 0}}", "norm_topk");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"moe\": {\"norm_topk\": \"no\"}}", "norm_topk");
}

/* ------------------------------------------------------------------ errors */

TEST(hf_config_bad_json) {
    moe_err err;
    CHECK_EQ_INT(parse("{\"model_type\": \"mixtral\",\n  \"hidden_size\": 12,,\n}", &err), -1);
    CHECK_STR_CONTAINS(err.msg, "cfg.json");
    CHECK_STR_CONTAINS(err.msg, "not valid JSON");
    CHECK_STR_CONTAINS(err.msg, "line 2");
    PARSE_BAD("", "not valid JSON");
    PARSE_BAD("{\"model_type\": \"mixtral\"", "not valid JSON");
    PARSE_BAD("{\"model_type\": \"mixtral\"} x", "trailing");
    PARSE_BAD("[\"model_type\"]", "not a JSON object");
    PARSE_BAD("null", "not a JSON object");
    /* Length-bounded: text after len is not read. */
    const char *t = "{\"model_type\": \"olmoe\"}GARBAGE";
    CHECK_EQ_INT(hf_config_parse(&g_cfg, t, 23, "cfg.json", &err), 0);
}

TEST(hf_config_bad_fields) {
    PARSE_BAD("{}", "missing required field model_type");
    PARSE_BAD("{\"model_type\": 5}", "model_type: wrong JSON type");
    PARSE_BAD("{\"model_type\": \"llama\"}", "unknown model_type \"llama\" (supported: mixtral");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"hidden_size\": \"4096\"}", "hidden_size: wrong JSON type");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"hidden_size\": null}", "hidden_size");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"hidden_size\": 0}", "hidden_size: must be positive");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"hidden_size\": -4096}", "must be positive");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"hidden_size\": 4096.5}", "not an integer");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"hidden_size\": 1e12}", "out of range");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"vocab_size\": 1073741824}", "vocab_size");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"vocab_size\": 0}", "vocab_size");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"num_hidden_layers\": 257}", "num_hidden_layers");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"num_hidden_layers\": 0}", "num_hidden_layers");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"num_key_value_heads\": 5}", "divisible");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"num_key_value_heads\": 64}", "num_key_value_heads");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"num_key_value_heads\": 0}", "num_key_value_heads");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"num_attention_heads\": 0}", "num_attention_heads");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"hidden_size\": 16, \"num_attention_heads\": 32,"
              " \"num_key_value_heads\": 8}", "hidden_size");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"num_experts_per_tok\": 9}", "num_experts_per_tok");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"num_experts_per_tok\": 0}", "num_experts_per_tok");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"intermediate_size\": 0}", "intermediate_size");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"max_position_embeddings\": 0}",
              "max_position_embeddings");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"rms_norm_eps\": 0}", "rms_norm_eps");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"rms_norm_eps\": \"1e-5\"}", "rms_norm_eps");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"tie_word_embeddings\": 1}", "true/false");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"hidden_act\": \"gelu\"}", "hidden_act");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"head_dim\": -2}", "head_dim");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"use_sliding_window\": \"yes\"}",
              "use_sliding_window");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"moe_intermediate_size\": -1}",
              "moe_intermediate_size");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"attention_bias\": null}", "attention_bias");
    PARSE_BAD("{\"model_type\": \"qwen2_moe\", \"qkv_bias\": 1}", "qkv_bias");
    /* Sizes whose products would overflow int64. */
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"hidden_size\": 1048576, \"num_experts\": 65536,"
              " \"moe_intermediate_size\": 16777216, \"num_attention_heads\": 16384,"
              " \"num_key_value_heads\": 16384, \"head_dim\": 64}", "too large");
    PARSE_BAD("{\"model_type\": \"qwen3_moe\", \"num_experts\": 100000}", "n_experts");
    PARSE_BAD("{\"model_type\": \"mixtral\", \"head_dim\": 100000}", "head_dim");
}

TEST(hf_config_load_dir) {
    moe_err err = {{0}};
    CHECK_EQ_INT(hf_config_load(&g_cfg, test_tmpdir(), &err), -1);
    CHECK_STR_CONTAINS(err.msg, "config.json");
    CHECK_STR_CONTAINS(err.msg, "cannot open");
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"model_type\": \"olmoe\",\n\"vocab_size\": }", f);
    fclose(f);
    CHECK_EQ_INT(hf_config_load(&g_cfg, test_tmpdir(), &err), -1);
    CHECK_STR_CONTAINS(err.msg, path);
    CHECK_STR_CONTAINS(err.msg, "line 2");
    f = fopen(path, "w");
    fputs(OLMOE_1B_7B, f);
    fclose(f);
    CHECK_EQ_INT(hf_config_load(&g_cfg, test_tmpdir(), &err), 0);
    CHECK_EQ_INT(g_cfg.layer[0].expert_dim, 1024);
}

/* -------------------------------------------------------- writing, validate */

TEST(hf_config_write_refuses_inexpressible) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
    moe_err err = {{0}};
    moe_config *c = &g_cfg;
#define WRITE_BAD(needle)                                                     \
    do {                                                                      \
        CHECK_EQ_INT(hf_config_write(c, path, "float32", &err), -1);          \
        CHECK_STR_CONTAINS(err.msg, needle);                                  \
    } while (0)
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"num_hidden_layers\": 2}")) {
        c->layer[1].norm_topk = 0;
        WRITE_BAD("cannot be written as a mixtral");
        c->layer[1].norm_topk = 1;
        c->layer[1] = (moe_layer_config){.moe = 0, .ffn_dim = 64, .routed_scale = 1};
        WRITE_BAD("layer pattern");
    }
    if (PARSE_OK("{\"model_type\": \"mixtral\", \"num_hidden_layers\": 2}")) {
        c->layer[1].top_k = 1; /* layers differ */
        WRITE_BAD("MoE layer settings");
    }
    if (PARSE_OK("{\"model_type\": \"mixtral\"}")) {
        c->qkv_bias = 1;
        WRITE_BAD("qkv_bias");
    }
    if (PARSE_OK("{\"model_type\": \"qwen3_moe\"}")) {
        c->qkv_bias = 1; /* o without bias: not attention_bias */
        WRITE_BAD("o_bias");
    }
    if (PARSE_OK("{\"model_type\": \"olmoe\"}")) {
        for (int i = 0; i < c->n_layers; i++) c->layer[i].n_shared = 1, c->layer[i].shared_dim = 8;
        WRITE_BAD("MoE layer settings");
    }
    if (PARSE_OK("{\"model_type\": \"qwen2_moe\"}")) {
        c->qk_norm = MOE_QKNORM_HEAD;
        WRITE_BAD("qk_norm");
    }
    if (PARSE_OK("{\"model_type\": \"olmoe\"}")) {
        c->vocab = 0; /* invalid: refused before writing */
        WRITE_BAD("vocab_size");
    }
    /* Nothing was written by the failures. */
    FILE *f = fopen(path, "r");
    CHECK(f == NULL);
    if (f) fclose(f);
#undef WRITE_BAD
}

TEST(hf_config_write_text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
    moe_err err = {{0}};
    if (!PARSE_OK(MIXTRAL_8X7B)) return;
    CHECK_EQ_INT(hf_config_write(&g_cfg, path, "bfloat16", &err), 0);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    /* Floats are written as floats (transformers refuses ints there). */
    CHECK(strstr(buf, "1e-05") != NULL);
    CHECK(strstr(buf, "1000000.0") != NULL);
    CHECK(strstr(buf, "\"MixtralForCausalLM\"") != NULL);
    CHECK(strstr(buf, "\"torch_dtype\":\t\"bfloat16\"") != NULL);
    CHECK(strstr(buf, "\"rope_type\":\t\"default\"") != NULL);
    CHECK(strstr(buf, "\"moe\"") == NULL); /* all defaults: no moe object */
}

TEST(hf_config_validate_struct) {
    moe_err err = {{0}};
    moe_config *c = &g_cfg;
    if (!PARSE_OK("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 2}")) return;
    CHECK_EQ_INT(moe_config_validate(c, "x", &err), 0);
#define VBAD(stmt, needle)                                                    \
    do {                                                                      \
        PARSE_OK("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 2}"); \
        stmt;                                                                 \
        CHECK_EQ_INT(moe_config_validate(c, "x", &err), -1);                  \
        CHECK_STR_CONTAINS(err.msg, needle);                                  \
    } while (0)
    VBAD(c->arch = (moe_arch)42, "architecture");
    VBAD(c->n_heads = 24, "divisible");
    VBAD(c->head_dim = 0, "head_dim");
    VBAD(c->n_layers = MOE_MAX_LAYERS + 1, "num_hidden_layers");
    VBAD(c->layer[1].top_k = 61, "top_k");
    VBAD(c->layer[1].expert_dim = 0, "expert_dim");
    VBAD(c->layer[1].shared_dim = 0, "shared_dim");
    VBAD(c->layer[0].moe = 2, "moe must be 0 or 1");
    VBAD((c->layer[0].moe = 0, c->layer[0].ffn_dim = 0), "ffn_dim");
    VBAD(c->layer[0].score = (moe_score)7, "score");
    VBAD(c->layer[0].kind = (moe_route_kind)7, "router kind");
    VBAD(c->layer[0].routed_scale = 0, "routed_scaling_factor");
    VBAD(c->layer[0].capacity_factor = -1, "capacity_factor");
    VBAD(c->rope_theta = 0, "rope_theta");
    VBAD(c->norm_eps = -1, "rms_norm_eps");
    VBAD(c->clip_qkv = -1, "clip_qkv");
    VBAD(c->sliding_window = -1, "sliding_window");
    VBAD(c->eos_id = -2, "eos");
    VBAD((c->qk_norm = MOE_QKNORM_FULL, c->head_dim = 64), "whole projection");
    VBAD(c->qkv_bias = 2, "qkv_bias");
#undef VBAD
}
