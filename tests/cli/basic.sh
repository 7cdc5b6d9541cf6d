#!/bin/sh
# basic.sh - the `moe` command line end to end on tiny random models: help
# texts, usage errors (unknown command/flag, bad and out-of-range numbers),
# `moe init` for every tiny preset, info / logits / bench on the result,
# messages for a missing tokenizer, a missing path and a damaged file, and
# (with the committed fixture tokenizer) tokenize / detokenize / generate.
#   MOE=build/moe sh tests/cli/basic.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures/cli"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
skip=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# run CMD...: runs with stdout in $T/out, stderr in $T/err, exit code in $rc
run() {
  "$@" >"$T/out" 2>"$T/err"
  rc=$?
}

# expect_ok NAME CMD... : exit 0
expect_ok() {
  name=$1; shift
  run "$@"
  if [ "$rc" -eq 0 ]; then ok; else bad "$name: exit $rc: $(head -c 300 "$T/err")"; fi
}

# expect_fail NAME PATTERN CMD... : exits 1 or 2 (an error, not a crash),
# nothing on stdout, PATTERN (grep -E) in stderr
expect_fail() {
  name=$1; pat=$2; shift 2
  run "$@"
  if [ "$rc" -ne 1 ] && [ "$rc" -ne 2 ]; then bad "$name: exit $rc (expected 1 or 2): $(head -c 300 "$T/err")"; return; fi
  if [ -s "$T/out" ]; then bad "$name: wrote to stdout on error"; return; fi
  if grep -Eq -- "$pat" "$T/err"; then ok; else bad "$name: stderr lacks '$pat': $(head -c 300 "$T/err")"; fi
}

# out_has NAME PATTERN: the last run's stdout matches PATTERN
out_has() {
  if grep -Eq -- "$2" "$T/out"; then ok; else bad "$1: stdout lacks '$2': $(head -c 300 "$T/out")"; fi
}

size_of() { wc -c <"$1" | tr -d ' '; }

# close_f32 A B TOL: two files of float32 values agree within TOL
close_f32() {
  od -An -v -t f4 "$1" | tr -s ' ' '\n' | grep . >"$T/fa"
  od -An -v -t f4 "$2" | tr -s ' ' '\n' | grep . >"$T/fb"
  paste "$T/fa" "$T/fb" | awk -v tol="$3" '
    { d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ }
    END { exit !(n > 0 && m <= tol) }'
}

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

# ------------------------------------------------------------------- help
expect_ok "moe --help" "$MOE" --help
for c in info logits generate tokenize detokenize bench init; do
  out_has "moe --help lists $c" "^  $c "
done
expect_ok "moe --version" "$MOE" --version
out_has "version text" "^moe [0-9]+\.[0-9]+"
for c in info logits generate tokenize detokenize bench init; do
  expect_ok "moe $c --help" "$MOE" $c --help
  out_has "moe $c --help text" "^usage: moe $c "
done
expect_ok "moe help bench" "$MOE" help bench
out_has "moe help bench text" "usage: moe bench"

