/*
 * hf_config_deepseek.c - what config.json means for deepseek_v2,
 * deepseek_v3 (kimi_k2 configs name the same architecture) and glm4_moe,
 * as transformers 5.23 computes them (configuration_*.py, modeling_*.py):
 *
 *   attention (deepseek)  multi-head latent attention: q = q_proj(x), or
 *               q_b_proj(rmsnorm(q_a_proj(x))) with q_lora_rank (null = none;
 *               absent = 1536); [c | k_rope] = kv_a_proj_with_mqa(x), c =
 *               rmsnorm(c) (kv_lora_rank, default 512); per head keys
 *               [W_uk c | k_rope] and values W_uv c from kv_b_proj; heads of
 *               qk_nope_head_dim (128) + qk_rope_head_dim (64), values of
 *               v_head_dim (128). RoPE on the rotary part only, its dims as
 *               interleaved pairs (deepseek_v2 always, deepseek_v3 when
 *               rope_interleave, default true). Softmax scale
 *               1/sqrt(nope + rope), times mscale(factor, mscale_all_dim)^2
 *               when the RoPE is YaRN and mscale_all_dim is set.
 *               attention_bias is refused (no released model has it).
 *   attention (glm4_moe)  GQA with q/k/v biases (attention_bias; o_proj never),
 *               per-head q/k RMSNorm when use_qk_norm, RoPE on the first
 *               partial_rotary_factor (default 0.5) of each head, head_dim
 *               from config.json or hidden / heads.
 *   feed-forward  layers < first_k_dense_replace (v2 0, v3 3, glm 1) are a
 *               dense SwiGLU of intermediate_size; the others MoE:
 *               n_routed_experts (alias num_experts / num_local_experts) of
 *               moe_intermediate_size, top num_experts_per_tok, plus
 *               n_shared_experts always-on experts as one SwiGLU of
 *               moe_intermediate_size * n_shared_experts (no gate);
 *               the routed sum times routed_scaling_factor.
 *   routing    deepseek_v2: softmax scores; topk_method "greedy" (top-k of
 *               all) or "group_limited_greedy" (n_group groups scored by
 *               their best expert, topk_group kept); the top-k weights are
 *               never renormalized (transformers ignores norm_topk_prob).
 *               deepseek_v3 / glm4_moe: sigmoid scores; selection by score +
 *               e_score_correction_bias, groups scored by the sum of their
 *               two best (n_group, topk_group: v3 8/4, glm 1/1); weights the
 *               plain scores, renormalized when norm_topk_prob (default
 *               true).
 *   moe_layer_freq  transformers ignores it: only 1 (every layer past the
 *               dense ones) is accepted.
 *   num_nextn_predict_layers  multi-token-prediction layers kept after the
 *               last decoder layer (model.layers.L...): recorded, not loaded.
 * Released checkpoints give rope_theta and rope_scaling at the top level;
 * transformers 5 writes rope_parameters: both read the same (hf_config.c).
 * hf_deepseek_write gives the fields back (transformers 5's spelling; kimi_k2
 * as deepseek_v3, its architecture), and hf_config_write checks the re-read.
 */
#include <math.h>
#include <string.h>

#include "base/err.h"
#include "formats/hf_config.h"
#include "formats/hf_config_impl.h"

/* transformers' yarn_get_mscale */
static double mscale_of(double scale, double m) {
    return scale <= 1 ? 1.0 : 0.1 * m * log(scale) + 1.0;
}

float hf_mla_scale(int head_dim, int yarn, float factor, float mscale_all_dim) {
    double s = 1.0 / sqrt((double)head_dim);
    if (yarn && mscale_all_dim != 0) {
        double m = mscale_of(factor, mscale_all_dim);
        s *= m * m;
    }
    return (float)s;
}

