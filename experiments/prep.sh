#!/usr/bin/env bash
# prep.sh - the data every experiment trains on, made once: the `make demo`
# corpus (five domains from Debian packages, docs/DATA.md), its 4096-id BPE
# tokenizer and token shards with domains (tools/demo.sh prep), then an
# evaluation copy of the shards whose val.bin windows are shuffled across
# domains (experiments/mix_val.py; `moe train` evaluates on a prefix of
# val.bin). About a minute on 2 cores, apt included when packages are missing.
# Skipped when the data is there already (FORCE=1 redoes it).
#
#   BUILD=build EXP_DIR=build/experiments experiments/prep.sh
# With CORPUS=dir the experiments use the larger corpus instead, and this
# builds it there (experiments/corpus.sh; skipped when built already).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ -n "${CORPUS:-}" ]; then
    CORPUS_DIR=$CORPUS exec bash experiments/corpus.sh
fi
EXP_DIR=${EXP_DIR:-$BUILD/experiments}
mkdir -p "$EXP_DIR"
if [ "${FORCE:-0}" != 1 ] && [ -x "$BUILD/moe" ] && [ -f "$EXP_DIR/data-eval/val.bin" ] &&
    [ -f "$EXP_DIR/prep/tok/tokenizer.json" ]; then
    echo "prepared already: $EXP_DIR/prep, $EXP_DIR/data-eval (FORCE=1 to redo)"
    exit 0
fi
BUILD=$BUILD DEMO_DIR=$EXP_DIR/prep bash tools/demo.sh prep
python3 experiments/mix_val.py "$EXP_DIR/prep/data" "$EXP_DIR/data-eval" 128
