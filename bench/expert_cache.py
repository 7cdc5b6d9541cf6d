#!/usr/bin/env python3
"""expert_cache.py - decode of a model larger than memory, three ways on the
same GGUF file with the same threads, rounds alternating engine by engine
(every other round in reverse order):

  moe --mem   the expert cache: routed experts read on demand with direct
              I/O into a fixed pool of slots (`moe bench --mem SIZE`)
  moe mmap    no budget: the file memory-mapped, the kernel pages experts
  llama.cpp   llama-bench, memory-mapped as its users run it

Each run is timed by the engine itself (decode tok/s of GEN tokens after a
one-token prompt, median of its reps) under /usr/bin/time -v, which gives
the process's peak RSS and its block reads ("File system inputs", all
phases, load included). The disk's direct-read bandwidth is probed with
dd iflag=direct right before and after every run, and the page cache is
dropped before every run, so no engine starts warm from another's reads.

With --limit-mb the runs happen inside a cgroup-v1 memory cgroup of that
size (page cache is charged to it: a mapped model larger than the limit
really pages), which makes this machine act like one with less RAM. With
--read-mbps every run and every disk probe happens inside a cgroup-v1 blkio
cgroup that throttles reads from the model file's disk to that many MB/s,
which makes it act like one with a slower disk. Needs root (drop_caches,
cgroups).

For the cache, the disk sets a limit: bytes read per token (its own
statistics over the timed reps) over the probed disk bandwidth; counted
again on the bytes the layers needed alone (the reads less the guesses read
and not used). Compute sets the other: the time a token spends not waiting
for the disk (the wall time of a token less the cache's stall time per
token), which moves with the memory bandwidth. No overlap of reads and
compute can beat the lower of the two. Each share compares the run's own
rate (the timed reps' tokens, each rep's one-token prompt included, over
their wall time) with limits from the bytes of those same tokens.

The dd probe reads one stream; the cache reads with several readers, and
on a virtual disk whose host caches what was read lately its reads can go
faster than the probe. So the disk's limit is also taken at the bandwidth
the cache's own reads got while any was in flight (bytes read over the
seconds with a read in flight, the cache's statistics), and the summary's
"strict" share of the disk's limit uses the faster of that and the probe,
on the needed bytes. "disk busy" is the share of the wall time with a read
in flight. The summary gives each engine's
median tok/s, the cache's fraction of each limit, and the ratios; --variant
adds cache runs of another build or setting to the same rounds. Example
(the quick form, docs/PERF.md):

  python3 bench/expert_cache.py MODEL.gguf --mem 900M --limit-mb 1600 \\
      --llama-bench /path/llama-bench --rounds 3 --log LOG.jsonl
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

CG_ROOT = "/sys/fs/cgroup/memory"
BLKIO_ROOT = "/sys/fs/cgroup/blkio"


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def disk_probe(path, rnd, mib=512, cg=()):
    """Direct-read bandwidth (GB/s) of mib MiB of the file from an offset
    that moves with rnd (so that no probe reads what a disk cache holds),
    inside the cgroups cg."""
    size = os.path.getsize(path)
    blocks = max(1, size // (4 << 20) - mib // 4 - 1)
    skip = (rnd * 7919) % blocks
    t0 = time.time()
    r = sh(in_cgroup(["dd", f"if={path}", "of=/dev/null", "iflag=direct", "bs=4M",
                      f"count={mib // 4}", f"skip={skip}"], cg))
    dt = time.time() - t0
    if r.returncode:
        raise SystemExit(f"expert_cache.py: dd failed: {r.stderr.strip()}")
    m = re.search(r"^(\d+) bytes", r.stderr, re.M)
    return int(m.group(1)) / dt / 1e9 if m else float("nan")


def in_cgroup(cmd, cg):
    """cmd run inside every cgroup directory in cg (a list)."""
    if not cg:
        return cmd
    enter = " && ".join(f'echo $$ > "${i + 1}/cgroup.procs"' for i in range(len(cg)))
    return ["sh", "-c", enter + f' && shift {len(cg)} && exec "$@"', "sh"] + list(cg) + cmd


def disk_of(path):
    """MAJ:MIN of the whole disk that holds path (a blkio rule names a disk)."""
    st = os.stat(path)
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    sysd = f"/sys/dev/block/{dev}"
    if os.path.exists(f"{sysd}/partition"):
        with open(f"{sysd}/../dev") as f:
            dev = f.read().strip()
    return dev


def timed(cmd, cg, timeout):
    """Run under /usr/bin/time -v: (rc, stdout, stderr, peak RSS MiB, bytes read)."""
    full = in_cgroup(["/usr/bin/time", "-v"] + cmd, cg)
    try:
        r = sh(full, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "", "timeout", float("nan"), float("nan")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    inp = re.search(r"File system inputs: (\d+)", r.stderr)
    return (r.returncode, r.stdout, r.stderr, int(rss.group(1)) / 1024 if rss else float("nan"),
            int(inp.group(1)) * 512 if inp else float("nan"))


def run_rec(cmd, cg, a):
    """Run timed: the record (rc, RSS, bytes read, error) and stdout, or None on failure."""
    rc, out, err, rss, rd = timed(cmd, cg, a.timeout)
    rec = {"rc": rc, "rss_mib": rss, "disk_bytes": rd}
    if rc:
        rec["error"] = err.strip()[-400:]
        return rec, None
    return rec, out


def run_moe(a, cg, mem, moe=None, prefetch=None):
    cmd = [moe or a.moe, "bench", a.model, "--prompt", "1", "--gen", str(a.gen), "--reps", str(a.reps),
           "--warmup", "1", "--threads", str(a.threads), "--probe-mb", "64", "--json"]
    if mem:
        cmd += ["--mem", mem]
        if a.policy:
            cmd += ["--cache-policy", a.policy]
        if prefetch is None:
            prefetch = a.prefetch
        if prefetch is not None:
            cmd += ["--prefetch", str(prefetch)]
    rec, out = run_rec(cmd, cg, a)
    if out is None:
        return rec
    j = json.loads(out)
    rec["tok_s"] = j["decode_tok_s"]
    rec["mem_gb_s"] = j.get("bandwidth_gb_s")
    # wall time per token of a rep (its one-token prompt and its decode, medians)
    rec["wall_per_token_s"] = (j.get("prefill_s", 0) + j["decode_s"]) / (1 + a.gen)
    rec["tokens"] = (a.reps + 1) * (1 + a.gen)
    if "cache" in j and j["cache"]:
        rec["cache"] = j["cache"]
    return rec


def run_llama(a, cg):
    cmd = [a.llama_bench, "-m", a.model, "-p", "0", "-n", str(a.gen), "-r", str(a.reps),
           "-t", str(a.threads), "-o", "json"] + a.llama_args.split()
    rec, out = run_rec(cmd, cg, a)
    if out is None:
        return rec
    j = json.loads(out)
    rec["tok_s"] = j[0]["avg_ts"]
    rec["tokens"] = (a.reps + 1) * a.gen  # llama-bench runs one warmup
    return rec


def summarize(recs, engines, variants):
    print("\nmedians over rounds:")
    med = {}
    for eng in engines:
        v = [x["tok_s"] for x in recs if x["engine"] == eng and not x["rc"]]
        if not v:
            continue
        med[eng] = statistics.median(v)
        rss = statistics.median([x["rss_mib"] for x in recs if x["engine"] == eng and not x["rc"]])
        rd = statistics.median([x["disk_bytes"] / x["tokens"] for x in recs if x["engine"] == eng and not x["rc"]])
        extra = ""
        lims = [x["run_tok_s"] / x["limit_tok_s"] for x in recs if x["engine"] == eng and "limit_tok_s" in x]
        if lims:
            hits = [x["cache"]["hit_rate"] for x in recs if x["engine"] == eng and "cache" in x]
            need = [x["run_tok_s"] / x["limit_needed_tok_s"] for x in recs if x["engine"] == eng and "limit_needed_tok_s" in x]
            bind = [x["run_tok_s"] / x["limit_binding_tok_s"] for x in recs if x["engine"] == eng and "limit_binding_tok_s" in x]
            extra = (f"  hit rate {statistics.median(hits):.3f}  of the disk limit {statistics.median(lims):.0%}"
                     f" (needed bytes only {statistics.median(need):.0%}; of the lower of it and"
                     f" compute's {statistics.median(bind):.0%})")
            strict = [x["run_tok_s"] / x["limit_strict_tok_s"] for x in recs if x["engine"] == eng and "limit_strict_tok_s" in x]
            if strict:
                busy = [x["disk_busy"] for x in recs if x["engine"] == eng and "disk_busy" in x]
                infl = [x["read_gb_s_inflight"] for x in recs if x["engine"] == eng and "read_gb_s_inflight" in x]
                extra += (f"\n        strict: needed bytes at the faster of the probe and the reads in flight"
                          f" ({statistics.median(infl):.2f} GB/s) {statistics.median(strict):.0%}"
                          f" ({min(strict):.0%}-{max(strict):.0%}); disk busy {statistics.median(busy):.0%}")
            thr = [x["run_tok_s"] / x["limit_throttle_tok_s"] for x in recs if x["engine"] == eng and "limit_throttle_tok_s" in x]
            if thr:
                extra += f"; needed bytes at the throttle's rate {statistics.median(thr):.0%} ({min(thr):.0%}-{max(thr):.0%})"
        print(f"  {eng:5s} {med[eng]:8.2f} tok/s  peak RSS {rss:7.0f} MiB  {rd / 1e6:8.1f} MB read/token{extra}")
    for v in variants:
        if v in med and "mem" in med and med[v] > 0:
            print(f"  moe --mem / {v}: {med['mem'] / med[v]:.2f}x")
    if "mem" in med:
        for other in ("mmap", "llama"):
            if other in med and med[other] > 0:
                print(f"  moe --mem / {other}: {med['mem'] / med[other]:.2f}x")



def add_limits(rec, before, after):
    """The cache's limits for a run with disk probes before and after it."""
    c = rec.get("cache")
    if rec["rc"] or not c:
        return
    bw = (before + after) / 2 * 1e9
    # every share compares the run's own rate (the timed reps' tokens, the
    # prompt's included, over their wall time) with limits from the bytes of
    # those same tokens: a prompt's token after a reset reads far more than
    # a decode token, so decode tok/s against bytes per token of all tokens
    # would overstate the share
    rec["run_tok_s"] = 1 / rec["wall_per_token_s"]
    bpt = c["bytes_read"] / max(1, c["tokens"])
    rec["cache_bytes_per_token"] = bpt
    rec["limit_tok_s"] = bw / bpt if bpt else float("inf")
    # the bytes the layers needed: reads less the guesses read and not used
    need = bpt * max(0, c["reads"] - c["prefetch_wasted"]) / max(1, c["reads"])
    rec["limit_needed_tok_s"] = bw / need if need else float("inf")
    # compute sets the other limit: the time a token spends not waiting for
    # the disk (wall less the cache's stalls)
    comp = rec["wall_per_token_s"] - c["stall_seconds"] / max(1, c["tokens"])
    rec["limit_compute_tok_s"] = 1 / comp if comp > 0 else float("inf")
    # the bandwidth the cache's reads got while any was in flight, and the
    # share of the wall time with one in flight
    busy = c.get("read_busy_seconds", 0)
    if busy > 0 and need:
        inflight = c["bytes_read"] / busy
        rec["read_gb_s_inflight"] = inflight / 1e9
        rec["disk_busy"] = busy / (rec["wall_per_token_s"] * max(1, c["tokens"]))
        rec["limit_strict_tok_s"] = max(bw, inflight) / need
    # the lower of the disk's limit (strict where the reads' own bandwidth is known) and compute's
    rec["limit_binding_tok_s"] = min(rec.get("limit_strict_tok_s", rec["limit_needed_tok_s"]),
                                     rec["limit_compute_tok_s"])
    if rec.get("read_mbps"):  # the throttle's rate, which bursts after idle time may exceed
        rec["limit_throttle_tok_s"] = rec["read_mbps"] * 1e6 / need


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="the GGUF file (with --summarize: a --log file)")
    ap.add_argument("--summarize", action="store_true",
                    help="print the summary of the runs logged in MODEL (a --log file) and exit")
    ap.add_argument("--mem", default="", help="the cache's budget (moe --mem)")
    ap.add_argument("--limit-mb", type=int, default=0, help="run inside a memory cgroup of this size")
    ap.add_argument("--read-mbps", type=int, default=0,
                    help="throttle reads from the model's disk to this many MB/s (runs and probes)")
    ap.add_argument("--moe", default="build/moe")
    ap.add_argument("--llama-bench", default="")
    ap.add_argument("--llama-args", default="", help="extra llama-bench options")
    ap.add_argument("--policy", default="")
    ap.add_argument("--prefetch", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--engines", default="mem,mmap,llama")
    ap.add_argument("--log", default="", help="append one JSON line per run here")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:MOE:PREFETCH",
                    help="one more cache engine NAME (list it in --engines): `moe bench --mem` "
                    "with the binary MOE (empty: --moe) and --prefetch PREFETCH (empty: --prefetch), "
                    "to compare builds or settings in the same rounds")
    a = ap.parse_args()
    if a.summarize:
        recs = [json.loads(l) for l in open(a.model) if l.strip()]
        for rec in recs:  # logs written before the limits were logged carry only their inputs
            if "wall_per_token_s" in rec:
                add_limits(rec, *rec["disk_gb_s"])
        engines = list(dict.fromkeys(x["engine"] for x in recs))
        for x in recs:
            if x["rc"]:
                print(f"round {x['round']} {x['engine']}: FAILED rc {x['rc']}")
        summarize(recs, engines, {e: None for e in engines if e not in ("mem", "mmap", "llama")})
        return
    if not a.mem:
        ap.error("--mem is required")
    variants = {}
    for v in a.variant:
        name, moe, pf = (v.split(":") + ["", ""])[:3]
        variants[name] = (moe or None, int(pf) if pf else None)
    engines = [e for e in a.engines.split(",") if e != "llama" or a.llama_bench]
    if not drop_caches():
        print("expert_cache.py: cannot drop the page cache (not root?): runs start warm", file=sys.stderr)
    cg = []
    if a.limit_mb:
        cg.append(f"{CG_ROOT}/moe-bench-{os.getpid()}")
        os.makedirs(cg[-1], exist_ok=True)
        with open(f"{cg[-1]}/memory.limit_in_bytes", "w") as f:
            f.write(str(a.limit_mb << 20))
    io_cg = []
    if a.read_mbps:
        io_cg.append(f"{BLKIO_ROOT}/moe-bench-{os.getpid()}")
        os.makedirs(io_cg[-1], exist_ok=True)
        with open(f"{io_cg[-1]}/blkio.throttle.read_bps_device", "w") as f:
            f.write(f"{disk_of(a.model)} {a.read_mbps * 1000000}\n")
        cg += io_cg
    logf = open(a.log, "a") if a.log else None
    recs = []
    try:
        for r in range(a.rounds):
            # every other round in reverse order, so that a machine whose speed
            # drifts within a round (or favours the run after another) treats
            # every engine alike
            for eng in (engines if r % 2 == 0 else engines[::-1]):
                drop_caches()
                before = disk_probe(a.model, 2 * (r * 3 + engines.index(eng)), cg=io_cg)
                if eng == "llama":
                    rec = run_llama(a, cg)
                else:
                    env_mmap = eng == "mmap"
                    if env_mmap:
                        os.environ["MOE_LOAD"] = "mmap"
                    vm, vp = variants.get(eng, (None, None))
                    rec = run_moe(a, cg, "" if eng == "mmap" else a.mem, vm, vp)
                    os.environ.pop("MOE_LOAD", None)
                after = disk_probe(a.model, 2 * (r * 3 + engines.index(eng)) + 1, cg=io_cg)
                rec.update({"round": r, "engine": eng, "disk_gb_s": [before, after],
                            "model": a.model, "mem": a.mem, "limit_mb": a.limit_mb, "read_mbps": a.read_mbps,
                            "threads": a.threads, "gen": a.gen, "time": time.strftime("%FT%T")})
                add_limits(rec, before, after)
                recs.append(rec)
                if logf:
                    logf.write(json.dumps(rec) + "\n")
                    logf.flush()
                line = f"round {r} {eng:5s} "
                if rec["rc"]:
                    line += f"FAILED rc {rec['rc']}: {rec.get('error', '')}"
                else:
                    line += (f"{rec['tok_s']:8.2f} tok/s  rss {rec['rss_mib']:7.0f} MiB  "
                             f"read {rec['disk_bytes'] / rec['tokens'] / 1e6:8.1f} MB/token (all phases)  "
                             f"disk {before:.2f}/{after:.2f} GB/s")
                    if "limit_tok_s" in rec:
                        c = rec["cache"]
                        line += (f"  cache: hit {c['hit_rate']:.3f}  {rec['cache_bytes_per_token'] / 1e6:.1f} MB/token  "
                                 f"limit {rec['limit_tok_s']:.2f} tok/s ({rec['run_tok_s'] / rec['limit_tok_s']:.0%}; "
                                 f"needed bytes only {rec['run_tok_s'] / rec['limit_needed_tok_s']:.0%}); compute alone "
                                 f"{rec['limit_compute_tok_s']:.2f} tok/s (memory {rec['mem_gb_s']:.1f} GB/s); "
                                 f"of the lower limit {rec['run_tok_s'] / rec['limit_binding_tok_s']:.0%}")
                    if "limit_strict_tok_s" in rec:
                        line += (f"; reads in flight {rec['read_gb_s_inflight']:.2f} GB/s, disk busy "
                                 f"{rec['disk_busy']:.0%}, strict {rec['run_tok_s'] / rec['limit_strict_tok_s']:.0%}")
                print(line, flush=True)
    finally:
        for d in cg:
            try:
                os.rmdir(d)
            except OSError:
                pass
    summarize(recs, engines, variants)

if __name__ == "__main__":
    main()
