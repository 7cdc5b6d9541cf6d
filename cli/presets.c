/*
 * presets.c - model shapes for `moe init`. The numbers of the real models are
 * those of their Hugging Face config.json files:
 *   allenai/OLMoE-1B-7B-0924, mistralai/Mixtral-8x7B-v0.1,
 *   Qwen/Qwen3-30B-A3B, Qwen/Qwen2-57B-A14B, Qwen/Qwen3-Next-80B-A3B-Instruct,
 *   openai/gpt-oss-20b, openai/gpt-oss-120b (which `moe init` writes with
 *   MXFP4 experts, as released).
 * qwen3.5-35b-a3b takes the shapes of Qwen/Qwen3.5-35B-A3B (40 layers, dim
 * 2048, 256 experts top-8 of 512, shared 512, vocab 248320, context 262144,
 * rope_theta 1e7) and everything else from transformers 5.23's
 * Qwen3_5MoeTextConfig defaults (no bos/eos), written as its text model
 * (Qwen3_5MoeForCausalLM, model_type qwen3_5_moe_text).
 * deepseek-v2-lite, deepseek-v3, kimi-k2 and glm-4.5-air are those of
 * deepseek-ai/DeepSeek-V2-Lite, deepseek-ai/DeepSeek-V3, moonshotai/Kimi-K2-
 * Instruct (written as deepseek_v3, its architecture) and zai-org/GLM-4.5-Air
 * (without their multi-token-prediction layers' weights).
 * The tiny presets have one of each architecture's switches on, small enough
 * for tests (a few hundred KiB).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "presets.h"

/* Common defaults: every layer an MoE with a softmax token-choice router. */
static void base(moe_config *c, moe_arch arch, const char *type) {
    memset(c, 0, sizeof *c);
    c->arch = arch;
    snprintf(c->model_type, sizeof c->model_type, "%s", type);
    c->bos_id = c->eos_id = -1;
}

static void all_layers(moe_config *c, int ffn_dim, int experts, int top_k, int expert_dim,
                       int norm_topk) {
    for (int i = 0; i < MOE_MAX_LAYERS; i++) {
        moe_layer_config *l = &c->layer[i];
        memset(l, 0, sizeof *l);
        l->moe = 1;
        l->ffn_dim = ffn_dim; /* config.json intermediate_size */
        l->n_experts = experts;
        l->top_k = top_k;
        l->expert_dim = expert_dim;
        l->score = MOE_SCORE_SOFTMAX;
        l->norm_topk = norm_topk;
        l->routed_scale = 1.0f;
        l->kind = MOE_ROUTE_TOKEN_CHOICE;
    }
}

static void shared_expert(moe_config *c, int dim) {
    for (int i = 0; i < MOE_MAX_LAYERS; i++) {
        c->layer[i].n_shared = 1;
        c->layer[i].shared_dim = dim;
        c->layer[i].shared_gate = 1;
    }
}

static void olmoe_1b_7b(moe_config *c) {
    base(c, MOE_ARCH_OLMOE, "olmoe");
    c->vocab = 50304;
    c->dim = 2048;
    c->n_layers = 16;
    c->n_heads = c->n_kv_heads = 16;
    c->head_dim = 128;
    c->max_pos = 4096;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->qk_norm = MOE_QKNORM_FULL;
    c->eos_id = 50279; /* bos_token_id is null */
    all_layers(c, 1024, 64, 8, 1024, 0);
}

static void mixtral_8x7b(moe_config *c) {
    base(c, MOE_ARCH_MIXTRAL, "mixtral");
    c->vocab = 32000;
    c->dim = 4096;
    c->n_layers = 32;
    c->n_heads = 32;
    c->n_kv_heads = 8;
    c->head_dim = 128;
    c->max_pos = 32768;
    c->rope_theta = 1e6f;
    c->norm_eps = 1e-5f;
    c->bos_id = 1;
    c->eos_id = 2;
    all_layers(c, 14336, 8, 2, 14336, 1);
}

static void qwen3_30b_a3b(moe_config *c) {
    base(c, MOE_ARCH_QWEN3_MOE, "qwen3_moe");
    c->vocab = 151936;
    c->dim = 2048;
    c->n_layers = 48;
    c->n_heads = 32;
    c->n_kv_heads = 4;
    c->head_dim = 128;
    c->max_pos = 40960;
    c->rope_theta = 1e6f;
    c->norm_eps = 1e-6f;
    c->qk_norm = MOE_QKNORM_HEAD;
    c->bos_id = 151643;
    c->eos_id = 151645;
    all_layers(c, 6144, 128, 8, 768, 1);
}

