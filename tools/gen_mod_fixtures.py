#!/usr/bin/env python3
"""gen_mod_fixtures.py - PyTorch reference for Mixture-of-Depths (MoD) layers
(docs/TRAINING.md "Mixture-of-Depths"): initial weights, data, step-0 loss and
gradients, a 10-step AdamW trajectory, and logits of both selection rules.

Writes tests/fixtures/train/<variant>/ for each variant below, in the layout
of tools/gen_train_fixtures.py (whose helpers, hyperparameters and AdamW
definition it reuses):
  config.json, model.safetensors   initial weights (f32) with the MoD routers
                   model.layers.L.mod_router.weight [1][D]; config.json has
                   "moe": {"mod": {"capacity", "layers"}} (transformers ignores it)
  batch.json       ids [STEPS][B][T+1] and the hyperparameters (alpha_aux = beta_z
                   = gamma_kl = 0: the MoE balancing losses are not part of this
                   reference; mod_aux is the weight of the routers' BCE)
  grads.safetensors  step 0: d(total loss)/d(every parameter)
  ref.json         step-0 parts, the trajectory (loss, ce, mod_bce, mod_acc,
                   mod_frac, grad_norm), logits_topc [B][T][V] (the training rule on
                   step 0's inputs, initial weights) and logits_causal [B][T][V] (the
                   inference rule r > 0, each sequence alone)

Definition (the forward around transformers' own decoder layers, eager
attention, float32): x = embeddings; for each layer l:
  not MoD: x = layer(x) (causal, positions 0..T-1)
  MoD:     r = x . w_l [B][T]; S = per sequence the top C = ceil(capacity*T) by r
           (ties: lower position; torch's stable sort of -r), in position order;
           in inference (the causal rule) S = the tokens with r > 0;
           y = layer(x_S) with position_ids S (RoPE at the original positions) and
           a causal mask over the compacted sequence; x_S += sigmoid(r_S) (y - x_S);
           the other tokens pass unchanged.
  logits = lm_head(norm(x)).
  mod_bce = mean over MoD layers of mean over B*T tokens of
            BCE_with_logits(r, 1 if the token was in S (top-C) else 0)
  total = CE + MOD_AUX * mod_bce
Every top-C cut has a gap > GAP_MIN between the C-th and (C+1)-th logit, every
causal-rule logit |r| > GAP_MIN, every MoE router's K-th and (K+1)-th logit
differ by > GAP_MIN, at every step (else the data is reseeded).

Run:  python3 tools/gen_mod_fixtures.py   (CPU, float32, one thread, fixed seeds)
"""
import os
os.environ.setdefault("TQDM_DISABLE", "1")
import json
import math
import shutil
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_train_fixtures as g  # noqa: E402

OUT = g.OUT
B, T, STEPS = g.B, g.T, g.STEPS
MOD_AUX = 0.01
GAP_MIN = g.GAP_MIN

VARIANTS = [
    dict(name="mod_mixtral", model_type="mixtral",
         cfg=dict(g.MIXTRAL, num_hidden_layers=3), mod={"capacity": 0.5, "layers": [0, 2]}),
    dict(name="mod_dense", model_type="qwen2_moe",
         cfg=dict(g.QWEN2, num_hidden_layers=3, mlp_only_layers=[0, 1, 2]),
         mod={"capacity": 0.5, "layers": "odd"}),
]


def mod_layers(v, L):
    ly = v["mod"]["layers"]
    if ly == "all":
        return list(range(L))
    if ly in ("odd", "even"):
        return [i for i in range(L) if (i % 2 == 1) == (ly == "odd")]
    return list(ly)


class Gaps:
    """The smallest selection gap seen (MoD cuts, causal signs, MoE top-K)."""

    def __init__(self, model):
        self.min = float("inf")
        for mod in model.modules():
            if g.is_router(mod):
                mod.register_forward_hook(self.router_hook)

    def router_hook(self, mod, inp, out):
        z = F.linear(inp[0].reshape(-1, mod.weight.shape[1]), mod.weight).detach()
        self.min = min(self.min, g.kth_gap(z, mod.top_k))

    def see(self, v):
        self.min = min(self.min, float(v))


def causal_mask(n):
    m = torch.full((n, n), torch.finfo(torch.float32).min).triu(1)
    return m[None, None]


