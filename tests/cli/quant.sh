#!/bin/sh
# quant.sh - `moe convert` and `moe quantize` end to end: HF -> GGUF F32 and
# back give the same logits byte for byte (llama.cpp's fixture GGUFs too),
# the tokenizer files travel to an HF output, every plain type on the tiny
# presets loads and runs (Q2_K, Q3_K and IQ4_XS also on a 2048-wide layer,
# and generate), a GGUF source can be requantized, --type mixed
# from --calib text and from `moe route` JSON (--text and --data layouts)
# writes per-expert layers that load, and bad input (unknown --type,
# missing IN, bad budgets, OUT existing / not .gguf / unwritable,
# unsupported architectures, what GGUF cannot express, bad routing JSON)
# fails with a message and leaves no file behind. A directory's
# tokenizer.json becomes the GGUF's vocabulary: the file alone tokenizes as
# the directory does and generates. Runs in a few seconds.
#   MOE=build/moe sh tests/cli/quant.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-quant.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

. "$HERE/harness.inc"

IDS=1,5,17,3,99,42,7,0,127,64
# same_logits NAME A B: the two models' logits are the same bytes
same_logits() {
  if "$MOE" logits "$2" --ids $IDS -o "$T/la" 2>"$T/err" && "$MOE" logits "$3" --ids $IDS -o "$T/lb" 2>>"$T/err" &&
     cmp -s "$T/la" "$T/lb"; then ok; else bad "$1: logits differ ($(head -c 200 "$T/err"))"; fi
}
# runs NAME MODEL: the model loads and gives logits of the right size (V=512)
runs() {
  if "$MOE" logits "$2" --ids 1,2,3 -o "$T/lr" 2>"$T/err" && [ "$(wc -c <"$T/lr")" -eq $((3 * 512 * 4)) ]; then ok
  else bad "$1: $(head -c 300 "$T/err")"; fi
}
no_leftovers() {
  if ls "$T" | grep -q '\.tmp\.'; then bad "$1: a temporary file was left in $T"; else ok; fi
}

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

# ------------------------------------------------------------------- help
expect_ok "moe --help" "$MOE" --help
out_has "--help lists convert" "^  convert "
out_has "--help lists quantize" "^  quantize "
expect_ok "convert --help" "$MOE" convert --help
out_has "convert help usage" "^usage: moe convert IN OUT"
expect_ok "quantize --help" "$MOE" quantize --help
out_has "quantize help usage" "^usage: moe quantize IN OUT.gguf --type"
out_has "quantize help: QUANT.md" "docs/QUANT.md"

# ------------------------------------------------- HF <-> GGUF round trips
for f in mixtral qwen2_moe qwen3_moe olmoe gpt_oss; do
  expect_ok "convert $f -> gguf" "$MOE" convert "$FIX/models/${f}_base" "$T/$f.gguf"
  out_has "convert $f: summary" "^wrote .*$f.gguf: [0-9]+ tensors"
  same_logits "$f: HF vs GGUF F32" "$FIX/models/${f}_base" "$T/$f.gguf"
  expect_ok "convert $f gguf -> hf" "$MOE" convert "$T/$f.gguf" "$T/$f-hf"
  same_logits "$f: GGUF vs back to HF" "$T/$f.gguf" "$T/$f-hf"
  # llama.cpp's converter's own file, to HF
  expect_ok "convert llama.cpp's $f -> hf" "$MOE" convert "$FIX/gguf_models/${f}_f32.gguf" "$T/$f-lcpp"
  same_logits "$f: llama.cpp GGUF vs HF" "$FIX/gguf_models/${f}_f32.gguf" "$T/$f-lcpp"
done
[ -f "$T/olmoe-hf/config.json" ] && grep -Eq '"model_type":[[:space:]]*"olmoe"' "$T/olmoe-hf/config.json" && ok ||
  bad "gguf -> hf: config.json missing or not olmoe"