static void qwen2_57b_a14b(moe_config *c) {
    base(c, MOE_ARCH_QWEN2_MOE, "qwen2_moe");
    c->vocab = 151936;
    c->dim = 3584;
    c->n_layers = 28;
    c->n_heads = 28;
    c->n_kv_heads = 4;
    c->head_dim = 128;
    c->max_pos = 131072;
    c->rope_theta = 1e6f;
    c->norm_eps = 1e-6f;
    c->qkv_bias = 1;
    c->bos_id = 151643;
    c->eos_id = 151643;
    all_layers(c, 18944, 64, 8, 2560, 0);
    shared_expert(c, 20480);
}

/* qwen3_next's token mixers, shared by qwen3_5_moe: Gated DeltaNet layers
 * (16 key heads, 32 value heads, head dims 128, conv kernel 4) with full
 * attention on every 4th layer (16 q / 2 kv heads of 256, sigmoid output
 * gate, RoPE on a quarter of each head), zero-centred norms. */
static void qwen3_linear_layers(moe_config *c) {
    c->n_heads = 16;
    c->n_kv_heads = 2;
    c->head_dim = 256;
    c->rope_dim = 64;
    c->norm_eps = 1e-6f;
    c->qk_norm = MOE_QKNORM_HEAD;
    c->norm_offset = 1;
    c->attn_out_gate = 1;
    c->lin_k_heads = 16;
    c->lin_v_heads = 32;
    c->lin_k_dim = 128;
    c->lin_v_dim = 128;
    c->lin_conv = 4;
    for (int i = 0; i < MOE_MAX_LAYERS; i++) c->layer[i].linear_attn = (i + 1) % 4 != 0;
}

static void qwen3_next_80b_a3b(moe_config *c) {
    base(c, MOE_ARCH_QWEN3_NEXT, "qwen3_next");
    c->vocab = 151936;
    c->dim = 2048;
    c->n_layers = 48;
    c->max_pos = 262144;
    c->rope_theta = 1e7f;
    c->bos_id = 151643;
    c->eos_id = 151645;
    all_layers(c, 5120, 512, 10, 512, 1);
    shared_expert(c, 512);
    qwen3_linear_layers(c);
}

static void qwen3_5_35b_a3b(moe_config *c) {
    base(c, MOE_ARCH_QWEN3_5_MOE, "qwen3_5_moe_text");
    c->vocab = 248320;
    c->dim = 2048;
    c->n_layers = 40;
    c->max_pos = 262144;      /* as released (transformers' class default: 32768) */
    c->rope_theta = 1.0e7f;   /* as released (class default: 10000) */
    c->rope_sections[0] = c->rope_sections[1] = 11; /* mrope_section [11, 11, 10] */
    c->rope_sections[2] = 10;
    all_layers(c, 512, 256, 8, 512, 1);
    shared_expert(c, 512);
    qwen3_linear_layers(c);
}

/* gpt_oss: q/k/v/o biases, a sink logit per head, sliding windows on even
 * layers, YaRN, router bias, top-k then softmax, clamped SwiGLU with biases
 * (GptOssConfig's meaning; hf_config_gpt_oss.c). */
static void gpt_oss(moe_config *c, int layers, int experts, int window) {
    base(c, MOE_ARCH_GPT_OSS, "gpt_oss");
    c->n_layers = layers;
    c->qkv_bias = c->o_bias = 1;
    c->attn_sinks = 1;
    c->norm_eps = 1e-5f;
    c->sliding_window = window;
    c->rope_kind = MOE_ROPE_YARN;
    c->rope_beta_fast = 32;
    c->rope_beta_slow = 1;
    c->rope_truncate = 0;
    all_layers(c, 0, experts, 4, 0, 0);
    for (int i = 0; i < MOE_MAX_LAYERS; i++) {
        moe_layer_config *l = &c->layer[i];
        l->score = MOE_SCORE_TOPK_SOFTMAX;
        l->router_bias = l->expert_bias = 1;
        l->act = MOE_ACT_OSS_GLU;
        l->act_alpha = 1.702f;
        l->act_limit = 7.0f;
        l->full_attention = i % 2;
    }
}

/* YaRN over `orig` positions stretched by `factor` (attention factor: transformers' default) */
static void yarn(moe_config *c, float factor, int orig) {
    c->rope_factor = factor;
    c->rope_orig_max_pos = orig;
    c->rope_attn_factor = (float)(0.1 * log(factor) + 1.0);
}