def run_layer(model, layer, x, pos):
    """transformers' decoder layer on x [b][n][D] at positions pos [b][n]."""
    pe = model.model.rotary_emb(x, pos)
    return layer(x, position_embeddings=pe, attention_mask=causal_mask(x.shape[1]),
                 position_ids=pos)


def forward(model, routers, v, ids, rule, gaps=None):
    """logits [b][n][V] and per MoD layer (r [b][n], target [b][n])."""
    m = model.model
    x = m.embed_tokens(ids)
    b, n = ids.shape
    recs = []
    for l, layer in enumerate(m.layers):
        if l not in routers:
            x = run_layer(model, layer, x, torch.arange(n).expand(b, n))
            continue
        r = (x @ routers[l].t()).squeeze(-1)
        rows = []
        if rule == "topc":
            C = max(1, math.ceil(v["mod"]["capacity"] * n - 1e-6))
            for s in range(b):
                order = torch.argsort(-r[s].detach(), stable=True)
                if gaps is not None and C < n:
                    gaps.see((r[s, order[C - 1]] - r[s, order[C]]).detach())
                rows.append(torch.sort(order[:C]).values)
        else:
            for s in range(b):
                if gaps is not None:
                    gaps.see(r[s].detach().abs().min())
                rows.append(torch.nonzero(r[s].detach() > 0).flatten())
        target = torch.zeros(b, n)
        outs = []
        for s in range(b):
            idx = rows[s]
            target[s, idx] = 1.0
            if len(idx) == 0:
                outs.append(x[s])
                continue
            xs = x[s, idx][None]
            y = run_layer(model, layer, xs, idx[None])[0]
            gate = torch.sigmoid(r[s, idx])[:, None]
            outs.append(x[s].index_put((idx,), x[s, idx] + gate * (y - x[s, idx])))
        x = torch.stack(outs)
        recs.append((r, target))
    return model.lm_head(m.norm(x)), recs


def loss_parts(logits, tgt, recs):
    V = logits.shape[-1]
    ce = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))
    bce = sum(F.binary_cross_entropy_with_logits(r, t) for r, t in recs) / len(recs)
    acc = sum(((r.detach() > 0).float() == t).float().mean() for r, t in recs) / len(recs)
    frac = sum((r.detach() > 0).float().mean() for r, _ in recs) / len(recs)
    return dict(total=ce + MOD_AUX * bce, ce=ce, bce=bce, acc=float(acc), frac=float(frac))


def build_model(v, seed):
    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(v["model_type"], **g.COMMON, **v["cfg"])
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    g.randomize(model, gen, "hf")
    model.eval()
    D = cfg.hidden_size
    routers = {l: torch.nn.Parameter(torch.randn(1, D, generator=gen) * (2.0 / math.sqrt(D)))
               for l in mod_layers(v, cfg.num_hidden_layers)}
    for l, p in routers.items():
        model.register_parameter(f"mod_router_{l}", p)
    return model, routers


def param_names(model):
    """in-memory name -> file name (the routers under model.layers.L.mod_router)."""
    out = {}
    for n, _ in model.named_parameters():
        out[n] = (f"model.layers.{n.split('_')[-1]}.mod_router.weight"
                  if n.startswith("mod_router_") else n)
    return out


def to_file(model, tensors):
    names = param_names(model)
    plain = {n: t for n, t in tensors.items() if not n.startswith("mod_router_")}
    out = g.file_tensors(model, plain)
    for n, t in tensors.items():
        if n.startswith("mod_router_"):
            out[names[n]] = t.detach().contiguous()
    return out


