"""report_grow.py - the values and tables of docs/RESULTS.md's "Growing and
adapting a trained model" from the runs of experiments/grow.sh committed in
docs/results/runs-grow/ (each NAME.meta.json carries run.json, the config and,
for the new-domain runs, eval.json: `moe ppl` on the new and the old domains).

grow_values(V, T) adds values named grow.* and tables grow_up, grow_ft and
grow_ft_lr. Standard library only.
"""
import os
import statistics

from runlogs import load_runs, mean_ci, md_table, pm, f3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS_GROW = os.path.join(ROOT, "docs", "results", "runs-grow")
TUNE_SEED = 11  # grow.sh's default: the fine-tuning rates are tuned on it, never reported

UP_ARMS = [
    ("dense", "dense FFN 512 (the start of up8)"),
    ("up8", "dense, then upcycled to top-2 of 8 x 512"),
    ("e8w512", "top-2 of 8 x 512 from scratch"),
    ("dlong", "dense FFN 512, trained longer"),
]
FT_ARMS = [
    ("ftall", "full fine-tuning"),
    ("ftfrz", "full, router frozen"),
    ("add2old", "2 experts added; old experts and router rows frozen"),
    ("add2only", "2 experts added; only they (and their router rows) train"),
    ("lora8", "LoRA rank 8 on attention, router, experts"),
]


def _median_step_s(r):
    xs = [x["step_s"] for x in r.recs if "step_s" in x]
    return statistics.median(xs) if xs else float("nan")


def _eval(r, key):
    v = (r.meta.get("eval") or {}).get(key)
    return float("nan") if v is None else float(v)


