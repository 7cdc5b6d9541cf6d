#!/usr/bin/env python3
"""hostile.py - broken and hostile HTTP sent to a running `moe serve` on
127.0.0.1 over raw sockets: bad JSON, wrong types, huge and truncated
bodies, invalid UTF-8, absurd limits, deep nesting, garbage request lines,
oversized headers, bad chunked encoding, half-sent requests, early
disconnects, pipelining. A bounded number of connections, each with a
timeout. Every request that is complete must get a 4xx answer (never a 5xx,
never a hang); afterwards the server must still be healthy and give the
same greedy answer as before. Run by tests/cli/serve.sh; ends with
"N passed, N failed".

  hostile.py --port PORT --key KEY [--flood N --seed S --pid SERVER_PID]

--flood N then sends N random malformed requests (seeded mutations of valid
ones: fields of every JSON type, damaged bytes, invalid UTF-8, cut and
half-sent bodies, early disconnects), 8 connections at a time; each
complete one must be answered 2xx or 4xx, and the server's resident memory
must not grow by more than 256 MiB (tests/serve/flood.sh runs 10,000 against
a server built with ASan+UBSan).
"""
import argparse
import json
import socket
import sys
import threading
import time

passed = 0
failed = 0
TIMEOUT = 10


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what, flush=True)


def connect(port, timeout=TIMEOUT):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def status_of(data):
    """The status code of the first response in data, or None."""
    if not data.startswith(b"HTTP/1."):
        return None
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def read_all(s):
    """Read until the server closes or the first response is complete."""
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                hl = head.lower()
                if b"content-length:" in hl:
                    n = int(hl.split(b"content-length:")[1].split(b"\r\n")[0])
                    if len(rest) >= n:
                        break
                elif b"transfer-encoding: chunked" in hl and rest.endswith(b"0\r\n\r\n"):
                    break
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def send_raw(port, payload, what, want=None, timeout=TIMEOUT):
    """Send payload, expect an answer in want (a set of statuses; None: any
    4xx), or (when want holds 0) none: a close, or the server still waiting
    for the rest after timeout seconds."""
    s = connect(port, timeout)
    try:
        s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = read_all(s)
    s.close()
    st = status_of(data)
    if want is None:
        check(st is not None and 400 <= st < 500, "%s: answered %r" % (what, data[:80]))
    else:
        check((st or 0) in want, "%s: status %r, expected %r: %r" % (what, st, want, data[:80]))
    return st


def post(port, key, body, path="/v1/completions", extra=b""):
    if isinstance(body, str):
        body = body.encode()
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + key.encode() +
            b"\r\nContent-Type: application/json\r\nConnection: close\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def answer(port, key, prompt):
    s = connect(port)
    s.sendall(post(port, key, json.dumps({"prompt": prompt, "max_tokens": 12, "temperature": 0})))
    data = read_all(s)
    s.close()
    if status_of(data) != 200:
        return None
    return json.loads(data.split(b"\r\n\r\n", 1)[1])["choices"][0]["text"]


def rss_kb(pid):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


VALUES = [None, True, False, 0, -1, 1, 2 ** 31, -2 ** 63, 2 ** 64, 1e308, -1e-308, 0.5, "", "x", "\u0000",
          "\ud800", "a" * 70000, [], [1, 2], [[[]]], {}, {"a": {"b": [None]}}, ["s"] * 300]
FIELDS = ["prompt", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed",
          "stop", "stream", "logprobs", "top_logprobs", "echo", "n", "model", "ignore_eos", "stream_options",
          "tools", "logit_bias", "suffix", "best_of"]


