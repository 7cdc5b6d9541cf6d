#!/usr/bin/env python3
"""cache_fallback.py - what the expert cache's resident low-precision copy
(`--mem SIZE --mem-fallback TYPE`, docs/CACHE.md) costs in quality.

On one token sequence, `moe logits` runs once exactly (no budget) and once
per (budget, type) with the copy; each position's logits are compared with
the exact ones:

  KL(exact || fallback)  in nats, mean over positions (and median, 95th
                         percentile, largest)
  top-1 agreement        the share of positions whose argmax agrees
  fallback rate          experts computed from the copy per token, and as
                         a share of the experts the layers used (the
                         cache's "fallbacks" over hits + misses)

Positions run one per forward call by default (--chunk 1), as decoding
does: a whole prompt in one call finds nothing resident and takes nearly
every expert from the copy. The fallback rate depends on how fast the
reads come in against how fast the tokens go, so it moves with the disk,
the threads and the machine's load: the log records all of them.

A budget is bytes (512M, 1.5G), a share of the routed experts' bytes in the
file ("25%"), or a share of them plus the copy's own bytes ("10%+copy": a
slot pool of 10% beside the copy). A budget too small for the copy and the
slots' minimum is reported as such (the load's message), not measured.

  python3 bench/cache_fallback.py /work/bench/cache-model --ids-file ids.txt \\
      --mem 25% --mem 10%+copy --type q2_k --type q4_k --log LOG.jsonl

Ids: --ids-file (comma or whitespace separated) or --text-file (tokenized
with `moe tokenize MODEL`, no special tokens); --tokens keeps the first N.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np


def sh(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def die(msg):
    sys.exit("cache_fallback.py: " + msg)


def read_ids(a):
    if a.ids_file:
        with open(a.ids_file) as f:
            ids = [int(x) for x in re.split(r"[,\s]+", f.read().strip()) if x]
    else:
        with open(a.text_file) as f:
            r = sh([a.moe, "tokenize", a.model, f.read(), "--no-special"])
        if r.returncode:
            die("moe tokenize: " + r.stderr.strip())
        ids = [int(x) for x in r.stdout.strip().split(",") if x]
    return ids[: a.tokens] if a.tokens else ids


def load_error(a, mem, fallback=None):
    """The load's message for an impossible budget."""
    cmd = [a.moe, "logits", a.model, "--ids", "1", "--out", os.devnull, "--mem", str(mem)]
    if fallback:
        cmd += ["--mem-fallback", fallback]
    r = sh(cmd)
    return r.stderr


def expert_bytes(a):
    m = re.search(r"below the minimum .* \((\d+) bytes\)", load_error(a, 1))
    if not m:
        die("cannot learn the minimum budget of " + a.model)
    r = sh([a.moe, "ppl", a.model, "--ids", "1,2", "--ctx", "2", "--json", "--mem", m.group(1)])
    m = re.search(r'"expert_bytes": (\d+)', r.stdout)
    if r.returncode or not m:
        die("cannot learn the experts' bytes: " + r.stderr.strip())
    return int(m.group(1))


def copy_bytes(a, t):
    m = re.search(r"fallback copy \([^,]*, (\d+) bytes\)", load_error(a, 1, t))
    if not m:
        die("cannot learn the size of the %s copy: %s" % (t, load_error(a, 1, t).strip()))
    return int(m.group(1))


def budget(spec, ebytes, cbytes):
    m = re.fullmatch(r"([0-9.]+)%(\+copy)?", spec)
    if not m:
        return spec, None
    b = int(float(m.group(1)) / 100.0 * ebytes) + (cbytes if m.group(2) else 0)
    return str(b), float(m.group(1))


def logits(a, ids, extra, out):
    cmd = [a.moe, "logits", a.model, "--ids", ",".join(map(str, ids)), "--out", out,
           "--chunk", str(a.chunk), "-t", str(a.threads)] + extra
    t0 = time.time()
    r = sh(cmd)
    wall = time.time() - t0
    if r.returncode:
        return None, r.stderr.strip(), wall
    return np.fromfile(out, dtype=np.float32), r.stderr, wall


def log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def compare(exact, got):
    pe, pf = log_softmax(exact.astype(np.float64)), log_softmax(got.astype(np.float64))
    kl = (np.exp(pe) * (pe - pf)).sum(axis=1)
    agree = exact.argmax(axis=1) == got.argmax(axis=1)
    return kl, agree