# ------------------------------------------------------------ usage errors
expect_fail "no command" "usage: moe" "$MOE"
expect_fail "unknown command" "unknown command 'frobnicate'" "$MOE" frobnicate
expect_fail "unknown top-level flag" "unknown option '--frob'" "$MOE" --frob
expect_fail "unknown flag" "unknown option '--bogus'" "$MOE" info --bogus x
expect_fail "unknown short flag" "unknown option '-z'" "$MOE" bench -z
expect_fail "missing MODEL" "missing argument" "$MOE" info
expect_fail "extra argument" "unexpected argument 'b'" "$MOE" info a b
expect_fail "flag without value" "--gen needs a value" "$MOE" bench m --gen
expect_fail "non-numeric int" "'abc' is not an integer" "$MOE" generate m -p hi -n abc
expect_fail "trailing junk int" "'12x' is not an integer" "$MOE" bench m --prompt 12x
expect_fail "non-numeric float" "'warm' is not a number" "$MOE" generate m -p hi --temp warm
expect_fail "nan float" "'nan' is not a number" "$MOE" generate m -p hi --temp nan
expect_fail "negative temp" "--temp: -1 is out of range" "$MOE" generate m -p hi --temp -1
expect_fail "top-p 0" "--top-p: 0 is out of range \(0, 1\]" "$MOE" generate m -p hi --top-p 0
expect_fail "top-p 1.5" "--top-p: 1.5 is out of range" "$MOE" generate m -p hi --top-p=1.5
expect_fail "negative top-k" "--top-k: -3 is out of range" "$MOE" generate m -p hi --top-k -3
expect_fail "huge int" "out of range" "$MOE" bench m --threads 99999999999999999999
expect_fail "reps 0" "--reps: 0 is out of range" "$MOE" bench m --reps 0
expect_fail "bad seed" "--seed: '-5' is not an unsigned" "$MOE" generate m -p hi --seed -5
expect_fail "flag with value" "--json takes no value" "$MOE" info m --json=1
expect_fail "generate without prompt" "-p TEXT is required" "$MOE" generate m
expect_fail "logits without ids" "--ids is required" "$MOE" logits m
expect_fail "logits empty id" "empty entry" "$MOE" logits m --ids 1,,2
expect_fail "logits bad id" "not a list of token ids" "$MOE" logits m --ids 1,x
expect_fail "logits negative id" "out of range" "$MOE" logits m --ids 1,-2
expect_fail "init without preset" "--preset NAME is required" "$MOE" init "$T/x"
expect_fail "init unknown preset" "unknown preset 'gpt5'" "$MOE" init --preset gpt5 "$T/x"
expect_fail "init bad dtype" "--dtype: 'f8'" "$MOE" init --preset tiny --dtype f8 "$T/x"
expect_fail "init 0 layers" "--layers: 0 is out of range" "$MOE" init --preset tiny --layers 0 "$T/x"
expect_fail "init 300 layers" "--layers: 300 is out of range" "$MOE" init --preset tiny --layers 300 "$T/x"

# ------------------------------------------------------------ missing paths
expect_fail "info missing path" "$T/nope: no such file or directory" "$MOE" info "$T/nope"
expect_fail "logits missing path" "no such file or directory" "$MOE" logits "$T/nope" --ids 1
expect_fail "tokenize missing path" "no such file or directory" "$MOE" tokenize "$T/nope" hi

# ------------------------------------------------------------ init + info
M="$T/tiny"
expect_ok "init tiny" "$MOE" init --preset tiny "$M"
out_has "init summary" "wrote .*tiny preset, 2 layers"
[ -f "$M/config.json" ] && [ -f "$M/model.safetensors" ] && ok || bad "init tiny: files missing"
ls "$M" | grep -q '\.tmp' && bad "init tiny: temporary file left behind" || ok
expect_fail "init refuses to overwrite" "already holds a model" "$MOE" init --preset tiny "$M"
cp "$M/model.safetensors" "$T/first.safetensors"
expect_ok "init --force" "$MOE" init --preset tiny --force "$M"
cmp -s "$M/model.safetensors" "$T/first.safetensors" && ok || bad "init: same seed gave different weights"
expect_ok "init seed 7" "$MOE" init --preset tiny --seed 7 "$T/tiny7"
cmp -s "$T/tiny7/model.safetensors" "$M/model.safetensors" && bad "init: seed 7 equals seed 0" || ok
expect_ok "init --layers 3" "$MOE" init --preset tiny --layers 3 "$T/tiny3"

