#!/usr/bin/env bash
# f_grow.sh - experiment f: growing a model instead of training it anew.
#
# f1, upcycling at equal compute. The dense baseline (dense-sS: a SwiGLU FFN
# of 512, STEPS steps) is upcycled to 8 experts of 512, top-2 (every expert
# a copy of the dense FFN, a fresh router; `moe train --upcycle`) and
# trained UP_STEPS more. Against it, from scratch, with the same total
# training compute (steps x tokens x active FLOPs per token, counted as
# 6 x the active matmul weights: attention, the k active experts, router,
# output head): the same 8 x 512 top-2 MoE (e8w512-sS), and the dense
# model trained longer (dense-long-sS). Compared on the final val loss.
#
# f2, experts for a new domain. An 8 x 256 top-2 MoE (the e8k2 shape) is
# trained STEPS steps on four domains of the corpus (all but NEW_DOMAIN,
# python by default); then NEW_STEPS steps on NEW_DOMAIN alone, three ways:
#   add2-old       2 experts added, old experts and their router rows frozen
#                  (attention, embeddings, norms train)
#   add2-only      2 experts added, only they and their router rows train
#   ft-all         no experts added, everything trains (full fine-tuning)
# Each model (the base too) is scored with `moe ppl` on EVAL_TOKENS
# validation tokens of the new domain and of the four old ones: the gain on
# the new domain, and how much of the old domains' loss is kept.
#
# Not run by run_all.sh or CI. Eight runs, about 8.5 times the compute of
# one dense-s1 run at the defaults (~20 minutes with one thread).
#
#   BUILD=build experiments/f_grow.sh                 (after experiments/prep.sh)
#   STEPS=8 UP_STEPS=4 NEW_STEPS=4 EVAL_BATCHES=2 EVAL_TOKENS=2048 ... a smoke run
cd "$(dirname "$0")/.."
. experiments/common.sh
need_prep
SEED=${SEED:-1}
UP_STEPS=${UP_STEPS:-$((STEPS / 2))}
NEW_STEPS=${NEW_STEPS:-$((STEPS / 2))}
NEW_DOMAIN=${NEW_DOMAIN:-python}
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
# final_val NAME: the last val_loss in the run's log
final_val() {
    grep val_loss "$RUNS/$1/log.jsonl" 2>/dev/null | tail -1 | sed -nE 's/.*"val_loss":([0-9.eE+-]+).*/\1/p'
}

# ------------------------------------------------------------ f1: upcycling
F_DENSE=$(active_flops 512 0)
F_MOE=$(active_flops 1024 8)
TOTAL=$(awk -v a=$F_DENSE -v b=$F_MOE -v s=$STEPS -v u=$UP_STEPS -v n=$((BATCH * SEQ)) \
    'BEGIN { printf "%.0f\n", (a * s + b * u) * n }')
S_SCRATCH=$(steps_for "$F_MOE" "$TOTAL")
S_DENSE=$(steps_for "$F_DENSE" "$TOTAL")
echo "f1: FLOPs/token dense $F_DENSE, 8x512 top-2 $F_MOE; total $TOTAL:" \
    "dense $STEPS + upcycled $UP_STEPS steps = MoE $S_SCRATCH = dense $S_DENSE steps"

run_dense "$SEED"
if [ -e "$RUNS/dense-s$SEED/latest" ]; then
    STEPS=$UP_STEPS train_run "up8-s$SEED" - "$SEED" --upcycle "$RUNS/dense-s$SEED/latest" \
        --experts 8 --top-k 2 --aux 0.01 --z 0.001
else
    echo "[up8-s$SEED] no dense checkpoint, skipped"
fi
config_mixtral "$EXP_DIR/cfg/e8w512.json" 8 2 512
STEPS=$S_SCRATCH train_run "e8w512-s$SEED" "$EXP_DIR/cfg/e8w512.json" "$SEED" --aux 0.01 --z 0.001
STEPS=$S_DENSE train_run "dense-long-s$SEED" "$EXP_DIR/cfg/dense.json" "$SEED" --aux 0 --z 0

