/*
 * model.h - the model as data: where every weight lives (Weights), and the
 * per-sequence run state (KV cache + scratch). Shared by the loader
 * (model_load.c), the forward pass (forward.c, attention.c, moe_ffn.c) and,
 * later, training.
 *
 * Dimension names used in shape comments:
 *   T tokens in this call, D hidden, H query heads, G kv heads, Dh head dim,
 *   E experts, K experts per token, F expert FFN width, V vocab, C context.
 */
#ifndef MOE_MODEL_MODEL_H
#define MOE_MODEL_MODEL_H

#include "moe.h"
#include "base/pool.h"
#include "formats/safetensors.h"
#include "kernels/kernels.h"

/* One SwiGLU FFN: down(silu(gate x) * up x). */
typedef struct ffn_w {
    mat gate; /* [F][D] */
    mat up;   /* [F][D] */
    mat down; /* [D][F] */
} ffn_w;

typedef struct layer_w {
    const float *attn_norm; /* [D] input_layernorm */
    const float *ffn_norm;  /* [D] post_attention_layernorm */
    mat wq, wk, wv;         /* [H*Dh][D], [G*Dh][D], [G*Dh][D] */
    mat wo;                 /* [D][H*Dh] */
    const float *bq, *bk, *bv, *bo; /* biases or NULL */
    const float *q_norm;    /* [Dh] (per head) or [H*Dh] (full) or NULL */
    const float *k_norm;    /* [Dh] or [G*Dh] or NULL */

    ffn_w dense;            /* dense layer FFN (cfg.layer[i].moe == 0) */

    mat router;             /* [E][D] */
    ffn_w *experts;         /* [E]: pointers into the mapping (stacked or not) */
    ffn_w shared;           /* shared expert (n_shared > 0) */
    mat shared_gate;        /* [1][D] sigmoid gate of the shared expert */
    const float *sel_bias;  /* [E] selection-only bias or NULL */
} layer_w;

struct moe_model {
    moe_config cfg;
    st_store st;            /* the mapped safetensors files */
    mat embed;              /* [V][D] */
    mat lm_head;            /* [V][D] (== embed when tied) */
    const float *final_norm;/* [D] */
    layer_w *layers;        /* [L] */
    ffn_w *expert_table;    /* all layers' experts, one allocation */
    float *f32;             /* widened copies of the small vectors */
    moe_model_stats stats;
};

/* Run state of one sequence. All buffers are allocated once in
 * moe_session_new for max_batch tokens; moe_forward allocates nothing. */
struct moe_session {
    moe_model *m;
    pool *pool;
    int n_ctx;              /* C: positions per sequence */
    int n_seq;              /* S: sequences the cache holds */
    int max_batch;          /* most tokens per forward chunk */
    int pos;                /* tokens already in sequence 0's cache */
    int n_threads;

    float *k_cache;         /* [L][S][C][G*Dh] */
    float *v_cache;         /* [L][S][C][G*Dh] */
    int *tok_seq;           /* [T] sequence of each token in this chunk */
    int *tok_pos;           /* [T] its position in that sequence */

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
    int *expert_count;      /* [E+1] rows per expert, then offsets */
    int *pair_token;        /* [T*K] token of each (sorted) pair */
    float *pair_weight;     /* [T*K] its routing weight */
    float *xe;              /* [T*K][D] gathered expert inputs */
    float *ge, *ue;         /* [T*K][F] expert hidden */
    float *ye;              /* [T*K][D] expert outputs */
    mm_task *tasks;         /* [2*E] grouped matmul work list */

    float *logit_row;       /* [V] scratch when only the last row is asked */
    int64_t *counts;        /* [L][Emax] tokens routed to each expert */
    int e_max;              /* largest E over layers (stride of counts) */
};

/* Run B sequences of T tokens each from position 0 (training, evaluation):
 * ids [B][T], logits [B*T][V] or NULL. Needs B <= n_seq, T <= n_ctx and
 * B*T <= max_batch. Sequence 0's incremental state is reset. */
int model_forward_seqs(moe_session *s, const int32_t *ids, int B, int T, float *logits,
                       moe_err *err);

/* forward pieces (forward.c, attention.c, moe_ffn.c) */
void attention_block(moe_session *s, int layer, int T);
void ffn_dense(moe_session *s, const ffn_w *w, const float *xn, float *out, int T,
               int64_t F);
void moe_block(moe_session *s, int layer, int T);

#endif
