/*
 * tensor_map.h - the weight-role table: for every weight a moe_config
 * implies, its role, its shape rule, when it is present, whether it may be
 * quantized, its name in a GGUF file (llama.cpp's names), its name in a
 * Hugging Face checkpoint (transformers' names), how a fresh model fills
 * it, and where it lives in a loaded moe_model. Both loaders (model_load.c,
 * model_gguf.c through weights.c), the writers (quantize_gguf.c,
 * quantize_hf.c, model_init.c), the plan of `moe quantize`, the parameter
 * and byte counts and the trainer's parameter list all read it; the
 * architectures differ only in the rows of its per-architecture table
 * (tensor_map.c): adding one is config parsing, one row, its compute flags.
 *
 * GGUF names (llama.cpp, llama-arch.cpp):
 *   token_embd, output_norm, output (absent = tied)
 *   blk.N.attn_norm, attn_{q,k,v,output}.{weight,bias}, attn_{q,k}_norm, ffn_norm
 *   blk.N.ffn_{gate,up,down}              dense FFN
 *   blk.N.ffn_gate_inp                    router [E][D]
 *   blk.N.ffn_{gate,up,down}_exps         routed experts stacked: ne = [in, out, E]
 *   blk.N.ffn_{gate,up,down}.J            routed expert J alone (the older split
 *                                         layout; moe writes it for layers whose
 *                                         experts have different types)
 *   blk.N.ffn_{gate,up,down}_shexp, ffn_gate_inp_shexp   shared expert and its gate
 *   gpt-oss: blk.N.attn_sinks, blk.N.post_attention_norm (its FFN norm),
 *   blk.N.ffn_gate_inp.bias, blk.N.ffn_{gate,up,down}_exps.bias ([E][n])
 * all with ".weight" (or ".bias").
 * qwen3next (llama.cpp's Qwen3-Next files): blk.N.post_attention_norm for
 * ffn_norm; Gated DeltaNet layers blk.N.attn_qkv, attn_gate, ssm_ba,
 * ssm_conv1d ([Cc][Kc]), ssm_dt.bias, ssm_a (no suffix), ssm_norm, ssm_out;
 * its (1 + w) norms are stored with the 1 added (the loaded weight either way).
 * qwen35moe (llama.cpp's Qwen3.5-MoE files): qwen3next's names, with
 * ssm_beta and ssm_alpha ([Hv][D] each) for ssm_ba, and the value heads
 * tiled (tm_lin_v_map); routed experts stacked as ffn_{gate,up,down}_exps.
 * deepseek2 (llama.cpp's DeepSeek-V2/V3 files): blk.N.attn_q_a, attn_q_a_norm,
 * attn_q_b (or attn_q), attn_kv_a_mqa, attn_kv_a_norm, attn_k_b ([H][R][Dn],
 * W_uk transposed) and attn_v_b ([H][Dv][R]) instead of kv_b_proj (the
 * writers split it, quantize_gguf.c, and join it again, quantize_hf.c),
 * exp_probs_b.bias (the selection bias); glm4moe: blk.N.post_attention_norm for
 * ffn_norm, exp_probs_b.bias.
 * The router's noise projection, and the selection bias of the other
 * architectures, have no GGUF name (llama.cpp has no field for them).
 * llama.cpp's converter permutes the q and k rows of "llama" files (the
 * per-architecture row says so; weights.c puts them back at load).
 */
#ifndef MOE_MODEL_TENSOR_MAP_H
#define MOE_MODEL_TENSOR_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "moe.h"
#include "kernels/kernels.h"

struct moe_model;

