#!/bin/sh
# qwen3next_gguf.sh - qwen3_next in llama.cpp's GGUF layout from the command
# line: `moe info` on the converter's file, `moe convert` HF -> GGUF giving
# the HF logits byte for byte, `moe quantize` to q8_0 from the directory
# and from a GGUF, `moe ppl` against the HF directory (KL 0 for F32, small
# for Q8_0), and GGUF -> HF (in_proj_qkvz gathered again from attn_qkv and
# attn_gate, A_log = log(-ssm_a)) giving the same logits. (`moe route`
# is held to the same routing in tests/test_gguf_qwen3next.c: the fixture's
# 128-id vocabulary has no tokenizer for --text.)
#   MOE=build/moe sh tests/cli/qwen3next_gguf.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-q3n.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

. "$HERE/harness.inc"

HF="$FIX/models/qwen3_next_base"
LC="$FIX/gguf_models/qwen3_next_f32.gguf"
LC8="$FIX/gguf_models/qwen3_next_q8_0.gguf"
IDS=1,5,17,3,99,42,7,0,127,64
same_logits() { # NAME A B
  if "$MOE" logits "$2" --ids $IDS -o "$T/la" 2>"$T/err" && "$MOE" logits "$3" --ids $IDS -o "$T/lb" 2>>"$T/err" &&
     cmp -s "$T/la" "$T/lb"; then ok; else bad "$1: logits differ ($(head -c 200 "$T/err"))"; fi
}
json_num() { sed -n "s/.*\"$1\": *\([-0-9.e+]*\).*/\1/p" "$T/out" | head -n 1; }

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

# --------------------------------------------------- llama.cpp's own files
expect_ok "info llama.cpp qwen3next" "$MOE" info "$LC"
out_has "info arch" "^architecture +qwen3_next"
out_has "info linear attn" "^linear attn +2 of 4 layers \(0 2\): Gated DeltaNet, 2 key heads x 8, 4 value heads x 12, conv kernel 4"
out_has "info attn extras" "^attn extras +sigmoid output gate, zero-centred norms \(1 \+ w\), 4 of 16 dims rotated"
out_has "info shared expert" "1 shared \(FFN 24, sigmoid gate\)"
expect_ok "info q8_0" "$MOE" info "$LC8"
out_has "info q8_0 dtypes" "^dtypes +.*q8_0"
same_logits "llama.cpp F32 GGUF vs HF" "$HF" "$LC"

# ------------------------------------------------------- convert, quantize
expect_ok "convert HF -> GGUF" "$MOE" convert "$HF" "$T/q3n.gguf"
out_has "convert summary" "^wrote .*q3n.gguf: 71 tensors"
same_logits "our GGUF vs HF" "$HF" "$T/q3n.gguf"
expect_ok "quantize HF -> q8_0" "$MOE" quantize "$HF" "$T/q3n-q8.gguf" --type q8_0
out_has "q8_0 types" "Q8_0 \(32\), F16 \(10\), F32 \(29\)"
same_logits "our q8_0 vs llama.cpp's q8_0" "$LC8" "$T/q3n-q8.gguf"
expect_ok "quantize GGUF -> q8_0" "$MOE" quantize "$LC" "$T/q3n-q8g.gguf" --type q8_0
same_logits "q8_0 from the GGUF vs from HF" "$T/q3n-q8.gguf" "$T/q3n-q8g.gguf"
expect_ok "quantize GGUF -> q4_k" "$MOE" quantize "$LC" "$T/q3n-q4k.gguf" --type q4_k
expect_ok "q4_k runs" "$MOE" logits "$T/q3n-q4k.gguf" --ids $IDS -o "$T/l4"
expect_ok "convert GGUF -> HF" "$MOE" convert "$LC" "$T/q3n-hf"
same_logits "HF from the GGUF vs HF" "$HF" "$T/q3n-hf"

# --------------------------------------------------------------------- ppl
expect_ok "ppl F32 GGUF vs HF" "$MOE" ppl "$LC" --ids $IDS --ref "$HF" --json -t 1
K=$(json_num kl_mean)
[ "$K" = "0" ] || [ "$K" = "0.0" ] || awk "BEGIN { exit !($K == 0) }" && ok || bad "ppl F32: KL $K, expected 0"
expect_ok "ppl q8_0 vs HF" "$MOE" ppl "$LC8" --ids $IDS --ref "$HF" --json -t 1
K=$(json_num kl_mean)
awk "BEGIN { exit !($K > 0 && $K < 0.05) }" && ok || bad "ppl q8_0: KL $K not in (0, 0.05)"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
