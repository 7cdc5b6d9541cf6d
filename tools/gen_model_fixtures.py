#!/usr/bin/env python3
"""gen_model_fixtures.py - tiny random MoE models + transformers reference logits.

Writes tests/fixtures/models/<variant>/ for every variant below:
  config.json, model.safetensors (or sharded model-0000x-of-0000y.safetensors +
  model.safetensors.index.json), generation_config.json  -- exactly what
  transformers' save_pretrained writes (a few variants get a config.json in
  the older hub style, see LEGACY_CONFIG), and
  ref.json        ids, greedy ids, shapes, tolerances, what each switch does
  ref_logits.bin  raw little-endian float32:
                    [N_IDS][V]   logits of one forward over `ids`
                    [N_GEN][V]   logits that produced each greedy token
                                 (prompt = ids[:N_PROMPT], KV cache, one token a step)

The C test tests/test_conformance.c holds libmoe to these files; it needs no
Python. Every switch a config has is made to matter: weights are random and
far from 0/1, router weights are large so routing is decisive, and the script
checks (and records in ref.json under "checks") that each switch changes the
computation: fraction of q/k/v clipped, dense vs MoE layers, window on/off
difference, top-k weight sums, no near-ties in routing or greedy argmax.

Run:  python3 tools/gen_model_fixtures.py [--only NAME ...] [--debug NAME]
(see tools/README.md). CPU only, float32 math, eager attention, fixed seeds.
"""
import os
os.environ.setdefault("TQDM_DISABLE", "1")
import argparse
import json
import math
import shutil
import sys

import torch
import transformers
import numpy as np
from gguf import GGMLQuantizationType as GT
from gguf import quants as gq
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache
from torch.nn.functional import linear as F_linear

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "models")

N_IDS = 48      # ids of the full forward
N_PROMPT = 16   # greedy prompt = ids[:N_PROMPT]
N_GEN = 32      # greedy tokens
GAP_MIN = 1e-3  # smallest allowed top1-top2 logit gap (greedy) / k-th vs k+1-th router logit gap
MIN_DISTINCT = 6  # a greedy continuation stuck on one token tests little
TOL_LOGITS = 1e-4       # max|a-b| / max|ref| per row, C vs transformers
TOL_INCREMENTAL = 1e-5
# MXFP4 experts: the weights are exact (every MXFP4 value is an f32), but the
# C matmuls round the activations to Q8_0 first as ggml does (8 bits a value,
# relative step up to 1/254 of a block's largest), where transformers
# multiplies in f32. Measured on gpt_oss_mxfp4: 1.1e-2 at worst, 4.9e-3
# median; every switch of the variant moves logits by >= 0.13 (ref.json).
TOL_MXFP4 = 2.5e-2
SENS_MIN = 1e-2   # a wrong switch must move logits by >= 100x TOL_LOGITS
SENS_EXEMPT = {"rms_norm_eps x10"}  # reported only: real eps values barely matter  # same, C token-by-token vs C full forward

# --------------------------------------------------------------- variants
# Each variant: model_type, config kwargs (beyond COMMON), save dtype, shard
# size, and a line saying what it is for. Sizes are kept tiny (the whole
# fixtures dir ~3 MB): V=128, D=32..48, 2..4 layers, 4..8 experts.

COMMON = dict(vocab_size=128, max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
              pad_token_id=None, tie_word_embeddings=False)

MIXTRAL = dict(hidden_size=48, intermediate_size=16, num_hidden_layers=2, num_attention_heads=6,
               num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, rms_norm_eps=1e-5,
               rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, sliding_window=None)

QWEN2 = dict(hidden_size=32, intermediate_size=40, moe_intermediate_size=16,
             shared_expert_intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, num_experts=6, num_experts_per_tok=2, decoder_sparse_step=1,
             mlp_only_layers=[], norm_topk_prob=False, qkv_bias=True, rms_norm_eps=1e-6,
             use_sliding_window=False, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})

QWEN3 = dict(hidden_size=32, intermediate_size=40, moe_intermediate_size=16, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=8,
             num_experts_per_tok=3, decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True,
             attention_bias=False, rms_norm_eps=1e-6, use_sliding_window=False,
             rope_parameters={"rope_type": "default", "rope_theta": 10000.0})

# The other mixtral variants change one switch each on a smaller body
# (hidden 32, 4 heads / 2 kv heads) to keep the fixtures small.
MIXTRAL_S = dict(MIXTRAL, hidden_size=32, num_attention_heads=4, num_key_value_heads=2)

OLMOE = dict(hidden_size=32, intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False,
             clip_qkv=1.5, attention_bias=False, rms_norm_eps=1e-5,
             rope_parameters={"rope_type": "default", "rope_theta": 10000.0})

# gpt_oss: 4 layers so both layer types appear (sliding on even layers), a
# window of 8 < 48 tokens, head_dim 16 (the AVX-512 attention kernel runs
# with the sinks), a swiglu_limit the gate and up projections reach, YaRN on
# with an original context (16) shorter than the sequence.
GPT_OSS = dict(hidden_size=32, intermediate_size=16, num_hidden_layers=4, num_attention_heads=4,
               num_key_value_heads=2, head_dim=16, num_local_experts=6, num_experts_per_tok=2,
               rms_norm_eps=1e-5, sliding_window=8, swiglu_limit=1.0, swiglu_alpha=1.702,
               attention_bias=True,
               rope_parameters={"rope_type": "yarn", "rope_theta": 100.0, "factor": 8.0,
                                "beta_fast": 4.0, "beta_slow": 0.5, "truncate": False,
                                "original_max_position_embeddings": 64})

# qwen3_next: Gated DeltaNet ("linear_attention") layers among full-attention
# ones; 2 key heads / 4 value heads (each key head serves 2), Dk 8 != Dv 12 so
# a transposed state shows; head_dim 16 with a quarter of it rotated; a
# shared expert with its sigmoid gate.
QWEN3_NEXT = dict(hidden_size=32, intermediate_size=40, moe_intermediate_size=16,
                  shared_expert_intermediate_size=24, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, num_experts=6, num_experts_per_tok=2,
                  decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True,
                  attention_bias=False, rms_norm_eps=1e-6, linear_num_key_heads=2,
                  linear_num_value_heads=4, linear_key_head_dim=8, linear_value_head_dim=12,
                  linear_conv_kernel_dim=4,
                  layer_types=["linear_attention", "full_attention", "linear_attention",
                               "full_attention"],
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                   "partial_rotary_factor": 0.25})

# qwen3_5_moe: qwen3_next's layers with the DeltaNet projections apart
# (in_proj_qkv, _z, _b, _a), every layer MoE with the shared expert, the
# router always renormalizing; RoPE parameters with mrope_section (a text
# token has all three positions equal: the sections must change nothing).
# config.json nests the text model under text_config beside a vision tower.
QWEN3_5 = dict(hidden_size=32, moe_intermediate_size=16, shared_expert_intermediate_size=24,
               num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
               num_experts=6, num_experts_per_tok=2, attention_bias=False, rms_norm_eps=1e-6,
               linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8,
               linear_value_head_dim=12, linear_conv_kernel_dim=4,
               layer_types=["linear_attention", "full_attention", "linear_attention",
                            "full_attention"],
               rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                "partial_rotary_factor": 0.5, "mrope_section": [2, 1, 1],
                                "mrope_interleaved": True})
# a tiny vision tower, so the files hold model.visual.* as the released ones do
QWEN3_5_VISION = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2,
                      out_hidden_size=32, patch_size=4, num_position_embeddings=16,
                      temporal_patch_size=2, spatial_merge_size=2)
# deepseek_v3: latent attention (q through rank 24, latent 16, heads of 8
# non-rotary + 8 rotary dims, values of 12), YaRN with DeepSeek's mscale on the
# softmax scale (mscale = mscale_all_dim as in the released models, which is
# also all llama.cpp's GGUF files can say), rotary dims interleaved; 8 experts in 4 groups, the best 2
# groups kept (by the sum of their two best), sigmoid scores with the
# correction bias, renormalized top-2 times 2.5, a shared expert, layer 0 dense.
DS3 = dict(hidden_size=32, intermediate_size=40, moe_intermediate_size=16, num_hidden_layers=3,
           num_attention_heads=4, num_key_value_heads=4, q_lora_rank=24, kv_lora_rank=16,
           qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=8,
           num_experts_per_tok=2, n_group=4, topk_group=2, n_shared_experts=1,
           routed_scaling_factor=2.5, first_k_dense_replace=1, norm_topk_prob=True,
           rope_interleave=True, rms_norm_eps=1e-6, attention_bias=False,
           rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                            "original_max_position_embeddings": 16, "beta_fast": 8.0,
                            "beta_slow": 1.0, "mscale": 0.8, "mscale_all_dim": 0.8},
           # as the released config.json says (transformers ignores both; llama.cpp's
           # converter reads scoring_func)
           scoring_func="sigmoid", topk_method="noaux_tc")
