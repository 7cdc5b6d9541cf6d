"""runlogs.py - the committed run logs (docs/results/runs*/NAME.meta.json and
NAME.log.jsonl.xz) as Run objects, and the statistics and markdown helpers
the reports share (experiments/report.py, experiments/report_grow.py).
Standard library only.
"""
import glob
import json
import lzma
import math
import os
import re
import statistics

TAIL = 100  # the last steps the balance statistics average over
NAME_RE = re.compile(r"^(?P<arm>[a-z0-9]+)-lr(?P<lr>[0-9.e+-]+)(?:-b(?P<budget>[0-9]+))?-s(?P<seed>[0-9]+)$")

# two-sided 95% Student t quantiles, t_{0.975, df}
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def tcrit(df):
    if df in T975:
        return T975[df]
    below = [d for d in T975 if d <= df]
    return T975[max(below)] if below else float("nan")  # conservative between table points


# ---------------------------------------------------------------- load

class Run:
    def __init__(self, name, meta, recs):
        self.name, self.meta, self.recs = name, meta, recs
        m = NAME_RE.match(name)
        self.arm = m["arm"]
        self.lr = float(m["lr"])
        self.lr_text = m["lr"]
        self.budget = int(m["budget"]) if m["budget"] else None
        self.seed = int(m["seed"])
        self.evals = [(r["step"], r["val_loss"]) for r in recs if "val_loss" in r]
        self.steps = recs[-1]["step"] if recs else 0
        self.finished = (meta.get("exit_code") == 0 and self.steps == meta.get("steps")
                         and bool(self.evals) and self.evals[-1][0] == self.steps)
        self.val = self.evals[-1][1] if self.finished else float("nan")

    def tail(self):
        return self.recs[-TAIL:]

    def mean_of(self, key, recs=None):
        xs = [r[key] for r in (recs if recs is not None else self.tail()) if key in r]
        return sum(xs) / len(xs) if xs else float("nan")

    def maxvio_batch(self):
        """busiest expert's load / mean load - 1, per step and layer, averaged
        over the last TAIL steps and the layers"""
        xs = [l["max_violation"] for r in self.tail() for l in r.get("layers", [])]
        return sum(xs) / len(xs) if xs else float("nan")

    def maxvio_global(self):
        """the same of the loads summed over the last TAIL steps (one layer at
        a time), averaged over the layers: Loss-Free Balancing's MaxVio_global
        measured on TAIL training batches rather than the validation set"""
        tot = {}
        for r in self.tail():
            for l in r.get("layers", []):
                acc = tot.setdefault(l["layer"], [0] * len(l["load"]))
                for i, x in enumerate(l["load"]):
                    acc[i] += x
        vs = []
        for acc in tot.values():
            m = sum(acc) / len(acc)
            if m > 0:
                vs.append(max(acc) / m - 1)
        return sum(vs) / len(vs) if vs else float("nan")

    def steps_to(self, target):
        """first step (linear between evaluations) with val <= target, or None"""
        prev = None
        for s, v in self.evals:
            if v <= target:
                if prev is None:
                    return float(s)
                s0, v0 = prev
                return s0 + (s - s0) * (v0 - target) / (v0 - v) if v0 != v else float(s)
            prev = (s, v)
        return None


def load_runs(runs_dir):
    out = {}
    for mp in sorted(glob.glob(os.path.join(runs_dir, "*.meta.json"))):
        name = os.path.basename(mp)[: -len(".meta.json")]
        if not NAME_RE.match(name):
            continue
        meta = json.load(open(mp))
        lp = os.path.join(runs_dir, name + ".log.jsonl.xz")
        recs = [json.loads(x) for x in lzma.decompress(open(lp, "rb").read()).decode().splitlines() if x.strip()]
        out[name] = Run(name, meta, recs)
    return out


# ---------------------------------------------------------------- statistics

def mean_ci(xs):
    """mean and the half-width of its 95% t interval (nan with one value)"""
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    return m, tcrit(len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))


def f3(x, nd=3, sign=False):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def pm(m, h, nd=3, sign=False):
    if math.isnan(m):
        return "n/a"
    return f3(m, nd, sign) + ("" if math.isnan(h) else f" ± {h:.{nd}f}")


def md_table(head, rows, align=None):
    if not rows:
        return "(no runs of this kind in the logs yet)"
    align = align or ["---"] + ["---:"] * (len(head) - 1)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
