/*
 * hf_config_qwen3_next.c - what config.json means for qwen3_next
 * (Qwen3-Next), as transformers 5.23 computes it (configuration_qwen3_next.py,
 * modeling_qwen3_next.py):
 *   layers      layer_types: "linear_attention" (a Gated DeltaNet) or
 *               "full_attention"; absent = full attention on every
 *               full_attention_interval-th layer (default 4), linear otherwise;
 *   attention   q_proj gives [query | gate] per head, the output is scaled by
 *               sigmoid(gate); RMSNorm per head of q and k; no biases
 *               (attention_bias); RoPE on the first partial_rotary_factor
 *               (default 0.25) of each head;
 *   norms       every Qwen3NextRMSNorm computes x_n * (1 + w) (the gated norm
 *               of the DeltaNet output is a plain one);
 *   DeltaNet    linear_num_key_heads (16), linear_num_value_heads (32, a
 *               multiple of the key heads), linear_key_head_dim (128),
 *               linear_value_head_dim (128), linear_conv_kernel_dim (4);
 *   FFN         qwen2_moe's rule (mlp_only_layers, decoder_sparse_step), one
 *               shared expert with a sigmoid gate, norm_topk_prob default true.
 *
 * qwen3_5_moe (configuration_qwen3_5_moe.py, modeling_qwen3_5_moe.py) is a
 * vision-language model: config.json says "qwen3_5_moe" and holds the text
 * model under text_config ("qwen3_5_moe_text", which a text-only checkpoint
 * of Qwen3_5MoeForCausalLM has at the top level) and the vision tower under
 * vision_config. Its text model is qwen3_next's (the same fields and
 * defaults, head_dim 256), except:
 *   - the DeltaNet input projections are apart (in_proj_qkv, _z, _b, _a;
 *     laid out at load, see weights.c);
 *   - every layer is MoE with the shared expert; the router
 *     (Qwen3VLMoeTextTopKRouter) always renormalizes the top-k; there is no
 *     intermediate_size, decoder_sparse_step, mlp_only_layers or norm_topk_prob;
 *   - RoPE is multimodal (rope_parameters.mrope_section, mrope_interleaved):
 *     each rotated frequency takes the temporal, height or width position.
 *     A text token has all three equal to its position, so for text it is
 *     the plain partial rotary above, whatever the sections.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "formats/hf_config_impl.h"

static int lin_size(const hf_in *in, const char *key, int def, int *out) {
    if (hf_int(in, key, def, out)) return -1;
    if (*out <= 0 || *out > (1 << 16))
        return moe_fail(in->err, "%s: field %s: %d out of range (1..65536)", in->where, key, *out);
    return 0;
}

static int layer_types(const hf_in *in, moe_config *cfg) {
    int L = cfg->n_layers;
    static const char *const kinds[] = {"full_attention", "linear_attention"};
    int kind[MOE_MAX_LAYERS];
    int rc = hf_layer_types(in, L, kinds, 2, kind);
    if (rc < 0) return -1;
    if (rc == 0) {
        for (int i = 0; i < L; i++) cfg->layer[i].linear_attn = kind[i];
        return 0;
    }
    int every; /* no layer_types: every full_attention_interval-th layer is full */
    if (hf_int(in, "full_attention_interval", 4, &every)) return -1;
    if (every <= 0)
        return moe_fail(in->err, "%s: field full_attention_interval: must be positive (got %d)",
                        in->where, every);
    for (int i = 0; i < L; i++) cfg->layer[i].linear_attn = (i + 1) % every != 0;
    return 0;
}

/* partial_rotary_factor: in rope_parameters (transformers 5), else at the
 * top level (released checkpoints), else 0.25. */
static int rotary(const hf_in *in, moe_config *cfg) {
    const cJSON *rp = hf_get(in->root, "rope_parameters");
    const cJSON *obj = rp && cJSON_IsObject(rp) && hf_get(rp, "partial_rotary_factor") ? rp : in->root;
    double f;
    if (hf_num(in, obj, "partial_rotary_factor", 0.25, &f)) return -1;
    int dim = f > 0 && f <= 1 ? (int)(cfg->head_dim * f) : 0; /* int(head_dim * factor) */
    if (dim < 2 || dim % 2)
        return moe_fail(in->err, "%s: field partial_rotary_factor: %g gives %d rotated dims of "
                        "head_dim %d (need an even number >= 2)", in->where, f, dim,
                        cfg->head_dim);
    cfg->rope_dim = dim;
    return 0;
}

