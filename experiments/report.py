#!/usr/bin/env python3
"""report.py - docs/RESULTS.md from the committed run logs, and the packing
of new runs into them.

    python3 experiments/report.py pack --exp-dir DIR [--runs docs/results/runs]
        copy every finished run of DIR/runs (experiments/routers.sh) into
        RUNS: NAME.meta.json (its run.json and config) and NAME.log.jsonl.xz
        (its per-step log, compressed)
    python3 experiments/report.py render [--check] [--runs R] [--template T] [--doc D]
        compute every number and table from RUNS and fill the template
        (experiments/RESULTS.md.in) into docs/RESULTS.md; with --check, write
        nothing and exit 1 with a diff when the document differs from what
        the logs give (CI runs this)
    python3 experiments/report.py plots [--runs R] [--out docs/results]
        the figures (needs matplotlib; not checked, since their bytes depend
        on its version)

Only the standard library is used for pack and render. The template's
{{name}} is a value, {{table:name}} a markdown table; an unknown name is an
error, so the document cannot quote a number the logs do not give.
"""
import argparse
import difflib
import glob
import json
import lzma
import math
import os
import re
import statistics
import sys

from report_grow import grow_values
from runlogs import NAME_RE, Run, load_runs, mean_ci, md_table, pm, f3

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUNS = os.path.join(ROOT, "docs", "results", "runs")
TEMPLATE = os.path.join(HERE, "RESULTS.md.in")
DOC = os.path.join(ROOT, "docs", "RESULTS.md")
SPEC = os.path.join(ROOT, "docs", "results", "specialization.json")
STEP_TIME = os.path.join(ROOT, "docs", "results", "step_time.jsonl")
RUNS_FLOOR = os.path.join(ROOT, "docs", "results", "runs-floor")

TUNE_SEED = 11
# (arm, label, active FFN width a token, total FFN width a layer), table order
ARMS = [
    ("dense", "dense FFN 512 (equal active)", 512, 512),
    ("dense4x", "dense FFN 2048 (equal total)", 2048, 2048),
    ("top2", "top-2 of 8 x 256, aux + z (GShard/Mixtral)", 512, 2048),
    ("switch", "Switch: top-1 of 8 x 256, weight p, capacity 1.25, aux", 256, 2048),
    ("hash", "hash top-1 of 8 x 256", 256, 2048),
    ("fgshared", "DeepSeekMoE: top-3 of 15 x 128 + 1 shared", 512, 2048),
    ("ec", "expert choice, capacity 1, of 8 x 256", 512, 2048),
    ("noisy", "noisy top-2 of 8 x 256, aux + z", 512, 2048),
    ("bias", "loss-free bias balancing, sigmoid top-2 of 8 x 256", 512, 2048),
    ("nobal", "top-2 of 8 x 256, no balancing loss", 512, 2048),
    ("e4", "top-2 of 4 x 256, aux + z", 512, 1024),
    ("e16", "top-2 of 16 x 256, aux + z", 512, 4096),
    ("e32", "top-2 of 32 x 256, aux + z", 512, 8192),
    ("cf050", "top-2 of 8 x 256, capacity factor 0.5", 512, 2048),
    ("cf100", "top-2 of 8 x 256, capacity factor 1.0", 512, 2048),
    ("cf125", "top-2 of 8 x 256, capacity factor 1.25", 512, 2048),
    ("cf200", "top-2 of 8 x 256, capacity factor 2.0", 512, 2048),
    ("mod", "Mixture-of-Depths: 8 dense layers (FFN 512), each at capacity 0.5", 512, 512),
    ("modmoe", "Mixture-of-Depths: 8 layers of top-2 of 8 x 256, each at capacity 0.5", 512, 2048),
    ("mododd", "Mixture-of-Depths: 6 dense layers (FFN 512), the odd ones at capacity 0.333", 512, 512),
]
NO_EXPERTS = {"dense", "dense4x", "mod", "mododd"}  # arms without experts or a router of experts
ARM_LABEL = {a: lab for a, lab, _, _ in ARMS}

# ---------------------------------------------------------------- pack

