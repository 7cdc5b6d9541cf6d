/*
 * model.h - the model as data: where every weight lives (Weights), and the
 * per-sequence run state (KV cache + scratch). Shared by the loader
 * (weights.c, filling the slots the weight-role table of tensor_map.h
 * names), the forward pass (forward.c, attention.c, moe_ffn.c) and,
 * later, training.
 *
 * Dimension names used in shape comments:
 *   T tokens in this call, D hidden, H query heads, G kv heads, Dh head dim,
 *   E experts, K experts per token, F expert FFN width, V vocab, C context.
 */
#ifndef MOE_MODEL_MODEL_H
#define MOE_MODEL_MODEL_H

#include "moe.h"
#include "moe_route.h"
#include "base/pool.h"
#include "base/rng.h"
#include "formats/safetensors.h"
#include "kernels/kernels.h"

/* One SwiGLU FFN: down(act(gate x + bg, up x + bu)) + bd (biases: gpt_oss
 * experts; NULL otherwise). */
typedef struct ffn_w {
    mat gate; /* [F][D] */
    mat up;   /* [F][D] */
    mat down; /* [D][F] */
    const float *bg, *bu, *bd; /* [F], [F], [D] or NULL */
} ffn_w;

typedef struct layer_w {
    const float *attn_norm; /* [D] input_layernorm */
    const float *ffn_norm;  /* [D] post_attention_layernorm */
    mat wq, wk, wv;         /* [H*Dh][D], [G*Dh][D], [G*Dh][D] */
    mat wo;                 /* [D][H*Dh] */
    const float *bq, *bk, *bv, *bo; /* biases or NULL */
    const float *q_norm;    /* [Dh] (per head) or [H*Dh] (full) or NULL */
    const float *k_norm;    /* [Dh] or [G*Dh] or NULL */
    const float *sinks;     /* [H] attention sink logits (gpt_oss) or NULL */
    /* latent attention (tensor_map.h TM_ATTN_Q_A ... TM_ATTN_KV_B) */
    mat wq_a, wq_b;         /* [q_lora][D], [H*Dh][q_lora] */
    mat wkv_a, wkv_b;       /* [R + Dr][D], [H*(Dn + Dv)][R] (HF) */
    mat wk_b, wv_b;         /* [H*R][Dn], [H*Dv][R]: kv_b split per head (GGUF) */
    const float *q_a_norm;  /* [q_lora] */
    const float *kv_a_norm; /* [R] */

    /* Gated DeltaNet (linear_attn layers; shapes in tensor_map.h). From a
     * transformers checkpoint lin_qkvz and lin_a_log, from a llama.cpp
     * GGUF lin_qkv, lin_z, lin_ba and lin_ssm_a; from a qwen3_5_moe checkpoint
     * lin_qkv, lin_z, lin_b, lin_a and lin_a_log (the others are then empty / NULL). */
    mat lin_qkvz, lin_ba;   /* [2HkDk + 2HvDv][D], [2Hv][D] */
    mat lin_qkv, lin_z;     /* [Cc][D], [HvDv][D] */
    mat lin_conv;           /* [Cc][Kc] */
    const float *lin_dt_bias, *lin_a_log; /* [Hv] */
    const float *lin_ssm_a; /* [Hv] -exp(A_log) */
    const float *lin_norm;  /* [Dv] */
    mat lin_out;            /* [D][Hv*Dv] */
    mat lin_b, lin_a;       /* [Hv][D] each: in_proj_b, in_proj_a (instead of lin_ba) */

    ffn_w dense;            /* dense layer FFN (cfg.layer[i].moe == 0) */

    mat router;             /* [E][D] */
    const float *router_b;  /* [E] router bias (gpt_oss) or NULL */
    mat router_noise;       /* [E][D] noisy top-k noise projection (training) */
    ffn_w *experts;         /* [E]: pointers into the mapping (stacked or not) */
    ffn_w shared;           /* shared expert (n_shared > 0) */
    mat shared_gate;        /* [1][D] sigmoid gate of the shared expert */
    const float *sel_bias;  /* [E] selection-only bias or NULL */
    mat mod_router;         /* [1][D] Mixture-of-Depths router (layers with mod) */
} layer_w;