expect_ok "info tiny" "$MOE" info "$M"
out_has "info arch" "^architecture +mixtral"
out_has "info layers" "^layers +2"
out_has "info experts" "MoE 4 experts, top-2, expert FFN 96"
out_has "info params" "^parameters .* total, .* active"
out_has "info dtypes" "^dtypes +bf16"
expect_ok "info --json" "$MOE" info "$M" --json
out_has "info json" '^\{"path": .*"params_total": [0-9]+.*\}$'
expect_ok "info 3 layers" "$MOE" info "$T/tiny3"
out_has "info --layers override" "^layers +3"
# qwen3_next: which layers are Gated DeltaNets, and a KV cache of the others only
Q3N="$HERE/../fixtures/models/qwen3_next_base"
expect_ok "info qwen3_next" "$MOE" info "$Q3N"
out_has "info linear attn" "^linear attn +2 of 4 layers \(0 2\): Gated DeltaNet, 2 key heads x 8, 4 value heads x 12, conv kernel 4"
out_has "info attn extras" "^attn extras +sigmoid output gate, zero-centred norms \(1 \+ w\), 4 of 16 dims rotated"
out_has "info kv of attention layers" "^kv cache +512 B per position"
# qwen3_5_moe as released: the text model of a checkpoint with a vision tower
Q35="$HERE/../fixtures/models/qwen3_5_moe_vl"
expect_ok "info qwen3_5_moe" "$MOE" info "$Q35"
out_has "info qwen3_5_moe arch" "^architecture +qwen3_5_moe$"
out_has "info vision tower" "^vision tower +in the checkpoint, not loaded: the text model runs alone"
expect_ok "info qwen3_5_moe --json" "$MOE" info "$Q35" --json
out_has "info json vision tower" '"vision_tower": "not loaded"\}$'
expect_ok "info qwen3_5_moe text only" "$MOE" info "$HERE/../fixtures/models/qwen3_5_moe_text"
grep -q "^vision tower" "$T/out" && bad "info text only: a vision tower line" || ok

# ------------------------------------------------------------ logits
V=512
expect_ok "logits --out" "$MOE" logits "$M" --ids 1,2,3 --out "$T/l.bin"
[ "$(size_of "$T/l.bin")" -eq $((3 * V * 4)) ] && ok || bad "logits --out: size $(size_of "$T/l.bin") != $((3 * V * 4))"
expect_ok "logits to stdout" "$MOE" logits "$M" --ids "1, 2, 3"
[ "$(size_of "$T/out")" -eq $((3 * V * 4)) ] && ok || bad "logits stdout: size $(size_of "$T/out")"
cmp -s "$T/out" "$T/l.bin" && ok || bad "logits: stdout and --out differ"
expect_ok "logits one id" "$MOE" logits "$M" --ids 5 -o "$T/l1.bin"
[ "$(size_of "$T/l1.bin")" -eq $((V * 4)) ] && ok || bad "logits one id: size"
# 70 ids: more than one internal chunk of positions
ids=1; i=2; while [ $i -le 70 ]; do ids="$ids,$i"; i=$((i + 1)); done
expect_ok "logits 70 ids" "$MOE" logits "$M" --ids "$ids" -o "$T/l70.bin"
[ "$(size_of "$T/l70.bin")" -eq $((70 * V * 4)) ] && ok || bad "logits 70 ids: size"
# the first 3 rows depend only on the first 3 ids (causal); kernels may sum
# in another order for another batch size, hence a tolerance
head -c $((3 * V * 4)) "$T/l70.bin" >"$T/l70_3.bin"
expect_ok "logits 1,2,3 again" "$MOE" logits "$M" --ids 1,2,3 -o "$T/l3.bin"
close_f32 "$T/l70_3.bin" "$T/l3.bin" 1e-5 && ok || bad "logits: prefix rows differ between 3 and 70 ids"
cmp -s "$T/l3.bin" "$T/l.bin" && ok || bad "logits: two runs of the same ids differ"
expect_fail "logits id >= vocab" "token id 512 at position 1 is out of range \[0, 512\)" "$MOE" logits "$M" --ids 1,512

for p in tiny-olmoe tiny-qwen3 tiny-qwen2 tiny-gpt-oss; do
  expect_ok "init $p" "$MOE" init --preset $p "$T/$p"
  expect_ok "logits $p" "$MOE" logits "$T/$p" --ids 1,2,3,4 -o "$T/$p.bin"
  [ "$(size_of "$T/$p.bin")" -eq $((4 * V * 4)) ] && ok || bad "logits $p: size"