/* A size field that must be positive; absent -> def, null -> error. */
static int ds_pos(const hf_in *in, const char *key, int def, int *out) {
    if (hf_int(in, key, def, out)) return -1;
    if (*out <= 0)
        return moe_fail(in->err, "%s: field %s: must be positive (got %d)", in->where, key, *out);
    return 0;
}

static int ds_attention(const hf_in *in, moe_config *cfg) {
    int bias;
    if (hf_bool(in, in->root, "attention_bias", 0, &bias)) return -1;
    if (bias)
        return moe_fail(in->err, "%s: field attention_bias: true is not supported for latent "
                        "attention", in->where);
    cfg->q_lora_rank = 0;
    const cJSON *q = hf_get(in->root, "q_lora_rank");
    if (q || !hf_has(in->root, "q_lora_rank")) { /* null: q_proj */
        if (ds_pos(in, "q_lora_rank", 1536, &cfg->q_lora_rank)) return -1;
    }
    if (ds_pos(in, "kv_lora_rank", 512, &cfg->kv_lora_rank)) return -1;
    if (ds_pos(in, "qk_nope_head_dim", 128, &cfg->qk_nope_dim)) return -1;
    if (ds_pos(in, "qk_rope_head_dim", 64, &cfg->qk_rope_dim)) return -1;
    if (ds_pos(in, "v_head_dim", 128, &cfg->v_head_dim)) return -1;
    if (cfg->qk_rope_dim % 2)
        return moe_fail(in->err, "%s: field qk_rope_head_dim: %d is odd (RoPE needs pairs)",
                        in->where, cfg->qk_rope_dim);
    if (cfg->qk_nope_dim > (1 << 14) || cfg->qk_rope_dim > (1 << 14) ||
        cfg->v_head_dim > (1 << 14) || cfg->kv_lora_rank > (1 << 14) ||
        cfg->q_lora_rank > (1 << 20))
        return moe_fail(in->err, "%s: latent attention sizes out of range (q_lora_rank %d, "
                        "kv_lora_rank %d, qk_nope_head_dim %d, qk_rope_head_dim %d, v_head_dim "
                        "%d)", in->where, cfg->q_lora_rank, cfg->kv_lora_rank, cfg->qk_nope_dim,
                        cfg->qk_rope_dim, cfg->v_head_dim);
    cfg->head_dim = cfg->qk_nope_dim + cfg->qk_rope_dim;
    cfg->rope_dim = cfg->qk_rope_dim;
    cfg->n_kv_heads = cfg->n_heads; /* every head has its own keys (expanded from the latent) */
    cfg->rope_interleave = 1;
    if (cfg->arch == MOE_ARCH_DEEPSEEK_V3 &&
        hf_bool(in, in->root, "rope_interleave", 1, &cfg->rope_interleave))
        return -1;
    cfg->attn_scale = hf_mla_scale(cfg->head_dim, cfg->rope_kind == MOE_ROPE_YARN,
                                   cfg->rope_factor, cfg->rope_mscale_all_dim);
    return 0;
}

static int glm_attention(const hf_in *in, moe_config *cfg) {
    int bias, qk;
    if (hf_bool(in, in->root, "attention_bias", 0, &bias)) return -1;
    cfg->qkv_bias = bias; /* o_proj never has one */
    if (hf_bool(in, in->root, "use_qk_norm", 0, &qk)) return -1;
    cfg->qk_norm = qk ? MOE_QKNORM_HEAD : MOE_QKNORM_NONE;
    /* partial_rotary_factor: in rope_parameters (transformers 5), else at the
     * top level (released checkpoints), else 0.5 */
    const cJSON *rp = hf_get(in->root, "rope_parameters");
    const cJSON *obj = rp && cJSON_IsObject(rp) && hf_get(rp, "partial_rotary_factor") ? rp
                                                                                       : in->root;
    double f;
    if (hf_num(in, obj, "partial_rotary_factor", 0.5, &f)) return -1;
    int dim = f > 0 && f <= 1 ? (int)(cfg->head_dim * f) : 0; /* int(head_dim * factor) */
    if (dim < 2 || dim % 2)
        return moe_fail(in->err, "%s: field partial_rotary_factor: %g gives %d rotated dims of "
                        "head_dim %d (need an even number >= 2)", in->where, f, dim,
                        cfg->head_dim);
    cfg->rope_dim = dim == cfg->head_dim ? 0 : dim;
    return 0;
}

