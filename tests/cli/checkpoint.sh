#!/bin/sh
# checkpoint.sh - training checkpoints survive kill -9 and bad numbers:
#  - a run saving every step is killed (SIGKILL) at several random moments;
#    each time OUT/latest must name a complete checkpoint that `moe info`
#    loads and that --resume continues from;
#  - a non-finite loss stops the run with a message before any update, and
#    nothing after the last good checkpoint is written.
#   MOE=build/moe sh tests/cli/checkpoint.sh   ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS="$HERE/../fixtures/tokenizer_train/corpus.txt"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-ckpt.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

"$MOE" tokenizer train --vocab 300 --out "$T/tok" "$CORPUS" >/dev/null 2>&1 || bad "tokenizer train"
"$MOE" data --tokenizer "$T/tok" --out "$T/data" "$CORPUS" >/dev/null 2>&1 || bad "data"
cat > "$T/cfg.json" <<'CFG'
{"model_type":"mixtral","vocab_size":300,"hidden_size":32,"intermediate_size":32,
 "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
 "num_local_experts":4,"num_experts_per_tok":2,"max_position_embeddings":64,
 "rope_theta":10000.0,"rms_norm_eps":1e-5}
CFG
TRAIN="--data $T/data --seq 16 --batch 2 --threads 1 --warmup 2 --eval-every 0"

# kill -9 at random moments of a run that saves every step
for i in 1 2 3 4 5; do
  out="$T/run$i"
  "$MOE" train $TRAIN --out "$out" --config "$T/cfg.json" --steps 100000 --save-every 1 \
    >/dev/null 2>&1 &
  pid=$!
  # the first checkpoint first (a loaded machine may take seconds to get
  # there), then 0.2 .. 1.1 s more: a few checkpoints, then an arbitrary moment
  w=0
  while [ ! -L "$out/latest" ] && [ "$w" -lt 600 ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.1 2>/dev/null || sleep 1
    w=$((w + 1))
  done
  sleep "0.$((i * 2))" 2>/dev/null || sleep 1
  [ "$i" -gt 3 ] && sleep 0.3
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if [ ! -L "$out/latest" ]; then bad "kill $i: no OUT/latest"; continue; fi
  if "$MOE" info "$out/latest" >/dev/null 2>"$T/err"; then ok; else bad "kill $i: latest does not load: $(head -c 300 "$T/err")"; fi
  if [ -f "$out/latest/trainer_state.json" ] && [ -f "$out/latest/optimizer.safetensors" ]; then ok
  else bad "kill $i: latest checkpoint incomplete"; fi
  step=$(sed -n 's/.*"step": *\([0-9]*\).*/\1/p' "$out/latest/trainer_state.json" | head -n 1)
  if "$MOE" train $TRAIN --out "$out" --resume --steps 100000 --stop-after 2 >/dev/null 2>"$T/err"; then ok
  else bad "kill $i: resume from step $step failed: $(head -c 300 "$T/err")"; fi
done

# a non-finite loss stops the run before the update, with a message: start
# from a model whose last weight (the lm_head, in moe init's order) is NaN
"$MOE" init --preset tiny --dtype f32 "$T/nanmodel" >/dev/null 2>&1 || bad "init"
f="$T/nanmodel/model.safetensors"
size=$(wc -c < "$f")
printf '\000\000\300\177' | dd of="$f" bs=1 seek=$((size - 4)) conv=notrunc 2>/dev/null
"$MOE" train $TRAIN --out "$T/nan" --init "$T/nanmodel" --steps 5 >/dev/null 2>"$T/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -Eq "loss is (nan|-?inf)" "$T/err"; then ok
else bad "NaN weights: exit $rc, stderr: $(head -c 300 "$T/err")"; fi
if [ ! -e "$T/nan/step-00000001" ]; then ok; else bad "NaN weights: a step was saved"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
