#!/bin/sh
# ppl_chunk.sh - `moe ppl --chunk N`: a window fed N tokens per forward call
# (1 = token by token, as in decoding) scores as the whole window in one
# call, up to floating-point rounding, on a tiny model with peaked
# distributions (std 0.3); windows and --ref with chunks; bad values refused.
#   MOE=build/moe sh tests/cli/ppl_chunk.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-pplc.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"

json_num() { sed -nE "s/.*\"$1\": ([-0-9.eE+]+).*/\1/p" "$T/out"; }
check() { if awk -v v="$2" "BEGIN { exit !($3) }"; then ok; else bad "$1: $2 fails $3"; fi; }
# close NAME A B: |A - B| <= 1e-5 * |B|
close() { check "$1" "$2" "(v - $3) <= 1e-5 * $3 && ($3 - v) <= 1e-5 * $3"; }

A=$T/a
"$MOE" init --preset tiny --dtype f32 --std 0.3 --seed 3 "$A" >/dev/null 2>&1 || bad "init"
IDS=$(awk 'BEGIN { s = 7; for (i = 0; i < 40; i++) { s = (s * 1103 + 12345) % 512; printf "%s%d", i ? "," : "", s } }')

expect_ok "whole window" "$MOE" ppl "$A" --ids "$IDS" --json -t 1
P0=$(json_num perplexity)
check "whole window chunk field" "$(json_num chunk)" "v == 40"
check "peaked model" "$P0" "v > 1000"

for c in 1 3 7 39 40 100; do
  expect_ok "chunk $c" "$MOE" ppl "$A" --ids "$IDS" --chunk "$c" --json -t 1
  close "chunk $c ppl" "$(json_num perplexity)" "$P0"
  check "chunk $c positions" "$(json_num positions)" "v == 39"
done
check "chunk field" "$(json_num chunk)" "v == 40" # 100 > the window: one call

# windows of 16 (16 + 16 + 8 tokens), chunks of 5 and 1, two threads
expect_ok "windows" "$MOE" ppl "$A" --ids "$IDS" --ctx 16 --json -t 1
PW=$(json_num perplexity)
expect_ok "windows chunk 5" "$MOE" ppl "$A" --ids "$IDS" --ctx 16 --chunk 5 --json -t 2
close "windows chunk 5 ppl" "$(json_num perplexity)" "$PW"
check "windows chunk 5 count" "$(json_num windows)" "v == 3"
expect_ok "windows chunk 1" "$MOE" ppl "$A" --ids "$IDS" --ctx 16 --chunk 1 --json -t 1
close "windows chunk 1 ppl" "$(json_num perplexity)" "$PW"

# against a reference run the same way: KL ~0, the same top-1 everywhere
expect_ok "ref chunk 1" "$MOE" ppl "$A" --ids "$IDS" --ref "$A" --chunk 1 --json -t 1
check "ref kl" "$(json_num kl_mean)" "v < 1e-9"
check "ref top1" "$(json_num top1_agreement)" "v == 1"
close "ref ppl" "$(json_num perplexity)" "$P0"

# text form
expect_ok "text form" "$MOE" ppl "$A" --ids "$IDS" --chunk 1 -t 1
out_has "text form perplexity" "^perplexity +[0-9]"

expect_fail "chunk 0" 2 "--chunk: 0 is out of range" "$MOE" ppl "$A" --ids "$IDS" --chunk 0
expect_fail "chunk negative" 2 "--chunk" "$MOE" ppl "$A" --ids "$IDS" --chunk -2
expect_fail "chunk not a number" 2 "--chunk" "$MOE" ppl "$A" --ids "$IDS" --chunk two
expect_fail "chunk missing value" 2 "--chunk" "$MOE" ppl "$A" --ids "$IDS" --chunk

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