struct moe_model {
    moe_config cfg;
    st_store st;            /* the mapped safetensors files */
    mat embed;              /* [V][D] */
    mat lm_head;            /* [V][D] (== embed when tied) */
    const float *final_norm;/* [D] */
    layer_w *layers;        /* [L] */
    ffn_w *expert_table;    /* all layers' experts, one allocation */
    moe_model_stats stats;
    struct gguf_file *gguf; /* the mapped GGUF file (model_gguf.c), else NULL */
    void *owned;            /* copies made at load (weights.c): f32 widenings of
                               non-f32 vectors, un-permuted q/k rows of llama GGUFs */
    struct moe_cache *cache;/* loaded with an expert memory budget (moe_cache.h): the
                               routed experts are read through it, else NULL */
    int expert_alt_types[4];/* other types (GGUF ids) the expert provider may hand
                               out matrices in (the cache's fallback copy); sessions
                               size their scratch for them too */
    int n_expert_alt_types;
};

/* model_gguf.c: fill m (cfg and every weight) from a .gguf file. m is
 * zeroed; on failure the caller frees it with moe_model_free. map_only: the
 * file is memory-mapped, never read into memory (an expert memory budget). */
int model_gguf_load(moe_model *m, const char *path, int map_only, moe_err *err);
/* repack.c: the routed experts packed in place (moe_load_opts.repack);
 * *packed: how many matrices. */
int model_repack(moe_model *m, int64_t *packed, moe_err *err);
/* Whether packing is what moe_load_opts.repack = 0 does for m: the default
 * kernels are AVX2's, the weights are read into memory, no expert budget,
 * and some routed expert has a packed form. */
int model_repack_pays(const moe_model *m);

/* What the backward pass needs from one layer's forward, kept when a
 * session records (training). N tokens of the call; P = N*K pairs. */
typedef struct layer_acts {
    float *x_attn;          /* [N][D] residual entering the attention block */
    float *xn_attn;         /* [N][D] its rmsnorm */
    float *q, *k, *v;       /* [N][H*Dh], [N][G*Dh], [N][G*Dh] projections + bias,
                               before q/k norm, clipping and rope (latent attention:
                               q only, q_proj / q_b_proj's output before rope) */
    float *att;             /* [N][H*Dh] attention output before o_proj ([N][H*Dv]
                               with latent attention) */
    float *mla_qa;          /* latent attention: [N][q_lora_rank] q_a_proj's output,
                               before q_a_layernorm (NULL without q_lora_rank) */
    float *mla_kv;          /* latent attention: [N][R + Dr] kv_a_proj_with_mqa's
                               output [c | k_rope], before the norm and rope */
    float *x_ffn;           /* [N][D] residual entering the FFN block */
    float *xn_ffn;          /* [N][D] its rmsnorm */
    /* A Mixture-of-Depths layer: the buffers above and below hold its N' compacted
     * rows (the tokens that went through it); these the whole call: */
    float *mod_in;          /* [N][D] the layer's input, every token */
    float *mod_logit;       /* [N] router logits r */
    int *mod_sel;           /* [N] 1: the token went through (top-C in training) */
    int *mod_row;           /* [N'] chunk row of each compacted row */
    float *mod_delta;       /* [N'][D] layer(x) - x of each */
    int mod_n;              /* N' */
    float *h_gate, *h_up;   /* [N][F] dense FFN (or shared expert) pre-activations */
    float *router_logits;   /* [N][E] (with the noise, when noisy) */
    float *noise_raw;       /* [N][E] x W_noise^T (noisy top-k) */
    float *noise_eps;       /* [N][E] the noise drawn, times the noise scale */
    int *sel_expert;        /* [N][K] chosen experts */
    float *sel_weight;      /* [N][K] their weights */
    int *expert_start;      /* [E+1] pair ranges per expert */
    int n_pairs;            /* P: pairs kept (after capacity drops) */
    int *pair_token;        /* [P] token of each pair, sorted by expert */
    float *pair_weight;     /* [P] */
    float *xe;              /* [P][D] gathered expert inputs (rows of xn_ffn) */
    float *ge, *ue;         /* [P][F] expert pre-activations */
    float *he;              /* [P][F] their SwiGLU, the down projections' input */
    float *ye;              /* [P][D] expert outputs (before weighting) */
    float *gate_logit;      /* [N] shared expert gate logit */
    float *shared_out;      /* [N][D] shared expert output (before gating) */
} layer_acts;

