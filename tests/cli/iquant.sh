#!/bin/sh
# iquant.sh - a GGUF file whose weights use ggml's grid i-quants
# (tests/fixtures/gguf_models/qwen3_moe_iq.gguf: IQ2_XXS, IQ2_XS, IQ2_S,
# IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) through the commands: `moe info` names the
# types, `moe convert` keeps them (the same logits), `moe convert --type f32`
# dequantizes them (`moe ppl` against it: small KL, the same top-1),
# `moe quantize --type q4_k` starts from that dequantization, and an i-quant
# is refused as an output type.
#   MOE=build/moe sh tests/cli/iquant.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
F="$HERE/../fixtures/gguf_models/qwen3_moe_iq.gguf"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-iquant.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"

json_num() { sed -nE "s/.*\"$1\": ([-0-9.eE+]+).*/\1/p" "$T/out"; }
check() { if awk -v v="$2" "BEGIN { exit !($3) }"; then ok; else bad "$1: $2 fails $3"; fi; }
IDS=1,5,17,3,99,42,7,0,127,64,23,11

expect_ok "info" "$MOE" info "$F"
out_has "info dtypes" "dtypes .*iq2_xxs \(2\), iq2_xs \(1\), iq3_xxs \(1\)"

expect_ok "logits" "$MOE" logits "$F" --ids "$IDS" --out "$T/a.bin" -t 1
expect_ok "convert keeps" "$MOE" convert "$F" "$T/keep.gguf"
out_has "convert keeps types" "IQ1_M \(1\), IQ2_S \(1\), IQ3_S \(1\), IQ1_S \(1\), IQ3_XXS \(1\), IQ2_XS \(1\), IQ2_XXS \(2\)"
expect_ok "logits kept" "$MOE" logits "$T/keep.gguf" --ids "$IDS" --out "$T/b.bin" -t 1
if cmp -s "$T/a.bin" "$T/b.bin"; then ok; else bad "kept file gives other logits"; fi

expect_ok "convert f32" "$MOE" convert "$F" "$T/f32.gguf" --type f32
expect_ok "ppl vs f32" "$MOE" ppl "$F" --ids "$IDS" --ref "$T/f32.gguf" --json -t 1
check "kl vs f32" "$(json_num kl_mean)" "v > 0 && v < 1e-3"
check "top1 vs f32" "$(json_num top1_agreement)" "v == 1"

expect_ok "quantize q4_k" "$MOE" quantize "$F" "$T/q4k.gguf" --type q4_k
expect_ok "ppl q4_k vs f32" "$MOE" ppl "$T/q4k.gguf" --ids "$IDS" --ref "$T/f32.gguf" --json -t 1
check "kl q4_k vs f32" "$(json_num kl_mean)" "v > 0 && v < 1e-2"

expect_fail "iq output type" 2 "iq2_xxs' is not one of" "$MOE" quantize "$F" "$T/x.gguf" --type iq2_xxs

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
