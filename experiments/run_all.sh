#!/usr/bin/env bash
# run_all.sh - every experiment, one after another, then the plots and
# tables: prep, a, b, c, d (b, c, d with seeds 1 and 2), e, plot.py. One
# training thread (THREADS=1); 36 runs of 204,800 tokens, 60-80 minutes on
# a 2-core machine shared with other work (docs/RESULTS.md has the measured
# times); a rerun skips finished runs.
# plot.py needs matplotlib (`python3 -m pip install matplotlib==3.11.2`,
# tools/README.md; PYTHON names the interpreter, python3 by default).
#
#   BUILD=build nohup experiments/run_all.sh > build/experiments.log 2>&1 &
#   SEEDS=1 ...        b, c and d with seed 1 only: 20 runs instead of 36
#   RESULTS_DIR=dir    where plot.py writes (default docs/results)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
START=$SECONDS
for s in prep a_moe_vs_dense b_experts_scaling c_routing_ablation d_capacity e_specialization; do
    printf '\n==== %s (%d s so far)\n' "$s" $((SECONDS - START))
    SEEDS=${SEEDS:-1 2} bash "experiments/$s.sh"
done
printf '\n==== plot (%d s so far)\n' $((SECONDS - START))
"${PYTHON:-python3}" experiments/plot.py --exp-dir "${EXP_DIR:-$BUILD/experiments}" --out "${RESULTS_DIR:-docs/results}"
printf '\n==== all done in %d s\n' $((SECONDS - START))
