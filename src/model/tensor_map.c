/*
 * tensor_map.c - the weight-role table and the per-architecture table (see
 * tensor_map.h), and the walk that turns them and a moe_config into the
 * tensors of a file.
 */
#include "model/tensor_map.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "model/model.h"

/* ------------------------------------------------------- architectures */

static const tm_arch_info k_arch[] = {
    [MOE_ARCH_MIXTRAL] = {"llama", "mixtral", "block_sparse_moe", "mlp", {"w1", "w3", "w2"},
                          1, 1, 0, MOE_QKNORM_NONE, 0, NULL, 0, 0, NULL},
    [MOE_ARCH_QWEN2_MOE] = {"qwen2moe", "qwen2_moe", "mlp", NULL,
                            {"gate_proj", "up_proj", "down_proj"}, 0, 0, 1, MOE_QKNORM_NONE, 1, NULL, 0, 0, NULL},
    [MOE_ARCH_QWEN3_MOE] = {"qwen3moe", "qwen3_moe", "mlp", NULL,
                            {"gate_proj", "up_proj", "down_proj"}, 0, 1, 0, MOE_QKNORM_HEAD, 0, NULL, 0, 0, NULL},
    [MOE_ARCH_OLMOE] = {"olmoe", "olmoe", "mlp", NULL, {"gate_proj", "up_proj", "down_proj"},
                        0, 0, 0, MOE_QKNORM_FULL, 0, NULL, 0, 0, NULL},
    [MOE_ARCH_GPT_OSS] = {"gpt-oss", "gpt_oss", "mlp", NULL, {"gate_proj", "up_proj", "down_proj"},
                          0, 0, 1, MOE_QKNORM_NONE, 0, "router", 1, 0, NULL},
    [MOE_ARCH_QWEN3_NEXT] = {"qwen3next", "qwen3_next", "mlp", NULL,
                             {"gate_proj", "up_proj", "down_proj"}, 0, 1, 0, MOE_QKNORM_HEAD, 1,
                             NULL, 0, 0, NULL},
    [MOE_ARCH_QWEN3_5_MOE] = {"qwen35moe", "qwen3_5_moe_text", "mlp", NULL,
                              {"gate_proj", "up_proj", "down_proj"}, 0, 1, 0, MOE_QKNORM_HEAD, 1,
                              NULL, 0, 0, NULL},
    /* llama.cpp's deepseek2 and glm4moe files (model_gguf.c reads them,
     * quantize_gguf.c writes them); a deepseek2 file loads as deepseek_v2, or
     * deepseek_v3 with sigmoid routing. llama.cpp renormalizes their top-k
     * weights only when ARCH.expert_weights_norm says so. */
    [MOE_ARCH_DEEPSEEK_V2] = {"deepseek2", "deepseek_v2", "mlp", NULL,
                              {"gate_proj", "up_proj", "down_proj"}, 0, 0, 0, MOE_QKNORM_NONE, 1,
                              NULL, 0, 0, "shared_experts"},
    [MOE_ARCH_DEEPSEEK_V3] = {"deepseek2", "deepseek_v3", "mlp", NULL,
                              {"gate_proj", "up_proj", "down_proj"}, 0, 0, 0, MOE_QKNORM_NONE, 1,
                              NULL, 0, 0, "shared_experts"},
    [MOE_ARCH_GLM4_MOE] = {"glm4moe", "glm4_moe", "mlp", NULL,
                           {"gate_proj", "up_proj", "down_proj"}, 0, 0, 1, MOE_QKNORM_NONE, 1,
                           NULL, 0, 0, "shared_experts"},
};
#define N_ARCH ((int)(sizeof k_arch / sizeof k_arch[0]))

const tm_arch_info *tm_arch_of(moe_arch a) {
    return (int)a >= 0 && (int)a < N_ARCH ? &k_arch[a] : NULL;
}

const char *tm_gguf_arch(moe_arch a) {
    const tm_arch_info *ai = tm_arch_of(a);
    return ai ? ai->gguf_arch : "?";
}

int tm_arch_from_gguf(const char *name) {
    /* the first row wins: "deepseek2" is deepseek_v2 until its gating says v3 */
    for (int i = 0; i < N_ARCH; i++)
        if (!k_arch[i].no_gguf && !strcmp(name, k_arch[i].gguf_arch)) return i;
    return -1;
}

int tm_gguf_default_norm_topk(moe_arch a) {
    const tm_arch_info *ai = tm_arch_of(a);
    return ai ? ai->gguf_norm_topk : 0;
}

/* ---------------------------------------------------------------- roles */

/* Dimension symbols of the shape rules. */
typedef enum tdim {
    TD_NONE = 0, /* rows of a vector */
    TD_ONE,      /* 1 */
    TD_V,        /* vocab */
    TD_D,        /* hidden */
    TD_Q,        /* H*Dh */
    TD_KV,       /* G*Dh */
    TD_QN,       /* Dh (per head) or H*Dh (full) */
    TD_KN,       /* Dh or G*Dh */
    TD_F,        /* the dense layer's ffn_dim */
    TD_FE,       /* expert_dim */
    TD_FS,       /* shared_dim */
    TD_E,        /* n_experts */
    TD_H,        /* query heads */
    TD_2FE,      /* 2 * expert_dim (fused gate/up) */
    TD_QG,       /* q_proj rows: H*Dh, twice that with the output gate */
    TD_LQKVZ,    /* 2*Hk*Dk + 2*Hv*Dv */
    TD_LBA,      /* 2*Hv */
    TD_LCONV,    /* 2*Hk*Dk + Hv*Dv conv channels */
    TD_LK,       /* conv kernel */
    TD_LHV,      /* Hv */
    TD_LDV,      /* Dv */
    TD_LVD,      /* Hv*Dv */
    TD_QO,       /* o_proj columns: H*Dh, H*v_head_dim with latent attention */
    TD_QLORA,    /* q_lora_rank */
    TD_KVA,      /* kv_lora_rank + qk_rope_dim */
    TD_KVR,      /* kv_lora_rank */
    TD_KVB,      /* H*(qk_nope_dim + v_head_dim) */
    TD_NOPE,     /* qk_nope_dim */
    TD_VD,       /* v_head_dim */
} tdim;

