#!/bin/sh
# deepseek.sh - deepseek_v3, deepseek_v2 and glm4_moe from the command line:
# `moe info` states the latent attention, the KV bytes a token costs against
# full keys and values, the group-limited routing and the multi-token-
# prediction layers it skips; `moe logits` of the transformers fixtures give
# transformers' logits (ref_logits.bin); llama.cpp's deepseek2 file gives
# them too, with and without an expert memory budget; the presets have the
# released models' sizes; config.json written back gives the same logits;
# GGUF written in llama.cpp's layouts gives the same logits, quantizes, and a
# deepseek2 GGUF goes back to a directory.
#   MOE=build/moe sh tests/cli/deepseek.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures/models"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-ds.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

. "$HERE/harness.inc"

json_num() { sed -n "s/.*\"$1\": *\([-0-9.e+]*\).*/\1/p" "$T/out" | head -n 1; }

# 3 layers x (latent 16 + rotary key 8) floats, against 3 x 4 heads x (16 + 12)
expect_ok "info deepseek_v3" "$MOE" info "$FIX/deepseek_v3_base"
out_has "info latent" "^latent attn +q through rank 24, kv latent 16, head 8 non-rotary \+ 8 rotary \(interleaved pairs\), value 12"
out_has "info kv bytes" "latent \+ rotary key only: 288 B per position against 1.31 KiB"
out_has "info groups" "best 2 of 4 groups \(by sum of best two\)"
out_has "info dense first" "layer 0: dense FFN 40"
expect_ok "info json" "$MOE" info "$FIX/deepseek_v3_base" --json
[ "$(json_num kv_bytes_per_token)" = 288 ] && ok || bad "json kv_bytes_per_token $(json_num kv_bytes_per_token)"
[ "$(json_num kv_bytes_per_token_full)" = 1344 ] && ok || bad "json kv_bytes_per_token_full"
expect_ok "info mtp" "$MOE" info "$FIX/deepseek_v3_noq"
out_has "info mtp line" "^mtp layers +1 multi-token-prediction layer .*not loaded"
out_has "info q_proj" "^latent attn +q_proj, .*two halves"
expect_ok "info deepseek_v2" "$MOE" info "$FIX/deepseek_v2_base"
out_has "info v2 groups" "softmax, token choice, 2 shared \(FFN 32\), scale 1.5, best 2 of 3 groups \(by best expert\)"
expect_ok "info glm4_moe" "$MOE" info "$FIX/glm4_moe_base"
out_has "info glm attn" "qk-norm per head, qkv bias"
out_has "info glm rotary" "8 of 16 dims rotated"

# logits of the first 8 ids = transformers' first 8 rows (ref.json's ids)
for v in deepseek_v3_base deepseek_v2_base glm4_moe_base; do
  ids=$(tr -d ' \n' < "$FIX/$v/ref.json" | sed -n 's/.*"ids":\[\([0-9,]*\)\].*/\1/p' | cut -d, -f1-8)
  expect_ok "logits $v" "$MOE" logits "$FIX/$v" --ids "$ids" --out "$T/l.bin"
  head -c $((8 * 128 * 4)) "$FIX/$v/ref_logits.bin" > "$T/r.bin"
  od -An -v -tf4 -w4 "$T/l.bin" > "$T/a.txt"
  od -An -v -tf4 -w4 "$T/r.bin" > "$T/b.txt"
  paste "$T/a.txt" "$T/b.txt" | awk '{ d = $1 - $2; if (d < 0) d = -d; m = $2 < 0 ? -$2 : $2;
      if (d > w) w = d; if (m > s) s = m } END { exit !(w / s < 1e-4) }' && ok ||
    bad "logits $v differ from transformers"
done

# llama.cpp's deepseek2 file of the same model: the same logits, also through the
# expert cache (a budget below the model's size)
GG="$FIX/../gguf_models/deepseek_v3_f32.gguf"
expect_ok "info gguf" "$MOE" info "$GG"
out_has "info gguf arch" "^architecture +deepseek_v3"
out_has "info gguf kv" "latent \+ rotary key only: 288 B per position"
expect_ok "logits gguf" "$MOE" logits "$GG" --ids 1,2,3,4 --out "$T/g1.bin"
expect_ok "logits gguf --mem" "$MOE" logits "$GG" --ids 1,2,3,4 --out "$T/g2.bin" --mem 200K
cmp -s "$T/g1.bin" "$T/g2.bin" && ok || bad "gguf logits differ under an expert memory budget"

# presets: the released models' sizes, and a tiny one that runs
expect_ok "init deepseek-v2-lite --dry-run" "$MOE" init --preset deepseek-v2-lite --dry-run "$T/p1"
out_has "v2-lite size" "27 layers, .* 15\.71 B parameters"
expect_ok "init deepseek-v3 --dry-run" "$MOE" init --preset deepseek-v3 --dry-run "$T/p2"
out_has "v3 size" "61 layers, .* 671\.03 B parameters"
expect_ok "init kimi-k2 --dry-run" "$MOE" init --preset kimi-k2 --dry-run "$T/p3"
out_has "kimi size" "61 layers, .* 1026\.41 B parameters"
expect_ok "init glm-4.5-air --dry-run" "$MOE" init --preset glm-4.5-air --dry-run "$T/p4"
out_has "glm air size" "46 layers, .* 106\.85 B parameters"
expect_ok "init tiny-deepseek-v3" "$MOE" init --preset tiny-deepseek-v3 "$T/tds"
expect_ok "info tiny-deepseek-v3" "$MOE" info "$T/tds"
out_has "tiny groups" "best 2 of 4 groups"
out_has "tiny latent" "^latent attn +q through rank 32, kv latent 32"
expect_ok "logits tiny-deepseek-v3" "$MOE" logits "$T/tds" --ids 1,2,3,4 --out "$T/t1.bin"
# --experts 4 leaves groups of one: routed over all experts instead
expect_ok "init --experts 4" "$MOE" init --preset tiny-deepseek-v3 --experts 4 "$T/tds4"
expect_ok "info --experts 4" "$MOE" info "$T/tds4"
grep -q "groups" "$T/out" && bad "groups kept with 4 experts in 4 groups" || ok
# moe route: the groups each token keeps (--text) and how often each group is
# kept, per domain (--data), on a tiny-deepseek-v3 with a trained tokenizer
CORPUS="$FIX/../tokenizer_train/corpus.txt"
expect_ok "tokenizer train" "$MOE" tokenizer train --vocab 400 --out "$T/tok" -q "$CORPUS"
sed -n '1,20p' "$CORPUS" >"$T/a.txt"
sed -n '21,50p' "$CORPUS" >"$T/b.txt"
expect_ok "data" "$MOE" data --tokenizer "$T/tok" --out "$T/data" --val-frac 0.5 -q \
  --domain a="$T/a.txt" --domain b="$T/b.txt"
