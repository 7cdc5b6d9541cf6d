#!/bin/sh
# ab_builds.sh - two moe binaries on the same files, in alternating rounds
# (round r runs A then B on every file, round r+1 B then A), so a machine
# whose speed drifts treats both alike. Each run is one JSON line (`moe
# bench --json`) tagged with its binary, file and round; the medians per
# (file, binary) and B over A follow.
#
#   A=/tmp/moe-before B=build/moe FILES="q3-4l-q8_0.gguf olmoe-4l-q4_k.gguf" sh bench/ab_builds.sh
#   ROUNDS=3 THREADS=2 PROMPT=128,512 GEN=0 REPS=3 LOG=out.jsonl ...
#   ARGS="--no-repack" ...     (more `moe bench` options, the same for both)
set -e
A=${A:?set A to the first moe binary}
B=${B:-build/moe}
FILES=${FILES:?set FILES to the model files}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-128,512}
GEN=${GEN:-0}
REPS=${REPS:-3}
ARGS=${ARGS-}
W=$(mktemp -d "${TMPDIR:-/tmp}/moe-abb.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM
LOG=${LOG:-$W/all}
r=0
while [ "$r" -lt "$ROUNDS" ]; do
  order="A B"
  [ $((r % 2)) -eq 1 ] && order="B A"
  for f in $FILES; do
    for set in $order; do
      if [ "$set" = A ]; then bin=$A; else bin=$B; fi
      # shellcheck disable=SC2086
      "$bin" bench "$f" $ARGS --prompt "$PROMPT" --gen "$GEN" --threads "$THREADS" --reps "$REPS" \
        --probe-mb 256 --json >"$W/out" 2>/dev/null
      printf '{"set": "%s", "bin": "%s", "file": "%s", "round": %d, "bench": %s}\n' \
        "$set" "$bin" "$(basename "$f")" "$r" "$(cat "$W/out")" | tee -a "$LOG"
    done
  done
  r=$((r + 1))
done
python3 - "$LOG" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for f in dict.fromkeys(r["file"] for r in runs):
    for s in ("A", "B"):
        rs = [r for r in runs if r["file"] == f and r["set"] == s]
        pp = {}
        for r in rs:
            for p in r["bench"]["prefill"]:
                pp.setdefault(p["tokens"], []).append(p["tok_s"])
        med[f, s] = {n: statistics.median(v) for n, v in pp.items()}
        print(f"{f} {s}: " + "  ".join(f"prefill {n} {statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"
                                       for n, v in sorted(pp.items())))
    print(f"{f} B / A: " + "  ".join(f"prefill {n} {med[f, 'B'][n] / med[f, 'A'][n]:.3f}x"
                                     for n in sorted(med[f, "A"]) if n in med[f, "B"]))
EOF
