#!/usr/bin/env python3
"""vs_engines.py - moe, llama.cpp and ik_llama.cpp on the same GGUF files,
same threads, rounds alternating engine by engine, with the machine's limits
probed around every round.

For each model and engine: prefill tokens/s at each --prompts size and
decode tokens/s of --gen tokens (each engine times itself: `moe bench
--json`, `llama-bench -o json`; medians over --reps inside a run, then over
rounds). The probes (`moe bench --probe-only --json`, same threads) give the
memory read bandwidth, the f32 peak and the int8 multiply-accumulate peak of
the path moe's quantized prefill takes; each round is compared with the mean
of the probes before and after it. The summary gives, per model:

  prefill N   each engine's tok/s, moe over the faster peer, and moe's
              prefill operations (2 per active matmul weight per token, the
              output head for the last token only, plus
              attention) as a share of the int8 peak and, on AMX and
              AVX-512 VNNI, of the block peak (the products of weights with
              a scale per 32-block, whose f32 scaling bounds them; `moe
              bench` probes both)
  decode      each engine's tok/s, moe over the faster peer, and moe's
              bytes of active weights per second as a share of the bandwidth

Every run is bracketed by a short probe (`moe bench --probe-only
--probe-mb 256`, about 0.2 s) of the int8 peak and the read bandwidth. On
a shared host the two threads can land on one core's two hardware threads
for minutes, which halves the int8 peak and any engine's prefill with it;
a run whose probe before or after reads under --contended (0.75) of the
best int8 peak seen is run again (--retries, 2), and the summary leaves
contended runs out wherever the same engine has others, saying how many.
The bandwidth wanders too (26-44 GB/s on one machine, in states minutes
long), so the summary also gives each engine's decode per GB/s of the
bandwidth probed around its runs.

Models are random-weight files with released shapes, made once in --dir by
`moe init --preset P --layers 4 --type T` (streamed straight to GGUF):
  q3-T      Qwen3-30B-A3B shape, 4 of 48 layers (128 experts, top-8)
  olmoe-T   OLMoE-1B-7B shape, 4 of 16 layers (64 experts, top-8)
  dsv2l-T   DeepSeek-V2-Lite shape, 4 of 27 layers (latent attention, 64 experts
            top-6 + 2 shared, the first layer dense)
for T in q8_0, q4_k, iq4_xs, ... (any `moe init --type`). Their routers send
most tokens of every layer after the first to a few experts (their
embeddings are as small as the other weights); --embed-std 1 makes files
whose routing spreads as a trained router's does (docs/PERF.md).

  python3 bench/vs_engines.py --llama-bench /path/llama.cpp/build/bin/llama-bench \\
      --ik-bench /path/ik_llama.cpp/build/bin/llama-bench --ik-args "-rtr 1" \\
      --models q3-q8_0,q3-q4_k,q3-iq4_xs,olmoe-q8_0,olmoe-q4_k,olmoe-iq4_xs \\
      --rounds 3 --log LOG.jsonl
  python3 bench/vs_engines.py --summarize LOG.jsonl

llama.cpp and ik_llama.cpp are built by hand from their public sources
(cmake -DGGML_NATIVE=ON, target llama-bench); either may be left out.
For the AVX2 paths on a CPU that has AVX-512, build them with
-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF
and give moe --moe-args "--kernels avx2".
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PRESETS = {"q3": "qwen3-30b-a3b", "olmoe": "olmoe-1b-7b", "dsv2l": "deepseek-v2-lite"}


def sh(cmd, timeout=3600):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def model_file(a, key):
    shape, _, qtype = key.partition("-")
    if shape not in PRESETS or not qtype:
        sys.exit(f"vs_engines.py: unknown model {key} (SHAPE-TYPE, SHAPE one of {', '.join(PRESETS)})")
    emb = f"-e{a.embed_std:g}" if a.embed_std > 0 else ""
    path = os.path.join(a.dir, f"{shape}-4l-{qtype}{emb}.gguf")
    if not os.path.exists(path):
        os.makedirs(a.dir, exist_ok=True)
        tmp = path + ".part.gguf"
        r = sh([a.moe, "init", "--preset", PRESETS[shape], "--layers", "4", "--type", qtype,
                "--threads", str(a.threads)] + (["--embed-std", f"{a.embed_std:g}"] if emb else []) + [tmp])
        if r.returncode:
            sys.exit(f"vs_engines.py: moe init for {key} failed: {r.stderr.strip()[-400:]}")
        os.rename(tmp, path)
    return path


def probe(a):
    r = sh([a.moe, "bench", "--probe-only", "--json", "--threads", str(a.threads), "--probe-mb", "1024"]
           + a.moe_args.split())
    if r.returncode:
        sys.exit(f"vs_engines.py: probe failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def state_probe(a):
    """The int8 peak and the read bandwidth from a short probe (256 MiB,
    about 0.2 s): on a shared host the threads may land on one core's two
    hardware threads for a while, which halves the int8 peak and every
    engine's prefill with it, and the bandwidth wanders by half as much
    again, and every engine's decode with it."""
    r = sh([a.moe, "bench", "--probe-only", "--json", "--threads", str(a.threads), "--probe-mb", "256"]
           + a.moe_args.split())
    if r.returncode:
        return None, None
    j = json.loads(r.stdout)
    return j["int8_peak_gop_s"], j["bandwidth_gb_s"]


