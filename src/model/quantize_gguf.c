/*
 * quantize_gguf.c - write a loaded model as a GGUF file with the types of a
 * plan (quantize.h): metadata first (carried over from a GGUF source, or
 * what llama.cpp's convert_hf_to_gguf.py writes for an HF source), then
 * each tensor converted chunk by chunk into the streaming writer.
 *
 * Metadata written for an HF source (ARCH = llama / qwen2moe / qwen3moe /
 * olmoe / qwen3next / qwen35moe / gpt-oss / deepseek2 / glm4moe), as the
 * converter does: general.{architecture,type,name,file_type,
 * quantization_version}; ARCH.{block_count, context_length,
 * embedding_length, feed_forward_length, attention.head_count,
 * attention.head_count_kv, rope.freq_base, attention.layer_norm_rms_epsilon,
 * expert_count, expert_used_count}; attention.key_length/value_length when
 * head_dim is not hidden/heads (always for qwen3moe, whose configs name
 * it); qwen: expert_feed_forward_length, expert_shared_feed_forward_length;
 * llama: vocab_size, rope.dimension_count; qwen3next: the ssm.* sizes,
 * attention.recurrent_layers, full_attention_interval, rope.dimension_count
 * (gen_kvs_qwen3next); qwen35moe: those and rope.dimension_sections
 * (gen_kvs_qwen35moe); gpt-oss: gen_kvs_oss; deepseek2 / glm4moe: gen_kvs_ds
 * (and write_mla_derived splits kv_b_proj). Beyond the converter: the keys
 * tensor_map.h lists for switches llama.cpp has no field for. The
 * vocabulary: the tokenizer.* pairs of qz_write_opts.vocab (built from the
 * directory's tokenizer.json by gguf_vocab_write.c, as the converter's
 * set_vocab writes them); without one, tokenizer.ggml.model = "none" with
 * the config's BOS/EOS ids and ARCH.vocab_size (llama.cpp then loads the
 * file with placeholder tokens).
 */
#include "model/quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model/quantize_impl.h"
#include "formats/gguf_vocab_write.h"

/* ------------------------------------------------------------- metadata */

#define MAX_GEN_KV 64

typedef struct kvs {
    gguf_wkv *kv;
    int n, cap;
    char (*keys)[96]; /* storage for generated keys */
    int n_keys;
    unsigned char recurrent[MOE_MAX_LAYERS]; /* qwen3next.attention.recurrent_layers */
    int32_t sections[4];                     /* qwen35moe.rope.dimension_sections */
} kvs;

static const char *akey(kvs *k, const char *arch, const char *suffix) {
    char *s = k->keys[k->n_keys++];
    snprintf(s, 96, "%s.%s", arch, suffix);
    return s;
}

static void add(kvs *k, gguf_wkv v) {
    if (k->n < k->cap) k->kv[k->n++] = v;
}

static int has_key(const kvs *k, const char *key) {
    for (int i = 0; i < k->n; i++)
        if (!strcmp(k->kv[i].key, key)) return 1;
    return 0;
}

static void add_vocab(kvs *k, const tok_gguf_vocab *v) {
    for (int i = 0; i < v->n_kv; i++) add(k, v->kv[i]);
}

/* qwen3next's keys (model_gguf.c reads them). The layer pattern goes in
 * as attention.recurrent_layers (the converter writes it when config.json
 * has layer_types) and, for readers without it, as full_attention_interval
 * when it is one (else the converter's default, 4). */
static void gen_kvs_qwen3next(kvs *k, const moe_config *c, const char *a) {
    add(k, gguf_wu32(akey(k, a, "ssm.conv_kernel"), (uint32_t)c->lin_conv));
    add(k, gguf_wu32(akey(k, a, "ssm.state_size"), (uint32_t)c->lin_k_dim));
    add(k, gguf_wu32(akey(k, a, "ssm.group_count"), (uint32_t)c->lin_k_heads));
    add(k, gguf_wu32(akey(k, a, "ssm.time_step_rank"), (uint32_t)c->lin_v_heads));
    add(k, gguf_wu32(akey(k, a, "ssm.inner_size"), (uint32_t)(c->lin_v_heads * c->lin_v_dim)));
    for (int i = 0; i < c->n_layers; i++) k->recurrent[i] = (unsigned char)c->layer[i].linear_attn;
    add(k, gguf_warr(akey(k, a, "attention.recurrent_layers"), GGUF_VT_BOOL, k->recurrent,
                     (uint64_t)c->n_layers));
    int every = 4;
    for (int n = c->n_layers; n >= 1; n--) { /* the smallest interval that fits wins */
        int fits = 1;
        for (int i = 0; i < c->n_layers; i++) fits &= c->layer[i].linear_attn == ((i + 1) % n != 0);
        if (fits) every = n;
    }
    add(k, gguf_wu32(akey(k, a, "full_attention_interval"), (uint32_t)every));
    add(k, gguf_wu32(akey(k, a, TMK_ROPE_DIM), (uint32_t)(c->rope_dim ? c->rope_dim : c->head_dim)));
}