# gpt-oss MXFP4 experts: kept by convert and by quantize unless --experts asks
expect_ok "convert gpt_oss mxfp4 -> gguf" "$MOE" convert "$FIX/models/gpt_oss_mxfp4" "$T/oss4.gguf"
out_has "convert gpt_oss mxfp4: experts stay MXFP4" "MXFP4 \(6\), F32"
same_logits "gpt_oss mxfp4: HF vs GGUF" "$FIX/models/gpt_oss_mxfp4" "$T/oss4.gguf"
expect_ok "quantize gpt_oss q8_0" "$MOE" quantize "$T/oss4.gguf" "$T/oss-q8.gguf" --type q8_0
out_has "quantize gpt_oss q8_0: MXFP4 experts kept" "MXFP4 \(6\), Q8_0"
expect_ok "quantize gpt_oss --experts q8_0" "$MOE" quantize "$T/oss4.gguf" "$T/oss-q8e.gguf" --type q8_0 --experts q8_0
out_has "quantize gpt_oss --experts q8_0: no MXFP4" "Q8_0 \(16\), F32"
expect_ok "quantize gpt_oss float experts -> mxfp4" "$MOE" quantize "$T/gpt_oss-hf" "$T/oss-mx.gguf" --type mxfp4
out_has "quantize --type mxfp4" "MXFP4 \([0-9]+\), Q8_0"
expect_fail "quantize --experts bogus" 2 "--experts: 'q3' is not one of" "$MOE" quantize "$T/oss4.gguf" "$T/x.gguf" --type q8_0 --experts q3
expect_fail "quantize --experts with mixed" 2 "--experts does not go with --type mixed" "$MOE" quantize "$T/oss4.gguf" "$T/x.gguf" --type mixed --experts q8_0 --route-stats "$T/none.json"
expect_ok "convert --type bf16" "$MOE" convert "$FIX/models/qwen3_moe_base" "$T/q3-bf16.gguf" --type bf16
out_has "bf16 file" "BF16 \([0-9]+\), F32"
expect_ok "info bf16 gguf" "$MOE" info "$T/q3-bf16.gguf"
out_has "info: bf16" "bf16"
expect_ok "convert to hf bf16" "$MOE" convert "$T/q3-bf16.gguf" "$T/q3-bf16-hf"
out_has "hf bf16 kept" "bf16 in"
grep -Eq '"torch_dtype":[[:space:]]*"bfloat16"' "$T/q3-bf16-hf/config.json" && ok || bad "hf bf16: torch_dtype"
# (the GGUF kept norms and routers F32, so the bf16 directory rounds them: not the same bytes)
expect_ok "bf16 HF loads" "$MOE" info "$T/q3-bf16-hf"
out_has "bf16 HF: dtypes" "dtypes +bf16"

# tokenizer files travel into an HF output, from the GGUF's directory or --tokenizer
mkdir -p "$T/tokdir"
cp "$FIX/cli/tokenizer.json" "$T/tokdir/"
expect_ok "init tiny" "$MOE" init --preset tiny --dtype f32 "$T/tiny"
cp "$FIX/cli/tokenizer.json" "$T/tiny/"
expect_ok "tiny -> gguf" "$MOE" convert "$T/tiny" "$T/tokdir/tiny.gguf"
out_has "tiny -> gguf: vocabulary" 'vocabulary: gpt2, 512 tokens, pre-tokenizer "gpt-2" .* ids on ([0-9]+)/\1 probe texts'
expect_ok "gguf -> hf with tokenizer" "$MOE" convert "$T/tokdir/tiny.gguf" "$T/tiny-back"
out_has "tokenizer copied" "1 tokenizer file from"
cmp -s "$FIX/cli/tokenizer.json" "$T/tiny-back/tokenizer.json" && ok || bad "tokenizer.json not copied"
expect_ok "tokenize with the copied tokenizer" "$MOE" tokenize "$T/tiny-back" "hello world"
expect_ok "--tokenizer DIR" "$MOE" convert "$T/q3-bf16.gguf" "$T/q3-tok" --tokenizer "$T/tokdir"
[ -f "$T/q3-tok/tokenizer.json" ] && ok || bad "--tokenizer: not copied"
# a symlink planted where the copy goes is replaced, not written through
echo precious >"$T/victim"
ln -sf "$T/victim" "$T/q3-tok/tokenizer.json"
expect_ok "--tokenizer over a planted link" "$MOE" convert "$T/q3-bf16.gguf" "$T/q3-tok" --tokenizer "$T/tokdir" --force
[ "$(cat "$T/victim")" = precious ] && [ ! -L "$T/q3-tok/tokenizer.json" ] && ok || bad "convert: wrote through a planted symlink"

