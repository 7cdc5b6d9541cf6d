#!/usr/bin/env python3
"""test_openai.py - `moe serve` driven by the real `openai` Python client
(and raw HTTP where the client hides the status line). Run by
tests/cli/serve.sh, which starts the servers; ends with "N passed, N failed".

  --mode main   a server with --parallel 4 --step-tokens 8: greedy and seeded
                answers equal `moe generate` on the same prompt (same text,
                same token count), whole and streamed; 16 concurrent clients
                each get their solo answer; stop strings; logprobs; models,
                health, metrics (Prometheus lines); 401, 400, 404, 405; chat
                completions with tests/serve/chat.jinja (whole, streamed,
                logprobs, refusals).
  --mode busy   a server with --parallel 1 --max-queue 1 --ctx 2048 and no
                chat template (501 for chat); 429 when
                the queue is full; a client that disconnects mid-stream frees
                the slot; SIGTERM (--pid) lets the stream in flight finish.
  --mode limits a server with --timeout 0.25 --grace 0: the time limit ends a
                request ("length"); a stream still running past the grace
                after SIGTERM ends with an error event.
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import openai

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what, flush=True)
    return cond


def raw(port, method, path, body=None, headers=None):
    """(status, headers, body bytes) of one plain HTTP request."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = dict(headers or {})
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def generate(moe, model, prompt, n, extra=()):
    """(text, generated tokens) of `moe generate`."""
    p = subprocess.run([moe, "generate", model, "-p", prompt, "-n", str(n), *extra],
                       capture_output=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("moe generate failed: " + p.stderr.decode(errors="replace"))
    text = p.stdout.decode("utf-8")
    assert text.endswith("\n")
    m = re.search(r"generated (\d+) tokens", p.stderr.decode())
    return text[:-1], int(m.group(1))


def error_shape(body, param=None):
    try:
        e = json.loads(body)["error"]
    except Exception:
        return False
    ok = isinstance(e.get("message"), str) and "type" in e and "param" in e and e.get("code", 0) is None
    return ok and (param is None or e["param"] == param)


PROMPTS = [
    "hello",
    "hello world, hello world",
    "The quick brown fox jumps over the lazy dog and keeps on running far away",
    "a",
    "Once upon a time",
    "1 2 3 4 5 6 7 8 9 10 11 12",
    "what is the capital of",
    "zzz",
]


def main_mode(a, client):
    model = client.models.list().data
    check(len(model) == 1 and model[0].id == os.path.basename(a.model.rstrip("/")),
          "models: %r" % (model,))
    st, _, body = raw(a.port, "GET", "/health")
    check(st == 200 and json.loads(body) == {"status": "ok"}, "health: %d %r" % (st, body))

    # greedy answers: solo, whole and streamed, against moe generate
    expect = {}
    for i, p in enumerate(PROMPTS):
        n = 26 - 5 * (i % 4)
        text, ntok = generate(a.moe, a.model, p, n, ["--temp", "0"])
        expect[p] = (n, text, ntok)
        r = client.completions.create(model=a.name, prompt=p, max_tokens=n, temperature=0)
        c = r.choices[0]
        check(c.text == text, "greedy %r: %r != generate %r" % (p, c.text, text))
        check(r.usage.completion_tokens == ntok, "greedy %r: %d tokens, generate %d" % (p, r.usage.completion_tokens, ntok))
        check(c.finish_reason == ("length" if ntok == n else "stop"), "finish_reason %r" % c.finish_reason)
        check(r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, "usage sum")
        parts, last = [], None
        for ch in client.completions.create(model=a.name, prompt=p, max_tokens=n, temperature=0, stream=True):
            parts.append(ch.choices[0].text)
            last = ch
        check("".join(parts) == text, "stream %r: %r != %r" % (p, "".join(parts), text))
        check(last is not None and last.choices[0].finish_reason == c.finish_reason and
              last.usage is not None and last.usage.completion_tokens == ntok, "stream end: %r" % (last,))

    # the model of serve.sh writes a NUL byte after "hello": it is text like any other
    check(any("\x00" in expect[p][1] for p in PROMPTS), "no answer holds a NUL: the NUL check checks nothing")

    # a prompt given as token ids answers as its text does (ids from the tokenizer)
    ids = subprocess.run([a.moe, "tokenize", a.model, PROMPTS[1]], capture_output=True, text=True).stdout.strip()
    ids = [int(x) for x in ids.split(",")]
    n, text, _ = expect[PROMPTS[1]]
    r = client.completions.create(model=a.name, prompt=ids, max_tokens=n, temperature=0)
    check(r.choices[0].text == text and r.usage.prompt_tokens == len(ids), "token-id prompt: %r" % r.choices[0].text)

    # seeded sampling equals moe generate with the same sampler settings
    samp = ["--temp", "0.9", "--top-k", "40", "--top-p", "0.95", "--seed", "7"]
    stext, sn = generate(a.moe, a.model, "Once upon a time", 20, samp)
    r = client.completions.create(model=a.name, prompt="Once upon a time", max_tokens=20, temperature=0.9,
                                  top_p=0.95, seed=7, extra_body={"top_k": 40})
    check(r.choices[0].text == stext, "seeded: %r != %r" % (r.choices[0].text, stext))

    # 16 concurrent clients, each its solo answer (greedy, and one seeded)
    jobs = [(PROMPTS[i % len(PROMPTS)], i) for i in range(16)]

    def one(job):
        p, i = job
        c = openai.OpenAI(base_url=a.base, api_key=a.key, max_retries=0)
        if i == 5:
            r = c.completions.create(model=a.name, prompt="Once upon a time", max_tokens=20, temperature=0.9,
                                     top_p=0.95, seed=7, extra_body={"top_k": 40})
            return r.choices[0].text == stext, "seeded under load: %r" % r.choices[0].text
        n, text, ntok = expect[p]
        if i % 3 == 0:
            t = "".join(ch.choices[0].text for ch in c.completions.create(
                model=a.name, prompt=p, max_tokens=n, temperature=0, stream=True))
            return t == text, "concurrent stream %d %r: %r != %r" % (i, p, t, text)
        r = c.completions.create(model=a.name, prompt=p, max_tokens=n, temperature=0)
        return (r.choices[0].text == text and r.usage.completion_tokens == ntok,
                "concurrent %d %r: %r != %r" % (i, p, r.choices[0].text, text))

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        for ok, what in ex.map(one, jobs):
            check(ok, what)

    # stop strings: the text ends before the first one, whole and streamed
    n, text, _ = expect[PROMPTS[2]]
    if len(text) >= 4:
        stop = text[2:4]
        want = text[:text.find(stop)]
        r = client.completions.create(model=a.name, prompt=PROMPTS[2], max_tokens=n, temperature=0, stop=[stop, "\x01never"])
        check(r.choices[0].text == want and r.choices[0].finish_reason == "stop", "stop: %r (want %r)" % (r.choices[0].text, want))
        t = "".join(ch.choices[0].text for ch in client.completions.create(
            model=a.name, prompt=PROMPTS[2], max_tokens=n, temperature=0, stop=stop, stream=True))
        check(t == want, "stop streamed: %r (want %r)" % (t, want))

    # logprobs: one entry per token, the chosen one greedy (the best of its alternatives)
    r = client.completions.create(model=a.name, prompt="hello", max_tokens=5, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    check(lp is not None and len(lp.tokens) == r.usage.completion_tokens == len(lp.token_logprobs) == len(lp.top_logprobs),
          "logprobs lengths: %r" % (lp,))
    if lp:
        check(all(x <= 0 for x in lp.token_logprobs), "logprobs positive")
        check(all(abs(max(t.values()) - x) < 1e-6 for t, x in zip(lp.top_logprobs, lp.token_logprobs)),
              "greedy token is not its best alternative")

    # metrics: Prometheus text format, the series asked for
    st, hd, body = raw(a.port, "GET", "/metrics")
    text = body.decode()
    check(st == 200 and hd.get("content-type", "").startswith("text/plain"), "metrics status %d" % st)
    line_re = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? -?[0-9.eE+-]+$|^[a-zA-Z_:].*\+Inf"\} [0-9]+$')
    bad = [l for l in text.splitlines() if l and not l.startswith("# ") and not line_re.match(l)]
    check(not bad, "metrics lines not in the text format: %r" % bad[:3])
    vals = {}
    for l in text.splitlines():
        if l and not l.startswith("#"):
            k, v = l.rsplit(" ", 1)
            vals[k] = float(v)
    for name in ["moe_prompt_tokens_total", "moe_generated_tokens_total", "moe_queue_length", "moe_running_sequences",
                 "moe_batch_tokens_count", "moe_time_to_first_token_seconds_count", "moe_time_per_output_token_seconds_count"]:
        check(name in vals, "metrics lacks " + name)
    check(vals.get('moe_requests_total{status="200"}', 0) >= 30, "requests_total 200: %r" % vals.get('moe_requests_total{status="200"}'))
    check(vals.get("moe_generated_tokens_total", 0) > 100, "generated tokens")
    experts = {k: v for k, v in vals.items() if k.startswith("moe_expert_tokens_total{")}
    check(len(experts) == 8 and sum(experts.values()) > 0, "expert load series: %r" % experts)
    # batches held more than one sequence's token (continuous batching happened)
    check(vals.get('moe_batch_tokens_bucket{le="1"}', 0) < vals.get("moe_batch_tokens_count", 0), "batch histogram")
    # each layer: tokens x top_k pairs, the same total in both layers
    per_layer = {}
    for k, v in experts.items():
        layer = re.search(r'layer="(\d+)"', k).group(1)
        per_layer[layer] = per_layer.get(layer, 0) + v
    check(len(set(per_layer.values())) == 1, "expert totals differ by layer: %r" % per_layer)

    # errors: 401, 400 (types, ranges, JSON), 404, 405
    bad_client = openai.OpenAI(base_url=a.base, api_key="wrong-key", max_retries=0)
    try:
        bad_client.completions.create(model=a.name, prompt="hi", max_tokens=2)
        check(False, "wrong key accepted")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, "401")
    st, _, body = raw(a.port, "POST", "/v1/completions", {"prompt": "hi"})
    check(st == 401 and error_shape(body), "no key: %d %r" % (st, body))
    st, _, body = raw(a.port, "GET", "/v1/models")
    check(st == 401, "models without key: %d" % st)
    for kw, param in [({"max_tokens": "3"}, "max_tokens"), ({"temperature": 5}, "temperature"),
                      ({"top_p": 0}, "top_p"), ({"stop": 3}, "stop"), ({"stream": "yes"}, "stream"),
                      ({"max_tokens": 1.5}, "max_tokens"), ({"logprobs": 99}, "logprobs"), ({"n": 2}, "n"),
                      ({"echo": True}, "echo"), ({"max_tokens": 10 ** 9}, "max_tokens")]:
        try:
            client.completions.create(model=a.name, prompt="hi", **kw)
            check(False, "accepted %r" % kw)
        except openai.BadRequestError as e:
            check(e.status_code == 400 and isinstance(e.body, dict) and e.body.get("param") == param and
                  e.body.get("type") == "invalid_request_error", "400 for %r: %r" % (kw, e.body))
    try:
        client.completions.create(model=a.name, prompt=[1, 2, 10 ** 6], max_tokens=2)
        check(False, "token id past the vocabulary accepted")
    except openai.BadRequestError as e:
        check(e.body.get("param") == "prompt", "400 prompt ids")
    auth = {"Authorization": "Bearer " + a.key}
    for body, what in [(b'{"prompt": "x"', "truncated JSON"), (b'{"prompt": "\xff"}', "invalid UTF-8"),
                       (b'[1, 2]', "not an object"), (b'', "empty body"), (b'{"prompt": "x"} junk', "trailing bytes"),
                       (json.dumps({"prompt": "x" * 5000}).encode(), "prompt longer than the context")]:
        st, _, rb = raw(a.port, "POST", "/v1/completions", body, auth)
        check(st == 400 and error_shape(rb), "%s: %d %r" % (what, st, rb[:200]))
    st, _, rb = raw(a.port, "POST", "/v1/completions", b"x" * (5 << 20), auth)
    check(st == 413 and error_shape(rb), "huge body: %d" % st)
    st, _, rb = raw(a.port, "POST", "/v1/completions", {"prompt": "hi", "max_tokens": 2, "unknown_field": [1, {"x": 2}]}, auth)
    check(st == 200, "unknown field refused: %d %r" % (st, rb))
    st, _, rb = raw(a.port, "GET", "/v1/nothing", None, auth)
    check(st == 404 and error_shape(rb), "404: %d" % st)
    st, _, rb = raw(a.port, "GET", "/nothing")
    check(st == 404, "404 outside /v1: %d" % st)
    st, hd, rb = raw(a.port, "GET", "/v1/completions", None, auth)
    check(st == 405 and error_shape(rb) and hd.get("allow") == "POST", "405: %d %r" % (st, hd.get("allow")))
    st, hd, rb = raw(a.port, "DELETE", "/health")
    check(st == 405 and hd.get("allow") == "GET, HEAD", "405 health: %d %r" % (st, hd.get("allow")))
    prefix_checks(a, client)
    page_checks(a)
    chat_checks(a, client)

    # still serving the same answers after all that
    n, text, _ = expect["hello"]
    r = client.completions.create(model=a.name, prompt="hello", max_tokens=n, temperature=0)
    check(r.choices[0].text == text, "answer after errors")


# Prompts that begin alike (a shared system prompt): a later one starts from
# a copy of the cached start (moe_seq_cp) instead of computing it again,
# and still answers exactly as moe generate does, alone or several at once.
def prefix_checks(a, client):
    shared = "You are a careful assistant. Answer in one short line, and never guess. " * 3
    asks = ["What is two and two?", "Name a colour.", "Where is the sea?", "Say hello.", "Count to three."]
    expect = {q: generate(a.moe, a.model, shared + q, 12, ["--temp", "0"]) for q in asks}
    before = metric(a.port, "moe_prompt_tokens_cached_total")
    r = client.completions.create(model=a.name, prompt=shared + asks[0], max_tokens=12, temperature=0)
    check(r.choices[0].text == expect[asks[0]][0], "shared prefix, first: %r" % r.choices[0].text)
    after_first = metric(a.port, "moe_prompt_tokens_cached_total")
    r = client.completions.create(model=a.name, prompt=shared + asks[1], max_tokens=12, temperature=0)
    check(r.choices[0].text == expect[asks[1]][0], "shared prefix, second: %r != %r" % (r.choices[0].text, expect[asks[1]][0]))
    n_shared = len(subprocess.run([a.moe, "tokenize", a.model, shared], capture_output=True, text=True).stdout.split(","))
    got = metric(a.port, "moe_prompt_tokens_cached_total") - after_first
    check(before is not None and got >= n_shared - 2, "the second request reused %s cached tokens (shared start: %d)" % (got, n_shared))
    # several at once, each from a copy of the cached start
    out = {}
    def one(q):
        out[q] = client.completions.create(model=a.name, prompt=shared + q, max_tokens=12, temperature=0).choices[0].text
    ts = [threading.Thread(target=one, args=(q,)) for q in asks[1:]]
    for t in ts: t.start()
    for t in ts: t.join()
    for q in asks[1:]:
        check(out.get(q) == expect[q][0], "shared prefix, concurrent %r: %r != %r" % (q, out.get(q), expect[q][0]))
    # a prompt that continues a whole earlier exchange (the next turn of a chat)
    turn2 = shared + asks[0] + expect[asks[0]][0] + " And three and three?"
    t2 = generate(a.moe, a.model, turn2, 10, ["--temp", "0"])
    r = client.completions.create(model=a.name, prompt=turn2, max_tokens=10, temperature=0)
    check(r.choices[0].text == t2[0], "next turn from the cache: %r != %r" % (r.choices[0].text, t2[0]))


# GET / is the page (HTML from the binary); GET /routing its data: every MoE
# layer's running load and the experts of its last tokens
def page_checks(a):
    st, hd, body = raw(a.port, "GET", "/")
    check(st == 200 and hd.get("content-type", "").startswith("text/html") and b"<title>moe serve</title>" in body,
          "page: %d %r" % (st, hd.get("content-type")))
    st, hd, body = raw(a.port, "GET", "/routing")
    check(st == 200 and hd.get("content-type") == "application/json", "routing: %d" % st)
    R = json.loads(body)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    E, K = cfg.get("num_local_experts") or cfg.get("num_experts"), cfg.get("num_experts_per_tok")
    check(R["n_experts"] == E and R["top_k"] == K and R["window"] == 32 and R["tokens"] > 0,
          "routing header: %r" % {k: R[k] for k in ("n_experts", "top_k", "window", "tokens")})
    check(len(R["layers"]) == cfg["num_hidden_layers"], "routing: %d layers" % len(R["layers"]))
    for L in R["layers"]:
        ok_load = len(L["load"]) == E and sum(L["load"]) >= R["tokens"] * K
        ok_recent = 0 < len(L["recent"]) <= 32 and all(len(x) == K and len(set(x)) == K and
                                                       all(0 <= e < E for e in x) for x in L["recent"])
        check(ok_load and ok_recent, "routing layer %d: load %r, recent %r" % (L["layer"], L["load"], L["recent"][:3]))


# the template serve.sh passes with --chat-template (tests/serve/chat.jinja)
def rendered(a, messages):
    bos = subprocess.run([a.moe, "detokenize", a.model, "1"], capture_output=True, text=True).stdout.strip()
    return bos + "".join("<|%s|>%s\n" % (m["role"], m["content"]) for m in messages) + "<|assistant|>"


def chat_checks(a, client):
    """/v1/chat/completions: the answer is the completion of the rendered
    template's tokens (no BOS added: the template writes it)."""
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    ids = subprocess.run([a.moe, "tokenize", a.model, "--no-special", "--", rendered(a, msgs)],
                         capture_output=True, text=True).stdout.strip()
    ids = [int(x) for x in ids.split(",")]
    ref = client.completions.create(model=a.name, prompt=ids, max_tokens=12, temperature=0)
    want = ref.choices[0].text
    r = client.chat.completions.create(model=a.name, messages=msgs, max_tokens=12, temperature=0)
    c = r.choices[0]
    check(c.message.role == "assistant" and c.message.content == want, "chat: %r != %r" % (c.message.content, want))
    check(r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == ref.usage.completion_tokens and
          c.finish_reason == ref.choices[0].finish_reason, "chat usage %r" % (r.usage,))
    check(r.object == "chat.completion" and r.id.startswith("chatcmpl-"), "chat object %r" % r.object)
    # content as text parts; max_completion_tokens
    parts = [{"role": "system", "content": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}]},
             {"role": "user", "content": "hello there"}]
    r = client.chat.completions.create(model=a.name, messages=parts, max_completion_tokens=12, temperature=0)
    check(r.choices[0].message.content == want, "chat parts: %r" % r.choices[0].message.content)
    # streamed: the role first, then deltas that add up to the same answer
    chunks = list(client.chat.completions.create(model=a.name, messages=msgs, max_tokens=12, temperature=0, stream=True))
    check(chunks and chunks[0].choices[0].delta.role == "assistant", "chat stream role")
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    check(text == want, "chat stream: %r != %r" % (text, want))
    check(chunks[-1].choices[0].finish_reason == c.finish_reason and chunks[-1].usage is not None and
          chunks[-1].object == "chat.completion.chunk", "chat stream end")
    # logprobs: one entry per token, with the alternatives asked for
    r = client.chat.completions.create(model=a.name, messages=msgs, max_tokens=5, temperature=0, logprobs=True, top_logprobs=2)
    lp = r.choices[0].logprobs
    check(lp is not None and len(lp.content) == r.usage.completion_tokens and
          all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in lp.content), "chat logprobs %r" % (lp,))
    check("".join(t.token for t in lp.content) == r.choices[0].message.content, "chat logprob tokens")
    # refusals: bad messages, and what the template itself refuses (raise_exception)
    for body, param in [({"messages": "hi"}, "messages"), ({"messages": []}, "messages"),
                        ({"messages": [{"role": "user"}], "logprobs": 1}, "logprobs"),
                        ({"messages": [{"role": "robot", "content": "x"}]}, "messages"),
                        ({"messages": [{"role": "tool", "content": "x"}]}, "messages")]:
        try:
            client.chat.completions.create(model=a.name, **body)
            check(False, "chat accepted %r" % body)
        except openai.BadRequestError as e:
            check(e.body.get("param") == param, "chat 400 %r: %r" % (body, e.body))
    try:
        client.chat.completions.create(model=a.name, messages=[{"role": "tool", "content": "x"}])
    except openai.BadRequestError as e:
        check("tool message first" in e.body.get("message", ""), "template's own message: %r" % e.body)


