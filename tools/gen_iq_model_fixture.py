#!/usr/bin/env python3
"""gen_iq_model_fixture.py - a tiny qwen3moe GGUF whose weights use ggml's
grid i-quants, for tests/test_gguf_iq.c.

Writes tests/fixtures/gguf_models/qwen3_moe_iq.gguf: 1 layer, dim 256,
2 experts (both used) of 256, 2 heads of 32 (1 KV head), vocab 128, with
  ffn_gate_exps IQ2_XXS, ffn_up_exps IQ3_XXS, ffn_down_exps IQ2_XS
  (the types "dynamic" MoE quantizations give their experts),
  attn_q IQ1_S, attn_k IQ2_S, attn_v IQ3_S, output IQ1_M, token_embd IQ2_XXS,
  attn_output (64 columns: too short for a 256-block) Q8_0, norms and the
  router F32.
The i-quant tensors are random bytes with random finite f16 scales sized so
the weights come out at about 0.05 (there is no quantizer: ggml's need an
importance matrix); every value is finite (checked with the gguf package's
dequantizers). The test runs it against its own dequantization to F32.

  python3 tools/gen_iq_model_fixture.py
"""
import argparse
import os

import numpy as np
from gguf import GGMLQuantizationType as GT
from gguf import GGUFWriter
from gguf import quants as gq

SEED = 20261206
D, F, E, HEADS, KV_HEADS, HD, VOCAB = 256, 256, 2, 2, 1, 32, 128

# bytes per block, offsets of the f16 d, and the d that gives weights of ~0.05
IQ = {
    GT.IQ2_XXS: (66, 0.00125),
    GT.IQ2_XS: (74, 0.00125),
    GT.IQ2_S: (82, 0.00125),
    GT.IQ3_XXS: (98, 0.0005),
    GT.IQ3_S: (110, 0.0004),
    GT.IQ1_S: (50, 0.006),
    GT.IQ1_M: (56, 0.006),
}


def iq_tensor(rng, qtype, shape):
    """Random blocks of qtype for a tensor of `shape` (slowest first)."""
    bpb, dmag = IQ[qtype]
    n_blocks = int(np.prod(shape)) // 256
    b = rng.integers(0, 256, (n_blocks, bpb), dtype=np.uint8)
    d = (dmag * rng.uniform(0.5, 1.5, n_blocks) * rng.choice([-1, 1], n_blocks)).astype(np.float16).view(np.uint16)
    if qtype == GT.IQ1_M:  # the f16's nibbles at the top of the 4 scale words
        w = b[:, 48:56].copy().view(np.uint16)
        for k in range(4):
            w[:, k] = (w[:, k] & 0x0FFF) | (((d >> (4 * k)) & 0xF) << 12)
        b[:, 48:56] = w.view(np.uint8)
    else:
        b[:, 0:2] = d.view(np.uint8).reshape(n_blocks, 2)
    vals = gq.dequantize(b, qtype)
    assert np.all(np.isfinite(vals)) and 0.01 < np.abs(vals).mean() < 0.2, (qtype, np.abs(vals).mean())
    return b.reshape(*shape[:-1], shape[-1] // 256 * bpb)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                                                  "gguf_models", "qwen3_moe_iq.gguf"))
    args = ap.parse_args()
    rng = np.random.default_rng(SEED)
    w = GGUFWriter(args.out, "qwen3moe")
    w.add_name("Qwen3_Moe_IQ")
    w.add_block_count(1)
    w.add_context_length(256)
    w.add_embedding_length(D)
    w.add_feed_forward_length(F)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_expert_count(E)
    w.add_expert_used_count(E)
    w.add_key_length(HD)
    w.add_value_length(HD)
    w.add_expert_feed_forward_length(F)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def iq(name, qtype, shape):
        w.add_tensor(name, iq_tensor(rng, qtype, shape), raw_dtype=qtype)

    iq("token_embd.weight", GT.IQ2_XXS, (VOCAB, D))
    w.add_tensor("blk.0.attn_norm.weight", norm(D))
    iq("blk.0.attn_q.weight", GT.IQ1_S, (HEADS * HD, D))
    iq("blk.0.attn_k.weight", GT.IQ2_S, (KV_HEADS * HD, D))
    iq("blk.0.attn_v.weight", GT.IQ3_S, (KV_HEADS * HD, D))
    w.add_tensor("blk.0.attn_q_norm.weight", norm(HD))
    w.add_tensor("blk.0.attn_k_norm.weight", norm(HD))
    o = (0.05 * rng.standard_normal((D, HEADS * HD))).astype(np.float32)
    w.add_tensor("blk.0.attn_output.weight", gq.quantize(o, GT.Q8_0), raw_dtype=GT.Q8_0)
    w.add_tensor("blk.0.ffn_norm.weight", norm(D))
    w.add_tensor("blk.0.ffn_gate_inp.weight", (0.1 * rng.standard_normal((E, D))).astype(np.float32))
    iq("blk.0.ffn_gate_exps.weight", GT.IQ2_XXS, (E, F, D))
    iq("blk.0.ffn_up_exps.weight", GT.IQ3_XXS, (E, F, D))
    iq("blk.0.ffn_down_exps.weight", GT.IQ2_XS, (E, D, F))
    w.add_tensor("output_norm.weight", norm(D))
    iq("output.weight", GT.IQ1_M, (VOCAB, D))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {os.path.normpath(args.out)} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
