/*
 * moe_quant.h - write a loaded model out again (`moe convert`, `moe
 * quantize`): as a GGUF file in llama.cpp's names, metadata and layout, its
 * weights kept, converted to another float type or quantized; or as a
 * Hugging Face directory (config.json + model.safetensors). docs/QUANT.md
 * has the rules.
 *
 * First a plan: the type of every tensor of the output file, made from the
 * model and the options (one type with llama-quantize's rules, or per
 * expert: the most routed experts at a high type while the file fits a
 * byte budget). The plan can be described (sizes, per-tensor and
 * per-expert types) before it is written. Writing streams tensor by tensor
 * to a temporary file that is renamed at the end: memory stays at a few
 * MiB per thread, and a failed run leaves nothing.
 *
 * Same conventions as moe.h: 0 on success, -1 with *err filled on error.
 */
#ifndef MOE_QUANT_H
#define MOE_QUANT_H

#include <stdint.h>

#include "moe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Tensor types, as ggml / GGUF number them. */
typedef enum {
    MOE_QTYPE_F32 = 0,
    MOE_QTYPE_F16 = 1,
    MOE_QTYPE_Q4_0 = 2,
    MOE_QTYPE_Q8_0 = 8,
    MOE_QTYPE_Q4_K = 12,
    MOE_QTYPE_Q5_K = 13,
    MOE_QTYPE_Q6_K = 14,
    MOE_QTYPE_BF16 = 30,
    MOE_QTYPE_MXFP4 = 39, /* routed experts (gpt-oss) */
    MOE_QTYPE_Q4_1 = 3,
    MOE_QTYPE_Q5_0 = 6,
    MOE_QTYPE_Q5_1 = 7,
    MOE_QTYPE_Q2_K = 10,
    MOE_QTYPE_Q3_K = 11,
    MOE_QTYPE_IQ4_NL = 20,
    MOE_QTYPE_IQ4_XS = 23,
} moe_qtype;

/* "q4_k" -> MOE_QTYPE_Q4_K (f32, f16, bf16, q4_0, q8_0, q4_k, q5_k, q6_k, mxfp4,
 * q4_1, q5_0, q5_1, q2_k, q3_k, iq4_nl, iq4_xs; any case); -1 if unknown. */
int moe_qtype_from_name(const char *s);
/* GGUF's name of a type ("Q4_K", "BF16"); NULL for an id it does not know. */
const char *moe_qtype_name(int type);
/* 1 for F32, F16 and BF16. */
int moe_qtype_is_float(int type);

/* What to do with the weights. */
typedef enum {
    MOE_QUANT_KEEP = 0, /* each weight keeps its stored type */
    MOE_QUANT_FLOAT,    /* 2-D weights to the float `type` */
    MOE_QUANT_TYPE,     /* quantize to `type` with llama-quantize's rules */
    MOE_QUANT_MIXED,    /* the most routed experts at `high`, the rest at `low` */
} moe_quant_mode;

typedef struct moe_quant_opts {
    moe_quant_mode mode;
    int type;             /* FLOAT / TYPE: the target moe_qtype */
    int pure;             /* TYPE: no mixture rules (llama-quantize --pure) */
    int high, low;        /* MIXED: expert types (e.g. Q8_0 and Q4_K); the other
                             tensors follow TYPE's rules for `high` */
    const double *counts; /* MIXED: [L][stride] how often each expert was routed */
    int stride;           /* experts per layer in counts (the largest E) */
    int64_t budget;       /* MIXED: most bytes of tensor data; INT64_MAX to learn
                             the range (min_bytes .. max_bytes) first */
    int experts;          /* TYPE: the routed experts' type: 0 = the default (MXFP4
                             experts kept as they are, others by `type`'s rules),
                             MOE_QUANT_EXPERTS_KEEP = every expert as stored, or a
                             moe_qtype (e.g. MXFP4: float experts to MXFP4) */
} moe_quant_opts;

#define MOE_QUANT_EXPERTS_KEEP (-1)

