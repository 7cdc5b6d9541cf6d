/*
 * test_weights.c - the weight-role table (src/model/tensor_map.c): names in
 * both formats, presence from the config's flags, shapes, and the rule of
 * which roles may be quantized; gpt_oss MXFP4 experts as loaded.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"
#include "model/model.h"
#include "model/tensor_map.h"
#include "test.h"

/* Two layers: a dense one, then 4 experts with noise and a selection bias. */
static void two_layers(moe_config *c, moe_arch arch) {
    memset(c, 0, sizeof *c);
    c->arch = arch;
    c->vocab = 64, c->dim = 32, c->n_layers = 2, c->n_heads = 4, c->n_kv_heads = 2;
    c->head_dim = 8;
    c->layer[0] = (moe_layer_config){.moe = 0, .ffn_dim = 48};
    c->layer[1] = (moe_layer_config){.moe = 1, .n_experts = 4, .top_k = 2, .expert_dim = 16,
                                     .noise = 1.0f, .select_bias = 1};
}

typedef struct seen {
    int n, noise, sel_bias, stacked, per_expert;
} seen;

static int count(void *ctx, const tm_entry *e) {
    seen *s = ctx;
    s->n++;
    s->noise += e->role == TM_ROUTER_NOISE;
    s->sel_bias += e->role == TM_SEL_BIAS;
    s->stacked += tm_is_expert(e->role) && e->expert < 0;
    s->per_expert += tm_is_expert(e->role) && e->expert >= 0;
    return 0;
}

TEST(weights_table_walk) {
    moe_config c;
    two_layers(&c, MOE_ARCH_MIXTRAL);
    seen hf = {0}, gg = {0};
    CHECK_EQ_INT(tm_walk(&c, TM_HF, NULL, count, &hf), 0);
    CHECK_EQ_INT(tm_walk(&c, TM_GGUF, NULL, count, &gg), 0);
    /* transformers: experts one by one, noise and selection bias present */
    CHECK_EQ_INT(hf.per_expert, 12);
    CHECK_EQ_INT(hf.stacked, 0);
    CHECK_EQ_INT(hf.noise, 1);
    CHECK_EQ_INT(hf.sel_bias, 1);
    /* GGUF: stacked, and no names for what llama.cpp cannot hold */
    CHECK_EQ_INT(gg.stacked, 3);
    CHECK_EQ_INT(gg.per_expert, 0);
    CHECK_EQ_INT(gg.noise + gg.sel_bias, 0);
    CHECK_EQ_INT(hf.n - gg.n, 12 - 3 + 2);
    /* tied: no lm_head in either */
    c.tied_embeddings = 1;
    seen t = {0};
    tm_walk(&c, TM_HF, NULL, count, &t);
    CHECK_EQ_INT(t.n, hf.n - 1);
}

TEST(weights_table_names) {
    moe_config c;
    two_layers(&c, MOE_ARCH_MIXTRAL);
    char b[160];
    tm_entry up = {TM_EXP_UP, 1, 2, 1, 16, 32};
    CHECK(tm_hf_name(b, sizeof b, &c, &up) == 0);
    CHECK_MSG(strcmp(b, "model.layers.1.block_sparse_moe.experts.2.w3.weight") == 0, "%s", b);
    CHECK(tm_hf_name_alt(b, sizeof b, &c, &up, 1) == 0);
    CHECK_MSG(strcmp(b, "model.layers.1.mlp.experts.2.w3.weight") == 0, "%s", b);
    CHECK(tm_gguf_name(b, sizeof b, &up) == 0);
    CHECK_MSG(strcmp(b, "blk.1.ffn_up.2.weight") == 0, "%s", b);
    up.expert = -1;
    CHECK(tm_gguf_name(b, sizeof b, &up) == 0);
    CHECK_MSG(strcmp(b, "blk.1.ffn_up_exps.weight") == 0, "%s", b);
    CHECK(tm_hf_name(b, sizeof b, &c, &up) == -1); /* no stacked transformers name */
    tm_entry bias = {TM_SEL_BIAS, 1, -1, 1, 0, 4};
    CHECK(tm_hf_name(b, sizeof b, &c, &bias) == 0);
    CHECK_MSG(strcmp(b, "model.layers.1.block_sparse_moe.gate.e_score_correction_bias") == 0, "%s", b);
    CHECK(tm_gguf_name(b, sizeof b, &bias) == -1);
    CHECK(tm_hf_name(b, 20, &c, &bias) == -1); /* does not fit */
    two_layers(&c, MOE_ARCH_QWEN2_MOE);
    tm_entry down = {TM_EXP_DOWN, 1, 0, 1, 32, 16};
    CHECK(tm_hf_name(b, sizeof b, &c, &down) == 0);
    CHECK_MSG(strcmp(b, "model.layers.1.mlp.experts.0.down_proj.weight") == 0, "%s", b);
    CHECK(tm_hf_name_alt(b, sizeof b, &c, &down, 1) == -1); /* qwen2_moe has one name */
    tm_entry q = {TM_ATTN_Q, 0, -1, 1, 32, 32};
    CHECK(tm_hf_name(b, sizeof b, &c, &q) == 0);
    CHECK_MSG(strcmp(b, "model.layers.0.self_attn.q_proj.weight") == 0, "%s", b);
    /* architecture rows */
    CHECK(tm_arch_of(MOE_ARCH_MIXTRAL)->gguf_rope_perm == 1);
    CHECK(tm_arch_of(MOE_ARCH_QWEN3_MOE)->gguf_rope_perm == 0);
    CHECK(strcmp(tm_gguf_arch(MOE_ARCH_OLMOE), "olmoe") == 0);
    CHECK_EQ_INT(tm_arch_from_gguf("qwen2moe"), MOE_ARCH_QWEN2_MOE);
    CHECK(tm_arch_of((moe_arch)99) == NULL);
}