# deepseek_v2: V2-Lite's shape of attention (q_proj, no q rank), softmax
# scores, group_limited_greedy (9 experts in 3 groups of 3, the best 2 kept by
# their best expert, top-3 among their 6), never renormalized, scaled, 2
# shared experts.
DS2 = dict(hidden_size=32, intermediate_size=40, moe_intermediate_size=16, num_hidden_layers=3,
           num_attention_heads=4, num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=16,
           qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=9,
           num_experts_per_tok=3, topk_method="group_limited_greedy", n_group=3, topk_group=2,
           n_shared_experts=2, routed_scaling_factor=1.5, first_k_dense_replace=1,
           norm_topk_prob=False, rms_norm_eps=1e-6, attention_bias=False,
           rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                            "original_max_position_embeddings": 16, "beta_fast": 8.0,
                            "beta_slow": 1.0, "mscale": 0.707, "mscale_all_dim": 0.707})
# glm4_moe: GQA 4/2 with head_dim 16, RoPE on half of it, q/k/v biases,
# per-head q/k norm; 8 experts in 2 groups (1 kept), sigmoid + correction
# bias, renormalized top-2 times 1.5, a shared expert, layer 0 dense.
GLM = dict(hidden_size=32, intermediate_size=40, moe_intermediate_size=16, num_hidden_layers=3,
           num_attention_heads=4, num_key_value_heads=2, head_dim=16, n_routed_experts=8,
           num_experts_per_tok=2, n_group=2, topk_group=1, n_shared_experts=1,
           routed_scaling_factor=1.5, first_k_dense_replace=1, norm_topk_prob=True,
           attention_bias=True, use_qk_norm=True, rms_norm_eps=1e-5,
           rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                            "partial_rotary_factor": 0.5})
DS_TYPES = ("deepseek_v2", "deepseek_v3", "glm4_moe")
QWEN3_5_TYPES = ("qwen3_5_moe", "qwen3_5_moe_text")
LINEAR_TYPES = ("qwen3_next",) + QWEN3_5_TYPES


def V(name, model_type, base, dtype="float32", shard=None, legacy=False, what="", mxfp4=False,
      tol=TOL_LOGITS, **over):
    cfg = dict(COMMON)
    cfg.update(base)
    cfg.update(over)
    return dict(name=name, model_type=model_type, cfg=cfg, dtype=dtype, shard=shard, legacy=legacy,
                what=what, mxfp4=mxfp4, tol=tol)


