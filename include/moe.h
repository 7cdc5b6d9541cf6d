/*
 * moe.h - the public API of libmoe: load a Mixture-of-Experts language model
 * (Hugging Face directory), run its forward pass with a KV cache, tokenize,
 * sample. Everything here is opaque except the model description
 * (moe_config), which is plain data so tools can print and write it.
 *
 * Conventions: functions that can fail return 0 on success and -1 on error,
 * filling *err (which may be NULL) with a message naming what was wrong and
 * where (file, tensor, field, value). The library never prints or exits.
 */
#ifndef MOE_H
#define MOE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

typedef struct moe_err {
    char msg[512]; /* human-readable, no trailing newline */
} moe_err;

/* ------------------------------------------------------ model description */

typedef enum {
    MOE_ARCH_MIXTRAL = 0, /* model_type "mixtral" */
    MOE_ARCH_QWEN2_MOE,   /* "qwen2_moe" */
    MOE_ARCH_QWEN3_MOE,   /* "qwen3_moe" */
    MOE_ARCH_OLMOE,       /* "olmoe" */
    MOE_ARCH_GPT_OSS,     /* "gpt_oss" */
    MOE_ARCH_QWEN3_NEXT,  /* "qwen3_next" */
    MOE_ARCH_QWEN3_5_MOE, /* "qwen3_5_moe" (its text model, "qwen3_5_moe_text") */
    MOE_ARCH_DEEPSEEK_V2, /* "deepseek_v2" */
    MOE_ARCH_DEEPSEEK_V3, /* "deepseek_v3" (and "kimi_k2", the same architecture) */
    MOE_ARCH_GLM4_MOE,    /* "glm4_moe" */
} moe_arch;

typedef enum {
    MOE_QKNORM_NONE = 0, /* no q/k normalization */
    MOE_QKNORM_HEAD,     /* RMSNorm over each head's head_dim (qwen3_moe) */
    MOE_QKNORM_FULL,     /* RMSNorm over the whole q / k projection (olmoe) */
} moe_qknorm;

typedef enum {
    MOE_SCORE_SOFTMAX = 0, /* softmax over all experts, then top-k */
    MOE_SCORE_SIGMOID,     /* sigmoid per expert (DeepSeek-V3 style) */
    MOE_SCORE_TOPK_SOFTMAX,/* top-k of the logits, then softmax over the k
                              chosen (gpt_oss); other experts score 0 */
} moe_score;

typedef enum {
    MOE_ACT_SILU = 0,  /* SwiGLU: silu(gate) * up */
    MOE_ACT_OSS_GLU,   /* gpt_oss: g = min(gate, limit), u = clamp(up, -limit, limit),
                          (u + 1) * g * sigmoid(alpha * g) */
} moe_act;

typedef enum {
    MOE_ROPE_DEFAULT = 0, /* inv_freq_i = theta^(-2i/Dh) */
    MOE_ROPE_YARN,        /* YaRN (transformers' _compute_yarn_parameters) */
} moe_rope_kind;

/* Group-limited routing (DeepSeek): the E experts form n_group equal groups;
 * a token first keeps the topk_group groups with the best group score, then
 * takes its top-k among their experts. */
typedef enum {
    MOE_GROUP_NONE = 0, /* no groups */
    MOE_GROUP_MAX,      /* group score = its largest expert score
                           (deepseek_v2 "group_limited_greedy") */
    MOE_GROUP_TOP2_SUM, /* group score = sum of its two largest selection scores
                           (score + selection bias; deepseek_v3 / glm4_moe "noaux_tc") */
} moe_group_kind;

typedef enum {
    MOE_ROUTE_TOKEN_CHOICE = 0, /* each token picks its top-k experts */
    MOE_ROUTE_EXPERT_CHOICE,    /* each expert picks its top-capacity tokens */
    MOE_ROUTE_HASH,             /* fixed hash of the token id */
} moe_route_kind;

