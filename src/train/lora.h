/*
 * lora.h - low-rank adapters (LoRA) on a model's linear layers, in the
 * layout the Hugging Face `peft` library (0.21, transformers 5) saves and
 * loads, so an adapter trained here loads there and the reverse.
 *
 * A target adds scale * B A to a weight W [out][in] (scale = alpha / r, or
 * alpha / sqrt(r) with use_rslora); A [r][in], B [out][r]. The targets:
 *
 *   q_proj k_proj v_proj o_proj  attention projections: peft target_modules,
 *       tensors base_model.model.model.layers.L.self_attn.q_proj.lora_A.weight
 *       [r][in] and .lora_B.weight [out][r]
 *   gate                         the router [E][D]: target_parameters
 *       "mlp.gate.weight" (peft's ParamWrapper on a 2-D parameter), tensors
 *       ...layers.L.mlp.gate.lora_A.weight / lora_B.weight
 *   gate_up_proj down_proj       the routed experts, each with its own A and
 *       B: transformers 5 keeps them as fused 3-D parameters
 *       mlp.experts.gate_up_proj [E][2F][D] (gate rows, then up rows) and
 *       mlp.experts.down_proj [E][D][F]; peft targets them with
 *       target_parameters and stores all experts in one pair:
 *         lora_A.weight [E*r][in]   expert e's A = rows e*r .. e*r+r-1
 *         lora_B.weight [out][E*r]  expert e's B[o][k] = lora_B[o][k*E + e]
 *       (so one adapter covers an expert's gate and up rows: its A is shared
 *       by w1 and w3). Both targeted: peft nests the wrappers, gate_up_proj's
 *       tensors are ...mlp.experts.base_layer.lora_A.weight and down_proj's
 *       ...mlp.experts.lora_A.weight; one alone: ...mlp.experts.lora_A.weight.
 *
 * Supported where transformers 5 lays the model out this way: mixtral,
 * qwen2_moe, qwen3_moe and olmoe (dense layers of qwen2_moe get attention
 * adapters only; shared experts get none).
 */
#ifndef MOE_TRAIN_LORA_H
#define MOE_TRAIN_LORA_H

#include <stdint.h>

#include "model/model.h"

enum {
    LORA_T_Q = 1, LORA_T_K = 2, LORA_T_V = 4, LORA_T_O = 8,
    LORA_T_ROUTER = 16,   /* "gate" */
    LORA_T_GATE_UP = 32,  /* "gate_up_proj" */
    LORA_T_DOWN = 64,     /* "down_proj" */
    LORA_T_ATTN = LORA_T_Q | LORA_T_K | LORA_T_V | LORA_T_O,
    LORA_T_EXPERTS = LORA_T_GATE_UP | LORA_T_DOWN,
};

/* One adapted tensor of peft: a linear layer, or all experts of a layer for
 * one fused expert parameter. */
typedef struct lora_target {
    char key[192];       /* peft module path, e.g. base_model.model.model.layers.0.mlp.experts */
    char name_a[208], name_b[208]; /* its two tensors' names */
    unsigned kind;       /* one LORA_T_* bit */
    int layer;
    int E;               /* experts sharing the pair (1: a linear layer or the router) */
    int64_t in, out;     /* per expert: A [r][in], B [out][r] */
    int64_t a_off, b_off;/* A [E*r][in] and B [out][E*r] in lora_adapter.p */
    int n_w;             /* model weights covered: E, or 2E for gate_up (each expert's
                            gate then each expert's up) */
    mat **w;             /* [n_w] the model's weights ([out][in], or [F][D] halves) */
} lora_target;

typedef struct lora_adapter {
    int r;
    double alpha;
    int rslora;          /* scale alpha / sqrt(r) instead of alpha / r */
    float scale;
    unsigned targets;    /* LORA_T_* bits */
    lora_target *t;      /* [n] in layer order */
    int n;
    float *p;            /* [n_params] every A and B */
    int64_t n_params;
    char base[4096];     /* base_model_name_or_path ("" if none) */
} lora_adapter;

/* "q_proj,v_proj,experts" into LORA_T_* bits; also "attn" (the four
 * projections), "experts" (gate_up_proj,down_proj), "gate", "all". */
int lora_parse_targets(const char *list, unsigned *bits, moe_err *err);

/* 0 when adapters can be laid out on a model of config c (its architecture
 * is one of the four above), else -1 naming it. */
int lora_check_model(const moe_config *c, moe_err *err);

/* Lay out the adapter of rank r on m's weights for the targets (bits), all
 * parameters zero. Fails naming what m cannot carry. */
int lora_plan(lora_adapter *a, moe_model *m, int r, double alpha, int rslora, unsigned bits,
              moe_err *err);
void lora_free(lora_adapter *a);

/* peft's default init: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_
 * with a = sqrt(5), as nn.Linear), B = 0: the model starts unchanged. */
void lora_init_weights(lora_adapter *a, uint64_t seed);

/* W += scale * B_e A_e for weight j of target t, W [rows][in] f32 row-major
 * (the rows of that weight: out, or F for a gate_up half). */
void lora_add_delta(const lora_adapter *a, const lora_target *t, int j, float *W);
/* Rows of weight j of t. */
int64_t lora_w_rows(const lora_target *t);

/* From dL/dW of weight j of t (dW [rows][in]) add dL/dA and dL/dB into g
 * (laid out as a->p). */
void lora_add_grads(const lora_adapter *a, const lora_target *t, int j, const float *dW,
                    float *g);

/* The same two through the blocked GEMM (kernels/gemm.h) on pool p (may
 * be NULL), held to the loops above by tests/test_lora.c. scratch:
 * lora_scratch(t, r) floats. */
int64_t lora_scratch(const lora_target *t, int r);
struct pool;
void lora_add_delta_gemm(struct pool *p, const lora_adapter *a, const lora_target *t, int j,
                         float *W, float *scratch);
void lora_add_grads_gemm(struct pool *p, const lora_adapter *a, const lora_target *t, int j,
                         const float *dW, float *g, float *scratch);

/* adapter_config.json + adapter_model.safetensors into dir (created if
 * missing), written atomically each. */
int lora_save(const lora_adapter *a, const char *dir, moe_err *err);

/* Read dir's adapter_config.json and adapter_model.safetensors and plan
 * them on m: every tensor the config calls for must be there with its
 * shape, and nothing else. */
int lora_load(lora_adapter *a, moe_model *m, const char *dir, moe_err *err);

#endif
