#!/usr/bin/env bash
# routers.sh - the comparison of routers, balancing and dense baselines
# (experiments/arms.sh lists the arms), each arm with its own tuned peak
# learning rate and several seeds, at STEPS (common.sh: 1600 steps,
# 819,200 tokens a run):
#   1. learning-rate sweep: the arm at each of LRS with the tuning seed
#      TUNE_SEED (not one of the reported seeds); while the best is at an
#      end of the points tried, one more point past it (half or twice; at
#      most MAX_EXTEND=3 more);
#   2. the arm at its best learning rate with each of SEEDS;
#   3. for the arms in BUDGET_ARMS, the same at the shorter budgets
#      BUDGETS (steps; each with its own full warmup + cosine schedule), the
#      points of "tokens to reach the dense model's loss".
# Runs are named ARM-lrLR-sSEED (ARM-lrLR-bSTEPS-sSEED for 3) under
# EXP_DIR/runs; finished runs are skipped, so a rerun only does what is
# missing. PAR arms run at once (one thread each by default).
#
#   BUILD=build EXP_DIR=DIR experiments/routers.sh          (after experiments/prep.sh)
#   ARMS="top2 switch" PAR=1 ... experiments/routers.sh
#   then: python3 experiments/report.py pack --exp-dir DIR && python3 experiments/report.py render
cd "$(dirname "$0")/.."
. experiments/common.sh
. experiments/arms.sh
need_prep
LRS=${LRS:-5e-4 1e-3 2e-3}
TUNE_SEED=${TUNE_SEED:-11}
SEEDS=${SEEDS:-1 2 3 4 5}
BUDGET_ARMS=${BUDGET_ARMS:-top2}
BUDGETS=${BUDGETS:-800 1200}
PAR=${PAR:-2}

# final_val NAME: the run's last validation loss, or nothing
final_val() {
    grep -o '"val_loss":[0-9.eE+-]*' "$RUNS/$1/log.jsonl" 2>/dev/null | tail -1 | cut -d: -f2
}

# best_lr ARM: the learning rate of LRS (and its extensions) whose tuning
# run ends lowest; the first on a tie
best_lr() {
    local best="" bv="" v lr
    for lr in $(ls "$RUNS" | sed -nE "s/^$1-lr([0-9.e+-]+)-s$TUNE_SEED\$/\\1/p"); do
        v=$(final_val "$1-lr$lr-s$TUNE_SEED")
        [ -n "$v" ] || continue
        if [ -z "$bv" ] || awk -v a="$v" -v b="$bv" 'BEGIN { exit !(a < b) }'; then
            best=$lr bv=$v
        fi
    done
    echo "$best"
}

# arm_chain ARM: steps 1-3 for one arm
arm_chain() {
    local a=$1 lr best lo hi s b
    arm "$a"
    for lr in $LRS; do
        LR=$lr train_run "$a-lr$lr-s$TUNE_SEED" "$ARM_CFG" "$TUNE_SEED" "${ARM_FLAGS[@]}"
    done
    # extend the grid past whichever end wins, until the best has a neighbour
    # on both sides (at most MAX_EXTEND more points)
    local tried k
    for k in $(seq 1 "${MAX_EXTEND:-3}"); do
        best=$(best_lr "$a")
        [ -n "$best" ] || { echo "[$a] no tuning run finished; skipped"; return 0; }
        tried=$(ls "$RUNS" | sed -nE "s/^$a-lr([0-9.e+-]+)-s$TUNE_SEED\$/\1/p" | sort -g)
        lo=$(echo "$tried" | head -1) hi=$(echo "$tried" | tail -1)
        if [ "$best" = "$lo" ]; then
            lr=$(awk -v x="$lo" 'BEGIN { printf "%g", x / 2 }')
        elif [ "$best" = "$hi" ]; then
            lr=$(awk -v x="$hi" 'BEGIN { printf "%g", x * 2 }')
        else
            break
        fi
        LR=$lr train_run "$a-lr$lr-s$TUNE_SEED" "$ARM_CFG" "$TUNE_SEED" "${ARM_FLAGS[@]}"
    done
    best=$(best_lr "$a")
    echo "[$a] learning rate $best (tuning seed $TUNE_SEED)"
    for s in $SEEDS; do
        LR=$best train_run "$a-lr$best-s$s" "$ARM_CFG" "$s" "${ARM_FLAGS[@]}"
    done
    case " $BUDGET_ARMS " in *" $a "*) ;; *) return 0 ;; esac
    for b in $BUDGETS; do
        for s in $SEEDS; do
            STEPS=$b LR=$best train_run "$a-lr$best-b$b-s$s" "$ARM_CFG" "$s" "${ARM_FLAGS[@]}"
        done
    done
}

if [ "${1:-}" = --arm ]; then
    arm_chain "$2"
    exit 0
fi
for a in ${ARMS:-$ARMS_ALL}; do arm "$a"; done # unknown names fail here, before any run
for a in ${ARMS:-$ARMS_ALL}; do echo "$a"; done | xargs -P "$PAR" -I{} bash experiments/routers.sh --arm {}
