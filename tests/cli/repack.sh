#!/bin/sh
# repack.sh - `--repack` (the routed experts' Q8_0, Q4_K, Q5_K, Q6_K and IQ4_XS matrices packed at load for
# the AVX2 kernels) end to end: every expert matrix of a tiny Q8_0 model is
# packed (moe bench --json "packed"), the logits agree with the unpacked
# model's on the default path and on the AVX2 and scalar paths (the AVX2
# path reads the layout; scalar and AVX-512 unpack each row; the 256-value
# types give the stored bytes on the AVX2 path), a Q4_0 model
# packs nothing and runs, and --repack with --mem or with a memory-mapped
# file (MOE_LOAD=mmap) fails with a message. Without either flag the
# experts are packed where the kernels are AVX2's (MOE_ISA=avx2, when the
# CPU has AVX2) and the weights read, and left alone with --no-repack, on
# the scalar kernels, or on a mapped file. Small files are mapped, not read,
# unless MOE_LOAD=read: the runs here set it.
#   MOE=build/moe sh tests/cli/repack.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-repack.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

. "$HERE/harness.inc"

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

# close NAME A.bin B.bin TOL: the same number of floats, max |a - b| <= TOL * max |b|
close() {
  od -An -v -tf4 -w4 "$2" >"$T/a.txt"
  od -An -v -tf4 -w4 "$3" >"$T/b.txt"
  [ -s "$T/a.txt" ] && [ "$(wc -l <"$T/a.txt")" = "$(wc -l <"$T/b.txt")" ] &&
    paste "$T/a.txt" "$T/b.txt" | awk -v tol="$4" '{ d = $1 - $2; if (d < 0) d = -d; m = $2 < 0 ? -$2 : $2;
      if (d > w) w = d; if (m > s) s = m } END { exit !(s > 0 && w / s <= tol) }' && ok || bad "$1: logits differ"
}

IDS=1,5,17,3,99,42,7,0,127,64,300,2,511,9,33,21,88
expect_ok "help lists --repack" "$MOE" logits --help
out_has "logits --help: --repack" "--repack"

expect_ok "init tiny-qwen3 q8_0" "$MOE" init --preset tiny-qwen3 --type q8_0 "$T/q8.gguf"
# 2 layers x 8 experts x (gate, up, down)
MOE_LOAD=read "$MOE" bench "$T/q8.gguf" --repack --prompt 8 --gen 2 --reps 1 --warmup 0 --probe-mb 8 --json \
  >"$T/bench.json" 2>"$T/err"
grep -q '"packed": 48' "$T/bench.json" && ok || bad "bench --repack: not 48 matrices packed ($(head -c 300 "$T/bench.json") $(head -c 200 "$T/err"))"
MOE_LOAD=read "$MOE" bench "$T/q8.gguf" --no-repack --prompt 8 --gen 2 --reps 1 --warmup 0 --probe-mb 8 --json >"$T/bench0.json" 2>/dev/null
grep -q '"packed": 0' "$T/bench0.json" && ok || bad "bench --no-repack packed something"
# the default: packed on the AVX2 kernels only, and only when the weights are read
packs() { # packs LABEL EXPECTED env...
  label=$1 want=$2
  shift 2
  env "$@" "$MOE" bench "$T/q8.gguf" --prompt 8 --gen 2 --reps 1 --warmup 0 --probe-mb 8 --json >"$T/b.json" 2>"$T/err"
  grep -q "\"packed\": $want" "$T/b.json" && ok || bad "$label: not $want matrices packed ($(head -c 200 "$T/err"))"
}
packs "default, scalar kernels" 0 MOE_ISA=scalar MOE_LOAD=read
packs "default, mapped file" 0 MOE_ISA=avx2 MOE_LOAD=mmap
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  packs "default, AVX2 kernels" 48 MOE_ISA=avx2 MOE_LOAD=read
fi
expect_fail "--repack with --no-repack" 2 "choose one" "$MOE" logits "$T/q8.gguf" --ids 1 --repack --no-repack
MOE_LOAD=read "$MOE" bench "$T/q8.gguf" --repack --prompt 8 --gen 2 --reps 1 --warmup 0 --probe-mb 8 >"$T/bench.txt" 2>&1
grep -q "48 expert matrices packed at load" "$T/bench.txt" && ok || bad "bench --repack: no packed line"

