#!/bin/sh
# train.sh - `moe train` end to end on a tiny model (dim 32, 2 layers, 4
# experts top-2): tokenizer train -> data -> train 20 steps; the JSONL log
# (one line a step with step, loss, lr, aux_loss, z_loss, tokens_per_s; the
# loss goes down), the checkpoint (info, logits, generate), --stop-after 10
# then --resume giving exactly the losses of an unbroken run, and usage
# errors; gpt_oss trains (from the fixture of tests/fixtures/train), so do
# deepseek_v3 (latent attention, group-limited routing with bias balancing)
# and glm4_moe (partial rotary), and qwen3_next is refused. Runs in a few
# seconds.
#   MOE=build/moe sh tests/cli/train.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS="$HERE/../fixtures/tokenizer_train/corpus.txt"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-train.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

. "$HERE/harness.inc"
err_has() {
  if grep -Eq -- "$2" "$T/err"; then ok; else bad "$1: stderr lacks '$2': $(head -c 300 "$T/err")"; fi
}

# step_lines LOG: the training-step records of a JSONL log (evaluation or
# other records, if any, carry no "lr")
step_lines() { grep '"step"' "$1" 2>/dev/null | grep '"lr"'; }
# field NAME: the value of JSON field NAME on each line of stdin, as written
field() { sed -E "s/.*\"$1\"[[:space:]]*:[[:space:]]*([^,}[:space:]]*).*/\1/"; }

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

# ------------------------------------------------------------------- help
expect_ok "moe --help" "$MOE" --help
out_has "moe --help lists train" "^  train "
expect_ok "moe train --help" "$MOE" train --help
out_has "train help usage" "^usage: moe train --data DIR --out DIR"
out_has "train help: router kinds" "token_choice.*expert_choice.*hash"
out_has "train help: score" "\"score\": \"softmax\" \\| \"sigmoid\""
out_has "train help: capacity_factor" "\"capacity_factor\""
out_has "train help: select_bias" "\"select_bias\""
out_has "train help: group" "\"group\": \"max\" \| \"top2_sum\""
out_has "train help: defaults shown" "--steps N +optimizer steps in all \([0-9]+\)"
out_has "train help: lr default" "--lr X +peak learning rate \([0-9.e-]+\)"

# ------------------------------------------------------------ usage errors
D="$T/data" C="$T/config.json"
expect_fail "no --data" 2 "--data DIR is required" "$MOE" train --out "$T/o" --config "$C"
expect_fail "no --out" 2 "--out DIR is required" "$MOE" train --data "$D" --config "$C"
expect_fail "no model" 2 "--config CONFIG.json or --init MODEL is required" "$MOE" train --data "$D" --out "$T/o"
expect_fail "config and init" 2 "exclude each other" "$MOE" train --data "$D" --out "$T/o" --config "$C" --init "$T/m"
expect_fail "unknown flag" 2 "unknown option '--bogus'" "$MOE" train --bogus
expect_fail "positional" 2 "unexpected argument 'x'" "$MOE" train x
expect_fail "steps 0" 2 "--steps: 0 is out of range" "$MOE" train --data "$D" --out "$T/o" --config "$C" --steps 0
expect_fail "steps abc" 2 "--steps: 'abc' is not an integer" "$MOE" train --steps abc
expect_fail "batch 0" 2 "--batch: 0 is out of range" "$MOE" train --batch 0
expect_fail "accum 0" 2 "--accum: 0 is out of range" "$MOE" train --accum 0
expect_fail "lr 0" 2 "--lr: 0 is out of range \(0, 10\]" "$MOE" train --data "$D" --out "$T/o" --config "$C" --lr 0
expect_fail "lr word" 2 "--lr: 'fast' is not a number" "$MOE" train --data "$D" --out "$T/o" --config "$C" --lr fast
expect_fail "lr nan" 2 "--lr: 'nan' is not a number" "$MOE" train --data "$D" --out "$T/o" --config "$C" --lr nan
expect_fail "beta2 1" 2 "--beta2: 1 is out of range \[0, 1\)" "$MOE" train --data "$D" --out "$T/o" --config "$C" --beta2 1
expect_fail "min-lr above lr" 2 "--min-lr 0.1 is above --lr 0.01" "$MOE" train --data "$D" --out "$T/o" --config "$C" --lr 0.01 --min-lr 0.1
expect_fail "negative aux" 2 "--aux: -1 is out of range" "$MOE" train --aux -1
expect_fail "init-std 0" 2 "--init-std: 0 is out of range \(0" "$MOE" train --init-std 0
expect_fail "bad seed" 2 "--seed: '-1' is not an unsigned" "$MOE" train --seed -1
expect_fail "resume takes no value" 2 "--resume takes no value" "$MOE" train --resume=1
expect_fail "--lr without value" 2 "--lr needs a value" "$MOE" train --data "$D" --lr

