/*
 * hf_config_validate.c - moe_config_validate: a moe_config (parsed from
 * config.json or built by hand, e.g. by the trainer) is checked before any
 * size in it is used: positive sizes below "absurd" limits, heads divisible
 * by kv heads, top_k <= experts, enums in range, and the parameter count of
 * the whole model computed with overflow checks, so every product the loader
 * forms later fits int64.
 */
#include "formats/hf_config.h"
#include "base/err.h"

#include <math.h>
#include <stdint.h>

/* "Absurd" limits: far above any real model, low enough that every size
 * product below fits in int64 with room to spare. */
#define HF_MAX_VOCAB (1 << 24)
#define HF_MAX_DIM (1 << 20)
#define HF_MAX_HEADS (1 << 16)
#define HF_MAX_FFN (1 << 24)
#define HF_MAX_EXPERTS (1 << 16)

/* Every check below fails the same way: a message and -1. */
#define BAD(...) return moe_fail(err, __VA_ARGS__)

static int hf_check_layer(const moe_config *c, int i, const char *where, moe_err *err) {
    const moe_layer_config *l = &c->layer[i];
    if (l->moe != 0 && l->moe != 1) BAD("%s: layer %d: moe must be 0 or 1 (got %d)", where, i, l->moe);
    if (l->full_attention != 0 && l->full_attention != 1)
        BAD("%s: layer %d: full_attention must be 0 or 1 (got %d)", where, i, l->full_attention);
    if (!l->moe) {
        if (l->act != MOE_ACT_SILU || l->router_bias || l->expert_bias)
            BAD("%s: layer %d: a dense layer has the SiLU SwiGLU and no router or expert biases",
                where, i);
        if (l->ffn_dim <= 0 || l->ffn_dim > HF_MAX_FFN)
            BAD("%s: layer %d: dense ffn_dim %d out of range", where, i, l->ffn_dim);
        return 0;
    }
    if (l->n_experts <= 0 || l->n_experts > HF_MAX_EXPERTS)
        BAD("%s: layer %d: n_experts %d out of range", where, i, l->n_experts);
    if (l->top_k <= 0 || l->top_k > l->n_experts)
        BAD("%s: layer %d: top_k %d out of range (1..%d experts)", where, i, l->top_k,
            l->n_experts);
    if (l->expert_dim <= 0 || l->expert_dim > HF_MAX_FFN)
        BAD("%s: layer %d: expert_dim %d out of range", where, i, l->expert_dim);
    if (l->n_shared < 0 || l->n_shared > HF_MAX_EXPERTS)
        BAD("%s: layer %d: n_shared %d out of range", where, i, l->n_shared);
    if (l->n_shared > 0 && (l->shared_dim <= 0 || l->shared_dim > HF_MAX_FFN))
        BAD("%s: layer %d: shared_dim %d out of range", where, i, l->shared_dim);
    if (l->shared_gate != 0 && l->shared_gate != 1)
        BAD("%s: layer %d: shared_gate must be 0 or 1 (got %d)", where, i, l->shared_gate);
    if (l->score != MOE_SCORE_SOFTMAX && l->score != MOE_SCORE_SIGMOID &&
        l->score != MOE_SCORE_TOPK_SOFTMAX)
        BAD("%s: layer %d: unknown score function %d", where, i, (int)l->score);
    if (l->score == MOE_SCORE_TOPK_SOFTMAX && l->kind != MOE_ROUTE_TOKEN_CHOICE)
        BAD("%s: layer %d: softmax over the top-k needs token-choice routing", where, i);
    if ((l->router_bias != 0 && l->router_bias != 1) ||
        (l->expert_bias != 0 && l->expert_bias != 1))
        BAD("%s: layer %d: router_bias / expert_bias must be 0 or 1", where, i);
    if (l->act != MOE_ACT_SILU && l->act != MOE_ACT_OSS_GLU)
        BAD("%s: layer %d: unknown activation %d", where, i, (int)l->act);
    if (l->act == MOE_ACT_OSS_GLU &&
        !(l->act_limit > 0 && isfinite(l->act_limit) && isfinite(l->act_alpha)))
        BAD("%s: layer %d: swiglu_limit %g / swiglu_alpha %g out of range (limit > 0)", where, i,
            l->act_limit, l->act_alpha);
    if (l->act == MOE_ACT_OSS_GLU && l->n_shared > 0)
        BAD("%s: layer %d: the clamped SwiGLU has no shared expert", where, i);
    if (l->norm_topk != 0 && l->norm_topk != 1)
        BAD("%s: layer %d: norm_topk must be 0 or 1 (got %d)", where, i, l->norm_topk);
    if (!(l->routed_scale > 0 && isfinite(l->routed_scale)))
        BAD("%s: layer %d: routed_scaling_factor %g out of range", where, i, l->routed_scale);
    if (l->select_bias != 0 && l->select_bias != 1)
        BAD("%s: layer %d: select_bias must be 0 or 1 (got %d)", where, i, l->select_bias);
    if (!(l->noise >= 0 && isfinite(l->noise)))
        BAD("%s: layer %d: noise %g out of range", where, i, l->noise);
    if (l->kind != MOE_ROUTE_TOKEN_CHOICE && l->kind != MOE_ROUTE_EXPERT_CHOICE &&
        l->kind != MOE_ROUTE_HASH)
        BAD("%s: layer %d: unknown router kind %d", where, i, (int)l->kind);
    if (!(l->capacity_factor >= 0 && l->capacity_factor <= 1e6))
        BAD("%s: layer %d: capacity_factor %g out of range", where, i, l->capacity_factor);
    if (l->kind == MOE_ROUTE_EXPERT_CHOICE && l->capacity_factor <= 0)
        BAD("%s: layer %d: expert choice routing needs capacity_factor > 0", where, i);
    if (l->group != MOE_GROUP_NONE && l->group != MOE_GROUP_MAX && l->group != MOE_GROUP_TOP2_SUM)
        BAD("%s: layer %d: unknown group routing %d", where, i, (int)l->group);
    if (l->group != MOE_GROUP_NONE) {
        if (l->kind != MOE_ROUTE_TOKEN_CHOICE || l->score == MOE_SCORE_TOPK_SOFTMAX)
            BAD("%s: layer %d: group-limited routing needs token choice over softmax or sigmoid "
                "scores", where, i);
        if (l->n_group < 2 || l->n_group > l->n_experts || l->n_experts % l->n_group)
            BAD("%s: layer %d: n_group %d does not divide %d experts into groups", where, i,
                l->n_group, l->n_experts);
        if (l->topk_group < 1 || l->topk_group > l->n_group)
            BAD("%s: layer %d: topk_group %d out of range (1..%d)", where, i, l->topk_group,
                l->n_group);
        if (l->group == MOE_GROUP_TOP2_SUM && l->n_experts / l->n_group < 2)
            BAD("%s: layer %d: groups of one expert (the group score sums the best two)", where,
                i);
        if (l->top_k > l->topk_group * (l->n_experts / l->n_group))
            BAD("%s: layer %d: top_k %d more than the experts of %d groups", where, i, l->top_k,
                l->topk_group);
    }
    return 0;
}