def contended(around, ref, frac):
    """A run whose probes before or after it fell below frac of the best
    int8 peak seen (ref) ran on a contended machine."""
    vals = [v for v in (around or []) if v]
    return bool(vals) and ref is not None and min(vals) < frac * ref


def run_moe(a, path):
    r = sh([a.moe, "bench", path, "--prompt", a.prompts, "--gen", str(a.gen), "--reps", str(a.reps),
            "--threads", str(a.threads), "--probe-mb", "256", "--json"] + a.moe_args.split())
    if r.returncode:
        return {"error": r.stderr.strip()[-400:]}
    j = json.loads(r.stdout)
    return {"prefill": {str(p["tokens"]): p["tok_s"] for p in j["prefill"]},
            "prefill_frac_int8": {str(p["tokens"]): p["frac_int8_peak"] for p in j["prefill"]},
            "prefill_gop_s": {str(p["tokens"]): p["gflop_s"] for p in j["prefill"]},
            "prefill_frac_block": {str(p["tokens"]): p.get("frac_int8_block_peak") for p in j["prefill"]},
            "decode": j["decode_tok_s"], "decode_gb_s": j["decode_gb_s"],
            "int8_path": j.get("int8_path"), "quant_path": j.get("quant_path")}


def run_llama(a, exe, path, extra=""):
    # -o json: one array of tests (ik_llama.cpp's llama-bench has no jsonl)
    cmd = [exe, "-m", path, "-p", a.prompts, "-n", str(a.gen), "-r", str(a.reps), "-t", str(a.threads),
           "-o", "json"] + a.llama_args.split() + extra.split()
    r = sh(cmd)
    out = {"prefill": {}, "decode": None}
    try:
        tests = json.loads(r.stdout)
    except ValueError:
        tests = []
    for j in tests if isinstance(tests, list) else []:
        if not isinstance(j, dict):
            continue
        if j.get("n_gen", 0) == 0 and j.get("n_prompt", 0) > 0:
            out["prefill"][str(j["n_prompt"])] = j["avg_ts"]
        elif j.get("n_prompt", 0) == 0 and j.get("n_gen", 0) > 0:
            out["decode"] = j["avg_ts"]
    if r.returncode or out["decode"] is None:
        out["error"] = (r.stderr.strip() or "no results")[-400:]
    return out


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def summarize(recs, prompts, frac=0.75):
    # rounds in log order (logs of several invocations each count from 0):
    # a round is a probe, its runs and a probe, so a probe that follows a
    # probe (or starts the log) opens the next round
    rnd, last = -1, "probe"
    for r in recs:
        if r["kind"] == "probe" and last == "probe":
            rnd += 1
        r["round"], last = rnd, r["kind"]
    models = list(dict.fromkeys(r["model"] for r in recs if r["kind"] == "run"))
    engines = [e for e in ("moe", "llama.cpp", "ik_llama.cpp") if any(r.get("engine") == e for r in recs)]
    probes = {}
    for r in recs:
        if r["kind"] == "probe":
            probes.setdefault(r["round"], []).append(r)
    # the best int8 peak of the log: runs whose short probes fell below frac
    # of it are left out where the same engine has runs that did not
    ref = max([q["int8_peak_gop_s"] for v in probes.values() for q in v] +
              [x for r in recs for x in (r.get("int8_around") or []) if x] or [None])
    ref_block = max([q["int8_block_peak_gop_s"] for v in probes.values() for q in v
                     if q.get("int8_block_peak_gop_s")] or [None])
    for r in recs:
        if r["kind"] == "run":
            r["contended"] = contended(r.get("int8_around"), ref, frac)
    print(f"\nmedians over rounds ({len(probes)} rounds); engines: {', '.join(engines)}")
    left = sum(1 for r in recs if r.get("contended"))
    if left:
        print(f"runs whose short probes before or after read an int8 peak under {frac:.0%} of the best "
              f"({ref:.0f} GOP/s): {left}, left out where the engine has others")
    decode_norm = []
    for m in models:
        runs = [r for r in recs if r["kind"] == "run" and r["model"] == m]
        for e in engines:  # an engine with only contended runs keeps them
            mine = [r for r in runs if r["engine"] == e]
            if all(r["contended"] for r in mine):
                for r in mine:
                    r["contended"] = False
        runs = [r for r in runs if not r["contended"]]
        print(f"\n{m}")
        rows = [("prefill " + p, lambda x, p=p: x["prefill"].get(p)) for p in prompts] + \
               [("decode", lambda x: x["decode"])]
        for name, get in rows:
            vals = {e: med([get(r) for r in runs if r["engine"] == e and "error" not in r]) for e in engines}
            peers = [vals[e] for e in engines if e != "moe" and vals[e]]
            best = max(peers) if peers else None
            line = f"  {name:13s}" + "".join(
                f" {e} {vals[e]:9.2f}" if vals[e] is not None else f" {e} {'-':>9s}" for e in engines)
            if vals.get("moe") and best:
                line += f"   moe / faster peer {vals['moe'] / best:5.2f}x"
            if name == "decode":  # each run's tok/s over the bandwidth probed around it
                per = {e: med([r["decode"] / statistics.mean(r["bw_around"]) for r in runs
                               if r["engine"] == e and "error" not in r and r.get("decode")
                               and r.get("bw_around") and all(r["bw_around"])]) for e in engines}
                pp = [per[e] for e in engines if e != "moe" and per[e]]
                if per.get("moe") and pp:
                    decode_norm.append(f"  {m:14s} decode per GB/s probed around each run:" + "".join(
                        f" {e} {per[e]:6.3f}" for e in engines if per[e]) +
                        f"   moe / faster peer {per['moe'] / max(pp):5.2f}x")
            moe_runs = [r for r in runs if r["engine"] == "moe" and "error" not in r]
            if name.startswith("prefill"):
                p = name.split()[1]
                # against the best int8 peak of the log where the run kept its
                # operations per second (moe's own probe may have caught the
                # machine contended), else against its own probe
                f = med([r["prefill_gop_s"][p] / ref if r.get("prefill_gop_s", {}).get(p) and ref
                         else r["prefill_frac_int8"].get(p) for r in moe_runs])
                if f is not None:
                    line += f"   {100 * f:5.1f}% of int8 peak"
                # the block peak likewise: the best of the log's probes
                fb = med([r["prefill_gop_s"][p] / ref_block
                          if r.get("prefill_gop_s", {}).get(p) and ref_block and r.get("prefill_frac_block", {}).get(p)
                          else r.get("prefill_frac_block", {}).get(p) for r in moe_runs])
                if fb:
                    line += f", {100 * fb:5.1f}% of block peak"
            else:  # decode: moe's bytes per second against the probes around its round
                fr = []
                for r in moe_runs:
                    bws = [q["bandwidth_gb_s"] for q in probes.get(r["round"], [])]
                    if bws:
                        fr.append(r["decode_gb_s"] / statistics.mean(bws))
                if fr:
                    line += f"   {100 * statistics.median(fr):5.1f}% of bandwidth"
            print(line)
    if decode_norm:
        print("\n" + "\n".join(decode_norm))
    bw = [q["bandwidth_gb_s"] for v in probes.values() for q in v]
    i8 = [q["int8_peak_gop_s"] for v in probes.values() for q in v]
    i8b = [q["int8_block_peak_gop_s"] for v in probes.values() for q in v if q.get("int8_block_peak_gop_s")]
    if bw:
        paths = sorted({q.get("int8_path", "?") for v in probes.values() for q in v})
        print(f"\nprobes: read bandwidth {min(bw):.1f}-{max(bw):.1f} GB/s, int8 peak "
              f"{min(i8):.0f}-{max(i8):.0f} GOP/s ({', '.join(paths)})"
              + (f", with a scale per 32-block {min(i8b):.0f}-{max(i8b):.0f} GOP/s" if i8b else ""))
    for r in recs:
        if r.get("error"):
            print(f"round {r['round']} {r['model']} {r['engine']}: FAILED: {r['error']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moe", default="build/moe")
    ap.add_argument("--llama-bench", default="", help="llama.cpp's llama-bench")
    ap.add_argument("--ik-bench", default="", help="ik_llama.cpp's llama-bench")
    ap.add_argument("--llama-args", default="", help="extra options for both llama-bench builds")
    ap.add_argument("--moe-args", default="", help="extra options for moe bench and its probes "
                    "(e.g. '--kernels avx2' beside llama-bench builds without AVX-512)")
    ap.add_argument("--ik-args", default="", help="extra options for ik_llama.cpp's llama-bench only "
                    "(e.g. '-rtr 1': repack the weights at load)")
    ap.add_argument("--models", default="q3-q8_0,q3-q4_k,q3-iq4_xs")
    ap.add_argument("--embed-std", type=float, default=0.0,
                    help="make the files with `moe init --embed-std X` (named ...-eX.gguf): routing "
                         "spread over the experts as a trained router's, not collapsed onto a few")
    ap.add_argument("--dir", default="build/bench-vs-engines", help="where the model files are made")
    ap.add_argument("--prompts", default="128,512")
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--retries", type=int, default=2,
                    help="run again, up to this many times, a run whose short probes before or after "
                         "read an int8 peak under --contended of the best seen (the machine's threads "
                         "shared a core)")
    ap.add_argument("--contended", type=float, default=0.75, metavar="FRAC",
                    help="the share of the best int8 peak under which a run counts as contended")
    ap.add_argument("--log", default="", help="append one JSON line per run and probe here")
    ap.add_argument("--summarize", default="", metavar="LOG",
                    help="only print the summary of LOG (at the prompt sizes it holds)")
    a = ap.parse_args()
    prompts = [p for p in a.prompts.split(",") if p]
    if a.summarize:
        recs = [json.loads(l) for l in open(a.summarize) if l.strip()]
        logged = sorted({p for r in recs if r.get("kind") == "run" for p in r.get("prefill", {})}, key=int)
        summarize(recs, logged or prompts, a.contended)  # the sizes the log holds
        return
    engines = [("moe", None)]
    if a.llama_bench:
        engines.append(("llama.cpp", a.llama_bench))
    if a.ik_bench:
        engines.append(("ik_llama.cpp", a.ik_bench))
    keys = [k for k in a.models.split(",") if k]
    files = {k: model_file(a, k) for k in keys}
    logf = open(a.log, "a") if a.log else None
    recs = []

    def keep(rec):
        rec["time"] = time.strftime("%FT%T")
        recs.append(rec)
        if logf:
            logf.write(json.dumps(rec) + "\n")
            logf.flush()

    for r in range(a.rounds):
        keep(dict(probe(a), kind="probe", round=r))
        for k in keys:
            for name, exe in engines:
                extra = a.ik_args if name == "ik_llama.cpp" else ""
                for attempt in range(a.retries + 1):
                    before = state_probe(a)
                    res = run_moe(a, files[k]) if name == "moe" else run_llama(a, exe, files[k], extra)
                    after = state_probe(a)
                    around = [before[0], after[0]]
                    best = max([q["int8_peak_gop_s"] for q in recs if q["kind"] == "probe"] +
                               [x for q in recs for x in (q.get("int8_around") or []) if x] +
                               [x for x in around if x])
                    bad = contended(around, best, a.contended)
                    keep(dict(res, kind="run", round=r, model=k, engine=name, threads=a.threads, gen=a.gen,
                              int8_around=around, bw_around=[before[1], after[1]]))
                    line = f"round {r} {k:14s} {name:13s}"
                    if "error" in res:
                        line += f" FAILED: {res['error'][-200:]}"
                    else:
                        line += "".join(f" pp{p} {res['prefill'].get(p, 0):8.2f}" for p in prompts)
                        line += f" tg {res['decode']:7.2f}"
                    if bad:
                        line += f"   contended (int8 peak {min(x for x in around if x):.0f} of {best:.0f})"
                    print(line, flush=True)
                    if not bad or "error" in res:
                        break
        keep(dict(probe(a), kind="probe", round=r))
    summarize(recs, prompts, a.contended)


if __name__ == "__main__":
    main()