# ---------------------------------------------- tokenizer -> data shards
expect_ok "tokenizer train" "$MOE" tokenizer train --vocab 400 --out "$T/tok" -q "$CORPUS"
expect_ok "data" "$MOE" data --tokenizer "$T/tok" --out "$D" --val-frac 0.1 -q "$CORPUS"
[ -f "$D/train.bin" ] && [ -f "$D/val.bin" ] && ok || bad "data: shards missing"

# A tiny mixtral: dim 32, 2 layers, 4 experts top-2, vocab = the tokenizer's.
cat >"$C" <<'EOF'
{
  "architectures": ["MixtralForCausalLM"],
  "model_type": "mixtral",
  "vocab_size": 400,
  "hidden_size": 32,
  "intermediate_size": 64,
  "num_hidden_layers": 2,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "num_local_experts": 4,
  "num_experts_per_tok": 2,
  "max_position_embeddings": 128,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "bos_token_id": null,
  "eos_token_id": 399
}
EOF
# the same options for every run below; lr high enough to move in 20 steps
TRAIN="--data $D --config $C --tokenizer $T/tok --steps 20 --batch 4 --seq 32 --lr 3e-3
       --min-lr 3e-4 --warmup 2 --seed 7 --threads 2 --eval-every 10 --eval-batches 2
       --save-every 10 --keep 2"

# ------------------------------------------------------ errors of the work
expect_fail "missing data dir" 1 "$T/nodata" "$MOE" train --data "$T/nodata" --out "$T/o1" --config "$C" --steps 2
printf '{"model_type": "mixtral", "hidden_size": ' >"$T/broken.json"
expect_fail "broken config" 1 "broken.json" "$MOE" train --data "$D" --out "$T/o2" --config "$T/broken.json" --steps 2
expect_fail "missing config" 1 "$T/noconfig.json" "$MOE" train --data "$D" --out "$T/o3" --config "$T/noconfig.json" --steps 2
sed 's/"vocab_size": 400/"vocab_size": 300/' "$C" >"$T/small_vocab.json"
expect_fail "vocab smaller than the data's" 1 "train.bin: token [0-9]+ is id 3[0-9][0-9], not below the model's vocabulary size 300" \
  "$MOE" train --data "$D" --out "$T/o4" --config "$T/small_vocab.json" --steps 2
# val.bin is checked before step 1 too, not at the first evaluation: its
# header's vocab raised to 65535 and token 3 made id 500 (the model has 400)
mkdir -p "$T/badval"
cp "$D/train.bin" "$D/val.bin" "$D/meta.json" "$T/badval/"
voff=$(od -An -t u4 -j 32 -N 4 "$T/badval/val.bin" | tr -d ' ')
printf '\377\377' | dd of="$T/badval/val.bin" bs=1 seek=24 conv=notrunc 2>/dev/null
printf '\364\001' | dd of="$T/badval/val.bin" bs=1 seek=$((voff + 6)) conv=notrunc 2>/dev/null
expect_fail "val id past the model's vocab" 1 "val.bin: token 3 is id 500, not below the model's vocabulary size 400" \
  "$MOE" train --data "$T/badval" --out "$T/o6" --config "$C" --steps 2 --eval-every 1 --log "$T/o6.jsonl"