/* What a gpt-oss file needs beyond the common keys (model_gguf.c reads them
 * back): the expert width, the sliding-window pattern when it is not
 * llama.cpp's default (even layers slide), YaRN's keys, and moe's keys for
 * what llama.cpp has as constants (SwiGLU limit and alpha, YaRN truncation). */
static void gen_kvs_oss(kvs *k, const moe_config *c, const moe_layer_config *ml,
                        unsigned char *swa) {
    const char *a = tm_gguf_arch(c->arch);
    add(k, gguf_wu32(akey(k, a, TMK_EXPERT_FF), (uint32_t)ml->expert_dim));
    int deflt = 1;
    for (int i = 0; i < c->n_layers; i++) {
        swa[i] = c->sliding_window > 0 && !c->layer[i].full_attention;
        deflt &= swa[i] == (i % 2 == 0);
    }
    if (c->sliding_window <= 0) /* llama.cpp needs the key; no layer uses it */
        add(k, gguf_wu32(akey(k, a, TMK_SLIDING_WINDOW), (uint32_t)c->max_pos));
    if (!deflt)
        add(k, gguf_warr(akey(k, a, TMK_SWA_PATTERN), GGUF_VT_BOOL, swa, (uint64_t)c->n_layers));
    if (c->rope_kind == MOE_ROPE_YARN) {
        add(k, gguf_wstr(akey(k, a, TMK_ROPE_SCALING_TYPE), "yarn"));
        add(k, gguf_wf32(akey(k, a, TMK_ROPE_SCALING_FACTOR), c->rope_factor));
        add(k, gguf_wu32(akey(k, a, TMK_ROPE_SCALING_ORIG_CTX), (uint32_t)c->rope_orig_max_pos));
        add(k, gguf_wf32(akey(k, a, TMK_ROPE_YARN_BETA_FAST), c->rope_beta_fast));
        add(k, gguf_wf32(akey(k, a, TMK_ROPE_YARN_BETA_SLOW), c->rope_beta_slow));
        float ms = c->rope_factor > 1 ? (float)(0.1 * log(c->rope_factor) + 1.0) : 1.0f;
        if (c->rope_attn_factor != ms)
            add(k, gguf_wf32(akey(k, a, TMK_ROPE_YARN_ATTN_FACTOR), c->rope_attn_factor));
        if (!c->rope_truncate) add(k, gguf_wbool(akey(k, a, TMK_ROPE_YARN_TRUNCATE), false));
    }
    if (ml->act_limit != 7.0f) add(k, gguf_wf32(akey(k, a, TMK_SWIGLU_LIMIT), ml->act_limit));
    if (ml->act_alpha != 1.702f) add(k, gguf_wf32(akey(k, a, TMK_SWIGLU_ALPHA), ml->act_alpha));
}

/* qwen35moe's: qwen3next's and the multimodal RoPE sections, which llama.cpp
 * requires (the converter writes [11, 11, 10, 0] when config.json has none). */
static void gen_kvs_qwen35moe(kvs *k, const moe_config *c, const char *a) {
    gen_kvs_qwen3next(k, c, a);
    static const int32_t def[4] = {11, 11, 10, 0};
    const int *s = c->rope_sections;
    int any = s[0] || s[1] || s[2] || s[3];
    for (int i = 0; i < 4; i++) k->sections[i] = any ? s[i] : def[i];
    add(k, gguf_warr(akey(k, a, "rope.dimension_sections"), GGUF_VT_I32, k->sections, 4));
}

/* The double a float was parsed from (its shortest decimal), so that a key
 * the converter computes in double from config.json rounds as it does. */
static double shortest(float f) {
    char b[32];
    for (int p = 6; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)f);
        if ((float)strtod(b, NULL) == f) break;
    }
    return strtod(b, NULL);
}

