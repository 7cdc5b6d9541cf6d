#!/usr/bin/env python3
"""train_torch.py - the PyTorch side of bench/train_bench.sh: training
throughput of a Mixtral-layout MoE in transformers on the CPU, with the
objective and update `moe train` uses (docs/TRAINING.md), so the two
tokens/s figures measure the same work.

  python bench/train_torch.py make-data DIR --vocab V --tokens N [--seed S]
      write DIR/train.bin and DIR/val.bin (shard format of src/train/data.h,
      uniform random ids) and DIR/meta.json: the input of both trainers
  python bench/train_torch.py train --config CONFIG.json --data DIR
      [--steps N] [--warmup-steps W] [--batch B] [--seq T] [--threads N]
      train MixtralForCausalLM(config) in float32 for W untimed + N timed
      steps on random windows of DIR/train.bin; print one JSON object:
      median step time, tokens/s, the losses

Per step: loss = CE + aux * Switch load-balancing loss + z * router z-loss,
computed by hand from the router logits (each MoE router's forward is hooked;
aux_l = E * sum_i f_i P_i, f_i the share of (token, slot) pairs routed to
expert i, P_i the mean softmax probability; z_l = mean (logsumexp z)^2;
both averaged over the layers), backward, clip_grad_norm_, AdamW with weight
decay on matrices only, warmup + cosine learning rate.
"""
import os

os.environ.setdefault("TQDM_DISABLE", "1")
import argparse
import json
import math
import statistics
import struct
import sys
import time

import numpy as np

MAGIC = b"MOETOKS\0"


# ------------------------------------------------------------------- data

def write_shard(path, ids, vocab):
    """One shard, version 1: 64-byte header, one domain, uint16/uint32 ids."""
    dtype = 2 if vocab <= 65536 else 4
    n_domains = 1
    data_offset = (64 + 48 * n_domains + 63) // 64 * 64
    head = MAGIC + struct.pack("<IIQIIQI", 1, dtype, len(ids), vocab, n_domains, data_offset,
                               0xFFFFFFFF)
    head += b"\0" * (64 - len(head))
    dom = b"default".ljust(32, b"\0") + struct.pack("<QQ", 0, len(ids))
    with open(path, "wb") as f:
        f.write(head + dom + b"\0" * (data_offset - 64 - len(dom)))
        f.write(np.asarray(ids, dtype="<u2" if dtype == 2 else "<u4").tobytes())


def read_shard(path):
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:8] != MAGIC:
        sys.exit(f"{path}: not a token shard")
    _, dtype, n, vocab, _, off, _ = struct.unpack_from("<IIQIIQI", buf, 8)
    return np.frombuffer(buf, dtype="<u2" if dtype == 2 else "<u4", count=n, offset=off), vocab