if [ -s "$T/o6.jsonl" ]; then bad "val check: a step ran before it: $(head -c 200 "$T/o6.jsonl")"; else ok; fi
expect_fail "resume without a checkpoint" 1 "$T/o5" "$MOE" train --data "$D" --out "$T/o5" --config "$C" --steps 2 --resume

# ---------------------------------------- noisy top-k: trains, info says so
sed 's/"eos_token_id": 399/"eos_token_id": 399, "moe": {"noise": 1.0}/' "$C" >"$T/noisy.json"
expect_ok "train noisy top-k" "$MOE" train --data "$D" --config "$T/noisy.json" --tokenizer "$T/tok" \
  --steps 2 --batch 2 --seq 16 --threads 1 --save-every 2 --out "$T/noisy"
expect_ok "info noisy" "$MOE" info "$T/noisy/latest"
out_has "info names noisy top-k" "noisy top-k \(x1, training only\)"

# -------------------------------------------------- 20 steps, one run
R1="$T/run1"
# shellcheck disable=SC2086
expect_ok "train 20 steps" "$MOE" train $TRAIN --out "$R1" --log "$T/run1.jsonl"
cp "$T/out" "$T/run1.out"
err_has "progress line (not a terminal)" "^step 20/20 +loss [0-9.]+ +lr [0-9.e+-]+ +aux [0-9.]+ +[0-9]+ tok/s +ETA"
err_has "first step shown" "^step +1/20 "
out_has "evaluation lines" "^eval  step 10/20: val loss [0-9.]+, perplexity [0-9.]+"
out_has "evaluation at the end" "^eval  step 20/20: "
out_has "checkpoint lines" "^saved step 20: "
out_has "summary" "^trained steps 1\.\.20 of 20 in "
if [ "$(step_lines "$T/run1.jsonl" | wc -l)" -eq 20 ]; then ok; else bad "log: $(step_lines "$T/run1.jsonl" | wc -l) step lines, expected 20"; fi
missing=""
for k in step loss lr aux_loss z_loss tokens_per_s; do
  n=$(step_lines "$T/run1.jsonl" | grep -c "\"$k\"[[:space:]]*:")
  [ "$n" -eq 20 ] || missing="$missing $k($n)"
done
[ -z "$missing" ] && ok || bad "log: fields missing on some lines:$missing"
if [ "$(step_lines "$T/run1.jsonl" | field step | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 " ]; then ok
else bad "log: steps are $(step_lines "$T/run1.jsonl" | field step | tr '\n' ' ')"; fi
first=$(step_lines "$T/run1.jsonl" | head -n 1 | field loss)
last=$(step_lines "$T/run1.jsonl" | tail -n 1 | field loss)
if awk -v a="$first" -v b="$last" 'BEGIN { exit !(b + 0 < a + 0) }'; then ok
else bad "loss did not go down: step 1 $first, step 20 $last"; fi
# each value a finite number
if step_lines "$T/run1.jsonl" | field loss | grep -Eqv '^-?[0-9][0-9.]*([eE][+-]?[0-9]+)?$'; then bad "log: a loss is not a finite number"; else ok; fi
if [ -d "$R1/latest" ] && [ -f "$R1/latest/config.json" ] && [ -f "$R1/latest/model.safetensors" ]; then ok
else bad "checkpoint: $R1/latest lacks config.json / model.safetensors: $(ls -la "$R1" "$R1/latest" 2>&1 | head -20)"; fi
[ -f "$R1/latest/tokenizer.json" ] && ok || bad "checkpoint: tokenizer.json not copied"
[ -f "$R1/latest/trainer_state.json" ] && [ -f "$R1/latest/optimizer.safetensors" ] && ok \
  || bad "checkpoint: trainer_state.json / optimizer.safetensors missing"
[ -z "$(ls "$R1" | grep -i tmp)" ] && ok || bad "checkpoint: temporary left behind: $(ls "$R1")"

