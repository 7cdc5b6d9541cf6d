#!/usr/bin/env python3
"""plot.py - the plots and tables of experiments a-e from the runs' logs.

Reads EXP_DIR/runs/NAME/{log.jsonl, wall_s, exit_code, route.json} (written
by experiments/*.sh) and writes, under --out (docs/results):
  a_curves.png      validation loss by step, dense vs MoE, both seeds
  b_experts.png     final validation loss by number of experts, and curves
  c_routing.png     final validation loss per router / balancing variant
  c_balance.png     max violation over training per variant
  d_capacity.png    dropped share vs validation loss per capacity factor
  e_heatmap.png     domain x expert shares per layer (baseline), with MI
  e_mi.png          I(domain; expert) per layer for each routed model
  summary.md        every table (markdown), the numbers docs/RESULTS.md quotes
  summary.json      the same numbers, machine-readable

Needs matplotlib (python3 -m pip install matplotlib==3.11.2; tools/README.md).
A run that is missing is left out of its plot and table.

    python3 experiments/plot.py --exp-dir build/experiments --out docs/results
"""
import argparse
import json
import math
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TAIL = 50  # steps the balance statistics are averaged over (the last ones)


def load_run(runs, name):
    d = os.path.join(runs, name)
    log = os.path.join(d, "log.jsonl")
    if not os.path.exists(log):
        return None
    recs = []
    with open(log) as f:
        for line in f:
            line = line.strip()
            if line:
                recs.append(json.loads(line))
    r = {"name": name, "recs": recs}
    for key in ("wall_s", "exit_code"):
        p = os.path.join(d, key)
        r[key] = open(p).read().strip() if os.path.exists(p) else None
    p = os.path.join(d, "route.json")
    r["route"] = json.load(open(p)) if os.path.exists(p) else None
    p = os.path.join(d, "config.in.json")
    r["config"] = json.load(open(p)) if os.path.exists(p) else {}
    return r


def evals(r):
    return [(x["step"], x["val_loss"]) for x in r["recs"] if "val_loss" in x]


def final_val(r):
    e = evals(r)
    return e[-1][1] if e else float("nan")


def last_step(r):
    return r["recs"][-1]["step"] if r["recs"] else 0


def mean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")


def stats(r):
    """Balance statistics over the last TAIL steps of a run."""
    tail = r["recs"][-TAIL:]
    out = {
        "val": final_val(r),
        "ce_tail": mean([x.get("ce") for x in tail]),
        "steps": last_step(r),
        "exit": r["exit_code"],
        "wall_s": float(r["wall_s"]) if r["wall_s"] else float("nan"),
        "tok_s": statistics.median([x["tokens_per_s"] for x in r["recs"]]) if r["recs"] else float("nan"),
        "dropped_tail": mean([x.get("dropped_frac") for x in tail]),
        "dropped_all": mean([x.get("dropped_frac") for x in r["recs"]]),
        "entropy_tail": mean([x.get("router_entropy") for x in tail]),
        "nonfinite": any(not math.isfinite(x.get("loss", 0)) for x in r["recs"]),
    }
    layers = [x.get("layers", []) for x in tail]
    if layers and layers[0]:
        out["maxviol_tail"] = mean([mean([l["max_violation"] for l in ls]) for ls in layers])
        out["dead_tail"] = mean([sum(l["dead"] for l in ls) for ls in layers])  # all layers
        out["dead_last"] = sum(l["dead"] for l in r["recs"][-1]["layers"])
    else:
        out["maxviol_tail"] = out["dead_tail"] = out["dead_last"] = float("nan")
    rt = r["route"]
    if rt:
        out["route_maxviol"] = mean([l["max_violation"] for l in rt["layers"]])
        out["route_dead"] = sum(l["dead"] for l in rt["layers"])
        out["mi"] = [l["mi_bits"] for l in rt["layers"]]
    return out


def steps_to(r, target):
    """First step (linear interpolation between evaluations) at which the
    run's validation loss is <= target; None if it never is."""
    e = evals(r)
    prev = None
    for s, v in e:
        if v <= target:
            if prev is None:
                return float(s)
            s0, v0 = prev
            return s0 + (s - s0) * (v0 - target) / (v0 - v) if v0 != v else float(s)
        prev = (s, v)
    return None