def pack(exp_dir, out, only=None):
    os.makedirs(out, exist_ok=True)
    n = 0
    for d in sorted(glob.glob(os.path.join(exp_dir, "runs", "*"))):
        name = os.path.basename(d)
        if only and not re.search(only, name):
            continue
        rj, log = os.path.join(d, "run.json"), os.path.join(d, "log.jsonl")
        if not (os.path.exists(rj) and os.path.exists(log)) or not NAME_RE.match(name):
            continue
        meta = json.load(open(rj))
        cfg = os.path.join(d, "config.in.json")
        meta["config"] = json.load(open(cfg)) if os.path.exists(cfg) else None
        ev = os.path.join(d, "eval.json")  # experiments/grow.sh: moe ppl per domain
        if os.path.exists(ev):
            meta["eval"] = json.load(open(ev))
        with open(os.path.join(out, name + ".meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write("\n")
        raw = open(log, "rb").read()
        dst = os.path.join(out, name + ".log.jsonl.xz")
        if not os.path.exists(dst) or lzma.decompress(open(dst, "rb").read()) != raw:
            with open(dst, "wb") as f:
                f.write(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
        n += 1
    print(f"packed {n} runs into {out}")


# ---------------------------------------------------------------- analysis

class Study:
    def __init__(self, runs):
        self.runs = runs
        self.tuning = {}   # arm -> {lr: Run}
        self.final = {}    # arm -> {seed: Run} at the arm's chosen lr
        self.budget = {}   # arm -> {budget: {seed: Run}}
        self.lr = {}       # arm -> chosen lr text
        self.superseded = []  # finished runs at a rate other than the arm's tuned one
        for r in runs.values():
            if r.seed == TUNE_SEED and r.budget is None:
                self.tuning.setdefault(r.arm, {})[r.lr_text] = r
        for arm, t in self.tuning.items():
            done = {lr: r for lr, r in t.items() if r.finished}
            if done:
                self.lr[arm] = min(done, key=lambda lr: (done[lr].val, float(lr)))
        for r in runs.values():
            if r.seed == TUNE_SEED or not r.finished:
                continue
            if self.lr.get(r.arm) != r.lr_text:  # made before the sweep found a better rate
                self.superseded.append(r.name)
                continue
            if r.budget is None:
                self.final.setdefault(r.arm, {})[r.seed] = r
            else:
                self.budget.setdefault(r.arm, {}).setdefault(r.budget, {})[r.seed] = r

    def vals(self, arm):
        return {s: r.val for s, r in sorted(self.final.get(arm, {}).items())}

    def paired(self, a, b):
        """(mean, ci, n, seeds) of val(a) - val(b) over the seeds both have"""
        va, vb = self.vals(a), self.vals(b)
        seeds = sorted(set(va) & set(vb))
        m, h = mean_ci([va[s] - vb[s] for s in seeds])
        return m, h, len(seeds), seeds

    def arm_stat(self, arm, fn):
        return mean_ci([fn(r) for r in self.final.get(arm, {}).values()])


def verdict_order(study, order, names):
    """the published ordering (best first) checked pair by pair: each
    adjacent pair's paired difference and whether its interval excludes 0"""
    parts, agree, resolved, against = [], 0, 0, 0
    for better, worse in zip(order, order[1:]):
        m, h, n, _ = study.paired(worse, better)  # > 0 when the published order holds
        if n < 2:
            parts.append(f"{names[worse]} - {names[better]}: too few seeds ({n})")
            continue
        same = m > 0
        sig = not math.isnan(h) and abs(m) > h
        agree += same
        resolved += sig
        against += (not same) and sig
        parts.append(f"{names[worse]} - {names[better]} = {pm(m, h, sign=True)} "
                     f"({'same order' if same else 'reversed'}, {'resolved' if sig else 'within the interval'}, {n} seeds)")
    pairs = len(order) - 1
    if against:
        v = "not reproduced"
    elif agree == pairs and resolved == pairs:
        v = "reproduced"
    elif agree == pairs:
        v = "same order, not resolved"
    else:
        v = "not resolved"
    return v, parts


def compute(study):
    V, T = {}, {}
    runs = [r for r in study.runs.values()]
    fin = [r for r in runs if r.finished]
    V["runs"] = str(len(runs))
    V["runs_finished"] = str(len(fin))
    V["runs_failed"] = ", ".join(r.name for r in runs if not r.finished) or "none"
    V["runs_superseded"] = (", ".join(sorted(study.superseded)) + " (kept in the logs, not in the tables)"
                            if study.superseded else "none")
    V["wall_h"] = f"{sum(r.meta.get('wall_s', 0) for r in runs) / 3600:.1f}"
    cpus = sorted({r.meta.get("cpu", "?") for r in runs})
    V["cpus"] = "; ".join(cpus) or "n/a"
    builds = sorted({r.meta.get("build", "?") for r in runs})
    V["builds"] = ", ".join(builds) or "n/a"
    loads = [r.meta.get(k) for r in runs for k in ("load_start", "load_end") if r.meta.get(k) is not None]
    V["load_range"] = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "n/a"
    dates = sorted(r.meta.get("start", "") for r in runs)
    V["dates"] = f"{dates[0][:10]} to {dates[-1][:10]}" if dates else "n/a"
    any_run = runs[0] if runs else None
    if any_run:
        m = any_run.meta
        V["steps"] = str(m["steps"])
        V["tokens"] = f"{m['steps'] * m['batch'] * m['seq']:,}"
        V["batch"], V["seq"] = str(m["batch"]), str(m["seq"])
    # the learning-rate sweep
    lrs = sorted({lr for t in study.tuning.values() for lr in t}, key=float)
    rows = []
    for arm, lab, _, _ in ARMS:
        t = study.tuning.get(arm)
        if not t:
            continue
        cells = []
        for lr in lrs:
            r = t.get(lr)
            if r is None:
                cells.append("")
            elif not r.finished:
                cells.append("failed")
            else:
                c = f3(r.val)
                cells.append(f"**{c}**" if study.lr.get(arm) == lr else c)
        done = sorted((float(lr) for lr, r in t.items() if r.finished))
        interior = arm in study.lr and done and done[0] < float(study.lr[arm]) < done[-1]
        rows.append([arm if interior else f"{arm} (sweep not finished)"] + cells)
    T["lr_sweep"] = md_table(["arm"] + [f"LR {float(lr):g}" for lr in lrs], rows)
    # the arms
    for arm, _, _, _ in ARMS:
        for k in ("val", "n", "seeds", "lr", "vs_top2", "vs_dense", "vs_dense4x", "maxvio_batch", "maxvio_global",
                  "dropped", "entropy", "speedup"):
            V[f"{arm}.{k}"] = "not run"
    rows = []
    for arm, lab, act, tot in ARMS:
        if arm not in study.final:
            continue
        vs = study.vals(arm)
        m, h = mean_ci(list(vs.values()))
        V[f"{arm}.val"] = pm(m, h)
        V[f"{arm}.n"] = str(len(vs))
        V[f"{arm}.seeds"] = ",".join(str(s) for s in vs)
        V[f"{arm}.lr"] = f"{float(study.lr[arm]):g}"
        d_top2 = study.paired(arm, "top2") if arm != "top2" else (float("nan"),) * 2 + (0, [])
        d_dense = study.paired(arm, "dense") if arm != "dense" else (float("nan"),) * 2 + (0, [])
        V[f"{arm}.vs_top2"] = pm(d_top2[0], d_top2[1], sign=True)
        d4 = study.paired(arm, "dense4x") if arm != "dense4x" else (float("nan"),) * 2 + (0, [])
        V[f"{arm}.vs_dense4x"] = pm(d4[0], d4[1], sign=True) if d4[2] else "not run"
        V[f"{arm}.vs_dense"] = pm(d_dense[0], d_dense[1], sign=True)
        mvb = study.arm_stat(arm, Run.maxvio_batch)
        mvg = study.arm_stat(arm, Run.maxvio_global)
        drop = study.arm_stat(arm, lambda r: r.mean_of("dropped_frac", r.recs))
        ent = study.arm_stat(arm, lambda r: r.mean_of("router_entropy"))
        V[f"{arm}.maxvio_batch"] = pm(*mvb, nd=2)
        V[f"{arm}.maxvio_global"] = pm(*mvg, nd=2)
        V[f"{arm}.dropped"] = "n/a" if math.isnan(drop[0]) else f"{100 * drop[0]:.1f}%"
        V[f"{arm}.entropy"] = f3(ent[0], 2) if arm not in NO_EXPERTS and arm != "hash" else "-"
        rows.append([arm, act, tot, V[f"{arm}.lr"], len(vs), pm(m, h), V[f"{arm}.vs_dense"], V[f"{arm}.vs_top2"],
                     f3(mvb[0], 2), f3(mvg[0], 2), V[f"{arm}.dropped"] if arm not in NO_EXPERTS else "-",
                     V[f"{arm}.entropy"]])
    T["arms"] = md_table(["arm", "active FFN", "total FFN", "LR", "seeds", "val loss (95% CI)",
                          "- dense (paired)", "- top2 (paired)", "MaxVio batch", "MaxVio 100 steps",
                          "dropped (train)", "router entropy"], rows)
    V["arms_not_run"] = ", ".join(f"`{a}`" for a, _, _, _ in ARMS if a not in study.final) or "none"
    T["arm_legend"] = "\n".join(f"- `{a}`: {lab}" for a, lab, _, _ in ARMS if a in study.final)
    # steps to the dense model's final loss, within each run's own schedule
    rows = []
    for arm, _, _, _ in ARMS:
        if arm in ("dense",) or arm not in study.final or "dense" not in study.final:
            continue
        ratios, never = [], 0
        for s, r in study.final[arm].items():
            d = study.final["dense"].get(s)
            if d is None:
                continue
            st = r.steps_to(d.val)
            if st is None:
                never += 1
            else:
                ratios.append(d.steps / st)
        m, h = mean_ci(ratios)
        V[f"{arm}.speedup"] = pm(m, h, nd=2)
        V[f"{arm}.speedup_mean"] = m
        rows.append([arm, len(ratios) + never, never, pm(m, h, nd=2)])
    T["speedup"] = md_table(["arm", "seeds", "never reached", "dense steps / MoE steps, over the seeds that reached it (95% CI)"], rows)
    experts_values(study, V, T)
    mod_values(study, V, T)
    # tokens to the dense model's final loss, each budget with its own schedule
    rows, ratios = [], []
    for arm, bud in sorted(study.budget.items()):
        full = study.final.get(arm, {})
        dense = study.final.get("dense", {})
        for s in sorted(full):
            pts = sorted([(b, runs_b[s].val) for b, runs_b in bud.items() if s in runs_b] + [(full[s].steps, full[s].val)])
            if s not in dense or len(pts) < 2:
                continue
            target, need = dense[s].val, None
            for (b0, v0), (b1, v1) in zip(pts, pts[1:]):
                if v0 > target >= v1:  # interpolate in log(steps)
                    f = (v0 - target) / (v0 - v1)
                    need = math.exp(math.log(b0) + f * (math.log(b1) - math.log(b0)))
                    break
            if pts[0][1] <= target:
                need = None  # below the smallest budget: only a bound
            ratio = dense[s].steps / need if need else float("nan")
            if arm == "top2" and need:
                ratios.append(ratio)
            rows.append([arm, s, ", ".join(f"{b}: {f3(v)}" for b, v in pts), f3(target),
                         f"{need:.0f}" if need else ("< " + str(pts[0][0]) if pts[0][1] <= target else "> " + str(pts[-1][0])),
                         f3(ratio, 2)])
    T["budgets"] = md_table(["arm", "seed", "steps: final val loss", "dense's final", "steps to it", "dense steps / MoE steps"], rows)
    m, h = mean_ci(ratios)
    V["olmoe.ratio"] = pm(m, h, nd=2) + f" ({len(ratios)} seeds)" if ratios else "n/a"
    V["olmoe.verdict"] = ("not yet run" if not ratios else
                          "reproduced" if not math.isnan(h) and m - h >= 3 * 0.8 else
                          "not reproduced" if not math.isnan(h) and m + h < 3 * 0.8 else "not resolved")
    # the published claims
    names = {"hash": "Hash", "switch": "Switch", "top2": "GShard", "fgshared": "DeepSeekMoE"}
    if all(a in study.final for a in names):
        v, parts = verdict_order(study, ["fgshared", "top2", "switch", "hash"], names)
        V["dsmoe.verdict"] = v
        V["dsmoe.pairs"] = "; ".join(parts)
    else:
        V["dsmoe.verdict"] = "not yet run (arms missing: " + ", ".join(a for a in names if a not in study.final) + ")"
        V["dsmoe.pairs"] = "n/a"
    if "bias" in study.final and "top2" in study.final:
        b = study.arm_stat("bias", Run.maxvio_global)
        a = study.arm_stat("top2", Run.maxvio_global)
        d = study.paired("bias", "top2")
        lower = b[0] < a[0]
        sep = not math.isnan(a[1]) and not math.isnan(b[1]) and (b[0] + b[1] < a[0] - a[1])
        not_worse = not (d[0] > 0 and not math.isnan(d[1]) and d[0] > d[1])
        V["lfb.verdict"] = ("reproduced" if lower and sep and not_worse else
                            "balance reproduced, loss worse" if lower and sep else
                            "not resolved" if lower else "not reproduced")
    else:
        V["lfb.verdict"] = "not yet run"
    spec_values(study, V, T)
    step_time_values(V, T)
    floor_values(study, V, T)
    grow_values(V, T)
    return V, T


# (arm, number of experts) and (arm, capacity factor): the scaling and
# capacity sweeps around top2 (8 experts, dropless)
EXPERT_ARMS = [("e4", 4), ("top2", 8), ("e16", 16), ("e32", 32)]
CAPACITY_ARMS = [("cf050", 0.5), ("cf100", 1.0), ("cf125", 1.25), ("cf200", 2.0), ("top2", None)]


def experts_values(study, V, T):
    """the number-of-experts and capacity tables, and the Switch scaling
    statement (needs the speedup values of compute)"""
    rows, trend = [], []
    for arm, e in EXPERT_ARMS:
        if arm not in study.final:
            continue
        vs = list(study.vals(arm).values())
        sp = V.get(f"{arm}.speedup", "n/a")
        rows.append([e, f"`{arm}`", len(vs), pm(*mean_ci(vs)), V[f"{arm}.vs_dense"],
                     V[f"{arm}.vs_top2"] if arm != "top2" else "-", sp])
        if not math.isnan(V.get(f"{arm}.speedup_mean", float("nan"))):
            trend.append(f"{V[f'{arm}.speedup']} at {e}")
    T["experts"] = md_table(["experts", "arm", "seeds", "val loss (95% CI)", "- dense (paired)", "- top2 (paired)",
                             "steps speed-up to dense"], rows)
    V["experts.trend"] = ", ".join(trend) if len(trend) > 1 else "not measured (fewer than two numbers of experts run)"
    emax = max((e for a, e in EXPERT_ARMS if a in study.final), default=0)
    V["experts.max"] = str(emax)
    V["switch75.verdict"] = (f"not tested (at most {emax} experts here)" if emax < 64 else
                             "see the number-of-experts table")
    rows = []
    for arm, cf in CAPACITY_ARMS:
        if arm not in study.final or (cf is None and len(rows) == 0):
            continue
        vs = list(study.vals(arm).values())
        rows.append([f"{cf:g}" if cf else "none (dropless)", f"`{arm}`", len(vs), pm(*mean_ci(vs)),
                     V[f"{arm}.vs_top2"] if arm != "top2" else "-", V[f"{arm}.dropped"]])
    T["capacity"] = md_table(["capacity factor", "arm", "seeds", "val loss (95% CI)", "- top2 (paired)",
                              "dropped (train)"], rows)


# (MoD arm, the arm of equal FLOPs it is compared with)
MOD_ARMS = [("mod", "dense"), ("modmoe", "top2"), ("mododd", "dense")]


def mod_values(study, V, T):
    """Mixture-of-Depths against the arm of the same FLOPs: the final loss
    with inference's causal rule (val_loss) and with training's top-C choice
    (val_loss_topc), the router's agreement and the share it sends through,
    and the median step time"""
    def med_step(r):
        xs = [x["step_s"] for x in r.recs if "step_s" in x]
        return statistics.median(xs) if xs else float("nan")

    rows = []
    for arm, ref in MOD_ARMS:
        V[f"{arm}.vs_ref"] = V[f"{arm}.topc"] = "not run"
        if arm not in study.final:
            continue
        d = study.paired(arm, ref)
        V[f"{arm}.vs_ref"] = pm(d[0], d[1], sign=True)
        topc = study.arm_stat(arm, lambda r: ([e["val_loss_topc"] for e in r.recs if "val_loss_topc" in e]
                                              or [float("nan")])[-1])
        V[f"{arm}.topc"] = pm(*topc)
        acc = study.arm_stat(arm, lambda r: r.mean_of("mod_acc"))
        frac = study.arm_stat(arm, lambda r: r.mean_of("mod_frac"))
        t_arm = study.arm_stat(arm, med_step)[0]
        t_ref = study.arm_stat(ref, med_step)[0]
        for a in (ref, arm):
            vs = list(study.vals(a).values())
            rows.append([f"`{a}`", len(vs), pm(*mean_ci(vs)), "-" if a == ref else V[f"{arm}.vs_ref"],
                         V[f"{arm}.topc"] if a == arm else "-", pm(*acc, nd=2) if a == arm else "-",
                         pm(*frac, nd=2) if a == arm else "-",
                         f"{1000 * (t_arm if a == arm else t_ref):.0f}"])
    T["mod"] = md_table(["arm", "seeds", "val loss, r > 0 (95% CI)", "- same FLOPs (paired)",
                         "val loss, top-C", "r > 0 agrees with top-C", "share through (r > 0)",
                         "ms/step (median)"], rows)


def floor_values(study, V, T):
    """the schedule probe: tuning runs whose cosine ended at a fixed 3e-4
    (RUNS_FLOOR) beside the same arm and rate ending at a tenth of the peak"""
    runs = load_runs(RUNS_FLOOR) if os.path.isdir(RUNS_FLOOR) else {}
    rows, both = [], []
    for r in sorted(runs.values(), key=lambda r: (r.arm, r.lr)):
        if not r.finished or r.seed != TUNE_SEED:
            continue
        other = study.tuning.get(r.arm, {})
        o = next((x for lr, x in other.items() if float(lr) == r.lr and x.finished), None)
        rows.append([r.arm, f"{r.lr:g}", f3(r.val), f3(o.val) if o else "-"])
        if o:
            both.append(r.val < o.val)
    T["floor"] = md_table(["arm", "peak LR", "cosine to 3e-4", "cosine to a tenth of the peak"], rows)
    V["floor.pairs"] = str(len(both))
    V["floor.lower"] = str(sum(both))
    best = {}
    for r in runs.values():
        if r.finished and r.seed == TUNE_SEED and (r.arm not in best or r.val < best[r.arm].val):
            best[r.arm] = r
    for arm in ("dense", "top2"):
        b = best.get(arm)
        V[f"floor.{arm}_best"] = f"{f3(b.val)} at {b.lr:g}" if b else "n/a"
        o = study.tuning.get(arm, {}).get(study.lr.get(arm, ""))
        V[f"floor.{arm}_tuned"] = f"{f3(o.val)} at {float(study.lr[arm]):g}" if o and o.finished else "n/a"
        V[f"floor.{arm}_cmp"] = ("n/a" if not (b and o and o.finished) else
                                 "below" if b.val < o.val else "not below")


def step_time_values(V, T):
    """the step-time table, from STEP_TIME (experiments/step_time.sh)"""
    if not os.path.exists(STEP_TIME):
        T["step_time"] = "(not yet measured)"
        V["step_time.rounds"] = V["step_time.cpu"] = V["step_time.load"] = "n/a"
        return
    recs = [json.loads(x) for x in open(STEP_TIME) if x.strip()]
    by = {}
    for r in recs:
        by.setdefault(r["arm"], {})[r["round"]] = r["tokens_per_s"]
    V["step_time.rounds"] = str(len({r["round"] for r in recs}))
    V["step_time.cpu"] = "; ".join(sorted({r["cpu"] for r in recs}))
    loads = [r["load"] for r in recs]
    V["step_time.load"] = f"{min(loads):.1f}-{max(loads):.1f}"
    rows = []
    dense = by.get("dense", {})
    for arm, _, _, _ in ARMS:
        if arm not in by:
            continue
        ts = by[arm]
        med = statistics.median(ts.values())
        ratio = mean_ci([ts[k] / dense[k] for k in ts if k in dense])
        sp = V.get(f"{arm}.speedup_mean")
        wall = "-"
        if arm != "dense" and sp is not None and not math.isnan(sp) and not math.isnan(ratio[0]):
            wall = f"{sp * ratio[0]:.2f}"
        rows.append([arm, f"{med:,.0f}", f"{512 / med * 1000:.0f}", pm(*ratio, nd=2) if arm != "dense" else "1",
                     wall])
    T["step_time"] = md_table(["arm", "tokens/s (median)", "ms a step", "speed relative to dense (paired by round)",
                               "dense wall-clock / MoE wall-clock to dense's loss"], rows)


def spec_values(study, V, T):
    """the specialization section, from SPEC (experiments/specialize.py)"""
    if not os.path.exists(SPEC):
        T["spec"] = "(not yet run)"
        for k in ("spec.runs", "spec.sep_random", "spec.sep_cmi", "spec.token_share", "spec.cells", "spec.tokens",
                  "spec.docs", "spec.boot"):
            V[k] = "n/a"
        T["spec_enrich"] = "(not yet run)"
        return
    sp = json.load(open(SPEC))
    doms = sp["domains"]
    V["spec.tokens"], V["spec.docs"], V["spec.boot"] = f"{sp['tokens']:,}", str(sp["documents"]), str(sp["bootstrap"])
    by = {}  # (arm, layer) -> [layer dicts over seeds]
    names = sorted(sp["runs"])
    for n in names:
        m = NAME_RE.match(n)
        if not m or study.lr.get(m["arm"]) != m["lr"]:
            continue
        for l in sp["runs"][n]["layers"]:
            by.setdefault((m["arm"], l["layer"]), []).append((int(m["seed"]), l))
    V["spec.runs"] = ", ".join(n for n in names if NAME_RE.match(n) and study.lr.get(NAME_RE.match(n)["arm"]) == NAME_RE.match(n)["lr"])
    rows, sep_r, sep_c, cells, share = [], 0, 0, 0, []

    def span(ls, k):
        m = sum(l[k] for _, l in ls) / len(ls)
        lo = min(l[k + "_ci"][0] for _, l in ls)
        hi = max(l[k + "_ci"][1] for _, l in ls)
        return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"

    for (arm, layer), ls in sorted(by.items()):
        rows.append([arm, layer, len(ls)] + [span(ls, k) for k in ("mi", "mi_token", "mi_random", "mi_minus_random",
                                                                   "cmi", "cmi_random", "cmi_minus_random")])
        for _, l in ls:
            cells += 1
            sep_r += l["mi_minus_random_ci"][0] > 0
            sep_c += l["cmi_minus_random_ci"][0] > 0
            share.append(l["mi_token"] / l["mi"] if l["mi"] > 0 else float("nan"))
    T["spec"] = md_table(["arm", "layer", "seeds", "I(dom; exp)", "token-only router", "random router",
                          "learned - random", "I(dom; exp given token)", "random, given the token",
                          "learned - random, given the token"], rows)
    V["spec.cells"] = str(cells)
    half = cells / 2
    V["spec.reading"] = (
        ("In most cells the learned router's choice says no more about the domain than a random router's "
         "over the same hidden states" if sep_r <= half else
         "In most cells the learned router's choice says more about the domain than a random router's "
         "over the same hidden states") + "; " +
        ("beyond the token it says no more than the random router's in most cells." if sep_c <= half else
         "beyond the token it says more than the random router's in most cells."))
    V["spec.sep_random"] = str(sep_r)
    V["spec.sep_cmi"] = str(sep_c)
    m, h = mean_ci(share)
    V["spec.token_share"] = pm(100 * m, 100 * h, nd=0) + "%"
    # the most enriched (expert, domain) cells of the first seed's top2 layers
    rows = []
    for (arm, layer), ls in sorted(by.items()):
        seed, l = min(ls, key=lambda x: x[0])
        cand = [(v, e, d) for e, row in enumerate(l["enrichment"]) for d, v in enumerate(row)]
        for v, e, d in sorted(cand, reverse=True)[:3]:
            rows.append([arm, seed, layer, e, doms[d], f"{v:.2f}"])
    T["spec_enrich"] = md_table(["arm", "seed", "layer", "expert", "domain", "P(domain given expert) / P(domain)"], rows)


# ---------------------------------------------------------------- render

def render(template, V, T):
    def sub(m):
        key = m.group(1).strip()
        if key.startswith("table:"):
            k = key[6:]
            if k not in T:
                raise KeyError(f"template: no table '{k}'")
            return T[k]
        if key not in V:
            raise KeyError(f"template: no value '{key}' (the logs do not give it)")
        return V[key]
    return re.sub(r"\{\{([^}]+)\}\}", sub, template)


def cmd_render(a):
    study = Study(load_runs(a.runs))
    V, T = compute(study)
    try:
        text = render(open(a.template).read(), V, T)
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 1
    if a.check:
        have = open(a.doc).read() if os.path.exists(a.doc) else ""
        if have == text:
            print(f"{a.doc}: matches the logs in {a.runs}")
            return 0
        sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), text.splitlines(True),
                                                   a.doc, "from the logs"))
        print(f"{a.doc}: differs from what the logs in {a.runs} give (python3 experiments/report.py render)",
              file=sys.stderr)
        return 1
    with open(a.doc, "w") as f:
        f.write(text)
    print(f"wrote {a.doc} from {len(study.runs)} runs")
    return 0


