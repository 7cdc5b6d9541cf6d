#!/usr/bin/env python3
"""specialize.py - how much of a trained router's choice is about the domain,
with the controls that say what "specialization" means here.

For each MoE layer of a checkpoint, over every token of a `moe data` shard
(consecutive windows of SEQ tokens from its start, as `moe route --data
--max-tokens 0 --seq SEQ` reads it), in bits, over (token, slot) pairs:

  mi           I(domain; expert) of the learned router
  mi_token     the same for a router that sees only the token: every
               occurrence of token id t goes to the experts the learned
               router chose most often for t in this data (in-sample, so an
               upper bound on what token identity alone explains)
  mi_random    the same for a random router over the same hidden states: a
               Gaussian matrix [E][D] (seeded) in place of the router
               weights, top-k of x . W^T, x the layer's router input from
               the trained model's own forward
  cmi          I(domain; expert | token) = sum_t p(t) I(domain; expert | t):
               what the routing says about the domain beyond the token
  cmi_random   the same for the random router (the plug-in estimate is
               biased upward by rare tokens; the random router has the same
               bias, so the comparison is the measure)
  enrichment   per expert, P(domain | expert) / P(domain) of its most
               enriched domain

Every number has a 95% percentile interval from a bootstrap over documents
(documents end at EOS; resampled with replacement within each domain, so
the domain mix is fixed), B resamples with seed 0. The plug-in conditional
MI is biased upward, and more so in a resample (repeated documents make
the counts per token sparser), so its own interval is shifted; the
differences learned - random (mi_minus_random, cmi_minus_random), where
the bias of the two cancels, are the measures to read.

The forward is transformers' (an independent implementation); the learned
choice is checked against `moe route --data` (`--moe`): the domain x
expert counts must agree, pair for pair, up to near-ties.

    python3 experiments/specialize.py RUN_DIR [RUN_DIR...] --data PREP/data
        [--moe build/moe] [--boot 200] --out FILE.json

Needs torch, transformers and numpy. Layouts: mixtral and qwen2_moe with
softmax token-choice routers (transformers has no hash, expert-choice or
selection-bias routing, and renormalizes a top-1 weight).
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np


def read_shard(path):
    blob = open(path, "rb").read()
    magic, version, dtype, n, vocab, n_dom, off, eos = struct.unpack_from("<8sIIQIIQI", blob, 0)
    if magic != b"MOETOKS\0" or version != 1 or dtype not in (2, 4):
        raise SystemExit(f"{path}: not a version 1 token shard")
    doms = []
    for i in range(n_dom):
        name, start, count = struct.unpack_from("<32sQQ", blob, 64 + 48 * i)
        doms.append((name.rstrip(b"\0").decode(), start, count))
    ids = np.frombuffer(blob, dtype=np.uint16 if dtype == 2 else np.uint32, count=n, offset=off).astype(np.int64)
    dom = np.zeros(n, dtype=np.int64)
    for k, (_, start, count) in enumerate(doms):
        dom[start:start + count] = k
    return ids, dom, [d[0] for d in doms], eos


def mi_bits(joint):
    """I(row; col) in bits of a count table (last two axes), summed over any
    leading axes' slices weighted by their share (the conditional MI)"""
    j = joint.astype(np.float64)
    tot = j.sum()
    if tot == 0:
        return 0.0
    pr = j.sum(axis=-1, keepdims=True)
    pc = j.sum(axis=-2, keepdims=True)
    n = j.sum(axis=(-2, -1), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = j * np.log2(j * n / (pr * pc))
    return float(max(0.0, np.nansum(t) / tot))


def collect(run, ids, seq):
    """per MoE layer: learned top-k experts [N][K], router input x [N][D]"""
    import torch
    import transformers
    torch.set_num_threads(1)  # a small model; more threads only spin on a shared machine
    model = transformers.AutoModelForCausalLM.from_pretrained(run, dtype=torch.float32)
    model.eval()
    cfg = model.config
    K = cfg.num_experts_per_tok
    E = getattr(cfg, "num_local_experts", None) or cfg.num_experts
    gates, caught = [], {}
    for i, layer in enumerate(model.model.layers):
        g = getattr(layer.mlp, "gate", None)
        if g is not None and hasattr(layer.mlp, "experts"):
            gates.append(i)

            def hook(mod, inp, out, i=i):
                x = inp[0].reshape(-1, inp[0].shape[-1])
                logits = out[0] if isinstance(out, tuple) else out
                caught.setdefault(i, ([], []))
                caught[i][0].append(x.detach().numpy().copy())
                caught[i][1].append(logits.detach().reshape(x.shape[0], -1).numpy().copy())
            g.register_forward_hook(hook)
    if not gates:
        raise SystemExit(f"{run}: no MoE layer with a gate")
    with torch.no_grad():
        for s in range(0, len(ids), seq):
            w = torch.tensor(ids[s:s + seq], dtype=torch.long)[None]
            model(input_ids=w)
    out = {}
    for i in gates:
        x = np.concatenate(caught[i][0])
        lg = np.concatenate(caught[i][1])
        top = np.argsort(-lg, axis=1, kind="stable")[:, :K]
        out[i] = (x, top)
    return out, K, E


def moe_counts(moe, run, data, seq):
    r = subprocess.run([moe, "route", run, "--data", data, "--max-tokens", "0", "--seq", str(seq),
                        "--top", "0", "--threads", "1"], capture_output=True, text=True, check=True)
    j = json.loads(r.stdout)
    return {l["layer"]: np.array(l["domain_counts"]) for l in j["layers"]}


def layer_stats(ids, dom, doc, top, x, E, D_dom, n_tok, boot, layer):
    N, K = top.shape
    rng = np.random.default_rng(1000 + layer)
    W = rng.standard_normal((E, x.shape[1]))
    rtop = np.argsort(-(x @ W.T), axis=1, kind="stable")[:, :K]
    # the token-only router: each id's K most chosen experts (ties: lower index)
    tok_e = np.zeros((n_tok, E), dtype=np.int64)
    np.add.at(tok_e, (np.repeat(ids, K), top.reshape(-1)), 1)
    ttop = np.argsort(-tok_e, axis=1, kind="stable")[:, :K][ids]
    pair_dom, pair_tok, pair_doc = np.repeat(dom, K), np.repeat(ids, K), np.repeat(doc, K)
    choices = {"": top.reshape(-1), "_token": ttop.reshape(-1), "_random": rtop.reshape(-1)}

    # I(domain; expert | token) counts [token][domain][expert] over the keys
    # that occur (the same keys in every resample; only their weights change)
    sparse = {}
    for tag, e in choices.items():
        if tag == "_token":
            continue
        u, inv = np.unique((pair_tok * D_dom + pair_dom) * E + e, return_inverse=True)
        tu, tinv = np.unique(u // (D_dom * E), return_inverse=True)
        sparse[tag] = (inv, len(u), tinv, u % (D_dom * E), len(tu))

    def measures(w):
        """every measure with document weights w[doc] (1 = the data itself)"""
        pw = w[pair_doc]
        out = {}
        for tag, e in choices.items():
            j = np.bincount(pair_dom * E + e, weights=pw, minlength=D_dom * E).reshape(D_dom, E)
            out["mi" + tag] = mi_bits(j)
            if tag != "_token":
                inv, nu, tinv, de, ntu = sparse[tag]
                c = np.bincount(inv, weights=pw, minlength=nu)
                full = np.zeros((ntu, D_dom * E))
                full[tinv, de] = c
                out["cmi" + tag] = mi_bits(full.reshape(ntu, D_dom, E))
            if tag == "":
                pde = j / j.sum()
                pd, pe = pde.sum(1, keepdims=True), pde.sum(0, keepdims=True)
                with np.errstate(divide="ignore", invalid="ignore"):
                    enr = np.where(pe > 0, pde / (pd * pe), 0)
                out["enrichment"] = enr
        return out

    n_doc = doc.max() + 1
    point = measures(np.ones(n_doc))
    doc_dom = np.zeros(n_doc, dtype=np.int64)
    doc_dom[doc] = dom
    brng = np.random.default_rng(0)
    samples = []
    for _ in range(boot):
        w = np.zeros(n_doc)
        for k in range(D_dom):
            members = np.flatnonzero(doc_dom == k)
            if len(members):
                np.add.at(w, brng.choice(members, size=len(members), replace=True), 1)
        samples.append(measures(w))
    for x in [point] + samples:
        x["mi_minus_random"] = x["mi"] - x["mi_random"]
        x["cmi_minus_random"] = x["cmi"] - x["cmi_random"]
    res = {"layer": layer}
    for k in ("mi", "mi_token", "mi_random", "cmi", "cmi_random", "mi_minus_random", "cmi_minus_random"):
        xs = np.array([s[k] for s in samples]) if samples else np.array([])
        res[k] = round(point[k], 5)
        res[k + "_ci"] = [round(float(np.percentile(xs, 2.5)), 5), round(float(np.percentile(xs, 97.5)), 5)] if boot else None
    enr = point["enrichment"]
    res["enrichment"] = [[round(float(v), 3) for v in row] for row in enr.T]  # [E][D]
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--data", required=True, help="a `moe data` directory (its val.bin is read)")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--boot", type=int, default=200)
    p.add_argument("--moe", help="check the learned choice against this moe binary's `moe route`")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    ids, dom, names, eos = read_shard(os.path.join(a.data, "val.bin"))
    doc = np.concatenate([[0], np.cumsum(ids[:-1] == eos)])
    result = {"data": os.path.basename(os.path.normpath(a.data)), "split": "val", "tokens": int(len(ids)),
              "documents": int(doc.max() + 1), "domains": names, "seq": a.seq, "bootstrap": a.boot,
              "bootstrap_seed": 0, "runs": {}}
    n_tok = int(ids.max()) + 1
    for run in a.runs:
        name = os.path.basename(os.path.normpath(os.path.dirname(run) if run.endswith("latest") else run))
        path = run if os.path.exists(os.path.join(run, "config.json")) else os.path.join(run, "latest")
        layers, K, E = collect(path, ids, a.seq)
        check = moe_counts(a.moe, path, a.data, a.seq) if a.moe else None
        out = []
        for li, (x, top) in sorted(layers.items()):
            r = layer_stats(ids, dom, doc, top, x, E, len(names), n_tok, a.boot, li)
            if check is not None:
                mine = np.zeros((len(names), E), dtype=np.int64)
                np.add.at(mine, (np.repeat(dom, K), top.reshape(-1)), 1)
                diff = int(np.abs(mine - check[li]).sum())
                r["moe_route_pairs_differing"] = diff // 2
                if diff > 0.001 * mine.sum():
                    raise SystemExit(f"{name} layer {li}: transformers' routing differs from moe route's "
                                     f"in {diff // 2} of {mine.sum()} pairs")
            out.append(r)
            print(f"{name} layer {li}: I(dom;exp) {r['mi']:.3f} bits (token-only {r['mi_token']:.3f}, "
                  f"random {r['mi_random']:.3f}); I(dom;exp|tok) {r['cmi']:.3f} (random {r['cmi_random']:.3f})",
                  file=sys.stderr)
        result["runs"][name] = {"K": K, "layers": out}
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
