/*
 * quantize.h - write a loaded model out again: as a GGUF file (llama.cpp's
 * names, metadata and layout; weights kept, converted to another float type
 * or quantized) or as a Hugging Face directory (config.json +
 * model.safetensors). `moe convert` and `moe quantize` are built on it;
 * docs/QUANT.md documents the rules.
 *
 * Every writer streams tensor by tensor from the loaded model (whose weights
 * stay in their memory-mapped files), a bounded chunk of rows at a time, to
 * a temporary file that is fsync'd and renamed: memory stays at a few MiB
 * per thread whatever the model's size, and a failed run leaves nothing.
 *
 * Types are ggml's ids (gguf_type: F32 0, F16 1, Q4_0 2, Q4_1 3, Q5_0 6,
 * Q5_1 7, Q8_0 8, Q2_K 10, Q3_K 11, Q4_K 12, Q5_K 13, Q6_K 14, IQ4_NL 20,
 * IQ4_XS 23, BF16 30, MXFP4 39).
 */
#ifndef MOE_MODEL_QUANTIZE_H
#define MOE_MODEL_QUANTIZE_H

#include <stdint.h>

#include "moe.h"
#include "base/pool.h"
#include "model/tensor_map.h"

/* What to do with the weights. */
typedef enum qz_mode {
    QZ_KEEP = 0, /* convert: each weight keeps its stored type */
    QZ_FLOAT,    /* convert --type f32|f16|bf16: 2-D weights to `type` */
    QZ_QUANT,    /* quantize to `type` with llama-quantize's rules */
    QZ_MIXED,    /* per-expert: the most routed experts at `high`, the rest at `low` */
} qz_mode;

typedef struct qz_opts {
    qz_mode mode;
    int type;              /* QZ_FLOAT / QZ_QUANT: the target type */
    int pure;              /* QZ_QUANT: no mixture rules (llama-quantize --pure) */
    int high, low;         /* QZ_MIXED: expert types (e.g. Q8_0 and Q4_K); the other
                              tensors follow QZ_QUANT's rules for `high` */
    const double *counts;  /* QZ_MIXED: [L][stride] how often each expert was routed */
    int stride;            /* experts per layer in counts (the largest E) */
    int64_t budget;        /* QZ_MIXED: most bytes of tensor data in the file */
    int experts;           /* QZ_QUANT: routed experts' type; 0: MXFP4 experts kept, the
                              rest by `type`'s rules; QZ_EXPERTS_KEEP: all as stored */
} qz_opts;

#define QZ_EXPERTS_KEEP (-1)

/* The type of every tensor of the output file. */
typedef struct qz_plan {
    tm_entry *t;              /* [n] tensors in file order */
    int *type;                /* [n] their gguf types */
    int n;
    unsigned char *split;     /* [L] 1: the layer's experts are one tensor each */
    int *expert_type;         /* [L][stride] QZ_MIXED: each expert's type, else NULL */
    int stride;
    int64_t bytes;            /* tensor data bytes (without padding) */
    int64_t params;           /* weights in the file */
    int64_t min_bytes;        /* QZ_MIXED: every expert at `low` */
    int64_t max_bytes;        /* QZ_MIXED: every expert at `high` */
    int n_high;               /* QZ_MIXED: experts at `high` */
    int n_experts;            /* QZ_MIXED: routed experts in all */
    int n_fallback;           /* tensors whose row length did not suit the type */
    int file_type;            /* general.file_type (llama_ftype) */
} qz_plan;

/* Plan the output of m under o: each tensor's type (docs/QUANT.md has the
 * rules). Fails for a model GGUF cannot express (sigmoid routers, selection
 * biases, expert-choice or hash routing, scaled routed output) and, for
 * QZ_MIXED, for a budget below every expert at `low`. */
int qz_plan_make(qz_plan *p, const struct moe_model *m, const qz_opts *o, moe_err *err);
/* The same for a model not made yet (`moe init` straight to GGUF): what
 * qz_plan_make gives the model of config c once written with its 2-D
 * weights stored as `weights` and its routed experts as `experts` (gguf
 * types, e.g. BF16 and MXFP4). Not for QZ_MIXED. */
