/*
 * moe_train.h - training MoE language models from scratch (or from a
 * checkpoint) on the CPU: the public entry point behind `moe train`.
 *
 * The objective and the update are those of docs/TRAINING.md: mean
 * cross-entropy + aux * Switch load-balancing loss + z * router z-loss +
 * kl * KL(uniform || mean router probability), AdamW with decoupled weight
 * decay on matrices only, linear warmup then cosine decay, global-norm
 * clipping, gradient accumulation. Router kind, capacity factor and
 * selection bias come from the model's config.json ("moe" object).
 *
 * Checkpoints: OUT/step-NNNNNNNN/ holds config.json + model.safetensors
 * (f32, Hugging Face layout: transformers loads it), tokenizer files when
 * given, trainer_state.json and optimizer.safetensors (AdamW moments).
 * Each is written to a temporary directory, fsynced and renamed; OUT/latest
 * (a symlink) is then switched atomically. A kill at any moment leaves the
 * previous checkpoint whole and OUT/latest pointing at a complete one.
 * Resuming from OUT/latest continues bit-identically: same batches, same
 * losses, as if never stopped.
 */
#ifndef MOE_TRAIN_PUBLIC_H
#define MOE_TRAIN_PUBLIC_H

#include <stdint.h>

#include "moe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moe_train_progress {
    int64_t step;          /* steps done (1-based after the first) */
    int64_t steps;         /* total steps of the run */
    double loss;           /* total loss of the step (mean over micro-batches) */
    double ce, aux, z, kl; /* its parts, unweighted */
    double lr;             /* learning rate the step used */
    double grad_norm;      /* before clipping */
    double tokens_per_s;   /* this step */
    double eta_s;          /* seconds left at the recent pace */
    int is_eval;           /* 1: an evaluation finished: val_loss is set */
    double val_loss;       /* mean cross-entropy on the held-out split */
    const char *saved;     /* non-NULL: a checkpoint was just written here */
    /* Mixture-of-Depths layers (0 without): means over their tokens and layers */
    double mod_bce;        /* the routers' binary cross-entropy against top-C */
    double mod_acc;        /* share where r > 0 agrees with top-C membership */
    double mod_frac;       /* share of tokens the causal rule r > 0 sends through */
    double val_loss_topc;  /* with is_eval: val_loss with training's top-C choice in the
                              MoD layers (val_loss has inference's r > 0); NAN without */
} moe_train_progress;

typedef struct moe_train_opts {
    const char *out_dir;     /* checkpoints and the log go here (created) */
    const char *init;        /* model directory to start from, or NULL */
    const char *config;      /* config.json of a fresh model (init == NULL) */
    const char *data_dir;    /* `moe data` output: train.bin, val.bin */
    const char *tokenizer;   /* tokenizer.json or directory, copied into
                                checkpoints; NULL = none */
    int resume;              /* 1: continue from out_dir/latest */
    int64_t steps;           /* optimizer steps in all */
    int batch;               /* B sequences per micro-batch */
    int seq;                 /* T tokens per sequence */
    int accum;               /* micro-batches per step (>= 1) */
    double lr, min_lr;       /* peak and floor of the schedule */
    int64_t warmup;          /* warmup steps */
    double weight_decay;     /* decoupled, matrices only */
    double beta1, beta2, eps;
    double clip;             /* global gradient norm limit; 0 = off */
    float aux_coef, z_coef, kl_coef; /* balancing loss coefficients */
    float mod_coef;          /* Mixture-of-Depths: weight of the routers' BCE (0.01) */
    float bias_rate;         /* selection-bias update rate (sigmoid routers) */
    uint64_t seed;           /* init and data order */
    float init_std;          /* fresh weights ~ N(0, init_std); norms 1 */
    int64_t eval_every;      /* steps between evaluations; 0 = only at the end */
    int eval_batches;        /* micro-batches of validation per evaluation */
    int64_t save_every;      /* steps between checkpoints; 0 = only at the end */
    int keep;                /* checkpoints kept (>= 1) */
    int n_threads;           /* 0 = online CPUs */
    const char *log_path;    /* JSONL log (appended); NULL = out_dir/log.jsonl */
    int64_t stop_after;      /* > 0: stop (with a checkpoint) after this many
                                steps of this invocation (tests, time slices) */
    /* Freezing and growing (docs/TRAINING.md, "Freezing, upcycling, adding
     * experts"); all zero/NULL: none. */
    const char *freeze;      /* parameter groups kept fixed, comma-separated:
                                router, experts, attention, embeddings, norms,
                                old-experts, old-router; a resumed run keeps the
                                checkpoint's (NULL) or must name the same */
    const char *upcycle;     /* a dense model directory: the start is its MoE
                                twin (Mixtral layout) with upcycle_experts copies
                                of each dense FFN and a fresh router (init and
                                config NULL) */
    int upcycle_experts;     /* E of the upcycled model (>= 1) */
    int top_k;               /* its k; 0 = the dense config's, else 2 */
    int add_experts;         /* > 0 with init: experts appended to every MoE
                                layer (copies of the old, zero router rows) */
    float expert_noise;      /* copied experts' weights times 1 + expert_noise *
                                N(0, 1) (upcycle, add_experts); 0 = exact copies */
    /* LoRA (needs init): > 0 trains only rank-lora_rank adapters on the
     * lora_targets weights, the base frozen; checkpoints then hold peft's
     * adapter_config.json + adapter_model.safetensors, the f32 base stays in
     * OUT/base, --resume needs the same three settings (docs/TRAINING.md) */
    int lora_rank;
    double lora_alpha;       /* scale alpha / r; 0 = 2 * rank */
    const char *lora_targets;/* "q_proj,k_proj,v_proj,o_proj,gate,gate_up_proj,down_proj",
                                "attn", "experts", "all"; NULL = "attn,experts" */
    int recompute;           /* 1: keep only each layer's input (and routing) in
                                the forward and recompute the layer in the
                                backward: less memory, the same bits, about one
                                more forward of time (docs/TRAINING.md) */
    void (*progress)(void *user, const moe_train_progress *p); /* or NULL */
    void *user;
} moe_train_opts;

/* Defaults for every field (out_dir, data_dir, config/init left NULL). */
void moe_train_defaults(moe_train_opts *o);

/* Run the training. Returns 0 when the steps are done (or stop_after hit),
 * -1 with a message on any error, including a NaN/Inf loss or gradient
 * (the step is not applied; the last checkpoint stays valid). */
int moe_train(const moe_train_opts *o, moe_err *err);

/* ------------------------------------------------------- LoRA adapters */

/* A peft LoRA adapter directory (adapter_config.json +
 * adapter_model.safetensors) applied to a loaded model: each targeted weight
 * becomes an f32 copy of W + scale * B A, before any session is made on m.
 * The adapter must match the model (every tensor, every shape); experts
 * read through an expert memory budget cannot be adapted. The handle owns
 * the merged weights: free it after the model. */
typedef struct moe_lora moe_lora;
int moe_lora_apply(moe_model *m, const char *adapter_dir, moe_lora **out, moe_err *err);
void moe_lora_free(moe_lora *l);

/* base (a Hugging Face directory) with the adapter merged, written to
 * out_dir as a model directory: model.safetensors (the adapted weights in
 * f32, the others as they were), config.json and the tokenizer files. */
int moe_lora_merge(const char *base_dir, const char *adapter_dir, const char *out_dir,
                   moe_err *err);

#ifdef __cplusplus
}
#endif
#endif