typedef enum tm_role {
    TM_EMBED = 0,   /* [V][D] */
    TM_OUTPUT_NORM, /* [D] */
    TM_OUTPUT,      /* [V][D] lm_head (absent when tied) */
    TM_ATTN_NORM,   /* [D] */
    TM_ATTN_Q,      /* [H*Dh][D] */
    TM_ATTN_K,      /* [G*Dh][D] */
    TM_ATTN_V,      /* [G*Dh][D] */
    TM_ATTN_O,      /* [D][H*Dh] */
    TM_ATTN_Q_BIAS, /* [H*Dh] */
    TM_ATTN_K_BIAS, /* [G*Dh] */
    TM_ATTN_V_BIAS, /* [G*Dh] */
    TM_ATTN_O_BIAS, /* [D] */
    TM_ATTN_Q_NORM, /* [Dh] or [H*Dh] */
    TM_ATTN_K_NORM, /* [Dh] or [G*Dh] */
    TM_FFN_NORM,    /* [D] */
    TM_FFN_GATE,    /* dense [F][D] */
    TM_FFN_UP,      /* dense [F][D] */
    TM_FFN_DOWN,    /* dense [D][F] */
    TM_ROUTER,      /* [E][D] */
    TM_EXP_GATE,    /* routed experts [E][F][D] (or one [F][D]) */
    TM_EXP_UP,      /* [E][F][D] */
    TM_EXP_DOWN,    /* [E][D][F] */
    TM_SHEXP_GATE,  /* shared expert [FS][D] */
    TM_SHEXP_UP,    /* [FS][D] */
    TM_SHEXP_DOWN,  /* [D][FS] */
    TM_SHEXP_INP,   /* [1][D] shared expert gate */
    TM_ROUTER_NOISE,/* [E][D] noisy top-k noise projection (training) */
    TM_SEL_BIAS,    /* [E] selection-only bias */
    TM_ATTN_SINKS,  /* [H] attention sink logits (gpt_oss) */
    TM_ROUTER_BIAS, /* [E] router bias (gpt_oss) */
    /* transformers' fused expert tensors (gpt_oss), read into the per-expert
     * table at load (weights.c); they have no slot of their own: */
    TM_EXP_GATE_UP,      /* [E][D][2F]: x @ W, gate at even, up at odd columns */
    TM_EXP_GATE_UP_BIAS, /* [E][2F] interleaved the same way */
    TM_EXP_DOWN_T,       /* [E][F][D]: h @ W */
    TM_EXP_DOWN_BIAS,    /* [E][D] */
    /* Gated DeltaNet token mixer (layers with linear_attn; qwen3_next): */
    TM_LIN_QKVZ,    /* [2*Hk*Dk + 2*Hv*Dv][D] in_proj_qkvz, per key head
                       [q Dk | k Dk | v r*Dv | z r*Dv], r = Hv/Hk */
    TM_LIN_BA,      /* [2*Hv][D] in_proj_ba, per key head [b r | a r] */
    TM_LIN_CONV,    /* [Cc][Kc] depthwise conv1d (stored [Cc][1][Kc]),
                       Cc = 2*Hk*Dk + Hv*Dv channels in the order q, k, v */
    TM_LIN_DT_BIAS, /* [Hv] */
    TM_LIN_A_LOG,   /* [Hv] */
    TM_LIN_NORM,    /* [Dv] the gated RMSNorm (plain weight, never offset) */
    TM_LIN_OUT,     /* [D][Hv*Dv] out_proj */
    /* The same mixer with the input projections apart: in qwen3_5_moe's
     * checkpoints (in_proj_qkv, _z, _b, _a) and in llama.cpp's qwen3next
     * files (attn_qkv, attn_gate: convert_hf_to_gguf.py splits in_proj_qkvz
     * and keeps ssm_ba; it stores -exp(A_log)). The forward takes either: */
    TM_LIN_QKV,     /* [Cc][D] in_proj_qkv / attn_qkv: the conv channels (all q, all k, all v) */
    TM_LIN_Z,       /* [Hv*Dv][D] in_proj_z / attn_gate: z, value head by value head */
    TM_LIN_B,       /* [Hv][D] in_proj_b */
    TM_LIN_A,       /* [Hv][D] in_proj_a */
    TM_LIN_SSM_A,   /* [Hv] ssm_a = -exp(A_log) */
    /* GGUF files (llama.cpp's gpt-oss, qwen3next, qwen35moe): the FFN norm
     * under another name, and gpt-oss's expert biases stacked one [E][n]
     * tensor per role: */
    TM_POST_NORM,   /* [D] blk.N.post_attention_norm (the slot of TM_FFN_NORM) */
    TM_EXP_GATE_B,  /* [E][F] blk.N.ffn_gate_exps.bias */
    TM_EXP_UP_B,    /* [E][F] blk.N.ffn_up_exps.bias */
    TM_EXP_DOWN_B,  /* [E][D] blk.N.ffn_down_exps.bias */
    /* Multi-head latent attention (moe_config.kv_lora_rank > 0; deepseek):
     * R = kv_lora_rank, Dr = qk_rope_dim, Dn = qk_nope_dim, Dv = v_head_dim,
     * Dh = Dn + Dr; q comes from TM_ATTN_Q [H*Dh][D] when q_lora_rank is 0 */
    TM_ATTN_Q_A,      /* [q_lora_rank][D] q_a_proj */
    TM_ATTN_Q_A_NORM, /* [q_lora_rank] q_a_layernorm */
    TM_ATTN_Q_B,      /* [H*Dh][q_lora_rank] q_b_proj */
    TM_ATTN_KV_A,     /* [R + Dr][D] kv_a_proj_with_mqa: [latent | rotary key] */
    TM_ATTN_KV_A_NORM,/* [R] kv_a_layernorm */
    TM_ATTN_KV_B,     /* [H*(Dn + Dv)][R] kv_b_proj: per head [W_uk Dn rows | W_uv Dv rows] */
    /* llama.cpp's deepseek2 files split kv_b_proj per head (no HF name): */
    TM_ATTN_K_B,      /* [H][R][Dn] attn_k_b: W_uk transposed */
    TM_ATTN_V_B,      /* [H][Dv][R] attn_v_b: W_uv */
    TM_EXP_PROBS_B,   /* [E] blk.N.exp_probs_b.bias: the selection bias (the slot of
                         TM_SEL_BIAS) in deepseek2 / glm4moe files */
    TM_MOD_ROUTER,    /* [1][D] a Mixture-of-Depths layer's router (no GGUF name) */
    TM_ROLE_COUNT
} tm_role;

