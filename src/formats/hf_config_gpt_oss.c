/*
 * hf_config_gpt_oss.c - what config.json means for gpt_oss, as
 * transformers 5.23 computes it (configuration_gpt_oss.py,
 * modeling_gpt_oss.py, modeling_rope_utils.py):
 *   attention   q/k/v/o biases = attention_bias (default true); a learned
 *               sink logit per head (self_attn.sinks); head_dim absent = 64,
 *               null = hidden / heads;
 *   windows     layer_types (default: "sliding_attention" on even layers,
 *               "full_attention" on odd ones); sliding layers attend to the
 *               last sliding_window positions (default 128), full ones to all;
 *   router      logits = x W^T + b; top-k of the logits, softmax over those k;
 *   experts     biases on gate/up and down; h = (u + 1) * g * sigmoid(alpha g)
 *               with g = min(gate, limit), u = clamp(up, -limit, limit),
 *               alpha = swiglu_alpha (1.702), limit = swiglu_limit (7.0);
 *   RoPE        YaRN by default (factor 32, beta_fast 32, beta_slow 1,
 *               truncate false, original_max_position_embeddings 4096,
 *               theta 150000), or "default". Released checkpoints give
 *               rope_theta and rope_scaling at the top level; transformers 5
 *               writes rope_parameters: both read the same (hf_config.c).
 */
#include <math.h>
#include <string.h>

#include "base/err.h"
#include "formats/hf_config_impl.h"

/* transformers' get_mscale */
static double mscale_of(double scale, double m) {
    return scale <= 1 ? 1.0 : 0.1 * m * log(scale) + 1.0;
}

int hf_yarn(const hf_in *in, const cJSON *rp, const char *src, moe_config *cfg) {
    double factor = 32, fast = 32, slow = 1, attn = 0, ms = 0, msa = 0;
    int orig = 4096, truncate = 0;
    cfg->rope_kind = MOE_ROPE_YARN;
    if (rp) {
        const cJSON *f = hf_get(rp, "factor");
        if (!f)
            return moe_fail(in->err, "%s: field %s.factor: YaRN needs a factor", in->where, src);
        if (hf_num(in, rp, "factor", 0, &factor)) return -1;
        /* `get("beta_fast") or 32`: absent, null and 0 all mean the default */
        if (hf_get(rp, "beta_fast") && hf_num(in, rp, "beta_fast", 32, &fast)) return -1;
        if (hf_get(rp, "beta_slow") && hf_num(in, rp, "beta_slow", 1, &slow)) return -1;
        if (fast == 0) fast = 32;
        if (slow == 0) slow = 1;
        if (hf_get(rp, "attention_factor") && hf_num(in, rp, "attention_factor", 0, &attn))
            return -1;
        if (hf_get(rp, "mscale") && hf_num(in, rp, "mscale", 0, &ms)) return -1;
        if (hf_get(rp, "mscale_all_dim") && hf_num(in, rp, "mscale_all_dim", 0, &msa)) return -1;
        if (hf_bool(in, rp, "truncate", 1, &truncate)) return -1;
        const cJSON *o = hf_get(rp, "original_max_position_embeddings");
        const cJSON *top = hf_get(in->root, "original_max_position_embeddings");
        orig = cfg->max_pos;
        if (top && hf_as_int(in, "original_max_position_embeddings", top, &orig)) return -1;
        else if (!top && o && hf_as_int(in, "original_max_position_embeddings", o, &orig))
            return -1;
        if (hf_get(rp, "partial_rotary_factor")) {
            double prf;
            if (hf_num(in, rp, "partial_rotary_factor", 1, &prf)) return -1;
            if (prf != 1.0)
                return moe_fail(in->err, "%s: field %s.partial_rotary_factor: %g is not "
                                "supported (only 1.0)", in->where, src, prf);
        }
    }
    if (!(factor > 0 && factor < 1e9))
        return moe_fail(in->err, "%s: field %s.factor: %g out of range", in->where, src, factor);
    if (!(fast > 0 && slow > 0 && fast < 1e9 && slow < 1e9))
        return moe_fail(in->err, "%s: field %s: beta_fast %g / beta_slow %g out of range",
                        in->where, src, fast, slow);
    if (orig <= 0)
        return moe_fail(in->err, "%s: field %s.original_max_position_embeddings: %d out of range",
                        in->where, src, orig);
    if (attn == 0) attn = ms && msa ? mscale_of(factor, ms) / mscale_of(factor, msa)
                                    : mscale_of(factor, 1);
    if (!(attn > 0 && attn < 1e9))
        return moe_fail(in->err, "%s: field %s.attention_factor: %g out of range", in->where, src,
                        attn);
    cfg->rope_factor = (float)factor;
    cfg->rope_beta_fast = (float)fast;
    cfg->rope_beta_slow = (float)slow;
    cfg->rope_orig_max_pos = orig;
    cfg->rope_truncate = truncate;
    cfg->rope_attn_factor = (float)attn;
    cfg->rope_mscale = (float)ms;
    cfg->rope_mscale_all_dim = (float)msa;
    return 0;
}