def make_data(a):
    os.makedirs(a.dir, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    n_val = max(a.tokens // 20, 4 * 1024)
    train = rng.integers(0, a.vocab, a.tokens)
    val = rng.integers(0, a.vocab, n_val)
    write_shard(os.path.join(a.dir, "train.bin"), train, a.vocab)
    write_shard(os.path.join(a.dir, "val.bin"), val, a.vocab)
    meta = {"format": "moe-tokens", "version": 1, "tokenizer": None, "vocab": a.vocab,
            "eos_id": None, "dtype": "uint16" if a.vocab <= 65536 else "uint32",
            "document_split": "none (uniform random ids, bench/train_torch.py)",
            "train": {"file": "train.bin", "tokens": int(a.tokens), "documents": 1},
            "val": {"file": "val.bin", "tokens": int(n_val), "documents": 1},
            "domains": [{"name": "default", "train": {"start": 0, "end": int(a.tokens)},
                         "val": {"start": 0, "end": int(n_val)}}]}
    with open(os.path.join(a.dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {a.dir}: train.bin {a.tokens} tokens, val.bin {n_val} tokens, vocab {a.vocab}")


# ------------------------------------------------------------------ train

def lr_at(s, peak, floor, warmup, total):
    if s < warmup:
        return peak * (s + 1) / warmup
    return floor + (peak - floor) / 2 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))


def train(a):
    import torch
    import torch.nn.functional as F
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = MixtralConfig.from_json_file(a.config)
    cfg.router_jitter_noise = 0.0
    cfg.output_router_logits = False  # the aux loss is ours, below
    model = MixtralForCausalLM(cfg).to(torch.float32)
    if a.experts_impl:
        model.set_experts_implementation(a.experts_impl)
    if a.attn_impl:
        model.set_attn_implementation(a.attn_impl)
    model.train()
    E, K = cfg.num_local_experts, cfg.num_experts_per_tok

    records = []  # (router logits [N][E], chosen experts [N][K]) per MoE layer

    def hook(mod, inp, out):
        records.append((out[0], out[2]))

    n_routers = 0
    for name, mod in model.named_modules():
        if type(mod).__name__.endswith("TopKRouter"):
            mod.register_forward_hook(hook)
            n_routers += 1
    if n_routers != cfg.num_hidden_layers:
        sys.exit(f"found {n_routers} routers for {cfg.num_hidden_layers} layers")

    named = list(model.named_parameters())
    decay = [p for _, p in named if p.dim() >= 2]
    no_decay = [p for _, p in named if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    params = [p for _, p in named]

    ids_all, vocab = read_shard(os.path.join(a.data, "train.bin"))
    if vocab > cfg.vocab_size:
        sys.exit(f"data vocab {vocab} > model vocab {cfg.vocab_size}")
    rng = np.random.default_rng(a.seed)
    B, T = a.batch, a.seq
    total = a.warmup_steps + a.steps
    times, rows = [], []
    for s in range(total):
        starts = rng.integers(0, len(ids_all) - T - 1, B)
        batch = torch.from_numpy(np.stack([ids_all[i:i + T + 1] for i in starts]).astype(np.int64))
        inp, tgt = batch[:, :-1], batch[:, 1:]
        t0 = time.perf_counter()
        records.clear()
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=inp, use_cache=False).logits
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        aux_l, z_l = [], []
        for z, idx in records:
            N = z.shape[0]
            p = torch.softmax(z, dim=-1)
            f = torch.bincount(idx.reshape(-1), minlength=E).to(p.dtype) / (N * K)
            aux_l.append(E * (f * p.mean(0)).sum())
            z_l.append(torch.logsumexp(z, dim=-1).pow(2).mean())
        aux, zl = torch.stack(aux_l).mean(), torch.stack(z_l).mean()
        loss = ce + a.aux * aux + a.z * zl
        loss.backward()
        gn = float(torch.nn.utils.clip_grad_norm_(params, a.clip))
        lr = lr_at(s, a.lr, a.lr / 10, 2, total)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        dt = time.perf_counter() - t0
        if s >= a.warmup_steps:
            times.append(dt)
        rows.append(dict(step=s + 1, loss=loss.item(), ce=ce.item(), aux_loss=aux.item(),
                         z_loss=zl.item(), grad_norm=gn, lr=lr, seconds=dt,
                         tokens_per_s=B * T / dt))
        if a.verbose:
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    med = statistics.median(times)
    n_params = sum(p.numel() for p in params)
    print(json.dumps(dict(impl="pytorch", torch=torch.__version__, threads=torch.get_num_threads(),
                          experts_impl=model.config._experts_implementation,
                          attn_impl=model.config._attn_implementation,
                          batch=B, seq=T, steps_timed=len(times), step_s_median=med,
                          tokens_per_s=B * T / med, params=n_params,
                          first_loss=rows[0]["loss"], last_loss=rows[-1]["loss"], log=rows)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-data", help="write random-id token shards")
    m.add_argument("dir")
    m.add_argument("--vocab", type=int, required=True)
    m.add_argument("--tokens", type=int, default=1 << 20)
    m.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("train", help="time training steps in PyTorch")
    t.add_argument("--config", required=True)
    t.add_argument("--data", required=True)
    t.add_argument("--steps", type=int, default=8, help="timed steps")
    t.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--seq", type=int, default=256)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--wd", type=float, default=0.1)
    t.add_argument("--clip", type=float, default=1.0)
    t.add_argument("--aux", type=float, default=0.01)
    t.add_argument("--z", type=float, default=0.001)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--experts-impl", help="transformers experts implementation (eager, batched_mm, "
                   "grouped_mm; default: transformers' choice)")
    t.add_argument("--attn-impl", help="attention implementation (eager, sdpa; default: transformers')")
    t.add_argument("--verbose", action="store_true", help="a JSON line per step on stderr")
    a = ap.parse_args()
    make_data(a) if a.cmd == "make-data" else train(a)


if __name__ == "__main__":
    main()