/* One decoder layer's feed-forward block: dense SwiGLU or MoE. */
typedef struct moe_layer_config {
    int moe;                /* 0: dense FFN of width ffn_dim; 1: MoE FFN */
    int ffn_dim;            /* dense FFN width (moe == 0) */
    int n_experts;          /* E: routed experts */
    int top_k;              /* K: experts per token */
    int expert_dim;         /* F: each routed expert's FFN width */
    int n_shared;           /* shared experts (always on), 0 = none */
    int shared_dim;         /* total width of the shared expert FFN */
    int shared_gate;        /* 1: shared output scaled by sigmoid(x . w) */
    moe_score score;        /* router score function */
    int norm_topk;          /* 1: renormalize the top-k weights to sum 1 */
    float routed_scale;     /* multiply routed output (1.0 = none) */
    int select_bias;        /* 1: a per-expert bias added for selection only */
    float noise;            /* noisy top-k (training only), 0 = none */
    moe_route_kind kind;    /* token choice / expert choice / hash */
    float capacity_factor;  /* 0 = dropless */
    int router_bias;        /* 1: the router logits have a bias [E] */
    int expert_bias;        /* 1: each routed expert's gate, up, down have biases */
    moe_act act;            /* the experts' (and dense FFN's) activation */
    float act_alpha;        /* MOE_ACT_OSS_GLU: sigmoid gain (1.702) */
    float act_limit;        /* MOE_ACT_OSS_GLU: clamp (swiglu_limit, > 0) */
    int full_attention;     /* 1: this layer ignores sliding_window (gpt_oss
                               "full_attention" layers among sliding ones) */
    int linear_attn;        /* 1: the token mixer is a Gated DeltaNet (qwen3_next
                               "linear_attention"), sized by moe_config.lin_* */
    moe_group_kind group;   /* group-limited routing (token choice only) */
    int n_group;            /* groups of experts (divides n_experts); 0/1 = none */
    int topk_group;         /* groups a token may pick from (<= n_group) */
    int mod;                /* 1: a Mixture-of-Depths layer (moe_config.mod_capacity):
                               a router picks the tokens that go through it, the
                               others skip it (docs/TRAINING.md) */
} moe_layer_config;

#define MOE_MAX_LAYERS 256
#define MOE_LIN_MAX_CONV 64 /* longest Gated DeltaNet conv kernel */
#define MOE_MLA_MAX_ROPE 1024 /* most rotary dims of latent attention (qk_rope_dim) */