# the vocabulary travels into the GGUF: the file alone tokenizes as the
# directory does, and generates
expect_ok "quantize tiny with its tokenizer" "$MOE" quantize "$T/tiny" "$T/tiny-voc.gguf" --type q8_0
out_has "quantize: vocabulary written" "vocabulary: gpt2, 512 tokens"
for txt in "Hello world, the end." "<s>caf$(printf '\303\251')  12345 <unk>x</s>" "  tabs	and
newlines  "; do
  expect_ok "tokenize DIR" "$MOE" tokenize "$T/tiny" "$txt"
  cp "$T/out" "$T/ids-dir"
  expect_ok "tokenize the GGUF" "$MOE" tokenize "$T/tiny-voc.gguf" "$txt"
  cmp -s "$T/out" "$T/ids-dir" && ok || bad "GGUF tokenizes '$txt' as $(cat "$T/out"), the directory as $(cat "$T/ids-dir")"
done
expect_ok "generate from the GGUF alone" "$MOE" generate "$T/tiny-voc.gguf" -p "Hello world" -n 8 --seed 1
grep -q "generated 8 tokens" "$T/err" && ok || bad "generate: no decode line ($(head -c 200 "$T/err"))"
# and back: no tokenizer files beside the GGUF, so tokenizer.json is rebuilt from its vocabulary
expect_ok "gguf (alone) -> hf" "$MOE" convert "$T/tiny-voc.gguf" "$T/voc-hf"
out_has "tokenizer rebuilt" "tokenizer.json \+ tokenizer_config.json from the GGUF's vocabulary"
"$MOE" tokenize "$T/tiny" "Hello <s>world</s>, the end." >"$T/ids-dir"
expect_ok "tokenize with the rebuilt tokenizer" "$MOE" tokenize "$T/voc-hf" "Hello <s>world</s>, the end."
cmp -s "$T/out" "$T/ids-dir" && ok || bad "rebuilt tokenizer.json tokenizes differently"
# an unsupported tokenizer.json: the weights convert, with a note and no vocabulary
mkdir -p "$T/wp" && cp "$T/tiny/config.json" "$T/tiny/model.safetensors" "$T/wp/" &&
  echo '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}' >"$T/wp/tokenizer.json"
expect_ok "convert with a WordPiece tokenizer" "$MOE" convert "$T/wp" "$T/wp.gguf"
grep -q "note: .*WordPiece.*no vocabulary" "$T/err" && ok || bad "WordPiece: no note ($(head -c 200 "$T/err"))"
expect_fail "tokenize a GGUF without vocabulary" 1 "carries no vocabulary" "$MOE" tokenize "$T/wp.gguf" "hi"
# a GGUF without a vocabulary gets one from --tokenizer
expect_ok "gguf + --tokenizer" "$MOE" convert "$T/wp.gguf" "$T/wp-voc.gguf" --tokenizer "$T/tokdir"
out_has "gguf + --tokenizer: vocabulary" "vocabulary: gpt2, 512 tokens"
"$MOE" tokenize "$T/tiny" "Hello world, the end." >"$T/ids-hello"
expect_ok "tokenize it" "$MOE" tokenize "$T/wp-voc.gguf" "Hello world, the end."
cmp -s "$T/out" "$T/ids-hello" && ok || bad "--tokenizer vocabulary tokenizes differently"

# ---------------------------------------------------------- plain types
for p in tiny tiny-olmoe tiny-qwen2 tiny-qwen3; do
  [ -d "$T/$p" ] || expect_ok "init $p" "$MOE" init --preset $p "$T/$p"
  for ty in q8_0 q4_0 q4_k q5_k q6_k; do
    expect_ok "quantize $p $ty" "$MOE" quantize "$T/$p" "$T/$p-$ty.gguf" --type $ty
    runs "$p $ty runs" "$T/$p-$ty.gguf"
  done
