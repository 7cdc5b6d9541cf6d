#!/bin/sh
# block_peak.sh - what bounds quantized prefill on AMX: the tile unit's int8
# peak against the "block peak" (AMX on weights with a scale per 32-block,
# whose AVX-512 scaling bounds it; both probed by `moe bench --probe-only`),
# the AMX kernel alone on one OLMoE-shaped MoE layer (bench/quant_bench.c,
# cold expert weights, 128 / 512 / 2048 tokens), and whole-model prefill of
# FILE as a share of each peak. Prints everything; docs/PERF.md quotes a log
# of it.
#
#   make all bench-quant && sh bench/block_peak.sh FILE.gguf [THREADS] > LOG
set -e
FILE=${1:?usage: block_peak.sh FILE.gguf [THREADS]}
THREADS=${2:-2}
BUILD=${BUILD:-build}
date -u '+%Y-%m-%dT%H:%M:%SZ'
grep -m1 'model name' /proc/cpuinfo || true
for t in 1 "$THREADS"; do
    echo "== probes, $t threads"
    "$BUILD/moe" bench --probe-only --threads "$t"
done
echo "== one MoE layer (64 experts [1024][2048], top-8), 1 thread"
for n in 128 512 2048; do "$BUILD/quant_bench" 1 moe "$n" | grep 'MoE prefill layer'; done
echo "== $FILE, $THREADS threads"
"$BUILD/moe" bench "$FILE" --prompt 128,512 --gen 0 --reps 3 --threads "$THREADS"
"$BUILD/moe" bench --probe-only --threads "$THREADS"