/* Where a file's names come from. */
typedef enum tm_format {
    TM_GGUF = 0, /* llama.cpp: routed experts stacked (or split, per layer) */
    TM_HF,       /* transformers: routed experts one tensor per expert */
} tm_format;

/* Role flags. */
enum {
    TMF_F32 = 1,        /* never quantized: norms, biases, routers, gates */
    TMF_EXPERT = 2,     /* a routed expert weight: [E] planes, or one per expert */
    TMF_ROPE_PERM = 4,  /* rows permuted in GGUF files of archs with gguf_rope_perm */
    TMF_INIT_ONES = 8,  /* a fresh model fills it with 1 (norms) */
    TMF_INIT_ZEROS = 16,/* ... with 0 (noise projection, selection bias) */
    TMF_FUSED = 32,     /* a fused expert tensor (TM_EXP_GATE_UP ...): no slot */
    TMF_MID1 = 64,      /* also stored as [rows][1][cols] (a conv1d weight) */
    TMF_PLANES = 128,   /* a vector per routed expert, stacked [E][cols] (2-D) */
    TMF_HEADS = 256,    /* a matrix per attention head, stacked [H][rows][cols] (3-D),
                           loaded as one [H*rows][cols] matrix */
};

/* What the table says about a role (tm_role_info()). */
typedef struct tm_role_info {
    const char *gguf;       /* llama.cpp name ("%d" = layer), NULL: none */
    const char *gguf_split; /* routed experts one by one ("%d" layer, "%d" expert) */
    const char *hf;         /* transformers name: {L} layer, {M} the arch's MoE
                               block, {J} expert, {W} the arch's expert weight name */
    unsigned flags;         /* TMF_* */
} tm_role_info;

const tm_role_info *tm_role_of(tm_role r);

/* One tensor of a model file. */
typedef struct tm_entry {
    tm_role role;
    int layer;     /* -1 for the global tensors */
    int expert;    /* routed experts: -1 stacked [E] (or per-expert HF names), >= 0 one expert */
    int planes;    /* experts in a stacked tensor (1 otherwise) */
    int64_t rows;  /* per plane; 0 for a vector */
    int64_t cols;  /* row length (a vector's length) */
} tm_entry;

/* What differs between architectures, as data. */
typedef struct tm_arch_info {
    const char *gguf_arch;   /* general.architecture */
    const char *model_type;  /* config.json model_type */
    const char *hf_moe;      /* the MoE block in transformers names */
    const char *hf_moe_alt;  /* another name a checkpoint may use for it, or NULL */
    const char *hf_expert[3];/* expert gate, up, down weight names */
    int gguf_rope_perm;      /* q/k rows in llama.cpp's interleaved RoPE order */
    int gguf_norm_topk;      /* llama.cpp's top-k renormalization default */
    int qkv_bias;            /* GGUF files: q/k/v biases */
    moe_qknorm qk_norm;      /* GGUF files: q/k norm kind */
    int gguf_shared;         /* GGUF files: a shared expert when its width is given */
    const char *hf_router;   /* the router in transformers names; NULL = "gate" */
    int hf_fused;            /* HF experts as fused stacked tensors (gpt_oss: gate_up_proj
                                [E][D][2F] interleaved, down_proj [E][F][D], biases) */
    int no_gguf;             /* no GGUF layout of ours (general.architecture unused) */
    const char *hf_shared;   /* the shared expert(s) in transformers names; NULL =
                                "shared_expert" */
} tm_arch_info;

