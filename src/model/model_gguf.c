/*
 * model_gguf.c - from a llama.cpp GGUF file to a moe_model: build moe_config
 * from the ARCH.* metadata and point every weight at its bytes in the
 * mapping, checking each tensor's presence, shape and type.
 *
 * Architectures (general.architecture): "llama" with ARCH.expert_count > 0
 * (Mixtral), "qwen2moe", "qwen3moe", "olmoe", "qwen3next" (its keys:
 * gconfig_qwen3next), "qwen35moe" (gconfig_qwen35moe), "gpt-oss" (gconfig_oss),
 * "deepseek2" and "glm4moe" (gconfig_ds). Tensor
 * names and metadata
 * keys are llama.cpp's and come from the table in tensor_map.h (the GGUF
 * writers use the same table). Routed experts are read stacked
 * (blk.N.ffn_gate_exps, GGUF ne = [in, out, E], i.e. [E][out][in]) or, for
 * layers written one tensor per expert (blk.N.ffn_gate.J: the split layout
 * `moe quantize --type mixed` uses when a layer's experts have different
 * types, docs/QUANT.md), expert by expert, each with its own type.
 *
 * llama.cpp's converter permutes the q and k rows of "llama" models to the
 * interleaved RoPE layout (the architecture row of tensor_map.c says so);
 * weights.c puts them back at load. qwen2moe, qwen3moe and olmoe are
 * stored unpermuted (NeoX in llama.cpp).
 *
 * Nothing is allocated from the header: the config built from it is
 * validated as config.json's is (moe_config_validate), then every tensor is
 * found and checked against the weight-role table, and only then are the
 * tables sized (weights.c).
 *
 * Keys llama.cpp does not have for these architectures but moe writes when
 * a model needs them (llama.cpp ignores them): ARCH.expert_weights_norm
 * (top-k renormalization other than the architecture's default),
 * ARCH.attention.clamp_kqv (OLMoE clip_qkv), ARCH.attention.sliding_window.
 *
 * The tokenizer in the GGUF metadata is read by src/tokenizer/tokenizer_gguf.c
 * (moe_tokenizer_load on the same path).
 */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "model/tensor_map.h"
#include "model/weights.h"

typedef struct gloader {
    moe_model *m;
    const gguf_file *g;
    const char *path;
    moe_err *err;
} gloader;

/* A role's tensor name at a layer (expert -1: stacked or not an expert). */
static const char *gname(char *buf, size_t n, tm_role r, int layer, int expert) {
    if (tm_gguf_name_of(buf, n, r, layer, expert)) snprintf(buf, n, "?");
    return buf;
}

/* The GGUF tensor `name` (the weight-role table's name of e). */
static int gfind(void *ctx, const tm_entry *e, const char *name, wt_tensor *out, moe_err *err) {
    (void)e;
    const gloader *L = ctx;
    const gguf_tensor *t = gguf_find(L->g, name);
    if (!t) return 1;
    dtype dt = dtype_from_ggml((int)t->type);
    if (dt == DT_COUNT)
        return moe_fail(err, "%s: tensor %s: type %s is not supported here", L->path, name,
                        gguf_type_name((int)t->type) ? gguf_type_name((int)t->type) : "?");
    *out = (wt_tensor){t->data, dt, t->n_dims > 3 ? 4 : t->n_dims, {0}, (int64_t)t->nbytes};
    for (int i = 0; i < t->n_dims && i < 3; i++) out->shape[i] = t->shape[i];
    return 0;
}

/* Whether a layer's routed experts are stored one tensor per expert. */
static int gsplit(const gguf_file *g, int layer) {
    char name[96];
    return !gguf_find(g, gname(name, sizeof name, TM_EXP_DOWN, layer, -1)) &&
           gguf_find(g, gname(name, sizeof name, TM_EXP_DOWN, layer, 0));
}

