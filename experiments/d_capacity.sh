#!/usr/bin/env bash
# d_capacity.sh - experiment d: capacity factor sweep on the baseline (8
# experts of 256, top-2, aux + z): capacity C = ceil(F x N x 2 / 8)
# pairs per expert per batch of N = 512 tokens, pairs past it dropped (the
# token keeps its residual), F = 0.5, 1.0, 1.25, 2.0 and dropless (the
# baseline). The training log gives the dropped share; evaluation, like
# all inference in moe, is dropless (moe train evaluates in evaluation
# mode). 4 runs a seed plus the shared baseline, about 4 minutes a seed
# with one thread (201 and 234 s measured on a shared 2-core machine);
# SEEDS (default 1; run_all.sh uses "1 2").
#
#   BUILD=build experiments/d_capacity.sh          (after experiments/prep.sh)
#   BUILD=build SEEDS="1 2" experiments/d_capacity.sh
cd "$(dirname "$0")/.."
. experiments/common.sh
need_prep
for s in ${SEEDS:-1}; do
    run_base "$s"
    for F in 0.5 1.0 1.25 2.0; do
        config_mixtral "$EXP_DIR/cfg/cf$F.json" 8 2 256 "{\"capacity_factor\": $F}"
        train_run "cf$F-s$s" "$EXP_DIR/cfg/cf$F.json" "$s" --aux 0.01 --z 0.001
    done
done
