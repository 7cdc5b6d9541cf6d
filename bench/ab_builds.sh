#!/bin/sh
# ab_builds.sh - two moe binaries on the same files, in alternating rounds
# (round r runs A then B on every file, round r+1 B then A), so a machine
# whose speed drifts treats both alike. Each run is one JSON line (`moe
# bench --json`) tagged with its binary, file and round; the medians per
# (file, binary) and B over A follow: the ratio of the medians and the
# median of the rounds' own ratios (each round's B over its A, which a slow
# drift of the machine moves less).
#
# A run whose int8 probe (measured by `moe bench` in the same run) reads
# under RETAKE (0.75) of the best probe so far was slowed by other load:
# it is logged with "retake": true and run again, up to TRIES (3) times.
#
#   A=/tmp/moe-before B=build/moe FILES="q3-4l-q8_0.gguf olmoe-4l-q4_k.gguf" sh bench/ab_builds.sh
#   ROUNDS=3 THREADS=2 PROMPT=128,512 GEN=0 REPS=3 LOG=out.jsonl ...
#   ARGS="--no-repack" ...     (more `moe bench` options, the same for both)
#   RETAKE=0 ...               (keep every run)
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
RETAKE=${RETAKE:-0.75}
TRIES=${TRIES:-3}
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
      try=1
      while :; do
        # shellcheck disable=SC2086
        "$bin" bench "$f" $ARGS --prompt "$PROMPT" --gen "$GEN" --threads "$THREADS" --reps "$REPS" \
          --probe-mb 256 --json >"$W/out" 2>/dev/null
        # slowed: the probe under RETAKE of the best so far (which this run may raise)
        slow=$(python3 -c 'import json, sys
p = json.load(open(sys.argv[1])).get("int8_peak_gop_s", 0)
try:
    best = float(open(sys.argv[2]).read())
except (OSError, ValueError):
    best = 0
best = max(best, p)
open(sys.argv[2], "w").write(str(best))
print(1 if p < float(sys.argv[3]) * best else 0)' "$W/out" "$W/best" "$RETAKE")
        [ "$try" -ge "$TRIES" ] && slow=0
        retake=false
        [ "$slow" = 1 ] && retake=true
        printf '{"set": "%s", "bin": "%s", "file": "%s", "round": %d, "retake": %s, "bench": %s}\n' \
          "$set" "$bin" "$(basename "$f")" "$r" "$retake" "$(cat "$W/out")" | tee -a "$LOG"
        [ "$slow" = 1 ] || break
        try=$((try + 1))
      done
    done
  done
  r=$((r + 1))
done
python3 - "$LOG" <<'EOF'
import json, statistics, sys
runs = [r for r in map(json.loads, open(sys.argv[1])) if not r.get("retake")]
def rates(r):
    """(measure, tok/s) of one run: each prefill size, then decode."""
    out = [(f"prefill {p['tokens']}", p["tok_s"]) for p in r["bench"]["prefill"]]
    if r["bench"].get("gen", 0) > 0:
        out.append(("decode", r["bench"]["decode_tok_s"]))
    return out
for f in dict.fromkeys(r["file"] for r in runs):
    per = {}  # (set, measure) -> {round: tok/s}
    for r in runs:
        if r["file"] == f:
            for m, v in rates(r):
                per.setdefault((r["set"], m), {})[r["round"]] = v
    measures = list(dict.fromkeys(m for (_, m) in per))
    for s in ("A", "B"):
        print(f"{f} {s}: " + "  ".join(
            f"{m} {statistics.median(v.values()):.1f} ({min(v.values()):.1f}-{max(v.values()):.1f})"
            for m in measures for v in [per.get((s, m), {})] if v))
    out = []
    for m in measures:
        a, b = per.get(("A", m), {}), per.get(("B", m), {})
        if not a or not b:
            continue
        paired = [b[k] / a[k] for k in a if k in b]
        ratio = statistics.median(b.values()) / statistics.median(a.values())
        rounds = f" (rounds {statistics.median(paired):.3f}x, {min(paired):.3f}-{max(paired):.3f})" if paired else ""
        out.append(f"{m} {ratio:.3f}x{rounds}")
    print(f"{f} B / A: " + "  ".join(out))
EOF