int hf_gpt_oss(const hf_in *in, moe_config *cfg) {
    int bias;
    if (hf_bool(in, in->root, "attention_bias", 1, &bias)) return -1;
    cfg->qkv_bias = cfg->o_bias = bias;
    cfg->attn_sinks = 1;
    if (hf_get(in->root, "moe"))
        return moe_fail(in->err, "%s: field moe: not read for gpt_oss (its routing is fixed)",
                        in->where);

    int L = cfg->n_layers, n_slide = 0;
    /* default: sliding on even layers, as GptOssConfig writes them */
    static const char *const kinds[] = {"full_attention", "sliding_attention"};
    int kind[MOE_MAX_LAYERS];
    for (int i = 0; i < L; i++) kind[i] = (i + 1) % 2;
    if (hf_layer_types(in, L, kinds, 2, kind) < 0) return -1;
    for (int i = 0; i < L; i++) {
        cfg->layer[i].full_attention = !kind[i];
        n_slide += kind[i];
    }
    const cJSON *w = hf_get(in->root, "sliding_window");
    cfg->sliding_window = 128;
    if (w && hf_as_int(in, "sliding_window", w, &cfg->sliding_window)) return -1;
    if (!w && hf_has(in->root, "sliding_window")) cfg->sliding_window = 0;
    if (n_slide > 0 && cfg->sliding_window <= 0)
        return moe_fail(in->err, "%s: field sliding_window: %d is not a usable window for the %d "
                        "sliding_attention layers (must be positive)", in->where,
                        cfg->sliding_window, n_slide);
    if (n_slide == 0) cfg->sliding_window = 0;

    moe_layer_config *l = &cfg->layer[0];
    l->moe = 1;
    l->score = MOE_SCORE_TOPK_SOFTMAX;
    l->routed_scale = 1.0f;
    l->kind = MOE_ROUTE_TOKEN_CHOICE;
    l->router_bias = l->expert_bias = 1;
    l->act = MOE_ACT_OSS_GLU;
    double alpha, limit;
    if (hf_num(in, in->root, "swiglu_alpha", 1.702, &alpha)) return -1;
    if (hf_num(in, in->root, "swiglu_limit", 7.0, &limit)) return -1;
    if (!(limit > 0 && limit < 3e38) || !(fabs(alpha) < 3e38))
        return moe_fail(in->err, "%s: field swiglu_limit %g / swiglu_alpha %g out of range "
                        "(limit must be positive)", in->where, limit, alpha);
    l->act_alpha = (float)alpha;
    l->act_limit = (float)limit;
    return 0;
}

void hf_build_gpt_oss(cJSON *o, const moe_config *c, const moe_layer_config *m) {
    cJSON_AddNumberToObject(o, "num_local_experts", m ? m->n_experts : 0);
    cJSON_AddNumberToObject(o, "intermediate_size", m ? m->expert_dim : 0);
    cJSON_AddBoolToObject(o, "attention_bias", c->qkv_bias);
    cJSON *lt = cJSON_AddArrayToObject(o, "layer_types");
    for (int i = 0; lt && i < c->n_layers; i++)
        cJSON_AddItemToArray(lt, cJSON_CreateString(c->sliding_window > 0 &&
                                                    !c->layer[i].full_attention
                                                    ? "sliding_attention" : "full_attention"));
    if (c->sliding_window > 0) cJSON_AddNumberToObject(o, "sliding_window", c->sliding_window);
    else cJSON_AddNullToObject(o, "sliding_window");
    if (m) {
        cJSON_AddItemToObject(o, "swiglu_alpha", hf_float(m->act_alpha));
        cJSON_AddItemToObject(o, "swiglu_limit", hf_float(m->act_limit));
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "rope_parameters");
    cJSON *rp = cJSON_AddObjectToObject(o, "rope_parameters");
    if (!rp) return;
    cJSON_AddItemToObject(rp, "rope_theta", hf_float(c->rope_theta));
    if (c->rope_kind != MOE_ROPE_YARN) {
        cJSON_AddStringToObject(rp, "rope_type", "default");
        return;
    }
    cJSON_AddStringToObject(rp, "rope_type", "yarn");
    cJSON_AddItemToObject(rp, "factor", hf_float(c->rope_factor));
    cJSON_AddItemToObject(rp, "beta_fast", hf_float(c->rope_beta_fast));
    cJSON_AddItemToObject(rp, "beta_slow", hf_float(c->rope_beta_slow));
    cJSON_AddNumberToObject(rp, "original_max_position_embeddings", c->rope_orig_max_pos);
    cJSON_AddBoolToObject(rp, "truncate", c->rope_truncate);
    if ((float)mscale_of(c->rope_factor, 1) != c->rope_attn_factor)
        cJSON_AddItemToObject(rp, "attention_factor", hf_float(c->rope_attn_factor));
}

void hf_mxfp4_config(cJSON *o) {
    static const char *const keep[] = {"model.layers.*.self_attn", "model.layers.*.mlp.router",
                                       "model.embed_tokens", "lm_head"};
    cJSON *q = cJSON_AddObjectToObject(o, "quantization_config");
    if (!q) return;
    cJSON *m = cJSON_AddArrayToObject(q, "modules_to_not_convert");
    for (size_t i = 0; m && i < sizeof keep / sizeof keep[0]; i++)
        cJSON_AddItemToArray(m, cJSON_CreateString(keep[i]));
    cJSON_AddStringToObject(q, "quant_method", "mxfp4");
}

const char *hf_gpt_oss_differs(const moe_layer_config *x, const moe_layer_config *y) {
    if (x->full_attention != y->full_attention) return "layer_types";
    if (x->router_bias != y->router_bias || x->expert_bias != y->expert_bias || x->act != y->act ||
        x->act_alpha != y->act_alpha || x->act_limit != y->act_limit)
        return "expert activation or biases";
    return NULL;
}
