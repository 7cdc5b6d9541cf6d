#!/bin/sh
# before_after.sh - two builds of moe side by side on the same files, in
# alternating rounds: inference (`moe bench`, prefill 128 and decode 32, on
# quantized GGUF files of the OLMoE-1B-7B shape, 4 layers) and training
# (`moe train`, the model of bench/train_bench.sh, tokens/s of the timed
# steps). Each round probes the machine first (`moe bench --probe-only`:
# read bandwidth and f32 peak), so a round is compared with its own limits.
#
#   A=/path/moe-before B=build/moe sh bench/before_after.sh
#   DIR=/tmp/olmoe TYPES="q8_0 q4_0 q4_k" ROUNDS=3 THREADS=2 STEPS=4 ...
#
# DIR/olmoe-1b-7b-4l-TYPE.gguf are made once with B (`moe init` + `moe
# quantize`). Prints one line per run and the median per (binary, type).
set -e
A=${A:?set A to the first moe binary}
B=${B:-build/moe}
DIR=${DIR:-build/bench-olmoe}
TYPES=${TYPES:-"q8_0 q4_0 q4_k"}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
STEPS=${STEPS:-4}
WARMUP=${WARMUP:-2}
BASE=$DIR/olmoe-1b-7b-4l
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/moe-before-after.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM

mkdir -p "$DIR"
for t in $TYPES; do
    if [ ! -f "$BASE-$t.gguf" ]; then
        [ -f "$BASE/model.safetensors" ] || "$B" init --preset olmoe-1b-7b --layers 4 "$BASE"
        "$B" quantize "$BASE" "$BASE-$t.gguf" --type "$t" --threads "$THREADS"
    fi
done
# the training model and data of bench/train_bench.sh (uniform random ids)
sed -n '/^cat >"\$W\/config.json" <<.EOF.$/,/^EOF$/p' "$HERE/train_bench.sh" | sed '1d;$d' >"$W/config.json"
python3 "$HERE/train_torch.py" make-data "$W/data" --vocab 4096 --tokens 300000 >/dev/null

field() { echo "$1" | sed -n "s/.*\"$2\": \([-0-9.e+]*\).*/\1/p"; }
RES=$W/res
printf '%-6s %5s %-6s %10s %10s %9s %9s\n' run round binary "prefill/s" "decode/s" "BW GB/s" "peak GF"
for r in $(seq "$ROUNDS"); do
    p=$("$B" bench --probe-only --threads "$THREADS" --json)
    bw=$(field "$p" bandwidth_gb_s); pk=$(field "$p" peak_gflop_s)
    for t in $TYPES; do
        for which in A B; do
            eval bin=\$$which
            j=$("$bin" bench "$BASE-$t.gguf" --prompt 128 --gen 32 --threads "$THREADS" --reps 1 --json)
            pt=$(field "$j" prefill_tok_s); dt=$(field "$j" decode_tok_s); dg=$(field "$j" decode_gb_s)
            printf '%-6s %5d %-6s %10.1f %10.2f %9.1f %9.1f\n' "$t" "$r" "$which" "$pt" "$dt" "$bw" "$pk"
            echo "$t $which $pt $dt $dg $bw" >>"$RES"
        done
    done
    for which in A B; do
        eval bin=\$$which
        rm -rf "$W/run"
        "$bin" train --data "$W/data" --out "$W/run" --config "$W/config.json" \
            --steps $((WARMUP + STEPS)) --batch 8 --seq 256 --threads "$THREADS" --lr 3e-4 \
            --min-lr 3e-5 --warmup 2 --aux 0.01 --z 0.001 --eval-every 0 --eval-batches 1 \
            --save-every 0 --log "$W/log.jsonl" --quiet >/dev/null
        tps=$(python3 -c "
import json, statistics, sys
rows = [json.loads(l) for l in open('$W/log.jsonl') if l.strip()]
print(statistics.median(x['tokens_per_s'] for x in rows if x['step'] > $WARMUP))")
        rm -f "$W/log.jsonl"
        printf '%-6s %5d %-6s %10s %10.0f %9.1f %9.1f\n' train "$r" "$which" - "$tps" "$bw" "$pk"
        echo "train $which 0 $tps 0 $bw" >>"$RES"
    done
done
echo
python3 - "$RES" "$TYPES" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
med = lambda v: statistics.median(v) if v else float("nan")
print("medians over rounds; B/A: ratio of the medians; decode share: decode GB/s over the round's probed read bandwidth")
print("| run | A prefill tok/s | B prefill tok/s | B/A | A decode tok/s | B decode tok/s | B/A | A decode share | B decode share |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for t in sys.argv[2].split():
    a = [r for r in rows if r[0] == t and r[1] == "A"]
    b = [r for r in rows if r[0] == t and r[1] == "B"]
    pa, pb = med([float(r[2]) for r in a]), med([float(r[2]) for r in b])
    da, db = med([float(r[3]) for r in a]), med([float(r[3]) for r in b])
    sa = med([float(r[4]) / float(r[5]) for r in a])
    sb = med([float(r[4]) / float(r[5]) for r in b])
    print(f"| {t} | {pa:.1f} | {pb:.1f} | {pb/pa:.3f} | {da:.2f} | {db:.2f} | {db/da:.3f} | {100*sa:.1f}% | {100*sb:.1f}% |")
a = [float(r[3]) for r in rows if r[0] == "train" and r[1] == "A"]
b = [float(r[3]) for r in rows if r[0] == "train" and r[1] == "B"]
print(f"| train, tokens/s | | | | {med(a):.0f} | {med(b):.0f} | {med(b)/med(a):.3f} | | |")
PY