typedef struct moe_quant_plan moe_quant_plan;

/* Plan the output of m under o. Fails for a model GGUF cannot express
 * (sigmoid routers, selection biases, expert-choice or hash routing, scaled
 * routed output) and, for MIXED, for a budget below every expert at `low`. */
int moe_quant_plan_new(moe_quant_plan **out, const moe_model *m, const moe_quant_opts *o,
                       moe_err *err);
void moe_quant_plan_free(moe_quant_plan *p);

/* A plan in figures. */
typedef struct moe_quant_summary {
    int n_tensors;
    int64_t bytes;      /* tensor data in the file (without padding) */
    int64_t params;     /* weights in the file */
    int64_t min_bytes;  /* MIXED: every expert at `low` (else = bytes) */
    int64_t max_bytes;  /* MIXED: every expert at `high` (else = bytes) */
    int n_high;         /* MIXED: experts at `high` */
    int n_experts;      /* MIXED: routed experts in all */
    int n_fallback;     /* tensors whose row length did not suit the type */
    char types[256];    /* tensors per type, quantized first: "Q8_0 (96), F32 (33)" */
} moe_quant_summary;
void moe_quant_plan_summary(const moe_quant_plan *p, moe_quant_summary *s);

/* Tensor i (0 .. n_tensors-1) in file order: its GGUF name, type, values
 * and bytes of data. 0, or -1 when i is out of range. */
typedef struct moe_quant_tensor {
    char name[96];
    int type;
    int64_t n_values;
    int64_t bytes;
} moe_quant_tensor;
int moe_quant_plan_tensor(const moe_quant_plan *p, int i, moe_quant_tensor *t);

/* MIXED: the type of expert e of layer l (-1 for a dense layer, an expert
 * the layer does not have, or another mode). */
int moe_quant_plan_expert_type(const moe_quant_plan *p, int layer, int expert);
/* 1 when layer l's experts are written one tensor each (their types differ). */
int moe_quant_plan_layer_split(const moe_quant_plan *p, int layer);

/* A budget string: bytes with an optional K/M/G/T suffix (powers of 1024;
 * "KB"/"MB"/"GB"/"TB" are powers of 1000), or bits per weight "4.5bpw"
 * (times params / 8). -1 if malformed. */
int moe_quant_parse_budget(const char *s, int64_t params, int64_t *bytes);

/* The float type every 2-D weight of m shares (MOE_QTYPE_F32, F16 or BF16;
 * vectors and routers do not count), or -1 when they differ or one is
 * quantized. */
int moe_model_float_type(const moe_model *m);

typedef struct moe_gguf_vocab moe_gguf_vocab; /* moe_gguf.h */

typedef struct moe_quant_write_opts {
    int n_threads;    /* threads converting rows, 0 = online CPUs */
    const char *name; /* GGUF general.name for an HF source; NULL: none */
    void (*progress)(void *user, int64_t bytes_done, int64_t bytes_total); /* or NULL */
    void *user;
    const moe_gguf_vocab *vocab; /* GGUF: the tokenizer.* pairs for an HF source, or
                                    a GGUF source without a vocabulary; NULL: none */
} moe_quant_write_opts;

/* Write m as a GGUF file at path with the plan's types. A GGUF source's
 * metadata is carried over (tokenizer included) with general.file_type set
 * anew; an HF source gets the keys llama.cpp's converter writes for its
 * architecture and o->vocab's tokenizer. */
int moe_quant_write_gguf(const moe_model *m, const moe_quant_plan *p, const char *path,
                         const moe_quant_write_opts *o, moe_err *err);

/* Write m as dir/config.json + dir/model.safetensors with every weight as
 * `type` (MOE_QTYPE_F32, F16 or BF16); dir must exist. Experts are named one
 * by one, as transformers' checkpoints name them. */
int moe_quant_write_hf(const moe_model *m, const char *dir, int type,
                       const moe_quant_write_opts *o, moe_err *err);

#ifdef __cplusplus
}
#endif
#endif