/* The row of an architecture (NULL for an unknown one). */
const tm_arch_info *tm_arch_of(moe_arch a);

/* ---------------------------------------------------------------- GGUF */

/* general.architecture of an arch: "llama", "qwen2moe", "qwen3moe", "olmoe". */
const char *tm_gguf_arch(moe_arch a);
/* The arch of a general.architecture string; -1 when not one of ours. */
int tm_arch_from_gguf(const char *name);

/* Metadata key suffixes ("ARCH." + suffix), as llama.cpp names them. */
#define TMK_BLOCK_COUNT "block_count"
#define TMK_CONTEXT_LENGTH "context_length"
#define TMK_EMBEDDING_LENGTH "embedding_length"
#define TMK_FEED_FORWARD_LENGTH "feed_forward_length"
#define TMK_HEAD_COUNT "attention.head_count"
#define TMK_HEAD_COUNT_KV "attention.head_count_kv"
#define TMK_KEY_LENGTH "attention.key_length"
#define TMK_VALUE_LENGTH "attention.value_length"
#define TMK_ROPE_FREQ_BASE "rope.freq_base"
#define TMK_ROPE_DIM "rope.dimension_count"
#define TMK_RMS_EPS "attention.layer_norm_rms_epsilon"
#define TMK_CLAMP_KQV "attention.clamp_kqv"
#define TMK_SLIDING_WINDOW "attention.sliding_window"
#define TMK_EXPERT_COUNT "expert_count"
#define TMK_EXPERT_USED "expert_used_count"
#define TMK_EXPERT_FF "expert_feed_forward_length"
#define TMK_EXPERT_SHARED_FF "expert_shared_feed_forward_length"
#define TMK_EXPERT_WEIGHTS_NORM "expert_weights_norm"
#define TMK_VOCAB_SIZE "vocab_size"
#define TMK_SWA_PATTERN "attention.sliding_window_pattern"
#define TMK_ROPE_FREQ_BASE_SWA "rope.freq_base_swa"
#define TMK_ROPE_SCALING_TYPE "rope.scaling.type"
#define TMK_ROPE_SCALING_FACTOR "rope.scaling.factor"
#define TMK_ROPE_SCALING_ATTN_FACTOR "rope.scaling.attn_factor"
#define TMK_ROPE_SCALING_ORIG_CTX "rope.scaling.original_context_length"
#define TMK_ROPE_YARN_ATTN_FACTOR "rope.scaling.yarn_attn_factor"
#define TMK_ROPE_YARN_BETA_FAST "rope.scaling.yarn_beta_fast"
#define TMK_ROPE_YARN_BETA_SLOW "rope.scaling.yarn_beta_slow"
#define TMK_SWIGLU_LIMIT "swiglu_clamp_exp" /* llama.cpp's name; its gpt-oss graph uses 7.0 */
/* moe's own keys (llama.cpp has no field; it computes with the default): */
#define TMK_ROPE_YARN_TRUNCATE "rope.scaling.yarn_truncate" /* bool, default true */
#define TMK_SWIGLU_ALPHA "swiglu_alpha"                     /* default 1.702 */
#define TMK_EXPERT_GROUP_SCORE "expert_group_score" /* string: "max" (deepseek_v2's
                          group_limited_greedy); absent: the sum of the best two */
#define TMK_BOS_ID "tokenizer.ggml.bos_token_id"
#define TMK_EOS_ID "tokenizer.ggml.eos_token_id"

/* llama.cpp's default for renormalizing the top-k weights when the file has
 * no ARCH.expert_weights_norm: on for llama (Mixtral) and qwen3moe. */
int tm_gguf_default_norm_topk(moe_arch a);

/* Name of e in a GGUF file into buf; 0, or -1 if it does not fit. */
int tm_gguf_name(char *buf, size_t n, const tm_entry *e);
/* The same for a role at a layer (expert -1: stacked). */
int tm_gguf_name_of(char *buf, size_t n, tm_role r, int layer, int expert);

/* ------------------------------------------------------------ HF names */