static int is_ds(const moe_config *c) {
    return c->arch == MOE_ARCH_DEEPSEEK_V2 || c->arch == MOE_ARCH_DEEPSEEK_V3 ||
           c->arch == MOE_ARCH_GLM4_MOE;
}

/* deepseek2's and glm4moe's keys, as DeepseekV2Model / Glm4MoeModel write
 * them (model_gguf.c's gconfig_ds reads them): the groups (1 / 1 without),
 * the gating function (2 = sigmoid; deepseek2 leaves softmax unsaid, its
 * default), the leading dense layers, the shared expert count, the routed
 * scale, the top-k renormalization (deepseek2: only when on), the rotary
 * dims; deepseek2's latent sizes and YaRN (yarn_log_multiplier = 0.1 x
 * mscale_all_dim). MTP layers are not written (block_count counts the
 * decoder layers, no nextn_predict_layers). Beyond the converter:
 * ARCH.expert_group_score "max" for deepseek_v2's group_limited_greedy
 * (llama.cpp scores groups by their best two only). */
static void gen_kvs_ds(kvs *k, const moe_config *c, const moe_layer_config *ml, const char *a) {
    int glm = c->arch == MOE_ARCH_GLM4_MOE, grouped = ml->group != MOE_GROUP_NONE;
    int dense = 0;
    while (dense < c->n_layers && !c->layer[dense].moe) dense++;
    add(k, gguf_wu32(akey(k, a, "expert_group_count"), (uint32_t)(grouped ? ml->n_group : 1)));
    add(k, gguf_wu32(akey(k, a, "expert_group_used_count"),
                     (uint32_t)(grouped ? ml->topk_group : 1)));
    if (ml->group == MOE_GROUP_MAX) add(k, gguf_wstr(akey(k, a, TMK_EXPERT_GROUP_SCORE), "max"));
    if (ml->score == MOE_SCORE_SIGMOID) add(k, gguf_wu32(akey(k, a, "expert_gating_func"), 2));
    else if (glm) add(k, gguf_wu32(akey(k, a, "expert_gating_func"), 1));
    add(k, gguf_wu32(akey(k, a, "leading_dense_block_count"), (uint32_t)dense));
    add(k, gguf_wu32(akey(k, a, TMK_EXPERT_FF), (uint32_t)ml->expert_dim));
    add(k, gguf_wu32(akey(k, a, "expert_shared_count"), (uint32_t)ml->n_shared));
    add(k, gguf_wf32(akey(k, a, "expert_weights_scale"), ml->routed_scale));
    if (glm || ml->norm_topk)
        add(k, gguf_wbool(akey(k, a, TMK_EXPERT_WEIGHTS_NORM), ml->norm_topk != 0));
    if (glm) {
        add(k, gguf_wu32(akey(k, a, TMK_ROPE_DIM), (uint32_t)(c->rope_dim ? c->rope_dim : c->head_dim)));
        return;
    }
    /* 0 (attn_q) too: the converter leaves it out, but llama.cpp requires the
     * key (but for its "lite" layer counts) */
    add(k, gguf_wu32(akey(k, a, "attention.q_lora_rank"), (uint32_t)c->q_lora_rank));
    add(k, gguf_wu32(akey(k, a, "attention.kv_lora_rank"), (uint32_t)c->kv_lora_rank));
    add(k, gguf_wu32(akey(k, a, "attention.key_length_mla"),
                     (uint32_t)(c->qk_nope_dim + c->qk_rope_dim)));
    add(k, gguf_wu32(akey(k, a, "attention.value_length_mla"), (uint32_t)c->v_head_dim));
    add(k, gguf_wu32(akey(k, a, TMK_ROPE_DIM), (uint32_t)c->qk_rope_dim));
    if (c->rope_kind != MOE_ROPE_YARN) return;
    add(k, gguf_wstr(akey(k, a, TMK_ROPE_SCALING_TYPE), "yarn"));
    add(k, gguf_wf32(akey(k, a, TMK_ROPE_SCALING_FACTOR), c->rope_factor));
    add(k, gguf_wu32(akey(k, a, TMK_ROPE_SCALING_ORIG_CTX), (uint32_t)c->rope_orig_max_pos));
    add(k, gguf_wf32(akey(k, a, TMK_ROPE_YARN_BETA_FAST), c->rope_beta_fast));
    add(k, gguf_wf32(akey(k, a, TMK_ROPE_YARN_BETA_SLOW), c->rope_beta_slow));
    if (c->rope_mscale_all_dim != 0)
        add(k, gguf_wf32(akey(k, a, "rope.scaling.yarn_log_multiplier"),
                         (float)(0.1 * shortest(c->rope_mscale_all_dim))));
}

