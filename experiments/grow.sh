#!/usr/bin/env bash
# grow.sh - growing and adapting a trained model, each against the
# alternative a practitioner would use instead, SEEDS seeds each.
#
# upcycling at equal compute. The dense model of experiments/arms.sh
# (`dense`: SwiGLU FFN 512, STEPS steps, LR) is upcycled to 8 experts of 512,
# top-2 (every expert a copy of the dense FFN with noise UP_NOISE, a fresh
# router; `moe train --upcycle`) and trained UP_STEPS more (`up8`). Against
# it, from scratch, with the same total training compute (steps x tokens x
# active FLOPs per token, counted as 6 x the active matmul weights:
# attention, the k active experts, router, output head): the same 8 x 512
# top-2 MoE (`e8w512`), and the dense model trained longer (`dlong`). All
# at the dense arm's tuned LR, scored by the final validation loss of
# `moe train` (the same 16 K mixed-domain tokens as every arm).
#
# a new domain. An 8 x 256 top-2 MoE (`old4`, the top2 arm's shape and LR)
# is trained STEPS steps on four domains of the demo corpus (all but
# NEW_DOMAIN, python by default); then NEW_STEPS steps on NEW_DOMAIN alone,
# each way at its own peak rate (FT_LRS, extended along FT_LADDER until the
# best is interior; tuned on seed TUNE_SEED by the new domain's validation
# loss, never reported):
#   ftall     everything trains (full fine-tuning)
#   ftfrz     everything but the router trains (--freeze router)
#   add2old   2 experts added (copies, zero router rows); the old experts
#             and their router rows frozen, the rest trains
#   add2only  2 experts added; only they and their router rows train
#   lora8     LoRA rank 8, alpha 16, on attention, router and experts
#             (the base frozen; `moe train --lora-rank`)
# Each model (the base too) is scored with `moe ppl` on EVAL_TOKENS
# validation tokens of the new domain and of the four old ones (windows of
# SEQ, written to RUNS/NAME/eval.json): the gain on the new domain and the
# loss kept on the old ones. Every run records its peak resident memory
# (run.json max_rss_kb, with /usr/bin/time) and wall time.
#
#   EXP_DIR=DIR BUILD=build experiments/grow.sh      (after experiments/prep.sh)
#   python3 experiments/report.py pack --exp-dir DIR --runs docs/results/runs-grow
#
# Run names follow ARM-lrLR-sSEED. A dense-lr1e-3-sS run directory copied
# from experiments/routers.sh's EXP_DIR is used as it is (same command).
# About 30 minutes of one core a seed at the defaults.
#   STEPS=8 UP_STEPS=4 NEW_STEPS=4 EVAL_BATCHES=2 EVAL_TOKENS=2048 FT_LRS=1e-3 SEEDS=1 TUNE_SEED=1 ...
#       a smoke run
cd "$(dirname "$0")/.."
. experiments/common.sh
need_prep
LR=${LR:-1e-3}
SEEDS=${SEEDS:-"1 2 3"}
TUNE_SEED=${TUNE_SEED:-11}
UP_STEPS=${UP_STEPS:-$((STEPS / 2))}
UP_NOISE=${UP_NOISE:-0.01}
NEW_STEPS=${NEW_STEPS:-$((STEPS / 4))}
NEW_DOMAIN=${NEW_DOMAIN:-python}
FT_LRS=${FT_LRS:-"3e-4 1e-3 3e-3"}
FT_LADDER=${FT_LADDER:-"1e-4 3e-4 1e-3 3e-3 1e-2 3e-2"}
FT_ARMS=${FT_ARMS:-"ftall ftfrz add2old add2only lora8"}
EVAL_TOKENS=${EVAL_TOKENS:-16384}
DOMAINS="english german french c python"
OLD_DOMAINS=$(for d in $DOMAINS; do [ "$d" = "$NEW_DOMAIN" ] || printf '%s ' "$d"; done)
[ -d "$PREP/corpus/$NEW_DOMAIN" ] || die "no corpus domain $NEW_DOMAIN in $PREP/corpus"

# active_flops FFN_ACTIVE E: training FLOPs per token, 6 x the matmul
# weights a token goes through (attention, FFN_ACTIVE wide SwiGLU, an E-row
# router, the output head).
active_flops() {
    awk -v d=$DIM -v h=$HEADS -v kv=$KV -v L=$LAYERS -v V=$VOCAB -v f=$1 -v e=$2 'BEGIN {
        attn = 2 * d * d + 2 * d * (kv * d / h); ffn = 3 * d * f; router = d * e
        printf "%.0f\n", 6 * (L * (attn + ffn + router) + d * V) }'
}
# steps_for FLOPS_PER_TOKEN TOTAL: steps of BATCH x SEQ tokens that spend TOTAL
steps_for() { awk -v f=$1 -v t=$2 -v n=$((BATCH * SEQ)) 'BEGIN { printf "%d\n", t / (f * n) + 0.5 }'; }
# last_val NAME: the last val_loss in the run's log
last_val() {
    grep val_loss "$RUNS/$1/log.jsonl" 2>/dev/null | tail -1 | sed -nE 's/.*"val_loss":([0-9.eE+-]+).*/\1/p'
}