/* ARCH.suffix as an int in [lo, hi]; def when absent and def >= lo. */
static int gint(gloader *L, const char *arch, const char *suffix, int64_t lo, int64_t hi,
                int64_t def, int *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    if (!gguf_find_kv(L->g, key) && def >= lo) {
        *out = (int)def;
        return 0;
    }
    if (gguf_get_int(L->g, key, &v, L->err)) return -1;
    if (v < lo || v > hi)
        return moe_fail(L->err, "%s: key %s: %lld out of range [%lld, %lld]", L->path, key,
                        (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return 0;
}

static int gfloat(gloader *L, const char *arch, const char *suffix, double def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v = def;
    if (gguf_find_kv(L->g, key) && gguf_get_float(L->g, key, &v, L->err)) return -1;
    if (!(v > 0) || v > 1e30)
        return moe_fail(L->err, "%s: key %s: %g is not a positive number", L->path, key, v);
    *out = (float)v;
    return 0;
}

/* qwen3next (llama.cpp's Qwen3-Next, src/models/qwen3next.cpp): the Gated
 * DeltaNet sizes as ssm.* keys (conv_kernel; state_size = key head dim;
 * group_count = key heads; time_step_rank = value heads; inner_size =
 * value heads x value head dim), which layers are DeltaNets
 * (attention.recurrent_layers, else every full_attention_interval-th layer
 * is attention, default 4), rope.dimension_count rotated dims of each head
 * (default all), the attention output gate in attn_q, and the (1 + w) norms
 * stored with the 1 added (norm_offset stays set: it says how transformers
 * stores them, for writers). */
static int gconfig_qwen3next(gloader *L, const char *arch) {
    moe_config *c = &L->m->cfg;
    c->attn_out_gate = 1;
    c->norm_offset = 1;
    int inner;
    if (gint(L, arch, "ssm.conv_kernel", 1, MOE_LIN_MAX_CONV, -1, &c->lin_conv)) return -1;
    if (gint(L, arch, "ssm.state_size", 1, 1 << 16, -1, &c->lin_k_dim)) return -1;
    if (gint(L, arch, "ssm.group_count", 1, 1 << 16, -1, &c->lin_k_heads)) return -1;
    if (gint(L, arch, "ssm.time_step_rank", 1, 1 << 16, -1, &c->lin_v_heads)) return -1;
    if (gint(L, arch, "ssm.inner_size", 1, 1 << 30, -1, &inner)) return -1;
    if (inner % c->lin_v_heads || inner / c->lin_v_heads > (1 << 16))
        return moe_fail(L->err, "%s: key %s.ssm.inner_size: %d is not %s.ssm.time_step_rank %d "
                        "value heads of at most 65536", L->path, arch, inner, arch, c->lin_v_heads);
    c->lin_v_dim = inner / c->lin_v_heads;
    if (c->lin_v_heads % c->lin_k_heads)
        return moe_fail(L->err, "%s: key %s.ssm.time_step_rank: %d value heads are not a multiple "
                        "of %s.ssm.group_count %d", L->path, arch, c->lin_v_heads, arch,
                        c->lin_k_heads);
    if (gint(L, arch, TMK_ROPE_DIM, 0, c->head_dim, c->head_dim, &c->rope_dim)) return -1;
    if (c->rope_dim < 2 || c->rope_dim % 2)
        return moe_fail(L->err, "%s: key %s.%s: %d rotated dims (need an even number >= 2)",
                        L->path, arch, TMK_ROPE_DIM, c->rope_dim);
    char key[128];
    snprintf(key, sizeof key, "%s.attention.recurrent_layers", arch);
    if (gguf_find_kv(L->g, key)) {
        gguf_arr a;
        if (gguf_get_arr(L->g, key, GGUF_VT_COUNT, &a, L->err)) return -1;
        if (a.type == GGUF_VT_STR || a.type == GGUF_VT_F32 || a.type == GGUF_VT_F64 ||
            a.type == GGUF_VT_ARR) /* llama.cpp writes bool; integers read as 0 / nonzero */
            return moe_fail(L->err, "%s: key %s: an array of %s, expected bool", L->path, key,
                            gguf_vtype_name((int)a.type));
        if (a.n != (uint64_t)c->n_layers)
            return moe_fail(L->err, "%s: key %s: %llu entries for %d layers", L->path, key,
                            (unsigned long long)a.n, c->n_layers);
        for (int i = 0; i < c->n_layers; i++) c->layer[i].linear_attn = gguf_arr_int(&a, i) != 0;
        return 0;
    }
    int every;
    if (gint(L, arch, "full_attention_interval", 1, 1 << 20, 4, &every)) return -1;
    for (int i = 0; i < c->n_layers; i++) c->layer[i].linear_attn = (i + 1) % every != 0;
    return 0;
}
static int gconfig_oss(gloader *L, const char *arch, moe_config *c);
static int gconfig_ds(gloader *L, const char *arch, moe_config *c);

/* qwen35moe (llama.cpp's Qwen3.5-MoE, src/models/qwen35moe.cpp): qwen3next's
 * keys and, required there, rope.dimension_sections (4 integers: the
 * multimodal RoPE sections, no-ops for text but kept for writing back; a
 * zero sum would divide by zero in llama.cpp). Its converter tiles the
 * value heads over the key heads (lin_v_tiled) and keeps in_proj_b/_a as
 * ssm_beta/ssm_alpha. */
static int gconfig_qwen35moe(gloader *L, const char *arch) {
    moe_config *c = &L->m->cfg;
    if (gconfig_qwen3next(L, arch)) return -1;
    c->lin_v_tiled = 1;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.dimension_sections", arch);
    gguf_arr a;
    if (!gguf_find_kv(L->g, key))
        return moe_fail(L->err, "%s: key %s is missing (llama.cpp requires it)", L->path, key);
    if (gguf_get_arr(L->g, key, GGUF_VT_COUNT, &a, L->err)) return -1;
    if (a.type == GGUF_VT_STR || a.type == GGUF_VT_F32 || a.type == GGUF_VT_F64 ||
        a.type == GGUF_VT_ARR || a.type == GGUF_VT_BOOL || a.n != 4)
        return moe_fail(L->err, "%s: key %s: an array of %llu %s, expected 4 integers", L->path,
                        key, (unsigned long long)a.n, gguf_vtype_name((int)a.type));
    int64_t sum = 0;
    for (int i = 0; i < 4; i++) {
        int64_t v = gguf_arr_int(&a, i);
        if (v < 0 || v > (1 << 16))
            return moe_fail(L->err, "%s: key %s: entry %d is %lld, out of range [0, 65536]",
                            L->path, key, i, (long long)v);
        c->rope_sections[i] = (int)v;
        sum += v;
    }
    if (sum == 0) return moe_fail(L->err, "%s: key %s: all four sections are 0", L->path, key);
    return 0;
}

static int gconfig(gloader *L) {
    moe_config *c = &L->m->cfg;
    const char *arch;
    if (gguf_get_str(L->g, "general.architecture", &arch, NULL, L->err)) return -1;
    memset(c, 0, sizeof *c);
    int E = 0, a = tm_arch_from_gguf(arch);
    if (a < 0)
        return moe_fail(L->err,
                        "%s: general.architecture \"%.40s\" is not supported (llama with "
                        "experts, qwen2moe, qwen3moe, olmoe, qwen3next, qwen35moe, gpt-oss, deepseek2, "
                        "glm4moe)",
                        L->path, arch);
    c->arch = (moe_arch)a;
    const tm_arch_info *ai = tm_arch_of(c->arch);
    snprintf(c->model_type, sizeof c->model_type, "%s", ai->model_type);
    c->qkv_bias = ai->qkv_bias;
    c->qk_norm = ai->qk_norm;
    if (gint(L, arch, TMK_EXPERT_COUNT, 0, 4096, 0, &E)) return -1;
    if (E == 0)
        return moe_fail(L->err, "%s: %s.expert_count is 0 or missing: a dense model, not MoE",
                        L->path, arch);
    if (gint(L, arch, TMK_BLOCK_COUNT, 1, MOE_MAX_LAYERS, -1, &c->n_layers)) return -1;
    if (c->arch == MOE_ARCH_GLM4_MOE) { /* block_count counts the multi-token-prediction layers */
        if (gint(L, arch, "nextn_predict_layers", 0, c->n_layers - 1, 0, &c->n_mtp_layers))
            return -1;
        c->n_layers -= c->n_mtp_layers;
    }
    if (gint(L, arch, TMK_EMBEDDING_LENGTH, 1, 1 << 20, -1, &c->dim)) return -1;
    if (gint(L, arch, TMK_HEAD_COUNT, 1, 4096, -1, &c->n_heads)) return -1;
    if (gint(L, arch, TMK_HEAD_COUNT_KV, 1, c->n_heads, c->n_heads, &c->n_kv_heads))
        return -1;
    if (c->n_heads % c->n_kv_heads)
        return moe_fail(L->err, "%s: %d heads not a multiple of %d kv heads", L->path,
                        c->n_heads, c->n_kv_heads);
    if (gint(L, arch, TMK_KEY_LENGTH, 1, 1 << 16, c->dim / c->n_heads, &c->head_dim))
        return -1;
    if (gint(L, arch, TMK_CONTEXT_LENGTH, 1, 1 << 30, 4096, &c->max_pos)) return -1;
    if (gint(L, arch, TMK_SLIDING_WINDOW, 0, 1 << 30, 0, &c->sliding_window)) return -1;
    if (gfloat(L, arch, TMK_ROPE_FREQ_BASE, 10000.0, &c->rope_theta)) return -1;
    if (gfloat(L, arch, TMK_RMS_EPS, 1e-6, &c->norm_eps)) return -1;
    /* clip_qkv: llama.cpp's olmoe converter does not write it (only OLMo's does), so
     * an OLMoE GGUF made from a clip_qkv model runs unclipped, as in llama.cpp. */
    char ckey[128];
    snprintf(ckey, sizeof ckey, "%s.%s", arch, TMK_CLAMP_KQV);
    if (gguf_find_kv(L->g, ckey) && gfloat(L, arch, TMK_CLAMP_KQV, 0, &c->clip_qkv))
        return -1;
    if (c->arch == MOE_ARCH_QWEN3_NEXT && gconfig_qwen3next(L, arch)) return -1;
    if (c->arch == MOE_ARCH_QWEN3_5_MOE && gconfig_qwen35moe(L, arch)) return -1;
    int K, F = 0, FS = 0, FD = 0;
    if (gint(L, arch, TMK_EXPERT_USED, 1, E, -1, &K)) return -1;
    if (gint(L, arch, TMK_FEED_FORWARD_LENGTH, 0, 1 << 24, 0, &FD)) return -1;
    if (gint(L, arch, TMK_EXPERT_FF, 0, 1 << 24, 0, &F)) return -1;
    if (gint(L, arch, TMK_EXPERT_SHARED_FF, 0, 1 << 24, 0, &FS)) return -1;

    char name[96];
    const gguf_tensor *emb = gguf_find(L->g, gname(name, sizeof name, TM_EMBED, -1, -1));
    if (!emb || emb->n_dims != 2)
        return moe_fail(L->err, "%s: tensor token_embd.weight is missing or not 2-D", L->path);
    if (emb->ne[1] > (1 << 24))
        return moe_fail(L->err, "%s: vocab %lld too large", L->path, (long long)emb->ne[1]);
    c->vocab = (int)emb->ne[1];
    c->tied_embeddings = gguf_find(L->g, gname(name, sizeof name, TM_OUTPUT, -1, -1)) == NULL;
    c->bos_id = c->eos_id = -1;
    int64_t id;
    moe_err ignore;
    if (gguf_find_kv(L->g, TMK_BOS_ID) && !gguf_get_int(L->g, TMK_BOS_ID, &id, &ignore) &&
        id >= 0 && id < c->vocab)
        c->bos_id = (int)id;
    if (gguf_find_kv(L->g, TMK_EOS_ID) && !gguf_get_int(L->g, TMK_EOS_ID, &id, &ignore) &&
        id >= 0 && id < c->vocab)
        c->eos_id = (int)id;

    /* Routing: softmax top-k; renormalized for Mixtral and Qwen3 (ARCH.expert_weights_norm
     * overrides), not for Qwen2-MoE and OLMoE. */
    int norm = tm_gguf_default_norm_topk(c->arch);
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, TMK_EXPERT_WEIGHTS_NORM);
    bool b;
    if (gguf_find_kv(L->g, key)) {
        if (gguf_get_bool(L->g, key, &b, L->err)) return -1;
        norm = b;
    }
    for (int i = 0; i < c->n_layers; i++) {
        const gguf_tensor *ge = gguf_find(L->g, gname(name, sizeof name, TM_EXP_GATE, i, -1));
        if (!ge) ge = gguf_find(L->g, gname(name, sizeof name, TM_EXP_GATE, i, 0)); /* split */
        moe_layer_config *lc = &c->layer[i];
        int lin = lc->linear_attn;
        if (!ge) { /* a dense layer */
            *lc = (moe_layer_config){.moe = 0, .ffn_dim = FD, .routed_scale = 1.0f,
                                     .linear_attn = lin};
            if (FD <= 0)
                return moe_fail(L->err, "%s: layer %d is dense but %s.feed_forward_length is "
                                "missing", L->path, i, arch);
            continue;
        }
        /* Mixtral and OLMoE files carry the expert width as feed_forward_length. */
        int f = F > 0 ? F : (int)ge->ne[1];
        *lc = (moe_layer_config){.moe = 1, .ffn_dim = FD, .n_experts = E, .top_k = K,
                                 .expert_dim = f, .score = MOE_SCORE_SOFTMAX, .norm_topk = norm,
                                 .routed_scale = 1.0f, .linear_attn = lin};
        if (c->arch == MOE_ARCH_GPT_OSS && F <= 0) /* llama.cpp reads no other width */
            return moe_fail(L->err, "%s: key %s.%s is missing", L->path, arch, TMK_EXPERT_FF);
        if (ai->gguf_shared && FS > 0) {
            lc->n_shared = 1;
            lc->shared_dim = FS;
            lc->shared_gate =
                gguf_find(L->g, gname(name, sizeof name, TM_SHEXP_INP, i, -1)) != NULL;
        }
    }
    if (c->arch == MOE_ARCH_DEEPSEEK_V2 || c->arch == MOE_ARCH_GLM4_MOE) return gconfig_ds(L, arch, c);
    return c->arch == MOE_ARCH_GPT_OSS ? gconfig_oss(L, arch, c) : 0;
}

/* ---------------------------------------------------------------- gpt-oss */

/* A float key that must be there (llama.cpp reads it without a default). */
static int gneed(gloader *L, const char *arch, const char *suffix, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!gguf_find_kv(L->g, key))
        return moe_fail(L->err, "%s: key %s is missing (llama.cpp needs it for %s)", L->path,
                        key, arch);
    return gfloat(L, arch, suffix, 0, out);
}