/* Keys for an HF source; swa [L] holds an array value until the file is written. */
static void gen_kvs(kvs *k, const moe_config *c, int file_type, const char *name,
                    const tok_gguf_vocab *vocab, unsigned char *swa) {
    const char *a = tm_gguf_arch(c->arch);
    const moe_layer_config *ml = NULL, *dense = NULL;
    for (int i = 0; i < c->n_layers; i++) {
        if (c->layer[i].moe && !ml) ml = &c->layer[i];
        if (!c->layer[i].moe && !dense) dense = &c->layer[i];
    }
    int ff = dense ? dense->ffn_dim : c->layer[0].ffn_dim > 0 ? c->layer[0].ffn_dim
                                                              : ml->expert_dim;
    add(k, gguf_wstr("general.architecture", a));
    add(k, gguf_wstr("general.type", "model"));
    if (name && *name) add(k, gguf_wstr("general.name", name));
    add(k, gguf_wu32(akey(k, a, TMK_BLOCK_COUNT), (uint32_t)c->n_layers));
    add(k, gguf_wu32(akey(k, a, TMK_CONTEXT_LENGTH), (uint32_t)c->max_pos));
    add(k, gguf_wu32(akey(k, a, TMK_EMBEDDING_LENGTH), (uint32_t)c->dim));
    add(k, gguf_wu32(akey(k, a, TMK_FEED_FORWARD_LENGTH), (uint32_t)ff));
    add(k, gguf_wu32(akey(k, a, TMK_HEAD_COUNT), (uint32_t)c->n_heads));
    /* deepseek2: one latent "head" of keys and values shared by every head */
    add(k, gguf_wu32(akey(k, a, TMK_HEAD_COUNT_KV), (uint32_t)(c->kv_lora_rank ? 1 : c->n_kv_heads)));
    add(k, gguf_wf32(akey(k, a, TMK_ROPE_FREQ_BASE), c->rope_theta));
    add(k, gguf_wf32(akey(k, a, TMK_RMS_EPS), c->norm_eps));
    add(k, gguf_wu32(akey(k, a, TMK_EXPERT_COUNT), (uint32_t)ml->n_experts));
    add(k, gguf_wu32(akey(k, a, TMK_EXPERT_USED), (uint32_t)ml->top_k));
    int q3n = c->arch == MOE_ARCH_QWEN3_NEXT || c->arch == MOE_ARCH_QWEN3_5_MOE;
    if (c->kv_lora_rank) { /* deepseek2: the latent + rotary key, the latent */
        add(k, gguf_wu32(akey(k, a, TMK_KEY_LENGTH), (uint32_t)(c->kv_lora_rank + c->qk_rope_dim)));
        add(k, gguf_wu32(akey(k, a, TMK_VALUE_LENGTH), (uint32_t)c->kv_lora_rank));
    } else if (c->head_dim * c->n_heads != c->dim || c->arch == MOE_ARCH_QWEN3_MOE || q3n ||
               c->arch == MOE_ARCH_GPT_OSS || c->arch == MOE_ARCH_GLM4_MOE) {
        add(k, gguf_wu32(akey(k, a, TMK_KEY_LENGTH), (uint32_t)c->head_dim));
        add(k, gguf_wu32(akey(k, a, TMK_VALUE_LENGTH), (uint32_t)c->head_dim));
    }
    add(k, gguf_wu32("general.file_type", (uint32_t)file_type));
    if (c->arch == MOE_ARCH_QWEN2_MOE || c->arch == MOE_ARCH_QWEN3_MOE || q3n) {
        add(k, gguf_wu32(akey(k, a, TMK_EXPERT_FF), (uint32_t)ml->expert_dim));
        if (ml->n_shared > 0)
            add(k, gguf_wu32(akey(k, a, TMK_EXPERT_SHARED_FF), (uint32_t)ml->shared_dim));
    }
    if (c->arch == MOE_ARCH_QWEN3_NEXT) gen_kvs_qwen3next(k, c, a);
    if (c->arch == MOE_ARCH_QWEN3_5_MOE) gen_kvs_qwen35moe(k, c, a);
    /* glm4moe's converter leaves it to the token list; without one llama.cpp needs it */
    if (c->arch != MOE_ARCH_GLM4_MOE || !vocab)
        add(k, gguf_wu32(akey(k, a, TMK_VOCAB_SIZE), (uint32_t)c->vocab));
    if (is_ds(c)) gen_kvs_ds(k, c, ml, a);
    if (c->arch == MOE_ARCH_MIXTRAL)
        add(k, gguf_wu32(akey(k, a, TMK_ROPE_DIM), (uint32_t)c->head_dim));
    add(k, gguf_wu32("general.quantization_version", 2));
    /* what llama.cpp has no field for, so that moe reads the model back exactly */
    if (!is_ds(c) && ml->norm_topk != tm_gguf_default_norm_topk(c->arch))
        add(k, gguf_wbool(akey(k, a, TMK_EXPERT_WEIGHTS_NORM), ml->norm_topk != 0));
    if (c->clip_qkv > 0) add(k, gguf_wf32(akey(k, a, TMK_CLAMP_KQV), c->clip_qkv));
    if (c->sliding_window > 0)
        add(k, gguf_wu32(akey(k, a, TMK_SLIDING_WINDOW), (uint32_t)c->sliding_window));
    if (c->arch == MOE_ARCH_GPT_OSS) gen_kvs_oss(k, c, ml, swa);
    if (vocab) {
        add_vocab(k, vocab);
        return;
    }
    add(k, gguf_wstr("tokenizer.ggml.model", "none"));
    if (c->bos_id >= 0) add(k, gguf_wu32(TMK_BOS_ID, (uint32_t)c->bos_id));
    if (c->eos_id >= 0) add(k, gguf_wu32(TMK_EOS_ID, (uint32_t)c->eos_id));
}

