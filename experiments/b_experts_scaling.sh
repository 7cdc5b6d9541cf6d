#!/usr/bin/env bash
# b_experts_scaling.sh - experiment b: number of experts E = 1 (the dense
# model of 512: one "expert" as wide as k experts), 4, 8, 16, 32, at top-2
# and expert width 256, so every model has the same active FFN width (512)
# and the same compute per token; total FFN parameters grow with E.
# Validation every 50 steps. E = 1 and 8 are experiment a's runs. Seeds:
# SEEDS (default 1; run_all.sh uses "1 2"), ~7 minutes a seed.
#
#   BUILD=build experiments/b_experts_scaling.sh   (after experiments/prep.sh)
#   BUILD=build SEEDS="1 2" experiments/b_experts_scaling.sh
cd "$(dirname "$0")/.."
. experiments/common.sh
need_prep
for s in ${SEEDS:-1}; do
    run_dense "$s"
    run_base "$s"
    for E in 4 16 32; do
        config_mixtral "$EXP_DIR/cfg/e${E}k2.json" "$E" 2 256
        EVERY=50 train_run "e${E}k2-s$s" "$EXP_DIR/cfg/e${E}k2.json" "$s" --aux 0.01 --z 0.001
    done
done
