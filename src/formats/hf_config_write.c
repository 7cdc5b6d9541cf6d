/*
 * hf_config_write.c - moe_config -> config.json (hf_config_write): the
 * fields of each architecture's transformers class, written so that
 * hf_config_parse reads back the same config (checked before the file is
 * written: what config.json cannot say is an error naming the field).
 */
#include "formats/hf_config.h"
#include "formats/hf_config_impl.h"
#include "base/atomic.h"
#include "base/err.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- writing */

/* A float as the shortest decimal that reads back as the same float, always
 * with a '.' or exponent: transformers refuses an int where it wants float. */
cJSON *hf_float(double v) {
    char buf[48];
    float f = (float)v;
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    if (strpbrk(buf, "eE") && fabsf(f) >= 1 && fabsf(f) < 1e15f && floorf(f) == f)
        snprintf(buf, sizeof buf, "%.1f", (double)f); /* 1000000.0, not 1e+06 */
    if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
    return cJSON_CreateRaw(buf);
}

static int hf_same_moe(const moe_layer_config *x, const moe_layer_config *y) {
    return x->n_experts == y->n_experts && x->top_k == y->top_k &&
           x->expert_dim == y->expert_dim && x->n_shared == y->n_shared &&
           (x->n_shared == 0 || (x->shared_dim == y->shared_dim &&
                                 x->shared_gate == y->shared_gate)) &&
           x->score == y->score && x->norm_topk == y->norm_topk &&
           x->routed_scale == y->routed_scale && x->select_bias == y->select_bias &&
           x->noise == y->noise && x->kind == y->kind && x->capacity_factor == y->capacity_factor &&
           x->group == y->group && x->n_group == y->n_group && x->topk_group == y->topk_group;
}

/* Does b (parsed back from what we wrote) describe the same model as a? */
static const char *hf_differs(const moe_config *a, const moe_config *b) {
#define F(x) if (a->x != b->x) return #x
    F(arch); F(vocab); F(dim); F(n_layers); F(n_heads); F(n_kv_heads); F(head_dim); F(max_pos);
    F(rope_theta); F(norm_eps); F(qk_norm); F(qkv_bias); F(o_bias); F(clip_qkv);
    F(tied_embeddings); F(sliding_window); F(bos_id); F(eos_id); F(norm_offset);
    F(attn_out_gate); F(rope_dim); F(lin_k_heads); F(lin_v_heads); F(lin_k_dim); F(lin_v_dim);
    F(lin_conv); F(attn_sinks);
    F(rope_kind); F(rope_factor); F(rope_beta_fast); F(rope_beta_slow); F(rope_orig_max_pos);
    F(rope_truncate); F(rope_attn_factor);
    F(q_lora_rank); F(kv_lora_rank); F(qk_nope_dim); F(qk_rope_dim); F(v_head_dim);
    F(rope_interleave); F(n_mtp_layers); F(mod_capacity);
    if (hf_ds_arch(a->arch)) {
        F(rope_mscale); F(rope_mscale_all_dim); F(attn_scale);
    }
#undef F
    for (int i = 0; i < a->n_layers; i++) {
        const moe_layer_config *x = &a->layer[i], *y = &b->layer[i];
        if (x->moe != y->moe) return "layer pattern (dense / MoE)";
        if (x->linear_attn != y->linear_attn) return "layer types (linear / full attention)";
        if (x->mod != y->mod) return "Mixture-of-Depths layers";
        if (!x->moe && x->ffn_dim != y->ffn_dim) return "dense ffn_dim";
        if (x->moe && !hf_same_moe(x, y)) return "MoE layer settings";
        const char *d = hf_gpt_oss_differs(x, y);
        if (d) return d;
    }
    return NULL;
}

static void hf_add_int(cJSON *o, const char *k, int v) { cJSON_AddNumberToObject(o, k, v); }

/* moe.mod: the capacity and the MoD layers ("all" or their indices). */
static void hf_mod_write(cJSON *o, const moe_config *c) {
    cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "moe");
    if (!x) x = cJSON_AddObjectToObject(o, "moe");
    cJSON *d = x ? cJSON_AddObjectToObject(x, "mod") : NULL;
    if (!d) return; /* out of memory: the read-back check names the difference */
    cJSON_AddItemToObject(d, "capacity", hf_float(c->mod_capacity));
    int all = 1;
    for (int i = 0; i < c->n_layers; i++) all &= c->layer[i].mod;
    if (all) {
        cJSON_AddStringToObject(d, "layers", "all");
        return;
    }
    cJSON *ly = cJSON_AddArrayToObject(d, "layers");
    for (int i = 0; ly && i < c->n_layers; i++)
        if (c->layer[i].mod) cJSON_AddItemToArray(ly, cJSON_CreateNumber(i));
}