/* When a role is present. */
typedef enum twhen {
    TW_ALWAYS = 0,
    TW_UNTIED,      /* !tied_embeddings */
    TW_QKV_BIAS,
    TW_O_BIAS,
    TW_QK_NORM,     /* qk_norm != NONE */
    TW_DENSE,       /* the layer is dense */
    TW_MOE,         /* the layer is MoE */
    TW_NOISE,       /* MoE with noisy top-k */
    TW_SEL_BIAS,    /* MoE with a selection bias */
    TW_SHARED,      /* MoE with a shared expert */
    TW_LIN_SPLIT,   /* a Gated DeltaNet layer with apart projections (tm_lin_split) */
    TW_SHARED_GATE, /* ... and its gate */
    TW_SINKS,       /* attention sinks */
    TW_ROUTER_BIAS, /* MoE with a router bias */
    TW_EXP_BIAS,    /* MoE with expert biases */
    TW_SELF_ATTN,   /* the layer's token mixer is attention */
    TW_LINEAR,      /* ... a Gated DeltaNet */
    TW_MHA,         /* attention with its own k and v projections (not latent) */
    TW_Q,           /* attention with q_proj (not latent with q_lora_rank) */
    TW_QLORA,       /* latent attention with q_lora_rank */
    TW_MLA,         /* latent attention */
    TW_MOD,         /* a Mixture-of-Depths layer */
} twhen;

/* Where a role lives in a loaded model. */
typedef enum tslot { TS_MODEL, TS_LAYER, TS_EXPERT, TS_NONE } tslot;

typedef struct role_row {
    tm_role_info info;
    tdim rows, cols; /* shape per plane; routed experts have E planes */
    twhen when;
    tslot where;
    size_t offset;   /* of the mat (or const float *) in moe_model / layer_w / ffn_w */
} role_row;

#define F32V (TMF_F32)
#define NORM (TMF_F32 | TMF_INIT_ONES)
#define MDL(f) TS_MODEL, offsetof(struct moe_model, f)
#define LYR(f) TS_LAYER, offsetof(layer_w, f)
#define EXP(f) TS_EXPERT, offsetof(ffn_w, f)
#define L_ "model.layers.{L}."