/* Does a GGUF source carry a vocabulary? */
static int has_vocab(const gguf_file *g) {
    const char *model = NULL;
    const gguf_kv *kv = gguf_find_kv(g, "tokenizer.ggml.model");
    if (kv && kv->type == GGUF_VT_STR) model = kv->strs[0];
    return model && strcmp(model, "none") && strcmp(model, "no_vocab");
}

/* Keys of a GGUF source, carried over; the file type replaced; a vocabulary
 * added when the source has none; deepseek2's q_lora_rank 0 when missing
 * (gen_kvs_ds). A glm4moe source's multi-token-prediction
 * layers are not loaded, so not written: block_count loses them and
 * nextn_predict_layers goes. */
static void copy_kvs(kvs *k, const gguf_file *g, const moe_config *c, int file_type,
                     const tok_gguf_vocab *vocab) {
    if (has_vocab(g)) vocab = NULL;
    const char *a = tm_gguf_arch(c->arch);
    const char *bc = akey(k, a, TMK_BLOCK_COUNT), *nextn = akey(k, a, "nextn_predict_layers");
    for (int i = 0; i < g->n_kv; i++) {
        const gguf_kv *s = &g->kvs[i];
        if (!strcmp(s->key, "general.file_type") ||
            !strcmp(s->key, "general.quantization_version"))
            continue;
        if (c->n_mtp_layers > 0 && !strcmp(s->key, nextn)) continue;
        if (c->n_mtp_layers > 0 && !strcmp(s->key, bc)) {
            add(k, gguf_wu32(bc, (uint32_t)c->n_layers));
            continue;
        }
        if (vocab && !strncmp(s->key, "tokenizer.", 10)) continue;
        gguf_wkv w = {.key = s->key, .type = s->type, .arr_type = s->arr_type, .n = s->n};
        if (s->type == GGUF_VT_STR) {
            w.str = s->strs[0];
            w.lens = s->lens;
        } else if (s->type == GGUF_VT_ARR) {
            if (s->arr_type == GGUF_VT_STR) {
                w.strs = s->strs;
                w.lens = s->lens;
            } else {
                w.arr = s->raw;
            }
        } else {
            memcpy(&w.v, s->raw, (size_t)gguf_vtype_size(s->type));
        }
        add(k, w);
    }
    add(k, gguf_wu32("general.file_type", (uint32_t)file_type));
    add(k, gguf_wu32("general.quantization_version", 2));
    if (vocab) add_vocab(k, vocab);
    /* a deepseek2 file with attn_q (the converter's) lacks the key llama.cpp requires */
    const char *qr = akey(k, a, "attention.q_lora_rank");
    if (c->kv_lora_rank && !c->q_lora_rank && !has_key(k, qr)) add(k, gguf_wu32(qr, 0));
    if (!has_key(k, "tokenizer.ggml.model")) {
        add(k, gguf_wstr("tokenizer.ggml.model", "none"));
        const char *vk = akey(k, a, TMK_VOCAB_SIZE);
        if (!has_key(k, vk)) add(k, gguf_wu32(vk, (uint32_t)c->vocab));
    }
}

