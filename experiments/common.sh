# common.sh - sourced by the experiment scripts (experiments/*.sh): where
# things go, the one model budget all experiments share, config.json
# writers for each layout, and `train_run`, which trains one configuration
# (skipped when its log already ends at the last step, so a rerun only
# does what is missing).
#
#   BUILD=build        where moe is built (make BUILD=...)
#   EXP_DIR=dir        data and runs (default BUILD/experiments)
#   THREADS=1          training threads (one: the budget below is sized for it)
#   STEPS=1600         optimizer steps of every run (the token budget:
#                      STEPS x BATCH x SEQ = 1600 x 4 x 128 = 819,200 tokens)
#   FORCE=1            retrain runs that are already complete
#   BUILD_ID=id        the build's name in run.json (default: git HEAD)
#   CORPUS=dir         train on the larger corpus experiments/corpus.sh built
#                      in dir (its tok/ and data-eval/) instead of the demo's
#                      (experiments/prep.sh); give such runs an EXP_DIR of
#                      their own, so that they do not count as done runs
#                      on the other corpus
#
# Each run directory RUNS/NAME/ gets config.in.json, log.jsonl (one line a
# step), run.json (what ran: command, seed, learning rate, budget, build
# commit, CPU, load average, wall time, exit code), train.out/.err, and its
# final checkpoint. experiments/report.py pack copies the logs and run.json
# into docs/results/runs/ (compressed), from which docs/RESULTS.md is made.
set -euo pipefail

BUILD=${BUILD:-build}
MOE=${MOE:-$BUILD/moe}
EXP_DIR=${EXP_DIR:-$BUILD/experiments}
THREADS=${THREADS:-1}
PREP=$EXP_DIR/prep          # tools/demo.sh prep: corpus, tok, data (with domains)
DATA=$EXP_DIR/data-eval     # the same shards; val.bin with its windows shuffled
if [ -n "${CORPUS:-}" ]; then  # experiments/corpus.sh: the same layout
    PREP=$CORPUS
    DATA=$CORPUS/data-eval
fi
RUNS=$EXP_DIR/runs

# The budget. Every run of every experiment: 4 layers, dim 128, 4 heads
# (2 KV heads), seq 128, batch 4, STEPS steps; the same schedule shape
# (linear warmup, cosine decay to MIN_LR, by default a tenth of the peak
# learning rate, so that every peak of a sweep gets the same shape), the
# same evaluation and seeds. The peak
# learning rate is LR unless the experiment tunes it per configuration
# (experiments/routers.sh does). Active FFN width per token: 512 (k=2
# experts of 256, or a dense FFN of 512) unless said.
DIM=128; LAYERS=4; HEADS=4; KV=2; SEQ=128; BATCH=4
STEPS=${STEPS:-1600}
LR=${LR:-1e-3}; WARMUP=${WARMUP:-50}
EVAL_EVERY=${EVAL_EVERY:-100}
EVAL_BATCHES=${EVAL_BATCHES:-32}   # 32 x 4 windows of 128 = 16,384 val tokens, all domains

die() {
    echo "experiments: $*" >&2
    exit 1
}

need_prep() {
    [ -x "$MOE" ] || die "no $MOE: run experiments/prep.sh first (or make BUILD=$BUILD)"
    [ -f "$DATA/val.bin" ] && [ -f "$PREP/tok/tokenizer.json" ] ||
        die "no prepared data in $PREP and $DATA: run experiments/prep.sh first (with CORPUS=dir: experiments/corpus.sh)"
    VOCAB=$(sed -nE 's/.*"vocab":[[:space:]]*([0-9]+).*/\1/p' "$PREP/data/meta.json" | head -1)
    [ -n "$VOCAB" ] || die "no vocab in $PREP/data/meta.json"
}

# config_mixtral FILE E K FFN [MOE_JSON]: a Mixtral layout (no attention
# bias, no q/k norm, top-k weights renormalized to sum 1), every layer MoE
# with E experts of width FFN, k of them per token.
config_mixtral() {
    local file=$1 E=$2 K=$3 FFN=$4 moe=${5:-}
    mkdir -p "$(dirname "$file")"
    cat >"$file" <<EOF
{
  "architectures": ["MixtralForCausalLM"],
  "model_type": "mixtral",
  "vocab_size": $VOCAB,
  "hidden_size": $DIM,
  "intermediate_size": $FFN,
  "num_hidden_layers": $LAYERS,
  "num_attention_heads": $HEADS,
  "num_key_value_heads": $KV,
  "head_dim": $((DIM / HEADS)),
  "num_local_experts": $E,
  "num_experts_per_tok": $K,
  "max_position_embeddings": $SEQ,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "bos_token_id": null,
  "eos_token_id": $((VOCAB - 1))${moe:+,
  \"moe\": $moe}
}
EOF
}

# config_qwen2 FILE E K EXPERT_FFN SHARED_FFN DENSE_FFN [MOE_JSON]: the Qwen2-MoE
# layout with the same attention as config_mixtral (qkv_bias off, no q/k
# norm). E = 0: every layer a dense SwiGLU FFN of DENSE_FFN (the dense
# baseline). E > 0: E routed experts of EXPERT_FFN, k per token, weights
# renormalized (as Mixtral), plus one shared expert of SHARED_FFN that
# every token goes through, scaled by sigmoid(x . w) (Qwen2-MoE's gate).
config_qwen2() {
    local file=$1 E=$2 K=$3 EFFN=$4 SFFN=$5 DFFN=$6 moe=${7:-}
    mkdir -p "$(dirname "$file")"
    cat >"$file" <<EOF
{
  "architectures": ["Qwen2MoeForCausalLM"],
  "model_type": "qwen2_moe",
  "vocab_size": $VOCAB,
  "hidden_size": $DIM,
  "intermediate_size": $DFFN,
  "moe_intermediate_size": $EFFN,
  "shared_expert_intermediate_size": $SFFN,
  "num_hidden_layers": $LAYERS,
  "num_attention_heads": $HEADS,
  "num_key_value_heads": $KV,
  "num_experts": $E,
  "num_experts_per_tok": $K,
  "norm_topk_prob": true,
  "decoder_sparse_step": 1,
  "mlp_only_layers": [],
  "qkv_bias": false,
  "max_position_embeddings": $SEQ,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "use_sliding_window": false,
  "bos_token_id": null,
  "eos_token_id": $((VOCAB - 1))${moe:+,
  \"moe\": $moe}
}
EOF
}

# run_done NAME: the run's log reached step STEPS with an evaluation.
run_done() {
    local log=$RUNS/$1/log.jsonl
    [ -f "$log" ] && tail -1 "$log" | grep -q "\"step\":$STEPS,.*\"val_loss\""
}

# json_str S: S as a JSON string (quotes, backslashes and control
# characters escaped)
json_str() {
    printf '%s' "$1" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()), end="")'
}