TEST(weights_table_quant_rule) {
    /* norms, biases, routers, the shared gate: F32 in every file */
    const tm_role f32[] = {TM_OUTPUT_NORM, TM_ATTN_NORM, TM_FFN_NORM, TM_ATTN_Q_BIAS,
                           TM_ATTN_O_BIAS, TM_ATTN_Q_NORM, TM_ROUTER, TM_SHEXP_INP,
                           TM_ROUTER_NOISE, TM_SEL_BIAS};
    for (size_t i = 0; i < sizeof f32 / sizeof f32[0]; i++)
        CHECK_MSG(tm_keep_f32(f32[i]), "role %d may be quantized", (int)f32[i]);
    const tm_role q[] = {TM_EMBED, TM_OUTPUT, TM_ATTN_Q, TM_ATTN_O, TM_FFN_DOWN,
                         TM_EXP_GATE, TM_EXP_DOWN, TM_SHEXP_UP};
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        CHECK_MSG(!tm_keep_f32(q[i]), "role %d is kept F32", (int)q[i]);
    CHECK(tm_is_vector(TM_SEL_BIAS) && tm_is_vector(TM_ATTN_K_NORM) && !tm_is_vector(TM_SHEXP_INP));
    CHECK(tm_is_expert(TM_EXP_UP) && !tm_is_expert(TM_SHEXP_UP) && !tm_is_expert(TM_ROUTER));
}

/* gpt_oss MXFP4 experts (transformers' layout) load as MXFP4 matrices whose
 * values are transformers' dequantization of the blocks, decoded here
 * independently: gate_up row r of [2F][D] (convert_moe_packed_tensors: byte
 * i of a block = elements 2i (low nibble) and 2i+1, times 2^(scale-127)) is
 * gate row r/2 for even r, up row r/2 for odd r; down_proj is [D][F]. */
static float hf_fp4(const uint8_t *blocks, const uint8_t *scales, int64_t row, int64_t nb,
                    int64_t k) {
    static const float lut[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    int64_t b = row * nb + k / 32, i = k % 32;
    uint8_t byte = blocks[b * 16 + i / 2];
    return ldexpf(lut[i % 2 ? byte >> 4 : byte & 15], (int)scales[b] - 127);
}

TEST(weights_gpt_oss_mxfp4_experts) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/models/gpt_oss_mxfp4", test_fixtures());
    moe_model *m = NULL;
    moe_err err = {{0}};
    int rc = moe_model_load(&m, dir, &err);
    CHECK_MSG(rc == 0, "%s: %s", dir, err.msg);
    if (rc) return;
    const moe_config *c = &m->cfg;
    int64_t D = c->dim, bad = 0, checked = 0;
    float *row = malloc(sizeof(float) * 4096);
    for (int l = 0; l < c->n_layers; l++) {
        int64_t F = c->layer[l].expert_dim, E = c->layer[l].n_experts;
        char name[200];
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj_blocks", l);
        const st_tensor *gb = st_find(&m->st, name);
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj_scales", l);
        const st_tensor *gs = st_find(&m->st, name);
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.down_proj_blocks", l);
        const st_tensor *db = st_find(&m->st, name);
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.down_proj_scales", l);
        const st_tensor *ds = st_find(&m->st, name);
        CHECK(gb && gs && db && ds && D <= 4096 && F <= 4096);
        if (!gb || !gs || !db || !ds || D > 4096 || F > 4096) break;
        for (int64_t p = 0; p < E; p++) {
            const ffn_w *x = &m->layers[l].experts[p];
            CHECK(x->gate.type == DT_MXFP4 && x->up.type == DT_MXFP4 && x->down.type == DT_MXFP4);
            for (int64_t r = 0; r < 2 * F; r++) {
                mat_row_f32(row, r % 2 ? &x->up : &x->gate, r / 2);
                for (int64_t k = 0; k < D; k++, checked++)
                    bad += row[k] != hf_fp4(gb->data, gs->data, p * 2 * F + r, D / 32, k);
            }
            for (int64_t r = 0; r < D; r++) {
                mat_row_f32(row, &x->down, r);
                for (int64_t k = 0; k < F; k++, checked++)
                    bad += row[k] != hf_fp4(db->data, ds->data, p * D + r, F / 32, k);
            }
        }
    }
    CHECK_MSG(bad == 0 && checked > 0, "%lld of %lld expert values differ", (long long)bad,
              (long long)checked);
    free(row);
    moe_model_free(m);
}
