#!/usr/bin/env python3
"""gen_lora_fixtures.py - peft LoRA adapters on tiny MoE models, with peft's
logits and PyTorch's adapter gradients, for tests/test_lora.c.

Writes tests/fixtures/lora/<variant>/ for every variant below:
  base/         the base model (config.json, model.safetensors in f32, as
                transformers' save_pretrained writes it: one tensor per expert)
  adapter/      peft's save_pretrained of a LoraConfig on it: adapter_config.json,
                adapter_model.safetensors. peft's default init (A kaiming-uniform,
                B = 0), then B ~ N(0, 0.5^2) so the adapter changes the model
  ref.safetensors
                logits   [N_IDS][V]  the PeftModel's logits of IDS (one sequence)
                base_logits [N_IDS][V]  the base model's, for contrast
  grads.safetensors
                d CE / d every lora_A / lora_B, named as in adapter_model.safetensors
                (CE = mean over the B*T targets of BATCH, nothing else)
  ref.json      ids, batch, loss, r, alpha, scale, targets

The generator checks that peft's forward equals the base model with
W + scale * B_e A_e merged by hand in the layout src/train/lora.h describes
(expert e's A = lora_A rows e*r..e*r+r-1, B[o][k] = lora_B[o][k*E + e], gate
rows then up rows of gate_up_proj), so the fixture pins that layout down.

Made with peft 0.21.2, transformers 5.23.0, torch 2.15.0 (tools/README.md).
  python3 tools/gen_lora_fixtures.py
"""
import json
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_train_fixtures as gtf  # noqa: E402  (randomize, file_tensors, configs)

import peft  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "lora")
B, T = 2, 12
IDS = [5, 17, 3, 42, 8, 60, 23, 11, 2, 39]

VARIANTS = [
    # every target: the four projections, the router, both expert parameters
    # (nested: gate_up_proj's tensors under experts.base_layer)
    dict(name="mixtral", model_type="mixtral", cfg=gtf.MIXTRAL, r=2, alpha=3.0, rslora=False,
         modules=["q_proj", "k_proj", "v_proj", "o_proj"],
         parameters=["mlp.gate.weight", "mlp.experts.gate_up_proj", "mlp.experts.down_proj"]),
    # q/k norm, head_dim != D/H; two projections and down_proj alone (experts.lora_A),
    # rsLoRA scale alpha / sqrt(r)
    dict(name="qwen3_moe", model_type="qwen3_moe", cfg=gtf.QWEN3, r=3, alpha=2.0, rslora=True,
         modules=["q_proj", "o_proj"], parameters=["mlp.experts.down_proj"]),
]


def base_model(v, seed):
    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(v["model_type"], **gtf.COMMON, **v["cfg"])
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    gtf.randomize(model, torch.Generator().manual_seed(seed), "hf")
    model.eval()
    return model


def strip_default(name):
    return name.replace(".default", "")


def manual_merge(base_sd, n_layers, peft_model, v):
    """The base model's state with every delta folded in by hand."""
    scale = v["alpha"] / (math.sqrt(v["r"]) if v["rslora"] else v["r"])
    sd = {k: t.clone() for k, t in base_sd.items()}
    r = v["r"]
    lora = {strip_default(k): t.detach() for k, t in peft_model.state_dict().items() if "lora_" in k}
    both = "mlp.experts.gate_up_proj" in v["parameters"] and "mlp.experts.down_proj" in v["parameters"]
    pre = "base_model.model."
    for li in range(n_layers):
        for m in v["modules"]:
            key = f"{pre}model.layers.{li}.self_attn.{m}"
            w = f"model.layers.{li}.self_attn.{m}.weight"
            sd[w] += scale * lora[key + ".lora_B.weight"] @ lora[key + ".lora_A.weight"]
        if "mlp.gate.weight" in v["parameters"]:
            key = f"{pre}model.layers.{li}.mlp.gate"
            sd[f"model.layers.{li}.mlp.gate.weight"] += \
                scale * lora[key + ".lora_B.weight"] @ lora[key + ".lora_A.weight"]
        for p in ("gate_up_proj", "down_proj"):
            if f"mlp.experts.{p}" not in v["parameters"]:
                continue
            key = f"{pre}model.layers.{li}.mlp.experts" + (".base_layer" if both and p == "gate_up_proj" else "")
            A, Bm = lora[key + ".lora_A.weight"], lora[key + ".lora_B.weight"]
            w = sd[f"model.layers.{li}.mlp.experts.{p}"]
            E = w.shape[0]
            for e in range(E):
                Ae = A[e * r:(e + 1) * r]               # [r][in]
                Be = Bm[:, [k * E + e for k in range(r)]]  # [out][r]
                w[e] += scale * Be @ Ae
    return sd


