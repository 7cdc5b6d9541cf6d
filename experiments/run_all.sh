#!/usr/bin/env bash
# run_all.sh - the experiments of docs/RESULTS.md from scratch, or the
# document from the committed logs.
#
#   experiments/run_all.sh --from-logs [--check]
#       rebuild docs/RESULTS.md (every table and number) from the run logs
#       committed under docs/results/runs/ (seconds, standard library
#       only), and the figures when matplotlib is installed; with --check,
#       change nothing and fail when the document and the logs disagree
#       (the test suite runs this)
#   BUILD=build EXP_DIR=DIR nohup experiments/run_all.sh > DIR.log 2>&1 &
#       prepare the data (experiments/prep.sh), train every run of
#       experiments/routers.sh (learning-rate sweeps, 5 seeds an arm, the
#       shorter budgets; finished runs are skipped, so it resumes), pack
#       their logs into docs/results/runs/, measure specialization
#       (experiments/specialize.py: needs torch, transformers, numpy) and
#       step times (experiments/step_time.sh), grow and adapt trained
#       models (experiments/grow.sh, packed into docs/results/runs-grow/),
#       and rebuild the document.
#       About 90 runs of 819,200 tokens; 4-8 minutes each with one thread
#       on a 2-core machine, two at a time (PAR=2): 3-6 hours.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${1:-}" = --from-logs ]; then
    if [ "${2:-}" = --check ]; then
        exec "$PY" experiments/report.py render --check
    fi
    "$PY" experiments/report.py render
    if "$PY" -c 'import matplotlib' 2>/dev/null; then
        "$PY" experiments/report.py plots
    else
        echo "matplotlib not installed: figures not redrawn (python3 -m pip install matplotlib==3.11.2)"
    fi
    exit 0
fi
BUILD=${BUILD:-build}
export BUILD
EXP_DIR=${EXP_DIR:-$BUILD/experiments}
export EXP_DIR
START=$SECONDS
printf '==== prep\n'
bash experiments/prep.sh
printf '\n==== routers and baselines (%d s so far)\n' $((SECONDS - START))
bash experiments/routers.sh
printf '\n==== pack and render (%d s so far)\n' $((SECONDS - START))
"$PY" experiments/report.py pack --exp-dir "$EXP_DIR"
printf '\n==== specialization (%d s so far)\n' $((SECONDS - START))
# shellcheck disable=SC2046
"$PY" experiments/specialize.py $("$PY" experiments/report.py tuned top2 fgshared --exp-dir "$EXP_DIR") \
    --data "$EXP_DIR/prep/data" --moe "$BUILD/moe" --boot 200 --out docs/results/specialization.json
printf '\n==== growing and adapting (%d s so far)\n' $((SECONDS - START))
mkdir -p "$EXP_DIR/grow/runs"
for s in 1 2 3; do # the dense arm's runs are grow.sh's starting points
    d=$EXP_DIR/runs/dense-lr1e-3-s$s
    [ -e "$EXP_DIR/grow/runs/${d##*/}" ] || [ ! -d "$d" ] || cp -r "$d" "$EXP_DIR/grow/runs/"
done
ln -sfn "$(cd "$EXP_DIR" && pwd)/prep" "$EXP_DIR/grow/prep"
ln -sfn "$(cd "$EXP_DIR" && pwd)/data-eval" "$EXP_DIR/grow/data-eval"
EXP_DIR=$EXP_DIR/grow bash experiments/grow.sh
"$PY" experiments/report.py pack --exp-dir "$EXP_DIR/grow" --runs docs/results/runs-grow
printf '\n==== step times (%d s so far)\n' $((SECONDS - START))
rm -f docs/results/step_time.jsonl
ROUNDS=7 bash experiments/step_time.sh
bash experiments/run_all.sh --from-logs
printf '\n==== all done in %d s\n' $((SECONDS - START))