typedef struct train_acts {
    int n_tokens;           /* N the tape was sized for */
    int last_tokens;        /* N of the last recorded call */
    int inputs_only;        /* 1: each layer keeps only x_attn and its routing record
                               (router_logits, noise_eps, sel_expert, expert_start,
                               n_pairs); its other buffers are one layer's worth that
                               every layer shares, refilled by model_layer_replay */
    int live;               /* inputs_only: the layer whose activations the shared
                               buffers hold (-1: none) */
    layer_acts *layer;      /* [L] */
    float *x_final;         /* [N][D] residual before the final norm */
    float *xn_final;        /* [N][D] after it (input of lm_head) */
    size_t bytes;           /* size of the one allocation */
    void *mem;              /* the one allocation */
} train_acts;

/* An execution context over one model (moe.h): all buffers are allocated
 * once in moe_session_new for max_batch tokens; a forward allocates nothing. */
struct moe_session {
    moe_model *m;
    pool *pool;             /* threads, ISA and each thread's scratch */
    int n_ctx;              /* C: positions per sequence */
    int n_seq;              /* S: sequences the cache holds */
    int max_batch;          /* most tokens per forward chunk */
    int n_threads;
    moe_mode mode;          /* inference / evaluation / training */
    int *seq_pos;           /* [S] next free position of each sequence */
    int *seq_next;          /* [S] scratch: positions while a batch is checked */
    int *seq_last;          /* [S] scratch: last token of each sequence in a batch */
    int *out_rows;          /* [T] rows of the chunk whose logits are returned */
    int n_out;              /* how many */

    float *k_cache;         /* [La][S][C][G*Dh], La = layers with attention */
    int *kv_slot;           /* [L] a layer's index among them, -1 for the others */
    /* Gated DeltaNet layers (linear_attn.c): Ll of them, Cc conv channels */
    int *lin_slot;          /* [L] index of a layer among them, -1 for others */
    float *lin_conv_state;  /* [Ll][S][Cc][Kc-1] last conv inputs of each sequence */
    float *lin_state;       /* [Ll][S][Hv][Dk][Dv] recurrent state of each sequence */
    unsigned char *lin_stale; /* [S] 1: a failed call moved the sequence's states past its
                                 committed positions; only a fresh start (position 0) runs */
    float *lin_qkvz;        /* [T][2HkDk + 2HvDv] */
    float *lin_ba;          /* [T][2Hv] */
    float *lin_mix;         /* [T][Cc] conv input, then its output */
    float *lin_z;           /* [T][Hv*Dv] */
    float *lin_g, *lin_beta;/* [T][Hv] log-decay and beta */
    float *lin_out;         /* [T][Hv*Dv] */
    int *lin_tok;           /* [T] the call's tokens grouped by sequence (linear_attn.c) */
    int *lin_run;           /* [T+1] where each sequence's group starts in lin_tok */
    int *lin_cnt;           /* [S] scratch of that grouping */
    float *q_full;          /* [T][H*2*Dh] q_proj with the output gate */
    float *q_gate;          /* [T][H*Dh] its gate half */
    float *v_cache;         /* [La][S][C][G*Dh]; NULL with latent attention, whose
                               k_cache rows are [R + Dr]: latent, rotary key */
    /* latent attention (attention_mla.c), R = kv_lora_rank, Dr = qk_rope_dim */
    float *mla_qa;          /* [T][q_lora_rank] */
    float *mla_kv;          /* [T][R + Dr] */
    float *mla_q;           /* [T][H][R + Dr] absorbed queries */
    float *mla_lat;         /* [T][H][R + Dr] attention output in the latent (first R) */
    float *mla_row;         /* [threads][mla_row_len] one dequantized kv_b_proj (or
                               attn_k_b / attn_v_b) row */
    float *mla_hx, *mla_hy; /* [H][T][max(Dn, R, Dv)] a head's rows, contiguous, for
                               the absorbed products as one matmul per head */
    int *tok_seq;           /* [T] sequence of each token in this chunk */
    int *tok_pos;           /* [T] its position in that sequence */
    int32_t *tok_id;        /* [T] its token id (hash routing) */
    int *kv_pos;            /* [T] its row in the running layer's KV cache: tok_pos, or
                               in a Mixture-of-Depths layer its index among the tokens
                               of its sequence that layer took (mod.c) */
    /* Mixture-of-Depths layers (mod.c; NULL without any). While one runs, tok_seq,
     * tok_pos, tok_id, kv_pos and the rope tables point at the compacted rows of
     * the tokens it took; the chunk's own are kept here: */
    int *mod_len;           /* [L][S] tokens layer l's cache holds of sequence q */
    int *mod_pos;           /* [L][S][C] the position of each */
    int *mod_row;           /* [T] chunk row of each compacted row */
    int *mod_sel;           /* [T] 1: the chunk's token goes through */
    float *mod_logit;       /* [T] router logits */
    float *mod_x;           /* [T][D] the compacted rows' residual stream */
    float *mod_cos, *mod_sin; /* [T][Dh/2] their rope tables */
    int *mod_seq, *mod_tpos, *mod_kv; /* [T] their sequence, position, cache row */
    int32_t *mod_id;        /* [T] their token id */
    void *mod_rank;         /* [T] selection scratch (mod.c) */
    int mod_topc;           /* 1: MoD layers take the top-C tokens outside training mode
                               too (the trainer's second validation loss) */
    int *chunk_seq, *chunk_pos, *chunk_kv; /* the chunk's arrays while a MoD layer runs */
    int32_t *chunk_id;
    float *chunk_cos, *chunk_sin;