/* The routed experts' count: n_routed_experts, or the attribute_map alias. */
static int ds_experts(const hf_in *in, const hf_arch *a, int *E) {
    const char *alias = a->arch == MOE_ARCH_DEEPSEEK_V2 ? "num_experts" : "num_local_experts";
    const char *key = hf_has(in->root, "n_routed_experts") || !hf_has(in->root, alias)
                          ? "n_routed_experts" : alias;
    return ds_pos(in, key, a->experts, E);
}

/* The groups of group-limited routing into moe. */
static int ds_groups(const hf_in *in, const hf_arch *a, moe_layer_config *moe) {
    int v2 = a->arch == MOE_ARCH_DEEPSEEK_V2;
    if (v2) {
        const cJSON *m = hf_get(in->root, "topk_method");
        if (m && !cJSON_IsString(m))
            return moe_fail(in->err, "%s: field topk_method: wrong JSON type (expected a string)",
                            in->where);
        if (!m || !strcmp(m->valuestring, "greedy")) return 0;
        if (strcmp(m->valuestring, "group_limited_greedy"))
            return moe_fail(in->err, "%s: field topk_method: \"%.40s\" is not supported "
                            "(greedy, group_limited_greedy)", in->where, m->valuestring);
        moe->group = MOE_GROUP_MAX;
    } else {
        moe->group = MOE_GROUP_TOP2_SUM;
    }
    int def_g = a->arch == MOE_ARCH_DEEPSEEK_V3 ? 8 : 1, def_k = a->arch == MOE_ARCH_DEEPSEEK_V3 ? 4 : 1;
    if (ds_pos(in, "n_group", v2 ? -1 : def_g, &moe->n_group)) return -1;
    if (ds_pos(in, "topk_group", v2 ? -1 : def_k, &moe->topk_group)) return -1;
    int E = moe->n_experts, G = moe->n_group;
    if (E % G)
        return moe_fail(in->err, "%s: field n_group: %d groups do not divide %d experts",
                        in->where, G, E);
    if (moe->topk_group > G)
        return moe_fail(in->err, "%s: field topk_group: %d more than the %d groups", in->where,
                        moe->topk_group, G);
    if (moe->group == MOE_GROUP_TOP2_SUM && E / G < 2)
        return moe_fail(in->err, "%s: field n_group: groups of %d expert (the group score "
                        "sums the best two)", in->where, E / G);
    if (moe->top_k > moe->topk_group * (E / G))
        return moe_fail(in->err, "%s: field num_experts_per_tok: %d more than the %d experts "
                        "of topk_group %d groups", in->where, moe->top_k,
                        moe->topk_group * (E / G), moe->topk_group);
    if (G == 1) moe->group = MOE_GROUP_NONE, moe->n_group = moe->topk_group = 0;
    return 0;
}