# logits: the default path, then each path that unpacks (a prompt and a decode step)
for isa in "" avx2 scalar; do
  MOE_ISA=$isa MOE_LOAD=read "$MOE" logits "$T/q8.gguf" --ids $IDS -o "$T/a.bin" 2>"$T/err" || bad "logits ${isa:-default}: $(head -c 200 "$T/err")"
  MOE_ISA=$isa MOE_LOAD=read "$MOE" logits "$T/q8.gguf" --ids $IDS --repack -o "$T/b.bin" 2>"$T/err" || bad "logits --repack ${isa:-default}: $(head -c 200 "$T/err")"
  close "logits --repack against stored, ${isa:-default} path" "$T/b.bin" "$T/a.bin" 1e-5
  MOE_ISA=$isa MOE_LOAD=read "$MOE" logits "$T/q8.gguf" --ids 42 --repack -o "$T/b1.bin" 2>/dev/null
  MOE_ISA=$isa MOE_LOAD=read "$MOE" logits "$T/q8.gguf" --ids 42 -o "$T/a1.bin" 2>/dev/null
  close "one token --repack against stored, ${isa:-default} path" "$T/b1.bin" "$T/a1.bin" 1e-5
done

# IQ4_XS, Q4_K and Q5_K (their down matrices Q6_K, as quantize's q4_k and
# q5_k make layer 0) and Q6_K (rows of 256-value blocks: one layer of the Qwen3-30B-A3B
# shape, 8 experts): packed as well, and on the AVX2 path the same bytes as
# stored, for a prompt (the interleaved kernel for experts with many rows,
# the few-row kernels' arithmetic below) and for one token
for ty in iq4_xs q4_k q5_k q6_k; do
  expect_ok "init 1-layer qwen3-30b-a3b $ty" "$MOE" init --preset qwen3-30b-a3b --layers 1 --experts 8 --vocab 512 \
    --type $ty "$T/$ty.gguf"
  MOE_LOAD=read "$MOE" bench "$T/$ty.gguf" --repack --prompt 8 --gen 2 --reps 1 --warmup 0 --probe-mb 8 --json \
    >"$T/bench4.json" 2>"$T/err"
  grep -q '"packed": 24' "$T/bench4.json" && ok || bad "$ty bench --repack: not 24 matrices packed ($(head -c 200 "$T/err"))"
  if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    for ids in $IDS 42; do
      MOE_ISA=avx2 MOE_LOAD=read "$MOE" logits "$T/$ty.gguf" --ids $ids --no-repack -o "$T/a.bin" 2>/dev/null
      MOE_ISA=avx2 MOE_LOAD=read "$MOE" logits "$T/$ty.gguf" --ids $ids --repack -o "$T/b.bin" 2>"$T/err"
      cmp -s "$T/a.bin" "$T/b.bin" && ok || bad "$ty --repack on the AVX2 path: other logits than stored ($(head -c 200 "$T/err"))"
    done
  fi
  MOE_ISA=scalar MOE_LOAD=read "$MOE" logits "$T/$ty.gguf" --ids $IDS --no-repack -o "$T/a.bin" 2>/dev/null
  MOE_ISA=scalar MOE_LOAD=read "$MOE" logits "$T/$ty.gguf" --ids $IDS --repack -o "$T/b.bin" 2>/dev/null
  close "$ty logits --repack against stored, scalar path" "$T/b.bin" "$T/a.bin" 1e-5
done

# a type without a packed form: nothing packed, the same logits
expect_ok "init tiny-qwen3 q4_0" "$MOE" init --preset tiny-qwen3 --type q4_0 "$T/q4.gguf"
MOE_LOAD=read "$MOE" bench "$T/q4.gguf" --prompt 8 --gen 2 --reps 1 --warmup 0 --probe-mb 8 --json >"$T/b.json" 2>/dev/null
grep -q '"packed": 0' "$T/b.json" && ok || bad "q4_0: something packed"
MOE_LOAD=read "$MOE" logits "$T/q4.gguf" --ids $IDS -o "$T/a.bin" 2>/dev/null
MOE_LOAD=read "$MOE" logits "$T/q4.gguf" --ids $IDS --repack -o "$T/b.bin" 2>/dev/null
cmp -s "$T/a.bin" "$T/b.bin" && ok || bad "q4_0: --repack changed the logits"

# refusals
expect_fail "--repack with --mem" 2 "does not go with --mem" env MOE_LOAD=read "$MOE" logits "$T/q8.gguf" --ids 1 --repack --mem 1G
expect_fail "--repack on a mapped file" 1 "needs the weights read into memory" env MOE_LOAD=mmap "$MOE" logits "$T/q8.gguf" --ids 1 --repack

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
