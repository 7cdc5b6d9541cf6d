#!/bin/sh
# grow.sh - `moe train --freeze`, `--upcycle` and `--add-experts` end to
# end on a tiny model (dim 32, 2 layers): a dense qwen2_moe (num_experts 0)
# trains 6 steps; upcycled to 4 experts its step-0 checkpoint gives the
# dense model's logits (moe logits, within 1e-5 of their range) and the run
# goes on; 2 experts are added to that with old-experts,old-router frozen
# (config says 6, info and logits load it; that the old experts keep their
# bytes: tests/test_train_freeze.c), the state names the groups, --resume
# keeps them; usage errors.
# Runs in a few seconds.
#   MOE=build/moe sh tests/cli/grow.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS="$HERE/../fixtures/tokenizer_train/corpus.txt"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-grow.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

. "$HERE/harness.inc"
err_has() {
  if grep -Eq -- "$2" "$T/err"; then ok; else bad "$1: stderr lacks '$2': $(head -c 300 "$T/err")"; fi
}
# same_floats NAME A B TOL: two raw float32 files agree to TOL x max|A|
same_floats() {
  od -An -v -t f4 -w4 "$2" >"$T/fa" && od -An -v -t f4 -w4 "$3" >"$T/fb"
  r=$(paste "$T/fa" "$T/fb" | awk -v tol="$4" '{ d = $1 - $2; if (d < 0) d = -d; a = $1 < 0 ? -$1 : $1;
        if (d > md) md = d; if (a > ma) ma = a; n++ }
        END { if (n > 0 && md <= tol * ma) print "ok"; else printf "n %d max|a-b| %g max|a| %g\n", n, md, ma }')
  if [ "$r" = ok ]; then ok; else bad "$1: $r"; fi
}

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

expect_ok "train --help" "$MOE" train --help
out_has "help: --freeze" "--freeze LIST"
out_has "help: groups" "router \(gate rows, shared-expert gate\), experts"
out_has "help: --upcycle" "--upcycle DENSE"
out_has "help: --add-experts" "--add-experts N"

# ------------------------------------------------------------ usage errors
D="$T/data" C="$T/dense.json"
expect_fail "upcycle without experts" 2 "--upcycle needs --experts E" "$MOE" train --data "$D" --out "$T/o" --upcycle "$T/m"
expect_fail "upcycle and init" 2 "--upcycle is the start: not with --config or --init" "$MOE" train --data "$D" --out "$T/o" --upcycle "$T/m" --init "$T/m" --experts 4
expect_fail "experts without upcycle" 2 "--experts and --top-k size an upcycled model" "$MOE" train --data "$D" --out "$T/o" --config "$C" --experts 4
expect_fail "add-experts without init" 2 "--add-experts N needs --init MODEL" "$MOE" train --data "$D" --out "$T/o" --config "$C" --add-experts 2
expect_fail "noise alone" 2 "--upcycle-noise goes with --upcycle or --add-experts" "$MOE" train --data "$D" --out "$T/o" --config "$C" --upcycle-noise 0.1
expect_fail "negative noise" 2 "--upcycle-noise: -1 is out of range" "$MOE" train --data "$D" --out "$T/o" --upcycle "$T/m" --experts 2 --upcycle-noise -1
expect_fail "resume and add" 2 "--resume continues a run" "$MOE" train --data "$D" --out "$T/o" --init "$T/m" --add-experts 2 --resume
expect_fail "add-experts 0" 2 "--add-experts: 0 is out of range" "$MOE" train --add-experts 0

# ---------------------------------------------------------------- the data
expect_ok "tokenizer train" "$MOE" tokenizer train --vocab 400 --out "$T/tok" -q "$CORPUS"
expect_ok "data" "$MOE" data --tokenizer "$T/tok" --out "$D" --val-frac 0.1 -q "$CORPUS"