    float *x;               /* [T][D] residual stream */
    float *xn;              /* [T][D] normalized input of a block */
    float *q;               /* [T][H*Dh] */
    float *k, *v;           /* [T][G*Dh] */
    float *att;             /* [T][H*Dh] attention output before o_proj */
    float *tmp;             /* [T][D] block output before the residual add */
    float *scores;          /* [threads][C] attention scores per thread */
    float *rope_cos;        /* [T][Dh/2] */
    float *rope_sin;        /* [T][Dh/2] */
    float *h_gate, *h_up;   /* [T][Fmax] dense / shared FFN hidden */
    float *gate_logit;      /* [T] shared expert gate */
    float *shared_out;      /* [T][D] shared expert output */

    /* MoE dispatch */
    float *router_logits;   /* [T][E] */
    int *sel_expert;        /* [T][K] */
    float *sel_weight;      /* [T][K] */
    uint8_t *group_kept;    /* [T][G] groups kept by group-limited routing (G = the layer's n_group) */
    int g_max;              /* largest n_group of any layer (>= 1) */
    int *expert_count;      /* [E+1] rows per expert, then offsets */
    int *pair_token;        /* [T*K] token of each (sorted) pair */
    float *pair_weight;     /* [T*K] its routing weight */
    float *xe;              /* [T*K][D] gathered expert inputs */
    float *ge, *ue;         /* [T*K][F] expert hidden */
    float *ye;              /* [T*K][D] expert outputs */
    mm_task *tasks;         /* [max(2*E, H)] grouped matmul work list */
    mm_idx *task_idx;       /* [max(2*E, H)] their rows of x by index (moe_ffn.c) */
    float *mla_x;           /* grow-only: the expanded heads of a long prompt */
    int64_t mla_x_n;        /* its floats */
    int mla_expand_min;     /* tokens from which a one-sequence chunk runs expanded
                               (MLA_EXPAND_MIN; tests lower it) */
    int64_t mla_expand_floats; /* the expanded heads of a group at most (MLA_EXPAND_FLOATS) */
    mat *mla_views;         /* [H] latent attention: a head's rows of attn_k_b, attn_v_b
                               or kv_b_proj as a matrix */

    float *logit_row;       /* [V] scratch when only the last row is asked */
    int64_t *counts;        /* [L][Emax] tokens routed to each expert */
    train_acts *acts;       /* non-NULL: the forward records into it */
    rng noise_rng;          /* noisy top-k draws (training only) */
    float *noise_raw;       /* [T][Emax] */
    float *noise_eps;       /* [T][Emax] */
    int e_max;              /* largest E over layers (stride of counts) */