def mutant(rng, key):
    """One malformed or abusive request (bytes) and what may come back:
    'answer' (a 2xx or 4xx, never 5xx or silence) or 'any' (half-sent or
    cut off: an answer, a close, or the server still waiting)."""
    chat = rng.random() < 0.4
    path = "/v1/chat/completions" if chat else "/v1/completions"
    body = ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1} if chat else
            {"prompt": "hi", "max_tokens": 1})
    body["temperature"] = 0
    for _ in range(rng.randint(1, 3)):  # fields set to values of any type
        body[rng.choice(FIELDS)] = rng.choice(VALUES)
    if isinstance(body.get("max_tokens"), int) and not isinstance(body.get("max_tokens"), bool) and body["max_tokens"] > 2:
        body["max_tokens"] = 2  # a valid request stays quick
    if isinstance(body.get("max_completion_tokens"), int) and body["max_completion_tokens"] > 2:
        body["max_completion_tokens"] = 2
    raw_body = json.dumps(body, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    kind = rng.random()
    if kind < 0.45:  # byte-level damage: flips, cuts, inserted bytes (invalid UTF-8, NUL, controls)
        b = bytearray(raw_body)
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(4)
            i = rng.randrange(len(b) + 1)
            if op == 0 and b:
                b[min(i, len(b) - 1)] = rng.randrange(256)
            elif op == 1:
                del b[i:i + rng.randint(1, 8)]
            elif op == 2:
                b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
            else:
                b[i:i] = b[i:i + rng.randint(1, 20)] * rng.randint(1, 50)
        raw_body = bytes(b)
    auth = b"Authorization: Bearer " + (key if rng.random() < 0.95 else "bad").encode() + b"\r\n"
    head = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + auth +
            b"Content-Type: application/json\r\nConnection: close\r\n")
    if kind < 0.9:
        return head + b"Content-Length: %d\r\n\r\n" % len(raw_body) + raw_body, "answer"
    if kind < 0.95:  # declared longer than sent, or a body cut short: the server may wait for the rest
        return head + b"Content-Length: %d\r\n\r\n" % (len(raw_body) + rng.randint(1, 1000)) + raw_body, "any"
    cut = head + b"Content-Length: %d\r\n\r\n" % len(raw_body) + raw_body
    return cut[:rng.randrange(len(cut))], "any"


