#!/usr/bin/env python3
"""check_gguf_python.py - read a GGUF file written by `moe convert` / `moe quantize`
with the gguf Python package (an independent reader) and check it against the
Hugging Face directory it was made from:

  - the file parses; general.architecture and the ARCH.* hyperparameters agree
    with config.json;
  - every tensor of the directory is in the file under the name gguf-py's own
    TensorNameMap gives it (experts stacked as ffn_*_exps, or one tensor per
    expert, blk.N.ffn_gate.J, in the mixed layout), with the right shape;
  - each tensor, dequantized by gguf-py, equals the source: exactly for F32,
    the source rounded for F16/BF16, and for quantized types the bytes equal
    gguf-py's own quantizer's where it has one (Q8_0, Q4_0, ...), else the
    relative RMS error is within the type's bound.
Mixtral's q/k rows are compared after llama.cpp's permutation.

  python3 tools/check_gguf_python.py OUT.gguf SOURCE_DIR
Needs: gguf (0.19), numpy, torch, safetensors. Not run in CI (no Python there).
Exit status 0 when everything matches; the last line says "N tensors ok".
"""
import json
import re
import sys

import gguf
import numpy as np
import torch
from safetensors import safe_open

ARCH = {"mixtral": "llama", "qwen2_moe": "qwen2moe", "qwen3_moe": "qwen3moe", "olmoe": "olmoe"}
# relative RMS error bounds of a dequantized weight (Gaussian-like values)
RMS_BOUND = {"Q8_0": 0.01, "Q6_K": 0.03, "Q5_K": 0.06, "Q4_K": 0.12, "Q4_0": 0.15}


def permute(w, n_head):
    """convert_hf_to_gguf.py LlamaModel.permute"""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, src = sys.argv[1], sys.argv[2]
    cfg = json.load(open(f"{src}/config.json"))
    arch = ARCH[cfg["model_type"]]
    r = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    bad = []

    def want(key, value):
        if fields.get(key) != value:
            bad.append(f"metadata {key}: {fields.get(key)!r}, config says {value!r}")

    want("general.architecture", arch)
    want(f"{arch}.block_count", cfg["num_hidden_layers"])
    want(f"{arch}.embedding_length", cfg["hidden_size"])
    want(f"{arch}.attention.head_count", cfg["num_attention_heads"])
    want(f"{arch}.attention.head_count_kv", cfg.get("num_key_value_heads", cfg["num_attention_heads"]))
    n_exp = cfg.get("num_local_experts", cfg.get("num_experts"))
    want(f"{arch}.expert_count", n_exp)
    want(f"{arch}.expert_used_count", cfg["num_experts_per_tok"])

    tensors = {t.name: t for t in r.tensors}
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH_NAMES_INV[arch] if hasattr(gguf, "MODEL_ARCH_NAMES_INV")
                                    else next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch),
                                    cfg["num_hidden_layers"])
    n_head, n_kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    seen, checked = set(), 0
    with safe_open(f"{src}/model.safetensors", framework="pt") as f:
        for name in f.keys():
            x = f.get_tensor(name).to(torch.float32).numpy()
            if arch == "llama" and name.endswith("q_proj.weight"):
                x = permute(x, n_head)
            if arch == "llama" and name.endswith("k_proj.weight"):
                x = permute(x, n_kv)
            m = re.match(r"(model\.layers\.(\d+)\.(?:mlp|block_sparse_moe)\.experts)\.(\d+)\.(\w+)\.weight$", name)
            plane = None
            if m:  # an expert: stacked ffn_*_exps plane J, or its own split tensor
                layer, j, proj = int(m.group(2)), int(m.group(3)), m.group(4)
                part = {"w1": "gate", "gate_proj": "gate", "w3": "up", "up_proj": "up",
                        "w2": "down", "down_proj": "down"}[proj]
                split = f"blk.{layer}.ffn_{part}.{j}.weight"
                gname = split if split in tensors else f"blk.{layer}.ffn_{part}_exps.weight"
                plane = None if gname == split else j
            else:
                gname = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
            if gname is None or gname not in tensors:
                bad.append(f"{name}: no tensor {gname} in the file")
                continue
            seen.add(gname)
            t = tensors[gname]
            ty = t.tensor_type
            deq = gguf.quants.dequantize(t.data, ty).astype(np.float32)
            deq = deq.reshape([int(v) for v in reversed(t.shape)])
            if plane is not None:
                deq = deq[plane]
            if deq.shape != x.reshape(deq.shape).shape or deq.size != x.size:
                bad.append(f"{gname}: shape {deq.shape}, source {x.shape}")
                continue
            x = x.reshape(deq.shape)
            tn = ty.name
            if tn == "F32":
                ok = np.array_equal(deq, x)
            elif tn in ("F16", "BF16"):
                ok = np.array_equal(deq, gguf.quants.dequantize(gguf.quants.quantize(x, ty), ty).reshape(x.shape))
            else:
                try:
                    q = gguf.quants.quantize(x, ty)
                    raw = np.asarray(t.data).reshape(-1, q.shape[-1])
                    if plane is not None:
                        raw = raw.reshape(int(t.shape[-1]), -1, q.shape[-1])[plane]
                    ok = np.array_equal(q.reshape(raw.shape), raw)
                except NotImplementedError:
                    rms = np.sqrt(np.mean((deq - x) ** 2)) / max(np.sqrt(np.mean(x ** 2)), 1e-30)
                    ok = rms <= RMS_BOUND[tn]
            if not ok:
                bad.append(f"{gname} ({tn}): values differ from {name}")
            checked += 1
    extra = set(tensors) - seen
    if extra:
        bad.append(f"tensors without a source: {sorted(extra)[:5]}")
    for b in bad:
        print("FAIL:", b)
    print(f"{path}: {checked} tensors ok" if not bad else f"{path}: {len(bad)} problems")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
