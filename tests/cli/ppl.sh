#!/bin/sh
# ppl.sh - `moe ppl`: perplexity and KL against a reference on tiny random
# models: a model against itself (KL 0, full top-1 agreement), against a
# differently seeded copy and against its BF16 rounding (KL > 0, small for
# the rounding), window counting, the text path with the fixture tokenizer,
# and each usage error.
#   MOE=build/moe sh tests/cli/ppl.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures/cli"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-ppl.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"

# json_num KEY: the number after "KEY": in $T/out
json_num() { sed -nE "s/.*\"$1\": ([-0-9.eE+]+).*/\1/p" "$T/out"; }
# check NAME AWK-CONDITION (v = the value)
check() { if awk -v v="$2" "BEGIN { exit !($3) }"; then ok; else bad "$1: $2 fails $3"; fi; }

A=$T/a; B=$T/b; A16=$T/a16
"$MOE" init --preset tiny --dtype f32 --seed 1 "$A" >/dev/null 2>&1 || bad "init a"
"$MOE" init --preset tiny --dtype f32 --seed 2 "$B" >/dev/null 2>&1 || bad "init b"
"$MOE" init --preset tiny --dtype bf16 --seed 1 "$A16" >/dev/null 2>&1 || bad "init a16"
IDS=$(awk 'BEGIN { s = 7; for (i = 0; i < 40; i++) { s = (s * 1103 + 12345) % 512; printf "%s%d", i ? "," : "", s } }')

expect_ok "self" "$MOE" ppl "$A" --ids "$IDS" --ref "$A" --json -t 1
check "self kl" "$(json_num kl_mean)" "v == 0"
check "self top1" "$(json_num top1_agreement)" "v == 1"
check "self positions" "$(json_num positions)" "v == 39"
P=$(json_num perplexity); R=$(json_num ref_perplexity)
check "self ppl equal" "$P" "v == $R"
# a random 512-token model is close to uniform: perplexity near 512
check "ppl range" "$P" "v > 300 && v < 900"

expect_ok "other seed" "$MOE" ppl "$A" --ids "$IDS" --ref "$B" --json -t 1
check "other kl" "$(json_num kl_mean)" "v > 1e-4"
check "other p99 <= max" "$(json_num kl_p99)" "v <= $(json_num kl_max)"

expect_ok "bf16 rounding" "$MOE" ppl "$A16" --ids "$IDS" --ref "$A" --json -t 1
K16=$(json_num kl_mean)
check "bf16 kl small" "$K16" "v > 0 && v < 1e-3"

# what quantization costs, bounded: a model with std 0.1 weights (peaked
# distributions, unlike the near-uniform default) at q8_0 and q4_0. Measured
# (200 positions): KL mean 2e-3 (q8_0) and 5e-2 (q4_0), top-1 93% and 48%.
# The K-quants fall back to Q8_0 on this 64-wide model (docs/QUANT.md).
"$MOE" init --preset tiny --dtype f32 --std 0.1 --seed 3 "$T/p" >/dev/null 2>&1 || bad "init p"
for qt in q8_0 q4_0; do
  "$MOE" quantize "$T/p" "$T/p-$qt.gguf" --type $qt >/dev/null 2>&1 || bad "quantize $qt"
  expect_ok "ppl $qt" "$MOE" ppl "$T/p-$qt.gguf" --ref "$T/p" --ids "$IDS" --json -t 1
  eval "KL_$qt=\$(json_num kl_mean); TOP_$qt=\$(json_num top1_agreement)"
done
check "q8_0 kl bound" "$KL_q8_0" "v > 0 && v < 1e-2"
check "q4_0 kl bound" "$KL_q4_0" "v > $KL_q8_0 && v < 0.2"
check "q8_0 top-1" "$TOP_q8_0" "v >= 0.85"
check "q4_0 top-1" "$TOP_q4_0" "v >= 0.3 && v <= $TOP_q8_0"

# windows: 40 tokens in windows of 16 -> 16 + 16 + 8 tokens -> 15 + 15 + 7 positions
expect_ok "windows" "$MOE" ppl "$A" --ids "$IDS" --ctx 16 --json -t 1
check "window positions" "$(json_num positions)" "v == 37"
check "window count" "$(json_num windows)" "v == 3"
expect_ok "max tokens" "$MOE" ppl "$A" --ids "$IDS" --max-tokens 10 --json -t 1
check "max tokens positions" "$(json_num positions)" "v == 9"

# text with the fixture tokenizer; the human-readable form
cp "$FIX/tokenizer.json" "$A/"
printf 'The quick brown fox jumps over the lazy dog. int main(void) { return 0; }\n' >"$T/text"
expect_ok "text" "$MOE" ppl "$A" --text "$T/text" --ref "$A16" -t 1
out_has "text perplexity line" "^perplexity +[0-9]"
out_has "text kl line" "^KL\\(ref\\|\\|model\\) mean"
out_has "text top-1 line" "^top-1 agree +[0-9.]+%"

# a tokenizer from elsewhere (a GGUF or a directory without one)
expect_ok "tokenizer flag" "$MOE" ppl "$B" --text "$T/text" --tokenizer "$FIX/tokenizer.json" --json -t 1
check "tokenizer flag positions" "$(json_num positions)" "v > 10"
expect_fail "no tokenizer" 1 "tokenizer" "$MOE" ppl "$B" --text "$T/text"

# usage errors and bad input
expect_fail "no input" 2 "exactly one of --text" "$MOE" ppl "$A"
expect_fail "both inputs" 2 "exactly one of --text" "$MOE" ppl "$A" --ids 1,2 --text "$T/text"
expect_fail "one token" 2 "at least 2 tokens" "$MOE" ppl "$A" --ids 5
expect_fail "id out of range" 2 "token id 600 at position 1 is out of" "$MOE" ppl "$A" --ids 1,600,2
expect_fail "bad ctx" 2 "--ctx" "$MOE" ppl "$A" --ids 1,2,3 --ctx 1
expect_fail "missing ref" 1 "nowhere" "$MOE" ppl "$A" --ids 1,2,3 --ref "$T/nowhere"
expect_fail "missing text" 1 "--text: .*nothing.txt" "$MOE" ppl "$A" --text "$T/nothing.txt"
expect_fail "vocab mismatch" 2 "vocabularies differ: .* 512 tokens, .* 128" \
  "$MOE" ppl "$A" --ids 1,2,3 --ref "$HERE/../fixtures/models/mixtral_base"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