# The dense baseline layout of experiments/common.sh (config_qwen2 with E = 0).
cat >"$C" <<'EOF'
{
  "architectures": ["Qwen2MoeForCausalLM"],
  "model_type": "qwen2_moe",
  "vocab_size": 400,
  "hidden_size": 32,
  "intermediate_size": 64,
  "moe_intermediate_size": 32,
  "shared_expert_intermediate_size": 32,
  "num_hidden_layers": 2,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "num_experts": 0,
  "num_experts_per_tok": 2,
  "norm_topk_prob": true,
  "decoder_sparse_step": 1,
  "mlp_only_layers": [],
  "qkv_bias": false,
  "max_position_embeddings": 128,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "use_sliding_window": false,
  "bos_token_id": null,
  "eos_token_id": 399
}
EOF
RUN="--data $D --tokenizer $T/tok --batch 4 --seq 32 --threads 2 --warmup 1 --eval-every 0 --eval-batches 1 -q"
expect_ok "dense trains" "$MOE" train $RUN --config "$C" --steps 6 --out "$T/dense"
expect_fail "add experts to linear attention" 1 "layer 0 is a linear_attention layer" "$MOE" train $RUN --init "$HERE/../fixtures/models/qwen3_next_base" --add-experts 2 --steps 2 --out "$T/lin"
[ -e "$T/lin/latest" ] && bad "a refused start left a checkpoint" || ok
expect_fail "upcycle an MoE" 1 "is a mixture of 4 experts already" "$MOE" train $RUN --upcycle "$HERE/../fixtures/train/mixtral_top2" --experts 8 --steps 2 --out "$T/bad"

# ---------------------------------------------------------------- upcycle
expect_ok "upcycle to 4 experts" "$MOE" train $RUN --upcycle "$T/dense/latest" --experts 4 --steps 4 --keep 2 --save-every 4 --out "$T/up"
grep -q '"num_local_experts":[[:space:]]*4' "$T/up/latest/config.json" && ok || bad "upcycled config: no num_local_experts 4"
grep -q '"model_type":[[:space:]]*"mixtral"' "$T/up/latest/config.json" && ok || bad "upcycled config: not mixtral"
IDS=1,5,9,40,80,120,200,300,399,7
expect_ok "dense logits" "$MOE" logits "$T/dense/latest" --ids $IDS --out "$T/dense.f32"
expect_ok "upcycled step-0 logits" "$MOE" logits "$T/up/step-00000000" --ids $IDS --out "$T/up0.f32"
same_floats "upcycled = dense at step 0" "$T/dense.f32" "$T/up0.f32" 1e-5
expect_ok "upcycled trained logits" "$MOE" logits "$T/up/latest" --ids $IDS --out "$T/up4.f32"
if cmp -s "$T/up0.f32" "$T/up4.f32"; then bad "upcycled: training changed nothing"; else ok; fi
steps=$(grep -c '"lr"' "$T/up/log.jsonl")
[ "$steps" -eq 4 ] && ok || bad "upcycled run logged $steps steps, not 4"

# ------------------------------------------ add experts, only they train
expect_ok "add 2 experts, old frozen" "$MOE" train $RUN --init "$T/up/latest" --add-experts 2 \
  --upcycle-noise 0.01 --freeze old-experts,old-router --steps 4 --stop-after 2 --out "$T/add"
grep -q '"num_local_experts":[[:space:]]*6' "$T/add/latest/config.json" && ok || bad "grown config: no num_local_experts 6"
grep -q '"freeze":[[:space:]]*"old-experts,old-router"' "$T/add/latest/trainer_state.json" && ok || bad "state lacks the frozen groups"
grep -q '"added_experts":[[:space:]]*2' "$T/add/latest/trainer_state.json" && ok || bad "state lacks added_experts"
expect_fail "resume with other groups" 1 "was trained with --freeze 'old-experts,old-router'" "$MOE" train $RUN --init "$T/up/latest" --freeze router --steps 4 --resume --out "$T/add"
expect_ok "resume keeps the groups" "$MOE" train $RUN --init "$T/up/latest" --steps 4 --resume --out "$T/add"
expect_ok "info of the grown model" "$MOE" info "$T/add/latest"
out_has "info: 6 experts" "MoE 6 experts, top-2"
expect_ok "logits of the grown model" "$MOE" logits "$T/add/latest" --ids $IDS --out "$T/add.f32"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