VARIANTS = [
    V("mixtral_base", "mixtral", MIXTRAL,
      what="top-2 of 4 experts (softmax, renormalized), GQA 6 heads / 2 kv heads (1:3), head_dim 8"),
    V("mixtral_k1", "mixtral", MIXTRAL_S, num_experts_per_tok=1,
      what="top-1 of 4 experts: renormalized weight is exactly 1"),
    V("mixtral_kall", "mixtral", MIXTRAL_S, num_experts_per_tok=4,
      what="top_k == n_experts: every expert, weights = softmax over all"),
    V("mixtral_tied", "mixtral", MIXTRAL_S, tie_word_embeddings=True,
      what="tie_word_embeddings: no lm_head.weight in the file, logits use embed_tokens"),
    V("mixtral_bf16", "mixtral", MIXTRAL_S, dtype="bfloat16", legacy=True,
      what="BF16 weights; config.json in the older hub style (rope_theta, torch_dtype); "
           "reference computed in float32 from the rounded bf16 weights"),
    V("mixtral_f16", "mixtral", MIXTRAL_S, dtype="float16",
      what="F16 weights; reference computed in float32 from the rounded f16 weights"),
    V("mixtral_sharded", "mixtral", MIXTRAL_S, shard=40_000,
      what="sharded: model.safetensors.index.json + model-0000x-of-0000y.safetensors"),
    V("mixtral_swa", "mixtral", MIXTRAL_S, sliding_window=16,
      what="sliding_window 16 < 48 tokens: query i attends keys j with i-16 < j <= i "
           "(applied by transformers' eager mask)"),
    V("qwen2_moe_base", "qwen2_moe", QWEN2, legacy=True,
      what="6 experts top-2, norm_topk_prob false, shared expert (width 24) scaled by "
           "sigmoid(shared_expert_gate . x), qkv bias, GQA 1:1; older-style config.json with "
           "use_sliding_window false but sliding_window 16 (must be ignored)"),
    V("qwen2_moe_norm", "qwen2_moe", QWEN2, norm_topk_prob=True,
      what="as qwen2_moe_base with norm_topk_prob true"),
    V("qwen2_moe_dense", "qwen2_moe", QWEN2, num_hidden_layers=4, decoder_sparse_step=2,
      mlp_only_layers=[3],
      what="4 layers, decoder_sparse_step 2 + mlp_only_layers [3]: layer 1 MoE, layers 0, 2 "
           "(sparse step) and 3 (mlp_only) dense SwiGLU of width intermediate_size 40"),
    V("qwen3_moe_base", "qwen3_moe", QWEN3, legacy=True,
      what="8 experts top-3, norm_topk_prob true, per-head q/k RMSNorm (over head_dim), "
           "explicit head_dim 16 != hidden/heads 8, GQA 4/2; older-style config.json"),
    V("qwen3_moe_nonorm", "qwen3_moe", QWEN3, norm_topk_prob=False,
      what="as qwen3_moe_base with norm_topk_prob false"),
    V("qwen3_moe_dense", "qwen3_moe", QWEN3, num_hidden_layers=3, mlp_only_layers=[1],
      what="3 layers, mlp_only_layers [1]: layer 1 dense SwiGLU width 40"),
    V("olmoe_base", "olmoe", OLMOE,
      what="8 experts top-2, norm_topk_prob false, q/k RMSNorm over the whole projection, "
           "clip_qkv 1.5 (q, k after norm and v clamped), GQA 4/2"),
    V("olmoe_norm", "olmoe", OLMOE, norm_topk_prob=True, clip_qkv=None,
      what="norm_topk_prob true, clip_qkv null (no clamping)"),
    V("gpt_oss_base", "gpt_oss", GPT_OSS,
      what="gpt_oss: 4 layers alternating sliding (window 8) / full attention, per-head sinks, "
           "q/k/v/o biases, YaRN (factor 8, original context 64, correction range 1.6..5.2), router with bias (top-2 of 6 "
           "logits, softmax over the 2), fused interleaved gate_up experts with biases, clamped "
           "SwiGLU (limit 1.0 reached), head_dim 16, GQA 4/2; rope_parameters spelling"),
    V("gpt_oss_legacy", "gpt_oss", GPT_OSS, legacy=True, num_hidden_layers=3,
      layer_types=["full_attention", "sliding_attention", "sliding_attention"], sliding_window=5,
      swiglu_limit=2.0, num_local_experts=4, num_experts_per_tok=3, num_attention_heads=4,
      num_key_value_heads=1,
      rope_parameters={"rope_type": "yarn", "rope_theta": 1000.0, "factor": 4.0,
                       "beta_fast": 2.0, "beta_slow": 0.25, "truncate": True,
                       "original_max_position_embeddings": 40},
      what="gpt_oss in the released checkpoints' spelling (rope_theta and rope_scaling at the "
           "top level, torch_dtype): layer_types full, sliding, sliding with window 5, top-3 of 4, "
           "MQA (1 kv head), YaRN with truncate and its own betas, limit 2.0"),
    V("gpt_oss_mxfp4", "gpt_oss", GPT_OSS, legacy=True, mxfp4=True, tol=TOL_MXFP4,
      intermediate_size=32, num_hidden_layers=2, num_local_experts=4,
      what="gpt_oss as released: experts in MXFP4 (gate_up_proj_blocks [E][2F][D/32][16] + "
           "_scales, down_proj_blocks [E][D][F/32][16] + _scales, U8; quantization_config "
           "mxfp4), quantized with the gguf package's port of ggml's quantizer and repacked to "
           "transformers' nibble order; reference: transformers dequantizing them (to float32 on "
           "CPU, convert_moe_packed_tensors) and running the float model"),
    V("qwen3_next_base", "qwen3_next", QWEN3_NEXT,
      what="qwen3_next: layers linear, full, linear, full attention; Gated DeltaNet with 2 key "
           "heads / 4 value heads, Dk 8, Dv 12, conv kernel 4; full attention with the sigmoid "
           "output gate, per-head q/k norm, RoPE on 4 of 16 dims (partial_rotary_factor 0.25); "
           "zero-centred norms (1 + w); 6 experts top-2 renormalized, shared expert (24) with "
           "its sigmoid gate; rope_parameters spelling"),
    V("qwen3_next_legacy", "qwen3_next", QWEN3_NEXT, legacy=True, layer_types=None,
      mlp_only_layers=[1], linear_num_value_heads=2, linear_conv_kernel_dim=3,
      num_key_value_heads=1,
      rope_parameters={"rope_type": "default", "rope_theta": 1000.0, "partial_rotary_factor": 0.5},
      what="qwen3_next in the released checkpoints' spelling (rope_theta, partial_rotary_factor "
           "and full_attention_interval 4 at the top level, no layer_types: layers 0-2 linear, 3 "
           "full); mlp_only_layers [1] (a dense MLP of 40), one value head per key head, conv "
           "kernel 3, MQA, RoPE on 8 of 16 dims"),
    V("qwen3_next_bf16", "qwen3_next", QWEN3_NEXT, dtype="bfloat16", num_hidden_layers=3,
      layer_types=["linear_attention", "linear_attention", "full_attention"],
      what="qwen3_next with BF16 weights (the released checkpoints' type; the DeltaNet's "
           "conv1d, A_log, dt_bias and gated norm widened at load); two linear layers in a "
           "row; reference computed in float32 from the rounded bf16 weights"),
    V("qwen3_5_moe_vl", "qwen3_5_moe", QWEN3_5,
      what="qwen3_5_moe as released: config.json with text_config and vision_config, the text "
           "model under model.language_model.* beside model.visual.* (a 1-block vision tower, "
           "not loaded), experts fused (experts.gate_up_proj [E][2F][D], experts.down_proj "
           "[E][D][F]); layers linear, full, linear, full; DeltaNet in_proj_qkv/_z/_b/_a with 2 "
           "key heads / 4 value heads, Dk 8, Dv 12, conv kernel 4; gated attention, RoPE on 8 "
           "of 16 dims, mrope_section [2, 1, 1]; 6 experts top-2 renormalized, shared expert "
           "(24) with its sigmoid gate; reference: Qwen3_5MoeForCausalLM on the same files"),
    V("qwen3_5_moe_text", "qwen3_5_moe_text", QWEN3_5, num_hidden_layers=3,
      layer_types=["linear_attention", "linear_attention", "full_attention"],
      linear_num_value_heads=2, num_key_value_heads=1, linear_conv_kernel_dim=3,
      what="qwen3_5_moe's text model alone (Qwen3_5MoeForCausalLM: model_type "
           "qwen3_5_moe_text, model.layers.*, experts one by one as save_pretrained writes "
           "them); two linear layers in a row, one value head per key head, conv kernel 3, MQA"),
    V("qwen3_5_moe_legacy", "qwen3_5_moe", QWEN3_5, legacy=True, dtype="bfloat16",
      layer_types=None,
      rope_parameters={"rope_type": "default", "rope_theta": 1000.0, "partial_rotary_factor": 0.25,
                       "mrope_section": [1, 1, 0], "mrope_interleaved": True},
      what="qwen3_5_moe with BF16 weights and text_config in the older spelling (rope_theta, "
           "partial_rotary_factor at its top level, mrope_section/mrope_interleaved in "
           "rope_scaling, full_attention_interval 4 and no layer_types: layers 0-2 linear, 3 "
           "full); RoPE on 4 of 16 dims"),
    V("deepseek_v3_base", "deepseek_v3", DS3,
      what="deepseek_v3: latent attention (q_lora_rank 24, kv_lora_rank 16, heads 8 + 8 rotary, "
           "values 12), YaRN (factor 4, original context 16) with mscale = mscale_all_dim 0.8 "
           "(on the softmax scale), interleaved rotary dims; scoring_func / topk_method as "
           "released; 8 experts in 4 groups, best 2 groups (sum "
           "of their best two), sigmoid + e_score_correction_bias, renormalized top-2 x 2.5, "
           "a shared expert, layer 0 dense (40); rope_parameters spelling"),
    V("deepseek_v3_noq", "deepseek_v3", DS3, legacy=True, q_lora_rank=None,
      rope_interleave=False, n_group=1, topk_group=1, n_shared_experts=2, routed_scaling_factor=1.0,
      norm_topk_prob=False, first_k_dense_replace=0, num_hidden_layers=2,
      rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
      what="deepseek_v3 without q_lora_rank (q_proj), rotary dims in halves (rope_interleave "
           "false), default RoPE, no groups, top-2 not renormalized, no scale, 2 shared experts "
           "(FFN 32), every layer MoE; released spelling (rope_theta at the top level); the "
           "checkpoint carries a multi-token-prediction layer (model.layers.2.*) that is not "
           "loaded"),
    V("deepseek_v2_base", "deepseek_v2", DS2, legacy=True,
      what="deepseek_v2 (V2-Lite's attention: q_proj, latent 16), YaRN with mscale = "
           "mscale_all_dim 0.707 given as rope_scaling {type: yarn} (released spelling); softmax "
           "scores, group_limited_greedy: 9 experts in 3 groups scored by their best, 2 kept; "
           "top-3 never renormalized, x 1.5; 2 shared experts; layer 0 dense"),
    V("deepseek_v2_bf16", "deepseek_v2", DS2, dtype="bfloat16", num_hidden_layers=2,
      topk_method="greedy", n_group=1, topk_group=1, q_lora_rank=12,
      what="deepseek_v2 with BF16 weights (the released checkpoints' type: kv_b_proj read row "
           "by row in BF16 for the absorbed attention, norms widened at load), q_lora_rank 12, "
           "topk_method greedy; reference computed in float32 from the rounded bf16 weights"),
    V("glm4_moe_base", "glm4_moe", GLM,
      what="glm4_moe: GQA 4/2, head_dim 16 with RoPE on 8 (partial_rotary_factor 0.5), q/k/v "
           "biases, per-head q/k norm; 8 experts in 2 groups (1 kept), sigmoid + correction "
           "bias, renormalized top-2 x 1.5, a shared expert, layer 0 dense; rope_parameters "
           "spelling"),
    V("glm4_moe_legacy", "glm4_moe", GLM, legacy=True, use_qk_norm=False, attention_bias=False,
      n_group=1, topk_group=1, num_experts_per_tok=3, routed_scaling_factor=1.0,
      rope_parameters={"rope_type": "default", "rope_theta": 1000.0, "partial_rotary_factor": 0.25},
      what="glm4_moe in the released spelling (rope_theta and partial_rotary_factor at the top "
           "level): no biases, no q/k norm, RoPE on 4 of 16 dims, no groups, top-3"),
]

# Older hub configs (what real checkpoints on the Hub carry): rope_theta at the
# top level, torch_dtype instead of dtype, no layer_types.
LEGACY_EXTRA = {
    "qwen2_moe": {"use_sliding_window": False, "sliding_window": 16, "max_window_layers": 2},
    "qwen3_moe": {"use_sliding_window": False, "sliding_window": 16},
    "qwen3_next": {"full_attention_interval": 4},
    "qwen3_5_moe": {"full_attention_interval": 4},
}

# ---------------------------------------------------------------- helpers

TORCH_DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def randomize(model, gen):
    """Weights far from 0/1: linear ~ N(0, 1/in), norms 1 + 0.1 N, biases
    0.2 N, embeddings N(0, 1), router gates N(0, 9/D) (router logits ~ 3 sd,
    decisive), lm_head N(0, 4/D)."""
    def rn(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float32)

    zero_centred = model.config.model_type in LINEAR_TYPES
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = p.shape
            if ".visual." in name or name.startswith("visual."):
                continue  # the vision tower is never run: transformers' init is enough
            if zero_centred and name.endswith("norm.weight") and "linear_attn" not in name:
                val = 0.3 * rn(shape)  # Qwen3NextRMSNorm: x * (1 + w)
            elif name.endswith("linear_attn.A_log"):
                val = -1.5 + 0.5 * rn(shape)  # decay exp(-exp(A_log) softplus(.)) ~ 0.8
            elif name.endswith("linear_attn.dt_bias"):
                val = 0.5 * rn(shape)
            elif name.endswith("linear_attn.conv1d.weight"):
                val = 0.6 * rn(shape)  # [C][1][K]
            elif name.endswith("norm.weight"):
                val = 1.0 + 0.1 * rn(shape)
            elif name.endswith(".bias"):
                val = 0.2 * rn(shape)
            elif "embed_tokens" in name:
                # tied: logits = h . E; a large E makes every token predict itself
                val = rn(shape) * (0.4 if model.config.tie_word_embeddings else 1.0)
            elif name.startswith("lm_head"):
                val = rn(shape) * (2.0 / math.sqrt(shape[1]))
            elif name.endswith("shared_expert_gate.weight"):
                val = rn(shape) * (1.0 / math.sqrt(shape[1]))
            elif name.endswith("self_attn.sinks"):
                val = 1.0 + 1.5 * rn(shape)  # gpt_oss: far from 0 (a sink of -inf is none)
            elif name.endswith("_proj_bias"):
                val = 0.5 * rn(shape)  # gpt_oss expert biases [E][2F], [E][D]
            elif name.endswith("router.weight"):
                val = rn(shape) * (3.0 / math.sqrt(shape[1]))  # gpt_oss router [E][D]
            elif model.config.model_type == "gpt_oss" and name.endswith("experts.gate_up_proj"):
                val = rn(shape) * (1.5 / math.sqrt(shape[1]))  # [E][D][2F]: x @ W
            elif model.config.model_type == "gpt_oss" and name.endswith("experts.down_proj"):
                val = rn(shape) * (1.0 / math.sqrt(shape[1]))  # [E][F][D]: h @ W
            elif name.endswith("gate.weight") and p.dim() == 2 and "shared" not in name:
                sig = model.config.model_type in ("deepseek_v3", "glm4_moe")  # sigmoid: keep off 0/1
                val = rn(shape) * ((1.5 if sig else 3.0) / math.sqrt(shape[1]))  # router [E][D]
            elif name.endswith("experts.gate_up_proj"):
                val = rn(shape) * (1.0 / math.sqrt(shape[2]))  # [E][2F][D]
            elif name.endswith("experts.down_proj"):
                val = rn(shape) * (1.0 / math.sqrt(shape[2]))  # [E][D][F]
            elif p.dim() == 2:
                val = rn(shape) * (1.0 / math.sqrt(shape[1]))  # Linear [out][in]
            else:
                raise RuntimeError(f"no rule to randomize {name} {tuple(shape)}")
            p.copy_(val)
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):  # selection only: make it decide
                b.copy_(0.3 * rn(b.shape))