def cache_figures(err):
    f = {}
    m = re.search(r"hits ([0-9.]+)% \((\d+) of (\d+)\)", err)
    if m:
        f["hit_rate"] = float(m.group(1)) / 100
        f["uses"] = int(m.group(3))
    m = re.search(r"fallback (\S+) ([0-9.]+ \S+) \(built in ([0-9.]+) s\): used (\d+)(?: \(([0-9.]+)/token\))?", err)
    if m:
        f["copy_size"] = m.group(2)
        f["build_s"] = float(m.group(3))
        f["fallbacks"] = int(m.group(4))
        f["fallbacks_per_token"] = float(m.group(5)) if m.group(5) else None
    m = re.search(r"stalls (\d+) \(([0-9.]+) s\)", err)
    if m:
        f["stalls"], f["stall_s"] = int(m.group(1)), float(m.group(2))
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--ids-file")
    g.add_argument("--text-file")
    ap.add_argument("--tokens", type=int, default=0, help="the first N ids (0: all)")
    ap.add_argument("--mem", action="append", required=True, help="budget (repeatable): SIZE, P%%, P%%+copy")
    ap.add_argument("--type", action="append", required=True, help="copy type (repeatable): q2_k, q3_k, q4_k, ...")
    ap.add_argument("--policy", default="history")
    ap.add_argument("--prefetch", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=1, help="positions per forward call (default 1: as decoding)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--moe", default="build/moe")
    ap.add_argument("--log", help="JSONL: one line per run, per-position KL and agreement included")
    a = ap.parse_args()

    ids = read_ids(a)
    if len(ids) < 2:
        die("need at least 2 ids")
    ebytes = expert_bytes(a)
    tmp = tempfile.mkdtemp(prefix="moe-fb-")
    exact, err, wall = logits(a, ids, [], os.path.join(tmp, "exact.bin"))
    if exact is None:
        die("exact run failed: " + err)
    V = exact.size // len(ids)
    exact = exact.reshape(len(ids), V)
    print("model %s: %d positions, vocab %d, routed experts %d bytes (%.1f MiB); chunk %d, %d threads, "
          "policy %s, prefetch %d; exact run %.2f s" % (a.model, len(ids), V, ebytes, ebytes / 2**20, a.chunk,
                                                      a.threads, a.policy, a.prefetch, wall))
    logf = open(a.log, "w") if a.log else None
    hdr = "%-10s %-6s %10s %10s %9s %9s %9s %8s %10s %8s %7s" % (
        "budget", "type", "mem MiB", "copy MiB", "mean KL", "p95 KL", "max KL", "top-1", "fb/token", "fb share",
        "hits")
    print(hdr)
    for spec in a.mem:
        for t in a.type:
            cb = copy_bytes(a, t)
            mem, pct = budget(spec, ebytes, cb)
            extra = ["--mem", mem, "--mem-fallback", t, "--cache-policy", a.policy, "--prefetch", str(a.prefetch)]
            got, err, wall = logits(a, ids, extra, os.path.join(tmp, "fb.bin"))
            rec = {"model": a.model, "budget": spec, "mem": int(mem) if mem.isdigit() else mem, "type": t,
                   "copy_bytes": cb, "expert_bytes": ebytes, "positions": len(ids), "chunk": a.chunk,
                   "threads": a.threads, "policy": a.policy, "prefetch": a.prefetch, "wall_s": round(wall, 3),
                   "cpus": os.cpu_count(), "load1": os.getloadavg()[0]}
            if got is None:
                rec["error"] = err
                print("%-10s %-6s  does not fit: %s" % (spec, t, err.splitlines()[-1] if err else "?"))
            else:
                kl, agree = compare(exact, got.reshape(len(ids), V))
                fig = cache_figures(err)
                share = fig.get("fallbacks", 0) / fig["uses"] if fig.get("uses") else float("nan")
                rec.update({"mean_kl": float(kl.mean()), "median_kl": float(np.median(kl)),
                            "p95_kl": float(np.percentile(kl, 95)), "max_kl": float(kl.max()),
                            "top1": float(agree.mean()), "fallback_share": share, "cache": fig,
                            "kl": [round(float(x), 6) for x in kl], "agree": [int(x) for x in agree],
                            "stderr": err.strip()})
                print("%-10s %-6s %10.1f %10.1f %9.5f %9.5f %9.4f %7.1f%% %10.2f %7.1f%% %6.1f%%" % (
                    spec, t, int(mem) / 2**20, cb / 2**20, kl.mean(), np.percentile(kl, 95), kl.max(),
                    100 * agree.mean(), fig.get("fallbacks_per_token") or 0.0, 100 * share,
                    100 * fig.get("hit_rate", math.nan)))
            if logf:
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
    if logf:
        logf.close()


if __name__ == "__main__":
    main()
