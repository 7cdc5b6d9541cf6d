#!/bin/sh
# train_recompute.sh - `moe train --recompute` (each layer's activations
# recomputed in the backward from its kept input) gives the run without it
# bit for bit: every JSONL log field but the timings (losses, gradient norm,
# dropped share, router entropy, per-layer loads and selection biases) and
# the final weights, on a tiny mixtral with noisy top-k routing, capacity
# drops and two micro-batches a step, and on a tiny deepseek_v3 (latent
# attention, a dense layer, group-limited sigmoid routing whose selection
# bias moves each step). --stop-after then --resume, with and without the
# flag on either side, continues the same run. Runs in a few seconds.
#   MOE=build/moe sh tests/cli/train_recompute.sh   ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS="$HERE/../fixtures/tokenizer_train/corpus.txt"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-recompute.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

. "$HERE/harness.inc"

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

# the step records of a JSONL log without the fields that time the step
steps_untimed() {
  grep '"lr"' "$1" | sed -E 's/"tokens_per_s":[^,]*,//; s/"step_s":[^,]*,//'
}
# same_log NAME A B: the untimed step records of logs A and B are equal
same_log() {
  steps_untimed "$2" >"$T/a.log"
  steps_untimed "$3" >"$T/b.log"
  if [ -s "$T/a.log" ] && cmp -s "$T/a.log" "$T/b.log"; then ok
  else bad "$1: logs differ: $(diff "$T/a.log" "$T/b.log" | head -c 600)"; fi
}
# same_weights NAME DIR1 DIR2: the two checkpoints give the same logits
same_weights() {
  run "$MOE" logits "$2" --ids 3,4,5,6
  cp "$T/out" "$T/w1"
  run "$MOE" logits "$3" --ids 3,4,5,6
  if [ -s "$T/w1" ] && cmp -s "$T/w1" "$T/out"; then ok; else bad "$1: the final weights differ"; fi
}

expect_ok "train --help" "$MOE" train --help
out_has "help lists --recompute" "^  --recompute +keep each layer's input only"
expect_fail "--recompute takes no value" 2 "--recompute takes no value" "$MOE" train --recompute=1

expect_ok "tokenizer train" "$MOE" tokenizer train --vocab 400 --out "$T/tok" -q "$CORPUS"
D="$T/data"
expect_ok "data" "$MOE" data --tokenizer "$T/tok" --out "$D" --val-frac 0.1 -q "$CORPUS"

# mixtral, 3 layers, 4 experts top-2, noisy top-k, capacity factor 1
cat >"$T/config.json" <<'EOF'
{
  "model_type": "mixtral", "vocab_size": 400, "hidden_size": 32, "intermediate_size": 48,
  "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
  "num_local_experts": 4, "num_experts_per_tok": 2, "max_position_embeddings": 64,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false,
  "moe": {"noise": 1.0, "capacity_factor": 1.0}
}
EOF
MX="--data $D --config $T/config.json --steps 6 --batch 2 --seq 16 --accum 2 --lr 3e-3
    --warmup 1 --seed 3 --threads 2 --eval-every 3 --eval-batches 1 --quiet"
# shellcheck disable=SC2086
expect_ok "mixtral: full tape" "$MOE" train $MX --out "$T/mx_full"
# shellcheck disable=SC2086
expect_ok "mixtral: --recompute" "$MOE" train $MX --out "$T/mx_rc" --recompute
[ "$(grep -c '"lr"' "$T/mx_rc/log.jsonl")" -eq 6 ] && ok || bad "mixtral --recompute: not 6 step lines"
grep -q '"dropped_frac":0\.[0-9]*[1-9]' "$T/mx_full/log.jsonl" && ok ||
  bad "mixtral: the capacity factor dropped nothing (the comparison would not cover drops)"
same_log "mixtral: --recompute vs full" "$T/mx_full/log.jsonl" "$T/mx_rc/log.jsonl"
grep '"val_loss"' "$T/mx_full/log.jsonl" | sed -E 's/.*("val_loss":[^,]*).*/\1/' >"$T/v1"
grep '"val_loss"' "$T/mx_rc/log.jsonl" | sed -E 's/.*("val_loss":[^,]*).*/\1/' >"$T/v2"
[ "$(wc -l <"$T/v1")" -eq 2 ] && cmp -s "$T/v1" "$T/v2" && ok || bad "mixtral: evaluations differ"
same_weights "mixtral: --recompute vs full" "$T/mx_full/latest" "$T/mx_rc/latest"

# stop after 2 with --recompute, resume without; stop after 2 without, resume with
# shellcheck disable=SC2086
expect_ok "stop after 2 (--recompute)" "$MOE" train $MX --out "$T/mx_r1" --recompute --stop-after 2
# shellcheck disable=SC2086
expect_ok "resume without --recompute" "$MOE" train $MX --out "$T/mx_r1" --resume
same_log "--recompute, then resumed without" "$T/mx_full/log.jsonl" "$T/mx_r1/log.jsonl"
# shellcheck disable=SC2086
expect_ok "stop after 2" "$MOE" train $MX --out "$T/mx_r2" --stop-after 2
# shellcheck disable=SC2086
expect_ok "resume with --recompute" "$MOE" train $MX --out "$T/mx_r2" --resume --recompute
same_log "full, then resumed with --recompute" "$T/mx_full/log.jsonl" "$T/mx_r2/log.jsonl"
same_weights "resumed runs" "$T/mx_full/latest" "$T/mx_r2/latest"

# deepseek_v3: latent attention with q_lora_rank, a dense layer 0, group-limited
# sigmoid routing with a selection bias moved by --bias-rate
DS="$T/ds3"
expect_ok "init tiny-deepseek-v3" "$MOE" init --preset tiny-deepseek-v3 --vocab 400 --dtype f32 "$DS"
DV="--data $D --init $DS --steps 4 --batch 2 --seq 16 --lr 3e-3 --warmup 1 --bias-rate 0.01
    --threads 2 --eval-every 0 --quiet"
# shellcheck disable=SC2086
expect_ok "deepseek_v3: full tape" "$MOE" train $DV --out "$T/ds_full"
# shellcheck disable=SC2086
expect_ok "deepseek_v3: --recompute" "$MOE" train $DV --out "$T/ds_rc" --recompute
grep -q '"sel_bias":\[[^]]*[1-9]' "$T/ds_rc/log.jsonl" && ok || bad "deepseek_v3: no selection bias moved"
same_log "deepseek_v3: --recompute vs full" "$T/ds_full/log.jsonl" "$T/ds_rc/log.jsonl"
same_weights "deepseek_v3: --recompute vs full" "$T/ds_full/latest" "$T/ds_rc/latest"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
