/*
 * tensor_map.c - the table of a model's weights and their names in GGUF
 * (llama.cpp) and Hugging Face (transformers) files; see tensor_map.h.
 */
#include "model/tensor_map.h"

#include <stdio.h>
#include <string.h>

#include "model/model.h"

/* ---------------------------------------------------------------- GGUF */

static const char *const k_arch[] = {
    [MOE_ARCH_MIXTRAL] = "llama",
    [MOE_ARCH_QWEN2_MOE] = "qwen2moe",
    [MOE_ARCH_QWEN3_MOE] = "qwen3moe",
    [MOE_ARCH_OLMOE] = "olmoe",
};
#define N_ARCH ((int)(sizeof k_arch / sizeof k_arch[0]))

const char *tm_gguf_arch(moe_arch a) {
    return (int)a >= 0 && (int)a < N_ARCH ? k_arch[a] : "?";
}

int tm_arch_from_gguf(const char *name) {
    for (int i = 0; i < N_ARCH; i++)
        if (!strcmp(name, k_arch[i])) return i;
    return -1;
}

int tm_gguf_default_norm_topk(moe_arch a) {
    return a == MOE_ARCH_MIXTRAL || a == MOE_ARCH_QWEN3_MOE;
}

/* Per role: the GGUF name ("%d" = layer), and for routed experts the split
 * per-expert form ("%d" layer, "%d" expert). */
static const char *const k_gguf[TM_ROLE_COUNT] = {
    [TM_EMBED] = "token_embd.weight",
    [TM_OUTPUT_NORM] = "output_norm.weight",
    [TM_OUTPUT] = "output.weight",
    [TM_ATTN_NORM] = "blk.%d.attn_norm.weight",
    [TM_ATTN_Q] = "blk.%d.attn_q.weight",
    [TM_ATTN_K] = "blk.%d.attn_k.weight",
    [TM_ATTN_V] = "blk.%d.attn_v.weight",
    [TM_ATTN_O] = "blk.%d.attn_output.weight",
    [TM_ATTN_Q_BIAS] = "blk.%d.attn_q.bias",
    [TM_ATTN_K_BIAS] = "blk.%d.attn_k.bias",
    [TM_ATTN_V_BIAS] = "blk.%d.attn_v.bias",
    [TM_ATTN_O_BIAS] = "blk.%d.attn_output.bias",
    [TM_ATTN_Q_NORM] = "blk.%d.attn_q_norm.weight",
    [TM_ATTN_K_NORM] = "blk.%d.attn_k_norm.weight",
    [TM_FFN_NORM] = "blk.%d.ffn_norm.weight",
    [TM_FFN_GATE] = "blk.%d.ffn_gate.weight",
    [TM_FFN_UP] = "blk.%d.ffn_up.weight",
    [TM_FFN_DOWN] = "blk.%d.ffn_down.weight",
    [TM_ROUTER] = "blk.%d.ffn_gate_inp.weight",
    [TM_EXP_GATE] = "blk.%d.ffn_gate_exps.weight",
    [TM_EXP_UP] = "blk.%d.ffn_up_exps.weight",
    [TM_EXP_DOWN] = "blk.%d.ffn_down_exps.weight",
    [TM_SHEXP_GATE] = "blk.%d.ffn_gate_shexp.weight",
    [TM_SHEXP_UP] = "blk.%d.ffn_up_shexp.weight",
    [TM_SHEXP_DOWN] = "blk.%d.ffn_down_shexp.weight",
    [TM_SHEXP_INP] = "blk.%d.ffn_gate_inp_shexp.weight",
};
static const char *const k_gguf_split[3] = {
    "blk.%d.ffn_gate.%d.weight", "blk.%d.ffn_up.%d.weight", "blk.%d.ffn_down.%d.weight"};

static int fit(int r, size_t n) { return r >= 0 && (size_t)r < n ? 0 : -1; }

int tm_gguf_name_of(char *buf, size_t n, tm_role r, int layer, int expert) {
    if ((int)r < 0 || r >= TM_ROLE_COUNT) return -1;
    if (tm_is_expert(r) && expert >= 0)
        return fit(snprintf(buf, n, k_gguf_split[r - TM_EXP_GATE], layer, expert), n);
    if (layer < 0) return fit(snprintf(buf, n, "%s", k_gguf[r]), n);
    return fit(snprintf(buf, n, k_gguf[r], layer), n);
}

int tm_gguf_name(char *buf, size_t n, const tm_entry *e) {
    return tm_gguf_name_of(buf, n, e->role, e->layer, e->expert);
}

/* ------------------------------------------------------------ HF names */