static void gpt_oss_20b(moe_config *c) {
    gpt_oss(c, 24, 32, 128);
    c->vocab = 201088;
    c->dim = 2880;
    c->n_heads = 64;
    c->n_kv_heads = 8;
    c->head_dim = 64;
    c->max_pos = 131072;
    c->rope_theta = 150000.0f;
    yarn(c, 32, 4096);
    c->eos_id = 200002; /* no bos_token_id */
    for (int i = 0; i < MOE_MAX_LAYERS; i++) c->layer[i].expert_dim = 2880;
}

static void gpt_oss_120b(moe_config *c) {
    gpt_oss_20b(c);
    c->n_layers = 36;
    for (int i = 0; i < MOE_MAX_LAYERS; i++) c->layer[i].n_experts = 128;
}

/* tiny-gpt-oss: every gpt_oss switch, expert rows whole MXFP4 blocks */
static void tiny_gpt_oss(moe_config *c) {
    gpt_oss(c, 2, 4, 8);
    c->vocab = 512;
    c->dim = 64;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = 16;
    c->max_pos = 512;
    c->rope_theta = 150000.0f;
    yarn(c, 8, 64);
    c->bos_id = 1;
    c->eos_id = 2;
    for (int i = 0; i < MOE_MAX_LAYERS; i++) {
        c->layer[i].top_k = 2;
        c->layer[i].expert_dim = 32;
    }
}

/* tiny: Mixtral layout (block_sparse_moe, w1/w2/w3), GQA, renormalized top-2 */
static void tiny(moe_config *c) {
    base(c, MOE_ARCH_MIXTRAL, "mixtral");
    c->vocab = 512;
    c->dim = 64;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = 16;
    c->max_pos = 512;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->bos_id = 1;
    c->eos_id = 2;
    all_layers(c, 96, 4, 2, 96, 1);
}

/* tiny-olmoe: q/k norm over the whole projection, top-k not renormalized */
static void tiny_olmoe(moe_config *c) {
    base(c, MOE_ARCH_OLMOE, "olmoe");
    c->vocab = 512;
    c->dim = 64;
    c->n_layers = 2;
    c->n_heads = c->n_kv_heads = 4;
    c->head_dim = 16;
    c->max_pos = 512;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->qk_norm = MOE_QKNORM_FULL;
    c->eos_id = 2;
    all_layers(c, 32, 8, 2, 32, 0);
}

/* tiny-qwen3: per-head q/k norm, head_dim larger than dim / heads */
static void tiny_qwen3(moe_config *c) {
    base(c, MOE_ARCH_QWEN3_MOE, "qwen3_moe");
    c->vocab = 512;
    c->dim = 64;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = 32;
    c->max_pos = 512;
    c->rope_theta = 1e6f;
    c->norm_eps = 1e-6f;
    c->qk_norm = MOE_QKNORM_HEAD;
    c->bos_id = 1;
    c->eos_id = 2;
    all_layers(c, 128, 8, 2, 32, 1);
}

/* tiny-qwen2: q/k/v bias, a gated shared expert */
static void tiny_qwen2(moe_config *c) {
    base(c, MOE_ARCH_QWEN2_MOE, "qwen2_moe");
    c->vocab = 512;
    c->dim = 64;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = 16;
    c->max_pos = 512;
    c->rope_theta = 1e6f;
    c->norm_eps = 1e-6f;
    c->qkv_bias = 1;
    c->bos_id = 1;
    c->eos_id = 2;
    all_layers(c, 128, 8, 2, 32, 0);
    shared_expert(c, 64);
}

/* DeepSeek's latent attention (kv latent 512, heads of 128 + 64 rotary, values
 * of 128, interleaved rotary pairs) with YaRN over 4096 positions, mscale =
 * mscale_all_dim = ms; routing sigmoid (V3) or softmax (V2). The softmax scale
 * is computed as config.json's reader computes it. */
