/*
 * presets.c - model shapes for `moe init`. The numbers of the real models are
 * those of their Hugging Face config.json files:
 *   allenai/OLMoE-1B-7B-0924, mistralai/Mixtral-8x7B-v0.1,
 *   Qwen/Qwen3-30B-A3B, Qwen/Qwen2-57B-A14B, Qwen/Qwen3-Next-80B-A3B-Instruct.
 * qwen3.5-35b-a3b takes the shapes of Qwen/Qwen3.5-35B-A3B (40 layers, dim
 * 2048, 256 experts top-8 of 512, shared 512, vocab 248320) and everything
 * else from transformers 5.23's Qwen3_5MoeTextConfig defaults (context 32768,
 * rope_theta 10000, no bos/eos), written as its text model
 * (Qwen3_5MoeForCausalLM, model_type qwen3_5_moe_text).
 * The tiny presets have one of each architecture's switches on, small enough
 * for tests (a few hundred KiB).
 */
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

const preset presets[] = {
    {"olmoe-1b-7b", "OLMoE-1B-7B: 16 layers, dim 2048, 64 experts top-8 (FFN 1024), qk-norm", olmoe_1b_7b},
    {"mixtral-8x7b", "Mixtral-8x7B: 32 layers, dim 4096, GQA 32/8, 8 experts top-2 (FFN 14336)", mixtral_8x7b},
    {"qwen3-30b-a3b", "Qwen3-30B-A3B: 48 layers, dim 2048, GQA 32/4, 128 experts top-8 (FFN 768)", qwen3_30b_a3b},
    {"qwen2-57b-a14b", "Qwen2-57B-A14B: 28 layers, dim 3584, 64 experts top-8 (FFN 2560) + shared 20480", qwen2_57b_a14b},
    {"qwen3-next-80b-a3b", "Qwen3-Next-80B-A3B: 48 layers (36 Gated DeltaNet), dim 2048, "
     "512 experts top-10 (FFN 512) + shared 512", qwen3_next_80b_a3b},
    {"qwen3.5-35b-a3b", "Qwen3.5-35B-A3B text model: 40 layers (30 Gated DeltaNet), dim 2048, "
     "256 experts top-8 (FFN 512) + shared 512", qwen3_5_35b_a3b},
    {"tiny", "mixtral layout, 2 layers, dim 64, vocab 512, 4 experts top-2", tiny},
    {"tiny-olmoe", "olmoe layout, 2 layers, dim 64, vocab 512, 8 experts top-2", tiny_olmoe},
    {"tiny-qwen3", "qwen3_moe layout, 2 layers, dim 64, head dim 32, 8 experts top-2", tiny_qwen3},
    {"tiny-qwen2", "qwen2_moe layout, 2 layers, dim 64, qkv bias, shared expert", tiny_qwen2},
};
const int n_presets = (int)(sizeof presets / sizeof presets[0]);

const preset *preset_find(const char *name) {
    for (int i = 0; i < n_presets; i++)
        if (!strcmp(presets[i].name, name)) return &presets[i];
    return NULL;
}
