#!/usr/bin/env bash
# step_time.sh - the training step time of each arm (experiments/arms.sh),
# for turning steps into wall-clock: ROUNDS rounds, every arm once a round
# in turn (so a change in the machine's load falls on all arms alike), each
# a fresh `moe train` of STEPS_T steps with one thread and no evaluation;
# the median tokens/s of its steps after the first 10 is one measurement.
# Appends one JSON line per measurement to OUT (docs/results/step_time.jsonl).
#
#   BUILD=build EXP_DIR=DIR experiments/step_time.sh     (after experiments/prep.sh)
cd "$(dirname "$0")/.."
. experiments/common.sh
. experiments/arms.sh
need_prep
ROUNDS=${ROUNDS:-5}
FIRST=${FIRST:-1}            # the first round's number (more rounds appended to OUT later)
STEPS_T=${STEPS_T:-60}
OUT=${OUT:-docs/results/step_time.jsonl}
TMP=$EXP_DIR/step_time
commit=${BUILD_ID:-$(git rev-parse --short=12 HEAD)}
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
for r in $(seq "$FIRST" $((FIRST + ROUNDS - 1))); do
    for a in ${ARMS:-$ARMS_ALL}; do
        arm "$a"
        rm -rf "$TMP"
        load=$(cut -d' ' -f1 /proc/loadavg)
        "$MOE" train --config "$ARM_CFG" --data "$DATA" --out "$TMP" --steps "$STEPS_T" --batch "$BATCH" \
            --seq "$SEQ" --eval-every 0 --eval-batches 1 --save-every 0 --threads 1 --seed 1 -q \
            "${ARM_FLAGS[@]}" >/dev/null 2>"$TMP.err" || { echo "[$a] failed: $(tail -1 "$TMP.err")"; continue; }
        med=$(python3 -c 'import json,statistics,sys
xs=[json.loads(l)["tokens_per_s"] for l in open(sys.argv[1]) if l.strip()][10:]
print(statistics.median(xs))' "$TMP/log.jsonl")
        printf '{"round": %d, "arm": "%s", "tokens_per_s": %s, "steps": %d, "batch": %d, "seq": %d, "threads": 1, "load": %s, "build": "%s", "cpu": "%s"}\n' \
            "$r" "$a" "$med" "$STEPS_T" "$BATCH" "$SEQ" "$load" "$commit" "$cpu" >>"$OUT"
        echo "round $r $a: $med tokens/s (load $load)"
    done
done
rm -rf "$TMP" "$TMP.err"
