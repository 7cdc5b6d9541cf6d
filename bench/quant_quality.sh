#!/usr/bin/env bash
# quant_quality.sh - what each quantization type costs on a trained model:
# file size, bits per weight, perplexity, mean / p99 KL(F32 || quantized) and
# top-1 agreement over ~4800 positions of held-out text (`moe ppl --ref`).
#
# Model: olmoe layout, 4 layers, dim 256, 4 heads, 8 experts top-2 (FFN 256),
# vocab 4096, trained 600 steps (batch 8 x 128) on the experiments' corpus
# (experiments/prep.sh: five domains from Debian packages). A trained model,
# because random weights give near-uniform distributions whose KL says little.
# Dimensions are multiples of 256 so the K-quants apply to every matrix.
# Evaluation text: the last 3000 bytes of the last document of each domain;
# calibration text for --type mixed: the first 6000 bytes of the first.
# ARCH=gpt_oss trains a gpt_oss model of the same size instead (head dim 64,
# sliding window 64 on alternate layers, sinks, biases, clamped SwiGLU) and
# skips the mixed rows. Both add MXFP4 rows: `--type mxfp4` (llama-quantize's
# MXFP4_MOE: routed experts MXFP4, the rest Q8_0) beside Q8_0 with the
# experts at Q4_0 (4.5 bits against MXFP4's 4.25).
#
#   BUILD=build bash bench/quant_quality.sh        prints a Markdown table
#   ARCH=gpt_oss BUILD=build bash bench/quant_quality.sh
# About 5 minutes on 2 cores (the training), seconds once trained.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MOE=$BUILD/moe
EXP_DIR=${EXP_DIR:-$BUILD/experiments}
ARCH=${ARCH:-olmoe}
case $ARCH in
olmoe) W=${QQ_DIR:-$BUILD/quant-quality} ;;
gpt_oss) W=${QQ_DIR:-$BUILD/quant-quality-gpt-oss} ;;
*) echo "quant_quality.sh: ARCH is olmoe or gpt_oss" >&2; exit 2 ;;
esac
THREADS=${THREADS:-2}
[ -f "$EXP_DIR/prep/tok/tokenizer.json" ] || BUILD=$BUILD EXP_DIR=$EXP_DIR bash experiments/prep.sh
mkdir -p "$W"
CORPUS=$EXP_DIR/prep/corpus
DOMAINS="english german french c python"

if [ "$ARCH" = olmoe ]; then
cat >"$W/config.json" <<'JSON'
{
  "architectures": ["OlmoeForCausalLM"],
  "model_type": "olmoe",
  "vocab_size": 4096,
  "hidden_size": 256,
  "intermediate_size": 256,
  "num_hidden_layers": 4,
  "num_attention_heads": 4,
  "num_key_value_heads": 4,
  "num_experts": 8,
  "num_experts_per_tok": 2,
  "norm_topk_prob": false,
  "max_position_embeddings": 256,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "clip_qkv": null,
  "bos_token_id": null,
  "eos_token_id": 4095
}
JSON
else
cat >"$W/config.json" <<'JSON'
{
  "architectures": ["GptOssForCausalLM"],
  "model_type": "gpt_oss",
  "vocab_size": 4096,
  "hidden_size": 256,
  "intermediate_size": 256,
  "num_hidden_layers": 4,
  "num_attention_heads": 4,
  "num_key_value_heads": 4,
  "head_dim": 64,
  "num_local_experts": 8,
  "num_experts_per_tok": 2,
  "sliding_window": 64,
  "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
  "max_position_embeddings": 256,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "rope_scaling": null,
  "swiglu_limit": 7.0,
  "attention_bias": true,
  "tie_word_embeddings": false,
  "eos_token_id": 4095
}
JSON
fi
if [ ! -f "$W/run/latest/model.safetensors" ]; then
    echo "training the reference model (600 steps) ..." >&2
    "$MOE" train --config "$W/config.json" --data "$EXP_DIR/prep/data" --tokenizer "$EXP_DIR/prep/tok" \
        --out "$W/run" --steps 600 --batch 8 --seq 128 --lr 3e-3 --warmup 30 --eval-every 200 \
        --save-every 0 --threads "$THREADS" --seed 1 --aux 0.01 --z 0.001 >&2
fi
: >"$W/eval.txt"; : >"$W/calib.txt"
for d in $DOMAINS; do
    tail -c 3000 "$(ls "$CORPUS/$d"/* | tail -n 1)" >>"$W/eval.txt"
    head -c 6000 "$(ls "$CORPUS/$d"/* | head -n 1)" >>"$W/calib.txt"
done
REF=$W/run/latest

# row LABEL FILE: one table row from `moe ppl --json`
row() {
    local js bytes
    js=$("$MOE" ppl "$2" --ref "$REF" --text "$W/eval.txt" --tokenizer "$EXP_DIR/prep/tok" \
        --ctx 256 -t "$THREADS" --json 2>/dev/null)
    bytes=$(stat -c %s "$2")
    python3 - "$1" "$bytes" "$js" <<'PY'
import json, sys
label, size, j = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
print(f"| {label} | {size / 2**20:.2f} MiB | {j['perplexity']:.3f} | {j['kl_mean']:.2e} | "
      f"{j['kl_p99']:.2e} | {100 * j['top1_agreement']:.2f}% |")
PY
}

echo "| type | file | perplexity | mean KL (nats) | p99 KL | top-1 agreement |"
echo "|---|---:|---:|---:|---:|---:|"
"$MOE" convert "$REF" "$W/m-f32.gguf" --force >/dev/null 2>&1
row "F32 (GGUF)" "$W/m-f32.gguf"
for t in q8_0 q6_k q5_k q4_k q4_0; do
    "$MOE" quantize "$REF" "$W/m-$t.gguf" --type "$t" --force -t "$THREADS" >/dev/null 2>&1
    row "$t" "$W/m-$t.gguf"
done
"$MOE" quantize "$REF" "$W/m-mxfp4.gguf" --type mxfp4 --force -t "$THREADS" >/dev/null 2>&1
row "mxfp4 (experts MXFP4, rest q8_0)" "$W/m-mxfp4.gguf"
"$MOE" quantize "$REF" "$W/m-q8e4.gguf" --type q8_0 --experts q4_0 --force -t "$THREADS" >/dev/null 2>&1
row "q8_0, experts q4_0" "$W/m-q8e4.gguf"
[ "$ARCH" = olmoe ] || exit 0
for b in 5.9bpw 6.2bpw 6.5bpw 7.0bpw; do
    "$MOE" quantize "$REF" "$W/m-mixed-$b.gguf" --type mixed --calib "$W/calib.txt" \
        --tokenizer "$EXP_DIR/prep/tok" --budget "$b" --force -t "$THREADS" >/dev/null 2>&1
    row "mixed q8_0/q4_k, $b" "$W/m-mixed-$b.gguf"
done
