#!/usr/bin/env bash
# study.sh - the expert cache on a model with learned routing: hit rate,
# bytes read per token and router-prediction accuracy when only 25% or 10%
# of the routed experts' bytes fit in memory, for each eviction policy and
# prefetch depth, measured as decoding runs (`moe ppl --chunk 1`: one token
# per forward call). Every row must have the same perplexity as the model
# with all its weights resident (the cache changes where weights come from,
# never the result); the script fails when one does not.
#
#   experiments/cache/study.sh
#   MODEL=dir|file.gguf    default /work/bench/cache-model (experiments/cache/train.sh)
#   BUILD=build            where moe is built
#   EXP_DIR=dir            prepared data (experiments/prep.sh); the text is the
#                          first TOKENS tokens of EXP_DIR/data-eval/val.bin:
#                          held-out documents, in windows of 128 tokens shuffled
#                          across the five domains
#   TEXT=file              score this text instead (MODEL's tokenizer)
#   TOKENS=3072 CTX=512    tokens scored, window length
#   BUDGETS="25 10"        budgets, % of the routed experts' bytes
#   POLICIES="lru lfu history"  PREFETCH="0 1 2"
#   THREADS=1
#   OUT=dir                default BUILD/experiments/cache-study: study.jsonl
#                          (one line per run: settings + `moe ppl --json`),
#                          study.md (the table), the ids scored, stderr of each run
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
MOE=${MOE:-$BUILD/moe}
MODEL=${MODEL:-/work/bench/cache-model}
EXP_DIR=${EXP_DIR:-$BUILD/experiments}
TOKENS=${TOKENS:-3072}
CTX=${CTX:-512}
BUDGETS=${BUDGETS:-25 10}
POLICIES=${POLICIES:-lru lfu history}
PREFETCH=${PREFETCH:-0 1 2}
THREADS=${THREADS:-1}
OUT=${OUT:-$BUILD/experiments/cache-study}
HERE=experiments/cache

die() {
    echo "study.sh: $*" >&2
    exit 1
}

[ -x "$MOE" ] || die "no $MOE (make, or set BUILD / MOE)"
[ -e "$MODEL" ] || die "no model at $MODEL (experiments/cache/train.sh trains it)"
help=$("$MOE" ppl --help 2>&1) || true
for opt in --chunk --mem --cache-policy --prefetch --json; do
    grep -q -- "^ *$opt " <<<"$help" ||
        die "this moe has no 'moe ppl $opt' (its --help lists no such option): the expert cache is not built in; nothing measured"
done
mkdir -p "$OUT"

# the tokens: ids straight from the shard (the model's own tokenizer made
# them), or --text
if [ -n "${TEXT:-}" ]; then
    INPUT=(--text "$TEXT" --max-tokens "$TOKENS")
    SRC="$TEXT (first $TOKENS tokens)"
else
    VAL=$EXP_DIR/data-eval/val.bin
    [ -f "$VAL" ] || die "no $VAL: run experiments/prep.sh (or set EXP_DIR, or TEXT=file)"
    python3 "$HERE/cachestudy.py" ids "$VAL" "$TOKENS" >"$OUT/ids.txt" ||
        die "cannot read $TOKENS ids from $VAL"
    INPUT=(--ids "$(cat "$OUT/ids.txt")")
    SRC="$VAL (first $TOKENS tokens)"
fi

EXPERT_BYTES=$(python3 "$HERE/cachestudy.py" expert-bytes "$MODEL") ||
    die "cannot measure the routed experts of $MODEL"
[ "$EXPERT_BYTES" -gt 0 ] || die "$MODEL has no routed-expert tensors"
echo "model $MODEL: routed experts $EXPERT_BYTES bytes; text $SRC; $THREADS thread(s)"

LOG=$OUT/study.jsonl
: >"$LOG"
# run LABEL PCT MEM POLICY PREFETCH [moe ppl options...]: one `moe ppl`,
# its JSON wrapped with the settings into one line of the log
run() {
    local label=$1 pct=$2 mem=$3 pol=$4 pf=$5
    shift 5
    local t0 t1 json
    t0=$(date +%s.%N)
    json=$("$MOE" ppl "$MODEL" "${INPUT[@]}" --ctx "$CTX" --chunk 1 --threads "$THREADS" --json "$@" \
        2>"$OUT/$label.err") || die "$label: moe ppl failed: $(tail -3 "$OUT/$label.err")"
    t1=$(date +%s.%N)
    [ "$pct" = null ] || grep -q '"cache"' <<<"$json" ||
        die "$label: 'moe ppl --json' printed no \"cache\" statistics: $json"
    printf '{"label": "%s", "model": "%s", "expert_bytes": %s, "budget_pct": %s, "mem": %s, "policy": %s, "prefetch": %s, "threads": %s, "wall_s": %s, "ppl": %s}\n' \
        "$label" "$MODEL" "$EXPERT_BYTES" "$pct" "$mem" "$pol" "$pf" "$THREADS" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" "$json" >>"$LOG"
    printf '%-22s %s\n' "$label" "$(sed -nE 's/.*"perplexity": ([0-9.]+).*/ppl \1/p' <<<"$json" | head -1)"
}

run resident null null null null
for pct in $BUDGETS; do
    mem=$((EXPERT_BYTES * pct / 100))
    for pol in $POLICIES; do
        for pf in $PREFETCH; do
            run "b$pct-$pol-p$pf" "$pct" "$mem" "\"$pol\"" "$pf" \
                --mem "$mem" --cache-policy "$pol" --prefetch "$pf"
        done
    done
done

python3 "$HERE/cachestudy.py" table "$LOG" "$OUT/study.md" ||
    die "the table lists errors: $OUT/study.md"
cat "$OUT/study.md"
echo "log: $LOG; table: $OUT/study.md"