typedef struct moe_config {
    moe_arch arch;
    char model_type[32];  /* as in config.json */
    int vocab;            /* V */
    int dim;              /* D: hidden size */
    int n_layers;         /* L */
    int n_heads;          /* H: query heads */
    int n_kv_heads;       /* KV heads (GQA: H % n_kv_heads == 0) */
    int head_dim;         /* Dh */
    int max_pos;          /* max_position_embeddings */
    float rope_theta;
    float norm_eps;       /* rms_norm_eps */
    moe_qknorm qk_norm;
    int qkv_bias;         /* 1: q/k/v projections have a bias */
    int o_bias;           /* 1: the output projection has a bias */
    float clip_qkv;       /* > 0: clamp q, k, v to [-clip, clip] (olmoe) */
    int tied_embeddings;  /* 1: lm_head shares the embedding matrix */
    int sliding_window;   /* > 0: attend to at most this many positions (on
                             every layer without layer[i].full_attention) */
    int attn_sinks;       /* 1: a learned logit per head joins each softmax's
                             denominator (gpt_oss self_attn.sinks [H]) */
    moe_rope_kind rope_kind;
    float rope_factor;    /* YaRN: factor */
    float rope_beta_fast, rope_beta_slow; /* YaRN: ramp bounds (32, 1) */
    int rope_orig_max_pos;/* YaRN: original_max_position_embeddings */
    int rope_truncate;    /* YaRN: 1 = floor/ceil the correction range */
    float rope_attn_factor; /* YaRN: scale of cos and sin (attention_factor) */
    int bos_id, eos_id;   /* -1 when unknown */
    int norm_offset;      /* 1: RMSNorm weights are zero-centred, y = x_n * (1 + w)
                             (layer, final and q/k norms; qwen3_next) */
    int attn_out_gate;    /* 1: q_proj gives per head [query Dh | gate Dh]; the
                             attention output is scaled by sigmoid(gate) */
    int rope_dim;         /* dims of each head RoPE rotates (partial rotary, even);
                             0 = head_dim */
    /* Gated DeltaNet layers (layer[i].linear_attn): */
    int lin_k_heads;      /* Hk: query/key heads (linear_num_key_heads) */
    int lin_v_heads;      /* Hv: value heads, a multiple of Hk */
    int lin_k_dim;        /* Dk: key head size */
    int lin_v_dim;        /* Dv: value head size */
    int lin_conv;         /* Kc: causal depthwise conv1d kernel (linear_conv_kernel_dim) */
    int lin_v_tiled;      /* 1: value heads tiled over the key heads, value head h
                             reads key head h % Hk (llama.cpp's qwen35moe files); 0:
                             grouped by key head, h / (Hv / Hk) (transformers) */
    int rope_sections[4]; /* multimodal RoPE sections (qwen3_5_moe mrope_section,
                             GGUF rope.dimension_sections); text positions make
                             them no-ops: kept to write files back; all 0 = none */
    int vision_tower;     /* 1: the checkpoint also holds a vision tower (qwen3_5_moe
                             vision_config, model.visual.*); only its text model is loaded */
    /* Multi-head latent attention (deepseek_v2/v3; kv_lora_rank > 0 turns it on).
     * head_dim is then qk_nope_dim + qk_rope_dim and rope_dim qk_rope_dim: */
    int q_lora_rank;      /* rank of q's down-projection (q_a_proj); 0 = q_proj */
    int kv_lora_rank;     /* R: the latent a token's keys and values come from */
    int qk_nope_dim;      /* non-rotary part of each query/key head */
    int qk_rope_dim;      /* rotary part (one key shared by every head) */
    int v_head_dim;       /* value head size */
    int rope_interleave;  /* 1: rotary dims as interleaved pairs (x0, x1), (x2, x3) ...
                             (deepseek); 0: the two halves (rotate_half) */
    float attn_scale;     /* softmax scale; 0 = 1/sqrt(head_dim) (deepseek's YaRN
                             multiplies it by mscale(factor, mscale_all_dim)^2) */
    float rope_mscale, rope_mscale_all_dim; /* YaRN's mscale / mscale_all_dim as config.json
                             gives them (0 = absent); rope_attn_factor and attn_scale
                             follow from them; kept to write config.json back */
    int n_mtp_layers;     /* multi-token-prediction layers the checkpoint carries after the
                             last layer (num_nextn_predict_layers): not loaded */
    moe_layer_config layer[MOE_MAX_LAYERS];
    float mod_capacity;   /* Mixture-of-Depths: the share of a sequence's tokens a MoD
                             layer (layer[i].mod) takes in training, in (0, 1]; 0 = none */
} moe_config;

/* ------------------------------------------------------------------ model */

typedef struct moe_model moe_model;

/* Load a model: a directory with config.json and model.safetensors, or
 * sharded model-0000x-of-0000y.safetensors + model.safetensors.index.json,
 * or a GGUF file. Weights are memory-mapped or read into memory; F32, BF16,
 * F16 and the GGUF quantized types are supported. The default load options
 * of moe_model_load_opts (moe_cache.h): on a CPU whose default kernels are
 * the AVX2 ones, Q8_0, Q4_K, Q5_K, Q6_K and IQ4_XS routed experts read into memory
 * are packed at load. */
int moe_model_load(moe_model **out, const char *path, moe_err *err);
void moe_model_free(moe_model *m);
const moe_config *moe_model_config(const moe_model *m);

typedef struct moe_model_stats {
    int64_t params_total;   /* every parameter */
    int64_t params_active;  /* parameters one token touches */
    int64_t bytes_total;    /* bytes of weights as stored */
    int64_t bytes_active;   /* bytes of weights one decode step reads */
    int64_t params_active_quant; /* of params_active, those in block-quantized matrices (their
                                    products run on int8 kernels; the embedding table, a row
                                    lookup, is not counted unless tied to the head) */
    char dtypes[64];        /* e.g. "bf16 (291), f32 (33)" */
    int64_t packed;         /* expert matrices packed at load (moe_load_opts.repack) */
} moe_model_stats;

