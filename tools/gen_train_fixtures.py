#!/usr/bin/env python3
"""gen_train_fixtures.py - PyTorch reference for training: initial weights, data,
loss parts, step-0 gradients and a 10-step AdamW trajectory.

Writes tests/fixtures/train/<variant>/ for every variant below (and, with
gpt_oss, tests/fixtures/train/gpt_oss_data/train.bin: write_cli_shard):
  config.json, model.safetensors, generation_config.json
                   initial weights, float32, as transformers' save_pretrained writes
                   them (plus gate.e_score_correction_bias for sigmoid_bias)
  batch.json       ids [STEPS][B][T+1] (inputs ids[:, :-1], targets ids[:, 1:]) and
                   every hyperparameter below
  grads.safetensors  step 0: d(total loss)/d(every parameter), unclipped, same names
                   and shapes as model.safetensors
  ref.json         step-0 loss and parts (per layer too) and routing, the 10-step
                   trajectory (lr, loss parts, grad norm, expert loads), a summary
                   of the final weights, checks and suggested tolerances

Definition (docs/TRAINING.md "Losses and optimizer" says the same):

  Forward: the transformers model (eager attention, eager experts, float32, no
  dropout, no router jitter), batch [B][T], no padding, no KV cache.
  CE = mean over all B*T targets of -log softmax(logits)[target].
  Per MoE layer, over its N = B*T tokens (n = b*T + t), router logits
  z = x . W_gate^T [N][E], p = softmax(z) (sigmoid(z) for score "sigmoid"):
    aux_l = E * sum_i f_i * P_i   f_i = (number of (token, slot) pairs the router
                                  chose for expert i) / (N*K), a constant (no
                                  gradient); P_i = mean_n p[n,i]
    z_l   = mean_n (logsumexp_e z[n,e])^2
    kl_l  = sum_i (1/E) * log((1/E) / P_i)
  aux_loss, z_loss, kl_loss = mean over MoE layers (dense layers do not count).
  total = CE + ALPHA*aux_loss + BETA*z_loss + gamma*kl_loss.
  Which pairs count in f_i: token choice: the top-K the model chose (capacity:
  before any drop); sigmoid_bias: the top-K of sigmoid(z) + bias; expert_choice:
  each token's top-K of z as if routing were token choice (what each expert takes
  is fixed at C, so counting that would give a constant loss); hash: no router,
  aux = z = kl = 0.

  Optimizer, per step s = 0..STEPS-1 (torch.optim.AdamW, one tensor at a time):
    g = d total / d theta (all parameters; a parameter the loss does not reach
        has g = 0)
    clip: norm = sqrt(sum over all g of g^2); g *= min(1, CLIP / (norm + 1e-6))
    lr_s = PEAK*(s+1)/WARMUP for s < WARMUP, else
           MIN_LR + (PEAK-MIN_LR)/2 * (1 + cos(pi * (s-WARMUP)/(STEPS-WARMUP)))
    theta *= 1 - lr_s*WD          (only tensors that are 2-D or more in the file:
                                   linear weights, embeddings, lm_head, routers,
                                   expert matrices, shared_expert_gate; never
                                   norms, sinks or biases, gpt_oss's stacked
                                   expert biases [E][n] included)
    m = b1*m + (1-b1)*g ; v = b2*v + (1-b2)*g^2       (m, v start at 0)
    theta -= (lr_s / (1-b1^(s+1))) * m / (sqrt(v) / sqrt(1-b2^(s+1)) + EPS)
  sigmoid_bias only, after the step: bias_i += BIAS_RATE * sign(N*K/E - load_i),
  load_i = pairs routed to expert i in this step's forward, sign(0) = 0; the bias
  is not a parameter (no gradient, no AdamW).

Routing kinds (all but "hf" replace the router module's forward in Python; the
experts module of transformers does the rest; a slot whose index is E (one past
the last expert) is skipped by it, which is how "no expert" is written):
  hf             the model's own router: softmax, top-K, renormalized (mixtral
                 always; qwen/olmoe per norm_topk_prob)
  sigmoid_bias   s = sigmoid(z); chosen = top-K of s + bias; weights = s of the
                 chosen / their sum; with moe.group "top2_sum" (sigmoid_group) the
                 top-K runs over the experts of the topk_group groups whose two best
                 s + bias sum highest (DeepSeek-V3's noaux_tc)
  softmax_group  p = softmax(z); the top-K of p over the experts of the topk_group
                 groups whose best p is highest (DeepSeek-V2's group_limited_greedy);
                 weights p of the chosen (norm_topk false)
  expert_choice  p = softmax(z); expert e takes the C = int(CF*N*K/E) tokens with
                 the largest p[:,e]; weight p[n,e]; a token no expert took gets 0
                 from the routed experts
  hash           expert = ((id * 2654435761) mod 2^32) mod E of the input token id
                 at that position, weight 1, K = 1; gate.weight is a zero
                 placeholder (its gradient is 0 and it stays 0)
  capacity       the model's top-K (softmax, renormalized); expert e keeps the
                 first C = ceil(CF*N*K/E) pairs in token order n = b*T + t, the rest
                 are dropped (contribute nothing, the kept weights are not
                 renormalized again)
The config.json of these variants says so under "moe" (score, router,
capacity_factor, select_bias), the fields libmoe reads; transformers ignores them.
deepseek_v2, deepseek_v3 and glm4_moe (NATIVE_ROUTE) route with their own router
module, which "sigmoid_bias" (v3, glm: groups, norm_topk_prob and
routed_scaling_factor from the module) and "softmax_group" (v2) reproduce; every
unmutated forward asserts the choice and weights equal the module's own.

Every selection is checked for near-ties at every step (gap between the last
chosen and the first unchosen > GAP_MIN in logits, in sigmoid + bias, or in
log-softmax for expert choice), else the data is reseeded, so an implementation
that differs by 1e-6 routes identically. Two runs must be bit-identical.

Run:  python3 tools/gen_train_fixtures.py [--only NAME ...]
(see tools/README.md). CPU only, float32, one thread, fixed seeds.
"""
import os
os.environ.setdefault("TQDM_DISABLE", "1")
import argparse
import functools
import json
import math
import shutil
import sys

import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "train")

# ------------------------------------------------------------ the definition
B, T, STEPS = 2, 16, 10
ALPHA, BETA = 0.01, 0.001          # aux_loss, z_loss weights (gamma per variant)
PEAK, MIN_LR, WARMUP = 3e-3, 3e-4, 2
BETAS, EPS, WD = (0.9, 0.95), 1e-8, 0.1
CLIP = 1.0
BIAS_RATE = 1e-3                   # sigmoid_bias: selection bias update per step
CAPACITY_FACTOR = 1.0
HASH_MUL = 2654435761
GAP_MIN = 1e-3                     # smallest allowed selection gap (see above); 10x the
                                   # 1e-4 asked for: Adam moves weights with tiny gradients
                                   # by up to ~1e-5 apart in two f32 implementations
ULP_REL = 2.0 ** -23               # weight perturbation of the sensitivity run

# -------------------------------------------------------------- variants
# Sizes: V 64, D 32, 2 layers, 4-5 experts of width 16: about 90-110 KB of
# f32 weights and as much again of gradients per variant (the smallest sizes
# that keep every switch meaningful). 5 experts where the rounding of the
# capacity or the mod 2^32 of the hash must show (N*K/E not an integer,
# 2^32 mod E != 0).

COMMON = dict(vocab_size=64, max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
              pad_token_id=None, tie_word_embeddings=False)

MIXTRAL = dict(hidden_size=32, intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, rms_norm_eps=1e-5,
               rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, sliding_window=None,
               router_jitter_noise=0.0)

QWEN2 = dict(hidden_size=32, intermediate_size=32, moe_intermediate_size=16,
             shared_expert_intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, num_experts=4, num_experts_per_tok=2, decoder_sparse_step=1,
             mlp_only_layers=[1], norm_topk_prob=False, qkv_bias=True, rms_norm_eps=1e-6,
             use_sliding_window=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})