static cJSON *hf_build(const moe_config *c, const char *torch_dtype) {
    const hf_arch *a = hf_arch_of(c->arch);
    const moe_layer_config *m = NULL, *dense = NULL;
    for (int i = 0; i < c->n_layers; i++) {
        if (c->layer[i].moe && !m) m = &c->layer[i];
        if (!c->layer[i].moe && !dense) dense = &c->layer[i];
    }
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON *arr = cJSON_AddArrayToObject(o, "architectures");
    if (arr) cJSON_AddItemToArray(arr, cJSON_CreateString(a->cls));
    cJSON_AddStringToObject(o, "model_type", a->name);
    hf_add_int(o, "vocab_size", c->vocab);
    hf_add_int(o, "hidden_size", c->dim);
    hf_add_int(o, "num_hidden_layers", c->n_layers);
    hf_add_int(o, "num_attention_heads", c->n_heads);
    hf_add_int(o, "num_key_value_heads", c->n_kv_heads);
    hf_add_int(o, "head_dim", c->head_dim);
    hf_add_int(o, "max_position_embeddings", c->max_pos);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddItemToObject(o, "rms_norm_eps", hf_float(c->norm_eps));
    cJSON_AddItemToObject(o, "rope_theta", hf_float(c->rope_theta)); /* for older readers */
    cJSON *rp = cJSON_AddObjectToObject(o, "rope_parameters");
    if (rp) {
        cJSON_AddStringToObject(rp, "rope_type", "default");
        cJSON_AddItemToObject(rp, "rope_theta", hf_float(c->rope_theta));
    }
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tied_embeddings);
    if (c->bos_id >= 0) hf_add_int(o, "bos_token_id", c->bos_id);
    else cJSON_AddNullToObject(o, "bos_token_id");
    if (c->eos_id >= 0) hf_add_int(o, "eos_token_id", c->eos_id);
    else cJSON_AddNullToObject(o, "eos_token_id");

    int E = m ? m->n_experts : 0, inter = dense ? dense->ffn_dim : c->layer[0].ffn_dim;
    switch (c->arch) {
    case MOE_ARCH_GPT_OSS: hf_build_gpt_oss(o, c, m); break;
    case MOE_ARCH_DEEPSEEK_V2:
    case MOE_ARCH_DEEPSEEK_V3:
    case MOE_ARCH_GLM4_MOE: hf_deepseek_write(o, c); break;
    case MOE_ARCH_QWEN3_NEXT:
    case MOE_ARCH_QWEN3_5_MOE: hf_qwen3_next_write(o, rp, c); break;
    case MOE_ARCH_MIXTRAL:
        hf_add_int(o, "num_local_experts", E);
        hf_add_int(o, "intermediate_size", m ? m->expert_dim : 0);
        if (c->sliding_window > 0) hf_add_int(o, "sliding_window", c->sliding_window);
        else cJSON_AddNullToObject(o, "sliding_window");
        break;
    case MOE_ARCH_OLMOE:
        hf_add_int(o, "num_experts", E);
        hf_add_int(o, "intermediate_size", m ? m->expert_dim : 0);
        cJSON_AddBoolToObject(o, "norm_topk_prob", m && m->norm_topk);
        cJSON_AddBoolToObject(o, "attention_bias", c->qkv_bias);
        if (c->clip_qkv > 0) cJSON_AddItemToObject(o, "clip_qkv", hf_float(c->clip_qkv));
        else cJSON_AddNullToObject(o, "clip_qkv");
        break;
    case MOE_ARCH_QWEN2_MOE:
    case MOE_ARCH_QWEN3_MOE: {
        hf_add_int(o, "num_experts", E);
        if (inter > 0) hf_add_int(o, "intermediate_size", inter);
        if (m) {
            hf_add_int(o, "moe_intermediate_size", m->expert_dim);
            cJSON_AddBoolToObject(o, "norm_topk_prob", m->norm_topk);
        }
        hf_add_int(o, "decoder_sparse_step", 1);
        cJSON *only = cJSON_AddArrayToObject(o, "mlp_only_layers");
        for (int i = 0; only && m && i < c->n_layers; i++)
            if (!c->layer[i].moe) cJSON_AddItemToArray(only, cJSON_CreateNumber(i));
        if (c->arch == MOE_ARCH_QWEN2_MOE) {
            if (m && m->n_shared > 0)
                hf_add_int(o, "shared_expert_intermediate_size", m->shared_dim);
            cJSON_AddBoolToObject(o, "qkv_bias", c->qkv_bias);
            cJSON_AddBoolToObject(o, "use_sliding_window", c->sliding_window > 0);
            if (c->sliding_window > 0) { /* on every layer (hf_qwen2_sliding) */
                hf_add_int(o, "sliding_window", c->sliding_window);
                hf_add_int(o, "max_window_layers", c->n_layers);
                cJSON *lt = cJSON_AddArrayToObject(o, "layer_types");
                for (int i = 0; lt && i < c->n_layers; i++)
                    cJSON_AddItemToArray(lt, cJSON_CreateString("sliding_attention"));
            }
        } else {
            cJSON_AddBoolToObject(o, "attention_bias", c->qkv_bias);
            cJSON_AddBoolToObject(o, "use_sliding_window", c->sliding_window > 0);
            if (c->sliding_window > 0) hf_add_int(o, "sliding_window", c->sliding_window);
            else cJSON_AddNullToObject(o, "sliding_window");
        }
        break;
    }
    }
    if (m) hf_add_int(o, "num_experts_per_tok", m->top_k);
    if (torch_dtype) cJSON_AddStringToObject(o, "torch_dtype", torch_dtype);

    /* mixtral has no field for plain (not renormalized) top-k weights */
    const int norm_extra = m && c->arch == MOE_ARCH_MIXTRAL && !m->norm_topk;
    if (m && c->arch != MOE_ARCH_GPT_OSS && !hf_ds_arch(c->arch) && (m->score != MOE_SCORE_SOFTMAX || m->kind != MOE_ROUTE_TOKEN_CHOICE ||
              m->capacity_factor != 0 || m->noise != 0 || m->routed_scale != 1 ||
              m->select_bias || norm_extra || m->group != MOE_GROUP_NONE)) {
        cJSON *x = cJSON_AddObjectToObject(o, "moe");
        if (x && m->score != MOE_SCORE_SOFTMAX) cJSON_AddStringToObject(x, "score", "sigmoid");
        if (x && m->kind != MOE_ROUTE_TOKEN_CHOICE)
            cJSON_AddStringToObject(x, "router",
                                    m->kind == MOE_ROUTE_HASH ? "hash" : "expert_choice");
        if (x && m->capacity_factor != 0)
            cJSON_AddItemToObject(x, "capacity_factor", hf_float(m->capacity_factor));
        if (x && m->noise != 0) cJSON_AddItemToObject(x, "noise", hf_float(m->noise));
        if (x && m->routed_scale != 1)
            cJSON_AddItemToObject(x, "routed_scaling_factor", hf_float(m->routed_scale));
        if (x && m->select_bias) cJSON_AddBoolToObject(x, "select_bias", 1);
        if (x && norm_extra) cJSON_AddBoolToObject(x, "norm_topk", 0);
        if (x && m->group != MOE_GROUP_NONE) {
            cJSON_AddStringToObject(x, "group", m->group == MOE_GROUP_MAX ? "max" : "top2_sum");
            hf_add_int(x, "n_group", m->n_group);
            hf_add_int(x, "topk_group", m->topk_group);
        }
    }
    if (c->mod_capacity > 0) hf_mod_write(o, c);
    return o;
}

