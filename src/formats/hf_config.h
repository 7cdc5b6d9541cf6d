/*
 * hf_config.h - config.json <-> moe_config.
 *
 * Reads the transformers config of mixtral, qwen2_moe, qwen3_moe and olmoe
 * with every switch that changes the computation, and refuses what it cannot
 * run (unknown model_type, unsupported rope_scaling, inconsistent sizes)
 * with a message naming the field. Fields transformers has no name for
 * (router kind, capacity factor, ...) live under a "moe" object.
 */
#ifndef MOE_FORMATS_HF_CONFIG_H
#define MOE_FORMATS_HF_CONFIG_H

#include <stddef.h>
#include "moe.h"

/* Parse config.json text; `where` names the file in messages. */
int hf_config_parse(moe_config *cfg, const char *json, size_t len, const char *where,
                    moe_err *err);

/* dir/config.json */
int hf_config_load(moe_config *cfg, const char *dir, moe_err *err);

/* Write cfg as a config.json transformers loads (model_type from cfg->arch),
 * with "torch_dtype" = dtype_name ("float32", "bfloat16", "float16"). */
int hf_config_write(const moe_config *cfg, const char *path, const char *torch_dtype,
                    moe_err *err);
/* The same with "quantization_config": {"quant_method": "mxfp4", ...} as the
 * released gpt-oss checkpoints have it (their experts stored as MXFP4
 * blocks and scales), when mxfp4 is nonzero (gpt_oss configs only). */
int hf_config_write_q(const moe_config *cfg, const char *path, const char *torch_dtype,
                      int mxfp4, moe_err *err);

/* What a reader of the config.json hf_config_write_q writes for cfg gets
 * (fields config.json leaves to defaults take them), into *out. */
int hf_config_reread(const moe_config *cfg, const char *torch_dtype, int mxfp4, moe_config *out,
                     moe_err *err);

/* Check sizes agree (heads divide, top_k <= experts, ...). */
int moe_config_validate(const moe_config *cfg, const char *where, moe_err *err);

/* Latent attention's softmax scale (transformers' yarn_apply_mscale):
 * 1/sqrt(head_dim), times mscale(factor, mscale_all_dim)^2 when the RoPE is
 * YaRN and mscale_all_dim is not 0. From the float fields, so that
 * config.json and GGUF readers (and the writer's check) agree bit for bit. */
float hf_mla_scale(int head_dim, int yarn, float factor, float mscale_all_dim);

#endif