# ----------------------------------------------- the checkpoint loads
expect_ok "info on the checkpoint" "$MOE" info "$R1/latest"
out_has "info: mixtral" "mixtral"
expect_ok "logits on the checkpoint" "$MOE" logits "$R1/latest" --ids 1,2,3
[ -s "$T/out" ] && ok || bad "logits: no output"
expect_ok "generate on the checkpoint" "$MOE" generate "$R1/latest" -p "The quick" -n 8 --seed 1
[ -s "$T/out" ] && ok || bad "generate: no output"

# ------------------------------- --stop-after 10, then --resume: identical
R2="$T/run2"
# shellcheck disable=SC2086
expect_ok "train, stop after 10" "$MOE" train $TRAIN --out "$R2" --log "$T/run2.jsonl" --stop-after 10
if [ "$(step_lines "$T/run2.jsonl" | wc -l)" -eq 10 ]; then ok; else bad "stop-after 10: $(step_lines "$T/run2.jsonl" | wc -l) step lines"; fi
[ -d "$R2/latest" ] && ok || bad "stop-after: no checkpoint at $R2/latest"
# shellcheck disable=SC2086
expect_ok "resume" "$MOE" train $TRAIN --out "$R2" --log "$T/run2.jsonl" --resume
out_has "resume summary" "^trained steps 11\.\.20 of 20 "
step_lines "$T/run1.jsonl" | tail -n 10 | field loss >"$T/l1"
step_lines "$T/run2.jsonl" | tail -n 10 | field loss >"$T/l2"
step_lines "$T/run2.jsonl" | tail -n 10 | field step | tr '\n' ' ' >"$T/s2"
if [ "$(cat "$T/s2")" = "11 12 13 14 15 16 17 18 19 20 " ]; then ok; else bad "resume: steps are $(cat "$T/s2")"; fi
if [ -s "$T/l1" ] && cmp -s "$T/l1" "$T/l2"; then ok
else bad "resume: losses at steps 11..20 differ: $(paste "$T/l1" "$T/l2" | head -n 10 | tr '\n' ';')"; fi
step_lines "$T/run1.jsonl" | head -n 10 | field loss >"$T/h1"
step_lines "$T/run2.jsonl" | head -n 10 | field loss >"$T/h2"
cmp -s "$T/h1" "$T/h2" && ok || bad "same seed, different losses at steps 1..10"
expect_ok "logits after resume" "$MOE" logits "$R2/latest" --ids 1,2,3
cp "$T/out" "$T/logits2"
run "$MOE" logits "$R1/latest" --ids 1,2,3
cmp -s "$T/out" "$T/logits2" && ok || bad "resumed and unbroken runs end with different weights"
# resuming a finished run does nothing and succeeds
# shellcheck disable=SC2086
expect_ok "resume a finished run" "$MOE" train $TRAIN --out "$R2" --log "$T/run2.jsonl" --resume
if [ "$(step_lines "$T/run2.jsonl" | wc -l)" -eq 20 ]; then ok; else bad "resume of a finished run logged more steps"; fi

# ------------------- --init from a checkpoint, --accum, the default log path
R3="$T/run3"
expect_ok "train from --init" "$MOE" train --data "$D" --init "$R1/latest" --out "$R3" --steps 3 \
  --batch 2 --seq 16 --accum 2 --threads 2 --eval-every 0 --eval-batches 1 --quiet
if [ "$(step_lines "$R3/log.jsonl" | wc -l)" -eq 3 ]; then ok; else bad "--init run: $R3/log.jsonl lacks 3 step lines"; fi
[ ! -s "$T/err" ] && ok || bad "--quiet: stderr not empty: $(head -c 200 "$T/err")"
expect_ok "info on the --init run" "$MOE" info "$R3/latest"

# ------------- gpt_oss: sinks, windows, biases, YaRN, clamped SwiGLU, fused
# experts (the PyTorch fixture of tests/fixtures/train/gpt_oss, vocab 64, and
# a shard of ids below 64): the loss falls, --stop-after + --resume is the
# unbroken run, the checkpoint keeps the source's config.json (swiglu_limit
# stays a float) and runs
FX="$HERE/../fixtures/train"
OSS="--data $FX/gpt_oss_data --init $FX/gpt_oss --steps 8 --batch 2 --seq 16 --lr 3e-3 --warmup 1 --threads 2 --quiet"
# shellcheck disable=SC2086
expect_ok "gpt_oss: train 8 steps" "$MOE" train $OSS --out "$T/oss1"
step_lines "$T/oss1/log.jsonl" | field loss >"$T/oss_l1"
if [ "$(wc -l <"$T/oss_l1")" -eq 8 ] &&
  awk 'NR <= 2 { a += $1 } NR >= 7 { b += $1 } END { exit !(b < a - 1.0) }' "$T/oss_l1"; then ok