/* --------------------------------------------------------------- tensors */

typedef struct qz_sink {
    const moe_model *m; /* the source (NULL for another source of data) */
    const qz_plan *p;
    const qz_write_opts *o;
    gguf_stream st;
    void *buf;          /* one chunk of output rows */
    float *scratch;     /* [threads][max cols] */
    int64_t done, total;
    moe_err *err;
} writer;

int qz_sink_write(qz_sink *w, const void *data, size_t n, moe_err *err) {
    if (gguf_stream_write(&w->st, data, n, err)) return -1;
    w->done += (int64_t)n;
    if (w->o->progress) w->o->progress(w->o->user, w->done, w->total);
    return 0;
}

/* One plane (or the whole) of tensor i: rows converted chunk by chunk. */
static int write_plane(writer *w, int i, const mat *src, int64_t perm_dh, const int64_t *map,
                       const int64_t *col_map, const char *name) {
    const tm_entry *e = &w->p->t[i];
    int type = w->p->type[i];
    int64_t rows = e->rows ? e->rows : 1;
    size_t orb = qz_row_bytes(type, e->cols);
    if ((!map && src->rows != rows) || src->cols != e->cols || !orb)
        return moe_fail(w->err, "%s: source is [%lld][%lld], expected [%lld][%lld]", name,
                        (long long)src->rows, (long long)src->cols, (long long)rows,
                        (long long)e->cols);
    int64_t per = (int64_t)(QZ_CHUNK_BYTES / orb);
    if (per < 1) per = 1;
    for (int64_t r = 0; r < rows; r += per) {
        int64_t n = rows - r < per ? rows - r : per;
        qz_rows job = {src, r, n, perm_dh, type, w->buf, w->scratch, map, col_map};
        qz_convert_rows(w->o->pool, &job);
        if (qz_sink_write(w, w->buf, (size_t)n * orb, w->err)) return -1;
    }
    return 0;
}

/* A DeltaNet loaded from transformers' layout, written in llama.cpp's as
 * convert_hf_to_gguf.py does: qwen3_next's attn_qkv and attn_gate are rows
 * of in_proj_qkvz; ssm_a is -exp(A_log); qwen3_5_moe's value heads are
 * tiled over the key heads (tm_lin_v_map; a model loaded from such a file
 * has them so already). 1: not such a tensor. */
static int write_lin_derived(writer *w, int i, const char *name) {
    const tm_entry *e = &w->p->t[i];
    const moe_config *c = &w->m->cfg;
    const layer_w *lw = e->layer >= 0 && w->m->layers ? &w->m->layers[e->layer] : NULL;
    if (!lw) return 1;
    if ((e->role == TM_LIN_QKV || e->role == TM_LIN_Z) && !lw->lin_qkv.data && lw->lin_qkvz.data) {
        int64_t *map = malloc(sizeof *map * (size_t)e->rows);
        if (!map) return moe_fail(w->err, "%s: out of memory", name);
        for (int64_t g = 0; g < e->rows; g++) map[g] = tm_lin_qkvz_row(c, e->role == TM_LIN_Z, g);
        int rc = write_plane(w, i, &lw->lin_qkvz, 0, map, NULL, name);
        free(map);
        return rc;
    }
    int axis = tm_lin_v_axis(e->role), derive = e->role == TM_LIN_SSM_A && !lw->lin_ssm_a;
    int tile = axis && tm_lin_split(c) && !c->lin_v_tiled && c->lin_v_heads != c->lin_k_heads;
    if (!derive && !tile) return 1;
    mat src;
    float *a = NULL;
    int64_t n = axis == 1 ? e->rows : e->cols, *map = NULL;
    if (derive) {
        if (!lw->lin_a_log) return 1;
        a = malloc(sizeof *a * (size_t)e->cols);
        if (!a) return moe_fail(w->err, "%s: out of memory", name);
        for (int64_t h = 0; h < e->cols; h++) a[h] = -expf(lw->lin_a_log[h]);
        src = (mat){a, DT_F32, 1, e->cols};
    } else if (tm_source(w->m, e, 0, &src)) {
        return moe_fail(w->err, "%s: the model has no such weight", name);
    }
    if (tile && !(map = malloc(sizeof *map * (size_t)n))) {
        free(a);
        return moe_fail(w->err, "%s: out of memory", name);
    }
    if (tile) tm_lin_v_map(c, e->role, 1, map, n);
    int rc = write_plane(w, i, &src, 0, axis == 1 ? map : NULL, axis == 2 ? map : NULL, name);
    free(map);
    free(a);
    return rc;
}