def flood(port, key, n, seed, threads, pid):
    """n mutants from seed over `threads` connections at a time; every complete
    one answered 2xx/4xx; server memory (RSS) growth bounded."""
    import random
    lock = threading.Lock()
    stats = {"2xx": 0, "4xx": 0, "5xx": 0, "none": 0, "bad": []}
    rss0 = rss_kb(pid) if pid else None

    def worker(w):
        rng = random.Random(seed * 1000 + w)
        for i in range(w, n, threads):
            try:
                payload, want = mutant(rng, key)
            except Exception as e:  # noqa: BLE001 - a broken generator must not pass silently
                with lock:
                    stats["bad"].append("request %d: the generator failed: %r" % (i, e))
                continue
            try:
                s = connect(port, 5 if want == "answer" else 0.3)
                try:
                    s.sendall(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if want == "any" and rng.random() < 0.5:
                    s.close()  # gone before the answer
                    with lock:
                        stats["none"] += 1
                    continue
                data = read_all(s)
                s.close()
            except OSError as e:
                data = b""
                if want == "answer":
                    with lock:
                        stats["bad"].append("request %d: %s" % (i, e))
                    continue
            st = status_of(data)
            with lock:
                if st is None:
                    stats["none"] += 1
                    if want == "answer":
                        stats["bad"].append("request %d: no answer to %r" % (i, payload[:120]))
                elif 200 <= st < 300:
                    stats["2xx"] += 1
                elif 400 <= st < 500:
                    stats["4xx"] += 1
                else:
                    stats["5xx"] += 1
                    stats["bad"].append("request %d: status %d to %r" % (i, st, payload[:120]))

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rss1 = rss_kb(pid) if pid else None
    print("flood: %d requests in %.1f s: %d 2xx, %d 4xx, %d 5xx, %d closed or unanswered (allowed for half-sent); "
          "server RSS %s -> %s KiB" % (n, time.time() - t0, stats["2xx"], stats["4xx"], stats["5xx"], stats["none"],
                                       rss0, rss1), flush=True)
    for b in stats["bad"][:10]:
        print("  " + b)
    check(not stats["bad"], "flood: %d requests answered wrongly or not at all" % len(stats["bad"]))
    check(stats["4xx"] >= n // 2, "flood: only %d refusals: the mutants are not malformed enough" % stats["4xx"])
    if rss0 and rss1:
        check(rss1 - rss0 < 256 * 1024, "flood: server memory grew by %d KiB" % (rss1 - rss0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--flood", type=int, default=0, help="then this many random malformed requests")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--pid", type=int, default=0, help="the server's pid, to watch its memory")
    a = ap.parse_args()
    port, key = a.port, a.key
    t0 = time.time()
    before = answer(port, key, "hostile traffic")
    check(before is not None, "baseline answer")

    # bodies that are not what they should be: each a 400
    bodies = [
        "", "{", "}", "nul", "{\"prompt\": }", "{\"prompt\": \"x\",}", "[]", "\"x\"", "123", "{\"prompt\": \"x\"}}",
        "{\"prompt\": \"\\ud800\"", "{\"prompt\": \"x\", \"max_tokens\": 1e308}", "{\"prompt\": \"x\", \"max_tokens\": -1}",
        "{\"prompt\": \"x\", \"max_tokens\": NaN}", "{\"prompt\": \"x\", \"temperature\": Infinity}",
        "{\"prompt\": \"x\", \"logprobs\": 1000000000}", "{\"prompt\": \"x\", \"top_k\": 1e300}",
        "{\"prompt\": \"x\", \"seed\": 1e400}", "{\"prompt\": \"x\", \"stop\": [" + ",".join(['"s"'] * 100000) + "]}",
        "{\"prompt\": \"x\", \"stop\": \"" + "s" * 100000 + "\"}",
        "{\"prompt\": [" + ",".join(["1"] * 600000) + "]}",
        "{\"prompt\": " + "[" * 100000 + "]" * 100000 + "}",
        "{\"prompt\": {\"a\": " * 5000 + "1" + "}" * 5000 + "}",
        "{\"prompt\": [1, 2, 3.000001]}", "{\"prompt\": [1e10]}", "{\"prompt\": [-0.5]}", "{\"prompt\": [true]}",
        "{\"prompt\": null}", "{\"prompt\": \"x\", \"stream\": \"true\"}", "{\"prompt\": \"x\", \"stop\": [null]}",
        "{\"prompt\": \"x\" \"y\"}",
    ]
    for i, b in enumerate(bodies):
        send_raw(port, post(port, key, b), "bad body %d (%r)" % (i, b[:40]), {400})
    # invalid UTF-8, NUL bytes, control characters
    for i, b in enumerate([b'{"prompt": "\xff\xfe"}', b'{"prompt": "\xc0\x80"}', b'{"prompt": "\xed\xa0\x80"}',
                           b'{"prompt": "a\x00b"}', b'\x00' * 100, b'{"prompt": "\xe2\x82"}']):
        send_raw(port, post(port, key, b), "bad bytes %d" % i, {400})
    # chat bodies: bad messages, deep nesting in a message, a template-sized flood
    chats = [
        "{\"messages\": null}", "{\"messages\": [null]}", "{\"messages\": [{\"role\": 1, \"content\": \"x\"}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": {\"a\": 1}}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"extra\": " + "[" * 2000 + "]" * 2000 + "}]}",
        "{\"messages\": [" + ",".join(['{"role": "user", "content": "x"}'] * 5000) + "]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"" + "word " * 20000 + "\"}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_logprobs\": 3}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": \"all\"}",
    ]
    for i, b in enumerate(chats):
        send_raw(port, post(port, key, b, "/v1/chat/completions"), "bad chat body %d (%r)" % (i, b[:40]), {400})

    # wrong types on every field
    for f, v in [("max_tokens", "1"), ("temperature", [1]), ("top_p", {}), ("top_k", True), ("seed", "7"),
                 ("stop", {"a": 1}), ("stream", 0), ("logprobs", "2"), ("echo", "no"), ("model", 1), ("n", "1")]:
        send_raw(port, post(port, key, json.dumps({"prompt": "x", f: v})), "wrong type %s" % f, {400})

    # sizes: a huge declared body refused unread, one just past the limit read and refused
    send_raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + key.encode() +
             b"\r\nContent-Length: 1000000000000\r\n\r\n{", "huge declared body", {413})
    send_raw(port, post(port, key, b"{\"prompt\": \"" + b"a" * (4 << 20) + b"\"}"), "body past 4 MiB", {413})
    # the method or path wrong, unauthenticated, garbage request lines
    send_raw(port, b"GET /v1/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "GET completions", {401, 405})
    send_raw(port, post(port, "wrong", "{}"), "wrong key", {401})
    send_raw(port, b"GET /" + b"a" * 200000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", "200 KB URL", {0, 400, 404, 413, 414, 431})
    send_raw(port, b"GET /health HTTP/1.1\r\nHost: t\r\n" + b"X-A: " + b"b" * 300000 + b"\r\n\r\n", "300 KB header",
             {0, 400, 413, 431})
    send_raw(port, b"GET /health HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(20000)) + b"\r\n",
             "20000 headers", {0, 400, 413, 431})
    send_raw(port, b"GARBAGE\r\n\r\n", "garbage line", {0, 400, 505})
    send_raw(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 200, "TLS hello", {0, 400, 505}, 1)
    send_raw(port, b"GET /health HTTP/9.9\r\nHost: t\r\n\r\n", "HTTP/9.9", {0, 400, 505})
    send_raw(port, b"GET /health\xff\xfe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "bytes in path", {0, 400, 404})
    send_raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + key.encode() +
             b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "bad chunk size", {0, 400})
    send_raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + key.encode() +
             b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
             b"7fffffffffffffff\r\nabc\r\n", "absurd chunk size", {0, 400, 413}, 1)
    send_raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + key.encode() +
             b"\r\nContent-Length: 5\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}", "two lengths", {0, 400})

    # half-sent requests and early disconnects: the server must not wait on them
    socks = []
    for i in range(40):
        s = connect(port)
        s.sendall([b"POST /v1/completions HTTP/1.1\r\nHo", b"GET /health HTTP/1.1\r\n",
                   post(port, key, "{\"prompt\": \"x\", \"max_tokens\": 4}")[:-5],
                   b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"pr"][i % 4])
        socks.append(s)
    mid = answer(port, key, "hostile traffic")
    check(mid == before, "answer while 40 connections hang half-sent: %r" % mid)
    for s in socks:
        s.close()
    for i in range(30):  # full requests, closed before the answer
        s = connect(port)
        stream = "true" if i % 2 else "false"
        s.sendall(post(port, key, "{\"prompt\": \"early %d\", \"max_tokens\": 300, \"stream\": %s}" % (i, stream)))
        if i % 3 == 0:
            s.shutdown(socket.SHUT_WR)
        s.close()
    # pipelined requests on one connection: both answered in order
    s = connect(port)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except socket.timeout:
        pass
    s.close()
    check(data.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 404" in data, "pipelined: %r" % data[:120])
    # many connections at once, each a small bad request
    threads = []
    for i in range(64):
        t = threading.Thread(target=send_raw, args=(port, post(port, key, "{\"prompt\": %d}" % i), "burst %d" % i, {400}))
        threads.append(t)
        t.start()
    for t in threads:
        t.join()

    if a.flood:
        flood(port, key, a.flood, a.seed, a.threads, a.pid)

    # still up, still right
    time.sleep(0.2)
    s = connect(port)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    check(status_of(read_all(s)) == 200, "health after the traffic")
    s.close()
    after = answer(port, key, "hostile traffic")
    check(after == before, "answer after the traffic: %r != %r" % (after, before))
    s = connect(port)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    m = read_all(s).decode(errors="replace")
    s.close()
    check("moe_running_sequences 0" in m and "moe_queue_length 0" in m, "slots not all free after the traffic")
    check(time.time() - t0 < 120 + a.flood * 0.05, "took %.0f s" % (time.time() - t0))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