void moe_model_stats_get(const moe_model *m, moe_model_stats *st);

/* ---------------------------------------------------------------- session */

/* A session is an execution context over one model: the KV cache of n_seq
 * sequences, every workspace a forward needs (each thread's scratch
 * included), the thread pool, the kernels chosen for this CPU, the run mode
 * and the hooks below. Everything is sized in moe_session_new: nothing is
 * allocated inside moe_decode / moe_forward. A session is used by one thread
 * at a time; different sessions (of the same or different models) may run
 * concurrently on different threads and never share writable state. */
typedef struct moe_session moe_session;

/* The most threads a session, a thread pool or a `moe ... --threads N` uses;
 * asking for more is an error, and 0 (all online CPUs) is capped to it. */
#define MOE_MAX_THREADS 256

typedef struct moe_session_opts {
    int n_ctx;      /* KV cache positions per sequence; 0 = min(max_pos, 4096) */
    int n_threads;  /* 1..MOE_MAX_THREADS; 0 = online CPUs (at most MOE_MAX_THREADS) */
    int max_batch;  /* most tokens one forward pass processes at once;
                       longer inputs are split; 0 = 512 */
    int n_seq;      /* sequences the KV cache holds; 0 = 1 */
    const char *kernels; /* kernel path: "scalar", "avx2" or "avx512" (an error
                            when the CPU lacks it); NULL = the best this CPU
                            has (or MOE_ISA's) */
} moe_session_opts;

#define MOE_MAX_THREADS 256 /* the most threads a session (or any command) runs */

int moe_session_new(moe_session **out, moe_model *m, const moe_session_opts *opts, moe_err *err);
void moe_session_free(moe_session *s);
void moe_session_reset(moe_session *s);   /* forget every sequence and the routing counts */
int moe_session_pos(const moe_session *s); /* tokens in sequence 0's cache */
int moe_session_ctx(const moe_session *s); /* n_ctx */
int moe_session_n_seq(const moe_session *s);

/* What a forward pass is for. The arithmetic differs only in training:
 *   MOE_MODE_INFERENCE  (the default) dropless, noise-free routing; the
 *                       KV cache grows token by token.
 *   MOE_MODE_EVAL       the same arithmetic as inference, stated by callers
 *                       that score held-out text (a training loop's
 *                       validation): capacity factors drop nothing and
 *                       router noise is neither added nor drawn.
 *   MOE_MODE_TRAIN      capacity dropping and router noise as the config
 *                       asks; Mixture-of-Depths layers take each sequence's
 *                       top-C tokens (elsewhere those whose router logit is
 *                       > 0; whole sequences from position 0 in one call);
 *                       a trainer's session records activations for
 *                       the backward pass only in this mode. */
typedef enum {
    MOE_MODE_INFERENCE = 0,
    MOE_MODE_EVAL,
    MOE_MODE_TRAIN,
} moe_mode;

void moe_session_set_mode(moe_session *s, moe_mode mode);
moe_mode moe_session_mode(const moe_session *s);

/* ------------------------------------------------------------ batch API */

/* Tokens of several sequences in one call: prefill and decode mixed, in any
 * order across sequences. Within one sequence the tokens come in order, each
 * at the sequence's next free position (moe_seq_pos). The MoE layers group
 * every token of the call by expert, so each expert's weights are read once
 * for all the requests that chose it. */
typedef struct moe_batch {
    int n;                 /* tokens in this call */
    const int32_t *token;  /* [n] token ids */
    const int32_t *seq;    /* [n] sequence of each token, 0 <= seq < n_seq */
    const int32_t *pos;    /* [n] position of each token in its sequence */
    const int8_t *logits;  /* [n] nonzero: return this token's logits; NULL: the last token of each sequence in the call */
} moe_batch;

/* Run a batch and append its tokens to their sequences' caches.
 * logits: one row of vocab floats per token asked for, in batch order; may
 * be NULL (nothing is computed for the head). Errors (nothing is run): no
 * tokens, a token id outside the vocabulary, a sequence out of range, a
 * position that is not the sequence's next one, a full cache (n_ctx). */