done
# the other llama.cpp types: dim 64 rows take the 32-blocks (Q2_K / Q3_K fall
# back to Q4_0, IQ4_XS to IQ4_NL); a 2048-wide layer takes Q2_K, Q3_K and
# IQ4_XS blocks themselves, and generates
for p in tiny tiny-qwen3; do
  for ty in q4_1 q5_0 q5_1 iq4_nl q2_k q3_k iq4_xs; do
    expect_ok "quantize $p $ty" "$MOE" quantize "$T/$p" "$T/$p-$ty.gguf" --type $ty
    runs "$p $ty runs" "$T/$p-$ty.gguf"
  done
done
out_has "iq4_xs on dim 64: IQ4_NL" "IQ4_NL \([0-9]+\)"
expect_ok "init a 2048-wide layer" "$MOE" init --preset qwen3-30b-a3b --layers 1 --experts 2 --vocab 512 "$T/wide"
cp "$FIX/cli/tokenizer.json" "$T/wide/"
for ty in q2_k:Q2_K q3_k:Q3_K iq4_xs:IQ4_XS; do
  ty_l=${ty%%:*} ty_u=${ty##*:}
  expect_ok "quantize wide $ty_l" "$MOE" quantize "$T/wide" "$T/wide-$ty_l.gguf" --type $ty_l
  out_has "wide $ty_l: $ty_u tensors" "$ty_u \([0-9]+\)"
  runs "wide $ty_l runs" "$T/wide-$ty_l.gguf"
  expect_ok "generate wide $ty_l" "$MOE" generate "$T/wide-$ty_l.gguf" -p "Hello world" -n 4 --seed 1
  grep -q "generated 4 tokens" "$T/err" && ok || bad "generate wide $ty_l: no decode line ($(head -c 200 "$T/err"))"
done
expect_ok "quantize --pure" "$MOE" quantize "$T/tiny-olmoe" "$T/pure.gguf" --type q4_0 --pure
out_has "--pure: output not Q6_K" "Q4_0 \([0-9]+\), F32"
# from a GGUF source: requantized, metadata carried
expect_ok "quantize a GGUF" "$MOE" quantize "$T/tiny-olmoe-q8_0.gguf" "$T/requant.gguf" --type q4_0
runs "requantized runs" "$T/requant.gguf"
expect_ok "quantize llama.cpp's GGUF" "$MOE" quantize "$FIX/gguf_models/qwen3_moe_f32.gguf" "$T/lcpp-q8.gguf" --type q8_0
expect_ok "info of it" "$MOE" info "$T/lcpp-q8.gguf"
out_has "info: q8_0" "q8_0"

# a GGUF source's vocabulary travels with it
TOKG="$FIX/gguf_tokenizers/qwen2_moe_q8_0_tok.gguf"
if [ -f "$TOKG" ]; then
  expect_ok "tokenize the source GGUF" "$MOE" tokenize "$TOKG" "hello world"
  cp "$T/out" "$T/ids-src"
  expect_ok "quantize a GGUF with a vocabulary" "$MOE" quantize "$TOKG" "$T/tokq.gguf" --type q4_0
  expect_ok "tokenize the quantized GGUF" "$MOE" tokenize "$T/tokq.gguf" "hello world"
  cmp -s "$T/out" "$T/ids-src" && ok || bad "quantized GGUF tokenizes differently"
fi

# ----------------------------------------------------------------- mixed
M="$T/tiny-olmoe"
cp "$FIX/cli/tokenizer.json" "$M/"
head -c 4000 "$FIX/tokenizer_train/corpus.txt" >"$T/calib.txt"
expect_ok "mixed --calib" "$MOE" quantize "$M" "$T/mix.gguf" --type mixed --calib "$T/calib.txt" --low q4_0 --budget 190K
out_has "mixed: summary" "^mixed: [0-9]+ of 16 experts at Q8_0"
out_has "mixed: per layer" "^  layer 1: [0-9]/8 experts at Q8_0"
runs "mixed runs" "$T/mix.gguf"
expect_ok "mixed -> gguf (kept)" "$MOE" convert "$T/mix.gguf" "$T/mix-copy.gguf"
same_logits "mixed copy: same logits" "$T/mix.gguf" "$T/mix-copy.gguf"
expect_ok "mixed -> hf" "$MOE" convert "$T/mix.gguf" "$T/mix-hf"
runs "mixed as HF runs" "$T/mix-hf"
expect_ok "route --text" "$MOE" route "$M" --text "The quick brown fox jumps over the lazy dog."
cp "$T/out" "$T/route-text.json"
expect_ok "mixed --route-stats (text)" "$MOE" quantize "$M" "$T/mix2.gguf" --type mixed --route-stats "$T/route-text.json" --low q4_0 --budget 7.5bpw
runs "mixed (text stats) runs" "$T/mix2.gguf"
cat >"$T/route-data.json" <<'EOF'
{"mode": "data", "layers": [
{"layer": 0, "n_experts": 8, "counts": [100, 0, 0, 0, 0, 0, 0, 1]},
{"layer": 1, "n_experts": 8, "counts": [0, 0, 0, 0, 0, 0, 0, 50]}]}
EOF
expect_ok "mixed --route-stats (data)" "$MOE" quantize "$M" "$T/mix3.gguf" --type mixed --route-stats "$T/route-data.json" --low q4_0 --budget 170K
out_has "data stats: 2 experts up" "^mixed: 2 of 16 experts"
runs "mixed (data stats) runs" "$T/mix3.gguf"
expect_ok "mixed all high: stacked" "$MOE" quantize "$M" "$T/mix4.gguf" --type mixed --route-stats "$T/route-data.json" --low q4_0 --budget 1G
if grep -q "one tensor per expert" "$T/out"; then bad "all-high layers should stay stacked"; else ok; fi

# --------------------------------------------------------------- bad input
expect_fail "quantize: no --type" 2 "--type is required" "$MOE" quantize "$M" "$T/x.gguf"
expect_fail "quantize: unknown --type" 2 "--type: 'tq2_0' is not one of" "$MOE" quantize "$M" "$T/x.gguf" --type tq2_0
expect_fail "quantize: float --type" 2 "use 'moe convert --type'" "$MOE" quantize "$M" "$T/x.gguf" --type f16
expect_fail "quantize: bad --low" 2 "--low: 'iq2_xs' is not one of" "$MOE" quantize "$M" "$T/x.gguf" --type mixed --low iq2_xs --calib "$T/calib.txt"
expect_fail "quantize: missing IN" 1 "no such file or directory" "$MOE" quantize "$T/nope" "$T/x.gguf" --type q8_0
expect_fail "quantize: OUT not .gguf" 2 "OUT must be a .gguf file name" "$MOE" quantize "$M" "$T/x.bin" --type q8_0
expect_fail "quantize: OUT exists" 1 "already exists \(use --force" "$MOE" quantize "$M" "$T/mix.gguf" --type q8_0
expect_ok "quantize: --force" "$MOE" quantize "$M" "$T/mix.gguf" --type q8_0 --force
expect_fail "quantize: unwritable" 1 "directory $T/no/dir does not exist" "$MOE" quantize "$M" "$T/no/dir/x.gguf" --type q8_0
if [ "$(id -u)" -ne 0 ]; then
  mkdir -p "$T/ro" && chmod 555 "$T/ro"
  expect_fail "quantize: read-only dir" 1 "is not writable" "$MOE" quantize "$M" "$T/ro/x.gguf" --type q8_0
fi
expect_fail "mixed: no counts" 2 "needs routing counts" "$MOE" quantize "$M" "$T/x.gguf" --type mixed --budget 1G
expect_fail "mixed: no budget" 2 "needs --budget SIZE \(this model: .* with every expert at q4_k" "$MOE" quantize "$M" "$T/x.gguf" --type mixed --calib "$T/calib.txt"
expect_fail "mixed: bad budget" 2 "--budget: '2.5Q' is not a size" "$MOE" quantize "$M" "$T/x.gguf" --type mixed --calib "$T/calib.txt" --budget 2.5Q
expect_fail "mixed: budget too small" 1 "is below the smallest mixed file" "$MOE" quantize "$M" "$T/x.gguf" --type mixed --calib "$T/calib.txt" --low q4_0 --budget 10K
expect_fail "budget without mixed" 2 "--budget goes with --type mixed" "$MOE" quantize "$M" "$T/x.gguf" --type q8_0 --budget 1G
expect_fail "mixed: empty calib" 1 "the file is empty" sh -c ": >'$T/empty.txt'; exec \"\$0\" quantize '$M' '$T/x.gguf' --type mixed --calib '$T/empty.txt' --budget 1G" "$MOE"
printf '{"mode": "data", "layers": [' >"$T/broken.json"
expect_fail "route-stats: broken JSON" 1 "broken.json: not the JSON of 'moe route' \(invalid JSON\)" "$MOE" quantize "$M" "$T/x.gguf" --type mixed --route-stats "$T/broken.json" --budget 1G
echo '{"mode": "data", "layers": [{"layer": 0, "counts": [1, 2]}]}' >"$T/short.json"
expect_fail "route-stats: wrong expert count" 1 "layer 0: \"counts\" must be an array of 8 numbers" "$MOE" quantize "$M" "$T/x.gguf" --type mixed --route-stats "$T/short.json" --budget 1G
echo '{"mode": "data", "layers": [{"layer": 9, "counts": []}]}' >"$T/layer.json"
expect_fail "route-stats: no such layer" 1 "no valid \"layer\" \(the model has 2 layers\)" "$MOE" quantize "$M" "$T/x.gguf" --type mixed --route-stats "$T/layer.json" --budget 1G
echo '{"mode": "data", "layers": [{"layer": 0, "counts": [0,0,0,0,0,0,0,0]}]}' >"$T/zero.json"
expect_fail "route-stats: all zero" 1 "all zero" "$MOE" quantize "$M" "$T/x.gguf" --type mixed --route-stats "$T/zero.json" --budget 1G
echo '{"mode": "trace"}' >"$T/mode.json"
expect_fail "route-stats: unknown mode" 1 "mode \"trace\" is not" "$MOE" quantize "$M" "$T/x.gguf" --type mixed --route-stats "$T/mode.json" --budget 1G
expect_fail "convert: quant --type" 2 "use 'moe quantize'" "$MOE" convert "$M" "$T/x.gguf" --type q4_0
expect_fail "convert: unknown --type" 2 "--type: 'f8' is not one of f32, f16, bf16" "$MOE" convert "$M" "$T/x.gguf" --type f8
expect_fail "convert: missing IN" 1 "no such file or directory" "$MOE" convert "$T/nope" "$T/x.gguf"
expect_fail "convert: HF OUT holds a model" 1 "already holds a model" "$MOE" convert "$T/mix.gguf" "$T/mix-hf"
expect_fail "convert: OUT is a file" 1 "exists and is not a directory" "$MOE" convert "$T/mix.gguf" "$T/calib.txt"
# unsupported architectures: a dense llama directory, a GGUF of another arch
mkdir -p "$T/llama" && echo '{"model_type": "llama", "vocab_size": 32, "hidden_size": 8}' >"$T/llama/config.json"
expect_fail "convert: unsupported model_type" 1 "llama" "$MOE" convert "$T/llama" "$T/x.gguf"
sed 's/olmoe/gpt2x/g' "$T/olmoe.gguf" >"$T/gpt2.gguf"
expect_fail "convert: GGUF of another arch" 1 "\"gpt2x\" is not supported" "$MOE" convert "$T/gpt2.gguf" "$T/gpt2-hf"
# what GGUF cannot say: a sigmoid router
mkdir -p "$T/sig" && cp "$FIX/models/mixtral_base/model.safetensors" "$T/sig/" &&
  sed 's/"model_type": "mixtral",/"model_type": "mixtral", "moe": {"score": "sigmoid"},/' \
    "$FIX/models/mixtral_base/config.json" >"$T/sig/config.json"
expect_fail "quantize: sigmoid router" 1 "sigmoid router, which the GGUF format" "$MOE" quantize "$T/sig" "$T/x.gguf" --type q8_0
[ ! -e "$T/x.gguf" ] && ok || bad "a failed run left $T/x.gguf"
no_leftovers "after the failures"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