    /* Hooks (moe.h, moe_route.h). The route observer is called right after
     * routing each chunk with sel_expert/sel_weight [T][K] (before capacity
     * drops) and the router scores [T][E]; t0 is the index, in the caller's
     * tokens, of the chunk's first token. NULL (the default) costs a branch. */
    moe_route_fn route_fn;
    void *route_user;
    int route_t0;
    const int *route_row;   /* NULL, or while a Mixture-of-Depths layer runs the chunk
                               row of each of its rows (moe_route_info.row) */
    moe_expert_provider provider; /* acquire == NULL: the model's weights */
    moe_dispatch_fn dispatch_fn;  /* NULL: every expert computed here */
    void *dispatch_user;
    uint8_t *remote;        /* [Emax] experts the dispatch hook computed */
    ffn_w *expert_view;     /* [Emax] the acquired experts of the layer running */
    uint8_t *in_wave;       /* [Emax] experts of the wave being computed */
    uint8_t *wave_gather;   /* [Emax] of those, whose rows of x are gathered (moe_ffn.c) */
    int *wave_todo;         /* [2*Emax] a layer's experts to compute, then a wave's */
    uint8_t *pred_mark;     /* [Emax] experts of a predicted layer (union over tokens) */
    float *pred_logits;     /* [PREDICT_MAX_T][Emax] a later router on this layer's input */
    moe_err hook_err;       /* what a failing hook said */
    int replay;             /* 1 while model_layer_replay re-runs a recorded layer: the
                               noise is the tape's draws, and the expert counts and the
                               route observer, which saw the layer once, are left alone */
};

/* Chunks of at most this many tokens get the later layers' experts
 * predicted for the expert provider (moe.h, moe_expert_provider.predict). */
#define PREDICT_MAX_T 8

/* The tape a forward records into: the session's, in training mode only. */
static inline train_acts *session_tape(const moe_session *s) {
    return s->mode == MOE_MODE_TRAIN ? s->acts : NULL;
}

/* Run B sequences of T tokens each from position 0 (training, evaluation):
 * ids [B][T], logits [B*T][V] or NULL, in one chunk. Needs B <= n_seq,
 * T <= n_ctx and B*T <= max_batch. Sequences 0..B-1 then hold T positions.
 * In training mode the session's tape (if any) records the call. */
int model_forward_seqs(moe_session *s, const int32_t *ids, int B, int T, float *logits,
                       moe_err *err);

/* Make the session record activations of every forward call (sized for
 * max_batch tokens; n_tokens, the most the caller will run, must fit it). */
int model_acts_enable(moe_session *s, int n_tokens, moe_err *err);
/* The same; inputs_only: a tape of each layer's input and routing record
 * plus one layer's activations (train_acts.inputs_only), for a backward
 * that re-runs each layer with model_layer_replay. */
int model_acts_enable_keep(moe_session *s, int n_tokens, int inputs_only, moe_err *err);
/* Refill an inputs_only tape's shared buffers with layer `layer` of the
 * last recorded call: that layer's forward again from its kept input, the
 * same code on the same values, so the same bits. Nothing stateful happens
 * twice: the noise is the recorded draws (the generator is not touched),
 * the expert counts and the route observer are skipped; the routing
 * record is rewritten with what it held. The dispatch hook and the expert
 * provider, which compute, are called again. Must follow the recorded forward
 * (the session's positions, rotary tables and KV cache are that call's). 0,
 * or -1 when a hook failed. */
int model_layer_replay(moe_session *s, int layer, moe_err *err);
void model_acts_free(train_acts *a);

/* Queries per attention work item (attention.c); sizes each thread's scratch. */
#define ATTN_QUERY_BLOCK 64

/* forward pieces (forward.c, attention.c, moe_ffn.c, mod.c) */
void attention_block(moe_session *s, int layer, int T);
/* The rope tables of the chunk's T tokens (s->tok_pos) into s->rope_cos /
 * rope_sin: once per call, before the first layer. */