int qz_plan_make_cfg(qz_plan *p, const moe_config *c, int weights, int experts, const qz_opts *o,
                     moe_err *err);
void qz_plan_free(qz_plan *p);

/* The type llama-quantize gives tensor e of a model with config c when
 * quantizing to `type` (QZ_QUANT rules; pure: only the row-length fallback). */
int qz_tensor_type(const moe_config *c, const tm_entry *e, int type, int pure, int *fallback);

/* The type to use for a row length `cols` when `type` does not fit it: what
 * llama.cpp falls back to, limited to the types we have (see docs/QUANT.md). */
int qz_fallback(int type, int64_t cols);

/* Progress: bytes written so far of total. */
typedef void (*qz_progress_fn)(void *user, int64_t done, int64_t total);

struct tok_gguf_vocab;

typedef struct qz_write_opts {
    pool *pool;               /* converts rows in parallel (may be NULL) */
    const char *name;         /* general.name (HF sources); NULL: none */
    qz_progress_fn progress;  /* or NULL */
    void *user;
    const struct tok_gguf_vocab *vocab; /* GGUF: tokenizer.* pairs (gguf_vocab_write.h)
                                 for an HF source, or a GGUF source without a vocabulary;
                                 NULL: none (tokenizer.ggml.model = "none") */
} qz_write_opts;

/* The tokenizer.* pairs of a public moe_gguf_vocab (moe_gguf.h), or NULL
 * when it has none to write (gguf_api.c). */
struct moe_gguf_vocab;
const struct tok_gguf_vocab *qz_vocab_pairs(const struct moe_gguf_vocab *v);

/* Write m as a GGUF file at path with the plan's types. Metadata: a GGUF
 * source's key/value pairs are carried over (tokenizer included) with
 * general.file_type updated; an HF source gets the keys llama.cpp's
 * converter writes for its architecture, and o->vocab's tokenizer. */
int qz_write_gguf(const struct moe_model *m, const qz_plan *p, const char *path,
                  const qz_write_opts *o, moe_err *err);

/* The same with the tensor data from elsewhere (`moe init` straight to
 * GGUF): the metadata of an HF source of config c, then for each tensor i
 * of the plan, in order, fn writes its data (every plane, rows of type
 * p->type[i], nothing else) through qz_sink_write. */
typedef struct qz_sink qz_sink;
typedef int (*qz_tensor_fn)(void *ctx, qz_sink *s, int i, const char *name, moe_err *err);
int qz_write_gguf_from(const moe_config *c, const qz_plan *p, const char *path,
                       const qz_write_opts *o, qz_tensor_fn fn, void *ctx, moe_err *err);
/* Append n bytes of tensor data; progress is reported. */
int qz_sink_write(qz_sink *s, const void *data, size_t n, moe_err *err);

/* Write m as dir/config.json + dir/model.safetensors with every weight as
 * `type` (DT_F32, DT_BF16 or DT_F16); dir must exist. Experts are named one
 * by one, as transformers' checkpoints do. */
int qz_write_hf(const struct moe_model *m, const char *dir, int type, const qz_write_opts *o,
                moe_err *err);

/* A budget string: bytes with an optional K/M/G/T suffix (powers of 1024;
 * "KB"/"MB"/"GB"/"TB" are powers of 1000), or bits per weight "4.5bpw"
 * (times params / 8). -1 if malformed. */
int qz_parse_budget(const char *s, int64_t params, int64_t *bytes);

/* "q4_k" -> Q4_K etc. (f32, f16, bf16, q4_0, q8_0, q4_k, q5_k, q6_k; case
 * does not matter); -1 if unknown. */
int qz_type_from_name(const char *s);
/* llama.cpp's general.file_type for files mostly of `type`. */
int qz_file_type(int type, int pure);

#endif