int tm_hf_name(char *buf, size_t n, const moe_config *c, const tm_entry *e) {
    int mixtral = c->arch == MOE_ARCH_MIXTRAL;
    const char *mp = mixtral ? "block_sparse_moe" : "mlp"; /* the MoE block */
    int L = e->layer, J = e->expert;
    switch (e->role) {
    case TM_EMBED: return fit(snprintf(buf, n, "model.embed_tokens.weight"), n);
    case TM_OUTPUT_NORM: return fit(snprintf(buf, n, "model.norm.weight"), n);
    case TM_OUTPUT: return fit(snprintf(buf, n, "lm_head.weight"), n);
    default: break;
    }
    static const char *const tail[TM_ROLE_COUNT] = {
        [TM_ATTN_NORM] = "input_layernorm.weight",
        [TM_ATTN_Q] = "self_attn.q_proj.weight",
        [TM_ATTN_K] = "self_attn.k_proj.weight",
        [TM_ATTN_V] = "self_attn.v_proj.weight",
        [TM_ATTN_O] = "self_attn.o_proj.weight",
        [TM_ATTN_Q_BIAS] = "self_attn.q_proj.bias",
        [TM_ATTN_K_BIAS] = "self_attn.k_proj.bias",
        [TM_ATTN_V_BIAS] = "self_attn.v_proj.bias",
        [TM_ATTN_O_BIAS] = "self_attn.o_proj.bias",
        [TM_ATTN_Q_NORM] = "self_attn.q_norm.weight",
        [TM_ATTN_K_NORM] = "self_attn.k_norm.weight",
        [TM_FFN_NORM] = "post_attention_layernorm.weight",
        [TM_FFN_GATE] = "mlp.gate_proj.weight",
        [TM_FFN_UP] = "mlp.up_proj.weight",
        [TM_FFN_DOWN] = "mlp.down_proj.weight",
    };
    if (e->role <= TM_FFN_DOWN)
        return fit(snprintf(buf, n, "model.layers.%d.%s", L, tail[e->role]), n);
    switch (e->role) {
    case TM_ROUTER: return fit(snprintf(buf, n, "model.layers.%d.%s.gate.weight", L, mp), n);
    case TM_EXP_GATE:
    case TM_EXP_UP:
    case TM_EXP_DOWN: {
        static const char *const mx[3] = {"w1", "w3", "w2"};
        static const char *const hf[3] = {"gate_proj", "up_proj", "down_proj"};
        int k = e->role - TM_EXP_GATE;
        if (J < 0) return -1; /* transformers checkpoints name experts one by one */
        return fit(snprintf(buf, n, "model.layers.%d.%s.experts.%d.%s.weight", L, mp, J,
                            mixtral ? mx[k] : hf[k]), n);
    }
    case TM_SHEXP_GATE:
        return fit(snprintf(buf, n, "model.layers.%d.mlp.shared_expert.gate_proj.weight", L), n);
    case TM_SHEXP_UP:
        return fit(snprintf(buf, n, "model.layers.%d.mlp.shared_expert.up_proj.weight", L), n);
    case TM_SHEXP_DOWN:
        return fit(snprintf(buf, n, "model.layers.%d.mlp.shared_expert.down_proj.weight", L), n);
    case TM_SHEXP_INP:
        return fit(snprintf(buf, n, "model.layers.%d.mlp.shared_expert_gate.weight", L), n);
    default: return -1;
    }
}

/* ---------------------------------------------------------------- walk */

typedef struct walker {
    tm_entry *out;
    int cap, n;
} walker;

static void put(walker *w, tm_role r, int layer, int expert, int planes, int64_t rows,
                int64_t cols) {
    if (w->n < w->cap)
        w->out[w->n] = (tm_entry){r, layer, expert, planes, rows, cols};
    w->n++;
}

