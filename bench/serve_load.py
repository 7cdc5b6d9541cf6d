#!/usr/bin/env python3
"""serve_load.py - load an OpenAI-compatible server with N concurrent clients.

Each client sends streaming /v1/completions requests one after another
(greedy, a fixed prompt per client and request, a fixed max_tokens) and
times every token as it arrives. Per client count it reports:

  agg_tok_s   output tokens of all clients / wall time from the first request
              sent to the last answer finished
  ttft        time to first token (request sent -> first streamed token)
  tpot        time per output token after the first ((t_last - t_first) /
              (tokens - 1)) of each request, tokens as the server's usage
              counts them (stream_options.include_usage; streamed chunks
              need not be one token each)
  as p50 and p99 over all requests of that level (nearest-rank percentiles).

Only the Python standard library is used (http.client and threads), so it
measures any server the same way (moe serve, llama.cpp's llama-server).

  python3 bench/serve_load.py --url http://127.0.0.1:8080 --clients 1,2,4,8 \
      --requests 4 --max-tokens 64 --prompt-words 64 [--api-key K] [--json OUT]

Tokens are the final chunk's usage.completion_tokens (chunks that carry
text when a server gives no usage); with --ignore-eos the
request asks the server to continue past end-of-sequence (llama-server's
`ignore_eos`; servers that do not know the field ignore it), so every
request produces max_tokens tokens on random-weight models too.
"""
import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse

WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at "
         "which but have an they you were her she there been one all we their has would when "
         "what if more will up no out so can said who its about into them than only other time "
         "new some could these two may first then do any like my now over such our man me even "
         "most made after also did many before must through back years where much your way well").split()


def prompt_for(client, req, n_words):
    # deterministic, different per (client, request): each request is a new prompt
    seed = client * 7919 + req * 104729 + 1
    out = []
    for i in range(n_words):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(WORDS[seed % len(WORDS)])
    return " ".join(out)


def one_request(url, api_key, model, prompt, max_tokens, ignore_eos, timeout):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    if model:
        body["model"] = model
    if ignore_eos:
        body["ignore_eos"] = True
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = "Bearer " + api_key
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers=headers)
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError("HTTP %d: %s" % (resp.status, resp.read()[:200]))
    times = []
    usage = None
    buf = b""
    done = False
    while not done:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                j = json.loads(data)
                if j.get("usage"):
                    usage = j["usage"].get("completion_tokens")
                ch = j.get("choices") or []
                if ch and ch[0].get("text"):
                    times.append(time.perf_counter())
    conn.close()
    # tokens: the server's count (text can be held back, e.g. an incomplete
    # UTF-8 character, so chunks need not be tokens); chunks if it gives none
    return t0, times, (usage if usage else len(times))


def pct(xs, p):
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))  # nearest rank
    return s[k]


def run_level(a, n_clients):
    results, errors = [], []
    lock = threading.Lock()

    def client(c):
        for r in range(a.requests):
            try:
                t0, times, ntok = one_request(a.url, a.api_key, a.model, prompt_for(c, r, a.prompt_words),
                                              a.max_tokens, a.ignore_eos, a.timeout)
                with lock:
                    results.append((t0, times, ntok))
            except Exception as e:  # noqa: BLE001 - reported, the level goes on
                with lock:
                    errors.append(str(e))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(n_clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    end = max([ts[-1] for _, ts, _ in results if ts] or [time.perf_counter()])
    toks = sum(n for _, _, n in results)
    ttft = [ts[0] - t0 for t0, ts, _ in results if ts]
    tpot = [(ts[-1] - ts[0]) / (n - 1) for _, ts, n in results if ts and n > 1]
    return {
        "clients": n_clients, "requests": len(results), "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "tokens": toks, "wall_s": end - start, "agg_tok_s": toks / (end - start) if end > start else 0.0,
        "ttft_p50_ms": 1e3 * pct(ttft, 50), "ttft_p99_ms": 1e3 * pct(ttft, 99),
        "tpot_p50_ms": 1e3 * pct(tpot, 50), "tpot_p99_ms": 1e3 * pct(tpot, 99),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--clients", default="1,2,4,8,16,32")
    ap.add_argument("--requests", type=int, default=4, help="requests per client per level")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=64)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--model", default="")
    ap.add_argument("--ignore-eos", action="store_true")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default="", help="append one JSON line per level to this file")
    a = ap.parse_args()
    print("%-8s %7s %5s %9s %10s %10s %10s %10s %6s" % ("label", "clients", "reqs", "agg tok/s",
          "ttft p50", "ttft p99", "tpot p50", "tpot p99", "errors"))
    for n in [int(x) for x in a.clients.split(",") if x]:
        r = run_level(a, n)
        r["label"] = a.label
        print("%-8s %7d %5d %9.1f %8.0fms %8.0fms %8.1fms %8.1fms %6d" % (
            a.label, n, r["requests"], r["agg_tok_s"], r["ttft_p50_ms"], r["ttft_p99_ms"],
            r["tpot_p50_ms"], r["tpot_p99_ms"], r["errors"]), flush=True)
        if r["errors"]:
            print("  first error: %s" % r["first_error"], file=sys.stderr)
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