# ------------------------------------------------ f2: a new domain's experts
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
# val_ids DIR: the first EVAL_TOKENS ids of DIR/val.bin, comma-separated
val_ids() {
    "${PYTHON:-python3}" - "$1/val.bin" "$EVAL_TOKENS" <<'EOF'
import struct, sys
blob = open(sys.argv[1], "rb").read()
dtype, n = struct.unpack_from("<IQ", blob, 12)
off = struct.unpack_from("<Q", blob, 32)[0]
n = min(n, int(sys.argv[2]))
ids = struct.unpack_from("<%d%s" % (n, "H" if dtype == 2 else "I"), blob, off)
print(",".join(map(str, ids)))
EOF
}
# nll MODEL IDS_FILE: mean next-token loss in nats (windows of SEQ)
nll() {
    "$MOE" ppl "$1" --ids "$(cat "$2")" --ctx "$SEQ" --threads "$THREADS" --json 2>/dev/null |
        sed -nE 's/.*"nll": ([0-9.eE+-]+).*/\1/p'
}

OLD_DATA=$EXP_DIR/data-old
NEW_DATA=$EXP_DIR/data-$NEW_DOMAIN
# shellcheck disable=SC2086
make_data "$OLD_DATA" $OLD_DOMAINS
make_data "$NEW_DATA" "$NEW_DOMAIN"
[ -f "$OLD_DATA-eval/val.bin" ] && [ "${FORCE:-0}" != 1 ] ||
    "${PYTHON:-python3}" experiments/mix_val.py "$OLD_DATA" "$OLD_DATA-eval" "$SEQ" >/dev/null

config_mixtral "$EXP_DIR/cfg/e8k2.json" 8 2 256
DATA=$OLD_DATA-eval train_run "old4-s$SEED" "$EXP_DIR/cfg/e8k2.json" "$SEED" --aux 0.01 --z 0.001
BASE=$RUNS/old4-s$SEED/latest
if [ -e "$BASE" ]; then
    DATA=$NEW_DATA STEPS=$NEW_STEPS train_run "add2-old-s$SEED" - "$SEED" --init "$BASE" \
        --add-experts 2 --freeze old-experts,old-router --aux 0.01 --z 0.001
    DATA=$NEW_DATA STEPS=$NEW_STEPS train_run "add2-only-s$SEED" - "$SEED" --init "$BASE" \
        --add-experts 2 --freeze old-experts,old-router,attention,embeddings,norms --aux 0.01 --z 0.001
    DATA=$NEW_DATA STEPS=$NEW_STEPS train_run "ft-all-s$SEED" - "$SEED" --init "$BASE" \
        --aux 0.01 --z 0.001
else
    echo "[old4-s$SEED] no checkpoint: the new-domain runs are skipped"
fi

# ---------------------------------------------------------------- results
OUT=$RUNS/f_grow-s$SEED.txt
{
    echo "f1: upcycling at equal training compute ($TOTAL FLOPs), final val loss (all domains)"
    printf '  %-16s %6s  %s\n' run steps val_loss
    for r in "dense-s$SEED:$STEPS" "up8-s$SEED:$STEPS+$UP_STEPS" "e8w512-s$SEED:$S_SCRATCH" \
        "dense-long-s$SEED:$S_DENSE"; do
        printf '  %-16s %6s  %s\n' "${r%%:*}" "${r#*:}" "$(final_val "${r%%:*}")"
    done
    echo
    echo "f2: new domain $NEW_DOMAIN after $NEW_STEPS steps; nll on $EVAL_TOKENS val tokens each"
    val_ids "$NEW_DATA" >"$RUNS/ids-new.txt"
    val_ids "$OLD_DATA-eval" >"$RUNS/ids-old.txt"
    base_new=$(nll "$BASE" "$RUNS/ids-new.txt")
    base_old=$(nll "$BASE" "$RUNS/ids-old.txt")
    printf '  %-16s %9s %9s %9s %9s\n' model new gain old kept
    for r in "old4-s$SEED" "add2-old-s$SEED" "add2-only-s$SEED" "ft-all-s$SEED"; do
        [ -e "$RUNS/$r/latest" ] || continue
        n=$(nll "$RUNS/$r/latest" "$RUNS/ids-new.txt")
        o=$(nll "$RUNS/$r/latest" "$RUNS/ids-old.txt")
        awk -v r="$r" -v n="$n" -v o="$o" -v bn="$base_new" -v bo="$base_old" 'BEGIN {
            printf "  %-16s %9.4f %+9.4f %9.4f %+9.4f\n", r, n, bn - n, o, bo - o }'
    done
    echo "  (gain: base nll - nll on $NEW_DOMAIN; kept: base nll - nll on the old domains:"
    echo "   0 = as before, < 0 = forgotten)"
} | tee "$OUT"