def cmd_plots(a):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    study = Study(load_runs(a.runs))
    os.makedirs(a.out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (arm, lab, _, _) in enumerate(ARMS):
        if arm not in study.final:
            continue
        for j, r in enumerate(study.final[arm].values()):
            xs, ys = zip(*r.evals)
            ax.plot(xs, ys, color=f"C{i}", alpha=0.6, lw=1, label=arm if j == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_ylim(top=6.5)
    ax.legend(fontsize=8)
    ax.set_title("validation loss, every seed of every arm")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "arms_curves.png"), dpi=110)
    print(f"wrote {a.out}/arms_curves.png")
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = []
    for arm, lab, _, _ in ARMS:
        if arm not in study.final:
            continue
        vs = list(study.vals(arm).values())
        m, h = mean_ci(vs)
        y = len(labels)
        ax.errorbar([m], [y], xerr=[[0 if math.isnan(h) else h]], fmt="o", color="k", capsize=3)
        ax.plot(vs, [y] * len(vs), "x", color="C3", alpha=0.6)
        labels.append(arm)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("final validation loss (nats/token): mean, 95% interval, and each seed (x)")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "arms_final.png"), dpi=110)
    print(f"wrote {a.out}/arms_final.png")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = p.add_subparsers(dest="cmd", required=True)
    q = sp.add_parser("pack")
    q.add_argument("--exp-dir", required=True)
    q.add_argument("--runs", default=RUNS)
    q.add_argument("--only", help="pack only the runs whose name matches this regular expression")
    q = sp.add_parser("render")
    q.add_argument("--runs", default=RUNS)
    q.add_argument("--template", default=TEMPLATE)
    q.add_argument("--doc", default=DOC)
    q.add_argument("--check", action="store_true")
    q = sp.add_parser("tuned", help="the run directories of ARMS at their tuned rate, for specialize.py")
    q.add_argument("arms", nargs="+")
    q.add_argument("--seeds", default="1,2,3")
    q.add_argument("--exp-dir", required=True)
    q.add_argument("--runs", default=RUNS)
    q = sp.add_parser("plots")
    q.add_argument("--runs", default=RUNS)
    q.add_argument("--out", default=os.path.join(ROOT, "docs", "results"))
    a = p.parse_args()
    if a.cmd == "pack":
        pack(a.exp_dir, a.runs, a.only)
        return 0
    if a.cmd == "tuned":
        study = Study(load_runs(a.runs))
        for arm in a.arms:
            for sd in a.seeds.split(","):
                r = study.final.get(arm, {}).get(int(sd))
                if r:
                    print(os.path.join(a.exp_dir, "runs", r.name))
        return 0
    return cmd_render(a) if a.cmd == "render" else cmd_plots(a)


if __name__ == "__main__":
    sys.exit(main())