def grow_values(V, T, runs_dir=RUNS_GROW):
    runs = load_runs(runs_dir) if os.path.isdir(runs_dir) else {}
    for arm, _ in FT_ARMS:  # what the template may name before the runs exist
        for k in ("gain", "kept", "rss_mb", "step_ms", "lr"):
            V[f"grow.ft.{arm}.{k}"] = "not run"
    for k in ("ft.lora_rss_ratio", "ft.seeds", "ft.new_domain", "ft.steps", "ft.base_steps", "ft.eval_tokens",
              "up.seeds"):
        V[f"grow.{k}"] = "n/a"
    V["grow.runs"] = str(len(runs))
    V["grow.wall_h"] = f"{sum(r.meta.get('wall_s', 0) for r in runs.values()) / 3600:.1f}"
    by = {}  # arm -> seed -> Run (finished, seeds other than the tuning one)
    tune = {}  # arm -> lr text -> Run (the tuning seed)
    for r in runs.values():
        if r.seed == TUNE_SEED:
            tune.setdefault(r.arm, {})[r.lr_text] = r
    # an arm with a tuning sweep is reported at its winning rate only (grow.sh's rule)
    tuned = {}
    for arm, t in tune.items():
        done = {lr: r for lr, r in t.items() if r.finished}
        if done:
            tuned[arm] = min(done, key=lambda lr: (done[lr].val, float(lr)))
    for r in runs.values():
        if r.seed != TUNE_SEED and r.finished and tuned.get(r.arm, r.lr_text) == r.lr_text:
            by.setdefault(r.arm, {})[r.seed] = r

    # ---- upcycling at equal compute
    def val(arm):
        return {s: r.val for s, r in by.get(arm, {}).items()}

    def paired(a, b, fa=val, fb=val):
        va, vb = fa(a), fb(b)
        seeds = sorted(set(va) & set(vb))
        m, h = mean_ci([va[s] - vb[s] for s in seeds])
        return m, h, len(seeds)

    rows = []
    for arm, lab in UP_ARMS:
        rs = by.get(arm, {})
        if not rs:
            continue
        steps = {r.steps for r in rs.values()}
        st = "/".join(str(s) for s in sorted(steps))
        if arm == "up8":
            st = "/".join(str(s) for s in sorted({r.steps for r in by.get("dense", {}).values()})) + " + " + st
        wall = [r.meta.get("wall_s", float("nan")) + (by.get("dense", {}).get(s).meta.get("wall_s", float("nan"))
                                                         if arm == "up8" and s in by.get("dense", {}) else 0)
                for s, r in rs.items()]
        m, h = mean_ci(list(val(arm).values()))
        if arm in ("dense", "up8"):
            d = "-"
        else:
            dm, dh, dn = paired(arm, "up8")
            d = pm(dm, dh, sign=True) + f" ({dn})"
        rows.append([f"`{arm}`", lab, st, pm(m, h) + f" ({len(rs)})", d,
                     f"{sum(wall) / len(wall) / 60:.1f}"])
    T["grow_up"] = md_table(["run", "what", "steps", "final val loss (seeds)", "minus up8 (paired)",
                             "wall min"], rows, ["---", "---", "---:", "---:", "---:", "---:"])
    for arm in ("e8w512", "dlong", "dense"):
        m, h, n = paired(arm, "up8")
        V[f"grow.up.{arm}_minus_up8"] = pm(m, h, sign=True)
        V[f"grow.up.{arm}_n"] = str(n)
    V["grow.up.seeds"] = ", ".join(str(s) for s in sorted(by.get("up8", {})))

    # ---- a new domain
    def ev(key):
        return lambda arm: {s: _eval(r, key) for s, r in by.get(arm, {}).items()}

    new, old = ev("new_nll"), ev("old_nll")
    base = "old4"
    bn, bo = new(base), old(base)
    rows = []
    m1, h1 = mean_ci(list(bn.values()))
    m2, h2 = mean_ci(list(bo.values()))
    if bn:
        rows.append(["`old4` (the start)", "-", pm(m1, h1), "-", pm(m2, h2), "-",
                     f"{statistics.mean(r.meta.get('max_rss_kb') or float('nan') for r in by[base].values()) / 1024:.0f}",
                     f"{statistics.mean(_median_step_s(r) for r in by[base].values()) * 1000:.0f}"])
    for arm, lab in FT_ARMS:
        rs = by.get(arm, {})
        if not rs:
            continue
        lr = "/".join(sorted({r.lr_text for r in rs.values()}))
        gm, gh, gn = paired(base, arm, new, new)   # base - arm on the new domain: the gain
        km, kh, kn = paired(base, arm, old, old)   # base - arm on the old ones: < 0 forgotten
        nm, nh = mean_ci(list(new(arm).values()))
        om, oh = mean_ci(list(old(arm).values()))
        rss = [r.meta.get("max_rss_kb") for r in rs.values() if r.meta.get("max_rss_kb")]
        rss_mb = sum(rss) / len(rss) / 1024 if rss else float("nan")
        step_ms = statistics.mean(_median_step_s(r) for r in rs.values()) * 1000
        rows.append([f"`{arm}`: {lab}", lr, pm(nm, nh), pm(gm, gh, sign=True) + f" ({gn})", pm(om, oh),
                     pm(km, kh, sign=True) + f" ({kn})", f"{rss_mb:.0f}", f"{step_ms:.0f}"])
        V[f"grow.ft.{arm}.gain"] = pm(gm, gh, sign=True)
        V[f"grow.ft.{arm}.kept"] = pm(km, kh, sign=True)
        V[f"grow.ft.{arm}.rss_mb"] = f"{rss_mb:.0f}"
        V[f"grow.ft.{arm}.step_ms"] = f"{step_ms:.0f}"
        V[f"grow.ft.{arm}.lr"] = lr
    T["grow_ft"] = md_table(["run", "peak LR", "new-domain nll", "gain (paired)", "old-domain nll",
                             "kept (paired)", "peak RSS MB", "ms/step"], rows,
                            ["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"])
    V["grow.ft.seeds"] = ", ".join(str(s) for s in sorted(by.get("ftall", {})))
    for a, b in (("add2old", "ftall"), ("lora8", "ftall"), ("ftfrz", "ftall"), ("add2only", "add2old")):
        m, h, n = paired(b, a, new, new)   # > 0: a reaches a lower new-domain loss than b
        V[f"grow.ft.{a}_vs_{b}.new"] = pm(m, h, sign=True)
        m, h, n = paired(b, a, old, old)   # > 0: a keeps a lower old-domain loss than b
        V[f"grow.ft.{a}_vs_{b}.old"] = pm(m, h, sign=True)
    ra = [r.meta.get("max_rss_kb") for r in by.get("lora8", {}).values() if r.meta.get("max_rss_kb")]
    rb = [r.meta.get("max_rss_kb") for r in by.get("ftall", {}).values() if r.meta.get("max_rss_kb")]
    V["grow.ft.lora_rss_ratio"] = f3(statistics.mean(ra) / statistics.mean(rb), 2) if ra and rb else "n/a"

    # ---- the tuning sweep of the fine-tuning rates
    lrs = sorted({lr for arm, _ in FT_ARMS for lr in tune.get(arm, {})}, key=float)
    rows = []
    for arm, _ in FT_ARMS:
        t = tune.get(arm, {})
        if not t:
            continue
        done = {lr: r.val for lr, r in t.items() if r.finished}
        best = min(done, key=lambda lr: (done[lr], float(lr))) if done else None
        rows.append([f"`{arm}`"] + [("**" + f3(done[lr]) + "**" if lr == best else f3(done[lr]))
                                    if lr in done else ("failed" if lr in t else "-") for lr in lrs])
    T["grow_ft_lr"] = md_table(["run"] + lrs, rows)
    if by.get(base):
        V["grow.ft.new_domain"] = next(iter(by["ftall"].values())).meta.get("eval", {}).get("new_domain", "n/a") \
            if by.get("ftall") else "n/a"
        r0 = next(iter(by[base].values()))
        V["grow.ft.steps"] = str(next(iter(by["ftall"].values())).steps) if by.get("ftall") else "n/a"
        V["grow.ft.base_steps"] = str(r0.steps)
        V["grow.ft.eval_tokens"] = str(r0.meta.get("eval", {}).get("eval_tokens", "n/a"))