static void deepseek(moe_config *c, moe_arch arch, const char *type, int q_lora, float factor,
                     float ms) {
    base(c, arch, type);
    c->q_lora_rank = q_lora;
    c->kv_lora_rank = 512;
    c->qk_nope_dim = 128;
    c->qk_rope_dim = c->rope_dim = 64;
    c->v_head_dim = 128;
    c->head_dim = 192;
    c->rope_interleave = 1;
    c->norm_eps = 1e-6f;
    c->rope_kind = MOE_ROPE_YARN;
    c->rope_factor = factor;
    c->rope_orig_max_pos = 4096;
    c->rope_beta_fast = 32;
    c->rope_beta_slow = 1;
    c->rope_truncate = 1;
    c->rope_attn_factor = 1.0f; /* mscale / mscale_all_dim */
    c->rope_mscale = c->rope_mscale_all_dim = ms;
    double m = 0.1 * (double)ms * log((double)factor) + 1.0;
    c->attn_scale = (float)(1.0 / sqrt(192.0) * (m * m));
}
/* routed experts (width F) and n_shared shared ones after `dense` dense layers */
static void ds_layers(moe_config *c, int dense, int ffn, int E, int K, int F, int n_shared,
                      int sigmoid, float scale) {
    all_layers(c, ffn, E, K, F, sigmoid);
    for (int i = 0; i < MOE_MAX_LAYERS; i++) {
        moe_layer_config *l = &c->layer[i];
        if (i < dense) {
            *l = (moe_layer_config){.moe = 0, .ffn_dim = ffn, .routed_scale = 1.0f};
            continue;
        }
        l->n_shared = n_shared;
        l->shared_dim = n_shared * F;
        l->routed_scale = scale;
        if (sigmoid) l->score = MOE_SCORE_SIGMOID, l->select_bias = 1;
    }
}
static void ds_groups(moe_config *c, int G, int TG) {
    for (int i = 0; i < MOE_MAX_LAYERS; i++)
        if (c->layer[i].moe)
            c->layer[i].group = MOE_GROUP_TOP2_SUM, c->layer[i].n_group = G,
            c->layer[i].topk_group = TG;
}
static void deepseek_v2_lite(moe_config *c) {
    deepseek(c, MOE_ARCH_DEEPSEEK_V2, "deepseek_v2", 0, 40, 0.707f);
    c->vocab = 102400;
    c->dim = 2048;
    c->n_layers = 27;
    c->n_heads = c->n_kv_heads = 16;
    c->max_pos = 163840;
    c->rope_theta = 10000.0f;
    c->bos_id = 100000;
    c->eos_id = 100001;
    ds_layers(c, 1, 10944, 64, 6, 1408, 2, 0, 1.0f);
}
static void deepseek_v3(moe_config *c) {
    deepseek(c, MOE_ARCH_DEEPSEEK_V3, "deepseek_v3", 1536, 40, 1.0f);
    c->vocab = 129280;
    c->dim = 7168;
    c->n_layers = 61;
    c->n_heads = c->n_kv_heads = 128;
    c->max_pos = 163840;
    c->rope_theta = 10000.0f;
    c->bos_id = 0;
    c->eos_id = 1;
    c->n_mtp_layers = 1;
    ds_layers(c, 3, 18432, 256, 8, 2048, 1, 1, 2.5f);
    ds_groups(c, 8, 4);
}
static void kimi_k2(moe_config *c) {
    deepseek(c, MOE_ARCH_DEEPSEEK_V3, "deepseek_v3", 1536, 32, 1.0f);
    c->rope_beta_fast = c->rope_beta_slow = 1;
    c->vocab = 163840;
    c->dim = 7168;
    c->n_layers = 61;
    c->n_heads = c->n_kv_heads = 64;
    c->max_pos = 131072;
    c->rope_theta = 50000.0f;
    c->bos_id = 163584;
    c->eos_id = 163585;
    ds_layers(c, 1, 18432, 384, 8, 2048, 1, 1, 2.827f);
}
static void glm_4_5_air(moe_config *c) {
    base(c, MOE_ARCH_GLM4_MOE, "glm4_moe");
    c->vocab = 151552;
    c->dim = 4096;
    c->n_layers = 46;
    c->n_heads = 96;
    c->n_kv_heads = 8;
    c->head_dim = 128;
    c->rope_dim = 64; /* partial_rotary_factor 0.5 */
    c->qkv_bias = 1;
    c->max_pos = 131072;
    c->rope_theta = 1e6f;
    c->norm_eps = 1e-5f;
    c->eos_id = 151329;
    c->n_mtp_layers = 1;
    ds_layers(c, 1, 10944, 128, 8, 1408, 1, 1, 1.0f);
}
/* tiny-deepseek-v3: latent attention with q rank, groups, a dense first layer */
static void tiny_deepseek_v3(moe_config *c) {
    deepseek(c, MOE_ARCH_DEEPSEEK_V3, "deepseek_v3", 32, 4, 1.0f);
    c->kv_lora_rank = 32;
    c->qk_nope_dim = 16;
    c->qk_rope_dim = c->rope_dim = 16;
    c->v_head_dim = 16;
    c->head_dim = 32;
    double m = 0.1 * log(4.0) + 1.0;
    c->attn_scale = (float)(1.0 / sqrt(32.0) * (m * m));
    c->rope_orig_max_pos = 128;
    c->vocab = 512;
    c->dim = 64;
    c->n_layers = 3;
    c->n_heads = c->n_kv_heads = 4;
    c->max_pos = 512;
    c->rope_theta = 10000.0f;
    c->bos_id = 1;
    c->eos_id = 2;
    ds_layers(c, 1, 128, 8, 2, 32, 1, 1, 2.5f);
    ds_groups(c, 4, 2);
}