static const role_row k_roles[TM_ROLE_COUNT] = {
    [TM_EMBED] = {{"token_embd.weight", NULL, "model.embed_tokens.weight", 0},
                  TD_V, TD_D, TW_ALWAYS, MDL(embed)},
    [TM_OUTPUT_NORM] = {{"output_norm.weight", NULL, "model.norm.weight", NORM},
                        TD_NONE, TD_D, TW_ALWAYS, MDL(final_norm)},
    [TM_OUTPUT] = {{"output.weight", NULL, "lm_head.weight", 0},
                   TD_V, TD_D, TW_UNTIED, MDL(lm_head)},
    [TM_ATTN_NORM] = {{"blk.%d.attn_norm.weight", NULL, L_ "input_layernorm.weight", NORM},
                      TD_NONE, TD_D, TW_ALWAYS, LYR(attn_norm)},
    [TM_ATTN_Q] = {{"blk.%d.attn_q.weight", NULL, L_ "self_attn.q_proj.weight", TMF_ROPE_PERM},
                   TD_QG, TD_D, TW_Q, LYR(wq)},
    [TM_ATTN_K] = {{"blk.%d.attn_k.weight", NULL, L_ "self_attn.k_proj.weight", TMF_ROPE_PERM},
                   TD_KV, TD_D, TW_MHA, LYR(wk)},
    [TM_ATTN_V] = {{"blk.%d.attn_v.weight", NULL, L_ "self_attn.v_proj.weight", 0},
                   TD_KV, TD_D, TW_MHA, LYR(wv)},
    [TM_ATTN_O] = {{"blk.%d.attn_output.weight", NULL, L_ "self_attn.o_proj.weight", 0},
                   TD_D, TD_QO, TW_SELF_ATTN, LYR(wo)},
    [TM_ATTN_Q_BIAS] = {{"blk.%d.attn_q.bias", NULL, L_ "self_attn.q_proj.bias", F32V},
                        TD_NONE, TD_Q, TW_QKV_BIAS, LYR(bq)},
    [TM_ATTN_K_BIAS] = {{"blk.%d.attn_k.bias", NULL, L_ "self_attn.k_proj.bias", F32V},
                        TD_NONE, TD_KV, TW_QKV_BIAS, LYR(bk)},
    [TM_ATTN_V_BIAS] = {{"blk.%d.attn_v.bias", NULL, L_ "self_attn.v_proj.bias", F32V},
                        TD_NONE, TD_KV, TW_QKV_BIAS, LYR(bv)},
    [TM_ATTN_O_BIAS] = {{"blk.%d.attn_output.bias", NULL, L_ "self_attn.o_proj.bias", F32V},
                        TD_NONE, TD_D, TW_O_BIAS, LYR(bo)},
    [TM_ATTN_Q_NORM] = {{"blk.%d.attn_q_norm.weight", NULL, L_ "self_attn.q_norm.weight", NORM},
                        TD_NONE, TD_QN, TW_QK_NORM, LYR(q_norm)},
    [TM_ATTN_K_NORM] = {{"blk.%d.attn_k_norm.weight", NULL, L_ "self_attn.k_norm.weight", NORM},
                        TD_NONE, TD_KN, TW_QK_NORM, LYR(k_norm)},
    [TM_FFN_NORM] = {{"blk.%d.ffn_norm.weight", NULL, L_ "post_attention_layernorm.weight", NORM},
                     TD_NONE, TD_D, TW_ALWAYS, LYR(ffn_norm)},
    [TM_FFN_GATE] = {{"blk.%d.ffn_gate.weight", NULL, L_ "mlp.gate_proj.weight", 0},
                     TD_F, TD_D, TW_DENSE, LYR(dense.gate)},
    [TM_FFN_UP] = {{"blk.%d.ffn_up.weight", NULL, L_ "mlp.up_proj.weight", 0},
                   TD_F, TD_D, TW_DENSE, LYR(dense.up)},
    [TM_FFN_DOWN] = {{"blk.%d.ffn_down.weight", NULL, L_ "mlp.down_proj.weight", 0},
                     TD_D, TD_F, TW_DENSE, LYR(dense.down)},
    [TM_ROUTER] = {{"blk.%d.ffn_gate_inp.weight", NULL, L_ "{M}.{R}.weight", F32V},
                   TD_E, TD_D, TW_MOE, LYR(router)},
    [TM_EXP_GATE] = {{"blk.%d.ffn_gate_exps.weight", "blk.%d.ffn_gate.%d.weight",
                      L_ "{M}.experts.{J}.{W}.weight", TMF_EXPERT},
                     TD_FE, TD_D, TW_MOE, EXP(gate)},
    [TM_EXP_UP] = {{"blk.%d.ffn_up_exps.weight", "blk.%d.ffn_up.%d.weight",
                    L_ "{M}.experts.{J}.{W}.weight", TMF_EXPERT},
                   TD_FE, TD_D, TW_MOE, EXP(up)},
    [TM_EXP_DOWN] = {{"blk.%d.ffn_down_exps.weight", "blk.%d.ffn_down.%d.weight",
                      L_ "{M}.experts.{J}.{W}.weight", TMF_EXPERT},
                     TD_D, TD_FE, TW_MOE, EXP(down)},
    [TM_SHEXP_GATE] = {{"blk.%d.ffn_gate_shexp.weight", NULL,
                        L_ "{M}.{S}.gate_proj.weight", 0},
                       TD_FS, TD_D, TW_SHARED, LYR(shared.gate)},
    [TM_SHEXP_UP] = {{"blk.%d.ffn_up_shexp.weight", NULL, L_ "{M}.{S}.up_proj.weight",
                      0},
                     TD_FS, TD_D, TW_SHARED, LYR(shared.up)},
    [TM_SHEXP_DOWN] = {{"blk.%d.ffn_down_shexp.weight", NULL,
                        L_ "{M}.{S}.down_proj.weight", 0},
                       TD_D, TD_FS, TW_SHARED, LYR(shared.down)},
    [TM_SHEXP_INP] = {{"blk.%d.ffn_gate_inp_shexp.weight", NULL,
                       L_ "{M}.shared_expert_gate.weight", F32V},
                      TD_ONE, TD_D, TW_SHARED_GATE, LYR(shared_gate)},
    [TM_ROUTER_NOISE] = {{NULL, NULL, L_ "{M}.gate_noise.weight", F32V | TMF_INIT_ZEROS},
                         TD_E, TD_D, TW_NOISE, LYR(router_noise)},
    [TM_SEL_BIAS] = {{NULL, NULL, L_ "{M}.gate.e_score_correction_bias", F32V | TMF_INIT_ZEROS},
                     TD_NONE, TD_E, TW_SEL_BIAS, LYR(sel_bias)},
    [TM_ATTN_SINKS] = {{"blk.%d.attn_sinks.weight", NULL, L_ "self_attn.sinks", F32V},
                       TD_NONE, TD_H, TW_SINKS, LYR(sinks)},
    [TM_ROUTER_BIAS] = {{"blk.%d.ffn_gate_inp.bias", NULL, L_ "{M}.{R}.bias", F32V},
                        TD_NONE, TD_E, TW_ROUTER_BIAS, LYR(router_b)},
    [TM_EXP_GATE_UP] = {{NULL, NULL, L_ "{M}.experts.gate_up_proj", TMF_EXPERT | TMF_FUSED},
                        TD_D, TD_2FE, TW_MOE, TS_NONE, 0},
    [TM_EXP_GATE_UP_BIAS] = {{NULL, NULL, L_ "{M}.experts.gate_up_proj_bias", F32V | TMF_FUSED},
                             TD_E, TD_2FE, TW_EXP_BIAS, TS_NONE, 0},
    [TM_EXP_DOWN_T] = {{NULL, NULL, L_ "{M}.experts.down_proj", TMF_EXPERT | TMF_FUSED},
                       TD_FE, TD_D, TW_MOE, TS_NONE, 0},
    [TM_EXP_DOWN_BIAS] = {{NULL, NULL, L_ "{M}.experts.down_proj_bias", F32V | TMF_FUSED},
                          TD_E, TD_D, TW_EXP_BIAS, TS_NONE, 0},
    [TM_LIN_QKVZ] = {{NULL, NULL, L_ "linear_attn.in_proj_qkvz.weight", 0},
                     TD_LQKVZ, TD_D, TW_LINEAR, LYR(lin_qkvz)},
    [TM_LIN_BA] = {{"blk.%d.ssm_ba.weight", NULL, L_ "linear_attn.in_proj_ba.weight", 0},
                   TD_LBA, TD_D, TW_LINEAR, LYR(lin_ba)},
    [TM_LIN_CONV] = {{"blk.%d.ssm_conv1d.weight", NULL, L_ "linear_attn.conv1d.weight",
                      F32V | TMF_MID1},
                     TD_LCONV, TD_LK, TW_LINEAR, LYR(lin_conv)},
    [TM_LIN_DT_BIAS] = {{"blk.%d.ssm_dt.bias", NULL, L_ "linear_attn.dt_bias",
                         F32V | TMF_INIT_ONES},
                        TD_NONE, TD_LHV, TW_LINEAR, LYR(lin_dt_bias)},
    [TM_LIN_A_LOG] = {{NULL, NULL, L_ "linear_attn.A_log", F32V | TMF_INIT_ZEROS},
                      TD_NONE, TD_LHV, TW_LINEAR, LYR(lin_a_log)},
    [TM_LIN_NORM] = {{"blk.%d.ssm_norm.weight", NULL, L_ "linear_attn.norm.weight", NORM},
                     TD_NONE, TD_LDV, TW_LINEAR, LYR(lin_norm)},
    [TM_LIN_OUT] = {{"blk.%d.ssm_out.weight", NULL, L_ "linear_attn.out_proj.weight", 0},
                    TD_D, TD_LVD, TW_LINEAR, LYR(lin_out)},
    [TM_LIN_QKV] = {{"blk.%d.attn_qkv.weight", NULL, L_ "linear_attn.in_proj_qkv.weight", 0},
                    TD_LCONV, TD_D, TW_LINEAR, LYR(lin_qkv)},
    [TM_LIN_Z] = {{"blk.%d.attn_gate.weight", NULL, L_ "linear_attn.in_proj_z.weight", 0},
                  TD_LVD, TD_D, TW_LINEAR, LYR(lin_z)},
    [TM_LIN_B] = {{"blk.%d.ssm_beta.weight", NULL, L_ "linear_attn.in_proj_b.weight", 0},
                  TD_LHV, TD_D, TW_LIN_SPLIT, LYR(lin_b)},
    [TM_LIN_A] = {{"blk.%d.ssm_alpha.weight", NULL, L_ "linear_attn.in_proj_a.weight", 0},
                  TD_LHV, TD_D, TW_LIN_SPLIT, LYR(lin_a)},
    [TM_LIN_SSM_A] = {{"blk.%d.ssm_a", NULL, NULL, F32V}, TD_NONE, TD_LHV, TW_LINEAR, LYR(lin_ssm_a)},
    [TM_POST_NORM] = {{"blk.%d.post_attention_norm.weight", NULL, NULL, NORM},
                      TD_NONE, TD_D, TW_ALWAYS, LYR(ffn_norm)},
    [TM_EXP_GATE_B] = {{"blk.%d.ffn_gate_exps.bias", NULL, NULL, F32V | TMF_PLANES},
                       TD_NONE, TD_FE, TW_EXP_BIAS, EXP(bg)},
    [TM_EXP_UP_B] = {{"blk.%d.ffn_up_exps.bias", NULL, NULL, F32V | TMF_PLANES},
                     TD_NONE, TD_FE, TW_EXP_BIAS, EXP(bu)},
    [TM_EXP_DOWN_B] = {{"blk.%d.ffn_down_exps.bias", NULL, NULL, F32V | TMF_PLANES},
                       TD_NONE, TD_D, TW_EXP_BIAS, EXP(bd)},
    [TM_ATTN_Q_A] = {{"blk.%d.attn_q_a.weight", NULL, L_ "self_attn.q_a_proj.weight", 0},
                     TD_QLORA, TD_D, TW_QLORA, LYR(wq_a)},
    [TM_ATTN_Q_A_NORM] = {{"blk.%d.attn_q_a_norm.weight", NULL,
                           L_ "self_attn.q_a_layernorm.weight", NORM},
                          TD_NONE, TD_QLORA, TW_QLORA, LYR(q_a_norm)},
    [TM_ATTN_Q_B] = {{"blk.%d.attn_q_b.weight", NULL, L_ "self_attn.q_b_proj.weight", 0},
                     TD_Q, TD_QLORA, TW_QLORA, LYR(wq_b)},
    [TM_ATTN_KV_A] = {{"blk.%d.attn_kv_a_mqa.weight", NULL,
                       L_ "self_attn.kv_a_proj_with_mqa.weight", 0},
                      TD_KVA, TD_D, TW_MLA, LYR(wkv_a)},
    [TM_ATTN_KV_A_NORM] = {{"blk.%d.attn_kv_a_norm.weight", NULL,
                            L_ "self_attn.kv_a_layernorm.weight", NORM},
                           TD_NONE, TD_KVR, TW_MLA, LYR(kv_a_norm)},
    /* GGUF files hold it split (attn_k_b, attn_v_b): no GGUF name here */
    [TM_ATTN_KV_B] = {{NULL, NULL, L_ "self_attn.kv_b_proj.weight", 0},
                      TD_KVB, TD_KVR, TW_MLA, LYR(wkv_b)},
    [TM_ATTN_K_B] = {{"blk.%d.attn_k_b.weight", NULL, NULL, TMF_HEADS},
                     TD_KVR, TD_NOPE, TW_MLA, LYR(wk_b)},
    [TM_ATTN_V_B] = {{"blk.%d.attn_v_b.weight", NULL, NULL, TMF_HEADS},
                     TD_VD, TD_KVR, TW_MLA, LYR(wv_b)},
    [TM_EXP_PROBS_B] = {{"blk.%d.exp_probs_b.bias", NULL, NULL, F32V},
                        TD_NONE, TD_E, TW_SEL_BIAS, LYR(sel_bias)},
    [TM_MOD_ROUTER] = {{NULL, NULL, L_ "mod_router.weight", F32V}, TD_ONE, TD_D, TW_MOD,
                       LYR(mod_router)},
};

