#!/usr/bin/env python3
"""serve_batching.py - what continuous batching buys `moe serve`: N clients
at once (the openai client, greedy, each its own prompt), against servers
that run 1 sequence at a time and N at a time, alternating rounds on the
same model. Prints each round's aggregate generated tokens per second and
the median ratio. docs/SERVER.md quotes it.

  python3 bench/serve_batching.py MODEL [--moe build/moe] [--clients 8]
      [--tokens 32] [--rounds 3] [--threads 2]
"""
import argparse
import concurrent.futures
import re
import statistics
import subprocess
import time

import openai


def start(moe, model, parallel, threads):
    p = subprocess.Popen([moe, "serve", model, "--port", "0", "--parallel", str(parallel), "--threads", str(threads)],
                         stderr=subprocess.PIPE, text=True)
    port = None
    for line in p.stderr:
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        port = int(m.group(1)) if m else port
        if line.startswith("moe serve: ready"):
            return p, port
    raise RuntimeError("moe serve did not start")


def round_tok_s(port, clients, tokens):
    def one(i):
        c = openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % port, api_key="x", max_retries=0)
        r = c.completions.create(model="m", prompt="request %d: once upon a time" % i, max_tokens=tokens, temperature=0)
        return r.usage.completion_tokens
    t = time.time()
    with concurrent.futures.ThreadPoolExecutor(clients) as ex:
        n = sum(ex.map(one, range(clients)))
    return n / (time.time() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--moe", default="build/moe")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    servers = {n: start(a.moe, a.model, n, a.threads) for n in (1, a.clients)}
    try:
        for n, (_, port) in servers.items():  # warm up: pages mapped, caches filled
            round_tok_s(port, a.clients, 4)
        ratios = []
        for r in range(a.rounds):
            one = round_tok_s(servers[1][1], a.clients, a.tokens)
            many = round_tok_s(servers[a.clients][1], a.clients, a.tokens)
            ratios.append(many / one)
            print("round %d: --parallel 1 %.1f tok/s, --parallel %d %.1f tok/s, %.2fx" % (r + 1, one, a.clients, many, many / one))
        print("median: %.2fx with %d clients" % (statistics.median(ratios), a.clients))
    finally:
        for p, _ in servers.values():
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