def build(v, seed):
    d = os.path.join(OUT, v["name"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    model = base_model(v, seed)
    model.save_pretrained(os.path.join(d, "base"))
    ids = torch.tensor([IDS])
    with torch.no_grad():
        base_logits = model(ids).logits[0].clone()
    base_sd = {k: t.detach().clone() for k, t in model.state_dict().items()}

    torch.manual_seed(seed + 1)
    cfg = LoraConfig(r=v["r"], lora_alpha=v["alpha"], use_rslora=v["rslora"],
                     target_modules=v["modules"], target_parameters=v["parameters"],
                     task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    pm.save_pretrained(os.path.join(d, "adapter"))
    os.remove(os.path.join(d, "adapter", "README.md"))  # a model card template
    pm.eval()
    with torch.no_grad():
        logits = pm(ids).logits[0].clone()

    # the layout of lora.h: peft == the base with the deltas merged by hand
    sd = manual_merge(base_sd, model.config.num_hidden_layers, pm, v)
    plain = base_model(v, seed)
    plain.load_state_dict(sd)
    with torch.no_grad():
        merged_logits = plain(ids).logits[0]
    err = (merged_logits - logits).abs().max().item()
    assert err < 1e-4, f"{v['name']}: peft vs hand merge differ by {err}"
    assert (logits - base_logits).abs().max().item() > 1e-2, "the adapter changes nothing"

    # gradients of the adapters: CE over a batch
    gb = torch.Generator().manual_seed(seed + 3)
    batch = torch.randint(0, gtf.COMMON["vocab_size"], (B, T + 1), generator=gb)
    pm.train()
    pm.zero_grad()
    out = pm(batch[:, :-1]).logits
    loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), batch[:, 1:].reshape(-1))
    loss.backward()
    grads = {strip_default(n): p.grad.detach().clone().contiguous()
             for n, p in pm.named_parameters() if "lora_" in n}
    save_file(grads, os.path.join(d, "grads.safetensors"), metadata={"format": "pt"})
    save_file({"logits": logits.contiguous(), "base_logits": base_logits.contiguous()},
              os.path.join(d, "ref.safetensors"), metadata={"format": "pt"})
    ref = {
        "variant": v["name"], "model_type": v["model_type"], "r": v["r"], "alpha": v["alpha"],
        "use_rslora": v["rslora"], "scale": v["alpha"] / (math.sqrt(v["r"]) if v["rslora"] else v["r"]),
        "target_modules": v["modules"], "target_parameters": v["parameters"],
        "ids": IDS, "B": B, "T": T, "batch": batch.tolist(), "loss": loss.item(),
        "peft_vs_hand_merge_max_abs": err, "peft": peft.__version__,
    }
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
    for root, _, files in os.walk(d):  # safetensors writes 0600
        for fn in files:
            os.chmod(os.path.join(root, fn), 0o644)
    print(f"{v['name']}: loss {loss.item():.6f}, peft vs hand merge {err:.2e}, "
          f"{len(grads)} adapter tensors")


def main():
    print(f"torch {torch.__version__}, peft {peft.__version__}")
    for i, v in enumerate(VARIANTS):
        build(v, 1234 + 17 * i)


if __name__ == "__main__":
    main()