int tm_list(const moe_config *c, const unsigned char *split_layer, tm_entry *out, int cap) {
    walker w = {out, cap, 0};
    int64_t D = c->dim, H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim, V = c->vocab;
    put(&w, TM_EMBED, -1, -1, 1, V, D);
    for (int i = 0; i < c->n_layers; i++) {
        const moe_layer_config *lc = &c->layer[i];
        put(&w, TM_ATTN_NORM, i, -1, 1, 0, D);
        put(&w, TM_ATTN_Q, i, -1, 1, H * Dh, D);
        put(&w, TM_ATTN_K, i, -1, 1, G * Dh, D);
        put(&w, TM_ATTN_V, i, -1, 1, G * Dh, D);
        put(&w, TM_ATTN_O, i, -1, 1, D, H * Dh);
        if (c->qkv_bias) {
            put(&w, TM_ATTN_Q_BIAS, i, -1, 1, 0, H * Dh);
            put(&w, TM_ATTN_K_BIAS, i, -1, 1, 0, G * Dh);
            put(&w, TM_ATTN_V_BIAS, i, -1, 1, 0, G * Dh);
        }
        if (c->o_bias) put(&w, TM_ATTN_O_BIAS, i, -1, 1, 0, D);
        if (c->qk_norm != MOE_QKNORM_NONE) {
            int full = c->qk_norm == MOE_QKNORM_FULL;
            put(&w, TM_ATTN_Q_NORM, i, -1, 1, 0, full ? H * Dh : Dh);
            put(&w, TM_ATTN_K_NORM, i, -1, 1, 0, full ? G * Dh : Dh);
        }
        put(&w, TM_FFN_NORM, i, -1, 1, 0, D);
        if (!lc->moe) {
            int64_t F = lc->ffn_dim;
            put(&w, TM_FFN_GATE, i, -1, 1, F, D);
            put(&w, TM_FFN_UP, i, -1, 1, F, D);
            put(&w, TM_FFN_DOWN, i, -1, 1, D, F);
            continue;
        }
        int64_t E = lc->n_experts, F = lc->expert_dim, FS = lc->shared_dim;
        put(&w, TM_ROUTER, i, -1, 1, E, D);
        if (split_layer && split_layer[i]) {
            for (int e = 0; e < E; e++) {
                put(&w, TM_EXP_GATE, i, e, 1, F, D);
                put(&w, TM_EXP_UP, i, e, 1, F, D);
                put(&w, TM_EXP_DOWN, i, e, 1, D, F);
            }
        } else {
            put(&w, TM_EXP_GATE, i, -1, (int)E, F, D);
            put(&w, TM_EXP_UP, i, -1, (int)E, F, D);
            put(&w, TM_EXP_DOWN, i, -1, (int)E, D, F);
        }
        if (lc->n_shared > 0) {
            put(&w, TM_SHEXP_GATE, i, -1, 1, FS, D);
            put(&w, TM_SHEXP_UP, i, -1, 1, FS, D);
            put(&w, TM_SHEXP_DOWN, i, -1, 1, D, FS);
            if (lc->shared_gate) put(&w, TM_SHEXP_INP, i, -1, 1, 1, D);
        }
    }
    put(&w, TM_OUTPUT_NORM, -1, -1, 1, 0, D);
    if (!c->tied_embeddings) put(&w, TM_OUTPUT, -1, -1, 1, V, D);
    return w.n;
}

static int vec(mat *out, const float *v, int64_t n) {
    if (!v) return -1;
    *out = (mat){v, DT_F32, 1, n};
    return 0;
}

static int have(mat *out, const mat *w) {
    if (!w->data) return -1;
    *out = *w;
    return 0;
}

int tm_source(const moe_model *m, const tm_entry *e, int p, mat *out) {
    if (e->role == TM_EMBED) return have(out, &m->embed);
    if (e->role == TM_OUTPUT) return have(out, &m->lm_head);
    if (e->role == TM_OUTPUT_NORM) return vec(out, m->final_norm, e->cols);
    if (e->layer < 0 || e->layer >= m->cfg.n_layers) return -1;
    const layer_w *lw = &m->layers[e->layer];
    int J = e->expert >= 0 ? e->expert : p;
    switch (e->role) {
    case TM_ATTN_NORM: return vec(out, lw->attn_norm, e->cols);
    case TM_FFN_NORM: return vec(out, lw->ffn_norm, e->cols);
    case TM_ATTN_Q: return have(out, &lw->wq);
    case TM_ATTN_K: return have(out, &lw->wk);
    case TM_ATTN_V: return have(out, &lw->wv);
    case TM_ATTN_O: return have(out, &lw->wo);
    case TM_ATTN_Q_BIAS: return vec(out, lw->bq, e->cols);
    case TM_ATTN_K_BIAS: return vec(out, lw->bk, e->cols);
    case TM_ATTN_V_BIAS: return vec(out, lw->bv, e->cols);
    case TM_ATTN_O_BIAS: return vec(out, lw->bo, e->cols);
    case TM_ATTN_Q_NORM: return vec(out, lw->q_norm, e->cols);
    case TM_ATTN_K_NORM: return vec(out, lw->k_norm, e->cols);
    case TM_FFN_GATE: return have(out, &lw->dense.gate);
    case TM_FFN_UP: return have(out, &lw->dense.up);
    case TM_FFN_DOWN: return have(out, &lw->dense.down);
    case TM_ROUTER: return have(out, &lw->router);
    case TM_EXP_GATE:
    case TM_EXP_UP:
    case TM_EXP_DOWN: {
        const moe_layer_config *lc = &m->cfg.layer[e->layer];
        if (!lc->moe || !lw->experts || J < 0 || J >= lc->n_experts) return -1;
        const ffn_w *f = &lw->experts[J];
        return have(out, e->role == TM_EXP_GATE ? &f->gate : e->role == TM_EXP_UP ? &f->up
                                                                                 : &f->down);
    }
    case TM_SHEXP_GATE: return have(out, &lw->shared.gate);
    case TM_SHEXP_UP: return have(out, &lw->shared.up);
    case TM_SHEXP_DOWN: return have(out, &lw->shared.down);
    case TM_SHEXP_INP: return have(out, &lw->shared_gate);
    default: return -1;
    }
}