/* The order of a layer's tensors in a file (the routed experts as a group). */
static const tm_role k_layer_order[] = {
    TM_MOD_ROUTER,  TM_ATTN_NORM,   TM_ATTN_Q,      TM_ATTN_Q_A,     TM_ATTN_Q_A_NORM, TM_ATTN_Q_B,
    TM_ATTN_KV_A,   TM_ATTN_KV_A_NORM, TM_ATTN_KV_B, TM_ATTN_K_B,     TM_ATTN_V_B,
    TM_ATTN_K,      TM_ATTN_V,      TM_ATTN_O,
    TM_ATTN_Q_BIAS, TM_ATTN_K_BIAS, TM_ATTN_V_BIAS,  TM_ATTN_O_BIAS, TM_ATTN_SINKS,
    TM_ATTN_Q_NORM, TM_ATTN_K_NORM, TM_LIN_A_LOG,    TM_LIN_SSM_A,   TM_LIN_CONV,
    TM_LIN_DT_BIAS, TM_LIN_BA,      TM_LIN_QKVZ,     TM_LIN_QKV,     TM_LIN_Z,
    TM_LIN_B,       TM_LIN_A,       TM_LIN_NORM,     TM_LIN_OUT,
    TM_FFN_NORM,    TM_FFN_GATE,    TM_FFN_UP,
    TM_FFN_DOWN,    TM_ROUTER,      TM_ROUTER_BIAS,  TM_ROUTER_NOISE, TM_SEL_BIAS,
    TM_EXP_GATE,    TM_EXP_GATE_B,  TM_EXP_UP_B,     TM_EXP_DOWN_B,  TM_SHEXP_GATE,
    TM_SHEXP_UP,    TM_SHEXP_DOWN,  TM_SHEXP_INP,
};