/* qwen3_5_moe's mrope_section (in rope_parameters, or rope_scaling in the
 * older spelling): no-ops for text, kept to write GGUF's
 * rope.dimension_sections and config.json back. */
static int mrope(const hf_in *in, moe_config *cfg) {
    static const char *const objs[] = {"rope_parameters", "rope_scaling"};
    for (int w = 0; w < 2; w++) {
        const cJSON *rp = hf_get(in->root, objs[w]);
        const cJSON *ms = rp && cJSON_IsObject(rp) ? hf_get(rp, "mrope_section") : NULL;
        if (!ms || cJSON_IsNull(ms)) continue;
        int n = cJSON_IsArray(ms) ? cJSON_GetArraySize(ms) : 0;
        if (n < 1 || n > 4)
            return moe_fail(in->err, "%s: field %s.mrope_section: expected 1 to 4 integers",
                            in->where, objs[w]);
        for (int i = 0; i < n; i++) {
            const cJSON *v = cJSON_GetArrayItem(ms, i);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 65536 ||
                v->valuedouble != (int)v->valuedouble)
                return moe_fail(in->err, "%s: field %s.mrope_section[%d]: not an integer in "
                                "[0, 65536]", in->where, objs[w], i);
            cfg->rope_sections[i] = (int)v->valuedouble;
        }
        return 0;
    }
    return 0;
}

int hf_qwen3_next(const hf_in *in, moe_config *cfg) {
    int bias;
    if (hf_bool(in, in->root, "attention_bias", 0, &bias)) return -1;
    cfg->qkv_bias = cfg->o_bias = bias;
    cfg->qk_norm = MOE_QKNORM_HEAD;
    cfg->norm_offset = 1;
    cfg->attn_out_gate = 1;
    if (rotary(in, cfg)) return -1;
    if (cfg->arch == MOE_ARCH_QWEN3_5_MOE && mrope(in, cfg)) return -1;
    if (layer_types(in, cfg)) return -1;
    if (lin_size(in, "linear_num_key_heads", 16, &cfg->lin_k_heads)) return -1;
    if (lin_size(in, "linear_num_value_heads", 32, &cfg->lin_v_heads)) return -1;
    if (lin_size(in, "linear_key_head_dim", 128, &cfg->lin_k_dim)) return -1;
    if (lin_size(in, "linear_value_head_dim", 128, &cfg->lin_v_dim)) return -1;
    if (lin_size(in, "linear_conv_kernel_dim", 4, &cfg->lin_conv)) return -1;
    if (cfg->lin_v_heads % cfg->lin_k_heads)
        return moe_fail(in->err, "%s: field linear_num_value_heads: %d is not a multiple of "
                        "linear_num_key_heads %d", in->where, cfg->lin_v_heads, cfg->lin_k_heads);
    return 0;
}

int hf_qwen3_5_text(const hf_in *in, hf_in *text, char *where_buf, size_t n, int *vision) {
    *vision = 0;
    const cJSON *mt = hf_get(in->root, "model_type");
    if (!mt || !cJSON_IsString(mt) || strcmp(mt->valuestring, "qwen3_5_moe")) {
        *text = *in;
        return 0;
    }
    const cJSON *tc = hf_get(in->root, "text_config");
    if (!tc)
        return moe_fail(in->err, "%s: missing field text_config (a qwen3_5_moe config.json holds "
                        "its text model there)", in->where);
    if (!cJSON_IsObject(tc))
        return moe_fail(in->err, "%s: field text_config: wrong JSON type (expected an object)",
                        in->where);
    const cJSON *tm = hf_get(tc, "model_type");
    if (tm && (!cJSON_IsString(tm) || strcmp(tm->valuestring, "qwen3_5_moe_text")))
        return moe_fail(in->err, "%s: field text_config.model_type: \"%.40s\", expected "
                        "\"qwen3_5_moe_text\"", in->where,
                        cJSON_IsString(tm) ? tm->valuestring : "(not a string)");
    const cJSON *vc = hf_get(in->root, "vision_config");
    if (vc && !cJSON_IsObject(vc))
        return moe_fail(in->err, "%s: field vision_config: wrong JSON type (expected an object)",
                        in->where);
    /* the head is the outer model's: its tie_word_embeddings must agree */
    int outer_tie, inner_tie;
    if (hf_bool(in, in->root, "tie_word_embeddings", 0, &outer_tie)) return -1;
    hf_in probe = {tc, in->where, in->err};
    if (hf_bool(&probe, tc, "tie_word_embeddings", 0, &inner_tie)) return -1;
    if (outer_tie != inner_tie)
        return moe_fail(in->err, "%s: field tie_word_embeddings: %s at the top level but %s in "
                        "text_config", in->where, outer_tie ? "true" : "false",
                        inner_tie ? "true" : "false");
    snprintf(where_buf, n, "%s (text_config)", in->where);
    *vision = vc != NULL;
    *text = (hf_in){tc, where_buf, in->err};
    if (!tm) { /* Qwen3_5MoeConfig fills it in: say it here so the parser knows the layout */
        cJSON *t = (cJSON *)tc;
        cJSON_AddStringToObject(t, "model_type", "qwen3_5_moe_text");
    }
    return 0;
}