/* a += b * c, with overflow detection. */
static int hf_madd(int64_t *a, int64_t b, int64_t c) {
    int64_t p;
    return __builtin_mul_overflow(b, c, &p) || __builtin_add_overflow(*a, p, a);
}

int moe_config_validate(const moe_config *c, const char *where, moe_err *err) {
    if (!where) where = "config";
    if (c->arch != MOE_ARCH_MIXTRAL && c->arch != MOE_ARCH_QWEN2_MOE &&
        c->arch != MOE_ARCH_QWEN3_MOE && c->arch != MOE_ARCH_OLMOE && c->arch != MOE_ARCH_GPT_OSS &&
        c->arch != MOE_ARCH_QWEN3_NEXT && c->arch != MOE_ARCH_QWEN3_5_MOE &&
        c->arch != MOE_ARCH_DEEPSEEK_V2 && c->arch != MOE_ARCH_DEEPSEEK_V3 &&
        c->arch != MOE_ARCH_GLM4_MOE)
        BAD("%s: unknown architecture %d", where, (int)c->arch);
    if (c->vocab <= 0 || c->vocab > HF_MAX_VOCAB)
        BAD("%s: vocab_size %d out of range (1..%d)", where, c->vocab, HF_MAX_VOCAB);
    if (c->dim <= 0 || c->dim > HF_MAX_DIM)
        BAD("%s: hidden_size %d out of range (1..%d)", where, c->dim, HF_MAX_DIM);
    if (c->n_layers <= 0 || c->n_layers > MOE_MAX_LAYERS)
        BAD("%s: num_hidden_layers %d out of range (1..%d)", where, c->n_layers, MOE_MAX_LAYERS);
    if (c->n_heads <= 0 || c->n_heads > HF_MAX_HEADS)
        BAD("%s: num_attention_heads %d out of range", where, c->n_heads);
    if (c->n_kv_heads <= 0 || c->n_kv_heads > c->n_heads)
        BAD("%s: num_key_value_heads %d out of range (1..%d)", where, c->n_kv_heads, c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        BAD("%s: num_attention_heads %d not divisible by num_key_value_heads %d", where,
            c->n_heads, c->n_kv_heads);
    if (c->head_dim <= 0 || c->head_dim > HF_MAX_HEADS)
        BAD("%s: head_dim %d out of range", where, c->head_dim);
    if (c->head_dim % 2) BAD("%s: head_dim %d is odd (RoPE needs pairs)", where, c->head_dim);
    if ((int64_t)c->n_heads * c->head_dim > HF_MAX_DIM * 16)
        BAD("%s: num_attention_heads x head_dim too large", where);
    if (c->max_pos <= 0) BAD("%s: max_position_embeddings %d out of range", where, c->max_pos);
    if (!(c->rope_theta > 0 && isfinite(c->rope_theta)))
        BAD("%s: rope_theta %g out of range", where, c->rope_theta);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        BAD("%s: rms_norm_eps %g out of range", where, c->norm_eps);
    if (c->qk_norm != MOE_QKNORM_NONE && c->qk_norm != MOE_QKNORM_HEAD &&
        c->qk_norm != MOE_QKNORM_FULL)
        BAD("%s: unknown qk norm %d", where, (int)c->qk_norm);
    if (c->qk_norm == MOE_QKNORM_FULL && (int64_t)c->n_heads * c->head_dim != c->dim)
        BAD("%s: q/k norm over the whole projection needs num_attention_heads x head_dim "
            "(%d x %d) == hidden_size %d", where, c->n_heads, c->head_dim, c->dim);
    if ((c->qkv_bias != 0 && c->qkv_bias != 1) || (c->o_bias != 0 && c->o_bias != 1))
        BAD("%s: qkv_bias / o_bias must be 0 or 1", where);
    if (!(c->clip_qkv >= 0 && isfinite(c->clip_qkv)))
        BAD("%s: clip_qkv %g out of range", where, c->clip_qkv);
    if (c->tied_embeddings != 0 && c->tied_embeddings != 1)
        BAD("%s: tie_word_embeddings must be 0 or 1", where);
    if (c->sliding_window < 0) BAD("%s: sliding_window %d negative", where, c->sliding_window);
    if (c->attn_sinks != 0 && c->attn_sinks != 1) BAD("%s: attn_sinks must be 0 or 1", where);
    if (c->rope_kind != MOE_ROPE_DEFAULT && c->rope_kind != MOE_ROPE_YARN)
        BAD("%s: unknown rope kind %d", where, (int)c->rope_kind);
    if (c->rope_kind == MOE_ROPE_YARN &&
        (!(c->rope_factor > 0 && isfinite(c->rope_factor)) || !(c->rope_beta_fast > 0) ||
         !(c->rope_beta_slow > 0) || !isfinite(c->rope_beta_fast) || !isfinite(c->rope_beta_slow) ||
         c->rope_orig_max_pos <= 0 || !(c->rope_attn_factor > 0 && isfinite(c->rope_attn_factor)) ||
         (c->rope_truncate != 0 && c->rope_truncate != 1)))
        BAD("%s: YaRN parameters out of range (factor %g, beta_fast %g, beta_slow %g, "
            "original_max_position_embeddings %d, attention_factor %g)", where, c->rope_factor,
            c->rope_beta_fast, c->rope_beta_slow, c->rope_orig_max_pos, c->rope_attn_factor);
    if (c->bos_id < -1 || c->eos_id < -1)
        BAD("%s: bos/eos token id out of range (%d, %d)", where, c->bos_id, c->eos_id);
    if ((c->norm_offset != 0 && c->norm_offset != 1) ||
        (c->attn_out_gate != 0 && c->attn_out_gate != 1))
        BAD("%s: norm_offset / attn_out_gate must be 0 or 1", where);
    if (c->rope_dim < 0 || c->rope_dim > c->head_dim || c->rope_dim % 2)
        BAD("%s: rotary dims %d out of range (even, at most head_dim %d)", where, c->rope_dim,
            c->head_dim);
    if (c->kv_lora_rank < 0 || c->kv_lora_rank > (1 << 14))
        BAD("%s: kv_lora_rank %d out of range", where, c->kv_lora_rank);
    if (c->kv_lora_rank > 0 &&
        (c->q_lora_rank < 0 || c->q_lora_rank > HF_MAX_DIM || c->qk_nope_dim <= 0 ||
         c->qk_rope_dim <= 0 || c->qk_rope_dim % 2 || c->qk_rope_dim > MOE_MLA_MAX_ROPE || c->v_head_dim <= 0 ||
         c->v_head_dim > HF_MAX_HEADS || c->head_dim != c->qk_nope_dim + c->qk_rope_dim ||
         c->rope_dim != c->qk_rope_dim || c->n_kv_heads != c->n_heads ||
         c->qkv_bias || c->o_bias || c->qk_norm != MOE_QKNORM_NONE || c->clip_qkv > 0 ||
         c->attn_sinks || c->attn_out_gate || c->sliding_window))
        BAD("%s: latent attention sizes inconsistent (q_lora_rank %d, qk_nope %d + qk_rope %d "
            "= head_dim %d, rotary dims %d, v_head_dim %d; no biases, norms, sinks, windows)",
            where, c->q_lora_rank, c->qk_nope_dim, c->qk_rope_dim, c->head_dim, c->rope_dim,
            c->v_head_dim);
    if ((c->rope_interleave != 0 && c->rope_interleave != 1) ||
        !(c->attn_scale >= 0 && isfinite(c->attn_scale)) || c->n_mtp_layers < 0)
        BAD("%s: rope_interleave / attention scale / multi-token-prediction layers out of range",
            where);
    int n_lin = 0;
    for (int i = 0; i < c->n_layers; i++) {
        if (c->layer[i].linear_attn != 0 && c->layer[i].linear_attn != 1)
            BAD("%s: layer %d: linear_attn must be 0 or 1 (got %d)", where, i,
                c->layer[i].linear_attn);
        n_lin += c->layer[i].linear_attn;
    }
    if (n_lin) {
        const int lin[5] = {c->lin_k_heads, c->lin_v_heads, c->lin_k_dim, c->lin_v_dim, c->lin_conv};
        for (int k = 0; k < 5; k++)
            if (lin[k] <= 0 || lin[k] > HF_MAX_HEADS)
                BAD("%s: linear attention sizes out of range (key heads %d, value heads %d, key "
                    "dim %d, value dim %d, conv kernel %d)", where, c->lin_k_heads,
                    c->lin_v_heads, c->lin_k_dim, c->lin_v_dim, c->lin_conv);
        if (c->lin_conv > MOE_LIN_MAX_CONV)
            BAD("%s: linear attention: conv kernel %d longer than the %d supported", where,
                c->lin_conv, MOE_LIN_MAX_CONV);
        if (c->lin_v_heads % c->lin_k_heads)
            BAD("%s: linear attention: %d value heads not a multiple of %d key heads", where,
                c->lin_v_heads, c->lin_k_heads);
    }

    /* Mixture-of-Depths: a compacted per-layer KV cache of attention layers */
    int n_mod = 0;
    for (int i = 0; i < c->n_layers; i++) {
        const moe_layer_config *l = &c->layer[i];
        if (l->mod != 0 && l->mod != 1)
            BAD("%s: layer %d: mod must be 0 or 1 (got %d)", where, i, l->mod);
        n_mod += l->mod;
        if (!l->mod) continue;
        if (l->linear_attn)
            BAD("%s: layer %d: Mixture-of-Depths needs an attention layer, not linear attention "
                "(Gated DeltaNet)", where, i);
        if (c->kv_lora_rank)
            BAD("%s: layer %d: Mixture-of-Depths with latent attention (kv_lora_rank) is not "
                "supported", where, i);
        if (c->sliding_window > 0 && !l->full_attention)
            BAD("%s: layer %d: Mixture-of-Depths with a sliding window is not supported (the "
                "window would count the tokens a MoD layer took, not positions)", where, i);
    }
    if (n_mod && !(c->mod_capacity > 0 && c->mod_capacity <= 1))
        BAD("%s: Mixture-of-Depths capacity %g is not in (0, 1]", where, c->mod_capacity);
    if (!n_mod && c->mod_capacity != 0)
        BAD("%s: Mixture-of-Depths capacity %g but no MoD layer", where, c->mod_capacity);

    /* Every size product the loader forms must fit int64: count parameters. */
    int64_t D = c->dim, V = c->vocab, q = (int64_t)c->n_heads * c->head_dim,
            kv = (int64_t)c->n_kv_heads * c->head_dim, n = 0;
    int ovf = hf_madd(&n, V, D * (c->tied_embeddings ? 1 : 2));
    for (int i = 0; i < c->n_layers; i++) {
        if (hf_check_layer(c, i, where, err)) return -1;
        const moe_layer_config *l = &c->layer[i];
        if (l->linear_attn) { /* in_proj_qkvz, in_proj_ba, out_proj, conv */
            int64_t kd = (int64_t)c->lin_k_heads * c->lin_k_dim,
                    vd = (int64_t)c->lin_v_heads * c->lin_v_dim;
            ovf |= hf_madd(&n, D, 2 * kd + 3 * vd + 2 * (int64_t)c->lin_v_heads);
            ovf |= hf_madd(&n, 2 * kd + vd, c->lin_conv);
        } else if (c->kv_lora_rank > 0) { /* q (or its two halves), kv_a, kv_b, o */
            int64_t qr = c->q_lora_rank, r = c->kv_lora_rank, H = c->n_heads;
            ovf |= hf_madd(&n, qr ? D + q : D, qr ? qr : q);
            ovf |= hf_madd(&n, D + H * (c->qk_nope_dim + c->v_head_dim), r + c->qk_rope_dim);
            ovf |= hf_madd(&n, D, H * c->v_head_dim);
        } else {
            ovf |= hf_madd(&n, D, 3 * q + 2 * kv);
        }
        ovf |= hf_madd(&n, D, l->mod); /* the MoD router [1][D] */
        if (!l->moe) {
            ovf |= hf_madd(&n, 3 * D, l->ffn_dim);
        } else {
            int64_t per;
            ovf |= __builtin_mul_overflow((int64_t)l->n_experts * 3 * D, (int64_t)l->expert_dim,
                                          &per);
            ovf |= __builtin_add_overflow(n, per, &n);
            ovf |= hf_madd(&n, 3 * D * (int64_t)l->n_shared, l->shared_dim);
            ovf |= hf_madd(&n, D, l->n_experts + 1);
            ovf |= hf_madd(&n, 2 * (int64_t)l->expert_dim + D + 1, l->n_experts); /* biases */
        }
    }
    if (ovf || n > ((int64_t)1 << 50))
        BAD("%s: sizes too large (parameter count overflows)", where);
#undef BAD
    return 0;
}
