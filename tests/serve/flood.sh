#!/bin/sh
# flood.sh - hostile traffic against `moe serve` built with ASan+UBSan
# ($B/asan/moe, `make test` builds it): tests/serve/hostile.py's fixed
# cases, then 10,000 seeded random malformed requests (FLOOD=N to change),
# 8 connections at a time. Every complete request is answered 2xx or 4xx,
# the server stays up and gives the same greedy answer, its memory stays
# bounded, no sanitizer report appears, and SIGTERM ends it with 0.
#   MOE=build/asan/moe sh tests/serve/flood.sh   ends with "N passed, N failed"
MOE=${MOE:-build/asan/moe}
FLOOD=${FLOOD:-10000}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures/cli"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-flood.XXXXXX") || exit 1
pid=""
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT INT TERM
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
PY=$(command -v python3)
if [ -z "$PY" ] || [ ! -x "$MOE" ]; then
  echo "SKIP: needs python3 and $MOE"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi

M="$T/tiny"
"$MOE" init --preset tiny --seed 1 "$M" >/dev/null 2>&1 && cp "$FIX/tokenizer.json" "$M/" && ok || bad "moe init tiny"
KEY=flood-key
# a small quarantine, so that the memory bound measures the server and not ASan's bookkeeping
ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=16:malloc_context_size=5 UBSAN_OPTIONS=print_stacktrace=1 \
  "$MOE" serve "$M" --port 0 --api-key "$KEY" --parallel 4 --threads 2 \
  --chat-template "$HERE/chat.jinja" >"$T/out" 2>"$T/err" &
pid=$!
i=0
while [ $i -lt 600 ] && ! grep -q "^moe serve: ready" "$T/err" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do
  sleep 0.1; i=$((i + 1))
done
port=$(sed -n 's/^moe serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/err")
if [ -z "$port" ] || ! grep -q "^moe serve: ready" "$T/err"; then
  bad "the ASan server did not start: $(tail -n 5 "$T/err")"
  echo "$pass passed, $fail failed"
  exit 1
fi
ok
"$PY" "$HERE/hostile.py" --port "$port" --key "$KEY" --flood "$FLOOD" --seed 1 --pid "$pid" >"$T/py" 2>&1
grep -E '^(FAIL|flood:|  request)' "$T/py"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$T/py" | tail -n 1)
if [ -n "$line" ]; then
  pass=$((pass + $(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')))
  fail=$((fail + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
else
  bad "hostile.py: no result line: $(tail -n 20 "$T/py")"
fi
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$pid" 2>/dev/null; then
  bad "still running 60 s after SIGTERM"
else
  wait "$pid"; code=$?
  [ "$code" -eq 0 ] && ok || bad "exit $code after SIGTERM: $(tail -n 5 "$T/err")"
fi
pid=""
if grep -E -q "AddressSanitizer|LeakSanitizer|runtime error:" "$T/err"; then
  bad "sanitizer report: $(grep -E -m 3 -A 12 "AddressSanitizer|LeakSanitizer|runtime error:" "$T/err")"
else
  ok
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