QWEN3 = dict(hidden_size=32, intermediate_size=32, moe_intermediate_size=16, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=1, head_dim=12, num_experts=4,
             num_experts_per_tok=3, decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True,
             attention_bias=False, rms_norm_eps=1e-6, use_sliding_window=False,
             rope_parameters={"rope_type": "default", "rope_theta": 10000.0})

# gpt_oss: a sliding layer (window 4 < T) and a full one, per-head sinks,
# q/k/v/o biases, YaRN (attention factor in cos/sin), router bias with
# top-2-then-softmax, fused interleaved experts with biases, clamped SwiGLU
# with a limit (1.0) that gate and up pass (checks.swiglu_clamped).
GPT_OSS = dict(hidden_size=32, intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
               rms_norm_eps=1e-5, sliding_window=4, swiglu_limit=1.0, swiglu_alpha=1.702,
               attention_bias=True, layer_types=["sliding_attention", "full_attention"],
               rope_parameters={"rope_type": "yarn", "rope_theta": 100.0, "factor": 8.0,
                                "beta_fast": 4.0, "beta_slow": 0.5, "truncate": False,
                                "original_max_position_embeddings": 64})

OLMOE = dict(hidden_size=32, intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, num_experts=4, num_experts_per_tok=2, norm_topk_prob=False,
             clip_qkv=8.0, attention_bias=False, rms_norm_eps=1e-5,
             rope_parameters={"rope_type": "default", "rope_theta": 10000.0})

# deepseek_v3: latent attention (q through rank 24, latent 16, heads of 8
# non-rotary + 8 rotary dims, values of 12 != 16), YaRN with mscale =
# mscale_all_dim on the softmax scale, rotary dims interleaved; 8 experts in
# 4 groups, the best 2 kept (sum of their two best), sigmoid + correction
# bias, renormalized top-2 x 2.5, a shared expert, layer 0 dense. The
# model's own router (DeepseekV3TopkRouter) is reproduced and checked.
DS3 = dict(hidden_size=32, intermediate_size=40, moe_intermediate_size=16, num_hidden_layers=2,
           num_attention_heads=4, num_key_value_heads=4, q_lora_rank=24, kv_lora_rank=16,
           qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=8,
           num_experts_per_tok=2, n_group=4, topk_group=2, n_shared_experts=1,
           routed_scaling_factor=2.5, first_k_dense_replace=1, norm_topk_prob=True,
           rope_interleave=True, rms_norm_eps=1e-6, attention_bias=False,
           rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                            "original_max_position_embeddings": 16, "beta_fast": 8.0,
                            "beta_slow": 1.0, "mscale": 0.8, "mscale_all_dim": 0.8})

# glm4_moe: GQA 4/2 with head_dim 16, RoPE on its first 8 dims (halves),
# q/k/v biases, per-head q/k norm; 8 experts in 2 groups (1 kept), sigmoid +
# correction bias, renormalized top-2 x 1.5, a shared expert, layer 0 dense.
GLM = dict(hidden_size=32, intermediate_size=40, moe_intermediate_size=16, num_hidden_layers=2,
           num_attention_heads=4, num_key_value_heads=2, head_dim=16, n_routed_experts=8,
           num_experts_per_tok=2, n_group=2, topk_group=1, n_shared_experts=1,
           routed_scaling_factor=1.5, first_k_dense_replace=1, norm_topk_prob=True,
           attention_bias=True, use_qk_norm=True, rms_norm_eps=1e-5,
           rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                            "partial_rotary_factor": 0.5})

# deepseek_v2: DeepSeek-V2-Lite's attention (q_proj, latent 16, rotary dims
# interleaved as V2 always has them), YaRN with mscale; softmax scores,
# group_limited_greedy (9 experts in 3 groups by their best, 2 kept), top-3
# never renormalized, x 1.5; 2 shared experts; layer 0 dense.
DS2 = dict(hidden_size=32, intermediate_size=40, moe_intermediate_size=16, num_hidden_layers=2,
           num_attention_heads=4, num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=16,
           qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=9,
           num_experts_per_tok=3, topk_method="group_limited_greedy", n_group=3, topk_group=2,
           n_shared_experts=2, routed_scaling_factor=1.5, first_k_dense_replace=1,
           norm_topk_prob=False, rms_norm_eps=1e-6, attention_bias=False,
           rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                            "original_max_position_embeddings": 16, "beta_fast": 8.0,
                            "beta_slow": 1.0, "mscale": 0.707, "mscale_all_dim": 0.707})

# model types whose own router module (*TopkRouter) is reproduced by a route
# here, read from the module's n_group, topk_group, norm_topk_prob and
# routed_scaling_factor (no "moe" object in their config.json): DeepSeek-V3's
# noaux_tc ("sigmoid_bias") and DeepSeek-V2's group_limited_greedy
# ("softmax_group")
NATIVE_ROUTE = {"deepseek_v3": "sigmoid_bias", "glm4_moe": "sigmoid_bias",
                "deepseek_v2": "softmax_group"}


def V(name, model_type, base, route="hf", gamma=0.0, moe=None, what="", **over):
    cfg = dict(COMMON)
    cfg.update(base)
    cfg.update(over)
    if moe:
        cfg["moe"] = moe
    return dict(name=name, model_type=model_type, cfg=cfg, route=route, gamma=gamma, what=what)


