#!/bin/sh
# init_gguf.sh - `moe init --type T OUT.gguf`: a random model written straight
# to GGUF is the file `moe init` (safetensors, the same seed and --dtype)
# followed by `moe quantize --type T` (`moe convert` without --type) writes:
# the same bytes, so the same logits. Checked on every architecture's tiny
# preset (q8_0, q4_k: their rows of 64 fall back to Q8_0 there), on shrunk
# real shapes whose rows suit the K-quants (qwen3-30b-a3b: q4_k with the
# _M rules' Q6_K output and ffn_down, q4_0; qwen3-next / qwen3.5: the Gated DeltaNet's
# row maps and tiled value heads; tiny-deepseek-v3: attn_k_b and attn_v_b out
# of kv_b_proj, exp_probs_b), gpt-oss's MXFP4 and float fused experts, any
# thread count. Memory: writing a 245 MB Q8_0 file peaks under 64 MiB
# of resident memory (it streams; `moe quantize` of the same model maps its
# 440 MB of BF16). The full 48-layer qwen3-30b-a3b Q8_0 is priced by
# --dry-run (about 32.5 GB). Errors: an unknown --type lists the valid
# ones, --type needs OUT.gguf, OUT exists without --force, a file that
# cannot fit the disk is refused before anything is written, a failed write
# names the file and leaves nothing behind. Runs in about 15 s on 2 cores.
#   MOE=build/moe sh tests/cli/init_gguf.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-init-gguf.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

. "$HERE/harness.inc"

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

# same_bytes NAME TYPE INIT-ARGS...: `moe init ARGS DIR` + `moe quantize
# --type TYPE` (none: `moe convert`) against `moe init ARGS --type TYPE
# m.gguf`. The directory is named m, as the GGUF's stem, since both name the
# file after it (general.name).
same_bytes() {
  name=$1; type=$2; shift 2
  rm -rf "$T/d" "$T/m" "$T/q.gguf" "$T/m.gguf"
  mkdir -p "$T/d"
  if ! "$MOE" init "$@" "$T/d/m" >"$T/out" 2>"$T/err"; then bad "$name: init dir: $(head -c 300 "$T/err")"; return; fi
  if [ "$type" = none ]; then
    "$MOE" convert "$T/d/m" "$T/q.gguf" >"$T/out" 2>"$T/err"
  else
    "$MOE" quantize "$T/d/m" "$T/q.gguf" --type "$type" >"$T/out" 2>"$T/err"
  fi || { bad "$name: quantize: $(head -c 300 "$T/err")"; return; }
  [ "$type" = none ] || set -- "$@" --type "$type"
  if ! "$MOE" init "$@" "$T/m.gguf" >"$T/out" 2>"$T/err"; then bad "$name: init gguf: $(head -c 300 "$T/err")"; return; fi
  if cmp -s "$T/q.gguf" "$T/m.gguf"; then ok; else bad "$name: the files differ: $(cmp "$T/q.gguf" "$T/m.gguf" 2>&1 | head -c 200)"; fi
}

# same_logits NAME: the last pair's logits (their bytes equal, this holds
# too; it is the property a user relies on)
IDS=1,5,17,3,99,42,7,0,127,64
same_logits() {
  if "$MOE" logits "$T/q.gguf" --ids $IDS -o "$T/la" 2>"$T/err" && "$MOE" logits "$T/m.gguf" --ids $IDS -o "$T/lb" 2>>"$T/err" &&
     [ -s "$T/la" ] && cmp -s "$T/la" "$T/lb"; then ok; else bad "$1: logits differ ($(head -c 200 "$T/err"))"; fi
}

# ------------------------------------------------------------------- help
expect_ok "init --help" "$MOE" init --help
out_has "help: --type" "^  --type T"
out_has "help: OUT.gguf" "OUT\|OUT.gguf|OUT.gguf"
out_has "help: the same bytes as moe quantize" "moe quantize --type T"

# ------------------------------------------- the same file as moe quantize
for p in tiny tiny-olmoe tiny-qwen3 tiny-qwen2 tiny-gpt-oss tiny-deepseek-v3; do
  for t in q8_0 q4_k; do same_bytes "$p $t" $t --preset $p; done
done
same_logits "tiny-gpt-oss q4_k"
same_bytes "tiny-qwen2 as stored (moe convert)" none --preset tiny-qwen2
same_bytes "tiny-qwen3 --dtype f32 q8_0" q8_0 --preset tiny-qwen3 --dtype f32 --seed 5 --std 0.1
same_bytes "tiny-gpt-oss mxfp4" mxfp4 --preset tiny-gpt-oss
same_bytes "tiny-gpt-oss float experts q8_0" q8_0 --preset tiny-gpt-oss --expert-type float
same_bytes "tiny-gpt-oss float experts mxfp4" mxfp4 --preset tiny-gpt-oss --expert-type float
same_logits "tiny-gpt-oss float experts mxfp4"
Q3="--preset qwen3-30b-a3b --layers 1 --experts 2 --vocab 512"
for t in q4_k q4_0; do same_bytes "qwen3-30b-a3b shrunk $t" $t $Q3; done
same_logits "qwen3-30b-a3b shrunk q4_0"
mkdir -p "$T/t1" "$T/t3"
"$MOE" init $Q3 --type q4_0 "$T/t1/k.gguf" -t 1 >/dev/null 2>&1
"$MOE" init $Q3 --type q4_0 "$T/t3/k.gguf" -t 3 >/dev/null 2>&1
if [ -s "$T/t1/k.gguf" ] && cmp -s "$T/t1/k.gguf" "$T/t3/k.gguf"; then ok; else bad "-t 1 and -t 3 write different files"; fi
rm -rf "$T/t1" "$T/t3"
for p in qwen3-next-80b-a3b qwen3.5-35b-a3b; do
  same_bytes "$p shrunk q8_0" q8_0 --preset $p --layers 1 --experts 2 --vocab 512
