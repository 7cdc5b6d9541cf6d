#!/bin/sh
# deepseek_cmds.sh - every command on a latent-attention, group-routed model
# (a tiny-deepseek-v3 with a trained tokenizer): `moe generate`, `moe ppl`
# and `moe bench`, each also with an expert-memory budget (--mem) that
# evicts, whose output must equal the run without one; a budget below one
# layer's needs names the minimum; `moe route --table` shows the groups kept
# (overall and per domain); `moe serve` answers the real `openai` client
# with the text `moe generate` writes (skipped when python3 with the openai
# package is not available, as in serve.sh).
#   MOE=build/moe sh tests/cli/deepseek_cmds.sh   ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-dsc.XXXXXX") || exit 1
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

M="$T/m"
CORPUS="$FIX/tokenizer_train/corpus.txt"
expect_ok "tokenizer train" "$MOE" tokenizer train --vocab 400 --out "$T/tok" -q "$CORPUS"
expect_ok "init tiny-deepseek-v3" "$MOE" init --preset tiny-deepseek-v3 --vocab 400 "$M"
cp "$T/tok/tokenizer.json" "$M/"
sed -n '1,30p' "$CORPUS" >"$T/text.txt"

# generate: greedy, then with budgets of 4 and 12 expert slots (every step evicts
# with 4: 8 experts a layer, 2 chosen per token)
"$MOE" generate "$M" -p "hello world" -n 12 --temp 0 --threads 2 >"$T/g0.txt" 2>"$T/g0.err" &&
  [ -s "$T/g0.txt" ] && ok || bad "generate: $(cat "$T/g0.err")"
for mem in 64K 200K; do
  "$MOE" generate "$M" -p "hello world" -n 12 --temp 0 --threads 2 --mem $mem >"$T/g.txt" 2>"$T/g.err" &&
    cmp -s "$T/g0.txt" "$T/g.txt" && ok || bad "generate --mem $mem differs: $(tail -n 2 "$T/g.err")"
  grep -q "expert cache .* hits " "$T/g.err" && ok || bad "generate --mem $mem: no cache line: $(cat "$T/g.err")"
done
expect_fail "generate --mem below the minimum" 1 "below the minimum 32.0 KiB" \
  "$MOE" generate "$M" -p "hello" -n 2 --temp 0 --mem 8K

# ppl: the same number with and without a budget
ppl_of() { sed -n 's/.*perplexity *\([0-9.]*\).*/\1/p' "$1" | head -n 1; }
expect_ok "ppl" "$MOE" ppl "$M" --text "$T/text.txt" --threads 2
cp "$T/out" "$T/p0"
expect_ok "ppl --mem" "$MOE" ppl "$M" --text "$T/text.txt" --threads 2 --mem 64K
cp "$T/out" "$T/p1"
a=$(ppl_of "$T/p0") b=$(ppl_of "$T/p1")
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "ppl '$a' vs --mem '$b': $(cat "$T/p0" "$T/p1")"

# bench: prefill and decode timed, with and without a budget
expect_ok "bench" "$MOE" bench "$M" --prompt 16 --gen 4 --reps 1 --threads 2 --probe-mb 8 --json
out_has "bench decode" '"decode_tok_s"'
expect_ok "bench --mem" "$MOE" bench "$M" --prompt 16 --gen 4 --reps 1 --threads 2 --probe-mb 8 --json --mem 64K
out_has "bench --mem cache" '"cache"'

# route --table: the groups each token keeps, overall and per domain
sed -n '1,20p' "$CORPUS" >"$T/a.txt"
sed -n '21,50p' "$CORPUS" >"$T/b.txt"
expect_ok "data" "$MOE" data --tokenizer "$T/tok" --out "$T/data" --val-frac 0.5 -q \
  --domain a="$T/a.txt" --domain b="$T/b.txt"
expect_ok "route --table" "$MOE" route "$M" --data "$T/data" --table --max-tokens 200
out_has "route --table groups" "^layer 1: groups \(2 of 4 kept by each token\)"
out_has "route --table group shares" "^all +[0-9]+\.[0-9]% +[0-9]+\.[0-9]%"
out_has "route --table domain x group" "I\(domain; group\) = [0-9.]+ bits"

# serve: one completion through the openai client equals moe generate's text
PY=$(command -v python3)
if [ -n "$PY" ] && ! "$PY" -c 'import openai' 2>/dev/null; then # as serve.sh does, on a fresh machine
  "$PY" -m pip install -q openai >/dev/null 2>&1 ||
    "$PY" -m pip install -q --break-system-packages openai >/dev/null 2>&1
fi
if [ -n "$PY" ] && "$PY" -c 'import openai' 2>/dev/null; then
  if start_server ds --threads 2; then
    "$PY" - "$port" "$M" >"$T/serve.txt" 2>"$T/serve.err" <<'EOF'
import sys, openai
c = openai.OpenAI(base_url=f"http://127.0.0.1:{sys.argv[1]}/v1", api_key="none")
r = c.completions.create(model=sys.argv[2], prompt="hello world", max_tokens=12, temperature=0)
sys.stdout.write(r.choices[0].text)
EOF
    [ "$(cat "$T/g0.txt")" = "$(cat "$T/serve.txt")" ] && ok ||
      bad "serve answer differs from generate: '$(cat "$T/serve.txt")' vs '$(cat "$T/g0.txt")' $(tail -n 3 "$T/serve.err")"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
  fi
else
  echo "SKIP: python3 with the openai package is not available (pip install openai)"
  skip=$((skip + 1))
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
