#!/bin/sh
# train_mod.sh - `moe train` on Mixture-of-Depths models (docs/TRAINING.md
# "Mixture-of-Depths"): a dense qwen2_moe-layout model with MoD on every
# layer and a mixtral with MoD on odd layers train from a config.json; the
# log carries mod_bce, mod_acc and mod_frac; the checkpoint keeps the MoD
# routers and the "mod" config and runs (info, logits, generate, ppl);
# --resume gives the unbroken run's losses; --upcycle keeps the MoD layers; --recompute, a bad "mod" object
# and GGUF output are refused with their reason. Runs in a few seconds.
#   MOE=build/moe sh tests/cli/train_mod.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS="$HERE/../fixtures/tokenizer_train/corpus.txt"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-train-mod.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

. "$HERE/harness.inc"
step_lines() { grep '"step"' "$1" 2>/dev/null | grep '"lr"'; }
field() { sed -E "s/.*\"$1\"[[:space:]]*:[[:space:]]*([^,}[:space:]]*).*/\1/"; }

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

expect_ok "train --help" "$MOE" train --help
out_has "help: mod object" "\"mod\": \{\"capacity\": c, \"layers\""
out_has "help: --mod-aux" "--mod-aux X +Mixture-of-Depths router BCE coefficient \(0.01\)"

D="$T/data"
expect_ok "tokenizer train" "$MOE" tokenizer train --vocab 400 --out "$T/tok" -q "$CORPUS"
expect_ok "data" "$MOE" data --tokenizer "$T/tok" --out "$D" --val-frac 0.1 -q "$CORPUS"

# dense (qwen2_moe layout, no experts), MoD on every layer at capacity 0.5
cat >"$T/dense.json" <<'EOF'
{
  "model_type": "qwen2_moe", "vocab_size": 400, "hidden_size": 32, "intermediate_size": 64,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "num_experts": 0, "qkv_bias": false, "max_position_embeddings": 128, "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0, "tie_word_embeddings": false, "eos_token_id": 399,
  "moe": {"mod": {"capacity": 0.5, "layers": "all"}}
}
EOF
# mixtral, MoD on the odd layers
cat >"$T/mixtral.json" <<'EOF'
{
  "model_type": "mixtral", "vocab_size": 400, "hidden_size": 32, "intermediate_size": 32,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "num_local_experts": 4, "num_experts_per_tok": 2, "max_position_embeddings": 128,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false,
  "eos_token_id": 399, "moe": {"mod": {"capacity": 0.25, "layers": "odd"}}
}
EOF
TRAIN="--data $D --tokenizer $T/tok --steps 12 --batch 4 --seq 32 --lr 3e-3 --min-lr 3e-4
       --warmup 2 --seed 7 --threads 2 --eval-every 6 --eval-batches 2 --save-every 6 -q"