/* Which layers slide: ARCH.attention.sliding_window_pattern as a bool per
 * layer, or a period n (layer i slides unless i % n == n - 1; 0: all), 2
 * when absent (llama.cpp's load_swa_pattern(ml, 2)). */
static int gswa_pattern(gloader *L, const char *arch, moe_config *c) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, TMK_SWA_PATTERN);
    const gguf_kv *kv = gguf_find_kv(L->g, key);
    int n = 2;
    if (kv && kv->type == GGUF_VT_ARR) {
        gguf_arr a;
        if (gguf_get_arr(L->g, key, GGUF_VT_BOOL, &a, L->err)) return -1;
        if (a.n != (uint64_t)c->n_layers)
            return moe_fail(L->err, "%s: key %s: %llu entries for %d layers", L->path, key,
                            (unsigned long long)a.n, c->n_layers);
        for (int i = 0; i < c->n_layers; i++) c->layer[i].full_attention = !gguf_arr_int(&a, i);
        return 0;
    }
    if (kv && gint(L, arch, TMK_SWA_PATTERN, 0, 1 << 20, 2, &n)) return -1;
    for (int i = 0; i < c->n_layers; i++)
        c->layer[i].full_attention = !(n == 0 || i % n < n - 1);
    return 0;
}

/* RoPE of a gpt-oss file: plain, or YaRN (ARCH.rope.scaling.type "yarn"). */
static int grope_oss(gloader *L, const char *arch, moe_config *c) {
    char key[128];
    const char *type = "none";
    snprintf(key, sizeof key, "%s.%s", arch, TMK_ROPE_SCALING_TYPE);
    if (gguf_find_kv(L->g, key) && gguf_get_str(L->g, key, &type, NULL, L->err)) return -1;
    float factor = 1, fast = 32, slow = 1, attn = 0, mul = 1;
    if (gguf_find_kv(L->g, (snprintf(key, sizeof key, "%s.%s", arch, TMK_ROPE_SCALING_FACTOR), key)) &&
        gfloat(L, arch, TMK_ROPE_SCALING_FACTOR, 0, &factor))
        return -1;
    if (!strcmp(type, "none") || ((!strcmp(type, "linear") || !strcmp(type, "yarn")) && factor == 1)) {
        c->rope_kind = MOE_ROPE_DEFAULT;
        return 0;
    }
    if (strcmp(type, "yarn"))
        return moe_fail(L->err, "%s: key %s.%s: \"%.20s\" is not supported for %s (none or yarn)",
                        L->path, arch, TMK_ROPE_SCALING_TYPE, type, arch);
    int orig;
    if (gint(L, arch, TMK_ROPE_SCALING_ORIG_CTX, 1, 1 << 30, c->max_pos, &orig)) return -1;
    if (gfloat(L, arch, TMK_ROPE_YARN_BETA_FAST, 32, &fast)) return -1;
    if (gfloat(L, arch, TMK_ROPE_YARN_BETA_SLOW, 1, &slow)) return -1;
    snprintf(key, sizeof key, "%s.%s", arch, TMK_ROPE_YARN_ATTN_FACTOR);
    if (gguf_find_kv(L->g, key) && gfloat(L, arch, TMK_ROPE_YARN_ATTN_FACTOR, 0, &attn)) return -1;
    if (gfloat(L, arch, TMK_ROPE_SCALING_ATTN_FACTOR, 1, &mul)) return -1;
    bool truncate = true;
    snprintf(key, sizeof key, "%s.%s", arch, TMK_ROPE_YARN_TRUNCATE);
    if (gguf_find_kv(L->g, key) && gguf_get_bool(L->g, key, &truncate, L->err)) return -1;
    c->rope_kind = MOE_ROPE_YARN;
    c->rope_factor = factor;
    c->rope_beta_fast = fast;
    c->rope_beta_slow = slow;
    c->rope_orig_max_pos = orig;
    c->rope_truncate = truncate;
    c->rope_attn_factor = (float)((attn > 0 ? attn : 0.1 * log(factor) + 1.0) * mul);
    return 0;
}