def train(v, seed, batches):
    model, routers = build_model(v, seed)
    gaps = Gaps(model)
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.dim() >= 2]
    no_decay = [p for n, p in named if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": g.WD},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=g.PEAK, betas=g.BETAS, eps=g.EPS, foreach=False, fused=False)
    init = to_file(model, {n: p.detach().clone() for n, p in named})
    traj, grads0, step0 = [], None, None
    for s in range(STEPS):
        ids = torch.tensor(batches[s])
        opt.zero_grad(set_to_none=True)
        logits, recs = forward(model, routers, v, ids[:, :-1], "topc", gaps)
        parts = loss_parts(logits, ids[:, 1:], recs)
        parts["total"].backward()
        for n, p in named:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if s == 0:
            grads0 = to_file(model, {n: p.grad.detach().clone() for n, p in named})
            step0 = parts
        gn = float(torch.nn.utils.clip_grad_norm_([p for _, p in named], g.CLIP, foreach=False))
        lr = g.lr_at(s)
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.step()
        traj.append(dict(step=s, lr=lr, loss=parts["total"].item(), ce=parts["ce"].item(),
                         aux_loss=0.0, z_loss=0.0, kl_loss=0.0, mod_bce=parts["bce"].item(),
                         mod_acc=parts["acc"], mod_frac=parts["frac"], grad_norm=gn))
    return dict(init=init, grads=grads0, step0=step0, traj=traj, min_gap=gaps.min)


def inference_logits(v, seed, batches):
    """Both rules on step 0's inputs with the initial weights."""
    model, routers = build_model(v, seed)
    gaps = Gaps(model)
    ids = torch.tensor(batches[0])[:, :-1]
    with torch.no_grad():
        topc, _ = forward(model, routers, v, ids, "topc", gaps)
        causal, fr = [], []
        for s in range(B):
            lg, recs = forward(model, routers, v, ids[s:s + 1], "causal", gaps)
            causal.append(lg[0])
            fr.append([float((r > 0).float().mean()) for r, _ in recs])
    return topc, torch.stack(causal), gaps.min, fr


def write(v, seed, batches, res, topc, causal, fr):
    d = os.path.join(OUT, v["name"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    model, _ = build_model(v, seed)
    model.save_pretrained(d)
    st = {k: t for k, t in load_file(os.path.join(d, "model.safetensors")).items()
          if not k.startswith("mod_router_")}  # saved under their file names below
    for k, t in res["init"].items():
        if k in st:
            assert torch.equal(st[k], t), k
        st[k] = t
    assert sorted(st) == sorted(res["init"]), sorted(set(st) ^ set(res["init"]))
    save_file(st, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    save_file(res["grads"], os.path.join(d, "grads.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    cfg["moe"] = {"mod": v["mod"]}
    g.dump_json(cfg, os.path.join(d, "config.json"))
    hyper = dict(alpha_aux=0.0, beta_z=0.0, gamma_kl=0.0, mod_aux=MOD_AUX, clip_grad_norm=g.CLIP,
                 lr=[g.lr_at(s) for s in range(STEPS)],
                 adamw=dict(beta1=g.BETAS[0], beta2=g.BETAS[1], eps=g.EPS, weight_decay=g.WD))
    g.dump_json(dict(B=B, T=T, steps=STEPS, ids=batches, hyper=hyper, seed=seed),
                os.path.join(d, "batch.json"))
    s0 = res["step0"]
    g.dump_json(dict(variant=v["name"], mod=v["mod"],
                     step0=dict(loss=s0["total"].item(), ce=s0["ce"].item(), mod_bce=s0["bce"].item(),
                                mod_acc=s0["acc"], mod_frac=s0["frac"]),
                     trajectory=res["traj"], min_gap=res["min_gap"],
                     causal_frac=fr, logits_topc=topc.tolist(), logits_causal=causal.tolist()),
                 os.path.join(d, "ref.json"))
    for fn in os.listdir(d):
        os.chmod(os.path.join(d, fn), 0o644)


def main():
    torch.set_num_threads(1)
    for v in VARIANTS:
        for seed in range(100, 200):
            batches = g.make_batches(seed, g.COMMON["vocab_size"])
            res = train(v, seed, batches)
            topc, causal, gap_inf, fr = inference_logits(v, seed, batches)
            mixed = all(0 < f < 1 for row in fr for f in row)
            if res["min_gap"] > GAP_MIN and gap_inf > GAP_MIN and mixed:
                res["min_gap"] = min(res["min_gap"], gap_inf)
                write(v, seed, batches, res, topc, causal, fr)
                print(f"{v['name']}: seed {seed}, min gap {res['min_gap']:.3g}, "
                      f"loss {res['traj'][0]['loss']:.5f} -> {res['traj'][-1]['loss']:.5f}, "
                      f"causal share {fr}")
                break
        else:
            raise SystemExit(f"{v['name']}: no seed without near-ties")


if __name__ == "__main__":
    main()
