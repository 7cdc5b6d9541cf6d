#!/usr/bin/env bash
# train.sh - the model the expert-cache study (study.sh) runs on: a
# fine-grained MoE in the Qwen3-MoE layout (OLMoE-like expert counts)
# trained from scratch on the `make demo` corpus, so that its routing is
# learned rather than random. 8 layers, dim 256, 64 experts of FFN 128 per
# layer, top-8 (renormalized), q/k norm, Switch load-balancing loss 0.01 and
# router z-loss 0.001; 54.1 M parameters, 10.1 M active per token.
# 2000 steps x 8 x 256 = 4.1 M tokens (about 1.8 passes over the 2.3 M
# training tokens), one thread, about 55 minutes on one core of a 2-core
# machine. Everything here is deterministic given the seed: the same
# command gives the same checkpoint.
#
#   experiments/cache/train.sh
#   BUILD=build            where moe is built (make BUILD=...)
#   EXP_DIR=dir            the prepared corpus/tokenizer/shards
#                          (experiments/prep.sh; default BUILD/experiments)
#   OUT=dir                the run (default /work/bench/cache-model-run)
#   MODEL_OUT=dir          where the final model is copied (default
#                          /work/bench/cache-model, study.sh's default MODEL):
#                          config, weights, tokenizer, with the run's log and
#                          routing statistics; no optimizer state
#   THREADS=1 STEPS=2000 SEED=1
#   NICE=10                run the training under nice -n NICE
# A stopped run continues with RESUME=1 (bit-identical to an unstopped one).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
MOE=${MOE:-$BUILD/moe}
EXP_DIR=${EXP_DIR:-$BUILD/experiments}
OUT=${OUT:-/work/bench/cache-model-run}
MODEL_OUT=${MODEL_OUT:-/work/bench/cache-model}
THREADS=${THREADS:-1}
STEPS=${STEPS:-2000}
SEED=${SEED:-1}
NICE=${NICE:-10}

# 1. corpus, tokenizer (vocab 4096), shards; val.bin windows mixed across
#    domains (skipped when already there).
BUILD=$BUILD EXP_DIR=$EXP_DIR bash experiments/prep.sh
DATA=$EXP_DIR/data-eval
TOK=$EXP_DIR/prep/tok
VOCAB=$(sed -nE 's/.*"vocab":[[:space:]]*([0-9]+).*/\1/p' "$DATA/meta.json" | head -1)
[ "$VOCAB" = 4096 ] || { echo "train.sh: expected vocab 4096 in $DATA/meta.json, got '$VOCAB'" >&2; exit 1; }

# 2. the config.
mkdir -p "$OUT"
CFG=$OUT/config.in.json
cat >"$CFG" <<JSON
{
  "architectures": ["Qwen3MoeForCausalLM"],
  "model_type": "qwen3_moe",
  "vocab_size": $VOCAB,
  "hidden_size": 256,
  "intermediate_size": 1024,
  "moe_intermediate_size": 128,
  "num_hidden_layers": 8,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "head_dim": 64,
  "num_experts": 64,
  "num_experts_per_tok": 8,
  "norm_topk_prob": true,
  "decoder_sparse_step": 1,
  "mlp_only_layers": [],
  "attention_bias": false,
  "max_position_embeddings": 512,
  "rms_norm_eps": 1e-06,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "bos_token_id": null,
  "eos_token_id": $((VOCAB - 1))
}
JSON

# 3. training: batch 8 x seq 256 = 2048 tokens a step, cosine schedule
#    3e-3 -> 3e-4 after 50 warmup steps, evaluation on 16 x 8 windows of
#    val.bin every 250 steps, a checkpoint every 250 (the last two kept).
RES=()
[ "${RESUME:-0}" = 1 ] && RES=(--resume)
nice -n "$NICE" "$MOE" train --config "$CFG" --data "$DATA" --tokenizer "$TOK" --out "$OUT" \
    --steps "$STEPS" --batch 8 --seq 256 --lr 3e-3 --min-lr 3e-4 --warmup 50 \
    --aux 0.01 --z 0.001 --eval-every 250 --eval-batches 16 --save-every 250 --keep 2 \
    --threads "$THREADS" --seed "$SEED" --print-every 25 "${RES[@]}"

# 4. its routing on the validation shard (with domains), and the model for
#    study.sh.
"$MOE" route "$OUT/latest" --data "$EXP_DIR/prep/data" --json "$OUT/route.json" --table --threads "$THREADS" >"$OUT/route.txt"
echo "routing: $OUT/route.txt, $OUT/route.json"
rm -rf "$MODEL_OUT"
mkdir -p "$MODEL_OUT"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json trainer_state.json; do
    cp "$OUT/latest/$f" "$MODEL_OUT/"
done
cp "$OUT/log.jsonl" "$OUT/route.json" "$OUT/route.txt" "$MODEL_OUT/"
echo "model: $MODEL_OUT"