int hf_deepseek(const hf_in *in, const hf_arch *a, moe_config *cfg) {
    int glm = a->arch == MOE_ARCH_GLM4_MOE, v2 = a->arch == MOE_ARCH_DEEPSEEK_V2;
    if (hf_get(in->root, "moe"))
        return moe_fail(in->err, "%s: field moe: not read for %s (its routing is fixed)",
                        in->where, a->name);
    if (glm ? glm_attention(in, cfg) : ds_attention(in, cfg)) return -1;
    if (!v2 && hf_int(in, "num_nextn_predict_layers", 1, &cfg->n_mtp_layers)) return -1;
    if (cfg->n_mtp_layers < 0)
        return moe_fail(in->err, "%s: field num_nextn_predict_layers: negative (%d)", in->where,
                        cfg->n_mtp_layers);

    moe_layer_config moe = {.moe = 1, .kind = MOE_ROUTE_TOKEN_CHOICE};
    int inter, n_shared, first_dense, freq;
    if (hf_int(in, "first_k_dense_replace", a->arch == MOE_ARCH_DEEPSEEK_V3 ? 3 : v2 ? 0 : 1,
               &first_dense))
        return -1;
    if (first_dense < 0)
        return moe_fail(in->err, "%s: field first_k_dense_replace: negative (%d)", in->where,
                        first_dense);
    if (first_dense >= cfg->n_layers) { /* all dense: no routing field read (nor written) */
        if (ds_pos(in, "intermediate_size", a->inter, &inter)) return -1;
        for (int i = 0; i < cfg->n_layers; i++)
            cfg->layer[i] = (moe_layer_config){.moe = 0, .ffn_dim = inter, .routed_scale = 1.0f};
        return 0;
    }
    if (ds_experts(in, a, &moe.n_experts)) return -1;
    if (ds_pos(in, "num_experts_per_tok", a->top_k, &moe.top_k)) return -1;
    if (moe.top_k > moe.n_experts)
        return moe_fail(in->err, "%s: field num_experts_per_tok: %d more than the %d experts",
                        in->where, moe.top_k, moe.n_experts);
    if (ds_pos(in, "moe_intermediate_size", a->moe_inter, &moe.expert_dim)) return -1;
    if (ds_pos(in, "intermediate_size", a->inter, &inter)) return -1;
    if (hf_int(in, "n_shared_experts", v2 ? 2 : 1, &n_shared)) return -1;
    if (n_shared < 0 || n_shared > (1 << 10))
        return moe_fail(in->err, "%s: field n_shared_experts: %d out of range", in->where,
                        n_shared);
    if (n_shared > 0) moe.n_shared = n_shared, moe.shared_dim = n_shared * moe.expert_dim;
    double rs;
    if (hf_num(in, in->root, "routed_scaling_factor", a->arch == MOE_ARCH_DEEPSEEK_V3 ? 2.5 : 1.0,
               &rs))
        return -1;
    if (!(rs > 0 && rs < 1e6))
        return moe_fail(in->err, "%s: field routed_scaling_factor: %g out of range", in->where,
                        rs);
    moe.routed_scale = (float)rs;
    if (v2) {
        moe.score = MOE_SCORE_SOFTMAX;
        moe.norm_topk = 0;
    } else {
        moe.score = MOE_SCORE_SIGMOID;
        moe.select_bias = 1;
        if (hf_bool(in, in->root, "norm_topk_prob", 1, &moe.norm_topk)) return -1;
    }
    if (ds_groups(in, a, &moe)) return -1;
    if (hf_int(in, "moe_layer_freq", 1, &freq)) return -1;
    if (freq != 1)
        return moe_fail(in->err, "%s: field moe_layer_freq: %d is not supported (only 1; "
                        "transformers ignores it)", in->where, freq);
    moe.ffn_dim = inter; /* kept for the dense layers' width */
    for (int i = 0; i < cfg->n_layers; i++)
        cfg->layer[i] = i >= first_dense ? moe
                                         : (moe_layer_config){.moe = 0, .ffn_dim = inter,
                                                              .routed_scale = 1.0f};
    return 0;
}

/* ---------------------------------------------------------------- writing */

static void put_int(cJSON *o, const char *k, int v) {
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    cJSON_AddNumberToObject(o, k, v);
}