def make_legacy_config(path, model_type, save_dtype):
    with open(path) as f:
        c = json.load(f)
    if model_type == "qwen3_5_moe":  # the text model's fields, in the older spelling
        t = c["text_config"]
        rp = t.pop("rope_parameters")
        t["rope_theta"] = rp.pop("rope_theta")
        t["partial_rotary_factor"] = rp.pop("partial_rotary_factor")
        t["rope_scaling"] = rp  # rope_type default, mrope_section, mrope_interleaved
        t.pop("layer_types", None)
        t.update(LEGACY_EXTRA[model_type])
        c["torch_dtype"] = c.pop("dtype", save_dtype)
        with open(path, "w") as f:
            json.dump(c, f, indent=2, sort_keys=True)
            f.write("\n")
        return
    rp = c.pop("rope_parameters")
    c["rope_theta"] = rp.pop("rope_theta")
    c["torch_dtype"] = c.pop("dtype", save_dtype)
    if model_type == "gpt_oss" or (model_type in DS_TYPES and rp["rope_type"] != "default"):
        # released checkpoints: rope_scaling at the top level (DeepSeek's say "type")
        if model_type in DS_TYPES:
            rp["type"] = rp.pop("rope_type")
        c["rope_scaling"] = rp
    else:
        assert rp["rope_type"] == "default", rp
        c.pop("layer_types", None)
        if "partial_rotary_factor" in rp:  # qwen3_next's released checkpoints
            c["partial_rotary_factor"] = rp.pop("partial_rotary_factor")
    c.update(LEGACY_EXTRA.get(model_type, {}))
    with open(path, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")


class Probe:
    """Forward hooks that record what shows a switch is live: router logits
    (gap between the K-th and K+1-th), top-k weight sums, clipped fractions,
    shared-expert gate values."""

    def __init__(self, model, cfg):
        self.router_gaps = []
        self.topk_sums = []
        self.clip = {"q": [0, 0], "k": [0, 0], "v": [0, 0]}
        self.shared_gate = []
        self.handles = []
        self.clamp = [0, 0, 0]  # gpt_oss: gates above the limit, ups outside it, values
        self.patched = []
        self.clip_val = cfg.get("clip_qkv")
        for name, mod in model.named_modules():
            cls = type(mod).__name__
            if cls.endswith("TopKRouter"):
                self.handles.append(mod.register_forward_hook(self._router))
            if cls in ("DeepseekV2TopkRouter", "DeepseekV3TopkRouter", "Glm4MoeTopkRouter"):
                self.handles.append(mod.register_forward_hook(self._group_router))
            if name.endswith("shared_expert_gate"):
                self.handles.append(mod.register_forward_hook(self._sgate))
            if cls == "GptOssExperts":
                orig = mod._apply_gate

                def gate(gu, orig=orig, lim=mod.limit):
                    self.clamp[0] += int((gu[..., ::2] > lim).sum())
                    self.clamp[1] += int((gu[..., 1::2].abs() > lim).sum())
                    self.clamp[2] += gu[..., ::2].numel()
                    return orig(gu)
                mod._apply_gate = gate
                self.patched.append(mod)
            if self.clip_val and cls == "OlmoeAttention":
                self.handles.append(mod.q_norm.register_forward_hook(self._clipper("q")))
                self.handles.append(mod.k_norm.register_forward_hook(self._clipper("k")))
                self.handles.append(mod.v_proj.register_forward_hook(self._clipper("v")))

    def _router(self, mod, inp, out):
        logits, scores, idx = out
        k, e = mod.top_k, mod.num_experts
        if k < e:
            s = torch.sort(logits.float(), dim=-1, descending=True).values
            self.router_gaps.append(float((s[:, k - 1] - s[:, k]).min()))
        self.topk_sums.extend(scores.sum(-1).tolist())

    def _group_router(self, mod, inp, out):
        """Gaps of both choices: the topk_group-th against the next group score,
        and the K-th against the next selection score among the kept groups."""
        logits, w, idx = out
        v2 = type(mod).__name__ == "DeepseekV2TopkRouter"
        # softmax is monotonic: its choices (and their gaps) are the logits'
        s = logits.float() if v2 else torch.sigmoid(logits.float())
        if not v2:
            s = s + mod.e_score_correction_bias
        G = mod.num_group or 1
        if G > 1 and (not v2 or mod.topk_method == "group_limited_greedy"):
            g = s.view(s.shape[0], G, -1)
            gs = g.max(-1).values if v2 else g.topk(2, dim=-1)[0].sum(-1)
            if mod.topk_group < G:
                srt = torch.sort(gs, -1, descending=True).values
                self.router_gaps.append(float((srt[:, mod.topk_group - 1] - srt[:, mod.topk_group]).min()))
            keep = torch.zeros_like(gs).scatter_(1, torch.topk(gs, mod.topk_group, -1)[1], 1)
            s = s.masked_fill(~keep.repeat_interleave(g.shape[-1], -1).bool(), float("-inf"))
        srt = torch.sort(s, -1, descending=True).values
        k = mod.top_k
        if torch.isfinite(srt[:, k]).all():
            self.router_gaps.append(float((srt[:, k - 1] - srt[:, k]).min()))
        self.topk_sums.extend(w.sum(-1).tolist())

    def _sgate(self, mod, inp, out):
        self.shared_gate.extend(torch.sigmoid(out).flatten().tolist())

    def _clipper(self, which):
        def f(mod, inp, out):
            self.clip[which][0] += int((out.abs() > self.clip_val).sum())
            self.clip[which][1] += out.numel()
        return f

    def remove(self):
        for h in self.handles:
            h.remove()
        for mod in self.patched:
            del mod._apply_gate


def greedy(model, prompt, n):
    """Greedy decode with the KV cache, one token a step, exactly as the C test
    does: returns ids and the [n][V] logits each id was the argmax of."""
    ids, rows = [], []
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([prompt]), past_key_values=cache, use_cache=True)
        for i in range(n):
            row = out.logits[0, -1].float()
            tok = int(torch.argmax(row))
            ids.append(tok)
            rows.append(row.clone())
            if i + 1 < n:
                out = model(input_ids=torch.tensor([[tok]]), past_key_values=cache, use_cache=True)
    return ids, torch.stack(rows)


def top2_gap(rows):
    s = torch.sort(rows, dim=-1, descending=True).values
    return float((s[:, 0] - s[:, 1]).min())


def rel_err(a, b):
    """max over rows of max|a-b| / max|b| (the C test's measure)."""
    num = (a - b).abs().amax(-1)
    den = b.abs().amax(-1)
    return float((num / den).max())


MXFP4_TENSORS = ("experts.gate_up_proj", "experts.down_proj")
MXFP4_KEEP = ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]