VARIANTS = [
    V("mixtral_top2", "mixtral", MIXTRAL,
      what="softmax top-2 of 4, renormalized (transformers' Mixtral router)"),
    V("switch_top1", "mixtral", MIXTRAL, num_experts_per_tok=1,
      what="mixtral with top-1 (Switch-style routing): the renormalized weight is exactly 1, "
           "so the router learns only through aux_loss and z_loss"),
    V("qwen2_shared", "qwen2_moe", QWEN2,
      what="qwen2_moe: top-2 of 4, norm_topk_prob false, shared expert (width 16) scaled by "
           "sigmoid(shared_expert_gate . x), qkv bias; mlp_only_layers [1]: layer 1 dense "
           "(width 32), so the router losses average over the one MoE layer"),
    V("olmoe_qknorm", "olmoe", OLMOE,
      what="olmoe: top-2 of 4, norm_topk_prob false, q/k RMSNorm over the whole projection, "
           "clip_qkv 8 (never reached in these 10 steps: see checks.qkv_absmax)"),
    V("qwen3_headnorm", "qwen3_moe", QWEN3,
      what="qwen3_moe: top-3 of 4, norm_topk_prob true, per-head q/k RMSNorm, head_dim 12 "
           "!= hidden/heads 8, GQA 4 heads / 1 kv head"),
    V("kl_uniform", "mixtral", MIXTRAL, gamma=0.01,
      what="mixtral top-2 of 4 with the KL-to-uniform router loss weighted gamma 0.01"),
    V("sigmoid_bias", "mixtral", MIXTRAL, route="sigmoid_bias",
      moe={"score": "sigmoid", "select_bias": True},
      what="DeepSeek-V3 style: s = sigmoid(z), top-2 of 4 by s + bias, weights s renormalized; "
           "bias (block_sparse_moe.gate.e_score_correction_bias) gets no gradient and moves "
           "by 1e-3 * sign(mean load - load) after each step"),
    V("expert_choice", "mixtral", MIXTRAL, route="expert_choice", num_local_experts=5,
      num_experts_per_tok=1,
      moe={"router": "expert_choice", "capacity_factor": CAPACITY_FACTOR},
      what="expert choice over the batch: each of 5 experts takes its top C = int(1.0*32*1/5) = 6 "
           "tokens by softmax score (K = 1 in the formula), weight = the score; 30 slots for 32 "
           "tokens, so some tokens get nothing from the routed experts"),
    V("hash", "mixtral", MIXTRAL, route="hash", num_local_experts=5, num_experts_per_tok=1,
      moe={"router": "hash"},
      what="hash routing: expert = ((id * 2654435761) mod 2^32) mod 5 of the input id, weight 1; "
           "gate.weight is an all-zero placeholder; no router losses"),
    V("capacity", "mixtral", MIXTRAL, route="capacity", num_local_experts=5,
      moe={"capacity_factor": CAPACITY_FACTOR},
      what="softmax top-2 of 5 with capacity C = ceil(1.0*32*2/5) = 13 pairs per expert, kept "
           "in token order, the rest dropped; aux counts all pairs"),
    V("gpt_oss", "gpt_oss", GPT_OSS,
      what="gpt_oss: layer 0 sliding (window 4 < 16 tokens), layer 1 full attention; per-head "
           "sink logits, q/k/v/o biases, YaRN (factor 8); router with bias, top-2 of 4 logits "
           "then softmax over the 2; fused gate_up_proj [E][D][2F] (gate even, up odd columns) "
           "and down_proj [E][F][D] with biases; clamped SwiGLU alpha 1.702, limit 1.0 (reached: "
           "checks.swiglu_clamped); expert biases are not decayed"),
    V("sigmoid_group", "mixtral", MIXTRAL, route="sigmoid_bias", num_local_experts=8,
      moe={"score": "sigmoid", "select_bias": True, "group": "top2_sum", "n_group": 4,
           "topk_group": 2},
      what="DeepSeek-V3 group-limited routing (noaux_tc): 8 experts in 4 groups of 2, each "
           "group scored by the sum of its two s + bias; the best 2 groups kept, top-2 of "
           "their 4 experts by s + bias, weights s renormalized; gradients flow through the "
           "chosen weights only; the bias moves as in sigmoid_bias"),
    V("softmax_group", "mixtral", MIXTRAL, route="softmax_group", num_local_experts=8,
      num_experts_per_tok=3,
      moe={"group": "max", "n_group": 4, "topk_group": 2, "norm_topk": False},
      what="DeepSeek-V2 group-limited routing (group_limited_greedy): p = softmax over 8 "
           "experts in 4 groups of 2, each group scored by its best p; the best 2 groups "
           "kept, top-3 of their 4 experts (with top-2 the groups could never change the "
           "choice), weights p not renormalized (so every logit gets gradient through the "
           "softmax)"),
    V("deepseek_v3_mla", "deepseek_v3", DS3, route="sigmoid_bias",
      what="deepseek_v3: latent attention with q_lora_rank 24 (q_a_proj, q_a_layernorm, "
           "q_b_proj), kv_lora_rank 16, heads of 8 + 8 rotary dims (interleaved pairs), values "
           "of 12; YaRN (factor 4) with mscale_all_dim 0.8 on the softmax scale; layer 0 dense, "
           "layer 1 MoE: 8 experts in 4 groups, best 2 groups, sigmoid + "
           "e_score_correction_bias, renormalized top-2 x 2.5, a shared expert; the bias moves "
           "as in sigmoid_bias"),
    V("deepseek_v3_noq", "deepseek_v3", DS3, route="sigmoid_bias", q_lora_rank=None,
      rope_interleave=False, n_shared_experts=2,
      what="deepseek_v3 shaped as DeepSeek-V2-Lite's attention: q_proj (no q_lora_rank), "
           "kv_lora_rank 16, rotary dims in halves (rope_interleave false), values of 12; YaRN "
           "with mscale; group-limited sigmoid routing as deepseek_v3_mla, 2 shared experts"),
    V("deepseek_v2_lite", "deepseek_v2", DS2, route="softmax_group",
      what="deepseek_v2 shaped as DeepSeek-V2-Lite: q_proj, kv_lora_rank 16, heads of 8 + 8 "
           "rotary dims (interleaved pairs), values of 12; YaRN with mscale_all_dim 0.707; "
           "layer 0 dense, layer 1 MoE: softmax scores, group_limited_greedy (9 experts in 3 "
           "groups scored by their best, 2 kept), top-3 never renormalized, x 1.5, 2 shared "
           "experts"),
    V("glm4_moe", "glm4_moe", GLM, route="sigmoid_bias",
      what="glm4_moe: GQA 4/2, head_dim 16 with RoPE on the first 8 (partial_rotary_factor "
           "0.5, halves), q/k/v biases (none on o_proj), per-head q/k RMSNorm; layer 0 dense, "
           "layer 1 MoE: 8 experts in 2 groups, 1 kept, sigmoid + correction bias, "
           "renormalized top-2 x 1.5, a shared expert"),
]

# ---------------------------------------------------------------- helpers


def n_experts(cfg):
    if cfg.model_type in NATIVE_ROUTE:
        return cfg.n_routed_experts
    return cfg.num_local_experts if cfg.model_type in ("mixtral", "gpt_oss") else cfg.num_experts


def lr_at(s):
    """Learning rate of step s (0-based)."""
    if s < WARMUP:
        return PEAK * (s + 1) / WARMUP
    prog = (s - WARMUP) / (STEPS - WARMUP)
    return MIN_LR + 0.5 * (PEAK - MIN_LR) * (1.0 + math.cos(math.pi * prog))


def hash_expert(tok, E):
    return ((int(tok) * HASH_MUL) % (1 << 32)) % E


def randomize(model, gen, route):
    """As gen_model_fixtures.py: linear ~ N(0, 1/in), norms 1 + 0.1 N, biases
    0.2 N, embeddings N(0, 1), lm_head N(0, 4/D); routers N(0, 4/D) (router
    logits ~ 2 sd: decisive, yet softmax still passes gradient); hash: router 0."""
    def rn(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float32)

    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = p.shape
            if name.endswith("norm.weight"):
                val = 1.0 + 0.1 * rn(shape)
            elif name.endswith("self_attn.sinks"):
                val = 1.0 + 1.0 * rn(shape)  # gpt_oss: a sizable share of each row
            elif name.endswith("_proj_bias"):
                val = 0.5 * rn(shape)  # gpt_oss expert biases [E][2F], [E][D]
            elif name.endswith("router.weight"):
                val = rn(shape) * (2.0 / math.sqrt(shape[1]))  # gpt_oss router [E][D]
            elif model.config.model_type == "gpt_oss" and name.endswith("experts.gate_up_proj"):
                val = rn(shape) * (1.5 / math.sqrt(shape[1]))  # [E][D][2F]: x @ W
            elif model.config.model_type == "gpt_oss" and name.endswith("experts.down_proj"):
                val = rn(shape) * (1.0 / math.sqrt(shape[1]))  # [E][F][D]: h @ W
            elif name.endswith(".bias"):
                val = 0.2 * rn(shape)
            elif "embed_tokens" in name:
                val = rn(shape)
            elif name.startswith("lm_head"):
                val = rn(shape) * (2.0 / math.sqrt(shape[1]))
            elif name.endswith("shared_expert_gate.weight"):
                val = rn(shape) * (1.0 / math.sqrt(shape[1]))
            elif name.endswith("gate.weight") and "shared" not in name and "experts" not in name:
                val = rn(shape) * (2.0 / math.sqrt(shape[1]))  # router [E][D]
                if route == "hash":
                    val = torch.zeros(shape)
            elif name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
                val = rn(shape) * (1.0 / math.sqrt(shape[2]))  # [E][2F][D], [E][D][F]
            elif p.dim() == 2:
                val = rn(shape) * (1.0 / math.sqrt(shape[1]))  # Linear [out][in]
            else:
                raise RuntimeError(f"no rule to randomize {name} {tuple(shape)}")
            p.copy_(val)


# ----------------------------------------------------- in-memory <-> file names
# transformers 5 holds the experts stacked ([E][2F][D] gate_up_proj with the
# gate rows first, [E][D][F] down_proj) and mixtral's block as "mlp"; the file
# has one tensor per expert and projection. file_tensors() gives the file's
# view of any per-parameter tensors (weights or their gradients).