else bad "gpt_oss: the mean of the last two losses is not 0.5 below the first two: $(tr '\n' ' ' <"$T/oss_l1")"; fi
grep -Eq '"swiglu_limit":[[:space:]]*1\.0' "$T/oss1/latest/config.json" && ok ||
  bad "gpt_oss checkpoint: config.json lost swiglu_limit 1.0"
expect_ok "gpt_oss: logits of the trained checkpoint" "$MOE" logits "$T/oss1/latest" --ids 3,4,5
# shellcheck disable=SC2086
expect_ok "gpt_oss: stop after 4" "$MOE" train $OSS --out "$T/oss2" --stop-after 4
# shellcheck disable=SC2086
expect_ok "gpt_oss: resume" "$MOE" train $OSS --out "$T/oss2" --resume
step_lines "$T/oss2/log.jsonl" | field loss >"$T/oss_l2"
cmp -s "$T/oss_l1" "$T/oss_l2" && ok ||
  bad "gpt_oss: resumed losses differ: $(paste "$T/oss_l1" "$T/oss_l2" | tr '\n' ';')"

# qwen3_next: its Gated DeltaNet layers have no backward; refused by name,
# before anything is written
QN="$HERE/../fixtures/models/qwen3_next_base"
expect_fail "qwen3_next refused" 1 "layer [0-9]+ is a linear_attention layer \(Gated DeltaNet\).*inference-only" \
  "$MOE" train --data "$FX/gpt_oss_data" --init "$QN" --out "$T/qn" --steps 2 --batch 1 --seq 8
[ ! -e "$T/qn/latest" ] && ok || bad "qwen3_next: a checkpoint was written"

# a GGUF file as --init: refused by name (its tensors carry llama.cpp's
# names), before anything is written
expect_fail "GGUF --init refused" 1 "mixtral_f32.gguf: training starts from a Hugging Face directory, not a GGUF file" \
  "$MOE" train --data "$FX/gpt_oss_data" --init "$HERE/../fixtures/gguf_models/mixtral_f32.gguf" \
  --out "$T/gg" --steps 1 --batch 1 --seq 8
[ ! -e "$T/gg/latest" ] && ok || bad "GGUF --init: a checkpoint was written"

# deepseek_v3 (`moe init --preset tiny-deepseek-v3`: latent attention with
# q_lora_rank, YaRN, a dense layer 0, then 8 experts in 4 groups with sigmoid
# scores and a selection bias) on the corpus's shards: the loss falls, the
# log carries each MoE layer's balance (layers 1 and 2, not the dense 0: the
# loads of 2 x 32 tokens x top-2 = 128 pairs, max_violation, dead) and the
# selection biases the balancing moved, and the checkpoint runs
DS="$T/ds3"
expect_ok "init tiny-deepseek-v3" "$MOE" init --preset tiny-deepseek-v3 --vocab 400 --dtype f32 "$DS"
expect_ok "deepseek_v3: train 8 steps" "$MOE" train --data "$D" --init "$DS" --tokenizer "$T/tok" --out "$T/ds3run" \
  --steps 8 --batch 2 --seq 32 --lr 3e-3 --warmup 1 --bias-rate 0.01 --threads 2 --eval-every 0 --quiet