/* Latent attention loaded from transformers' layout, written as
 * DeepseekV2Model writes it: kv_b_proj's per-head rows [W_uk Dn | W_uv Dv]
 * split into attn_k_b (plane h: W_uk transposed, [R][Dn]) and attn_v_b
 * (plane h: W_uv, [Dv][R]); and for rotary dims as two halves
 * (rope_interleave 0, which llama.cpp's deepseek2 cannot say) the rotary
 * rows of q and of the rotary key reordered so that llama.cpp's interleaved
 * pairs are the halves' pairs (q . k is the same sum). 1: not such a tensor. */
static int write_mla_derived(writer *w, int i, const char *name) {
    const tm_entry *e = &w->p->t[i];
    const moe_config *c = &w->m->cfg;
    const layer_w *lw = e->layer >= 0 && w->m->layers ? &w->m->layers[e->layer] : NULL;
    if (!lw || !c->kv_lora_rank) return 1;
    int64_t R = c->kv_lora_rank, Dn = c->qk_nope_dim, Dv = c->v_head_dim, Dr = c->qk_rope_dim;
    int split = (e->role == TM_ATTN_K_B || e->role == TM_ATTN_V_B) && !lw->wk_b.data &&
                lw->wkv_b.data;
    int rope = !c->rope_interleave && (e->role == TM_ATTN_Q || e->role == TM_ATTN_Q_B ||
                                       e->role == TM_ATTN_KV_A);
    if (!split && !rope) return 1;
    int64_t n = e->role == TM_ATTN_K_B ? R * Dn + R : e->rows;
    float *kt = NULL;
    int64_t *map = NULL;
    if (e->role == TM_ATTN_K_B) kt = malloc(sizeof *kt * (size_t)n);
    else map = malloc(sizeof *map * (size_t)n);
    if (!kt && !map) return moe_fail(w->err, "%s: out of memory", name);
    int rc = 0;
    if (rope) { /* rows of q (per head [nope Dn | rope Dr]) or of [latent R | rope key Dr] */
        mat src;
        int64_t per = e->role == TM_ATTN_KV_A ? e->rows : Dn + Dr, off = per - Dr;
        for (int64_t g = 0; g < n; g++)
            map[g] = g % per < off ? g : g / per * per + off + qz_perm_row(g % per - off, Dr);
        rc = tm_source(w->m, e, 0, &src) ? moe_fail(w->err, "%s: the model has no such weight", name)
                                         : write_plane(w, i, &src, 0, map, NULL, name);
    }
    for (int h = 0; split && !rc && h < e->planes; h++) {
        int64_t base = h * (Dn + Dv);
        if (e->role == TM_ATTN_V_B) {
            for (int64_t j = 0; j < Dv; j++) map[j] = base + Dn + j;
            rc = write_plane(w, i, &lw->wkv_b, 0, map, NULL, name);
            continue;
        }
        float *row = kt + R * Dn;
        for (int64_t d = 0; d < Dn; d++) { /* kt [R][Dn] = rows base .. base + Dn transposed */
            mat_row_f32(row, &lw->wkv_b, base + d);
            for (int64_t r = 0; r < R; r++) kt[r * Dn + d] = row[r];
        }
        mat src = {kt, DT_F32, R, Dn};
        rc = write_plane(w, i, &src, 0, NULL, NULL, name);
    }
    free(kt);
    free(map);
    return rc;
}

static int write_tensor(writer *w, int i, const char *name) {
    const tm_entry *e = &w->p->t[i];
    const moe_config *c = &w->m->cfg;
    int rc = write_lin_derived(w, i, name);
    if (rc <= 0) return rc;
    if ((rc = write_mla_derived(w, i, name)) <= 0) return rc;
    /* llama.cpp's llama graph wants q and k rows in its interleaved RoPE order */
    int64_t perm = 0;
    if (tm_arch_of(c->arch)->gguf_rope_perm && (tm_role_of(e->role)->flags & TMF_ROPE_PERM))
        perm = c->head_dim;
    for (int p = 0; p < e->planes; p++) {
        mat src;
        if (tm_source(w->m, e, p, &src))
            return moe_fail(w->err, "%s: the model has no such weight", name);
        if (write_plane(w, i, &src, perm, NULL, NULL, name)) return -1;
    }
    return 0;
}

