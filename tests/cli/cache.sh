#!/bin/sh
# cache.sh - `--mem SIZE`, the expert cache (docs/CACHE.md), from the
# command line:
#   - usage: bad sizes and policies refused (exit 2), a budget below one
#     layer's needs refused naming the minimum (exit 1);
#   - exact: `moe logits` with --mem gives the same bytes as without, with
#     each policy, at the minimum budget (every layer evicts) and above, for
#     a safetensors directory and a Q8_0 GGUF; `moe generate` (greedy) the
#     same text; ppl --json and bench --json carry the cache statistics;
#   - the budget holds: a 170 MiB Q8_0 model (moe init --type q8_0) run with --mem 40M stays under
#     budget + resident weights + 40 MiB of maximum RSS (/usr/bin/time -v),
#     well below the file's size;
#     and, where a memory cgroup can be made, runs in one smaller than the file;
#   - --mem-fallback TYPE: refused without --mem, for a type that is not a
#     quantized one and for a budget below the copy plus the slots' minimum
#     (naming both); used (counted on the stderr line, ppl and bench JSON,
#     /metrics) at the smallest budget, and counted 0 without it;
#   - moe serve --mem answers and its /metrics has the moe_cache_* counters.
#   MOE=build/moe sh tests/cli/cache.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures/cli"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-cache.XXXXXX") || exit 1
pid=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"

# same NAME A B: files A and B hold the same bytes
same() { if cmp -s "$2" "$3"; then ok; else bad "$1: $2 and $3 differ"; fi; }

# ------------------------------------------------------------------ usage
M="$T/tiny"
expect_ok "init tiny-olmoe" "$MOE" init --preset tiny-olmoe --layers 2 --experts 8 --vocab 512 "$M"
cp "$FIX/tokenizer.json" "$M/"
for cmd in logits generate serve bench ppl route; do
  expect_ok "$cmd --help" "$MOE" "$cmd" --help
  out_has "$cmd --help lists --mem" "--mem SIZE"
  out_has "$cmd --help lists --cache-policy" "--cache-policy"
  out_has "$cmd --help lists --mem-fallback" "--mem-fallback TYPE .*changes the logits"
done
for bad_size in 12X -5 0 "" 1.5.3 5MM 1e9; do
  expect_fail "--mem '$bad_size'" 2 "--mem .*not a size" "$MOE" logits "$M" --ids 1 --out "$T/x" --mem "$bad_size"
done
expect_fail "--cache-policy bad" 2 "expected lru, lfu or history" "$MOE" logits "$M" --ids 1 --out "$T/x" \
  --mem 1G --cache-policy mru
expect_fail "--prefetch without --mem" 2 "--prefetch goes with --mem" "$MOE" logits "$M" --ids 1 --out "$T/x" \
  --prefetch 2
expect_fail "--mem too small" 1 "--mem: expert memory 1.00 KiB is below the minimum .* \([0-9]+ bytes\): 2 experts of .* for layer 0" \
  "$MOE" logits "$M" --ids 1 --out "$T/x" --mem 1K
min=$(sed -n 's/.*below the minimum .* (\([0-9]*\) bytes).*/\1/p' "$T/err")
[ -n "$min" ] && ok || bad "no minimum in: $(cat "$T/err")"

# ------------------------------------------------------------------ exact
expect_ok "quantize tiny q8_0" "$MOE" quantize "$M" "$T/tiny.gguf" --type q8_0
IDS=$(seq -s, 3 7 400)
for model in "$M" "$T/tiny.gguf"; do
  expect_ok "logits $model" "$MOE" logits "$model" --ids "$IDS" --out "$T/ref.bin" -t 2
  run "$MOE" logits "$model" --ids 1 --out "$T/x" --mem 1K
  min=$(sed -n 's/.*below the minimum .* (\([0-9]*\) bytes).*/\1/p' "$T/err")
  for policy in lru lfu history; do
    for mem in "$min" $((min * 3)); do
      expect_ok "logits $policy $mem" "$MOE" logits "$model" --ids "$IDS" --out "$T/c.bin" -t 2 \
        --mem "$mem" --cache-policy "$policy"
      same "logits $model --mem $mem --cache-policy $policy" "$T/ref.bin" "$T/c.bin"
      grep -q "^moe logits: expert cache .*$policy.*hits" "$T/err" && ok || bad "no cache line: $(cat "$T/err")"
    done
  done
