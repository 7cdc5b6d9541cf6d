#!/bin/sh
# ab_expert_rows.sh - one expert-shaped product (bench/expert_rows.c) timed
# by two builds in alternating runs, each type ROUNDS times per build; the
# best time of all a build's runs is kept (on a machine other jobs share,
# the best is the run they slowed least), and A over B.
#
#   A=/tmp/before/build B=build TYPES="q4_0 q2_K" sh bench/ab_expert_rows.sh
#   N=1 COPIES=8 ROUNDS=12 REPS=41 ARGS="768 2048 1" ...
set -e
A=${A:?set A to the first build directory (with expert_rows)}
B=${B:-build}
TYPES=${TYPES:?set TYPES to ggml type names}
N=${N:-1}
COPIES=${COPIES:-8}
ROUNDS=${ROUNDS:-12}
REPS=${REPS:-41}
ARGS=${ARGS-}
best() { "$1/expert_rows" "$2" "$N" "$COPIES" $ARGS --reps "$REPS" 2>&1 | tail -1 | sed -n 's/.*best \([0-9.]*\).*/\1/p'; }
echo "# expert_rows TYPE $N $COPIES $ARGS --reps $REPS, $ROUNDS alternating runs a build, best us; A=$A B=$B"
for t in $TYPES; do
  a=1e30 b=1e30 i=0
  while [ "$i" -lt "$ROUNDS" ]; do
    a=$(printf '%s %s\n' "$(best "$A" "$t")" "$a" | awk '{print ($1 < $2) ? $1 : $2}')
    b=$(printf '%s %s\n' "$(best "$B" "$t")" "$b" | awk '{print ($1 < $2) ? $1 : $2}')
    i=$((i + 1))
  done
  printf '%s A %s B %s A/B %s\n' "$t" "$a" "$b" "$(printf '%s %s\n' "$a" "$b" | awk '{printf "%.2fx", $1 / $2}')"
done
