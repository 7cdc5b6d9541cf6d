#!/usr/bin/env python3
"""test_page.py - the page moe serve serves at GET /, in headless Chromium.

Drives Chromium over the DevTools protocol (pip websocket-client): loads
the page from a running `moe serve`, types a message into the chat box and
presses Send, waits for the streamed answer, then checks the DOM (the
answer bubble holds the streamed text; the routing view has one grid per
MoE layer and counts the routed tokens) and saves a screenshot.

  python3 tests/serve/test_page.py URL N_MOE_LAYERS SCREENSHOT.png
Exit status 0 when every check passes; each failure is printed.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client

URL, N_LAYERS, SHOT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
failures = []
passed = [0]


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    else:
        passed[0] += 1


def browser():
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe:
        sys.exit("test_page.py: no chromium on PATH")
    prof = tempfile.mkdtemp(prefix="moe-page-")
    p = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-extensions", "--remote-debugging-port=0", "--user-data-dir=" + prof,
                          "--window-size=1280,800", "about:blank"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    port = None
    while time.time() < deadline and port is None:
        line = p.stderr.readline()
        if not line:
            if p.poll() is not None:
                sys.exit("test_page.py: chromium exited")
            continue
        m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = int(m.group(1))
    if port is None:
        p.kill()
        sys.exit("test_page.py: chromium did not open its DevTools port")
    return p, port, prof


class Page:
    def __init__(self, port):
        tabs = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10))
        ws_url = [t for t in tabs if t.get("type") == "page"][0]["webSocketDebuggerUrl"]
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.id = 0

    def call(self, method, **params):
        self.id += 1
        self.ws.send(json.dumps({"id": self.id, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.id:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("js %r: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def wait(self, expr, timeout):
        end = time.time() + timeout
        while time.time() < end:
            v = self.js(expr)
            if v:
                return v
            time.sleep(0.2)
        return None


proc, port, prof = browser()
try:
    pg = Page(port)
    pg.call("Page.enable")
    pg.call("Page.navigate", url=URL)
    check(pg.wait("document.readyState === 'complete' && !!document.getElementById('input')", 30) is True,
          "the page loads with a chat box")
    check(pg.js("document.title") == "moe serve", "its title is 'moe serve'")
    pg.js("document.getElementById('input').value = 'Hello there, how are you?'")
    pg.js("document.getElementById('send').click()")
    done = pg.wait("(() => { const a = document.querySelectorAll('.msg.assistant');"
                   " return a.length && a[a.length - 1].dataset.done === '1'; })()", 180)
    check(done is True, "the answer finishes streaming")
    text = pg.js("document.querySelector('.msg.assistant').textContent")
    check(isinstance(text, str) and len(text) > 0, "the answer bubble holds streamed text (%r)" % (text or "")[:60])
    check(pg.js("document.querySelector('.msg.user').textContent") == "Hello there, how are you?",
          "the user's message is shown")
    # the routing view polls /routing every 500 ms: wait for it to show the tokens
    n = pg.wait("(() => { const c = document.querySelectorAll('canvas.routing');"
                " return c.length >= %d ? c.length : 0; })()" % N_LAYERS, 10)
    check(n == N_LAYERS, "one routing grid per MoE layer (%s of %d)" % (n, N_LAYERS))
    st = pg.wait("(() => { const t = document.getElementById('status').textContent;"
                 " return /^[1-9][0-9]* tokens routed/.test(t) ? t : ''; })()", 10)
    check(bool(st), "the routing view counts the routed tokens (%r)" % st)
    lit = pg.js("(() => { const c = document.querySelector('canvas.routing'); const g = c.getContext('2d');"
                " const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;"
                " for (let i = 0; i < d.length; i += 4) if (d[i] < 100 && d[i + 2] > 150) n++; return n; })()")
    check(isinstance(lit, int) and lit > 0, "the first layer's grid has chosen experts lit (%s pixels)" % lit)
    shot = pg.call("Page.captureScreenshot", format="png")
    with open(SHOT, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    check(os.path.getsize(SHOT) > 5000, "screenshot written to %s" % SHOT)
finally:
    proc.kill()
    proc.wait()
    shutil.rmtree(prof, ignore_errors=True)

print("%d passed, %d failed" % (passed[0], len(failures)))
sys.exit(1 if failures else 0)