/* What a gpt-oss file means, as llama.cpp's openai-moe model reads it: q/k/v
 * biases when blk.0.attn_q.bias is there, an output bias and a sink logit per
 * head always; ARCH.attention.sliding_window (required) on the layers of
 * the sliding-window pattern; the router's bias; top-k of the logits, then
 * softmax over those k (SOFTMAX_WEIGHT); expert biases; the clamped SwiGLU
 * with alpha 1.702 and limit 7.0 (constants in llama.cpp; moe writes
 * ARCH.swiglu_alpha and ARCH.swiglu_clamp_exp when a model has others). */
static int gconfig_oss(gloader *L, const char *arch, moe_config *c) {
    char name[96];
    c->qkv_bias = gguf_find(L->g, gname(name, sizeof name, TM_ATTN_Q_BIAS, 0, -1)) != NULL;
    c->o_bias = 1;
    c->attn_sinks = 1;
    if (gneed(L, arch, TMK_RMS_EPS, &c->norm_eps)) return -1;
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, TMK_SLIDING_WINDOW);
    if (!gguf_find_kv(L->g, key))
        return moe_fail(L->err, "%s: key %s is missing (llama.cpp needs it for %s)", L->path,
                        key, arch);
    if (gint(L, arch, TMK_SLIDING_WINDOW, 1, 1 << 30, -1, &c->sliding_window)) return -1;
    if (gswa_pattern(L, arch, c)) return -1;
    int rd;
    if (gint(L, arch, TMK_ROPE_DIM, 1, 1 << 16, c->head_dim, &rd)) return -1;
    if (rd != c->head_dim)
        return moe_fail(L->err, "%s: key %s.%s: %d, only the whole head (%d) is supported for %s",
                        L->path, arch, TMK_ROPE_DIM, rd, c->head_dim, arch);
    float swa_theta = c->rope_theta;
    if (gfloat(L, arch, TMK_ROPE_FREQ_BASE_SWA, c->rope_theta, &swa_theta)) return -1;
    if (swa_theta != c->rope_theta)
        return moe_fail(L->err, "%s: key %s.%s: %g differs from rope.freq_base %g (not supported)",
                        L->path, arch, TMK_ROPE_FREQ_BASE_SWA, swa_theta, c->rope_theta);
    if (grope_oss(L, arch, c)) return -1;
    float alpha, limit;
    if (gfloat(L, arch, TMK_SWIGLU_LIMIT, 7.0, &limit)) return -1;
    snprintf(key, sizeof key, "%s.%s", arch, TMK_SWIGLU_ALPHA);
    double a = 1.702;
    if (gguf_find_kv(L->g, key) && gguf_get_float(L->g, key, &a, L->err)) return -1;
    if (!(fabs(a) < 3e38)) return moe_fail(L->err, "%s: key %s: %g out of range", L->path, key, a);
    alpha = (float)a;
    for (int i = 0; i < c->n_layers; i++) {
        moe_layer_config *lc = &c->layer[i];
        if (!lc->moe)
            return moe_fail(L->err, "%s: tensor %s is missing (%s layers are all MoE)", L->path,
                            gname(name, sizeof name, TM_EXP_GATE, i, -1), arch);
        lc->score = MOE_SCORE_TOPK_SOFTMAX;
        lc->norm_topk = 0;
        lc->router_bias = lc->expert_bias = 1;
        lc->act = MOE_ACT_OSS_GLU;
        lc->act_alpha = alpha;
        lc->act_limit = limit;
    }
    return 0;
}