void rope_tables(moe_session *s, int T);
/* The residual stream entering layer l in the tape: a Mixture-of-Depths
 * layer's full input, else x_attn. */
static inline float *tape_layer_in(train_acts *A, const moe_config *c, int l) {
    return c->layer[l].mod ? A->layer[l].mod_in : A->layer[l].x_attn;
}
/* A Mixture-of-Depths layer l (mod.c) from its input x [T][D] into out
 * [T][D] (may be x): router, selection, the compacted chunk through
 * layer_blocks (blocks), the gated scatter. 0, or -1 when a hook failed. */
typedef int (*mod_blocks_fn)(moe_session *s, int l, int T, const float *x, float *xn,
                             float *x2, float *xn2);
int mod_layer(moe_session *s, int l, int T, const float *x, float *out, mod_blocks_fn blocks);
/* Session buffers of the MoD layers: count (measure) or carve them. */
int mod_session_alloc(moe_session *s);
void mod_session_free(moe_session *s);
/* Point the session at the compacted rows of MoD layer l recorded in the
 * tape (the backward of its blocks), and back (mod_leave). */
void mod_enter_recorded(moe_session *s, int l);
void mod_leave(moe_session *s);
/* The compacted cache rows of sequence src copied to dst (moe_seq_cp). */
void mod_seq_cp(moe_session *s, int src, int dst);
/* attention_mla.c: latent attention (kv_lora_rank > 0), s->xn -> s->tmp; the
 * RoPE tables of the call are already in s->rope_cos / rope_sin */
void mla_attention_block(moe_session *s, int layer, int T);
/* attention_mla_prefill.c: the expanded form for a long prompt of one sequence
 * (s->q rotated and the cache rows written): out [T][H*Dv]. 0 done, 1 not
 * such a chunk, -1 no memory (the caller runs the absorbed form) */
#define MLA_EXPAND_MIN 256
#define MLA_EXPAND_FLOATS (16 << 20) /* 64 MiB */
int mla_expanded_attention(moe_session *s, int layer, int T, float *out);
/* Floats of one thread's mla_row: a row of kv_b_proj / attn_v_b (R) or of
 * attn_k_b (Dn). */
static inline int64_t mla_row_len(const moe_config *c) {
    return c->kv_lora_rank > c->qk_nope_dim ? c->kv_lora_rank : c->qk_nope_dim;
}
/* Floats one token takes in one attention layer's k_cache and v_cache. */
static inline int64_t kv_k_floats(const moe_config *c) {
    return c->kv_lora_rank ? (int64_t)c->kv_lora_rank + c->qk_rope_dim
                           : (int64_t)c->n_kv_heads * c->head_dim;
}
static inline int64_t kv_v_floats(const moe_config *c) {
    return c->kv_lora_rank ? 0 : (int64_t)c->n_kv_heads * c->head_dim;
}
/* linear_attn.c: the Gated DeltaNet of a linear_attn layer, s->xn -> s->tmp */
void linear_attn_block(moe_session *s, int layer, int T);
/* Bytes of each pool thread's scratch linear_attn_block needs (0 for a
 * model without such layers): the session reserves them at creation. */
size_t linear_attn_thread_scratch(const moe_config *c);
/* save_g/save_u: NULL, or [T][F] buffers that receive the pre-activations */
void ffn_dense(moe_session *s, const ffn_w *w, const float *xn, float *out, int T,
               int64_t F, float *save_g, float *save_u);
/* 0, or -1 when a hook failed (its message in s->hook_err) */
int moe_block(moe_session *s, int layer, int T);
/* router.c: pairs sorted by expert from s->router_logits; returns P */
int router_route(moe_session *s, int layer, int T);
/* The top-k experts a token of `layer` picks from its router logits p[E]
 * (+ router bias; p becomes the scores): token choice and hash routing. */
void router_pick(const moe_session *s, int layer, float *p, int32_t tok, int *ix);
/* Hash routing's expert for a token id: ((id * 2654435761) mod 2^32 + slot)
 * mod E (slot 0..K-1). Frozen: it is part of a trained model's meaning. */
int router_hash_expert(int32_t token_id, int E, int slot);

#endif