static int model_tensor(void *ctx, qz_sink *w, int i, const char *name, moe_err *err) {
    (void)ctx;
    (void)err;
    return write_tensor(w, i, name);
}

/* The file: metadata of m's GGUF source (gguf) or of config mc, then each
 * tensor's data from fn. */
static int write_gguf(const moe_model *m, const moe_config *mc, const gguf_file *gguf,
                      const qz_plan *p, const char *path, const qz_write_opts *o,
                      qz_tensor_fn fn, void *ctx, moe_err *err) {
    if (tm_arch_of(mc->arch)->no_gguf)
        return moe_fail(err, "%s: a %s model cannot be written as GGUF yet (no GGUF layout "
                        "here)", path, mc->model_type);
    if (mc->mod_capacity > 0)
        return moe_fail(err, "%s: a Mixture-of-Depths model cannot be written as GGUF (llama.cpp "
                        "has no field for its routers); write safetensors", path);
    int rc = -1;
    kvs k = {0};
    gguf_wtensor *wt = calloc((size_t)p->n + 1, sizeof *wt);
    char (*names)[96] = calloc((size_t)p->n + 1, sizeof *names);
    int cap = (gguf ? gguf->n_kv : 0) + MAX_GEN_KV + (o->vocab ? o->vocab->n_kv : 0);
    k.kv = calloc((size_t)cap, sizeof *k.kv);
    k.keys = calloc(MAX_GEN_KV, sizeof *k.keys);
    k.cap = cap;
    writer w = {m, p, o, {0}, NULL, NULL, 0, p->bytes, err};
    unsigned char swa[MOE_MAX_LAYERS];
    int64_t max_cols = 1;
    size_t max_chunk = 1;
    for (int i = 0; i < p->n; i++) {
        const tm_entry *e = &p->t[i];
        if (e->cols > max_cols) max_cols = e->cols;
        size_t orb = qz_row_bytes(p->type[i], e->cols);
        int64_t rows = e->rows ? e->rows : 1;
        size_t chunk = orb * (size_t)(rows < (int64_t)(QZ_CHUNK_BYTES / (orb ? orb : 1))
                                          ? rows : (int64_t)(QZ_CHUNK_BYTES / (orb ? orb : 1)));
        if (chunk < orb) chunk = orb;
        if (chunk > max_chunk) max_chunk = chunk;
    }
    int threads = o->pool ? pool_size(o->pool) : 1;
    w.buf = aligned_alloc(64, (max_chunk + 63) & ~(size_t)63);
    w.scratch = malloc(sizeof(float) * 2 * (size_t)max_cols * (size_t)threads);
    if (!wt || !names || !k.kv || !k.keys || !w.buf || !w.scratch) {
        moe_fail(err, "%s: out of memory", path);
        goto done;
    }
    if (gguf) copy_kvs(&k, gguf, mc, p->file_type, o->vocab);
    else gen_kvs(&k, mc, p->file_type, o->name, o->vocab, swa);
    for (int i = 0; i < p->n; i++) {
        const tm_entry *e = &p->t[i];
        if (tm_gguf_name(names[i], sizeof names[i], e)) {
            moe_fail(err, "%s: tensor %d: name too long", path, i);
            goto done;
        }
        wt[i].name = names[i];
        wt[i].type = (gguf_type)p->type[i];
        wt[i].n_dims = tm_gguf_dims(e, wt[i].ne);
        wt[i].ne[3] = 1;
    }
    if (gguf_stream_begin(&w.st, path, k.kv, k.n, wt, p->n, err)) goto done;
    for (int i = 0; i < p->n; i++)
        if (fn(ctx, &w, i, names[i], err)) {
            gguf_stream_abort(&w.st);
            goto done;
        }
    rc = gguf_stream_finish(&w.st, err);
done:
    free(w.buf);
    free(w.scratch);
    free(k.kv);
    free(k.keys);
    free(names);
    free(wt);
    return rc;
}

int qz_write_gguf(const moe_model *m, const qz_plan *p, const char *path,
                  const qz_write_opts *o, moe_err *err) {
    return write_gguf(m, &m->cfg, m->gguf, p, path, o, model_tensor, NULL, err);
}

int qz_write_gguf_from(const moe_config *c, const qz_plan *p, const char *path,
                       const qz_write_opts *o, qz_tensor_fn fn, void *ctx, moe_err *err) {
    return write_gguf(NULL, c, NULL, p, path, o, fn, ctx, err);
}
