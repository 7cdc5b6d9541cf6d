#!/bin/sh
# lora.sh - LoRA end to end: `moe train --init BASE --lora-rank R` on the
# tiny mixtral of tests/fixtures/lora (the loss goes down, checkpoints hold
# only peft's adapter files plus the trainer's state; --stop-after then
# --resume gives the unbroken run's losses and adapter), `moe logits --lora`
# with the trained adapter and with peft's fixture adapter (which gives
# peft's logits: tests/test_lora.c), `moe lora merge` giving the logits of
# --lora, ppl and generate taking --lora, and the usage errors.
#   MOE=build/moe sh tests/cli/lora.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures"
BASE="$FIX/lora/mixtral/base"
DATA="$FIX/train/gpt_oss_data"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-lora.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

. "$HERE/harness.inc"
err_has() {
  if grep -Eq -- "$2" "$T/err"; then ok; else bad "$1: stderr lacks '$2': $(head -c 300 "$T/err")"; fi
}
# loss of step N in a JSONL log
loss_at() { grep "\"step\":$2," "$1" | sed -E 's/.*"loss":([^,]*).*/\1/'; }

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

# ------------------------------------------------------------------- help
expect_ok "moe --help" "$MOE" --help
out_has "moe --help lists lora" "^  lora "
expect_ok "train --help" "$MOE" train --help
out_has "train help: --lora-rank" "--lora-rank R"
out_has "train help: --lora-targets" "--lora-targets LIST"
expect_ok "lora --help" "$MOE" lora --help
out_has "lora help usage" "^usage: moe lora merge BASE ADAPTER OUT"
expect_ok "logits --help" "$MOE" logits --help
out_has "logits help: --lora" "--lora DIR"

# ------------------------------------------------------------ usage errors
expect_fail "lora-rank without init" 2 "--lora-rank adapts a model: give it with --init" \
  "$MOE" train --data "$DATA" --out "$T/x" --config "$BASE/config.json" --lora-rank 4
expect_fail "lora-alpha without rank" 2 "--lora-alpha and --lora-targets need --lora-rank" \
  "$MOE" train --data "$DATA" --out "$T/x" --init "$BASE" --lora-alpha 8
expect_fail "lora-rank 0" 2 "--lora-rank: 0 is out of range" \
  "$MOE" train --data "$DATA" --out "$T/x" --init "$BASE" --lora-rank 0
expect_fail "bad target" 1 "LoRA targets: 'w1' is not one of" \
  "$MOE" train --data "$DATA" --out "$T/x" --init "$BASE" --lora-rank 2 --lora-targets q_proj,w1
expect_fail "gpt_oss refused" 1 "LoRA adapters are supported on mixtral.*not on gpt_oss" \
  "$MOE" train --data "$DATA" --out "$T/y" --init "$FIX/train/gpt_oss" --lora-rank 2
if [ ! -e "$T/y/latest" ] && [ ! -e "$T/x/latest" ]; then ok; else bad "a refused LoRA run left a checkpoint"; fi
expect_fail "lora merge: no subcommand" 2 "" "$MOE" lora
expect_fail "lora merge: unknown subcommand" 2 "unknown subcommand 'split'" "$MOE" lora split a b c
expect_fail "lora merge: no adapter" 1 "adapter_config.json" "$MOE" lora merge "$BASE" "$T/none" "$T/m"
expect_fail "logits --lora: no adapter" 1 "--lora $T/none: .*adapter_config.json" \
  "$MOE" logits "$BASE" --ids 1,2 --out "$T/l.bin" --lora "$T/none"

# ---------------------------------------------------------------- training
O="$T/run"
expect_ok "train --lora-rank 4" "$MOE" train --init "$BASE" --data "$DATA" --out "$O" \
  --lora-rank 4 --lora-alpha 8 --lora-targets attn,experts --steps 20 --batch 4 --seq 32 \
  --lr 1e-2 --warmup 2 --eval-every 0 --threads 2 --quiet
out_has "train: saved" "saved step 20: "
first=$(loss_at "$O/log.jsonl" 1) last=$(loss_at "$O/log.jsonl" 20)
if awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }'; then ok
else bad "LoRA loss did not go down: $first -> $last"; fi
for f in adapter_config.json adapter_model.safetensors optimizer.safetensors trainer_state.json; do
  if [ -s "$O/latest/$f" ]; then ok; else bad "checkpoint lacks $f"; fi