void hf_deepseek_write(cJSON *o, const moe_config *c) {
    const moe_layer_config *m = NULL, *d = NULL;
    int first_dense = 0;
    for (int i = 0; i < c->n_layers; i++) {
        if (c->layer[i].moe && !m) m = &c->layer[i];
        if (!c->layer[i].moe && !d) d = &c->layer[i];
        if (!m) first_dense++; /* a dense layer after an MoE one shows up when read back */
    }
    int glm = c->arch == MOE_ARCH_GLM4_MOE, v2 = c->arch == MOE_ARCH_DEEPSEEK_V2;
    if (m) {
        put_int(o, "n_routed_experts", m->n_experts);
        put_int(o, "moe_intermediate_size", m->expert_dim);
        put_int(o, "n_shared_experts", m->n_shared && m->expert_dim ? m->shared_dim / m->expert_dim : 0);
        cJSON_AddItemToObject(o, "routed_scaling_factor", hf_float(m->routed_scale));
        if (!v2) cJSON_AddBoolToObject(o, "norm_topk_prob", m->norm_topk);
        int grouped = m->group != MOE_GROUP_NONE;
        put_int(o, "n_group", grouped ? m->n_group : 1);
        put_int(o, "topk_group", grouped ? m->topk_group : 1);
        if (v2) cJSON_AddStringToObject(o, "topk_method", grouped ? "group_limited_greedy" : "greedy");
    }
    put_int(o, "intermediate_size", d ? d->ffn_dim : m ? m->ffn_dim : 0);
    put_int(o, "first_k_dense_replace", first_dense);
    if (!v2) put_int(o, "num_nextn_predict_layers", c->n_mtp_layers);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "rope_parameters");
    cJSON *rp = cJSON_AddObjectToObject(o, "rope_parameters");
    if (!rp) return;
    cJSON_AddItemToObject(rp, "rope_theta", hf_float(c->rope_theta));
    if (glm) {
        cJSON_AddBoolToObject(o, "attention_bias", c->qkv_bias);
        cJSON_AddBoolToObject(o, "use_qk_norm", c->qk_norm == MOE_QKNORM_HEAD);
        int rd = c->rope_dim ? c->rope_dim : c->head_dim;
        cJSON_AddStringToObject(rp, "rope_type", "default");
        cJSON_AddItemToObject(rp, "partial_rotary_factor", hf_float((double)rd / c->head_dim));
        return;
    }
    cJSON_AddBoolToObject(o, "attention_bias", 0);
    put_int(o, "head_dim", c->qk_rope_dim); /* transformers' meaning: the rotary dims */
    if (c->q_lora_rank) put_int(o, "q_lora_rank", c->q_lora_rank);
    else cJSON_AddNullToObject(o, "q_lora_rank");
    put_int(o, "kv_lora_rank", c->kv_lora_rank);
    put_int(o, "qk_nope_head_dim", c->qk_nope_dim);
    put_int(o, "qk_rope_head_dim", c->qk_rope_dim);
    put_int(o, "v_head_dim", c->v_head_dim);
    if (!v2) cJSON_AddBoolToObject(o, "rope_interleave", c->rope_interleave);
    if (c->rope_kind != MOE_ROPE_YARN) {
        cJSON_AddStringToObject(rp, "rope_type", "default");
        return;
    }
    cJSON_AddStringToObject(rp, "rope_type", "yarn");
    cJSON_AddItemToObject(rp, "factor", hf_float(c->rope_factor));
    cJSON_AddItemToObject(rp, "beta_fast", hf_float(c->rope_beta_fast));
    cJSON_AddItemToObject(rp, "beta_slow", hf_float(c->rope_beta_slow));
    cJSON_AddNumberToObject(rp, "original_max_position_embeddings", c->rope_orig_max_pos);
    if (!c->rope_truncate) cJSON_AddBoolToObject(rp, "truncate", 0);
    if (c->rope_mscale != 0) cJSON_AddItemToObject(rp, "mscale", hf_float(c->rope_mscale));
    if (c->rope_mscale_all_dim != 0)
        cJSON_AddItemToObject(rp, "mscale_all_dim", hf_float(c->rope_mscale_all_dim));
}
