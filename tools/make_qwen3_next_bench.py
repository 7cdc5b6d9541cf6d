#!/usr/bin/env python3
"""Write a random-weight qwen3_next model with Qwen3-Next-80B-A3B's
linear-attention and attention shapes (hidden 2048; Gated DeltaNet with 16
key / 32 value heads of 128; attention 16 / 2 heads of 256) but few layers
and few small experts, for `moe bench` of the prefill: its time is the
DeltaNet's and the projections', not the experts'. moe init has no
qwen3_next preset (its writer refuses the layout); this uses transformers.

    python3 tools/make_qwen3_next_bench.py OUT [--layers 4] [--experts 8]
    build/moe bench OUT --prompt 512 --gen 16

Layers are linear, linear, linear, full (Qwen3-Next's 3:1), repeated.
Weights are transformers' initialization (N(0, 0.02)), stored in bf16.
"""
import argparse

import torch
from transformers import Qwen3NextConfig, Qwen3NextForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    types = [("full_attention" if (i + 1) % 4 == 0 else "linear_attention") for i in range(a.layers)]
    cfg = Qwen3NextConfig(
        vocab_size=a.vocab, hidden_size=2048, intermediate_size=5120, num_hidden_layers=a.layers,
        num_attention_heads=16, num_key_value_heads=2, head_dim=256, linear_conv_kernel_dim=4,
        linear_key_head_dim=128, linear_value_head_dim=128, linear_num_key_heads=16,
        linear_num_value_heads=32, num_experts=a.experts, num_experts_per_tok=2,
        moe_intermediate_size=512, shared_expert_intermediate_size=512, norm_topk_prob=True,
        decoder_sparse_step=1, mlp_only_layers=[], layer_types=types, max_position_embeddings=4096,
        tie_word_embeddings=False)
    model = Qwen3NextForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(a.out)
    print(f"wrote {a.out}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()
