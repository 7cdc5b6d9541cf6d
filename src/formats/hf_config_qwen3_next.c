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
 */
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
    int dim = (int)(cfg->head_dim * f); /* int(head_dim * factor), as transformers */
    if (!(f > 0 && f <= 1) || dim < 2 || dim % 2)
        return moe_fail(in->err, "%s: field partial_rotary_factor: %g gives %d rotated dims of "
                        "head_dim %d (need an even number >= 2)", in->where, f, dim,
                        cfg->head_dim);
    cfg->rope_dim = dim;
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