# train_run NAME CONFIG SEED [moe train flags...]: train RUNS/NAME from
# scratch (a half-finished run is restarted), keep only its final
# checkpoint, write RUNS/NAME/run.json (and wall_s, exit_code). Never fails
# the script: a run that stops (NaN, crash) is a result; its exit code is
# kept and the log so far stays. The peak learning rate is $LR (a later
# --lr in the flags wins). CONFIG "-": no --config (the flags give the
# start: --init, --upcycle).
train_run() {
    local name=$1 config=$2 seed=$3
    shift 3
    local out=$RUNS/$name start=(--config "$config")
    if [ "${FORCE:-0}" != 1 ] && run_done "$name"; then
        echo "[$name] done already ($out)"
        return 0
    fi
    rm -rf "$out"
    mkdir -p "$out"
    if [ "$config" = - ]; then start=(); else cp "$config" "$out/config.in.json"; fi
    local t0 rc=0 every=${EVERY:-$EVAL_EVERY} started load0 commit cpu
    local -a cmd=("$MOE" train "${start[@]}" --data "$DATA" --tokenizer "$PREP/tok" --out "$out"
        --steps "$STEPS" --batch "$BATCH" --seq "$SEQ" --lr "$LR"
        --min-lr "${MIN_LR:-$(awk -v x="$LR" 'BEGIN { printf "%g", x / 10 }')}"
        --warmup "$WARMUP" --eval-every "$every" --eval-batches "$EVAL_BATCHES"
        --save-every 0 --keep 1 --threads "$THREADS" --seed "$seed" --print-every 100 "$@")
    t0=$(date +%s.%N)
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    load0=$(cut -d' ' -f1 /proc/loadavg)
    if [ -n "${BUILD_ID:-}" ]; then
        commit=$BUILD_ID
    else
        commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
        git diff --quiet HEAD -- src cli 2>/dev/null || commit="$commit+dirty"
    fi
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    printf '[%s] %s  seed %s  lr %s  %s\n' "$(date +%H:%M:%S)" "$name" "$seed" "$LR" "$*"
    # peak resident memory with GNU time when there is one
    local timer=()
    [ -x /usr/bin/time ] && timer=(/usr/bin/time -f %M -o "$out/max_rss_kb")
    "${timer[@]}" "${cmd[@]}" >"$out/train.out" 2>"$out/train.err" || rc=$?
    echo "$rc" >"$out/exit_code"
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' >"$out/wall_s"
    {
        printf '{"name": %s, "seed": %s, "lr": %s, "steps": %s, "batch": %s, "seq": %s,\n' \
            "$(json_str "$name")" "$seed" "$LR" "$STEPS" "$BATCH" "$SEQ"
        printf ' "threads": %s, "flags": %s,\n' "$THREADS" "$(json_str "$*")"
        printf ' "command": %s,\n' "$(json_str "${cmd[*]}")"
        printf ' "build": %s, "cpu": %s, "nproc": %s,\n' "$(json_str "$commit")" "$(json_str "$cpu")" "$(nproc)"
        printf ' "start": "%s", "load_start": %s, "load_end": %s,\n' "$started" "$load0" "$(cut -d' ' -f1 /proc/loadavg)"
        printf ' "wall_s": %s, "max_rss_kb": %s, "exit_code": %s}\n' "$(cat "$out/wall_s")" \
            "$(tail -1 "$out/max_rss_kb" 2>/dev/null | grep -E '^[0-9]+$' || echo null)" "$rc"
    } >"$out/run.json"
    local last
    last=$(grep val_loss "$out/log.jsonl" 2>/dev/null | tail -1 |
        sed -nE 's/.*"step":([0-9]+),.*"val_loss":([0-9.naNINF-]+).*/step \1 val \2/p')
    printf '[%s] %s: exit %s, %s s, %s\n' "$(date +%H:%M:%S)" "$name" "$rc" "$(cat "$out/wall_s")" "${last:-no eval}"
    [ "$rc" -eq 0 ] || tail -3 "$out/train.err" | sed "s/^/[$name] /"
    return 0
}