done
run "$MOE" logits "$M" --ids 1 --out "$T/x" --mem 1K
min=$(sed -n 's/.*below the minimum .* (\([0-9]*\) bytes).*/\1/p' "$T/err")
expect_ok "generate" "$MOE" generate "$M" -p "hello there" -n 24 --temp 0 -t 2
cp "$T/out" "$T/gen_ref.txt"
for pf in 0 1 2; do
  expect_ok "generate --mem --prefetch $pf" "$MOE" generate "$M" -p "hello there" -n 24 --temp 0 -t 2 \
    --mem "$min" --prefetch "$pf"
  same "generate --mem $min --prefetch $pf" "$T/gen_ref.txt" "$T/out"
done
grep -q "prediction precision" "$T/err" && ok || bad "generate --prefetch 2: no prediction figures: $(cat "$T/err")"
expect_ok "ppl --json --mem" "$MOE" ppl "$M" --ids "$IDS" --ctx 16 --json --mem "$min"
out_has "ppl --json cache" '"cache": \{"mem": '"$min"', .*"hits": [0-9]+.*"bytes_read_per_token": [0-9.]+'
expect_ok "bench --json --mem" "$MOE" bench "$M" --prompt 8 --gen 8 --reps 1 --warmup 0 --probe-mb 1 --json \
  --mem "$min" --cache-policy lfu
out_has "bench --json cache" '"cache": \{.*"policy": "lfu".*"prediction_precision": [0-9.]+.*"stalls": [0-9]+'
expect_ok "bench --mem table" "$MOE" bench "$M" --prompt 8 --gen 8 --reps 1 --warmup 0 --probe-mb 1 --mem 1M
out_has "bench cache line" "^moe bench: expert cache 1.00 MiB .*hits .*read .*stalls"
expect_ok "route --text --mem" "$MOE" route "$M" --text "hello there" --mem "$min"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out" && ok || bad "route --mem: JSON"

# ---------------------------------------------- resident low-precision copy
expect_fail "--mem-fallback without --mem" 2 "--mem-fallback goes with --mem" "$MOE" logits "$M" --ids 1 \
  --out "$T/x" --mem-fallback q4_k
for bad_type in f16 bf16 q9_k ""; do
  expect_fail "--mem-fallback '$bad_type'" 2 "--mem-fallback .*expected a quantized type" "$MOE" logits "$M" \
    --ids 1 --out "$T/x" --mem 1G --mem-fallback "$bad_type"
done
expect_fail "--mem-fallback too small" 1 "expert memory .* less the Q4_K fallback copy \(.*, [0-9]+ bytes\) leaves .* below their minimum .* \($min bytes\): 2 experts of .* give at least [0-9]+ bytes" \
  "$MOE" logits "$M" --ids 1 --out "$T/x" --mem "$min" --mem-fallback q4_k
fbmin=$(sed -n 's/.*give at least \([0-9]*\) bytes.*/\1/p' "$T/err")
expect_ok "logits --chunk 1" "$MOE" logits "$M" --ids "$IDS" --out "$T/ref_m.bin" -t 2 --chunk 1
expect_ok "logits --mem-fallback q4_k" "$MOE" logits "$M" --ids "$IDS" --out "$T/fb.bin" -t 2 --chunk 1 \
  --mem "$fbmin" --mem-fallback q4_k