for kind in dense mixtral; do
  R="$T/run_$kind"
  # shellcheck disable=SC2086
  expect_ok "$kind: train" "$MOE" train $TRAIN --config "$T/$kind.json" --out "$R" --log "$T/$kind.jsonl"
  if [ "$(step_lines "$T/$kind.jsonl" | wc -l)" -eq 12 ]; then ok
  else bad "$kind: $(step_lines "$T/$kind.jsonl" | wc -l) step lines, expected 12"; fi
  for k in mod_bce mod_acc mod_frac; do
    n=$(step_lines "$T/$kind.jsonl" | grep -c "\"$k\":[0-9]")
    [ "$n" -eq 12 ] && ok || bad "$kind: log field $k on $n of 12 lines"
  done
  if [ "$kind" = mixtral ]; then
    # the MoE statistics of a MoD layer count the tokens it took: none dropped
    n=$(step_lines "$T/$kind.jsonl" | grep -c '"dropped_frac":0.000000,')
    [ "$n" -eq 12 ] && ok || bad "$kind: dropped_frac not 0 on $((12 - n)) of 12 lines (no capacity)"
  fi
  first=$(step_lines "$T/$kind.jsonl" | head -n 1 | field loss)
  last=$(step_lines "$T/$kind.jsonl" | tail -n 1 | field loss)
  if awk -v a="$first" -v b="$last" 'BEGIN { exit !(b + 0 < a + 0) }'; then ok
  else bad "$kind: loss did not go down: $first -> $last"; fi
  grep -q '"val_loss":[0-9.]*,"val_ppl":[0-9.]*,"val_loss_topc":[0-9]' "$T/$kind.jsonl" && ok \
    || bad "$kind: no evaluation with both rules in the log: $(tail -n 1 "$T/$kind.jsonl")"
  grep -q '"mod"' "$R/latest/config.json" && grep -q '"capacity"' "$R/latest/config.json" && ok \
    || bad "$kind: the checkpoint's config.json lacks moe.mod: $(cat "$R/latest/config.json")"
  grep -q 'mod_router.weight' "$R/latest/model.safetensors" && ok \
    || bad "$kind: the checkpoint has no mod_router weights"
  expect_ok "$kind: info" "$MOE" info "$R/latest"
  out_has "$kind: info names MoD" "^depth routing Mixture-of-Depths on (2|1) of 2 layers \((0 1|1)\): capacity 0.(5|25)"
  expect_ok "$kind: logits" "$MOE" logits "$R/latest" --ids 1,2,3,4,5
  [ -s "$T/out" ] && ok || bad "$kind: logits: no output"
  expect_ok "$kind: generate" "$MOE" generate "$R/latest" -p "The quick" -n 8 --seed 1
  expect_ok "$kind: ppl" "$MOE" ppl "$R/latest" --text "$CORPUS" --ctx 32
  out_has "$kind: ppl result" "[Pp]erplexity"
done

# upcycling keeps the MoD layers and their routers
# shellcheck disable=SC2086
expect_ok "upcycle a MoD model" "$MOE" train $TRAIN --upcycle "$T/run_dense/latest" --experts 2 --steps 2 --out "$T/up"
grep -q '"mod"' "$T/up/latest/config.json" && grep -q 'mod_router.weight' "$T/up/latest/model.safetensors" && ok \
  || bad "upcycle: moe.mod or the routers lost: $(cat "$T/up/latest/config.json")"

# --stop-after then --resume: the unbroken run's losses (dense)
R2="$T/run_resume"
# shellcheck disable=SC2086
expect_ok "stop after 6" "$MOE" train $TRAIN --config "$T/dense.json" --out "$R2" --log "$T/r2.jsonl" --stop-after 6
# shellcheck disable=SC2086
expect_ok "resume" "$MOE" train $TRAIN --config "$T/dense.json" --out "$R2" --log "$T/r2.jsonl" --resume
step_lines "$T/dense.jsonl" | field loss >"$T/l1"
step_lines "$T/r2.jsonl" | field loss >"$T/l2"
if [ -s "$T/l1" ] && cmp -s "$T/l1" "$T/l2"; then ok
else bad "resume: losses differ: $(paste "$T/l1" "$T/l2" | tr '\n' ';')"; fi

# refusals
# shellcheck disable=SC2086
expect_fail "recompute" 1 "Mixture-of-Depths layer: activation recomputation \(--recompute\)" \
  "$MOE" train $TRAIN --config "$T/dense.json" --out "$T/rc" --recompute
sed 's/"capacity": 0.5/"capacity": 0/' "$T/dense.json" >"$T/cap0.json"
# shellcheck disable=SC2086
expect_fail "capacity 0" 1 "moe.mod.capacity: 0 is not in \(0, 1\]" \
  "$MOE" train $TRAIN --config "$T/cap0.json" --out "$T/c0"
sed 's/"layers": "odd"/"layers": [2]/' "$T/mixtral.json" >"$T/badlayer.json"
# shellcheck disable=SC2086
expect_fail "layer out of range" 1 "moe.mod.layers: layer 2 out of range" \
  "$MOE" train $TRAIN --config "$T/badlayer.json" --out "$T/bl"
expect_fail "no GGUF" 1 "Mixture-of-Depths" "$MOE" convert "$T/run_mixtral/latest" "$T/m.gguf"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