DL="$T/ds3run/log.jsonl"
[ "$(step_lines "$DL" | wc -l)" -eq 8 ] && ok || bad "deepseek_v3: not 8 step lines in $DL"
step_lines "$DL" | field loss >"$T/ds_l"
if awk 'NR <= 2 { a += $1 } NR >= 7 { b += $1 } END { exit !(b < a) }' "$T/ds_l"; then ok
else bad "deepseek_v3: the loss did not fall: $(tr '\n' ' ' <"$T/ds_l")"; fi
if [ "$(step_lines "$DL" | grep -o '"layer":[0-9]*' | sort | uniq -c | tr -s ' ' | tr '\n' ';')" = " 8 \"layer\":1; 8 \"layer\":2;" ]; then ok
else bad "deepseek_v3: the log's layers are not 1 and 2 on every step: $(step_lines "$DL" | head -n 1 | head -c 400)"; fi
step_lines "$DL" | grep -o '"max_violation":[0-9.]*,"dead":[0-9]*' | wc -l >"$T/ds_mv"
[ "$(cat "$T/ds_mv")" -eq 16 ] && ok || bad "deepseek_v3: max_violation/dead on $(cat "$T/ds_mv") of 16 layer records"
if step_lines "$DL" | grep -o '"load":\[[0-9,]*\]' | tr -d '"load:[]' |
  awk -F, 'NF != 8 { exit 1 } { s = 0; for (i = 1; i <= NF; i++) s += $i; if (s != 128) exit 1 }'; then ok
else bad "deepseek_v3: a layer's load is not 8 experts summing to 128 pairs"; fi
if step_lines "$DL" | tail -n 1 | grep -o '"sel_bias":\[[^]]*\]' | tr -d '"sel_bias:[]' |
  awk -F, 'NF != 8 { exit 1 } { for (i = 1; i <= NF; i++) if ($i != 0) n++ } END { exit !(NR == 2 && n > 0) }'; then ok
else bad "deepseek_v3: the last step lacks two layers' moved sel_bias: $(step_lines "$DL" | tail -n 1 | head -c 600)"; fi
expect_ok "deepseek_v3: logits of the trained checkpoint" "$MOE" logits "$T/ds3run/latest" --ids 3,4,5
expect_ok "deepseek_v3: generate on the trained checkpoint" "$MOE" generate "$T/ds3run/latest" -p "The" -n 4 --seed 1

# glm4_moe (partial rotary, q/k/v biases, q/k norm) and deepseek_v3 without
# q_lora_rank (rotary dims in halves) train from the conformance fixtures
for m in glm4_moe_base deepseek_v3_noq; do
  expect_ok "$m: train 4 steps" "$MOE" train --data "$FX/gpt_oss_data" \
    --init "$HERE/../fixtures/models/$m" --out "$T/$m" --steps 4 --batch 1 --seq 16 --quiet
  [ "$(step_lines "$T/$m/log.jsonl" | wc -l)" -eq 4 ] && ok || bad "$m: not 4 step lines"
done

# group-limited sigmoid routing with bias balancing (DeepSeek-V3 style on a
# mixtral layout) trains; the log carries the load the bias balances
GR="$HERE/../fixtures/train/sigmoid_group"
expect_ok "sigmoid_group trains" "$MOE" train --data "$FX/gpt_oss_data" --init "$GR" \
  --out "$T/grp" --steps 4 --batch 1 --seq 8
[ "$(step_lines "$T/grp/log.jsonl" | wc -l)" -eq 4 ] && ok || bad "sigmoid_group: not 4 step lines"

# ------------------ `moe bench --probe-only` (bench/train_bench.sh reads it)
expect_ok "bench --probe-only" "$MOE" bench --probe-only --json --threads 1 --probe-mb 16
out_has "probe json" "^\{\"threads\": 1, \"peak_gflop_s\": [0-9.]+, \"int8_peak_gop_s\": [0-9.]+, \"int8_path\": \"[a-z0-9-]+\", \"int8_block_peak_gop_s\": [0-9.]+, \"bandwidth_gb_s\": [0-9.]+, \"numa_nodes\": [1-9][0-9]*, \"numa_interleaved_bytes\": [0-9]+\}$"
expect_fail "bench --probe-only with a model" 2 "--probe-only takes no MODEL" "$MOE" bench --probe-only "$R1/latest"
expect_fail "bench without a model" 2 "missing argument: expected MODEL" "$MOE" bench

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
