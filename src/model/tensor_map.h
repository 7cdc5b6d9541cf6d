/*
 * tensor_map.h - the one table of a model's weights: for every weight a
 * moe_config implies, its role, its shape, its name in a GGUF file
 * (llama.cpp's names), its name in a Hugging Face checkpoint
 * (transformers' names), and where it lives in a loaded moe_model.
 * The GGUF loader (model_gguf.c) and the writers (quantize_gguf.c,
 * quantize_hf.c) all take names and metadata keys from here, so the two
 * directions cannot drift apart.
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
 * all with ".weight" (or ".bias").
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
    TM_ROLE_COUNT
} tm_role;

/* One tensor of a model file. */
typedef struct tm_entry {
    tm_role role;
    int layer;     /* -1 for the global tensors */
    int expert;    /* routed experts: -1 stacked [E] (or per-expert HF names), >= 0 one expert */
    int planes;    /* experts in a stacked tensor (1 otherwise) */
    int64_t rows;  /* per plane; 0 for a vector */
    int64_t cols;  /* row length (a vector's length) */
} tm_entry;

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
 * e->expert >= 0). 0, or -1 if it does not fit. */
int tm_hf_name(char *buf, size_t n, const moe_config *c, const tm_entry *e);

/* ---------------------------------------------------------------- walk */

/* The tensors of a model with config c, in file order (token_embd, layer by
 * layer, output_norm, output), into out[cap]. split_layer (may be NULL):
 * [L] nonzero where a layer's routed experts are listed one tensor per
 * expert instead of stacked. Returns the count (> cap: nothing past cap
 * written; call again with more room). */
int tm_list(const moe_config *c, const unsigned char *split_layer, tm_entry *out, int cap);

/* The weight behind e (plane p of a stacked tensor) in a loaded model, as
 * a matrix; vectors come as a [1][n] F32 matrix. -1 if the model has no
 * such weight. */
int tm_source(const struct moe_model *m, const tm_entry *e, int p, mat *out);

/* Whether a role is a 1-D tensor. */
static inline int tm_is_vector(tm_role r) {
    return r == TM_OUTPUT_NORM || r == TM_ATTN_NORM || r == TM_FFN_NORM ||
           (r >= TM_ATTN_Q_BIAS && r <= TM_ATTN_K_NORM);
}
/* Whether a role is a routed expert weight. */
static inline int tm_is_expert(tm_role r) { return r >= TM_EXP_GATE && r <= TM_EXP_DOWN; }

#endif