int hf_config_write(const moe_config *cfg, const char *path, const char *torch_dtype,
                    moe_err *err) {
    return hf_config_write_q(cfg, path, torch_dtype, 0, err);
}

/* The config.json text of cfg, checked by reading it back into *back
 * (anything config.json cannot say shows up there); NULL on error. */
static char *config_text(const moe_config *cfg, const char *path, const char *torch_dtype,
                         int mxfp4, moe_config *back, moe_err *err) {
    if (moe_config_validate(cfg, path, err)) return NULL;
    const hf_arch *a = hf_arch_of(cfg->arch);
    cJSON *o = hf_build(cfg, torch_dtype);
    if (o && mxfp4) hf_mxfp4_config(o);
    char *text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text) {
        moe_fail(err, "%s: out of memory building config.json", path);
        return NULL;
    }
    const char *d = NULL;
    if (hf_config_parse(back, text, strlen(text), path, err))
        moe_fail_prefix(err, "%s: cannot be written as a %s config.json", path, a->name);
    else if ((d = hf_differs(cfg, back)))
        moe_fail(err, "%s: cannot be written as a %s config.json: %s has no equivalent there",
                 path, a->name, d);
    else
        return text;
    free(text);
    return NULL;
}

int hf_config_write_q(const moe_config *cfg, const char *path, const char *torch_dtype,
                      int mxfp4, moe_err *err) {
    moe_config *back = malloc(sizeof *back);
    if (!back) return moe_fail(err, "%s: out of memory", path);
    char *text = config_text(cfg, path, torch_dtype, mxfp4, back, err);
    int rc = text ? atomic_write(path, text, strlen(text), err) : -1;
    free(back);
    free(text);
    return rc;
}

int hf_config_reread(const moe_config *cfg, const char *torch_dtype, int mxfp4, moe_config *out,
                     moe_err *err) {
    char *text = config_text(cfg, "config.json", torch_dtype, mxfp4, out, err);
    free(text);
    return text ? 0 : -1;
}