# ------------------------------------------------------------ upcycling
F_DENSE=$(active_flops 512 0)
F_MOE=$(active_flops 1024 8)
TOTAL_PER_TOKEN_STEP=$(awk -v a=$F_DENSE -v b=$F_MOE -v s=$STEPS -v u=$UP_STEPS \
    'BEGIN { printf "%.0f\n", a * s + b * u }')
S_SCRATCH=$(steps_for "$F_MOE" "$((TOTAL_PER_TOKEN_STEP * BATCH * SEQ))")
S_DENSE=$(steps_for "$F_DENSE" "$((TOTAL_PER_TOKEN_STEP * BATCH * SEQ))")
echo "upcycling: FLOPs/token dense $F_DENSE, 8x512 top-2 $F_MOE: dense $STEPS + upcycled" \
    "$UP_STEPS steps = MoE $S_SCRATCH = dense $S_DENSE steps"
config_qwen2 "$EXP_DIR/cfg/dense.json" 0 2 256 256 512
config_mixtral "$EXP_DIR/cfg/e8w512.json" 8 2 512
for s in $SEEDS; do
    train_run "dense-lr$LR-s$s" "$EXP_DIR/cfg/dense.json" "$s" --aux 0 --z 0
    if [ -e "$RUNS/dense-lr$LR-s$s/latest" ]; then
        STEPS=$UP_STEPS train_run "up8-lr$LR-s$s" - "$s" --upcycle "$RUNS/dense-lr$LR-s$s/latest" \
            --experts 8 --top-k 2 --upcycle-noise "$UP_NOISE" --aux 0.01 --z 0.001
    else
        echo "[dense-lr$LR-s$s] no checkpoint: up8-lr$LR-s$s skipped"
    fi
    STEPS=$S_SCRATCH train_run "e8w512-lr$LR-s$s" "$EXP_DIR/cfg/e8w512.json" "$s" --aux 0.01 --z 0.001
    STEPS=$S_DENSE train_run "dlong-lr$LR-s$s" "$EXP_DIR/cfg/dense.json" "$s" --aux 0 --z 0
done

# ------------------------------------------------------------ a new domain
# shards of the old domains (val windows shuffled for train's evaluation)
# and of the new one, with the experiments' tokenizer
make_data() { # make_data DIR DOMAINS...
    local dir=$1
    shift
    [ "${FORCE:-0}" != 1 ] && [ -f "$dir/val.bin" ] && return 0
    local args=()
    for d in "$@"; do args+=(--domain "$d=$PREP/corpus/$d"); done
    "$MOE" data --tokenizer "$PREP/tok" --out "$dir" --docs file --val-frac 0.05 -q "${args[@]}"
}
# val_ids DIR FILE: the first EVAL_TOKENS ids of DIR/val.bin, comma-separated, into FILE
val_ids() {
    "${PYTHON:-python3}" - "$1/val.bin" "$EVAL_TOKENS" >"$2" <<'EOF'
import struct, sys
blob = open(sys.argv[1], "rb").read()
dtype, n = struct.unpack_from("<IQ", blob, 12)
off = struct.unpack_from("<Q", blob, 32)[0]
n = min(n, int(sys.argv[2]))
ids = struct.unpack_from("<%d%s" % (n, "H" if dtype == 2 else "I"), blob, off)
print(",".join(map(str, ids)))
EOF
}
# nll IDS_FILE MODEL [--lora DIR]: mean next-token loss in nats (windows of SEQ)
nll() {
    local ids=$1
    shift
    "$MOE" ppl "$@" --ids "$(cat "$ids")" --ctx "$SEQ" --threads "$THREADS" --json 2>/dev/null |
        sed -nE 's/.*"nll": ?([0-9.eE+-]+).*/\1/p'
}
# score NAME MODEL [--lora DIR]: RUNS/NAME/eval.json with the new and old nll
score() {
    local name=$1
    shift
    [ -e "$RUNS/$name/exit_code" ] && [ "$(cat "$RUNS/$name/exit_code")" = 0 ] || return 0
    [ "${FORCE:-0}" != 1 ] && [ -s "$RUNS/$name/eval.json" ] && return 0
    local n o
    n=$(nll "$IDS_NEW" "$@")
    o=$(nll "$IDS_OLD" "$@")
    printf '{"new_domain": "%s", "new_nll": %s, "old_nll": %s, "eval_tokens": %s}\n' \
        "$NEW_DOMAIN" "${n:-null}" "${o:-null}" "$EVAL_TOKENS" >"$RUNS/$name/eval.json"
    echo "[$name] nll $NEW_DOMAIN $n, old domains $o"
}