grep -Eq "^moe logits: expert cache .*fallback Q4_K .* \(built in [0-9.]+ s\): used [1-9][0-9]* \([0-9.]+/token\)" "$T/err" \
  && ok || bad "logits --mem-fallback: no fallback figures: $(cat "$T/err")"
cmp -s "$T/fb.bin" "$T/ref_m.bin" && bad "logits --mem-fallback: the copy changed nothing" || ok
expect_ok "ppl --json --mem-fallback" "$MOE" ppl "$M" --ids "$IDS" --ctx 16 --json --mem "$fbmin" --mem-fallback q2_k
out_has "ppl --json fallback" '"fallback_type": "Q2_K", "fallback_bytes": [1-9][0-9]*, .*"fallbacks": [1-9][0-9]*, "fallbacks_per_token": [0-9.]+'
expect_ok "bench --json without a fallback" "$MOE" bench "$M" --prompt 8 --gen 8 --reps 1 --warmup 0 --probe-mb 1 --json \
  --mem "$min"
out_has "bench --json: no fallback" '"fallback_type": null, "fallback_bytes": 0, .*"fallbacks": 0,'
expect_ok "bench --mem-fallback" "$MOE" bench "$M" --prompt 8 --gen 8 --reps 1 --warmup 0 --probe-mb 1 \
  --mem "$fbmin" --mem-fallback q4_k
out_has "bench line: fallback" "^moe bench: expert cache .*fallback Q4_K .*: used [0-9]+"

# ------------------------------------------------------------ budget holds
B="$T/big"
expect_ok "init 170 MiB q8_0" "$MOE" init --preset qwen3-30b-a3b --layers 2 --experts 12 --vocab 4096 \
  --type q8_0 -t 2 "$B.gguf"
file_kb=$(( $(wc -c <"$B.gguf") / 1024 ))
# a Q8_0 model: bench shows prefill against the int8 peak too
expect_ok "bench q8_0" "$MOE" bench "$B.gguf" --prompt 8 --gen 2 --reps 1 --warmup 0 --probe-mb 16 --mem 40M
out_has "bench int8 column" "ratio +of int8 peak( +of block peak)?$"
out_has "bench int8 share" "^prefill +8 +[0-9.]+ .*% +[0-9.]+%( +[0-9.]+%)?$"
BIG_IDS=$(seq -s, 1 97 3000)
expect_ok "big logits" "$MOE" logits "$B.gguf" --ids "$BIG_IDS" --out "$T/big_ref.bin" -t 2
# the minimum is 8 experts of ~4.8 MiB (38.3 MiB); 40 MiB holds 8 slots
run /usr/bin/time -v "$MOE" bench "$B.gguf" --prompt 16 --gen 16 --reps 1 --warmup 0 --probe-mb 1 -t 2 \
  --json --mem 40M
if [ "$rc" -eq 0 ]; then ok; else bad "big bench --mem 40M: exit $rc: $(tail -n 5 "$T/err")"; fi
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$T/err")
res_b=$(sed -n 's/.*"resident_bytes": \([0-9]*\).*/\1/p' "$T/out")
if [ -n "$rss_kb" ] && [ -n "$res_b" ]; then
  limit_kb=$(( 40 * 1024 + res_b / 1024 + 40 * 1024 ))
  echo "budget holds: max RSS $rss_kb KiB <= 40 MiB + resident $((res_b / 1024)) KiB + 40 MiB = $limit_kb KiB; file $file_kb KiB"
  [ "$rss_kb" -le "$limit_kb" ] && ok || bad "max RSS $rss_kb KiB > $limit_kb KiB"
  [ $((rss_kb * 10)) -lt $((file_kb * 7)) ] && ok || bad "max RSS $rss_kb KiB is not well below the file's $file_kb KiB"
else
  bad "no RSS ($rss_kb) or resident bytes ($res_b): $(tail -n 3 "$T/err")"