/* Roles an architecture's GGUF files hold under another role's name (and
 * row): walked in its place in that format. */
static const struct {
    moe_arch arch;
    tm_role role, as;
} k_gguf_alias[] = {
    {MOE_ARCH_GPT_OSS, TM_FFN_NORM, TM_POST_NORM}, /* blk.N.post_attention_norm */
    {MOE_ARCH_QWEN3_NEXT, TM_FFN_NORM, TM_POST_NORM},
    {MOE_ARCH_QWEN3_5_MOE, TM_FFN_NORM, TM_POST_NORM},
    {MOE_ARCH_GLM4_MOE, TM_FFN_NORM, TM_POST_NORM},
    {MOE_ARCH_DEEPSEEK_V2, TM_SEL_BIAS, TM_EXP_PROBS_B}, /* blk.N.exp_probs_b.bias */
    {MOE_ARCH_DEEPSEEK_V3, TM_SEL_BIAS, TM_EXP_PROBS_B},
    {MOE_ARCH_GLM4_MOE, TM_SEL_BIAS, TM_EXP_PROBS_B},
};

static tm_role gguf_alias(const moe_config *c, tm_role r) {
    for (size_t i = 0; i < sizeof k_gguf_alias / sizeof k_gguf_alias[0]; i++)
        if (k_gguf_alias[i].arch == c->arch && k_gguf_alias[i].role == r) return k_gguf_alias[i].as;
    return r;
}

const tm_role_info *tm_role_of(tm_role r) {
    static const tm_role_info none = {NULL, NULL, NULL, 0};
    return (int)r >= 0 && r < TM_ROLE_COUNT ? &k_roles[r].info : &none;
}

int tm_lin_split(const moe_config *c) { return c->arch == MOE_ARCH_QWEN3_5_MOE; }

int tm_norm_offset(const moe_config *c, tm_role r) {
    return c->norm_offset && (r == TM_ATTN_NORM || r == TM_FFN_NORM || r == TM_OUTPUT_NORM ||
                              r == TM_ATTN_Q_NORM || r == TM_ATTN_K_NORM);
}

int tm_is_vector(tm_role r) {
    return (int)r >= 0 && r < TM_ROLE_COUNT && k_roles[r].rows == TD_NONE;
}