def common_seeds(S, names):
    """Seed 1, and each further seed every one of the named runs has."""
    return [sd for sd in (1, 2, 3) if sd == 1 or all(f"{n}-s{sd}" in S for n in names)]


def seed_mean(S, name, seeds):
    """stat -> its mean over NAME-sSEED for the seeds that ran."""
    return lambda key: mean([S[f"{name}-s{sd}"].get(key) for sd in seeds if f"{name}-s{sd}" in S])


def fmt(x, nd=3):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return f"{x:.{nd}f}"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    for row in rows:
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exp-dir", default="build/experiments")
    ap.add_argument("--out", default="docs/results")
    a = ap.parse_args()
    runs = os.path.join(a.exp_dir, "runs")
    os.makedirs(a.out, exist_ok=True)
    R = {}
    for name in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
        r = load_run(runs, name)
        if r and r["recs"]:
            R[name] = r
    S = {n: stats(r) for n, r in R.items()}
    md = ["# Experiment tables (written by experiments/plot.py)", ""]
    js = {"runs": S}

    def tok(n):
        return R[n]["recs"][-1]["step"] * 4 * 128

    # ------------------------------------------------------------------ a
    md += ["## a. MoE vs dense (equal active parameters, equal tokens)", ""]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    rows = []
    dense_final = [S[f"dense-s{s}"]["val"] for s in (1, 2) if f"dense-s{s}" in S]
    target = mean(dense_final)
    js["a"] = {"dense_final_mean": target, "moe": {}}
    for name, style in (("dense-s1", "C0-"), ("dense-s2", "C0--"), ("e8k2-s1", "C3-"), ("e8k2-s2", "C3--")):
        if name not in R:
            continue
        e = evals(R[name])
        ax.plot([s for s, _ in e], [v for _, v in e], style, marker="o", ms=3,
                label=name.replace("e8k2", "MoE 8x256 top-2").replace("dense", "dense 512"))
    for seed in (1, 2):
        m, d = f"e8k2-s{seed}", f"dense-s{seed}"
        if m not in S or d not in S:
            continue
        own = steps_to(R[m], S[d]["val"])
        avg = steps_to(R[m], target)
        steps = S[m]["steps"]
        js["a"]["moe"][m] = {"steps_to_own_dense": own, "steps_to_mean_dense": avg}
        rows.append([str(seed), fmt(S[d]["val"]), fmt(S[m]["val"]), fmt(S[d]["val"] - S[m]["val"]),
                     fmt(own, 1), fmt(steps / own if own else None, 2),
                     fmt(S[d]["wall_s"], 0), fmt(S[m]["wall_s"], 0)])
    if rows:
        md.append(table(["seed", "dense val", "MoE val", "dense - MoE", "MoE steps to dense's final",
                         "speedup (steps)", "dense wall s", "MoE wall s"], rows))
        md.append("")
        md.append(f"Mean dense final val loss {fmt(target, 4)}; MoE final mean "
                  f"{fmt(mean([S[f'e8k2-s{s}']['val'] for s in (1, 2) if f'e8k2-s{s}' in S]), 4)}.")
        md.append("")
    if dense_final:
        ax.axhline(target, color="gray", lw=0.8, ls=":", label="dense final (mean)")
    ax.set_xlabel("step (4 x 128 tokens each)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("a. MoE vs dense, equal active FFN width 512")
    ax.legend(fontsize=8)
    lo = min([v for n in R for _, v in evals(R[n]) if n.startswith(("dense", "e8k2"))] or [4])
    ax.set_ylim(lo - 0.05, lo + 1.2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "a_curves.png"), dpi=110)
    plt.close(fig)

    # ------------------------------------------------------------------ b
    Es = [(1, "dense"), (4, "e4k2"), (8, "e8k2"), (16, "e16k2"), (32, "e32k2")]
    Es = [(E, n) for E, n in Es if f"{n}-s1" in S]
    bseeds = common_seeds(S, [n for _, n in Es])
    md += [f"## b. Number of experts (top-2, expert width 256, seeds {bseeds})", ""]
    rows = []
    js["b"] = {}
    for E, n in Es:
        vals = [S[f"{n}-s{sd}"]["val"] for sd in bseeds]
        st = [steps_to(R[f"{n}-s{sd}"], S[f"dense-s{sd}"]["val"]) if E > 1 and f"dense-s{sd}" in S else None
              for sd in bseeds]
        ffn_total = 512 if E == 1 else E * 256
        js["b"][n] = {"E": E, "val": vals, "steps_to_dense": st}
        sm = seed_mean(S, n, bseeds)
        rows.append([str(E), str(ffn_total), "512", *[fmt(v) for v in vals], fmt(mean(vals)), fmt(sm("ce_tail")),
                     *([fmt(x, 0) for x in st] if E > 1 else ["-"] * len(bseeds)),
                     fmt(sm("maxviol_tail")), fmt(sm("dead_tail"), 2), fmt(sm("tok_s"), 0), fmt(sm("wall_s"), 0)])
    md.append(table(["E", "FFN width total/layer", "active", *[f"val s{sd}" for sd in bseeds], "val mean",
                     "train CE (last 50)", *[f"steps to dense's final (s{sd})" for sd in bseeds], "max viol",
                     "dead/step (sum of layers)", "tok/s", "wall s"], rows))
    md.append("")
    md.append("'steps to dense's final': the first step (interpolated between evaluations every 50 steps) at which "
              "the run's validation loss is at or below the final one of the dense run with the same seed; "
              "400 / that = the speedup in steps. Other columns: means over the seeds.")
    md.append("")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [E for E, _ in Es]
    ms = [mean([S[f"{n}-s{sd}"]["val"] for sd in bseeds]) for _, n in Es]
    ax1.plot(xs, ms, "o-", label=f"mean of seeds {bseeds}")
    for sd, mk in zip(bseeds, "x+1"):
        ax1.plot(xs, [S[f"{n}-s{sd}"]["val"] for _, n in Es], mk, color="gray", label=f"seed {sd}")
    for x, m in zip(xs, ms):
        ax1.annotate(f"{m:.3f}", (x, m), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("experts E (E = 1: dense FFN 512)")
    ax1.set_ylabel("final validation loss")
    ax1.set_title("b. experts at fixed top-2 and active width")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    for i, (E, n) in enumerate(Es):
        for sd, ls in zip(bseeds, ["-", "--", ":"]):
            e = evals(R[f"{n}-s{sd}"])
            ax2.plot([s for s, _ in e], [v for _, v in e], ls, marker="o", ms=2, color=f"C{i}",
                     label=f"E={E}" if sd == bseeds[0] else None)
    ax2.set_xlabel("step (solid: seed 1, dashed: seed 2)")
    ax2.set_ylabel("validation loss")
    if Es:
        lo = min(ms)
        ax2.set_ylim(lo - 0.15, lo + 1.0)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "b_experts.png"), dpi=110)
    plt.close(fig)

    # ------------------------------------------------------------------ c
    md += ["## c. Routing and balancing (8 x 256 per layer)", ""]
    C = [("nobal", "softmax top-2, no balancing loss", "2"),
         ("aux", "softmax top-2, aux 0.01", "2"),
         ("e8k2", "softmax top-2, aux 0.01 + z 0.001 (GShard-like)", "2"),
         ("bias", "sigmoid top-2 + selection bias (rate 0.001), no aux (DeepSeek-V3)", "2"),
         ("bias01", "sigmoid top-2 + selection bias (rate 0.01), no aux", "2"),
         ("noisy", "noisy top-2, aux + z", "2"),
         ("ec", "expert choice, capacity 1.0, aux + z", "2 (avg)"),
         ("fgshared", "15 x 128 top-3 + 1 shared x 128, aux + z (DeepSeekMoE-like)", "3 + 1"),
         ("top1", "softmax top-1 (weight 1), aux + z (Switch-like)", "1"),
         ("hash", "hash of token id, top-1", "1")]
    C = [c for c in C if f"{c[0]}-s1" in S]
    # the seeds every variant ran with, so that each mean is over the same seeds
    seeds = common_seeds(S, [c[0] for c in C])
    rows = []
    js["c"] = {}

    def cm(n, key):  # mean of a statistic over the seeds that ran
        return mean([S[f"{n}-s{sd}"].get(key) for sd in seeds if f"{n}-s{sd}" in S])

    for n, desc, k in C:
        vals = [S[f"{n}-s{sd}"]["val"] if f"{n}-s{sd}" in S else None for sd in seeds]
        js["c"][n] = {"val": vals, "val_mean": cm(n, "val")}
        rt = S[f"{n}-s1"]
        diffs = [v - S[f"e8k2-s{sd}"]["val"] if v is not None and f"e8k2-s{sd}" in S else None
                 for v, sd in zip(vals, seeds)]
        rows.append([n, desc, k, "256" if k == "1" else "512", *[fmt(v) for v in vals], fmt(cm(n, "val")),
                     *[("+" if d is not None and d > 0 else "") + fmt(d) for d in diffs],
                     fmt(cm(n, "ce_tail")), fmt(cm(n, "maxviol_tail")), fmt(rt.get("route_maxviol")),
                     fmt(cm(n, "dead_tail"), 2), str(rt.get("route_dead", "-")), fmt(cm(n, "dropped_all"), 4),
                     fmt(cm(n, "entropy_tail"), 3),
                     ",".join("NaN!" if S[f"{n}-s{sd}"]["nonfinite"] else str(S[f"{n}-s{sd}"]["exit"])
                              for sd in seeds if f"{n}-s{sd}" in S)])
    md.append(table(["run", "router", "k", "active width", *[f"val s{sd}" for sd in seeds], "val mean",
                     *[f"vs e8k2 s{sd}" for sd in seeds], "train CE (last 50)", "max viol (train, last 50)", "max viol (val routing, s1)",
                     "dead/step (all layers, last 50)", "dead on val (s1)", "dropped", "router entropy", "exit"],
                    rows))
    md.append("")
    md.append("Statistics other than val are means over the seeds (last 50 steps of training); "
              "'val routing' and 'dead on val' are from routing all validation tokens with seed 1's model.")
    md.append("")
    if C:
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(C) + 1.2))
        names = [n for n, _, _ in C]
        vals = [cm(n, "val") for n, _, _ in C]
        cols = ["C1" if k == "1" else "C0" for _, _, k in C]
        ax.barh(range(len(C)), vals, color=cols)
        for i, (n, _, _) in enumerate(C):
            for sd, mk in zip(seeds, "o^s"):
                if f"{n}-s{sd}" in S:
                    ax.plot(S[f"{n}-s{sd}"]["val"], i, mk, color="k", ms=4)
            mv = cm(n, "maxviol_tail")
            txt = f"{vals[i]:.3f}  (max viol {mv:.2f})" if not math.isnan(mv) else f"{vals[i]:.3f}"
            ax.text(max(vals) + 0.01, i, txt, va="center", fontsize=8)
        ax.set_yticks(range(len(C)))
        ax.set_yticklabels(names)
        ax.invert_yaxis()
        ax.set_xlim(min(vals) - 0.1, max(vals) + 0.2)
        ax.set_xlabel(f"final validation loss, mean of seeds {seeds} (markers: each seed); "
                      "blue: active width 512, orange: 256", fontsize=8)
        ax.set_title("c. routers and balancing on one budget")
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "c_routing.png"), dpi=110)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(8, 4))
        for i, (n, _, _) in enumerate(C):
            recs = R[f"{n}-s1"]["recs"]
            if not recs[0].get("layers") or n == "ec":  # expert choice: 0 by construction
                continue
            xs = [x["step"] for x in recs]
            ys = [mean([l["max_violation"] for l in x["layers"]]) for x in recs]
            w = 10
            sm = [mean(ys[max(0, j - w + 1): j + 1]) for j in range(len(ys))]
            ax.plot(xs, sm, label=n, color=f"C{i}")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("max violation (mean of layers, 10-step mean)")
        ax.set_title("c. load balance during training (seed 1; expert choice is 0 by construction)", fontsize=10)
        ax.legend(fontsize=7, ncol=3)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "c_balance.png"), dpi=110)
        plt.close(fig)

    # ------------------------------------------------------------------ d
    D = [("0.5", "cf0.5"), ("1.0", "cf1.0"), ("1.25", "cf1.25"), ("2.0", "cf2.0"), ("dropless", "e8k2")]
    D = [(f, n) for f, n in D if f"{n}-s1" in S]
    dseeds = common_seeds(S, [n for _, n in D])
    md += [f"## d. Capacity factor (8 x 256 top-2, aux + z, seeds {dseeds})", ""]
    rows = []
    js["d"] = {}
    for f, n in D:
        sm = seed_mean(S, n, dseeds)
        vals = [S[f"{n}-s{sd}"]["val"] for sd in dseeds]
        js["d"][n] = {"F": f, "val": vals, "dropped": sm("dropped_all")}
        rows.append([f, fmt(sm("dropped_all"), 4), fmt(sm("dropped_tail"), 4), *[fmt(v) for v in vals],
                     fmt(mean(vals)), fmt(sm("ce_tail")), fmt(sm("maxviol_tail")), fmt(sm("tok_s"), 0),
                     fmt(sm("wall_s"), 0)])
    md.append(table(["capacity factor", "dropped (all steps)", "dropped (last 50)",
                     *[f"val s{sd} (dropless eval)" for sd in dseeds], "val mean",
                     "train CE (last 50, with drops)", "max viol (kept pairs)", "tok/s", "wall s"], rows))
    md.append("")
    md.append("Means over the seeds. 'max viol' is of the pairs each expert kept (the training log counts "
              "loads after the capacity cut).")
    md.append("")
    if D:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [seed_mean(S, n, dseeds)("dropped_all") * 100 for _, n in D]
        ys = [mean([S[f"{n}-s{sd}"]["val"] for sd in dseeds]) for _, n in D]
        ax.plot(xs, ys, "o-", label=f"validation (dropless), mean of seeds {dseeds}")
        for sd, mk in zip(dseeds, "x+1"):
            ax.plot(xs, [S[f"{n}-s{sd}"]["val"] for _, n in D], mk, color="gray", label=f"seed {sd}")
        ax.plot(xs, [seed_mean(S, n, dseeds)("ce_tail") for _, n in D], "s--",
                label="train CE, last 50 steps (with drops)")
        for (f, n), x, y in zip(D, xs, ys):
            ax.annotate(f"F={f}", (x, y), textcoords="offset points", xytext=(4, 5), fontsize=8)
        ax.set_xlabel("pairs dropped over training (%)")
        ax.set_ylabel("loss")
        ax.set_title("d. capacity factor: dropped pairs vs loss")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "d_capacity.png"), dpi=110)
        plt.close(fig)

    # ------------------------------------------------------------------ e
    md += ["## e. Specialization (routing of all validation tokens)", ""]
    routed = [n for n in R if R[n]["route"]]
    if "e8k2-s1" in routed:
        rt = R["e8k2-s1"]["route"]
        doms = [d["name"] for d in rt["domains"]]
        L = rt["layers"]
        fig, axs = plt.subplots(1, len(L), figsize=(3.6 * len(L), 3.2))
        for ax, l in zip(axs if len(L) > 1 else [axs], L):
            M = [[c / max(1, sum(row)) for c in row] for row in l["domain_counts"]]
            im = ax.imshow(M, cmap="viridis", vmin=0, vmax=max(max(r) for r in M))
            ax.set_title(f"layer {l['layer']}: I = {l['mi_bits']:.3f} bits", fontsize=9)
            ax.set_xticks(range(l["n_experts"]))
            ax.set_xlabel("expert")
            ax.set_yticks(range(len(doms)))
            ax.set_yticklabels(doms, fontsize=8)
            for i, row in enumerate(M):
                for j, v in enumerate(row):
                    ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if v < 0.6 * max(max(r) for r in M) else "black")
            fig.colorbar(im, ax=ax, fraction=0.046)
        fig.suptitle("e. share of each domain's (token, slot) pairs per expert, e8k2-s1", fontsize=10)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "e_heatmap.png"), dpi=110)
        plt.close(fig)
        md.append(f"e8k2-s1 over {rt['tokens']} validation tokens; max I = {L[0]['mi_max_bits']:.3f} bits "
                  f"(log2 of 5 domains).")
        md.append("")
        # top tokens of a few experts in the last layer
        last = L[-1]
        md.append(f"Layer {last['layer']}: each expert's most frequent tokens (count), and the domain that sends "
                  "it the largest share of its pairs.")
        md.append("")
        rows = []
        for e, toks in enumerate(last["top_tokens"]):
            col = [row[e] for row in last["domain_counts"]]
            tot = max(1, sum(col))
            best = max(range(len(col)), key=lambda i: col[i])
            ts = " ".join("`" + (t["text"] or "?").replace("\n", "\\n").replace("\t", "\\t").replace("|", "\\|")
                          .replace("`", "'") + f"`{t['count']}" for t in toks[:10])
            rows.append([f"e{e}", f"{100 * last['load'][e]:.1f}%", f"{doms[best]} {100 * col[best] / tot:.0f}%", ts])
        md.append(table(["expert", "load", "top domain (share of its pairs)", "top tokens"], rows))
        md.append("")
    if routed:
        order = ["e8k2-s1", "e8k2-s2", "nobal-s1", "aux-s1", "bias-s1", "bias01-s1", "noisy-s1", "ec-s1",
                 "fgshared-s1", "top1-s1", "hash-s1", "e32k2-s1"]
        routed = [n for n in order if n in routed]
        rows = []
        for n in routed:
            mi = S[n]["mi"]
            mx = R[n]["route"]["layers"][0]["mi_max_bits"]
            rows.append([n.replace("-s1", ""), *[fmt(x) for x in mi], fmt(mx), fmt(S[n]["route_maxviol"]),
                         str(S[n]["route_dead"])])
        nl = max(len(S[n]["mi"]) for n in routed)
        md.append("I(domain; expert) in bits per layer, over all validation tokens:")
        md.append("")
        md.append(table(["run", *[f"layer {i}" for i in range(nl)], "max", "max viol (val)", "dead (val)"], rows))
        md.append("")
        fig, ax = plt.subplots(figsize=(8, 4))
        for i, n in enumerate(routed):
            ax.plot(range(len(S[n]["mi"])), S[n]["mi"], marker="o", label=n.replace("-s1", ""),
                    color=plt.cm.tab20(i % 20), ls="--" if n in ("hash-s1", "e32k2-s1") else "-")
        ax.set_xlabel("layer")
        ax.set_xticks(range(nl))
        ax.set_ylabel("I(domain; expert) (bits)")
        ax.set_title("e. how much the chosen expert tells about the domain")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "e_mi.png"), dpi=110)
        plt.close(fig)

    # --------------------------------------------------------------- all runs
    md += ["## All runs", ""]
    rows = []
    tot = 0.0
    for n in sorted(S):
        s = S[n]
        tot += 0 if math.isnan(s["wall_s"]) else s["wall_s"]
        rows.append([n, str(s["steps"]), str(tok(n)), fmt(s["val"], 4), fmt(s["ce_tail"]), fmt(s["tok_s"], 0),
                     fmt(s["wall_s"], 0), ("NaN!" if s["nonfinite"] else str(s["exit"]))])
    md.append(table(["run", "steps", "train tokens", "final val loss", "train CE (last 50)", "median tok/s",
                     "wall s", "exit"], rows))
    md.append("")
    md.append(f"Training wall time of all runs: {tot:.0f} s ({tot / 60:.1f} min).")
    md.append("")
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(js, f, indent=1, default=lambda x: None)
    print(f"wrote {a.out}/summary.md and the plots ({len(S)} runs)")


if __name__ == "__main__":
    main()
