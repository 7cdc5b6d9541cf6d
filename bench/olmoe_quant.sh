#!/bin/sh
# olmoe_quant.sh - prefill and decode speed of quantized GGUF models of the
# OLMoE-1B-7B shape (dim 2048, 16 heads, 64 experts top-8, expert FFN 1024,
# vocab 50304; 4 of its 16 layers, random weights), 2 threads, as tokens/s and
# as ratios to this machine's limits measured in the same run (`moe bench`:
# read bandwidth for decode, f32 FMA peak for prefill).
#
#   make bench-olmoe-q                      (the same, after building)
#   BUILD=build sh bench/olmoe_quant.sh
#   DIR=/tmp/olmoe ROUNDS=5 TYPES="q8_0 q4_0" THREADS=2 sh bench/olmoe_quant.sh
#   MOE_AMX=0 sh bench/olmoe_quant.sh       prefill on AVX-512 VNNI instead of AMX
#
# Makes DIR/olmoe-1b-7b-4l (`moe init`, 3.5 GiB BF16) and its GGUF files
# (`moe quantize --type T`, llama-quantize's rules: 2.0 GB Q8_0, 1.1 GB Q4_0
# with a Q6_K output matrix) once, then ROUNDS rounds that each run `moe bench
# --prompt 128 --gen 32 --probe-each` once per type (alternating, so a burst of
# other load hits every type alike; each rep's decode is compared with the
# bandwidth probed right before and after it). Prints every run, then per type
# the median and the best round. Other processes on the machine lower the
# figures a lot: compare runs made at the same time, and trust an idle machine.
set -e
BUILD=${BUILD:-build}
MOE=${MOE:-$BUILD/moe}
DIR=${DIR:-$BUILD/bench-olmoe}
ROUNDS=${ROUNDS:-3}
TYPES=${TYPES:-"q8_0 q4_0"}
THREADS=${THREADS:-2}
BASE=$DIR/olmoe-1b-7b-4l

[ -x "$MOE" ] || { echo "olmoe_quant.sh: $MOE not found (make first, or set BUILD/MOE)" >&2; exit 1; }
mkdir -p "$DIR"
[ -f "$BASE/model.safetensors" ] || "$MOE" init --preset olmoe-1b-7b --layers 4 "$BASE"
for t in $TYPES; do
    [ -f "$BASE-$t.gguf" ] || "$MOE" quantize "$BASE" "$BASE-$t.gguf" --type "$t" --threads "$THREADS"
done
"$MOE" info "$BASE-$(echo $TYPES | cut -d' ' -f1).gguf" | sed -n '1,9p'

# one JSON field of moe bench --json
field() { echo "$1" | sed -n "s/.*\"$2\": \([-0-9.e+]*\).*/\1/p"; }

RES=$(mktemp)
trap 'rm -f "$RES"' EXIT
printf '\n%-5s %5s %10s %10s %11s %10s %10s %9s %7s\n' type round "prefill/s" "pre GF/s" "f32 peak" "decode/s" "dec GB/s" "read BW" ratio
for r in $(seq "$ROUNDS"); do
    for t in $TYPES; do
        j=$("$MOE" bench "$BASE-$t.gguf" --prompt 128 --gen 32 --threads "$THREADS" --reps 3 --probe-each --json)
        pt=$(field "$j" prefill_tok_s); pg=$(field "$j" prefill_gflop_s); pk=$(field "$j" peak_gflop_s)
        dt=$(field "$j" decode_tok_s); dg=$(field "$j" decode_gb_s); bw=$(field "$j" bandwidth_gb_s)
        fr=$(field "$j" decode_frac_bandwidth)
        printf '%-5s %5d %10.1f %10.1f %11.1f %10.2f %10.2f %9.2f %6.1f%%\n' "$t" "$r" "$pt" "$pg" "$pk" "$dt" "$dg" \
            "$bw" "$(echo "$fr" | awk '{print 100 * $1}')"
        echo "$t $pt $dt $fr" >>"$RES"
    done
done
printf '\n%-5s %22s %22s %22s\n' type "prefill tok/s med/best" "decode tok/s med/best" "decode/bandwidth med"
for t in $TYPES; do
    awk -v t="$t" 'BEGIN { n = 0 } $1 == t { p[n] = $2; d[n] = $3; f[n] = $4; n++ }
        function med(a, n,   i, j, x) { for (i = 1; i < n; i++) for (j = i; j > 0 && a[j-1] > a[j]; j--) { x = a[j]; a[j] = a[j-1]; a[j-1] = x }
                                      return n % 2 ? a[int(n/2)] : (a[n/2-1] + a[n/2]) / 2 }
        END { printf "%-5s %11.1f / %8.1f %11.2f / %8.2f %21.1f%%\n", t, med(p, n), p[n-1], med(d, n), d[n-1], 100 * med(f, n) }' "$RES"
done