def mxfp4_hf(wt):
    """[E][R][C] float (rows = outputs, blocks along C) -> transformers' MXFP4
    blocks [E][R][C/32][16] (byte i: element 2i low nibble, 2i+1 high) and
    scales [E][R][C/32] (E8M0), quantized with the gguf package's port of
    ggml's quantize_row_mxfp4_ref (whose block is u8 e, then byte j: element j
    low nibble, j+16 high)."""
    E, R, C = wt.shape
    q = gq.quantize(wt.reshape(-1, 32).numpy().astype(np.float32), GT.MXFP4).reshape(E, R, C // 32, 17)
    qs = q[..., 1:]
    codes = np.concatenate([qs & 15, qs >> 4], axis=-1)  # element order
    blocks = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(blocks)), torch.from_numpy(q[..., 0].copy())


def pack_mxfp4(d):
    """Rewrite a saved gpt_oss as the released checkpoints store it: the fused
    expert tensors (x @ W, [E][in][out]) as MXFP4 of W^T, and
    quantization_config in config.json."""
    path = os.path.join(d, "model.safetensors")
    sd = load_file(path)
    for k in list(sd):
        if k.endswith(MXFP4_TENSORS):
            b, sc = mxfp4_hf(sd.pop(k).float().transpose(1, 2).contiguous())
            sd[k + "_blocks"], sd[k + "_scales"] = b, sc
    save_file(sd, path, metadata={"format": "pt"})
    cpath = os.path.join(d, "config.json")
    with open(cpath) as f:
        c = json.load(f)
    c["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": MXFP4_KEEP}
    with open(cpath, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")


def fuse_experts(d):
    """Rewrite the experts as the released qwen3_5_moe checkpoints store them:
    per layer experts.gate_up_proj [E][2F][D] (each expert's gate rows, then
    its up rows) and experts.down_proj [E][D][F]."""
    path = os.path.join(d, "model.safetensors")
    sd = load_file(path)
    pre = {k.split(".experts.")[0] for k in sd if ".experts." in k}
    for p in sorted(pre):
        E = len({k for k in sd if k.startswith(p + ".experts.") and k.endswith(".gate_proj.weight")})
        w = {t: [sd.pop(f"{p}.experts.{j}.{t}.weight") for j in range(E)]
             for t in ("gate_proj", "up_proj", "down_proj")}
        sd[p + ".experts.gate_up_proj"] = torch.stack(
            [torch.cat([g, u], 0) for g, u in zip(w["gate_proj"], w["up_proj"])]).contiguous()
        sd[p + ".experts.down_proj"] = torch.stack(w["down_proj"]).contiguous()
    save_file(sd, path, metadata={"format": "pt"})


def add_mtp_layer(d, cfg):
    """Append what released DeepSeek-V3 checkpoints carry after the last layer:
    a multi-token-prediction layer model.layers.L.* (num_nextn_predict_layers
    1), which inference does not load (random values: nothing may read them)."""
    path = os.path.join(d, "model.safetensors")
    sd = load_file(path)
    L, D = cfg["num_hidden_layers"], cfg["hidden_size"]
    g = torch.Generator().manual_seed(7)
    pre = f"model.layers.{L}."
    for k, shape in (("enorm.weight", [D]), ("hnorm.weight", [D]), ("eh_proj.weight", [D, 2 * D]),
                     ("input_layernorm.weight", [D]), ("shared_head.norm.weight", [D]),
                     ("self_attn.kv_a_proj_with_mqa.weight", [24, D])):
        sd[pre + k] = torch.randn(shape, generator=g)
    save_file(sd, path, metadata={"format": "pt"})
    cpath = os.path.join(d, "config.json")
    with open(cpath) as f:
        c = json.load(f)
    c["num_nextn_predict_layers"] = 1
    with open(cpath, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")


def load_ref_model(d):
    m, info = AutoModelForCausalLM.from_pretrained(
        d, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager",
        output_loading_info=True)
    assert not info["missing_keys"], f"{d}: weights missing in transformers: {info['missing_keys']}"
    return m.eval()


def file_dtypes(d):
    out = {}
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".safetensors"):
            with safe_open(os.path.join(d, fn), "pt") as f:
                for k in f.keys():
                    dt = f.get_slice(k).get_dtype()
                    out[dt] = out.get(dt, 0) + 1
    return out


def file_keys(d):
    keys = []
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".safetensors"):
            with safe_open(os.path.join(d, fn), "pt") as f:
                keys.extend(f.keys())
    return keys


# ---------------------------------------------------------- sensitivity
# What a C implementation that got one switch wrong would show: the same ids
# through transformers with that switch mutated, as the C test's error
# measure. Each must be far above TOL_LOGITS or the fixture proves nothing.

def _rmsnorm(x, w, eps):
    x32 = x.float()
    return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps))


def mutations(v, rcfg):
    mt = v["model_type"]
    n_rep = rcfg.num_attention_heads // rcfg.num_key_value_heads
    E = rcfg.num_local_experts if mt in ("mixtral", "gpt_oss") else \
        rcfg.n_routed_experts if mt in DS_TYPES else rcfg.num_experts
    K = rcfg.num_experts_per_tok
    out = {}
    rp = dict(rcfg.rope_parameters)
    out["rope_theta x10"] = dict(cfg={"rope_parameters": dict(rp, rope_theta=rp["rope_theta"] * 10)})
    out["rms_norm_eps x10"] = dict(cfg={"rms_norm_eps": rcfg.rms_norm_eps * 10})
    if n_rep > 1 and rcfg.num_key_value_heads > 1:
        out["GQA kv head h % n_kv instead of h / n_rep"] = dict(gqa_tiled=True)
    if K > 1:
        out["top_k - 1"] = dict(cfg={"num_experts_per_tok": K - 1})
    if K < E:
        out["top_k + 1"] = dict(cfg={"num_experts_per_tok": K + 1})
    if mt == "mixtral" and 1 <= K < E:
        out["top-k weights not renormalized"] = dict(router_raw=True)
    if mt in QWEN3_5_TYPES:
        out["top-k weights not renormalized"] = dict(router_raw=True)
    elif mt not in ("mixtral", "gpt_oss", "deepseek_v2"):  # deepseek_v2's router ignores it
        out["norm_topk_prob flipped"] = dict(cfg={"norm_topk_prob": not rcfg.norm_topk_prob})
    if getattr(rcfg, "clip_qkv", None):
        out["clip_qkv ignored"] = dict(cfg={"clip_qkv": None})
    if mt == "mixtral" and rcfg.sliding_window:
        out["sliding_window ignored"] = dict(cfg={"sliding_window": None})
        out["sliding_window off by one (i-W <= j)"] = dict(cfg={"sliding_window": rcfg.sliding_window + 1})
    if v["legacy"] and mt == "qwen2_moe":
        out["sliding_window 16 applied (use_sliding_window is false)"] = dict(
            cfg={"sliding_window": 16, "layer_types": ["sliding_attention"] * rcfg.num_hidden_layers})
    if v["legacy"] and mt == "qwen3_moe":
        out["sliding_window 16 applied (use_sliding_window is false)"] = dict(cfg={"sliding_window": 16})
    if mt == "qwen2_moe":
        out["qkv bias ignored"] = dict(zero_bias=True)
    if mt in ("qwen2_moe",) + LINEAR_TYPES:
        out["shared_expert_gate ignored (gate 1)"] = dict(shared_gate_one=True)
        out["shared expert ignored"] = dict(shared_off=True)
    if mt in LINEAR_TYPES:
        prf = rp.get("partial_rotary_factor", 0.25)
        out["RoPE on every dim (partial_rotary_factor 1)"] = dict(
            cfg={"rope_parameters": dict(rp, partial_rotary_factor=1.0)})
        out["partial_rotary_factor doubled"] = dict(
            cfg={"rope_parameters": dict(rp, partial_rotary_factor=min(1.0, 2 * prf))})
        out["attention output gate ignored"] = dict(no_out_gate=True)
        out["zero-centred norms read as plain (x * w)"] = dict(plain_norms=True)
        out["q/k norm ignored"] = dict(qknorm="none")
        out["DeltaNet decay ignored (g = 0)"] = dict(no_decay=True)
        out["DeltaNet beta 1"] = dict(beta_one=True)
        out["DeltaNet conv kernel reversed"] = dict(conv_flip=True)
        out["DeltaNet output gate silu(z) ignored"] = dict(no_z_gate=True)
    if mt == "gpt_oss":
        L = rcfg.num_hidden_layers
        lt = list(rcfg.layer_types)
        rp = dict(rcfg.rope_parameters)
        out["top-k softmax -> softmax over all experts"] = dict(router_raw=True)
        out["attention sinks ignored"] = dict(no_sinks=True)
        out["router bias ignored"] = dict(zero_router_bias=True)
        out["expert biases ignored"] = dict(zero_expert_bias=True)
        out["qkv/o bias ignored"] = dict(zero_bias=True)
        out["sliding window ignored"] = dict(cfg={"layer_types": ["full_attention"] * L})
        out["window on every layer"] = dict(cfg={"layer_types": ["sliding_attention"] * L})
        out["layer types swapped"] = dict(cfg={"layer_types": [
            "full_attention" if t == "sliding_attention" else "sliding_attention" for t in lt]})
        out["sliding_window off by one (i-W <= j)"] = dict(cfg={"sliding_window": rcfg.sliding_window + 1})
        out["swiglu_limit ignored"] = dict(cfg={"swiglu_limit": 1e9})
        out["swiglu_alpha 1"] = dict(cfg={"swiglu_alpha": 1.0})
        out["YaRN off (default RoPE)"] = dict(cfg={"rope_parameters": {"rope_type": "default",
                                                                         "rope_theta": rp["rope_theta"]}})
        out["YaRN attention factor 1"] = dict(cfg={"rope_parameters": dict(rp, attention_factor=1.0)})
        out["YaRN truncate flipped"] = dict(cfg={"rope_parameters": dict(rp, truncate=not rp.get("truncate", True))})
        out["YaRN beta_fast x2"] = dict(cfg={"rope_parameters": dict(rp, beta_fast=rp["beta_fast"] * 2)})
    if mt in DS_TYPES:
        G, TG = rcfg.n_group or 1, rcfg.topk_group or 1
        if G > 1 and TG < G and (mt != "deepseek_v2" or rcfg.topk_method == "group_limited_greedy"):
            out["group limit off (topk_group = n_group)"] = dict(cfg={"topk_group": G})
            if mt != "deepseek_v2":
                out["group score = best expert (not sum of best two)"] = dict(group_max=True)
            else:
                out["topk_method greedy"] = dict(cfg={"topk_method": "greedy"})
        if mt != "deepseek_v2":
            out["e_score_correction_bias ignored"] = dict(zero_sel_bias=True)
        if rcfg.routed_scaling_factor != 1.0:
            out["routed_scaling_factor 1"] = dict(cfg={"routed_scaling_factor": 1.0})
        if rcfg.n_shared_experts:
            out["shared experts ignored"] = dict(shared_experts_off=True)
        if rcfg.first_k_dense_replace:
            out["dense layer 0 FFN ignored"] = dict(dense0_off=True)
        if rp["rope_type"] == "yarn":
            out["YaRN off (default RoPE)"] = dict(cfg={"rope_parameters": {
                "rope_type": "default", "rope_theta": rp["rope_theta"]}})
            out["mscale_all_dim ignored in the softmax scale"] = dict(plain_scale=True)
        if mt != "glm4_moe":
            if rcfg.q_lora_rank:
                out["q_a_layernorm ignored"] = dict(no_q_a_norm=True)
            out["kv_a_layernorm ignored"] = dict(no_kv_a_norm=True)
            if mt == "deepseek_v3":
                out["rope_interleave flipped"] = dict(cfg={"rope_interleave": not rcfg.rope_interleave})
        else:
            prf = rp.get("partial_rotary_factor", 0.5)
            out["RoPE on every dim (partial_rotary_factor 1)"] = dict(
                cfg={"rope_parameters": dict(rp, partial_rotary_factor=1.0)})
            if rcfg.attention_bias:
                out["qkv bias ignored"] = dict(zero_bias=True)
            if rcfg.use_qk_norm:
                out["q/k norm ignored"] = dict(qknorm="none")
    if mt in ("qwen3_moe", "olmoe"):
        out["q/k norm ignored"] = dict(qknorm="none")
        out["q/k norm per head <-> whole projection"] = dict(qknorm="swap")
    return out