done
# the Gated DeltaNet presets at their real widths, shrunk to 4 layers (one of
# them full attention), 2 experts and a 256-token vocabulary (~320 MiB each,
# written one at a time; skipped, and said so, where the disk lacks the room)
free_kb=$(df -Pk "$T" | awk 'NR == 2 {print $4}')
for p in qwen3-next-80b-a3b qwen3.5-35b-a3b; do
  if [ "${free_kb:-0}" -lt $((400 * 1024)) ]; then
    echo "SKIP: init $p: $T has ${free_kb:-?} KiB free, the model needs ~320 MiB"
    skip=$((skip + 1)); continue
  fi
  expect_ok "init $p" "$MOE" init --preset $p --layers 4 --experts 2 --vocab 256 "$T/$p"
  out_has "init $p summary" "wrote .*$p preset, 4 layers"
  expect_ok "info $p" "$MOE" info "$T/$p"
  out_has "info $p linear" "^linear attn +3 of 4 layers \(0 1 2\): Gated DeltaNet, 16 key heads x 128, 32 value heads x 128, conv kernel 4"
  out_has "info $p attention" "^attention +16 heads, 2 kv heads, head dim 256"
  out_has "info $p extras" "64 of 256 dims rotated"
  out_has "info $p experts" "MoE 2 experts, top-2, expert FFN 512, .*1 shared \(FFN 512, sigmoid gate\)"
  expect_ok "logits $p" "$MOE" logits "$T/$p" --ids 1,2,3 -o "$T/$p.bin"
  [ "$(size_of "$T/$p.bin")" = $((3 * 256 * 4)) ] && ok || bad "logits $p: size"
  case $p in
  qwen3-next-80b-a3b)
    grep -q '"model_type":.*"qwen3_next"' "$T/$p/config.json" && ok || bad "init qwen3-next: model_type"
    grep -q '"rope_theta":.*10000000.0' "$T/$p/config.json" && ok || bad "init qwen3-next: rope_theta" ;;
  qwen3.5-35b-a3b)
    grep -q '"architectures":.*"Qwen3_5MoeForCausalLM"' "$T/$p/config.json" && ok || bad "init qwen3.5: class"
    grep -Eq '"mrope_section":[[:space:]]*\[11,[[:space:]]*11,[[:space:]]*10\]' "$T/$p/config.json" && ok || bad "init qwen3.5: mrope_section" ;;
  esac
  rm -rf "${T:?}/$p" "$T/$p.bin"
done

# gpt-oss: MXFP4 experts by default (blocks + scales, quantization_config), float on request;
# the real presets' sizes are the released models' (20.91 B and 116.83 B parameters)
expect_ok "info tiny-gpt-oss" "$MOE" info "$T/tiny-gpt-oss"
out_has "tiny-gpt-oss: mxfp4 experts" "^dtypes +bf16 \([0-9]+\), mxfp4 \(4\)"
grep -Eq '"quant_method":[[:space:]]*"mxfp4"' "$T/tiny-gpt-oss/config.json" && ok || bad "tiny-gpt-oss: no quantization_config"
expect_ok "init tiny-gpt-oss --expert-type float" "$MOE" init --preset tiny-gpt-oss --expert-type float --layers 3 "$T/oss-float"
expect_ok "info oss-float" "$MOE" info "$T/oss-float"
out_has "oss-float: float experts, 3 layers" "^dtypes +bf16 \([0-9]+\)$"
expect_ok "logits oss-float" "$MOE" logits "$T/oss-float" --ids 1,2,3 -o "$T/oss-float.bin"
expect_ok "init gpt-oss-20b --dry-run" "$MOE" init --preset gpt-oss-20b --dry-run "$T/oss20"
out_has "gpt-oss-20b size" "24 layers, 459 tensors, 20.91 B parameters, 12.82 GiB bf16 \(experts mxfp4\)"
[ ! -e "$T/oss20" ] && ok || bad "--dry-run wrote $T/oss20"
expect_ok "init gpt-oss-120b --dry-run" "$MOE" init --preset gpt-oss-120b --dry-run "$T/oss120"
out_has "gpt-oss-120b size" "36 layers, 687 tensors, 116.83 B parameters"
expect_ok "init gpt-oss-20b --layers 2 --dry-run" "$MOE" init --preset gpt-oss-20b --layers 2 --dry-run "$T/oss20"
out_has "gpt-oss-20b 2 layers" "2 layers, 41 tensors"
expect_fail "init --expert-type on a non-gpt-oss preset" "only gpt-oss presets" "$MOE" init --preset tiny --expert-type mxfp4 "$T/x"
expect_fail "init --expert-type bogus" "--expert-type: 'q4'" "$MOE" init --preset tiny-gpt-oss --expert-type q4 "$T/x"
for d in f32 f16; do
  expect_ok "init --dtype $d" "$MOE" init --preset tiny --dtype $d "$T/tiny-$d"
  expect_ok "info $d" "$MOE" info "$T/tiny-$d"
  out_has "info dtype $d" "^dtypes +$d"
  expect_ok "logits $d" "$MOE" logits "$T/tiny-$d" --ids 1,2 -o "$T/$d.bin"