static int64_t dim_of(tdim d, const moe_config *c, const moe_layer_config *lc) {
    int64_t H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim;
    int full = c->qk_norm == MOE_QKNORM_FULL;
    switch (d) {
    case TD_NONE: return 0;
    case TD_ONE: return 1;
    case TD_V: return c->vocab;
    case TD_D: return c->dim;
    case TD_Q: return H * Dh;
    case TD_KV: return G * Dh;
    case TD_QN: return full ? H * Dh : Dh;
    case TD_KN: return full ? G * Dh : Dh;
    case TD_F: return lc ? lc->ffn_dim : 0;
    case TD_FE: return lc ? lc->expert_dim : 0;
    case TD_FS: return lc ? lc->shared_dim : 0;
    case TD_E: return lc ? lc->n_experts : 0;
    case TD_H: return H;
    case TD_2FE: return lc ? 2 * (int64_t)lc->expert_dim : 0;
    case TD_QG: return H * Dh * (c->attn_out_gate ? 2 : 1);
    case TD_LQKVZ: return 2 * (int64_t)c->lin_k_heads * c->lin_k_dim + 2 * (int64_t)c->lin_v_heads * c->lin_v_dim;
    case TD_LBA: return 2 * (int64_t)c->lin_v_heads;
    case TD_LCONV: return 2 * (int64_t)c->lin_k_heads * c->lin_k_dim + (int64_t)c->lin_v_heads * c->lin_v_dim;
    case TD_LK: return c->lin_conv;
    case TD_LHV: return c->lin_v_heads;
    case TD_LDV: return c->lin_v_dim;
    case TD_LVD: return (int64_t)c->lin_v_heads * c->lin_v_dim;
    case TD_QO: return H * (c->kv_lora_rank ? c->v_head_dim : Dh);
    case TD_QLORA: return c->q_lora_rank;
    case TD_KVA: return (int64_t)c->kv_lora_rank + c->qk_rope_dim;
    case TD_KVR: return c->kv_lora_rank;
    case TD_KVB: return H * ((int64_t)c->qk_nope_dim + c->v_head_dim);
    case TD_NOPE: return c->qk_nope_dim;
    case TD_VD: return c->v_head_dim;
    }
    return 0;
}

static int present(twhen w, const moe_config *c, const moe_layer_config *lc) {
    int attn = !lc || !lc->linear_attn;
    switch (w) {
    case TW_ALWAYS: return 1;
    case TW_UNTIED: return !c->tied_embeddings;
    case TW_QKV_BIAS: return attn && c->qkv_bias;
    case TW_O_BIAS: return attn && c->o_bias;
    case TW_QK_NORM: return attn && c->qk_norm != MOE_QKNORM_NONE;
    case TW_SELF_ATTN: return attn;
    case TW_LINEAR: return !attn;
    case TW_DENSE: return lc && !lc->moe;
    case TW_MOE: return lc && lc->moe;
    case TW_NOISE: return lc && lc->moe && lc->noise > 0;
    case TW_SEL_BIAS: return lc && lc->moe && lc->select_bias;
    case TW_SHARED: return lc && lc->moe && lc->n_shared > 0;
    case TW_LIN_SPLIT: return !attn && tm_lin_split(c);
    case TW_SHARED_GATE: return lc && lc->moe && lc->n_shared > 0 && lc->shared_gate;
    case TW_SINKS: return attn && c->attn_sinks;
    case TW_ROUTER_BIAS: return lc && lc->moe && lc->router_bias;
    case TW_EXP_BIAS: return lc && lc->moe && lc->expert_bias;
    case TW_MHA: return attn && !c->kv_lora_rank;
    case TW_Q: return attn && (!c->kv_lora_rank || !c->q_lora_rank);
    case TW_QLORA: return attn && c->kv_lora_rank && c->q_lora_rank;
    case TW_MLA: return attn && c->kv_lora_rank;
    case TW_MOD: return lc && lc->mod;
    }
    return 0;
}

/* ---------------------------------------------------------------- names */

static int fit(int r, size_t n) { return r >= 0 && (size_t)r < n ? 0 : -1; }

int tm_gguf_name_of(char *buf, size_t n, tm_role r, int layer, int expert) {
    if ((int)r < 0 || r >= TM_ROLE_COUNT || !k_roles[r].info.gguf) return -1;
    const tm_role_info *ri = &k_roles[r].info;
    if (tm_is_expert(r) && expert >= 0) return fit(snprintf(buf, n, ri->gguf_split, layer, expert), n);
    if (layer < 0) return fit(snprintf(buf, n, "%s", ri->gguf), n);
    return fit(snprintf(buf, n, ri->gguf, layer), n);
}

int tm_gguf_name(char *buf, size_t n, const tm_entry *e) {
    return tm_gguf_name_of(buf, n, e->role, e->layer, e->expert);
}