def metric(port, name):
    _, _, body = raw(port, "GET", "/metrics")
    for l in body.decode().splitlines():
        if l.startswith(name + " "):
            return float(l.split()[1])
    return None


def busy_mode(a, client):
    # no chat template: 501
    try:
        client.chat.completions.create(model=a.name, messages=[{"role": "user", "content": "x"}])
        check(False, "chat without a template answered")
    except openai.APIStatusError as e:
        check(e.status_code == 501 and "chat template" in e.body.get("message", ""), "501: %r" % e.body)
    P, N = "hello", 1500  # a long generation: about a second on the tiny model
    r = client.completions.create(model=a.name, prompt=P, max_tokens=N, temperature=0)
    check(r.usage.completion_tokens == N, "long generation ended early (%d tokens)" % r.usage.completion_tokens)
    full = r.choices[0].text

    # 429: one running, one queued, the third refused with Retry-After. The
    # running request may finish between seeing the queue and sending the
    # third (a loaded machine): then the third is served, and the scenario
    # is tried again, up to three times
    def slow(i):
        c = openai.OpenAI(base_url=a.base, api_key=a.key, max_retries=0)
        try:
            results[i] = c.completions.create(model=a.name, prompt=P, max_tokens=N, temperature=0)
        except openai.RateLimitError as e:
            results[i] = e

    for attempt in range(3):
        results = [None] * 3
        ts = [threading.Thread(target=slow, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        deadline = time.time() + 10
        while time.time() < deadline and metric(a.port, "moe_queue_length") != 1:
            time.sleep(0.01)
        queued = metric(a.port, "moe_queue_length") == 1
        if queued:
            slow(2)
        for t in ts:
            t.join()
        if queued and isinstance(results[2], openai.RateLimitError):
            break
    check(queued, "the second request is not queued")
    e = results[2]
    check(isinstance(e, openai.RateLimitError) and e.response.headers.get("retry-after") == "1" and
          e.body.get("type") == "rate_limit_error", "third request: %r" % (e,))
    check(all(not isinstance(x, Exception) and x.choices[0].text == full for x in results[:2]),
          "the running and the queued request: %r" % ([type(x) for x in results[:2]],))

    # a client that goes away mid-stream frees its slot at once
    before = metric(a.port, "moe_generated_tokens_total")
    s = socket.create_connection(("127.0.0.1", a.port))
    body = json.dumps({"prompt": P, "max_tokens": N, "temperature": 0, "stream": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + a.key.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while b"data: " not in got:  # generating: past the queue, in its slot
        b = s.recv(4096)
        if not b:
            break
        got += b
    check(got.startswith(b"HTTP/1.1 200") and b"data: " in got, "stream start: %r" % got[:40])
    s.close()
    deadline = time.time() + 10
    while time.time() < deadline and metric(a.port, "moe_running_sequences") != 0:
        time.sleep(0.005)
    after = metric(a.port, "moe_generated_tokens_total")
    check(metric(a.port, "moe_running_sequences") == 0 and after - before < N,
          "the abandoned stream ran on (%s tokens)" % (after - before))
    r = client.completions.create(model=a.name, prompt=P, max_tokens=8, temperature=0)
    check(r.choices[0].text == full[:len(r.choices[0].text)] and r.usage.completion_tokens == 8, "answer after a disconnect")

    # SIGTERM: the stream in flight finishes, new connections are refused
    if a.pid:
        stream = client.completions.create(model=a.name, prompt=P, max_tokens=N, temperature=0, stream=True)
        parts = []
        it = iter(stream)
        first = next(it)
        parts.append(first.choices[0].text)
        os.kill(a.pid, signal.SIGTERM)
        last = first
        for ch in it:
            parts.append(ch.choices[0].text)
            last = ch
        check("".join(parts) == full and last.choices[0].finish_reason == "length" and last.usage.completion_tokens == N,
              "the stream in flight at SIGTERM: %d tokens, %r" % (last.usage.completion_tokens if last.usage else -1,
                                                                   last.choices[0].finish_reason))
        time.sleep(0.3)
        try:
            st, _, _ = raw(a.port, "GET", "/health")
            check(st == 503, "after SIGTERM /health answered %d" % st)
        except OSError:
            check(True, "")


def limits_mode(a, client):
    """A server with --timeout 0.25 --grace 0: a long request is ended by its
    time limit; at SIGTERM a stream past the grace ends with an error event."""
    t = time.time()
    r = client.completions.create(model=a.name, prompt="hello", max_tokens=4000, temperature=0)
    took = time.time() - t
    check(r.choices[0].finish_reason == "length" and 0 < r.usage.completion_tokens < 4000 and took < 5,
          "timeout: %d tokens, %s, %.1f s" % (r.usage.completion_tokens, r.choices[0].finish_reason, took))
    if a.pid:
        stream = client.completions.create(model=a.name, prompt="hello", max_tokens=4000, temperature=0, stream=True)
        it = iter(stream)
        next(it)
        os.kill(a.pid, signal.SIGTERM)
        try:
            for ch in it:
                pass
            check(False, "the stream past the grace ended without an error")
        except openai.APIError as e:
            check("shutting down" in str(e), "error event: %r" % e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--moe", required=True)
    ap.add_argument("--mode", choices=["main", "busy", "limits"], required=True)
    ap.add_argument("--pid", type=int, default=0)
    a = ap.parse_args()
    a.base = "http://127.0.0.1:%d/v1" % a.port
    a.name = os.path.basename(a.model.rstrip("/"))
    client = openai.OpenAI(base_url=a.base, api_key=a.key, max_retries=0, timeout=120)
    try:
        {"main": main_mode, "busy": busy_mode, "limits": limits_mode}[a.mode](a, client)
    except Exception as e:  # a crash counts as a failure, with its cause
        import traceback
        traceback.print_exc()
        check(False, "%s: %r" % (a.mode, e))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