done
[ "$(size_of "$T/tiny-f32/model.safetensors")" -gt "$(size_of "$M/model.safetensors")" ] && ok || bad "f32 file not larger than bf16"

# ------------------------------------------------------------ bench
expect_ok "bench" "$MOE" bench "$M" --prompt 8 --gen 4 --reps 1 --warmup 0 --probe-mb 16 --threads 1
out_has "bench prefill row" "^prefill +8 +[0-9.]+ +[0-9.]+ GFLOP/s"
out_has "bench decode row" "^decode +4 +[0-9.]+ +[0-9.]+ GB/s"
expect_ok "bench --json" "$MOE" bench "$M" --prompt 4 --gen 2 --reps 1 --warmup 0 --probe-mb 16 --json
out_has "bench json" '^\{.*"prefill_tok_s": [0-9.]+.*"decode_tok_s": [0-9.]+.*"bandwidth_gb_s": [0-9.]+.*\}$'
expect_fail "bench nothing to do" "nothing to measure" "$MOE" bench "$M" --prompt 0 --gen 0
# several prefill sizes, the int8 peak, a thread sweep
expect_ok "bench prompt sizes" "$MOE" bench "$M" --prompt 4,8 --gen 2 --reps 1 --warmup 0 --probe-mb 16 --threads 1
out_has "bench prefill 4" "^prefill +4 +[0-9.]+ "
out_has "bench prefill 8" "^prefill +8 +[0-9.]+ "
out_has "bench int8 peak" "int8 peak [0-9.]+ GOP/s \((amx-int8|avx512-vnni|avx2|scalar)\)"
expect_fail "bench prompt list junk" "--prompt: 'x' is not an integer" "$MOE" bench "$M" --prompt 4,x
expect_fail "bench prompt list empty item" "--prompt: '' is not an integer" "$MOE" bench "$M" --prompt 4,,8
expect_fail "bench prompt list range" "--prompt: -1 is out of range" "$MOE" bench "$M" --prompt 4,-1
expect_ok "bench --sweep --json" "$MOE" bench "$M" --prompt 4 --gen 2 --reps 1 --warmup 0 --probe-mb 16 --threads 2 --sweep --json
out_has "bench sweep json" '^\{"sweep": \[\{.*"threads": 1,.*"int8_peak_gop_s": [0-9.]+.*\}, \{.*"threads": 2,.*\}\]\}$'
expect_ok "bench --sweep" "$MOE" bench "$M" --prompt 4 --gen 2 --reps 1 --warmup 0 --probe-mb 16 --threads 2 --sweep
out_has "bench sweep row 1" "^ +1 +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+% +[0-9.]+ +[0-9.]+%$"
out_has "bench sweep row 2" "^ +2 +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+% +[0-9.]+ +[0-9.]+%$"
expect_ok "bench --probe-only --json" "$MOE" bench --probe-only --json --probe-mb 16 --threads 1
out_has "probe-only int8" '"int8_peak_gop_s": [0-9.]+, "int8_path": "[a-z0-9-]+", "int8_block_peak_gop_s": [0-9.]+'
# on AMX and AVX-512 VNNI the block-scaled rate is shown: below the tile
# unit's peak on AMX; near the peak on VNNI (two timings: only its order)
if grep -Eq '"int8_path": "(amx-int8|avx512-vnni)"' "$T/out"; then
  i8=$(sed -n 's/.*"int8_peak_gop_s": \([0-9.]*\).*/\1/p' "$T/out")
  i8b=$(sed -n 's/.*"int8_block_peak_gop_s": \([0-9.]*\).*/\1/p' "$T/out")
  room=1; grep -q '"int8_path": "avx512-vnni"' "$T/out" && room=2
  awk -v a="$i8b" -v b="$i8" -v r="$room" 'BEGIN { exit !(a > 0 && a < r * b) }' && ok || bad "probe-only: block peak not in (0, $room x int8 peak): $(cat "$T/out")"