/* ------------------------------------------------------------- writing */

void hf_qwen3_next_write(cJSON *o, cJSON *rp, const moe_config *c) {
    const moe_layer_config *m = NULL, *dense = NULL;
    for (int i = 0; i < c->n_layers; i++) {
        if (c->layer[i].moe && !m) m = &c->layer[i];
        if (!c->layer[i].moe && !dense) dense = &c->layer[i];
    }
    cJSON_AddBoolToObject(o, "attention_bias", c->qkv_bias);
    /* int(head_dim * factor) must give rope_dim back: the double quotient does */
    if (rp) cJSON_AddNumberToObject(rp, "partial_rotary_factor",
                                    (double)(c->rope_dim ? c->rope_dim : c->head_dim) / c->head_dim);
    cJSON *lt = cJSON_AddArrayToObject(o, "layer_types");
    for (int i = 0; lt && i < c->n_layers; i++)
        cJSON_AddItemToArray(lt, cJSON_CreateString(c->layer[i].linear_attn ? "linear_attention"
                                                                              : "full_attention"));
    cJSON_AddNumberToObject(o, "linear_num_key_heads", c->lin_k_heads);
    cJSON_AddNumberToObject(o, "linear_num_value_heads", c->lin_v_heads);
    cJSON_AddNumberToObject(o, "linear_key_head_dim", c->lin_k_dim);
    cJSON_AddNumberToObject(o, "linear_value_head_dim", c->lin_v_dim);
    cJSON_AddNumberToObject(o, "linear_conv_kernel_dim", c->lin_conv);
    cJSON_AddNumberToObject(o, "num_experts", m ? m->n_experts : 0);
    if (m) {
        cJSON_AddNumberToObject(o, "moe_intermediate_size", m->expert_dim);
        if (m->n_shared > 0)
            cJSON_AddNumberToObject(o, "shared_expert_intermediate_size", m->shared_dim);
    }
    const int *ms = c->rope_sections;
    if (c->arch == MOE_ARCH_QWEN3_5_MOE && rp && (ms[0] || ms[1] || ms[2] || ms[3])) {
        cJSON *a = cJSON_AddArrayToObject(rp, "mrope_section");
        for (int i = 0; a && i < (ms[3] ? 4 : 3); i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(ms[i]));
        cJSON_AddBoolToObject(rp, "mrope_interleaved", 1);
    }
    if (c->arch == MOE_ARCH_QWEN3_5_MOE) return; /* the rest has no field there */
    int inter = dense ? dense->ffn_dim : c->layer[0].ffn_dim;
    if (inter > 0) cJSON_AddNumberToObject(o, "intermediate_size", inter);
    if (m) cJSON_AddBoolToObject(o, "norm_topk_prob", m->norm_topk);
    cJSON_AddNumberToObject(o, "decoder_sparse_step", 1);
    cJSON *only = cJSON_AddArrayToObject(o, "mlp_only_layers");
    for (int i = 0; only && m && i < c->n_layers; i++)
        if (!c->layer[i].moe) cJSON_AddItemToArray(only, cJSON_CreateNumber(i));
}