int tm_hf_name_alt(char *buf, size_t n, const moe_config *c, const tm_entry *e, int alt) {
    const tm_arch_info *ai = tm_arch_of(c->arch);
    if ((int)e->role < 0 || e->role >= TM_ROLE_COUNT || !ai || n == 0) return -1;
    const char *moe = alt ? ai->hf_moe_alt : ai->hf_moe;
    if (!moe || !k_roles[e->role].info.hf) return -1; /* a GGUF-only role */
    int expert = tm_is_expert(e->role), fused = (tm_role_of(e->role)->flags & TMF_FUSED) != 0;
    if (expert && e->expert < 0 && !fused) return -1; /* transformers names experts one by one */
    size_t o = 0;
    for (const char *p = k_roles[e->role].info.hf; *p; p++) {
        char tmp[24];
        const char *put = NULL;
        if (p[0] == '{' && p[1] && p[2] == '}') {
            switch (p[1]) {
            case 'L': snprintf(tmp, sizeof tmp, "%d", e->layer), put = tmp; break;
            case 'J': snprintf(tmp, sizeof tmp, "%d", e->expert), put = tmp; break;
            case 'M': put = moe; break;
            case 'R': put = ai->hf_router ? ai->hf_router : "gate"; break;
            case 'S': put = ai->hf_shared ? ai->hf_shared : "shared_expert"; break;
            case 'W': put = expert && !fused ? ai->hf_expert[e->role - TM_EXP_GATE] : NULL; break;
            default: break;
            }
            if (!put) return -1;
            p += 2;
        }
        size_t len = put ? strlen(put) : 1;
        if (o + len >= n) return -1;
        memcpy(buf + o, put ? put : p, len);
        o += len;
    }
    buf[o] = 0;
    return 0;
}

int tm_hf_name(char *buf, size_t n, const moe_config *c, const tm_entry *e) {
    return tm_hf_name_alt(buf, n, c, e, 0);
}

int tm_name(char *buf, size_t n, tm_format f, const moe_config *c, const tm_entry *e) {
    return f == TM_HF ? tm_hf_name(buf, n, c, e) : tm_gguf_name(buf, n, e);
}

/* ---------------------------------------------------------------- walk */

static int has_name(tm_format f, tm_role r) {
    return f == TM_HF ? k_roles[r].info.hf != NULL : k_roles[r].info.gguf != NULL;
}

/* One role at one layer (lc NULL for the global ones). */
static int walk_role(const moe_config *c, tm_format f, int split, int layer,
                     const moe_layer_config *lc, tm_role r,
                     int (*fn)(void *, const tm_entry *), void *ctx) {
    const tm_arch_info *ai = tm_arch_of(c->arch);
    if (f == TM_GGUF) r = gguf_alias(c, r);
    const role_row *rr = &k_roles[r];
    if (!has_name(f, r) || !present(rr->when, c, lc)) return 0;
    /* qwen3_next's checkpoints hold in_proj_qkvz / in_proj_ba, its GGUF files
     * attn_qkv / attn_gate / ssm_ba; qwen3_5_moe's in_proj_qkv, _z, _b, _a */
    if ((r == TM_LIN_QKVZ || r == TM_LIN_BA) && tm_lin_split(c)) return 0;
    if ((r == TM_LIN_QKV || r == TM_LIN_Z) && f == TM_HF && !tm_lin_split(c)) return 0;
    int rc;
    if (r != TM_EXP_GATE) {
        int planes = (rr->info.flags & TMF_PLANES) && lc ? lc->n_experts
                     : rr->info.flags & TMF_HEADS ? c->n_heads : 1;
        tm_entry e = {r, layer, -1, planes, dim_of(rr->rows, c, lc), dim_of(rr->cols, c, lc)};
        return fn(ctx, &e);
    }
    /* the routed experts: gate, up, down stacked, or expert by expert */
    int E = lc->n_experts;
    if (f == TM_HF && ai && ai->hf_fused) { /* transformers' fused stacked tensors */
        static const tm_role fused[] = {TM_EXP_GATE_UP, TM_EXP_GATE_UP_BIAS, TM_EXP_DOWN_T,
                                        TM_EXP_DOWN_BIAS};
        for (int k = 0; k < 4; k++) {
            const role_row *x = &k_roles[fused[k]];
            if (!present(x->when, c, lc)) continue;
            int stacked = tm_is_expert(fused[k]);
            tm_entry e = {fused[k], layer, -1, stacked ? E : 1, dim_of(x->rows, c, lc),
                          dim_of(x->cols, c, lc)};
            if ((rc = fn(ctx, &e))) return rc;
        }
        return 0;
    }
    if (split) {
        for (int j = 0; j < E; j++)
            for (int k = 0; k < 3; k++) {
                const role_row *x = &k_roles[TM_EXP_GATE + k];
                tm_entry e = {(tm_role)(TM_EXP_GATE + k), layer, j, 1, dim_of(x->rows, c, lc),
                              dim_of(x->cols, c, lc)};
                if ((rc = fn(ctx, &e))) return rc;
            }
        return 0;
    }
    for (int k = 0; k < 3; k++) {
        const role_row *x = &k_roles[TM_EXP_GATE + k];
        tm_entry e = {(tm_role)(TM_EXP_GATE + k), layer, -1, E, dim_of(x->rows, c, lc),
                      dim_of(x->cols, c, lc)};
        if ((rc = fn(ctx, &e))) return rc;
    }
    return 0;
}

int tm_walk(const moe_config *c, tm_format f, const unsigned char *split_layer,
            int (*fn)(void *ctx, const tm_entry *e), void *ctx) {
    int rc;
    if ((rc = walk_role(c, f, 0, -1, NULL, TM_EMBED, fn, ctx))) return rc;
    for (int i = 0; i < c->n_layers; i++) {
        int split = f == TM_HF || (split_layer && split_layer[i]);
        for (size_t k = 0; k < sizeof k_layer_order / sizeof k_layer_order[0]; k++)
            if ((rc = walk_role(c, f, split, i, &c->layer[i], k_layer_order[k], fn, ctx)))
                return rc;
    }
    if ((rc = walk_role(c, f, 0, -1, NULL, TM_OUTPUT_NORM, fn, ctx))) return rc;
    return walk_role(c, f, 0, -1, NULL, TM_OUTPUT, fn, ctx);
}