/* Name of e in a transformers checkpoint (routed experts per expert:
 * e->expert >= 0); alt: with the arch's other MoE block name (hf_moe_alt;
 * -1 when it has none). 0, or -1 if it does not fit. */
int tm_hf_name(char *buf, size_t n, const moe_config *c, const tm_entry *e);
int tm_hf_name_alt(char *buf, size_t n, const moe_config *c, const tm_entry *e, int alt);

/* Name of e in format f (GGUF: stacked unless e->expert >= 0). */
int tm_name(char *buf, size_t n, tm_format f, const moe_config *c, const tm_entry *e);

/* ---------------------------------------------------------------- walk */

/* Calls fn on every tensor of a model with config c in format f, in file
 * order (token_embd, layer by layer, output_norm, output), until fn returns
 * nonzero (which tm_walk returns). Roles without a name in f are left out.
 * split_layer (GGUF only, may be NULL): [L] nonzero where a layer's routed
 * experts are one tensor per expert instead of stacked; HF files always
 * have them one by one. Nothing is allocated, whatever c claims. */
int tm_walk(const moe_config *c, tm_format f, const unsigned char *split_layer,
            int (*fn)(void *ctx, const tm_entry *e), void *ctx);

/* The same into out[cap]. Returns the count (> cap: nothing past cap
 * written; call again with more room). */
int tm_list(const moe_config *c, tm_format f, const unsigned char *split_layer, tm_entry *out,
            int cap);

/* ------------------------------------------------------- in the model */

/* Where e lives in a loaded model: its matrix (plane p of a stacked
 * entry), or its vector (plane p of a TMF_PLANES entry); exactly one of the two is non-NULL, both NULL if
 * the model has no room for it (experts table not set up). */
mat *tm_slot_mat(struct moe_model *m, const tm_entry *e, int p);
const float **tm_slot_vec(struct moe_model *m, const tm_entry *e, int p);

/* The weight behind e (plane p of a stacked tensor) in a loaded model, as
 * a matrix; vectors come as a [1][n] F32 matrix. -1 if the model has no
 * such weight. */
int tm_source(const struct moe_model *m, const tm_entry *e, int p, mat *out);

/* qwen3_next's in_proj_qkvz (TM_LIN_QKVZ, per key head [q | k | v | z])
 * holds llama.cpp's attn_qkv (z = 0) and attn_gate (z = 1): row g of
 * those is row tm_lin_qkvz_row(c, z, g) of it. */
int64_t tm_lin_qkvz_row(const moe_config *c, int z, int64_t g);

/* The value heads of a Gated DeltaNet in transformers' order are grouped
 * by key head (h = hk*r + j, r = Hv/Hk); llama.cpp's converter tiles them
 * for its qwen35moe files (h = j*Hk + hk; moe_config.lin_v_tiled). The axis
 * of a role that runs over value heads: 1 its rows (in_proj_qkv's v rows,
 * in_proj_z, in_proj_b/_a, the conv's v channels), 2 its columns (out_proj;
 * a vector's elements: dt_bias, A_log, ssm_a), 0 none. */
int tm_lin_v_axis(tm_role r);
/* For that axis (n long): map[g] = the index in the other order of index g,
 * to_tiled: g in the tiled order, the source grouped (else the reverse). */
void tm_lin_v_map(const moe_config *c, tm_role r, int to_tiled, int64_t *map, int64_t n);

/* Whether an architecture's Gated DeltaNet keeps in_proj_qkv, _z, _b, _a
 * apart (qwen3_5_moe) instead of in_proj_qkvz and in_proj_ba (qwen3_next). */
int tm_lin_split(const moe_config *c);

/* Whether a role's weight is zero-centred in files of c (norm_offset): the
 * loaded weight is 1 + the stored one. */
int tm_norm_offset(const moe_config *c, tm_role r);

/* GGUF dimensions of e (ne[0] the row length): its n_dims. */
int tm_gguf_dims(const tm_entry *e, int64_t ne[3]);

/* Whether a role is a 1-D tensor (per plane, for TMF_PLANES). */
int tm_is_vector(tm_role r);
/* Whether a role is a routed expert weight. */
static inline int tm_is_expert(tm_role r) { return (tm_role_of(r)->flags & TMF_EXPERT) != 0; }
/* Whether a role stays F32 in every file (the quantization rule). */
static inline int tm_keep_f32(tm_role r) { return (tm_role_of(r)->flags & TMF_F32) != 0; }

#endif