def file_tensors(model, tensors):
    """tensors: {in-memory parameter name: tensor} -> {file name: tensor}."""
    mt = model.config.model_type
    w1, w3, w2 = ("w1", "w3", "w2") if mt == "mixtral" else ("gate_proj", "up_proj", "down_proj")
    if mt == "gpt_oss":  # the file keeps transformers' fused tensors
        return {n: t.detach().contiguous() for n, t in tensors.items()}
    out = {}
    for name, t in tensors.items():
        fname = name
        if mt == "mixtral" and ".mlp." in name:
            fname = name.replace(".mlp.", ".block_sparse_moe.")
        if fname.endswith("experts.gate_up_proj"):
            pre, Fw = fname[:-len("gate_up_proj")], t.shape[1] // 2
            for e in range(t.shape[0]):
                out[f"{pre}{e}.{w1}.weight"] = t[e, :Fw].contiguous()
                out[f"{pre}{e}.{w3}.weight"] = t[e, Fw:].contiguous()
        elif fname.endswith("experts.down_proj"):
            pre = fname[:-len("down_proj")]
            for e in range(t.shape[0]):
                out[f"{pre}{e}.{w2}.weight"] = t[e].contiguous()
        else:
            out[fname] = t.detach().contiguous()
    return out


def is_router(mod):
    """transformers' MoE router modules: *TopKRouter, DeepSeek's *TopkRouter."""
    return type(mod).__name__.lower().endswith("topkrouter")


def grouped(v):
    """Whether the variant routes within groups (the "no groups" mutation)."""
    if v["model_type"] in NATIVE_ROUTE:
        return v["cfg"].get("n_group", 1) > 1 and v["cfg"].get("topk_method") != "greedy"
    return bool((v["cfg"].get("moe") or {}).get("group"))


def router_file_prefix(model, layer):
    mt = model.config.model_type
    return f"model.layers.{layer}.{'block_sparse_moe' if mt == 'mixtral' else 'mlp'}.gate"


# ---------------------------------------------------------------- routing