int model_gguf_load(moe_model *m, const char *path, int map_only, moe_err *err) {
    m->gguf = calloc(1, sizeof *m->gguf);
    if (!m->gguf) return moe_fail(err, "out of memory");
    if (map_only ? gguf_open(m->gguf, path, err) : gguf_open_weights(m->gguf, path, err)) {
        free(m->gguf);
        m->gguf = NULL;
        return -1;
    }
    gloader L = {m, m->gguf, path, err};
    if (gconfig(&L)) return -1;
    const moe_config *c = &m->cfg;
    unsigned char split[MOE_MAX_LAYERS] = {0};
    for (int i = 0; i < c->n_layers; i++) split[i] = c->layer[i].moe && gsplit(m->gguf, i);
    wt_source src = {path, TM_GGUF, split, tm_arch_of(c->arch)->gguf_rope_perm, gfind, &L, map_only};
    return weights_load(m, &src, err);
}

/* ------------------------------------------------------ deepseek2, glm4moe */

/* What a deepseek2 or glm4moe file means, as llama.cpp reads it
 * (src/models/deepseek2.cpp, glm4-moe.cpp, llama-graph.cpp's build_moe_ffn):
 *   routing   ARCH.expert_gating_func 2 = sigmoid, else softmax (absent:
 *             softmax, as for the first DeepSeek-V2 files); the selection bias
 *             when blk.N.exp_probs_b.bias is there; ARCH.expert_weights_scale
 *             (default 1); ARCH.expert_group_count / _used_count groups scored
 *             by the sum of their best two (llama.cpp's only group rule, so a
 *             V2 file with group_limited_greedy runs as llama.cpp runs it);
 *             ARCH.expert_shared_count shared experts of expert width each
 *             (one SwiGLU of count x width, no gate); moe's
 *             ARCH.expert_group_score "max" scores groups by their best
 *             expert instead (deepseek_v2's group_limited_greedy; llama.cpp
 *             ignores it).
 *   deepseek2 latent attention: attention.q_lora_rank (0 or absent: attn_q),
 *             attention.kv_lora_rank, attention.key_length_mla = nope + rope
 *             head dims, attention.value_length_mla, rope.dimension_count =
 *             rotary dims, rotated as interleaved pairs; attn_k_b / attn_v_b.
 *             YaRN (rope.scaling.*) with the cos/sin factor 1 and the softmax
 *             scale mscale(factor, m)^2 / sqrt(key_length_mla), m =
 *             rope.scaling.yarn_log_multiplier / 0.1 (the converter stores
 *             0.1 x mscale_all_dim); llama.cpp assumes mscale = mscale_all_dim.
 *   glm4moe   q/k/v biases and per-head q/k norms when blk.0's tensors are
 *             there, rope.dimension_count rotated dims (two halves);
 *             block_count includes nextn_predict_layers, which are not read. */