int moe_decode(moe_session *s, const moe_batch *b, float *logits, moe_err *err);
/* Forget positions [p0, p1) of sequence seq (p1 < 0: to the end); seq < 0:
 * every sequence. The cache keeps positions in order, so the range must
 * reach the sequence's end: the sequence continues at p0. A range in the
 * middle is refused with an error (later positions would keep keys that
 * attended to the forgotten ones). */
int moe_seq_rm(moe_session *s, int seq, int p0, int p1, moe_err *err);
/* dst := src: the cache of src (a shared prompt prefix) copied to dst,
 * which continues from the same position. */
int moe_seq_cp(moe_session *s, int src, int dst, moe_err *err);
/* Next free position of seq (its tokens in the cache); -1 if out of range. */
int moe_seq_pos(const moe_session *s, int seq);

/* Run n tokens of sequence 0 starting at its current position and append
 * them to the KV cache (moe_decode for one sequence). logits: if all_logits,
 * [n][V], else [V] for the last token only; may be NULL. Errors: id out of
 * range, context full. */
int moe_forward(moe_session *s, const int32_t *ids, int n, float *logits, int all_logits,
                moe_err *err);

/* Routing counts accumulated since the last reset: counts[layer * S + e]
 * tokens sent to expert e of that layer, where the stride S is the largest
 * expert count of any layer (moe_session_counts_stride). */
const int64_t *moe_session_expert_counts(const moe_session *s);
int moe_session_counts_stride(const moe_session *s);

/* ---------------------------------------------------------------- hooks */

/* Three points in the MoE block where other code plugs in. Each has a
 * default that does what the engine does alone; setting NULL restores it.
 * Hooks are called from the thread that called moe_decode, never from the
 * pool's workers, in layer order. A hook that fails fills err and returns
 * -1; the call then fails with that message, and the positions of the
 * failing forward chunk are not added to the caches. */

/* Expert provider: the weights of one routed expert, acquired before the
 * layer's grouped products and released after them (an expert cache swaps
 * experts in here). The pointers must hold the expert's matrices in the
 * model's own type and layout: the file's, or the packed one when the
 * experts were packed at load (moe_load_opts.repack, moe_model_stats.packed;
 * moe_model_expert_weights hands out that layout). */
typedef struct moe_expert_weights {
    const void *gate; /* [F][D] */
    const void *up;   /* [F][D] */
    const void *down; /* [D][F] */
    /* 0 (what a provider that sets nothing leaves): the matrices are of the
     * model's own types for this expert. 1: of gate_type, up_type and
     * down_type, GGUF type ids (moe_quant.h's moe_qtype), same shapes; the
     * engine computes the expert with those (the expert cache hands out a
     * resident low-precision copy so, moe_cache.h). */
    int typed;
    int gate_type, up_type, down_type;
} moe_expert_weights;

typedef struct moe_expert_provider {
    int (*acquire)(void *user, int layer, int expert, moe_expert_weights *w, moe_err *err);
    void (*release)(void *user, int layer, int expert);
    void *user;
    /* Optional (NULL: not called). The experts with rows of a layer about
     * to run, ascending (predicted = 0), called before any of them is
     * acquired; or the experts the engine predicts a later layer will use
     * (predicted = 1): with predict > 0, each MoE layer applies the routers
     * of the next `predict` MoE layers to its own normalized input and
     * passes each one's top-k (the union over the chunk's tokens, when the
     * chunk has at most 8 tokens), likeliest first: ordered by the best
     * rank any token gives the expert. A cache starts reading what it
     * lacks; this must not block. */
    void (*want)(void *user, int layer, const int *experts, int n, int predicted);
    /* Optional: 1 if acquire(layer, expert) would return without waiting.
     * The engine computes the experts that are ready first, in waves. When
     * none is, it acquires the first one left; if that acquire hands out
     * typed (stand-in) weights instead of waiting, the provider is taken to
     * do so for any expert, and the rest of the wave is acquired at once. */
    int (*ready)(void *user, int layer, int expert);
    int max_held; /* the most experts held (acquired and not released) at
                     once; a layer that uses more runs them in waves of at
                     most this many. 0: no limit (one wave) */
    int predict;  /* later MoE layers to predict (want with predicted = 1); 0: none */
} moe_expert_provider;