class Routing:
    """Replaces the forward of every MoE router module (is_router) so
    one routing kind runs inside transformers' MoE block, and records, per MoE
    layer and forward, what the losses and the checks need."""

    def __init__(self, model, route, mut=None):
        self.route = route
        self.mut = mut or {}  # sensitivity runs: one rule changed on purpose
        self.cfg = model.config
        self.E = n_experts(model.config)
        self.K = model.config.num_experts_per_tok
        self.cf = ((getattr(model.config, "moe", None) or {}).get("capacity_factor")
                   or CAPACITY_FACTOR)
        self.ids = None       # [B][T] input ids of the current forward (hash)
        self.records = []
        self.routers = []
        for name, mod in model.named_modules():
            if is_router(mod):
                layer = int(name.split(".")[2])
                mod.forward = functools.partial(self._forward, mod, mod.forward, layer)
                self.routers.append((layer, mod))

    def begin(self, ids):
        self.ids = ids
        self.records = []

    def _forward(self, mod, hf_forward, layer, hidden):
        E, K = self.E, self.K
        h = hidden.reshape(-1, hidden.shape[-1])
        N = h.shape[0]
        rec = dict(layer=layer, k=K, E=E, score="softmax", z=None, gaps={})
        kind = self.route
        if kind in ("hf", "capacity"):
            z, w, idx = hf_forward(h)
            rec["gaps"]["topk_logit"] = kth_gap(z, K)
            count = torch.bincount(idx.flatten(), minlength=E)
            if kind == "capacity":
                cap = math.ceil(self.cf * N * K / E) + self.mut.get("capacity_delta", 0)
                keep = torch.ones_like(idx, dtype=torch.bool)
                if not self.mut.get("dropless"):
                    seen = [0] * E
                    for n in range(N):          # token order n = b*T + t
                        for k in range(K):
                            e = int(idx[n, k])
                            if seen[e] < cap:
                                seen[e] += 1
                            else:
                                keep[n, k] = False
                idx = torch.where(keep, idx, torch.full_like(idx, E))
                w = torch.where(keep, w, torch.zeros_like(w))
                rec["capacity"] = cap
                rec["dropped"] = int((~keep).sum())
        elif kind == "sigmoid_bias":
            z = F.linear(h.float(), mod.weight.float())
            s = torch.sigmoid(z)
            bias = mod.e_score_correction_bias
            sel = s.detach() + (0 if self.mut.get("no_bias") else bias)
            moe = getattr(self.cfg, "moe", None) or {}
            native = hasattr(mod, "num_group")  # deepseek_v3 / glm4_moe's own router
            if native:
                G, TG = mod.num_group, mod.topk_group
                has_groups = G > 1
            else:
                has_groups = bool(moe.get("group"))
                G, TG = moe.get("n_group", 1), moe.get("topk_group", 1)
            if has_groups and not self.mut.get("no_groups"):
                # noaux_tc: groups of E/G in index order, each scored by the
                # sum of its two best s + bias; the topk_group best kept, the
                # others' experts out of the choice (-inf, as router.c)
                gsc = sel.view(N, G, E // G).topk(2, dim=-1).values.sum(-1)
                rec["gaps"]["topk_group_score"] = kth_gap(gsc, TG)
                keep = torch.zeros(N, G, dtype=torch.bool)
                keep.scatter_(1, torch.topk(gsc, TG, dim=-1).indices, True)
                sel = sel.masked_fill(~keep.repeat_interleave(E // G, dim=1), float("-inf"))
                flat = torch.topk(s.detach() + bias, K, dim=-1).indices.sort(-1).values
                grp = torch.topk(sel, K, dim=-1).indices.sort(-1).values
                rec["group_changed_tokens"] = int((flat != grp).any(-1).sum())
            idx = torch.topk(sel, K, dim=-1).indices
            w = torch.gather(s, 1, idx)
            if not native:
                w = w / w.sum(-1, keepdim=True)
            else:  # as DeepseekV3TopkRouter / Glm4MoeTopkRouter
                if mod.norm_topk_prob:
                    w = w / (w.sum(-1, keepdim=True) + 1e-20)
                w = w * mod.routed_scaling_factor
                if not self.mut:  # the same choice and weights as the module's own forward
                    with torch.no_grad():
                        _, hw, hidx = hf_forward(h)
                    a, b = idx.sort(-1), hidx.sort(-1)
                    assert torch.equal(a.values, b.values), "router differs from transformers'"
                    assert torch.allclose(w.detach().gather(1, a.indices), hw.gather(1, b.indices),
                                          rtol=1e-6, atol=0), "router weights differ"
            rec["score"] = "sigmoid"
            rec["gaps"]["topk_sigmoid_plus_bias"] = kth_gap(sel, K)
            nob = torch.topk(s.detach(), K, dim=-1).indices.sort(-1).values
            rec["bias_changed_tokens"] = int((nob != idx.sort(-1).values).any(-1).sum())
            count = torch.bincount(idx.flatten(), minlength=E)
        elif kind == "softmax_group":
            # deepseek_v2's group_limited_greedy: p = softmax(z); groups of E/G
            # in index order scored by their best p, the topk_group best kept,
            # top-K of p over their experts; weights p (renormalized only
            # with norm_topk)
            z = F.linear(h.float(), mod.weight.float())
            p = torch.softmax(z, dim=-1)
            native = hasattr(mod, "topk_method")  # deepseek_v2's own router
            if native:
                G, TG, norm = mod.num_group, mod.topk_group, False
                has_groups = mod.topk_method == "group_limited_greedy"
            else:
                moe = self.cfg.moe
                G, TG, norm, has_groups = moe["n_group"], moe["topk_group"], moe.get("norm_topk", True), True
            sel = p.detach()
            flat = torch.topk(sel, K, dim=-1).indices.sort(-1).values
            if has_groups and not self.mut.get("no_groups"):
                gsc = sel.view(N, G, E // G).max(-1).values
                # gaps in logits (the order of p), as the hf route measures
                zg = z.detach().view(N, G, E // G).max(-1).values
                rec["gaps"]["topk_group_logit"] = kth_gap(zg, TG)
                keep = torch.zeros(N, G, dtype=torch.bool)
                keep.scatter_(1, torch.topk(gsc, TG, dim=-1).indices, True)
                sel = sel.masked_fill(~keep.repeat_interleave(E // G, dim=1), float("-inf"))
            idx = torch.topk(sel, K, dim=-1).indices
            rec["group_changed_tokens"] = int((flat != idx.sort(-1).values).any(-1).sum())
            w = torch.gather(p, 1, idx)
            if norm:
                w = w / w.sum(-1, keepdim=True)
            if native:  # as DeepseekV2TopkRouter
                w = w * mod.routed_scaling_factor
                if not self.mut:  # the same choice and weights as the module's own forward
                    with torch.no_grad():
                        _, hw, hidx = hf_forward(h)
                    a, b = idx.sort(-1), hidx.sort(-1)
                    assert torch.equal(a.values, b.values), "router differs from transformers'"
                    assert torch.allclose(w.detach().gather(1, a.indices), hw.gather(1, b.indices),
                                          rtol=1e-6, atol=0), "router weights differ"
            zsel = z.detach().masked_fill(sel == float("-inf"), float("-inf"))
            rec["gaps"]["topk_logit"] = kth_gap(zsel, K)
            count = torch.bincount(idx.flatten(), minlength=E)
        elif kind == "expert_choice":
            z = F.linear(h, mod.weight)
            p = torch.softmax(z, dim=-1)
            C = int(self.cf * N * K / E) + self.mut.get("capacity_delta", 0)
            top = torch.topk(p.detach(), C, dim=0).indices      # [C][E]
            mask = torch.zeros(N, E, dtype=torch.bool)
            mask.scatter_(0, top, True)
            idx = torch.where(mask, torch.arange(E).expand(N, E), torch.full((N, E), E))
            w = torch.where(mask, p, torch.zeros_like(p))
            lsm = torch.log_softmax(z.detach(), dim=-1)
            srt = torch.sort(lsm, dim=0, descending=True).values
            rec["gaps"]["column_logsoftmax"] = float((srt[C - 1] - srt[C]).min())
            rec["gaps"]["topk_logit"] = kth_gap(z, K)  # the aux count below
            count = torch.bincount(torch.topk(z.detach(), K, dim=-1).indices.flatten(), minlength=E)
            rec["capacity"] = C
            rec["unrouted_tokens"] = int((~mask.any(-1)).sum())
            rec["multi_expert_tokens"] = int((mask.sum(-1) > 1).sum())
            rec["load"] = mask.sum(0).tolist()
        elif kind == "hash":
            mod_ = (1 << 64) if self.mut.get("no_mod32") else (1 << 32)
            ids = self.ids.reshape(-1).tolist()
            idx = torch.tensor([[((i * HASH_MUL) % mod_) % E] for i in ids])
            w = torch.ones(N, 1, dtype=h.dtype)
            z = torch.zeros(N, E, dtype=h.dtype)
            count = None
        else:
            raise RuntimeError(f"unknown route {kind}")
        if kind != "hash":
            rec["z"] = z
            rec["count"] = count.to(torch.float32)
        if "load" not in rec:
            real = idx[idx < E]
            rec["load"] = torch.bincount(real, minlength=E).tolist()
        rec["experts"] = [[int(e) if e < E else -1 for e in row] for row in idx.tolist()]
        rec["weights"] = w.detach().tolist()
        self.records.append(rec)
        return z, w, idx


def route_of_config(moe):
    """The routing kind a config.json "moe" object asks for (None: one we
    have no PyTorch reference for)."""
    moe = moe or {}
    router = moe.get("router", "token_choice")
    sigmoid = moe.get("score", "softmax") == "sigmoid"
    bias = bool(moe.get("select_bias", False))
    cf = moe.get("capacity_factor", 0) or 0
    if moe.get("noise", 0) or moe.get("routed_scaling_factor", 1) != 1:
        return None
    group = moe.get("group")
    if group == "max" and router == "token_choice" and not sigmoid and not bias and not cf:
        return "softmax_group"
    if group and (group != "top2_sum" or not sigmoid or not bias):
        return None
    if router == "token_choice":
        if sigmoid and bias and not cf:
            return "sigmoid_bias"
        if not sigmoid and not bias:
            return "capacity" if cf else "hf"
        return None
    if sigmoid or bias:
        return None
    if router == "expert_choice" and cf:
        return "expert_choice"
    if router == "hash" and not cf:
        return "hash"
    return None


def kth_gap(scores, K):
    """Smallest gap, over tokens, between the K-th and the K+1-th largest."""
    if K >= scores.shape[-1]:
        return None
    s = torch.sort(scores.detach(), dim=-1, descending=True).values
    return float((s[:, K - 1] - s[:, K]).min())


def min_gap(records):
    g = [v for r in records for v in r["gaps"].values() if v is not None]
    return min(g) if g else None


# ------------------------------------------------------------------ losses

def loss_parts(logits, targets, records, gamma, mut=None):
    """CE, aux, z, kl (unweighted, scalar tensors) and total; per-layer values."""
    mut = mut or {}
    Vv = logits.shape[-1]
    ce = F.cross_entropy(logits.reshape(-1, Vv), targets.reshape(-1))
    aux_l, z_l, kl_l = [], [], []
    for r in records:
        if r["z"] is None:
            continue
        z = r["z"]
        N, E = z.shape
        p = torch.sigmoid(z) if r["score"] == "sigmoid" else torch.softmax(z, dim=-1)
        P = p.mean(0)
        f = r["count"] / (N * r["k"])
        aux_l.append(E * (f * P).sum())
        z_l.append(torch.logsumexp(z, dim=-1).pow(2).mean())
        kl_l.append(((1.0 / E) * torch.log((1.0 / E) / P)).sum())
    zero = logits.new_zeros(())
    aux = torch.stack(aux_l).mean() if aux_l else zero
    zl = torch.stack(z_l).mean() if z_l else zero
    kl = torch.stack(kl_l).mean() if kl_l else zero
    a = 0.0 if mut.get("no_aux") else ALPHA
    b = 0.0 if mut.get("no_z") else BETA
    g = 0.0 if mut.get("no_kl") else gamma
    total = ce + a * aux + b * zl + g * kl
    per_layer = [dict(layer=r["layer"], aux=x.item(), z=y.item(), kl=k.item())
                 for r, x, y, k in zip([r for r in records if r["z"] is not None], aux_l, z_l, kl_l)]
    return dict(total=total, ce=ce, aux=aux, z=zl, kl=kl, per_layer=per_layer)


# ---------------------------------------------------------------- training

def load_model(d, route):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager",
                                             experts_implementation="eager")
    m.eval()  # no dropout anywhere (all probabilities are 0 anyway), no jitter
    if route == "sigmoid_bias":
        st = load_file(os.path.join(d, "model.safetensors"))
        for name, mod in m.named_modules():
            if is_router(mod):
                layer = int(name.split(".")[2])
                mod.register_buffer("e_score_correction_bias",
                                    st[router_file_prefix(m, layer) + ".e_score_correction_bias"].clone())
    return m


def train(d, v, batches, steps=STEPS, perturb=None, mut=None):
    """Run the optimizer for `steps` steps from the files in d. Returns the
    step-0 parts, gradients (file names), the trajectory and final weights."""
    torch.manual_seed(0)
    model = load_model(d, v["route"])
    if perturb is not None:
        g = torch.Generator().manual_seed(perturb)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.0 + ULP_REL * torch.randint(-1, 2, p.shape, generator=g).float())
    routing = Routing(model, v["route"], mut)
    named = list(model.named_parameters())
    params = [p for _, p in named]
    decay = [p for n, p in named if p.dim() >= 2 and not n.endswith("_bias")]
    no_decay = [p for n, p in named if p.dim() < 2 or n.endswith("_bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=PEAK, betas=BETAS, eps=EPS, foreach=False, fused=False)
    init = {n: p.detach().clone() for n, p in named}
    traj, step0, grads0, routing0, no_grad = [], None, None, None, []
    for s in range(steps):
        ids = torch.tensor(batches[s])
        inp, tgt = ids[:, :-1], ids[:, 1:]
        routing.begin(inp)
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=inp, use_cache=False)
        parts = loss_parts(out.logits, tgt, routing.records, v["gamma"], mut)
        parts["total"].backward()
        for n, p in named:
            if p.grad is None:  # not reached by the loss (hash: the gate)
                p.grad = torch.zeros_like(p)
                if s == 0:
                    no_grad.append(n)
        if s == 0:
            grads0 = {n: p.grad.detach().clone() for n, p in named}
            step0 = parts
            routing0 = [dict(layer=r["layer"], experts=r["experts"], weights=r["weights"], load=r["load"])
                        for r in routing.records]
        gn = float(torch.nn.utils.clip_grad_norm_(params, CLIP, foreach=False))
        lr = lr_at(s)
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.step()
        row = dict(step=s, lr=lr, loss=parts["total"].item(), ce=parts["ce"].item(),
                   aux_loss=parts["aux"].item(), z_loss=parts["z"].item(), kl_loss=parts["kl"].item(),
                   grad_norm=gn, clip_scale=min(1.0, CLIP / (gn + 1e-6)),
                   load=[r["load"] for r in routing.records],
                   min_gap=min_gap(routing.records))
        for key in ("dropped", "unrouted_tokens", "multi_expert_tokens", "bias_changed_tokens",
                    "group_changed_tokens"):
            vals = [r[key] for r in routing.records if key in r]
            if vals:
                row[key] = vals
        if v["route"] == "sigmoid_bias":
            with torch.no_grad():
                for r, (layer, mod) in zip(routing.records, routing.routers):
                    load = torch.tensor(r["load"], dtype=torch.float32)
                    mean = routing.K * inp.numel() / routing.E
                    mod.e_score_correction_bias.add_(torch.sign(mean - load) * BIAS_RATE)
            row["bias"] = [mod.e_score_correction_bias.tolist() for _, mod in routing.routers]
        traj.append(row)
    # the last update shows only here: the final weights on step 0's batch
    ids = torch.tensor(batches[0])
    routing.begin(ids[:, :-1])
    with torch.no_grad():
        out = model(input_ids=ids[:, :-1], use_cache=False)
        fin = loss_parts(out.logits, ids[:, 1:], routing.records, v["gamma"])
    final = {n: p.detach().clone() for n, p in named}
    biases = {}
    if v["route"] == "sigmoid_bias":
        for layer, mod in routing.routers:
            biases[router_file_prefix(model, layer) + ".e_score_correction_bias"] = \
                mod.e_score_correction_bias.detach().clone()
    return dict(model=model, step0=step0, routing0=routing0, grads=file_tensors(model, grads0),
                traj=traj, init=file_tensors(model, init), final=file_tensors(model, final),
                final_biases=biases, final_eval=fin, no_grad=no_grad)


def swiglu_clamped(d, v, batches):
    """gpt_oss at the initial weights on step 0's batch: how many of the
    gate pre-activations exceed the limit and how many up values lie
    outside [-limit, limit] (both must be > 0: the clamps matter)."""
    model = load_model(d, v["route"])
    seen = {"gate_above_limit": 0, "up_outside_limit": 0, "elements": 0}
    for mod in model.modules():
        if type(mod).__name__ == "GptOssExperts":
            orig = mod._apply_gate

            def counting(gate_up, orig=orig, lim=mod.limit):
                seen["gate_above_limit"] += int((gate_up[..., ::2] > lim).sum())
                seen["up_outside_limit"] += int((gate_up[..., 1::2].abs() > lim).sum())
                seen["elements"] += gate_up.shape[0] * (gate_up.shape[-1] // 2)
                return orig(gate_up)
            mod._apply_gate = counting
    ids = torch.tensor(batches[0])
    with torch.no_grad():
        model(input_ids=ids[:, :-1], use_cache=False)
    return seen


def qkv_absmax(d, v, batches, traj_model=None):
    """olmoe: largest |q|, |k|, |v| that reaches clip_qkv over the 10 steps'
    batches, measured with the initial and the final weights."""
    res = []
    for model in [load_model(d, v["route"])] + ([traj_model] if traj_model is not None else []):
        seen = [0.0]
        hs = []
        for name, mod in model.named_modules():
            if type(mod).__name__ == "OlmoeAttention":
                for sub in (mod.q_norm, mod.k_norm, mod.v_proj):
                    hs.append(sub.register_forward_hook(
                        lambda m_, i_, o_: seen.__setitem__(0, max(seen[0], float(o_.abs().max())))))
        with torch.no_grad():
            for s in range(STEPS):
                ids = torch.tensor(batches[s])
                model(input_ids=ids[:, :-1], use_cache=False)
        for h in hs:
            h.remove()
        res.append(seen[0])
    return res


# ------------------------------------------------------------ comparisons

def dump_json(obj, path):
    """indent 1, but a list of numbers stays on one line (keeps ref.json small)."""
    def enc(o, ind):
        pad = " " * ind
        if isinstance(o, dict):
            if not o:
                return "{}"
            items = [f'{pad} {json.dumps(k)}: {enc(v, ind + 1)}' for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list) and o and not all(isinstance(x, (int, float, str, bool)) or x is None for x in o):
            if all(isinstance(x, list) and all(not isinstance(y, (list, dict)) for y in x) for x in o) and \
                    sum(len(x) for x in o) <= 64:
                return json.dumps(o)
            return "[\n" + ",\n".join(pad + " " + enc(x, ind + 1) for x in o) + "\n" + pad + "]"
        return json.dumps(o)
    with open(path, "w") as f:
        f.write(enc(obj, 0) + "\n")


def rel_err(a, b):
    """max|a-b| / max|b| (0 when both are 0)."""
    den = float(b.abs().max())
    num = float((a - b).abs().max())
    return num / den if den > 0 else num


def grads_rel(ga, gb):
    return max(rel_err(ga[k], gb[k]) for k in gb)


def check_against_hf_aux(d, v, batches):
    """Our aux_l for a softmax top-K layer is transformers' Mixtral
    load_balancing_loss_func of that one layer divided by K (it normalizes the
    counts by N, we by N*K). Returns the largest relative difference."""
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func
    model = load_model(d, v["route"])
    routing = Routing(model, v["route"])
    ids = torch.tensor(batches[0])
    routing.begin(ids[:, :-1])
    with torch.no_grad():
        out = model(input_ids=ids[:, :-1], use_cache=False)
        parts = loss_parts(out.logits, ids[:, 1:], routing.records, v["gamma"])
    worst = 0.0
    for r, pl in zip(routing.records, parts["per_layer"]):
        hf = float(load_balancing_loss_func((r["z"],), r["E"], r["k"])) / r["k"]
        worst = max(worst, abs(hf - pl["aux"]) / abs(hf))
    return worst


def same_grads(a, b):
    return all(torch.equal(a["grads"][k], b["grads"][k]) for k in a["grads"])


def same_run(a, b):
    if a["traj"] != b["traj"]:
        return False
    for k in a["grads"]:
        if not torch.equal(a["grads"][k], b["grads"][k]) or not torch.equal(a["final"][k], b["final"][k]):
            return False
    return True


def mutations(v, cfg):
    """One rule changed at a time: how far each moves step 0 (loss, grads).
    A C trainer that got that rule wrong would be off by this much."""
    out = {"aux_loss term dropped": {"no_aux": True},
           "z_loss term dropped": {"no_z": True}}
    if v["gamma"]:
        out["kl_loss term dropped"] = {"no_kl": True}
    if v["route"] == "hash":
        out = {"hash without mod 2^32": {"no_mod32": True}}
    if v["route"] == "sigmoid_bias":
        out["selection without the bias"] = {"no_bias": True}
    if grouped(v):
        out["selection without the groups"] = {"no_groups": True}
    if v["route"] == "capacity":
        out["dropless (no capacity)"] = {"dropless": True}
        out["capacity floor instead of ceil"] = {"capacity_delta": -1}
    if v["route"] == "expert_choice":
        out["capacity ceil instead of int"] = {"capacity_delta": 1}
    return out


# ------------------------------------------------------------ one variant

def make_batches(seed, vocab):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (B, T + 1), generator=g).tolist() for _ in range(STEPS)]


def write_model(v, d, seed):
    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(v["model_type"], **v["cfg"])
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    randomize(model, gen, v["route"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    model.save_pretrained(d)
    path = os.path.join(d, "model.safetensors")
    st = load_file(path)
    # our naming of every parameter must be the file's
    mine = file_tensors(model, dict(model.named_parameters()))
    # deepseek_v3 / glm4_moe save the router's correction bias (a buffer)
    for k in [k for k in st if k.endswith(".e_score_correction_bias")]:
        mine[k] = st[k]
    assert sorted(mine) == sorted(st), (sorted(set(mine) ^ set(st)))
    for k in st:
        assert torch.equal(mine[k], st[k]), k
    if v["route"] == "sigmoid_bias":
        E = n_experts(cfg)
        for name, mod in model.named_modules():
            if is_router(mod):
                layer = int(name.split(".")[2])
                st[router_file_prefix(model, layer) + ".e_score_correction_bias"] = \
                    0.15 * torch.randn(E, generator=gen)
        save_file(st, path, metadata={"format": "pt"})
    for fn in os.listdir(d):  # safetensors writes 0600
        os.chmod(os.path.join(d, fn), 0o644)
    return model.config


def build(v, seed):
    name = v["name"]
    d = os.path.join(OUT, name)
    if v["model_type"] in NATIVE_ROUTE:
        assert v["route"] == NATIVE_ROUTE[v["model_type"]] and "moe" not in v["cfg"], name
    else:
        assert route_of_config(v["cfg"].get("moe")) == v["route"], name
    cfg = write_model(v, d, seed)
    E, K = n_experts(cfg), cfg.num_experts_per_tok

    # data: reseed until no selection at any step is a near-tie
    for data_seed in range(5000 + seed, 5000 + seed + 100):
        batches = make_batches(data_seed, cfg.vocab_size)
        run = train(d, v, batches)
        gaps = [r["min_gap"] for r in run["traj"] if r["min_gap"] is not None]
        gap = min(gaps) if gaps else None
        if gap is None or gap > GAP_MIN:
            break
        print(f"  {name}: data seed {data_seed}: selection gap {gap:.2e}; reseeding")
    else:
        raise RuntimeError(f"{name}: no data seed without near-ties")

    checks = {}
    # determinism: a second run from the files is bit-identical
    again = train(d, v, batches)
    assert same_run(run, again), f"{name}: two runs differ"
    checks["two_runs_bit_identical"] = True
    checks["min_selection_gap"] = gap
    checks["gap_min_required"] = GAP_MIN
    checks["params_without_gradient"] = run["no_grad"]

    # what ulp-level differences in the weights (what a C implementation brings)
    # do to the reference; routing must not change
    pert = train(d, v, batches, perturb=1)
    checks["ulp_perturbation"] = {
        "what": "every initial weight times (1 + u * 2^-23), u in {-1, 0, 1}",
        "routing_identical": all(a["load"] == b["load"] for a, b in zip(run["traj"], pert["traj"])),
        "step0_grads_rel": grads_rel(pert["grads"], run["grads"]),
        "loss_abs_max": max(abs(a["loss"] - b["loss"]) for a, b in zip(run["traj"], pert["traj"])),
        "final_weights_rel": grads_rel(pert["final"], run["final"]),
        "final_delta_l2_rel": max(
            abs(float((pert["final"][k] - pert["init"][k]).double().norm()) - dl) / dl
            for k in run["final"]
            for dl in [float((run["final"][k] - run["init"][k]).double().norm())] if dl > 0),
    }
    assert checks["ulp_perturbation"]["routing_identical"], f"{name}: routing moved under 1-ulp noise"

    if v["route"] == "hf":
        checks["aux_vs_transformers_load_balancing_loss_rel"] = check_against_hf_aux(d, v, batches)
        assert checks["aux_vs_transformers_load_balancing_loss_rel"] < 1e-6
    if v["route"] == "capacity":  # with no capacity it is exactly the plain router
        a = train(d, v, batches, steps=2, mut={"dropless": True})
        b = train(d, dict(v, route="hf"), batches, steps=2)
        assert a["traj"][1]["loss"] == b["traj"][1]["loss"] and same_grads(a, b)
        checks["dropless_capacity_equals_plain_router"] = True

    # each rule must matter (far above the tolerance)
    sens = {}
    for what, mut in mutations(v, cfg).items():
        m = train(d, v, batches, steps=1, mut=mut)
        sens[what] = {"loss_rel": abs(m["traj"][0]["loss"] - run["traj"][0]["loss"]) / abs(run["traj"][0]["loss"]),
                      "grads_rel": grads_rel(m["grads"], run["grads"])}
    checks["sensitivity"] = sens

    s0 = run["step0"]
    r0 = run["traj"][0]
    assert r0["grad_norm"] > CLIP, f"{name}: clipping inactive at step 0 ({r0['grad_norm']})"
    checks["clipping_active_steps"] = [r["step"] for r in run["traj"] if r["grad_norm"] > CLIP]
    if cfg.model_type == "olmoe":
        mx = qkv_absmax(d, v, batches, run["model"])
        checks["qkv_absmax"] = {"initial_weights": mx[0], "final_weights": mx[1], "clip_qkv": cfg.clip_qkv}
        assert max(mx) < 0.9 * cfg.clip_qkv, f"{name}: clip_qkv reached ({mx})"
    if cfg.model_type == "gpt_oss":
        checks["swiglu_clamped"] = swiglu_clamped(d, v, batches)
        assert checks["swiglu_clamped"]["gate_above_limit"] > 0, f"{name}: gate never clamped"
        assert checks["swiglu_clamped"]["up_outside_limit"] > 0, f"{name}: up never clamped"
    if v["route"] == "capacity":
        checks["dropped_pairs_per_step"] = [r["dropped"] for r in run["traj"]]
        assert all(sum(x) > 0 for x in checks["dropped_pairs_per_step"]), "capacity drops nothing"
    if v["route"] == "expert_choice":
        checks["unrouted_tokens_per_step"] = [r["unrouted_tokens"] for r in run["traj"]]
        assert sum(run["traj"][0]["unrouted_tokens"]) > 0 and sum(run["traj"][0]["multi_expert_tokens"]) > 0
    if v["route"] == "sigmoid_bias":
        checks["tokens_whose_choice_the_bias_changes"] = [r["bias_changed_tokens"] for r in run["traj"]]
        assert sum(run["traj"][0]["bias_changed_tokens"]) > 0, "bias changes no selection"
        mean = B * T * K / E
        checks["bias_updates_with_sign_0"] = sum(ld.count(mean) for r in run["traj"] for ld in r["load"])
        if grouped(v):
            checks["tokens_whose_choice_the_groups_change"] = [r["group_changed_tokens"]
                                                               for r in run["traj"]]
            assert sum(run["traj"][0]["group_changed_tokens"]) > 0, "groups change no selection"
    if v["route"] == "softmax_group":
        checks["tokens_whose_choice_the_groups_change"] = [r["group_changed_tokens"]
                                                           for r in run["traj"]]
        assert sum(run["traj"][0]["group_changed_tokens"]) > 0, "groups change no selection"
    if v["route"] == "hash":
        checks["hash_experts_differ_without_mod_2^32"] = sum(
            hash_expert(i, E) != (i * HASH_MUL) % E for i in range(cfg.vocab_size))
    checks["experts_unused_at_step0"] = [[e for e, c in enumerate(ld) if c == 0] for ld in r0["load"]]

    # -- write
    save_file({k: t.contiguous() for k, t in run["grads"].items()}, os.path.join(d, "grads.safetensors"),
              metadata={"format": "pt"})
    os.chmod(os.path.join(d, "grads.safetensors"), 0o644)
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        wkeys = set(f.keys())
    assert set(run["grads"]) <= wkeys
    hyper = hyperparameters(v, cfg)
    dump_json({"B": B, "T": T, "steps": STEPS,
               "layout": "ids[step][b] has T+1 ids: inputs ids[:-1], targets ids[1:]",
               "hyper": hyper, "ids": batches}, os.path.join(d, "batch.json"))
    final_summary = {}
    for k in sorted(run["final"]):
        a, b = run["final"][k], run["init"][k]
        final_summary[k] = {"l2": float(a.double().norm()), "delta_l2": float((a - b).double().norm()),
                            "delta_sum": float((a - b).double().sum())}
    for k, t in run["final_biases"].items():
        final_summary[k] = {"values": t.tolist()}
    traj = [{k: r[k] for k in r if k != "min_gap"} for r in run["traj"]]
    refj = {
        "variant": name,
        "model_type": cfg.model_type,
        "what": v["what"],
        "route": v["route"],
        "n_experts": E, "top_k": K,
        "step0": {
            "loss": s0["total"].item(), "ce": s0["ce"].item(), "aux_loss": s0["aux"].item(),
            "z_loss": s0["z"].item(), "kl_loss": s0["kl"].item(), "per_layer": s0["per_layer"],
            "grad_norm": r0["grad_norm"],
            "grads": {"file": "grads.safetensors",
                      "what": "d total / d parameter at the initial weights on batch step 0, before "
                              "clipping; names as model.safetensors"},
            "routing": run["routing0"],
            "routing_what": "per MoE layer: experts[n] = the slots of token n = b*T + t (-1: dropped / "
                            "not taken), weights[n] the same slots' weights, load = pairs each expert ran",
        },
        "trajectory": traj,
        "trajectory_what": "loss parts of step s are at the weights before update s; lr is the one update s "
                           "used; grad_norm is before clipping; load per MoE layer; bias (sigmoid_bias): "
                           "the selection biases after the update of step s",
        "final": {"loss_on_step0_batch": {"loss": float(run["final_eval"]["total"]),
                                          "ce": float(run["final_eval"]["ce"]),
                                          "aux_loss": float(run["final_eval"]["aux"]),
                                          "z_loss": float(run["final_eval"]["z"]),
                                          "kl_loss": float(run["final_eval"]["kl"])},
                  "tensors": final_summary,
                  "what": "after all steps: per tensor l2 norm, l2 and sum of (final - initial), "
                          "float64 sums; selection biases in full"},
        "tolerance": {"loss_rel": 1e-5, "grads_rel": 1e-4, "trajectory_loss_rel": 2e-5,
                      "final_delta_l2_rel": 1e-4,
                      "measure": "grads: per tensor max|a-b| / max|ref|; losses: |a-b| / |ref|; "
                                 "final_delta_l2: per tensor |a-b| / ref of l2(final - initial)",
                      "why": "10-100x what 1-ulp changes of the weights do to the "
                             "reference (checks.ulp_perturbation); final weights are compared through "
                             "their update norms because Adam turns 1e-7 gradients into full-size "
                             "steps, so single elements may differ by ~1e-5"},
        "seeds": {"weights": seed, "data": data_seed},
        "checks": checks,
        "generator": {"torch": torch.__version__, "transformers": transformers.__version__,
                      "attn_implementation": "eager", "experts_implementation": "eager",
                      "math": "float32 CPU, one thread, deterministic algorithms"},
    }
    sizes = {fn: os.path.getsize(os.path.join(d, fn)) for fn in sorted(os.listdir(d))}
    refj["bytes"] = sizes
    dump_json(refj, os.path.join(d, "ref.json"))
    total = sum(os.path.getsize(os.path.join(d, fn)) for fn in os.listdir(d))
    print(f"{name:15s} {total / 1024:6.1f} KiB  loss {traj[0]['loss']:.4f} -> {traj[-1]['loss']:.4f} "
          f"(final {refj['final']['loss_on_step0_batch']['loss']:.4f})  gap {gap if gap is None else round(gap, 5)}"
          f"  gnorm0 {r0['grad_norm']:.3f}")
    print(f"    ulp: {checks['ulp_perturbation']}")
    print(f"    sensitivity: " + ", ".join(f"{k}: {x['grads_rel']:.2e}/{x['loss_rel']:.1e}" for k, x in sens.items()))
    for k in ("qkv_absmax", "swiglu_clamped", "dropped_pairs_per_step", "unrouted_tokens_per_step",
              "tokens_whose_choice_the_bias_changes", "experts_unused_at_step0"):
        if k in checks:
            print(f"    {k}: {checks[k]}")
    return total


def write_cli_shard():
    """tests/fixtures/train/gpt_oss_data/train.bin: a token shard (the format of
    src/train/data.h, version 1, uint16 ids, one domain, no eos) of 2048 ids
    below the gpt_oss variant's vocabulary (64), a fixed cycle of 29 ids with
    every 7th replaced at random, so `moe train --init tests/fixtures/train/gpt_oss`
    has data it can learn in a few steps (tests/cli/train.sh)."""
    import struct
    d = os.path.join(OUT, "gpt_oss_data")
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(77)
    cycle = torch.randperm(61, generator=g)[:29] + 3
    n = 2048
    ids = [int(cycle[i % 29]) for i in range(n)]
    noise = torch.randint(3, 64, (n,), generator=g).tolist()
    ids = [noise[i] if i % 7 == 6 else ids[i] for i in range(n)]
    head = b"MOETOKS\0" + struct.pack("<IIQIIQI", 1, 2, n, 64, 1, 128, 0xFFFFFFFF) + bytes(20)
    dom = b"train".ljust(32, b"\0") + struct.pack("<QQ", 0, n)
    blob = head + dom + bytes(128 - len(head) - len(dom)) + struct.pack(f"<{n}H", *ids)
    path = os.path.join(d, "train.bin")
    with open(path, "wb") as f:
        f.write(blob)
    os.chmod(path, 0o644)
    return len(blob)


def hyperparameters(v, cfg):
    E, K = n_experts(cfg), cfg.num_experts_per_tok
    N = B * T
    h = {
        "alpha_aux": ALPHA, "beta_z": BETA, "gamma_kl": v["gamma"],
        "lr": [lr_at(s) for s in range(STEPS)],
        "lr_schedule": {"peak": PEAK, "min": MIN_LR, "warmup": WARMUP, "total_steps": STEPS,
                        "rule": "s < warmup: peak*(s+1)/warmup; else min + (peak-min)/2 * "
                                "(1 + cos(pi*(s-warmup)/(total_steps-warmup)))"},
        "adamw": {"beta1": BETAS[0], "beta2": BETAS[1], "eps": EPS, "weight_decay": WD,
                  "decay_applies_to": "tensors that are 2-D or more in model.safetensors, except the "
                                      "*_proj_bias expert biases (not norms, sinks or biases)",
                  "rule": "p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; "
                          "p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps), t = step+1"},
        "clip_grad_norm": CLIP,
        "clip_rule": "norm = sqrt(sum of all g^2); g *= min(1, clip / (norm + 1e-6))",
        "route": v["route"],
    }
    if v["route"] == "capacity":
        h["capacity_factor"] = CAPACITY_FACTOR
        h["capacity"] = math.ceil(CAPACITY_FACTOR * N * K / E)
    if v["route"] == "expert_choice":
        h["capacity_factor"] = CAPACITY_FACTOR
        h["capacity"] = int(CAPACITY_FACTOR * N * K / E)
    if v["route"] == "sigmoid_bias":
        h["bias_update"] = {"rate": BIAS_RATE, "rule": "after each step: bias_i += rate * sign(N*K/E - load_i)"}
    if v["route"] == "hash":
        h["hash"] = {"multiplier": HASH_MUL, "rule": "expert = ((id * multiplier) mod 2^32) mod E"}
    return h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="variant names to (re)generate")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    names = [v["name"] for v in VARIANTS]
    for n in a.only or []:
        if n not in names:
            sys.exit(f"unknown variant {n}; known: {' '.join(names)}")
    total = 0
    for i, v in enumerate(VARIANTS):
        if a.only and v["name"] not in a.only:
            continue
        total += build(v, seed=200 + i)
        if v["name"] == "gpt_oss":
            total += write_cli_shard()
    print(f"total {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