static int gconfig_ds(gloader *L, const char *arch, moe_config *c) {
    char key[128], name[96];
    int gating, n_shared, G, TG;
    float scale;
    if (gint(L, arch, "expert_gating_func", 0, 3, 0, &gating)) return -1;
    if (gating == 3)
        return moe_fail(L->err, "%s: key %s.expert_gating_func: 3 (sqrt-softplus) is not "
                        "supported", L->path, arch);
    if (gint(L, arch, "expert_shared_count", 0, 1 << 10, 0, &n_shared)) return -1;
    if (gfloat(L, arch, "expert_weights_scale", 1.0, &scale)) return -1;
    if (gint(L, arch, "expert_group_count", 0, 1 << 16, 0, &G)) return -1;
    if (gint(L, arch, "expert_group_used_count", 0, G, G, &TG)) return -1;
    moe_group_kind gk = MOE_GROUP_TOP2_SUM;
    const char *gs = NULL;
    snprintf(key, sizeof key, "%s.%s", arch, TMK_EXPERT_GROUP_SCORE);
    if (gguf_find_kv(L->g, key) && gguf_get_str(L->g, key, &gs, NULL, L->err)) return -1;
    if (gs && strcmp(gs, "max"))
        return moe_fail(L->err, "%s: key %s: \"%.20s\" is not a group score (max, or absent: "
                        "the sum of the best two)", L->path, key, gs);
    if (gs) gk = MOE_GROUP_MAX;
    for (int i = 0; i < c->n_layers; i++) {
        moe_layer_config *lc = &c->layer[i];
        if (!lc->moe) continue;
        lc->score = gating == 2 ? MOE_SCORE_SIGMOID : MOE_SCORE_SOFTMAX;
        lc->select_bias = gguf_find(L->g, gname(name, sizeof name, TM_EXP_PROBS_B, i, -1)) != NULL;
        lc->routed_scale = scale;
        lc->n_shared = n_shared;
        lc->shared_dim = n_shared * lc->expert_dim;
        lc->shared_gate = 0;
        if (G > 1) lc->group = gk, lc->n_group = G, lc->topk_group = TG;
    }
    int first = 0; /* tensors of the first layer tell the optional parts */
    int rd;
    if (gint(L, arch, TMK_ROPE_DIM, 2, 1 << 16, c->head_dim, &rd)) return -1;
    snprintf(key, sizeof key, "%s.%s", arch, TMK_ROPE_SCALING_TYPE);
    const char *type = "none";
    if (gguf_find_kv(L->g, key) && gguf_get_str(L->g, key, &type, NULL, L->err)) return -1;
    if (c->arch == MOE_ARCH_GLM4_MOE) {
        c->qkv_bias = gguf_find(L->g, gname(name, sizeof name, TM_ATTN_Q_BIAS, first, -1)) != NULL;
        c->qk_norm = gguf_find(L->g, gname(name, sizeof name, TM_ATTN_Q_NORM, first, -1))
                         ? MOE_QKNORM_HEAD : MOE_QKNORM_NONE;
        c->rope_dim = rd == c->head_dim ? 0 : rd;
        if (strcmp(type, "none"))
            return moe_fail(L->err, "%s: key %s: \"%.20s\" is not supported for %s", L->path,
                            key, type, arch);
        return 0;
    }
    if (gating == 2) { /* DeepSeek-V3 (or Kimi-K2): only the name differs */
        c->arch = MOE_ARCH_DEEPSEEK_V3;
        snprintf(c->model_type, sizeof c->model_type, "%s", "deepseek_v3");
    }
    int dh, dv;
    /* no key (DeepSeek-V2-Lite, as the converter writes it) or 0: attn_q */
    if (gint(L, arch, "attention.q_lora_rank", 0, 1 << 20, 0, &c->q_lora_rank)) return -1;
    if (gint(L, arch, "attention.kv_lora_rank", 1, 1 << 14, -1, &c->kv_lora_rank)) return -1;
    if (gint(L, arch, "attention.key_length_mla", rd + 1, 1 << 14, -1, &dh)) return -1;
    if (gint(L, arch, "attention.value_length_mla", 1, 1 << 14, -1, &dv)) return -1;
    c->head_dim = dh;
    c->qk_rope_dim = c->rope_dim = rd;
    c->qk_nope_dim = dh - rd;
    c->v_head_dim = dv;
    c->n_kv_heads = c->n_heads; /* the file says 1: the latent, shared by every head */
    c->rope_interleave = 1;
    float factor = 1;
    snprintf(key, sizeof key, "%s.%s", arch, TMK_ROPE_SCALING_FACTOR);
    if (gguf_find_kv(L->g, key) && gfloat(L, arch, TMK_ROPE_SCALING_FACTOR, 1, &factor)) return -1;
    if (!strcmp(type, "yarn") && factor > 1) {
        c->rope_kind = MOE_ROPE_YARN;
        c->rope_factor = factor;
        if (gint(L, arch, TMK_ROPE_SCALING_ORIG_CTX, 1, 1 << 30, c->max_pos, &c->rope_orig_max_pos))
            return -1;
        if (gfloat(L, arch, TMK_ROPE_YARN_BETA_FAST, 32, &c->rope_beta_fast)) return -1;
        if (gfloat(L, arch, TMK_ROPE_YARN_BETA_SLOW, 1, &c->rope_beta_slow)) return -1;
        c->rope_truncate = 1;
        c->rope_attn_factor = 1.0f;
        float mul = 0;
        snprintf(key, sizeof key, "%s.rope.scaling.yarn_log_multiplier", arch);
        if (gguf_find_kv(L->g, key) &&
            gfloat(L, arch, "rope.scaling.yarn_log_multiplier", 0, &mul))
            return -1;
        c->rope_mscale = c->rope_mscale_all_dim = (float)(mul / 0.1); /* llama.cpp: equal */
    } else if (strcmp(type, "none") && factor != 1) {
        return moe_fail(L->err, "%s: key %s.%s: \"%.20s\" is not supported for %s (none or "
                        "yarn)", L->path, arch, TMK_ROPE_SCALING_TYPE, type, arch);
    }
    c->attn_scale = hf_mla_scale(dh, c->rope_kind == MOE_ROPE_YARN, c->rope_factor,
                                 c->rope_mscale_all_dim);
    return 0;
}