done
if [ ! -e "$O/latest/model.safetensors" ]; then ok; else bad "a LoRA checkpoint holds model weights"; fi
if grep -q '"target_parameters"' "$O/latest/adapter_config.json" &&
   grep -q '"mlp.experts.gate_up_proj"' "$O/latest/adapter_config.json" &&
   grep -Eq '"r":[[:space:]]*4,' "$O/latest/adapter_config.json" &&
   grep -Eq '"lora_alpha":[[:space:]]*8,' "$O/latest/adapter_config.json"; then ok
else bad "adapter_config.json: $(cat "$O/latest/adapter_config.json")"; fi
if [ -s "$O/base/model.safetensors" ] && [ ! -e "$O/step-00000000" ]; then ok
else bad "the f32 base is not kept as OUT/base"; fi

# stopped after 10 steps and resumed: the losses of an unbroken run, bit for bit
S="$T/stop"
LORA_RUN="--init $BASE --data $DATA --lora-rank 4 --lora-alpha 8 --lora-targets attn,experts \
  --steps 20 --batch 4 --seq 32 --lr 1e-2 --warmup 2 --eval-every 0 --threads 2 --quiet"
# shellcheck disable=SC2086 # the words of LORA_RUN
expect_ok "train --stop-after 10" "$MOE" train $LORA_RUN --out "$S" --stop-after 10
# shellcheck disable=SC2086
expect_ok "train --resume" "$MOE" train $LORA_RUN --out "$S" --resume
losses() { grep '"lr"' "$1" | sed -E 's/.*"step":([0-9]+),"loss":([^,]*).*/\1 \2/'; }
if [ "$(losses "$S/log.jsonl")" = "$(losses "$O/log.jsonl")" ] && [ "$(losses "$O/log.jsonl" | wc -l)" -eq 20 ]; then ok
else bad "resumed losses differ: $(losses "$S/log.jsonl" | tail -3 | tr '\n' ' ') vs $(losses "$O/log.jsonl" | tail -3 | tr '\n' ' ')"; fi
if cmp -s "$S/latest/adapter_model.safetensors" "$O/latest/adapter_model.safetensors"; then ok
else bad "resumed adapter differs from the unbroken run's"; fi
expect_fail "resume without --lora-rank" 1 "holds a LoRA adapter: resume with the run's --lora-rank" \
  "$MOE" train --init "$BASE" --data "$DATA" --out "$S" --resume --steps 30 --batch 4 --seq 32
expect_fail "resume with another rank" 1 "the run's adapter has r = 4" \
  "$MOE" train --init "$BASE" --data "$DATA" --out "$S" --resume --steps 30 --batch 4 --seq 32 \
  --lora-rank 8 --lora-alpha 8 --lora-targets attn,experts

# ------------------------------------------------------------- inference
IDS=5,17,3,42,8,60
expect_ok "logits base" "$MOE" logits "$BASE" --ids $IDS --out "$T/base.bin" -t 2
expect_ok "logits --lora" "$MOE" logits "$BASE" --ids $IDS --out "$T/lora.bin" -t 2 --lora "$O/latest"
if ! cmp -s "$T/base.bin" "$T/lora.bin"; then ok; else bad "--lora changed nothing"; fi
expect_ok "lora merge" "$MOE" lora merge "$BASE" "$O/latest" "$T/merged"
out_has "lora merge: line" "^merged "
expect_ok "logits merged" "$MOE" logits "$T/merged" --ids $IDS --out "$T/merged.bin" -t 2
if cmp -s "$T/lora.bin" "$T/merged.bin"; then ok; else bad "merged logits differ from --lora"; fi
expect_ok "ppl --lora" "$MOE" ppl "$BASE" --ids 5,17,3,42,8,60,23,11 --lora "$O/latest" --json -t 2
out_has "ppl --lora: json" "\"perplexity\""
expect_ok "logits --lora peft's adapter" "$MOE" logits "$BASE" --ids $IDS --out "$T/peft.bin" \
  --lora "$FIX/lora/mixtral/adapter" -t 2
expect_fail "logits --lora with --mem" 1 "expert adapters need the experts in memory" \
  "$MOE" logits "$BASE" --ids $IDS --out "$T/x.bin" --lora "$O/latest" --mem 64K
expect_fail "another model's adapter" 1 "q_proj.lora_B.weight has shape" \
  "$MOE" logits "$BASE" --ids $IDS --out "$T/x.bin" --lora "$FIX/lora/qwen3_moe/adapter"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
