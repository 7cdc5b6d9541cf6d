#!/bin/sh
# gguf_tokenizer.sh - the text commands on a .gguf alone: the tokenizer comes
# from the file's tokenizer.ggml.* metadata. tokenize gives HF's ids (made by
# tools/gen_gguf_tokenizer_fixtures.py), the same as the tokenizer.json of the
# same vocabulary; detokenize inverts it; generate runs from the one file; a
# GGUF without tokenizer metadata is refused naming the key.
#   MOE=build/moe sh tests/cli/gguf_tokenizer.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-ggtok.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"

out_is() { # NAME WANT: stdout is exactly WANT (one line)
  if [ "$(cat "$T/out")" = "$2" ]; then ok; else bad "$1: got '$(head -c 200 "$T/out")', want '$2'"; fi
}

MODEL=$FIX/gguf_tokenizers/qwen2_moe_q8_0_tok.gguf
TEXT="Hello world, the end."
IDS=41,70,121,80,110,107,77,69,13,98,1,106,69,15 # HF tokenizers on the same vocabulary

expect_ok "tokenize model gguf" "$MOE" tokenize "$MODEL" "$TEXT"
out_is "tokenize model gguf" "$IDS"
expect_ok "detokenize model gguf" "$MOE" detokenize "$MODEL" "$IDS"
out_is "detokenize model gguf" "$TEXT"

# a .gguf and the tokenizer.json of its vocabulary agree
for text in "Hello world! 123 <|im_start|>user" "  spaces   and
newlines" "café 日本語 🦙"; do
  expect_ok "tokenize json" "$MOE" tokenize "$FIX/tokenizers/qwen2-style" "$text"
  cp "$T/out" "$T/json"
  expect_ok "tokenize gguf" "$MOE" tokenize "$FIX/gguf_tokenizers/qwen2_style.gguf" "$text"
  if cmp -s "$T/out" "$T/json"; then ok; else bad "qwen2-style: gguf $(cat "$T/out") vs json $(cat "$T/json")"; fi
  expect_ok "tokenize json" "$MOE" tokenize "$FIX/tokenizers/llama-spm" "$text"
  cp "$T/out" "$T/json"
  expect_ok "tokenize gguf" "$MOE" tokenize "$FIX/gguf/ggml-vocab-llama-spm.gguf" "$text"
  if cmp -s "$T/out" "$T/json"; then ok; else bad "llama-spm: gguf $(cat "$T/out") vs json $(cat "$T/json")"; fi
done

# BOS from the file's add_bos_token: added by default, not with --no-special
expect_ok "spm bos" "$MOE" tokenize "$FIX/gguf_tokenizers/spm_small.gguf" "hi"
out_has "spm bos" '^1,'
expect_ok "spm no bos" "$MOE" tokenize "$FIX/gguf_tokenizers/spm_small.gguf" "hi" --no-special
if grep -q '^1,' "$T/out"; then bad "spm no bos: $(cat "$T/out")"; else ok; fi

# generate from the one file, greedy: the same text twice
expect_ok "generate" "$MOE" generate "$MODEL" -p "$TEXT" -n 8 --temp 0 -t 1
cp "$T/out" "$T/gen1"
if [ -s "$T/gen1" ]; then ok; else bad "generate wrote nothing"; fi
expect_ok "generate again" "$MOE" generate "$MODEL" -p "$TEXT" -n 8 --temp 0 -t 1
if cmp -s "$T/out" "$T/gen1"; then ok; else bad "greedy generate differs between runs"; fi

# no tokenizer in the file
expect_fail "tokenize no vocab" 1 'tokenizer\.ggml\.model.*missing' \
  "$MOE" tokenize "$FIX/gguf_models/mixtral_f32.gguf" "hi"
expect_fail "generate no vocab" 1 'tokenizer\.ggml\.model' \
  "$MOE" generate "$FIX/gguf_models/mixtral_f32.gguf" -p "hi" -n 2

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
