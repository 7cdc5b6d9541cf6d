/*
 * hf_config_impl.h - the field readers of hf_config.c, shared with the
 * per-architecture parts that live in their own files
 * (hf_config_gpt_oss.c). Every reader fails with a message naming the file
 * and the field; absent fields take the given default.
 */
#ifndef MOE_FORMATS_HF_CONFIG_IMPL_H
#define MOE_FORMATS_HF_CONFIG_IMPL_H

#include <cjson/cJSON.h>

#include "moe.h"

/* A config class's defaults (hf_config.c's table). */
typedef struct hf_arch {
    const char *name, *cls;
    moe_arch arch;
    int vocab, dim, inter, layers, heads, kv_heads; /* kv_heads 0: = heads */
    int max_pos;
    double eps, theta;
    int bos, eos;                 /* -1: None */
    int experts, top_k, moe_inter, shared_inter;
} hf_arch;

/* The row of an architecture (NULL for one without a config.json class). */
const hf_arch *hf_arch_of(moe_arch a);

typedef struct hf_in {
    const cJSON *root;
    const char *where;
    moe_err *err;
} hf_in;

/* Present and not null. */
const cJSON *hf_get(const cJSON *obj, const char *key);
int hf_has(const cJSON *obj, const char *key);
int hf_as_int(const hf_in *in, const char *key, const cJSON *v, int *out);
/* Integer field of the root; absent -> def; null is an error. */
int hf_int(const hf_in *in, const char *key, int def, int *out);
int hf_num(const hf_in *in, const cJSON *obj, const char *key, double def, double *out);
int hf_bool(const hf_in *in, const cJSON *obj, const char *key, int def, int *out);

/* hf_config_gpt_oss.c: YaRN parameters from rp (a rope_parameters /
 * rope_scaling object; NULL = GptOssConfig's default) into cfg; `src` names
 * the field in messages. */
/* layer_types: a list of L strings, each one of names[0..n); kind[i] is its
 * index. 1 when the field is absent (kind untouched), 0 when read, -1 on an
 * error that names the field, the entry and the accepted names. */
int hf_layer_types(const hf_in *in, int L, const char *const *names, int n, int *kind);

int hf_yarn(const hf_in *in, const cJSON *rp, const char *src, moe_config *cfg);
/* The gpt_oss attention (biases, sinks, layer_types, sliding_window) and
 * feed-forward switches (router, experts, clamped SwiGLU) of cfg->layer[0]
 * and every layer's full_attention; sizes are the caller's. */
int hf_gpt_oss(const hf_in *in, moe_config *cfg);
/* The gpt_oss fields of a config.json being written (o has the common ones;
 * its rope_parameters are replaced); m is the first MoE layer. */
void hf_build_gpt_oss(cJSON *o, const moe_config *c, const moe_layer_config *m);
/* What of gpt_oss's per-layer switches differs between x and y, or NULL. */
const char *hf_gpt_oss_differs(const moe_layer_config *x, const moe_layer_config *y);
/* The released checkpoints' "quantization_config" (MXFP4 experts). */
void hf_mxfp4_config(cJSON *o);
/* The same floats as a JSON number that prints back exactly. */
cJSON *hf_float(double v);
/* hf_config_qwen3_next.c: the qwen3_next attention switches (output gate,
 * partial rotary, zero-centred norms, per-head q/k norm), layer_types into
 * every layer's linear_attn and the Gated DeltaNet sizes; the feed-forward
 * layers are the caller's (qwen2_moe's rule). */
int hf_qwen3_next(const hf_in *in, moe_config *cfg);

/* Whether an arch has qwen3_next's layers (qwen3_next, qwen3_5_moe). */
static inline int hf_lin_arch(moe_arch a) {
    return a == MOE_ARCH_QWEN3_NEXT || a == MOE_ARCH_QWEN3_5_MOE;
}

/* Whether an arch is parsed by hf_config_deepseek.c (deepseek_v2, deepseek_v3,
 * glm4_moe). */
static inline int hf_ds_arch(moe_arch a) {
    return a == MOE_ARCH_DEEPSEEK_V2 || a == MOE_ARCH_DEEPSEEK_V3 || a == MOE_ARCH_GLM4_MOE;
}
/* hf_config_deepseek.c: their attention (latent attention, or glm4_moe's
 * GQA) and feed-forward layers; the common sizes and RoPE are the caller's. */
int hf_deepseek(const hf_in *in, const hf_arch *a, moe_config *cfg);
/* Their fields beyond the common ones into o (its rope_parameters replaced). */
void hf_deepseek_write(cJSON *o, const moe_config *c);

/* A qwen3_5_moe config.json ("qwen3_5_moe": the text model under
 * text_config, maybe a vision_config beside it) as the hf_in of its text
 * model into *text (which may be in; where_buf names it); *vision = 1 when
 * a vision tower comes with it. Any other config is left as it is. */
int hf_qwen3_5_text(const hf_in *in, hf_in *text, char *where_buf, size_t n, int *vision);

/* The fields of qwen3_next / qwen3_5_moe config.json beyond the common ones
 * (attention, Gated DeltaNet, layer types, feed-forward) into o; rp is its
 * rope_parameters object (or NULL). */
void hf_qwen3_next_write(cJSON *o, cJSON *rp, const moe_config *c);

#endif
