#!/bin/sh
# ab_args.sh - one moe binary, two sets of `moe bench` options on the same
# file, in alternating rounds (A, B, A, B, ...), so a machine whose speed
# drifts treats both alike. Each run is one JSON line (`moe bench --json`)
# tagged with its set and round; the medians per set follow.
#
#   FILE=q3-4l-q8_0.gguf A="" B="--kernels avx2" sh bench/ab_args.sh
#   ROUNDS=4 THREADS=2 PROMPT=128,512 GEN=64 REPS=3 MOE=build/moe ...
set -e
MOE=${MOE:-build/moe}
FILE=${FILE:?set FILE to a model}
A=${A-}
B=${B:?set B to the options of the second set}
ROUNDS=${ROUNDS:-4}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-128,512}
GEN=${GEN:-64}
REPS=${REPS:-3}
W=$(mktemp -d "${TMPDIR:-/tmp}/moe-ab.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM
r=0
while [ "$r" -lt "$ROUNDS" ]; do
  for set in A B; do
    if [ "$set" = A ]; then opts=$A; else opts=$B; fi
    # shellcheck disable=SC2086
    "$MOE" bench "$FILE" $opts --prompt "$PROMPT" --gen "$GEN" --threads "$THREADS" --reps "$REPS" \
      --probe-mb 256 --json >"$W/out" 2>/dev/null
    printf '{"set": "%s", "opts": "%s", "round": %d, "bench": %s}\n' "$set" "$opts" "$r" "$(cat "$W/out")" |
      tee -a "$W/all"
  done
  r=$((r + 1))
done
python3 - "$W/all" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
for s in ("A", "B"):
    rs = [r for r in runs if r["set"] == s]
    if not rs:
        continue
    pp = {}
    for r in rs:
        for p in r["bench"]["prefill"]:
            pp.setdefault(p["tokens"], []).append(p["tok_s"])
    dec = [r["bench"]["decode_tok_s"] for r in rs]
    bw = [r["bench"]["bandwidth_gb_s"] for r in rs]
    print(f'{s} "{rs[0]["opts"]}": ' + "  ".join(f"prefill {n} {statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"
          for n, v in sorted(pp.items())) +
          f"  decode {statistics.median(dec):.1f} ({min(dec):.1f}-{max(dec):.1f})  bandwidth {min(bw):.1f}-{max(bw):.1f} GB/s")
EOF