const preset presets[] = {
    {"olmoe-1b-7b", "OLMoE-1B-7B: 16 layers, dim 2048, 64 experts top-8 (FFN 1024), qk-norm", olmoe_1b_7b},
    {"mixtral-8x7b", "Mixtral-8x7B: 32 layers, dim 4096, GQA 32/8, 8 experts top-2 (FFN 14336)", mixtral_8x7b},
    {"qwen3-30b-a3b", "Qwen3-30B-A3B: 48 layers, dim 2048, GQA 32/4, 128 experts top-8 (FFN 768)", qwen3_30b_a3b},
    {"qwen2-57b-a14b", "Qwen2-57B-A14B: 28 layers, dim 3584, 64 experts top-8 (FFN 2560) + shared 20480", qwen2_57b_a14b},
    {"qwen3-next-80b-a3b", "Qwen3-Next-80B-A3B: 48 layers (36 Gated DeltaNet), dim 2048, "
     "512 experts top-10 (FFN 512) + shared 512", qwen3_next_80b_a3b},
    {"qwen3.5-35b-a3b", "Qwen3.5-35B-A3B text model: 40 layers (30 Gated DeltaNet), dim 2048, "
     "256 experts top-8 (FFN 512) + shared 512", qwen3_5_35b_a3b},
    {"gpt-oss-20b", "gpt-oss-20b: 24 layers, dim 2880, GQA 64/8, 32 experts top-4 (FFN 2880), MXFP4 experts", gpt_oss_20b},
    {"gpt-oss-120b", "gpt-oss-120b: 36 layers, dim 2880, GQA 64/8, 128 experts top-4 (FFN 2880), MXFP4 experts", gpt_oss_120b},
    {"deepseek-v2-lite", "DeepSeek-V2-Lite: 27 layers, dim 2048, latent attention (kv 512), "
     "64 experts top-6 (FFN 1408) + 2 shared", deepseek_v2_lite},
    {"deepseek-v3", "DeepSeek-V3: 61 layers, dim 7168, latent attention (q 1536, kv 512), "
     "256 experts in 8 groups top-8 (FFN 2048) + 1 shared", deepseek_v3},
    {"kimi-k2", "Kimi-K2: 61 layers, dim 7168, latent attention, 384 experts top-8 (FFN 2048) "
     "+ 1 shared", kimi_k2},
    {"glm-4.5-air", "GLM-4.5-Air: 46 layers, dim 4096, GQA 96/8, partial RoPE, 128 experts "
     "top-8 (FFN 1408) + 1 shared", glm_4_5_air},
    {"tiny", "mixtral layout, 2 layers, dim 64, vocab 512, 4 experts top-2", tiny},
    {"tiny-olmoe", "olmoe layout, 2 layers, dim 64, vocab 512, 8 experts top-2", tiny_olmoe},
    {"tiny-qwen3", "qwen3_moe layout, 2 layers, dim 64, head dim 32, 8 experts top-2", tiny_qwen3},
    {"tiny-qwen2", "qwen2_moe layout, 2 layers, dim 64, qkv bias, shared expert", tiny_qwen2},
    {"tiny-gpt-oss", "gpt_oss layout, 2 layers, dim 64, sinks, sliding window 8, YaRN, MXFP4 experts", tiny_gpt_oss},
    {"tiny-deepseek-v3", "deepseek_v3 layout, 3 layers, dim 64, latent attention, 8 experts in "
     "4 groups, YaRN", tiny_deepseek_v3},
};
const int n_presets = (int)(sizeof presets / sizeof presets[0]);

const preset *preset_find(const char *name) {
    for (int i = 0; i < n_presets; i++)
        if (!strcmp(presets[i].name, name)) return &presets[i];
    return NULL;
}
