#!/bin/sh
# serve.sh - `moe serve` end to end: usage errors, then two servers on free
# loopback ports over the tiny random model with the fixture tokenizer,
# driven by the real `openai` Python client (tests/serve/test_openai.py,
# installed with pip when missing): answers equal to `moe generate`, 16
# concurrent clients, streaming, stop strings, logprobs, chat completions
# (tests/serve/chat.jinja), /v1/models,
# /health, /metrics, 401/400/404/405/413/429, a client leaving mid-stream,
# and SIGTERM / SIGINT exiting 0. Then tests/serve/hostile.py sends broken
# and hostile HTTP at the first server, which must stay up and right, and
# tests/serve/test_page.py drives the page of GET / in headless Chromium
# (sends a message, checks the streamed answer and the routing view in the
# DOM, saves a screenshot to $PAGE_SHOT if set).
#   MOE=build/moe sh tests/cli/serve.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures/cli"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-serve.XXXXXX") || exit 1
pids=""
cleanup() {
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT INT TERM
pass=0
fail=0
skip=0
. "$HERE/harness.inc"

# ------------------------------------------------------------ command line
expect_ok "serve --help" "$MOE" serve --help
out_has "serve --help text" "^usage: moe serve MODEL"
out_has "serve --help lists --parallel" "--parallel"
expect_fail "serve without model" 2 "missing argument: expected MODEL" "$MOE" serve
expect_fail "serve bad port" 2 "--port: 70000 is out of range" "$MOE" serve m --port 70000
expect_fail "serve parallel 0" 2 "--parallel: 0 is out of range" "$MOE" serve m --parallel 0
expect_fail "serve missing model" 1 "no such file" "$MOE" serve "$T/none" --port 0
expect_fail "serve bad host" 1 "cannot resolve host|cannot listen" "$MOE" serve "$T/none" --host 999.1.2.3 --port 0

# -------------------------------------------------------------- the model
M="$T/tiny"
# seed 1: its greedy answer to "hello" holds a NUL byte, which must come
# out as \u0000 (test_openai.py checks that it does)
"$MOE" init --preset tiny --seed 1 "$M" >/dev/null 2>&1 && cp "$FIX/tokenizer.json" "$M/" && ok || bad "moe init tiny"
expect_fail "serve --chat-template missing" 1 "--chat-template: .*none.jinja" "$MOE" serve "$M" --port 0 \
  --chat-template "$T/none.jinja"
printf '{%% for m in messages %%}{{ m.content ' >"$T/broken.jinja"
expect_fail "serve --chat-template broken" 1 "--chat-template: .*broken.jinja" "$MOE" serve "$M" --port 0 \
  --chat-template "$T/broken.jinja"

# wait_exit PID NAME CODE: the server exits with CODE within 30 s
wait_exit() {
  i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
  if kill -0 "$1" 2>/dev/null; then bad "$2: still running 30 s after the signal"; return; fi
  wait "$1"
  code=$?
  [ "$code" -eq "$3" ] && ok || bad "$2: exit $code (expected $3): $(tail -n 3 "$T/$2.err")"
}

# add_counts FILE: adds a Python suite's "N passed, N failed" to ours
add_counts() {
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  if [ -z "$line" ]; then bad "$1: no result line: $(tail -n 20 "$1")"; return; fi
  grep '^FAIL' "$1"
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
  pass=$((pass + p)); fail=$((fail + f))
}

# ------------------------------------------------------- the openai client
PY=$(command -v python3)
if [ -n "$PY" ] && ! "$PY" -c 'import openai' 2>/dev/null; then
  "$PY" -m pip install -q openai >/dev/null 2>&1 ||
    "$PY" -m pip install -q --break-system-packages openai >/dev/null 2>&1
fi
if [ -z "$PY" ] || ! "$PY" -c 'import openai' 2>/dev/null; then
  echo "SKIP: python3 with the openai package is not available (pip install openai)"
  skip=$((skip + 1))
  echo "$pass passed, $fail failed, $skip skipped"
  [ "$fail" -eq 0 ]
  exit
fi

KEY=test-key-123
if start_server main --api-key "$KEY" --parallel 4 --step-tokens 8 --threads 2 \
  --chat-template "$HERE/../serve/chat.jinja"; then
  main_pid=$pid
  main_port=$port
  "$PY" "$HERE/../serve/test_openai.py" --mode main --port "$port" --key "$KEY" --model "$M" --moe "$MOE" \
    >"$T/main.py" 2>&1
  add_counts "$T/main.py"
  if [ -f "$HERE/../serve/hostile.py" ]; then
    "$PY" "$HERE/../serve/hostile.py" --port "$main_port" --key "$KEY" >"$T/hostile.py" 2>&1
    add_counts "$T/hostile.py"
  fi
  # the page in headless Chromium (Debian's package, installed when missing)
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1
    else sudo -n apt-get update -qq >/dev/null 2>&1; sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; fi
  fi
  "$PY" -c 'import websocket' 2>/dev/null || "$PY" -m pip install -q websocket-client >/dev/null 2>&1 ||
    "$PY" -m pip install -q --break-system-packages websocket-client >/dev/null 2>&1
  if command -v chromium >/dev/null 2>&1 && "$PY" -c 'import websocket' 2>/dev/null; then
    "$PY" "$HERE/../serve/test_page.py" "http://127.0.0.1:$main_port/?key=$KEY" 2 "${PAGE_SHOT:-$T/page.png}" \
      >"$T/page.py" 2>&1
    add_counts "$T/page.py"
  else
    echo "SKIP: headless Chromium (Debian package chromium) or websocket-client is not available"
    skip=$((skip + 1))
  fi
  kill -INT "$main_pid"
  wait_exit "$main_pid" main 0
fi

# the key from the environment; one slot, one queued: 429, disconnects, SIGTERM
if MOE_API_KEY=env-key start_server busy --parallel 1 --max-queue 1 --ctx 2048 --threads 1; then
  "$PY" "$HERE/../serve/test_openai.py" --mode busy --port "$port" --key env-key --model "$M" --moe "$MOE" \
    --pid "$pid" >"$T/busy.py" 2>&1
  add_counts "$T/busy.py"
  wait_exit "$pid" busy 0
  grep -q "^moe serve: stopped" "$T/busy.err" && ok || bad "busy: no 'stopped' line: $(tail -n 3 "$T/busy.err")"
fi

# the time limit and the grace; a port in use is an error, not a hang
if start_server limits --ctx 4096 --timeout 0.25 --grace 0 --threads 1; then
  expect_fail "serve on a port in use" 1 "cannot listen" "$MOE" serve "$M" --port "$port"
  "$PY" "$HERE/../serve/test_openai.py" --mode limits --port "$port" --key none --model "$M" --moe "$MOE" \
    --pid "$pid" >"$T/limits.py" 2>&1
  add_counts "$T/limits.py"
  wait_exit "$pid" limits 0
  grep -q "^moe serve: ending 1 requests still running" "$T/limits.err" && ok ||
    bad "limits: no 'ending' line: $(tail -n 3 "$T/limits.err")"
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