DELTANETS = ("Qwen3NextGatedDeltaNet", "Qwen3_5MoeGatedDeltaNet")


def mt_of(m):
    return m.config.model_type


def mutated_logits(d, ids, mut):
    cfg = AutoConfig.from_pretrained(d)
    cfg = getattr(cfg, "text_config", cfg)  # qwen3_5_moe: the text model's
    for k, val in mut.get("cfg", {}).items():
        setattr(cfg, k, val)
    m = AutoModelForCausalLM.from_pretrained(d, config=cfg, dtype=torch.float32, attn_implementation="eager",
                                             experts_implementation="eager").eval()
    mod = sys.modules[type(m).__module__]
    saved_repeat = mod.repeat_kv
    if mut.get("gqa_tiled"):
        mod.repeat_kv = lambda h, n: h if n == 1 else h.repeat(1, n, 1, 1)
    hs = []
    eps = cfg.rms_norm_eps
    for name, sub in m.named_modules():
        cls = type(sub).__name__
        if mut.get("router_raw") and cls.endswith("TopKRouter"):
            def raw(module, inp, o):
                logits, scores, idx = o
                p = torch.softmax(logits.float(), -1)
                return logits, torch.gather(p, -1, idx), idx
            hs.append(sub.register_forward_hook(raw))
        if mut.get("no_sinks") and cls == "GptOssAttention":
            with torch.no_grad():
                sub.sinks.fill_(-1e30)
        if mut.get("zero_router_bias") and cls == "GptOssTopKRouter":
            with torch.no_grad():
                sub.bias.zero_()
        if mut.get("zero_expert_bias") and cls == "GptOssExperts":
            with torch.no_grad():
                sub.gate_up_proj_bias.zero_()
                sub.down_proj_bias.zero_()
        if mut.get("zero_bias") and mt_of(m) == "gpt_oss" and name.endswith("o_proj") and sub.bias is not None:
            with torch.no_grad():
                sub.bias.zero_()
        if mut.get("zero_bias") and name.endswith(("q_proj", "k_proj", "v_proj")) and sub.bias is not None:
            with torch.no_grad():
                sub.bias.zero_()
        if mut.get("no_out_gate") and cls in ("Qwen3NextAttention", "Qwen3_5MoeAttention"):
            def open_gate(module, inp, o, hd=m.config.head_dim):
                v = o.view(*o.shape[:-1], -1, 2 * hd).clone()
                v[..., hd:] = 1e4
                return v.view(o.shape)
            hs.append(sub.q_proj.register_forward_hook(open_gate))
        if mut.get("plain_norms") and cls in ("Qwen3NextRMSNorm", "Qwen3_5MoeRMSNorm"):
            with torch.no_grad():
                sub.weight.sub_(1.0)
        if mut.get("no_decay") and cls in DELTANETS:
            with torch.no_grad():
                sub.A_log.fill_(-1e4)
        if mut.get("beta_one") and cls == "Qwen3NextGatedDeltaNet":
            def b_big(module, inp, o, r=sub.num_v_heads // sub.num_k_heads):
                v = o.view(*o.shape[:-1], -1, 2 * r).clone()
                v[..., :r] = 1e4
                return v.view(o.shape)
            hs.append(sub.in_proj_ba.register_forward_hook(b_big))
        if mut.get("beta_one") and cls == "Qwen3_5MoeGatedDeltaNet":
            hs.append(sub.in_proj_b.register_forward_hook(lambda module, inp, o: torch.full_like(o, 1e4)))
        if mut.get("conv_flip") and cls in DELTANETS:
            with torch.no_grad():
                sub.conv1d.weight.copy_(sub.conv1d.weight.flip(-1))
        if mut.get("no_z_gate") and cls in ("Qwen3NextRMSNormGated", "Qwen3_5MoeRMSNormGated"):
            def plain(module, inp, o):
                x = inp[0].float()
                return module.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + module.variance_epsilon))
            hs.append(sub.register_forward_hook(plain))
        if mut.get("zero_sel_bias") and name.endswith("mlp.gate") and hasattr(sub, "e_score_correction_bias"):
            with torch.no_grad():
                sub.e_score_correction_bias.zero_()
        if mut.get("group_max") and cls in ("DeepseekV3TopkRouter", "Glm4MoeTopkRouter"):
            def gmax(module, inp, o):  # the same router with groups scored by their best
                x = inp[0].reshape(-1, module.hidden_dim)
                sc = torch.sigmoid(F_linear(x.float(), module.weight.float()))
                ch = sc + module.e_score_correction_bias
                g = ch.view(-1, module.num_group, module.num_experts // module.num_group).max(-1).values
                keep = torch.zeros_like(g).scatter_(1, torch.topk(g, module.topk_group, -1)[1], 1)
                ch = ch.masked_fill(~keep.repeat_interleave(module.num_experts // module.num_group, -1).bool(),
                                    float("-inf"))
                idx = torch.topk(ch, module.top_k, -1)[1]
                w = sc.gather(1, idx)
                if module.norm_topk_prob:
                    w = w / (w.sum(-1, keepdim=True) + 1e-20)
                return o[0], w * module.routed_scaling_factor, idx
            hs.append(sub.register_forward_hook(gmax))
        if mut.get("shared_experts_off") and name.endswith("mlp.shared_experts"):
            hs.append(sub.register_forward_hook(lambda module, inp, o: torch.zeros_like(o)))
        if mut.get("dense0_off") and name == "model.layers.0.mlp":
            hs.append(sub.register_forward_hook(lambda module, inp, o: torch.zeros_like(o)))
        if mut.get("plain_scale") and cls.endswith("Attention") and hasattr(sub, "qk_head_dim"):
            sub.scaling = sub.qk_head_dim ** -0.5
        if mut.get("no_q_a_norm") and name.endswith("q_a_layernorm"):
            hs.append(sub.register_forward_hook(lambda module, inp, o: inp[0]))
        if mut.get("no_kv_a_norm") and name.endswith("kv_a_layernorm"):
            hs.append(sub.register_forward_hook(lambda module, inp, o: inp[0]))
        if mut.get("shared_gate_one") and name.endswith("shared_expert_gate"):
            hs.append(sub.register_forward_hook(lambda module, inp, o: torch.full_like(o, 1e4)))
        if mut.get("shared_off") and name.endswith("shared_expert_gate"):
            hs.append(sub.register_forward_hook(lambda module, inp, o: torch.full_like(o, -1e4)))
        if mut.get("qknorm") and name.endswith(("q_norm", "k_norm")):
            hd = m.config.head_dim if hasattr(m.config, "head_dim") and m.config.head_dim else \
                m.config.hidden_size // m.config.num_attention_heads
            def qk(module, inp, o, hd=hd):
                x = inp[0]
                if mut["qknorm"] == "none":
                    return x
                w = module.weight
                if x.shape[-1] == hd:  # per head -> whole projection
                    flat = x.reshape(*x.shape[:-2], -1)
                    return _rmsnorm(flat, w.repeat(x.shape[-2]), eps).reshape(x.shape)
                heads = x.reshape(*x.shape[:-1], -1, hd)  # whole -> per head
                return _rmsnorm(heads, w.reshape(-1, hd), eps).reshape(x.shape)
            hs.append(sub.register_forward_hook(qk))
    try:
        with torch.no_grad():
            return m(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()
    finally:
        mod.repeat_kv = saved_repeat
        for h in hs:
            h.remove()


def sensitivity(v, d, rcfg, ids, full):
    res = {}
    for what, mut in mutations(v, rcfg).items():
        res[what] = rel_err(mutated_logits(d, ids, mut), full)
    return res


# ------------------------------------------------------------ one variant

def build(v, seed, debug=False):
    name, mt = v["name"], v["model_type"]
    d = os.path.join(OUT, name)
    torch.manual_seed(seed)
    if mt == "qwen3_5_moe":  # the vision-language model, as released
        cfg = AutoConfig.for_model(mt, text_config=dict(v["cfg"]), vision_config=QWEN3_5_VISION,
                                   tie_word_embeddings=v["cfg"]["tie_word_embeddings"])
        model = transformers.Qwen3_5MoeForConditionalGeneration._from_config(
            cfg, attn_implementation="eager", dtype=torch.float32)
    else:
        cfg = AutoConfig.for_model(mt, **v["cfg"])
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    randomize(model, gen)
    model.eval()

    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    save = model.to(TORCH_DTYPE[v["dtype"]])
    kw = {"max_shard_size": v["shard"]} if v["shard"] else {}
    save.save_pretrained(d, **kw)
    if v["legacy"]:
        make_legacy_config(os.path.join(d, "config.json"), mt, v["dtype"])
    if v["mxfp4"]:
        pack_mxfp4(d)
    if v["name"] == "qwen3_5_moe_vl":
        fuse_experts(d)
    if v["name"] == "deepseek_v3_noq":
        add_mtp_layer(d, v["cfg"])
    for fn in os.listdir(d):  # safetensors writes 0600
        os.chmod(os.path.join(d, fn), 0o644)
    del model, save

    # The reference is whatever transformers makes of the files on disk.
    ref = load_ref_model(d)
    rcfg = ref.config
    checks = {}

    # -- switches visible in the config / files
    keys = file_keys(d)
    checks["file_dtypes"] = file_dtypes(d)
    checks["files"] = sorted(f for f in os.listdir(d) if f.endswith((".safetensors", ".json")))
    checks["n_tensors"] = len(keys)
    if rcfg.tie_word_embeddings:
        assert "lm_head.weight" not in keys, "tied model saved lm_head"
        checks["tied"] = "lm_head.weight absent from the file"
    else:
        assert "lm_head.weight" in keys
    if v["shard"]:
        shards = [f for f in os.listdir(d) if f.startswith("model-") and f.endswith(".safetensors")]
        assert len(shards) >= 2 and os.path.exists(os.path.join(d, "model.safetensors.index.json"))
        checks["shards"] = len(shards)
    layers = []
    for i, layer in enumerate(ref.model.layers):
        mlp = type(layer.mlp).__name__
        layers.append("moe" if mt == "gpt_oss" or not mlp.endswith("MLP") else "dense")
    checks["layers"] = layers
    if mt in LINEAR_TYPES:
        checks["layer_types"] = list(rcfg.layer_types)
        checks["linear_attn_tensors"] = sorted({k.split("linear_attn.")[1] for k in keys if "linear_attn." in k})
        checks["rope_parameters"] = dict(rcfg.rope_parameters)
        checks["partial_rotary_dims"] = int(rcfg.head_dim * rcfg.rope_parameters["partial_rotary_factor"])
    if mt in QWEN3_5_TYPES:
        assert type(ref).__name__ == "Qwen3_5MoeForCausalLM" and "dense" not in layers
        vis = [k for k in keys if k.startswith("model.visual.")]
        assert bool(vis) == (mt == "qwen3_5_moe"), "vision tower"
        checks["vision_tensors"] = len(vis)
        checks["text_prefix"] = sorted({k.split("layers.")[0] for k in keys if ".layers." in k})
    if mt in ("qwen2_moe", "qwen3_moe", "qwen3_next"):
        assert ("dense" in layers) == (bool(rcfg.mlp_only_layers) or rcfg.decoder_sparse_step > 1)
    attn0 = next(l.self_attn for l in ref.model.layers if hasattr(l, "self_attn"))
    for pj in ("q_proj", "k_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj"):
        if getattr(attn0, pj, None) is not None:
            checks[pj + "_shape"] = list(getattr(attn0, pj).weight.shape)
    if getattr(attn0.q_proj, "bias", None) is not None:
        checks["qkv_bias_absmax"] = float(attn0.q_proj.bias.detach().abs().max())
        assert "model.layers.0.self_attn.q_proj.bias" in keys
    if hasattr(attn0, "q_norm"):
        checks["q_norm_shape"] = list(attn0.q_norm.weight.shape)
        checks["k_norm_shape"] = list(attn0.k_norm.weight.shape)
    sw = getattr(rcfg, "sliding_window", None)
    checks["sliding_window_effective"] = sw if sw else None

    # -- ids: reseed until the greedy continuation and routing have no near-ties
    V_ = rcfg.vocab_size
    for id_seed in range(1000 + seed, 1000 + seed + 200):
        g = torch.Generator().manual_seed(id_seed)
        ids = torch.randint(0, V_, (N_IDS,), generator=g).tolist()
        probe = Probe(ref, v["cfg"])
        with torch.no_grad():
            full = ref(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()  # [T][V]
        full_probe = probe
        probe.remove()
        probe = Probe(ref, v["cfg"])
        gen_ids, gen_logits = greedy(ref, ids[:N_PROMPT], N_GEN)
        probe.remove()
        gap = top2_gap(gen_logits)
        rgaps = full_probe.router_gaps + probe.router_gaps
        rgap = min(rgaps) if rgaps else None
        if gap > GAP_MIN and (rgap is None or rgap > GAP_MIN) and len(set(gen_ids)) >= MIN_DISTINCT:
            break
        print(f"  {name}: ids seed {id_seed}: greedy gap {gap:.2e}, router gap {rgap}, "
              f"{len(set(gen_ids))} distinct greedy ids; reseeding")
    else:
        raise RuntimeError(f"{name}: no ids seed without near-ties")
    checks["greedy_min_top2_gap"] = gap
    checks["router_min_kth_gap"] = rgap
    checks["greedy_distinct_ids"] = len(set(gen_ids))

    sums = torch.tensor(full_probe.topk_sums)
    if sums.numel():
        checks["topk_weight_sum_min_max"] = [float(sums.min()), float(sums.max())]
    if full_probe.shared_gate:
        sg = torch.tensor(full_probe.shared_gate)
        checks["shared_gate_sigmoid_min_max"] = [float(sg.min()), float(sg.max())]
    if full_probe.clamp[2]:
        fr = [full_probe.clamp[0] / full_probe.clamp[2], full_probe.clamp[1] / full_probe.clamp[2]]
        checks["swiglu_clamped_fraction_gate_up"] = fr
        assert fr[0] > 0.01 and fr[1] > 0.01, f"swiglu_limit clamps too little: {fr}"
    if v["mxfp4"]:  # what transformers computes with: the blocks dequantized to f32
        from transformers.integrations.mxfp4 import convert_moe_packed_tensors
        sd = load_file(os.path.join(d, "model.safetensors"))
        assert not any(k.endswith(MXFP4_TENSORS) for k in sd), "float experts left in the file"
        for i, layer in enumerate(ref.model.layers):
            for t in ("gate_up_proj", "down_proj"):
                k = f"model.layers.{i}.mlp.experts.{t}"
                want = convert_moe_packed_tensors(sd[k + "_blocks"], sd[k + "_scales"], dtype=torch.float32)
                got = getattr(layer.mlp.experts, t)
                assert got.dtype == torch.float32 and torch.equal(got.data, want), (k, got.dtype)
        checks["mxfp4_dequantized"] = "float32, equal to convert_moe_packed_tensors(dtype=float32)"
    if mt == "gpt_oss":
        checks["layer_types"] = list(rcfg.layer_types)
        checks["rope_parameters"] = dict(rcfg.rope_parameters)
        checks["sinks_absmin"] = float(min(l.self_attn.sinks.detach().abs().min() for l in ref.model.layers))
    if full_probe.clip_val:
        checks["clipped_fraction"] = {k: c[0] / c[1] for k, c in full_probe.clip.items()}
        assert all(c[0] > 0 for c in full_probe.clip.values()), "clip_qkv clips nothing"

    # -- sanity of the reference itself
    with torch.no_grad():
        # full forward vs greedy prefix through the cache
        pre = ref(input_ids=torch.tensor([ids[:N_PROMPT] + gen_ids[:N_GEN - 1]]), use_cache=False).logits[0]
        checks["hf_cache_vs_full_rel"] = rel_err(gen_logits, pre[N_PROMPT - 1:].float())
        # model.generate agrees with the manual loop
        # an explicit mask: with pad_token_id 0, generate() would mask a prompt's id 0 as padding
        out = ref.generate(torch.tensor([ids[:N_PROMPT]]), attention_mask=torch.ones(1, N_PROMPT, dtype=torch.long),
                           do_sample=False, max_new_tokens=N_GEN,
                           min_new_tokens=N_GEN, eos_token_id=None, pad_token_id=0)
        assert out[0, N_PROMPT:].tolist() == gen_ids, "generate() disagrees with the manual loop"
    if mt == "mixtral" and sw:
        # the window changes positions >= window and nothing before
        nowin = AutoConfig.from_pretrained(d)
        nowin.sliding_window = None
        m2 = AutoModelForCausalLM.from_pretrained(d, config=nowin, dtype=torch.float32,
                                                  attn_implementation="eager").eval()
        with torch.no_grad():
            f2 = m2(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()
        diff = (f2 - full).abs().amax(-1)
        checks["window_effect_before_after"] = [float(diff[:sw].max()), float(diff[sw:].max())]
        assert diff[:sw].max() < 1e-5 and diff[sw:].max() > 1e-2, diff
    if mt in ("qwen2_moe", "qwen3_moe") and v["legacy"]:
        assert not getattr(rcfg, "sliding_window", None), "legacy config turned the window on"

    if mt in QWEN3_5_TYPES:
        # multimodal RoPE on text positions: the sections must change nothing
        rp = dict(rcfg.rope_parameters)
        other = list(reversed(rp.get("mrope_section", [11, 11, 10])))
        e = rel_err(mutated_logits(d, ids, dict(cfg={"rope_parameters": dict(rp, mrope_section=other)})), full)
        checks["mrope_section_reversed_rel_err"] = e
        assert e < 1e-6, f"mrope_section changes text logits by {e}"
    if mt == "qwen3_5_moe":
        # the whole vision-language model on text ids computes what its text model does
        vl = transformers.Qwen3_5MoeForConditionalGeneration.from_pretrained(
            d, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager").eval()
        with torch.no_grad():
            vlf = vl(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()
        checks["vl_model_vs_text_model_rel_err"] = rel_err(vlf, full)
        assert checks["vl_model_vs_text_model_rel_err"] < 1e-6
        del vl

    # -- what getting each switch wrong would cost (must be >> the tolerance)
    sens = sensitivity(v, d, rcfg, ids, full)
    checks["sensitivity_rel_err"] = sens
    for what, e in sens.items():
        if e < SENS_MIN and what not in SENS_EXEMPT:
            raise RuntimeError(f"{name}: '{what}' changes logits by only {e:.2e}: the fixture would not see it")

    # -- write the reference
    blob = torch.cat([full, gen_logits]).contiguous().numpy().astype("<f4")
    with open(os.path.join(d, "ref_logits.bin"), "wb") as f:
        f.write(blob.tobytes())
    sizes = {fn: os.path.getsize(os.path.join(d, fn)) for fn in sorted(os.listdir(d))}
    refj = {
        "variant": name,
        "model_type": mt,
        "what": v["what"],
        "weights_dtype": v["dtype"],
        "vocab": V_,
        "ids": ids,
        "greedy_prompt_len": N_PROMPT,
        "greedy_ids": gen_ids,
        "logits_bin": {
            "file": "ref_logits.bin",
            "dtype": "float32 little-endian",
            "full": {"offset": 0, "shape": [N_IDS, V_],
                     "what": "logits of one forward over ids (all positions)"},
            "greedy": {"offset": N_IDS * V_ * 4, "shape": [N_GEN, V_],
                       "what": "row i: logits whose argmax is greedy_ids[i] (prompt ids[:greedy_prompt_len], "
                               "then one token a step through the KV cache)"},
        },
        "tolerance": {"logits_rel": v["tol"], "incremental_rel": TOL_INCREMENTAL,
                      "measure": "per row max|a-b| / max|ref|"},
        "seeds": {"weights": seed, "ids": id_seed},
        "checks": checks,
        "bytes": sizes,
        "generator": {"torch": torch.__version__, "transformers": transformers.__version__,
                      "attn_implementation": "eager", "experts_implementation": "eager",
                      "math": "float32 CPU"},
    }
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(refj, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, fn)) for fn in os.listdir(d))
    print(f"{name:18s} {total/1024:7.1f} KiB  layers={layers} greedy_gap={gap:.3g} router_gap={rgap if rgap is None else round(rgap, 4)}"
          f"  distinct={len(set(gen_ids))}")
    for k in ("sensitivity_rel_err", "clipped_fraction", "topk_weight_sum_min_max", "shared_gate_sigmoid_min_max",
              "window_effect_before_after", "hf_cache_vs_full_rel"):
        if k in checks:
            print(f"    {k}: {checks[k]}")
    if debug:
        dump_debug(ref, ids, d)
    return total


def dump_debug(model, ids, d):
    """Per-layer hidden states of the full forward -> /tmp/moe_debug/<variant>/
    (raw f32 [T][D] files: embed.bin, layer<i>_attn.bin (after attention
    residual), layer<i>_out.bin, final_norm.bin) for comparing with the C code."""
    out = os.path.join("/tmp/moe_debug", os.path.basename(d))
    os.makedirs(out, exist_ok=True)
    saved = {}

    def hook(tag):
        def f(mod, inp, o):
            t = o[0] if isinstance(o, tuple) else o
            saved[tag] = t.detach()[0].float().numpy()
        return f

    hs = []
    for i, layer in enumerate(model.model.layers):
        mixer = layer.self_attn if hasattr(layer, "self_attn") else layer.linear_attn
        hs.append(mixer.register_forward_hook(hook(f"layer{i}_attnout")))
        hs.append(layer.mlp.register_forward_hook(hook(f"layer{i}_mlpout")))
        hs.append(layer.register_forward_hook(hook(f"layer{i}_out")))
    hs.append(model.model.embed_tokens.register_forward_hook(hook("embed")))
    hs.append(model.model.norm.register_forward_hook(hook("final_norm")))
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]), use_cache=False)
    for h in hs:
        h.remove()
    for k, a in saved.items():
        a.astype("<f4").tofile(os.path.join(out, k + ".bin"))
    print(f"    debug: wrote {len(saved)} tensors to {out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="variant names to (re)generate")
    ap.add_argument("--debug", nargs="*", default=[], help="also dump per-layer hidden states")
    a = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    os.environ.setdefault("TQDM_DISABLE", "1")
    names = [v["name"] for v in VARIANTS]
    for n in (a.only or []) + a.debug:
        if n not in names:
            sys.exit(f"unknown variant {n}; known: {' '.join(names)}")
    total = 0
    for i, v in enumerate(VARIANTS):
        if a.only and v["name"] not in a.only:
            continue
        total += build(v, seed=100 + i, debug=v["name"] in a.debug)
    print(f"total {total/1024:.1f} KiB")


if __name__ == "__main__":
    main()