fi
run /usr/bin/time -v "$MOE" logits "$B.gguf" --ids "$BIG_IDS" --out "$T/big_c.bin" -t 2 --mem 40M
if [ "$rc" -eq 0 ]; then ok; else bad "big logits --mem 40M: exit $rc: $(tail -n 5 "$T/err")"; fi
same "big logits --mem 40M" "$T/big_ref.bin" "$T/big_c.bin"
rss2_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$T/err")
[ -n "$rss2_kb" ] && [ "$rss2_kb" -le "$limit_kb" ] && ok || bad "logits: max RSS $rss2_kb KiB > $limit_kb KiB"

# in a memory cgroup smaller than the file (140 MB against 178 MB), where a
# writable cgroup-v1 memory controller exists (root); skipped elsewhere
CG=/sys/fs/cgroup/memory/moe-cache-test-$$
if mkdir "$CG" 2>/dev/null && echo $((140 * 1000 * 1000)) >"$CG/memory.limit_in_bytes" 2>/dev/null; then
  run sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$MOE" logits "$B.gguf" --ids "$BIG_IDS" \
    --out "$T/big_cg.bin" -t 2 --mem 40M
  if [ "$rc" -eq 0 ]; then ok; else bad "logits --mem 40M in a 140 MB cgroup: exit $rc: $(tail -n 3 "$T/err")"; fi
  same "logits --mem 40M in a 140 MB cgroup" "$T/big_ref.bin" "$T/big_cg.bin"
  rmdir "$CG" 2>/dev/null
else
  rmdir "$CG" 2>/dev/null
  echo "skipped: no writable memory cgroup (the run in a 140 MB cgroup)"
fi

# ------------------------------------------------------------------ serve
if start_server serve --mem "$min" --parallel 2; then
  curl -s -o "$T/c.json" "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
    -d '{"prompt": "hello there", "max_tokens": 8, "temperature": 0}' && ok || bad "serve: completion"
  grep -q '"text"' "$T/c.json" && ok || bad "serve --mem: no completion: $(cat "$T/c.json")"
  curl -s -o "$T/metrics.txt" "http://127.0.0.1:$port/metrics" && ok || bad "serve: /metrics"
  for name in moe_cache_hits_total moe_cache_misses_total moe_cache_read_bytes_total moe_cache_tokens_total \
    moe_cache_stalls_total moe_cache_budget_bytes moe_cache_fallbacks_total moe_cache_fallback_bytes; do
    grep -Eq "^$name [0-9.e+]+$" "$T/metrics.txt" && ok || bad "/metrics lacks $name"
  done
  grep -q "^moe_cache_fallbacks_total 0$" "$T/metrics.txt" && ok || bad "serve --mem: fallbacks counted without one"
  reads=$(sed -n 's/^moe_cache_reads_total //p' "$T/metrics.txt")
  [ "${reads:-0}" != 0 ] && ok || bad "serve --mem: no expert reads counted"
  kill -TERM "$pid"
  wait "$pid" && ok || bad "serve --mem: exit after SIGTERM"
fi
pid=""
if start_server serve --mem "$fbmin" --mem-fallback q4_k --parallel 2; then
  curl -s -o "$T/c.json" "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
    -d '{"prompt": "hello there", "max_tokens": 8, "temperature": 0}' && ok || bad "serve: completion"
  grep -q '"text"' "$T/c.json" && ok || bad "serve --mem-fallback: no completion: $(cat "$T/c.json")"
  curl -s -o "$T/metrics.txt" "http://127.0.0.1:$port/metrics" && ok || bad "serve: /metrics"
  grep -Eq "^moe_cache_fallbacks_total [1-9][0-9.e+]*$" "$T/metrics.txt" && ok || bad "serve --mem-fallback: no fallbacks counted"
  grep -Eq "^moe_cache_fallback_bytes [1-9][0-9.e+]*$" "$T/metrics.txt" && ok || bad "serve --mem-fallback: no copy size"
  kill -TERM "$pid"
  wait "$pid" && ok || bad "serve --mem-fallback: exit after SIGTERM"
fi
pid=""

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