OLD_DATA=$EXP_DIR/data-old
NEW_DATA=$EXP_DIR/data-$NEW_DOMAIN
# shellcheck disable=SC2086
make_data "$OLD_DATA" $OLD_DOMAINS
make_data "$NEW_DATA" "$NEW_DOMAIN"
[ -f "$OLD_DATA-eval/val.bin" ] && [ "${FORCE:-0}" != 1 ] ||
    "${PYTHON:-python3}" experiments/mix_val.py "$OLD_DATA" "$OLD_DATA-eval" "$SEQ" >/dev/null
IDS_NEW=$EXP_DIR/ids-$NEW_DOMAIN.txt
IDS_OLD=$EXP_DIR/ids-old.txt
val_ids "$NEW_DATA" "$IDS_NEW"
val_ids "$OLD_DATA-eval" "$IDS_OLD"

config_mixtral "$EXP_DIR/cfg/e8k2.json" 8 2 256
# ft ARM NAME BASE SEED LR: one way of training BASE on the new domain
ft() {
    local arm=$1 name=$2 base=$3 seed=$4 lr=$5 flags=(--aux 0.01 --z 0.001)
    case $arm in
    ftall) ;;
    ftfrz) flags+=(--freeze router) ;;
    add2old) flags+=(--add-experts 2 --freeze old-experts,old-router) ;;
    add2only) flags+=(--add-experts 2 --freeze old-experts,old-router,attention,embeddings,norms) ;;
    lora8) flags+=(--lora-rank 8 --lora-alpha 16 --lora-targets attn,gate,experts) ;;
    *) die "unknown fine-tuning arm '$arm'" ;;
    esac
    LR=$lr DATA=$NEW_DATA STEPS=$NEW_STEPS train_run "$name" - "$seed" --init "$base" "${flags[@]}"
    if [ "$arm" = lora8 ]; then score "$name" "$base" --lora "$RUNS/$name/latest"
    else score "$name" "$RUNS/$name/latest"; fi
}
# base SEED: the old-domain model of SEED (trained when missing); prints its path
base() {
    DATA=$OLD_DATA-eval train_run "old4-lr$LR-s$1" "$EXP_DIR/cfg/e8k2.json" "$1" --aux 0.01 --z 0.001 >&2
    score "old4-lr$LR-s$1" "$RUNS/old4-lr$LR-s$1/latest" >&2
    echo "$RUNS/old4-lr$LR-s$1/latest"
}

# the rate of each way, tuned on TUNE_SEED by the new domain's validation
# loss: FT_LRS first, then the next rate of FT_LADDER past whichever end
# wins, until the best has a neighbour on each side (or the ladder ends)
declare -A FT_LR
b=$(base "$TUNE_SEED")
for a in $FT_ARMS; do
    grid=" $FT_LRS "
    while :; do
        best= bestv=
        for lr in $grid; do
            [ -e "$b" ] && ft "$a" "$a-lr$lr-s$TUNE_SEED" "$b" "$TUNE_SEED" "$lr"
            v=$(last_val "$a-lr$lr-s$TUNE_SEED")
            [ -n "$v" ] || continue
            if [ -z "$best" ] || awk -v a="$v" -v b="$bestv" 'BEGIN { exit !(a < b) }'; then
                best=$lr bestv=$v
            fi
        done
        [ -n "$best" ] || break
        set -- $grid
        first=$1 last=${!#} more=
        if [ "$best" = "$last" ]; then
            more=$(echo $FT_LADDER | tr ' ' '\n' | grep -A1 -x -- "$last" | sed -n 2p)
            [ -n "$more" ] && grid="$grid$more "
        elif [ "$best" = "$first" ]; then
            more=$(echo $FT_LADDER | tr ' ' '\n' | grep -B1 -x -- "$first" | sed -n '1{/^'"$first"'$/d;p}')
            [ -n "$more" ] && grid=" $more$grid"
        fi
        [ -n "$more" ] || break
    done
    [ -n "$best" ] || { echo "[$a] no tuning run finished: skipped"; continue; }
    echo "[$a] tuned rate $best (new-domain val $bestv)"
    FT_LR[$a]=$best
done
for s in $SEEDS; do
    b=$(base "$s")
    [ -e "$b" ] || { echo "[old4-lr$LR-s$s] no checkpoint: its fine-tuning runs skipped"; continue; }
    for a in $FT_ARMS; do
        [ -n "${FT_LR[$a]:-}" ] && ft "$a" "$a-lr${FT_LR[$a]}-s$s" "$b" "$s" "${FT_LR[$a]}"
    done
done
echo "grow.sh: done; runs in $RUNS"