/* The default provider's answer: the model's own weights of (layer, expert). */
int moe_model_expert_weights(const moe_model *m, int layer, int expert, moe_expert_weights *w,
                             moe_err *err);
void moe_session_set_expert_provider(moe_session *s, const moe_expert_provider *p);

/* Dispatch: the point between routing and expert computation. The pairs of
 * the chunk are sorted by expert; x holds each pair's input row. A hook
 * may compute some experts elsewhere (another rank): it writes their pairs'
 * output rows into y and sets remote[e] = 1; the engine computes the rest.
 * The default computes every expert here. */
typedef struct moe_dispatch_info {
    int layer;
    int E;                  /* experts of the layer */
    int D;                  /* hidden size */
    int n_pairs;            /* P */
    const int *expert_start;/* [E+1] pairs of expert e: [start[e], start[e+1]) */
    const int *pair_token;  /* [P] token of the chunk each pair belongs to */
    const float *pair_weight; /* [P] routing weight applied at the combine */
    const float *x;         /* [P][D] inputs */
    float *y;               /* [P][D] outputs before weighting (remote experts') */
    uint8_t *remote;        /* [E] all 0 on entry */
} moe_dispatch_info;

typedef int (*moe_dispatch_fn)(void *user, moe_dispatch_info *d, moe_err *err);
void moe_session_set_dispatch(moe_session *s, moe_dispatch_fn fn, void *user);

/* The route observer (each layer's choices) is declared in moe_route.h. */

/* -------------------------------------------------------------- tokenizer */

typedef struct moe_tokenizer moe_tokenizer;

/* Load from a tokenizer.json file, or a model directory containing one.
 * Hugging Face BPE models only (byte-level BPE as GPT-NeoX/OLMoE/Qwen2/Qwen3,
 * SentencePiece-style BPE with byte fallback as Llama/Mistral/Mixtral);
 * WordPiece/Unigram files are refused as unsupported. A directory's
 * tokenizer_config.json, if present, names the BOS/EOS tokens.
 * A .gguf file: the tokenizer its tokenizer.ggml.* metadata describes
 * ("llama" SentencePiece or "gpt2" byte-level BPE; docs/GGUF_TOKENIZER.md),
 * with the same ids as the model's tokenizer.json. */
int moe_tokenizer_load(moe_tokenizer **out, const char *path, moe_err *err);
void moe_tokenizer_free(moe_tokenizer *t);
int moe_tokenizer_vocab(const moe_tokenizer *t); /* largest token id + 1 */
/* BOS/EOS: tokenizer_config.json's bos_token/eos_token if given (null means
 * none); else what the post-processor adds; else the usual names ("<s>",
 * "</s>", "<|endoftext|>", "<|im_end|>", ...). */
int moe_tokenizer_bos(const moe_tokenizer *t); /* -1 if none */
int moe_tokenizer_eos(const moe_tokenizer *t); /* -1 if none */

/* Encode text (UTF-8, len bytes). add_special: apply the tokenizer's
 * post-processor (e.g. prepend BOS) as HF does with add_special_tokens=True.
 * Ids equal HF tokenizers' for the same text. Bytes that are not valid UTF-8
 * are replaced by U+FFFD first, one per maximal invalid subpart (what
 * Python's bytes.decode("utf-8", errors="replace") gives HF). Texts over
 * 1 GiB are refused; memory use is O(len): a tokenizer whose normalizers
 * would grow a text segment of n bytes past 16 * n + 4096 bytes (real ones
 * stay far below: NFKD ~11x at most, Replace(" ", "▁") 3x) fails with an
 * error instead.
 * *ids is malloc'd (never NULL on success); the caller frees it.
 * Thread-safe: a loaded tokenizer is read-only. */
int moe_tokenize(const moe_tokenizer *t, const char *text, size_t len, int add_special,
                 int32_t **ids, int *n_ids, moe_err *err);