typedef struct lister {
    tm_entry *out;
    int cap, n;
} lister;

static int list_one(void *ctx, const tm_entry *e) {
    lister *l = ctx;
    if (l->n < l->cap) l->out[l->n] = *e;
    l->n++;
    return 0;
}

int tm_list(const moe_config *c, tm_format f, const unsigned char *split_layer, tm_entry *out,
            int cap) {
    lister l = {out, cap, 0};
    tm_walk(c, f, split_layer, list_one, &l);
    return l.n;
}

int64_t tm_lin_qkvz_row(const moe_config *c, int z, int64_t g) {
    int64_t Hk = c->lin_k_heads, Dk = c->lin_k_dim, rDv = (int64_t)(c->lin_v_heads / Hk) * c->lin_v_dim;
    int64_t grp = 2 * Dk + 2 * rDv; /* one key head's rows */
    if (z) return g / rDv * grp + 2 * Dk + rDv + g % rDv;
    if (g < Hk * Dk) return g / Dk * grp + g % Dk;            /* q */
    if ((g -= Hk * Dk) < Hk * Dk) return g / Dk * grp + Dk + g % Dk; /* k */
    g -= Hk * Dk;                                              /* v */
    return g / rDv * grp + 2 * Dk + g % rDv;
}

int tm_lin_v_axis(tm_role r) {
    switch (r) {
    case TM_LIN_QKV: case TM_LIN_CONV: case TM_LIN_Z: case TM_LIN_B: case TM_LIN_A: return 1;
    case TM_LIN_OUT: case TM_LIN_DT_BIAS: case TM_LIN_A_LOG: case TM_LIN_SSM_A: return 2;
    default: return 0;
    }
}

void tm_lin_v_map(const moe_config *c, tm_role r, int to_tiled, int64_t *map, int64_t n) {
    int64_t Hk = c->lin_k_heads, rr = c->lin_v_heads / Hk, off = 0, unit = c->lin_v_dim;
    if (r == TM_LIN_QKV || r == TM_LIN_CONV) off = 2 * Hk * c->lin_k_dim; /* q, k stay */
    if (r == TM_LIN_B || r == TM_LIN_A || tm_is_vector(r)) unit = 1;
    for (int64_t g = 0; g < n; g++) {
        if (g < off) {
            map[g] = g;
            continue;
        }
        int64_t h = (g - off) / unit, d = (g - off) % unit, src;
        if (to_tiled) src = h % Hk * rr + h / Hk; /* tiled j*Hk + hk <- grouped hk*r + j */
        else src = h % rr * Hk + h / rr;          /* grouped hk*r + j <- tiled j*Hk + hk */
        map[g] = off + src * unit + d;
    }
}

/* ------------------------------------------------------- in the model */

static void *slot(moe_model *m, const tm_entry *e, int p) {
    if ((int)e->role < 0 || e->role >= TM_ROLE_COUNT) return NULL;
    const role_row *rr = &k_roles[e->role];
    if (rr->where == TS_NONE) return NULL;
    if (rr->where == TS_MODEL) return (char *)m + rr->offset;
    if (e->layer < 0 || e->layer >= m->cfg.n_layers || !m->layers) return NULL;
    layer_w *lw = &m->layers[e->layer];
    if (rr->where == TS_LAYER) return (char *)lw + rr->offset;
    const moe_layer_config *lc = &m->cfg.layer[e->layer];
    int J = e->expert >= 0 ? e->expert : p;
    if (!lc->moe || !lw->experts || J < 0 || J >= lc->n_experts) return NULL;
    return (char *)&lw->experts[J] + rr->offset;
}

mat *tm_slot_mat(moe_model *m, const tm_entry *e, int p) {
    return tm_is_vector(e->role) ? NULL : slot(m, e, p);
}

const float **tm_slot_vec(moe_model *m, const tm_entry *e, int p) {
    return tm_is_vector(e->role) ? slot(m, e, p) : NULL;
}

int tm_gguf_dims(const tm_entry *e, int64_t ne[3]) {
    ne[0] = e->cols;
    ne[1] = e->rows ? e->rows : 1;
    ne[2] = e->planes;
    if (tm_role_of(e->role)->flags & TMF_HEADS) return 3;
    if (tm_role_of(e->role)->flags & TMF_PLANES) {
        ne[1] = e->planes;
        ne[2] = 1;
        return 2;
    }
    return e->rows == 0 ? 1 : e->planes > 1 ? 3 : 2;
}

int tm_source(const moe_model *m, const tm_entry *e, int p, mat *out) {
    moe_model *mm = (moe_model *)m; /* slot() is shared with the loader; nothing is written */
    if (tm_is_vector(e->role)) {
        const float **v = tm_slot_vec(mm, e, p);
        if (!v || !*v) return -1;
        *out = (mat){*v, DT_F32, 1, e->cols};
        return 0;
    }
    const mat *w = tm_slot_mat(mm, e, p);
    if (!w || !w->data) return -1;
    *out = *w;
    if (tm_role_of(e->role)->flags & TMF_HEADS) { /* loaded as one [H*rows][cols] */
        if (p < 0 || p >= e->planes || w->rows != e->planes * e->rows) return -1;
        out->data = (const char *)w->data + (size_t)p * (size_t)e->rows *
                                                (size_t)dtype_row_bytes(w->type, w->cols);
        out->rows = e->rows;
    }
    return 0;
}