else
  grep -q '"int8_block_peak_gop_s": 0.000' "$T/out" && ok || bad "probe-only: a block peak on the AVX2 or scalar path: $(cat "$T/out")"
fi
# the session's own kernel path is what bench reports
expect_ok "bench --kernels scalar" "$MOE" bench "$M" --prompt 4 --gen 2 --reps 1 --warmup 0 --probe-mb 16 --kernels scalar
out_has "bench reports the session's path" "^kernels  scalar; quantized weights: scalar"
expect_fail "bench --kernels unknown" 'kernels "avx9": unknown' "$MOE" bench "$M" --prompt 4 --gen 2 --kernels avx9

# ------------------------------------------------------------ tokenizer
expect_fail "tokenize without tokenizer" "$M/tokenizer.json not found" "$MOE" tokenize "$M" hello
expect_fail "detokenize without tokenizer" "tokenizer.json not found" "$MOE" detokenize "$M" 1,2
expect_fail "generate without tokenizer" "tokenizer.json not found" "$MOE" generate "$M" -p hello -n 2

# With a real byte-level BPE tokenizer (tests/fixtures/cli/tokenizer.json,
# vocab 512, <s> = 1 prepended, </s> = 2) the tiny model can talk.
if [ -f "$FIX/tokenizer.json" ]; then
  cp "$FIX/tokenizer.json" "$M/tokenizer.json"
  expect_ok "tokenize" "$MOE" tokenize "$M" "hello world"
  out_has "tokenize adds BOS" "^1,[0-9]+"
  ids=$(cat "$T/out")
  expect_ok "tokenize --no-special" "$MOE" tokenize "$M" "hello world" --no-special
  [ "1,$(cat "$T/out")" = "$ids" ] && ok || bad "tokenize: --no-special should only drop the BOS ($ids vs $(cat "$T/out"))"
  expect_ok "detokenize" "$MOE" detokenize "$M" "$ids" --skip-special
  [ "$(cat "$T/out")" = "hello world" ] && ok || bad "detokenize round trip: '$(cat "$T/out")'"
  expect_ok "tokenize text with a dash" "$MOE" tokenize "$M" -- "-x"
  expect_fail "detokenize id >= vocab" "out of range" "$MOE" detokenize "$M" 1,600
  expect_ok "generate greedy" "$MOE" generate "$M" -p "hello" -n 8 --temp 0
  cp "$T/out" "$T/g1"
  grep -Eq "prefill [0-9.]+ tok/s.*decode [0-9.]+ tok/s" "$T/err" && ok || bad "generate: no speeds on stderr: $(cat "$T/err")"
  expect_ok "generate greedy again" "$MOE" generate "$M" -p "hello" -n 8 --temp 0
  cmp -s "$T/out" "$T/g1" && ok || bad "generate: greedy is not deterministic"
  expect_ok "generate seeded" "$MOE" generate "$M" -p "hello" -n 8 --temp 1 --top-k 50 --top-p 0.9 --seed 3
  cp "$T/out" "$T/g2"
  expect_ok "generate seeded again" "$MOE" generate "$M" -p "hello" -n 8 --temp 1 --top-k 50 --top-p 0.9 --seed 3
  cmp -s "$T/out" "$T/g2" && ok || bad "generate: same seed, different text"
  expect_ok "generate -n 0" "$MOE" generate "$M" -p "hello" -n 0
  expect_fail "generate prompt longer than ctx" "raise --ctx" "$MOE" generate "$M" -p "hello world, hello world" --ctx 2
else
  bad "fixture $FIX/tokenizer.json missing"
fi

# ------------------------------------------------------------ damaged files
cp -r "$M" "$T/broken"
head -c 1000 "$M/model.safetensors" >"$T/broken/model.safetensors"
expect_fail "truncated safetensors" "cannot load model" "$MOE" info "$T/broken"
printf '{"model_type": "mixtral", ' >"$T/broken/config.json"
expect_fail "bad config.json" "cannot load model" "$MOE" logits "$T/broken" --ids 1
mkdir -p "$T/empty"
expect_fail "directory without model" "cannot load model" "$MOE" info "$T/empty"

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