expect_ok "init tiny-deepseek-v3 --vocab 400" "$MOE" init --preset tiny-deepseek-v3 --vocab 400 "$T/tr"
cp "$T/tok/tokenizer.json" "$T/tr/"
expect_ok "route --text" "$MOE" route "$T/tr" --text "hello world"
out_has "route --text groups" '"groups":[[:space:]]*\[[0-9]+,[[:space:]]*[0-9]+\]'
expect_ok "route --data" "$MOE" route "$T/tr" --data "$T/data" --max-tokens 200
out_has "route --data groups" '"groups":[[:space:]]*\{"n_group":[[:space:]]*4,[[:space:]]*"topk_group":[[:space:]]*2,[[:space:]]*"counts"'
out_has "route --data group mi" '"mi_max_bits":[[:space:]]*1\}'

# config.json written back reads the same: HF -> HF gives the same logits
for v in deepseek_v3_base deepseek_v3_noq deepseek_v2_base glm4_moe_base glm4_moe_legacy; do
  expect_ok "convert $v" "$MOE" convert "$FIX/$v" "$T/rt_$v"
  "$MOE" logits "$FIX/$v" --ids 1,2,3 --out "$T/a.bin" 2>/dev/null &&
    "$MOE" logits "$T/rt_$v" --ids 1,2,3 --out "$T/b.bin" 2>/dev/null &&
    cmp -s "$T/a.bin" "$T/b.bin" && ok || bad "convert $v: logits differ"
done

# GGUF in llama.cpp's deepseek2 / glm4moe layouts, written: the same logits as the
# directory (1e-5; the split attn_k_b / attn_v_b sum in another order), Q8_0 and
# a GGUF requantized to Q4_K load and run, and a deepseek2 GGUF back to a
# directory (kv_b_proj joined again) gives the directory's logits
close() { # NAME A.bin B.bin TOL
  od -An -v -tf4 -w4 "$2" > "$T/a.txt"
  od -An -v -tf4 -w4 "$3" > "$T/b.txt"
  [ -s "$T/a.txt" ] && [ "$(wc -l < "$T/a.txt")" = "$(wc -l < "$T/b.txt")" ] &&
    paste "$T/a.txt" "$T/b.txt" | awk -v tol="$4" '{ d = $1 - $2; if (d < 0) d = -d; m = $2 < 0 ? -$2 : $2;
      if (d > w) w = d; if (m > s) s = m } END { exit !(w / s <= tol) }' && ok || bad "$1: logits differ"
}
for v in deepseek_v3_base deepseek_v3_noq deepseek_v2_base glm4_moe_base; do
  expect_ok "convert $v to gguf" "$MOE" convert "$FIX/$v" "$T/$v.gguf"
  "$MOE" logits "$FIX/$v" --ids 1,2,3 --out "$T/a.bin" 2>/dev/null
  "$MOE" logits "$T/$v.gguf" --ids 1,2,3 --out "$T/b.bin" 2>/dev/null
  close "convert $v to gguf" "$T/b.bin" "$T/a.bin" 1e-5
done
expect_ok "info our gguf" "$MOE" info "$T/deepseek_v3_base.gguf"
out_has "info our gguf arch" "^architecture +deepseek_v3"
expect_ok "quantize to q8_0" "$MOE" quantize "$FIX/deepseek_v3_base" "$T/q8.gguf" --type q8_0
expect_ok "logits q8_0" "$MOE" logits "$T/q8.gguf" --ids 1,2,3 --out "$T/q.bin"
expect_ok "gguf to q4_k" "$MOE" quantize "$GG" "$T/q4.gguf" --type q4_k
out_has "gguf to q4_k fallbacks" "use a fallback type"
expect_ok "logits q4_k" "$MOE" logits "$T/q4.gguf" --ids 1,2,3 --out "$T/q.bin"
expect_ok "gguf to hf" "$MOE" convert "$T/deepseek_v3_base.gguf" "$T/hf"
"$MOE" logits "$T/hf" --ids 1,2,3 --out "$T/b.bin" 2>/dev/null
"$MOE" logits "$FIX/deepseek_v3_base" --ids 1,2,3 --out "$T/a.bin" 2>/dev/null
cmp -s "$T/a.bin" "$T/b.bin" && [ -s "$T/a.bin" ] && ok || bad "gguf to hf: logits differ"
expect_ok "llama.cpp's gguf to hf" "$MOE" convert "$GG" "$T/hf2"
"$MOE" logits "$T/hf2" --ids 1,2,3 --out "$T/b.bin" 2>/dev/null
close "llama.cpp's gguf to hf" "$T/b.bin" "$T/a.bin" 1e-5

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