done
same_logits "qwen3.5-35b-a3b shrunk q8_0"
# deepseek2: attn_k_b / attn_v_b out of kv_b_proj (glm4moe: test_quantize_ds.c)
same_bytes "tiny-deepseek-v3 as stored (moe convert)" none --preset tiny-deepseek-v3
same_logits "tiny-deepseek-v3 as stored"

# ------------------------------------------------------------ bounded memory
# 4 layers of qwen3-30b-a3b with 8 experts: 230 M parameters, 245 MB Q8_0
# (the BF16 safetensors would be 460 MB); resident memory stays under 64 MiB
rss_kb() { # CMD...: peak RSS of CMD in KiB (stdout/stderr to $T/out, $T/err)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v "$@" >"$T/out" 2>"$T/err" || return 1
    sed -n 's/.*Maximum resident set size (kbytes): *//p' "$T/err"
  else # poll the high-water mark while it runs
    "$@" >"$T/out" 2>"$T/err" &
    pid=$! hwm=0
    while kill -0 $pid 2>/dev/null; do
      h=$(sed -n 's/^VmHWM: *\([0-9]*\).*/\1/p' /proc/$pid/status 2>/dev/null)
      [ -n "$h" ] && hwm=$h
      sleep 0.05
    done
    wait $pid || return 1
    echo $hwm
  fi
}
kb=$(rss_kb "$MOE" init --preset qwen3-30b-a3b --layers 4 --experts 8 --vocab 512 --type q8_0 "$T/big.gguf")
size=$(wc -c <"$T/big.gguf" 2>/dev/null || echo 0)
if [ -n "$kb" ] && [ "$size" -gt 200000000 ] && [ "$kb" -lt 65536 ]; then ok
else bad "memory: peak RSS ${kb:-?} KiB for a $size-byte file (want < 65536 KiB): $(head -c 300 "$T/err")"; fi
rm -f "$T/big.gguf"

# --------------------------------------------------------- the full shape
expect_ok "dry run: qwen3-30b-a3b q8_0" "$MOE" init --preset qwen3-30b-a3b --type q8_0 --dry-run "$T/full.gguf"
bytes=$(sed -n 's/.*(\([0-9]*\) bytes of tensor data).*/\1/p' "$T/out")
if [ -n "$bytes" ] && [ "$bytes" -gt 32000000000 ] && [ "$bytes" -lt 33000000000 ]; then ok
else bad "dry run: $bytes bytes (want about 32.5 GB): $(cat "$T/out")"; fi
out_has "dry run: 48 layers" "48 layers, 579 tensors"
[ -e "$T/full.gguf" ] && bad "dry run wrote a file" || ok

# ------------------------------------------------------------------ errors
expect_fail "bad --type" 2 "--type: 'tq2_0' is not one of q8_0, q6_k, q5_k, q5_1, q5_0, q4_k, q4_1, q4_0, iq4_xs, iq4_nl, q3_k, q2_k, mxfp4, f32, f16, bf16" \
  "$MOE" init --preset tiny --type tq2_0 "$T/x.gguf"
expect_fail "--type without .gguf" 2 "OUT must end in .gguf" "$MOE" init --preset tiny --type q8_0 "$T/x"
[ -e "$T/x" ] && bad "--type without .gguf created $T/x" || ok
: >"$T/exists.gguf"
expect_fail "OUT exists" 1 "exists.gguf already exists \(use --force" "$MOE" init --preset tiny --type q8_0 "$T/exists.gguf"
[ -s "$T/exists.gguf" ] && bad "OUT exists: overwritten" || ok
expect_ok "OUT exists, --force" "$MOE" init --preset tiny --type q8_0 --force "$T/exists.gguf"
# gpt-oss-120b with F32 weights: about 470 GB, more than any test disk holds
expect_fail "no room" 1 "huge.gguf needs [0-9.]+ [GT]iB but only .* is free" \
  "$MOE" init --preset gpt-oss-120b --expert-type float --type f32 "$T/huge.gguf"
ls "$T" | grep -q huge && bad "no room: something was written" || ok
# a write that fails (a file size limit: EFBIG) names the file, leaves nothing
run sh -c "ulimit -f 200; trap '' XFSZ; exec \"\$0\" init --preset tiny-qwen3 --type f32 \"\$1\"" "$MOE" "$T/capped.gguf"
if [ "$rc" -eq 1 ] && grep -q "capped.gguf: write failed (tensor" "$T/err"; then ok
else bad "write error: exit $rc: $(head -c 300 "$T/err")"; fi
ls "$T" | grep -q capped && bad "write error: a file was left behind" || ok

# --embed-std: 0 is the default's bytes, 1 other bytes; out of range refused
mkdir -p "$T/e0" "$T/e1" "$T/e2"
expect_ok "init default" "$MOE" init --preset tiny-qwen3 --type q8_0 "$T/e0/m.gguf"
expect_ok "init --embed-std 0" "$MOE" init --preset tiny-qwen3 --type q8_0 --embed-std 0 "$T/e1/m.gguf"
cmp -s "$T/e0/m.gguf" "$T/e1/m.gguf" && ok || bad "--embed-std 0 is not the default"
expect_ok "init --embed-std 1" "$MOE" init --preset tiny-qwen3 --type q8_0 --embed-std 1 "$T/e2/m.gguf"
cmp -s "$T/e0/m.gguf" "$T/e2/m.gguf" && bad "--embed-std 1 changed nothing" || ok
expect_fail "--embed-std out of range" 2 "--embed-std" "$MOE" init --preset tiny-qwen3 --embed-std -1 "$T/e3"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
