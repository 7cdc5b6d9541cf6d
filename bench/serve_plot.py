#!/usr/bin/env python3
"""serve_plot.py - the table and plot of docs/PERF.md's serving section from
bench/serve_vs_llamacpp.sh's JSON lines (one line per engine, round and
client count).

  python3 bench/serve_plot.py LOG.jsonl [--png OUT.png]

Prints a Markdown table: per client count, each engine's aggregate output
tokens/s, p50/p99 time to first token and time per output token (medians
over rounds), and moe's throughput ratio to llama-server. With --png, draws
aggregate tokens/s and p99 time per output token against the client count.
"""
import argparse
import json
import statistics
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--png", default="")
    a = ap.parse_args()
    runs = defaultdict(list)
    for line in open(a.log):
        line = line.strip()
        if line:
            r = json.loads(line)
            runs[(r["label"], r["clients"])].append(r)
    labels = sorted({k[0] for k in runs}, key=lambda s: (s != "moe", s))
    clients = sorted({k[1] for k in runs})
    keys = ("agg_tok_s", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms")
    med = {}
    for k, rs in runs.items():
        med[k] = {f: statistics.median(r[f] for r in rs) for f in keys}
        med[k]["rounds"] = len(rs)
        med[k]["errors"] = sum(r["errors"] for r in rs)
    hdr = "| clients |"
    for lb in labels:
        hdr += " %s tok/s | TTFT p50 / p99 ms | TPOT p50 / p99 ms |" % lb
    if "moe" in labels and "llama-server" in labels:
        hdr += " tok/s ratio | p99 TPOT ratio |"
    print(hdr)
    print("|" + "---:|" * (hdr.count("|") - 1))
    for c in clients:
        row = "| %d |" % c
        for lb in labels:
            m = med.get((lb, c))
            if not m:
                row += " - | - | - |"
                continue
            row += " %.1f | %.0f / %.0f | %.1f / %.1f |" % (m["agg_tok_s"], m["ttft_p50_ms"], m["ttft_p99_ms"],
                                                        m["tpot_p50_ms"], m["tpot_p99_ms"])
        if ("moe", c) in med and ("llama-server", c) in med:
            x, y = med[("moe", c)], med[("llama-server", c)]
            row += " %.2fx | %.2fx |" % (x["agg_tok_s"] / y["agg_tok_s"], x["tpot_p99_ms"] / y["tpot_p99_ms"])
        print(row)
    errs = {k: m["errors"] for k, m in med.items() if m["errors"]}
    if errs:
        print("\nfailed requests: %s" % errs)
    if a.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        for lb in labels:
            cs = [c for c in clients if (lb, c) in med]
            ax[0].plot(cs, [med[(lb, c)]["agg_tok_s"] for c in cs], "o-", label=lb)
            ax[1].plot(cs, [med[(lb, c)]["tpot_p99_ms"] for c in cs], "o-", label=lb)
        for x, t in zip(ax, ("aggregate output tokens/s", "p99 time per output token (ms)")):
            x.set_xscale("log", base=2)
            x.set_xticks(clients)
            x.set_xticklabels([str(c) for c in clients])
            x.set_xlabel("concurrent clients")
            x.set_title(t)
            x.grid(alpha=0.3)
            x.legend()
        fig.tight_layout()
        fig.savefig(a.png, dpi=110)


if __name__ == "__main__":
    main()