/* Decode ids to UTF-8 text (malloc'd, NUL-terminated) as HF's
 * Tokenizer.decode does. skip_special: drop special tokens as HF's
 * skip_special_tokens=True does. Ids that name no token (negative, or past
 * the vocabulary, e.g. a padded embedding row) are dropped, as HF drops them.
 * Decoders that would grow the joined tokens' n bytes past 16 * n + 4096
 * fail with an error, as normalizers do in moe_tokenize. */
int moe_detokenize(const moe_tokenizer *t, const int32_t *ids, int n_ids, int skip_special,
                   char **text, size_t *len, moe_err *err);

/* ----------------------------------------------------- tokenizer training */

/* Train a byte-level BPE tokenizer (Qwen2 layout: NFC, the Qwen2 split regex,
 * ByteLevel) on text files and write OUT_DIR/tokenizer.json and
 * OUT_DIR/tokenizer_config.json, which moe_tokenizer_load and HF tokenizers
 * 0.23 load with identical ids. Ids: the 256 byte tokens (in code point order
 * of their GPT-2 characters), then one per learned merge, then the special
 * tokens. Each step merges the most frequent adjacent pair over all words;
 * ties go to the pair with the smaller (left id, right id), so the result
 * depends only on the text, never on hash or file order. Files are streamed;
 * memory is bounded by max_words: about 350 bytes per distinct word kept at
 * the peak (merge learning), ~0.7 GB at the default. */

typedef enum {
    MOE_TRAIN_COUNT = 0, /* reading files, counting words */
    MOE_TRAIN_MERGE,     /* learning merges */
    MOE_TRAIN_DONE,      /* files written; every field is final */
} moe_tokenizer_train_stage;

typedef struct moe_tokenizer_train_progress {
    moe_tokenizer_train_stage stage;
    int64_t bytes_done, bytes_total; /* input bytes read / in all files */
    int64_t words;                   /* pre-tokenized words counted */
    int64_t unique_words;            /* distinct words kept */
    int64_t pruned_words;            /* distinct rare words dropped to stay under max_words */
    int merges_done, merges_target;  /* merges learned / wanted */
    int vocab;                       /* ids in the tokenizer (final at DONE) */
    double seconds;                  /* since the start */
} moe_tokenizer_train_progress;

typedef struct moe_tokenizer_train_opts {
    int vocab_size;              /* total ids: 256 + merges + special tokens */
    int min_freq;                /* stop when the best pair occurs fewer times; 0 = 2 */
    const char *const *special;  /* special tokens; NULL with n_special 0: "<|endoftext|>" */
    int n_special;
    const char *bos_token;       /* tokenizer_config.json bos_token; NULL = none */
    const char *eos_token;       /* eos_token; NULL = the first special token */
    int64_t max_words;           /* distinct words kept while counting; 0 = 2M. Past it (or
                                    past 64 bytes a word) the rarest are dropped, counts lost */
    void (*progress)(void *user, const moe_tokenizer_train_progress *p); /* or NULL */
    void *user;
} moe_tokenizer_train_opts;

/* files: n_files paths read as UTF-8 (invalid bytes become U+FFFD). Special
 * tokens found in the text are cut out, as HF's trainer does. out_dir is
 * created if missing (its parent must exist). */
int moe_tokenizer_train(const moe_tokenizer_train_opts *o, const char *const *files, int n_files,
                        const char *out_dir, moe_err *err);

/* --------------------------------------------------------------- sampling */

typedef struct moe_sampler_opts {
    float temp;      /* 0 = greedy (argmax) */
    int top_k;       /* 0 = off */
    float top_p;     /* 1.0 = off */
    uint64_t seed;
} moe_sampler_opts;

typedef struct moe_sampler moe_sampler;

int moe_sampler_new(moe_sampler **out, const moe_sampler_opts *o, int vocab, moe_err *err);
void moe_sampler_free(moe_sampler *s);
/* Pick a token from logits [vocab]. Does not modify logits. */
int moe_sample(moe_sampler *s, const float *logits);

#ifdef __cplusplus
}
#endif
#endif /* MOE_H */
