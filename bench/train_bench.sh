#!/bin/sh
# train_bench.sh - training throughput of one small MoE in `moe train` and in
# PyTorch (transformers MixtralForCausalLM, float32, CPU), same threads, same
# objective (CE + 0.01 aux + 0.001 z), same optimizer (AdamW, clipping), as
# tokens/s and as a share of this machine's f32 FLOP peak (`moe bench
# --probe-only`, the probe of src/kernels/probe.h, with the same threads).
#
# Model: mixtral layout, 4 layers, dim 256, 4 heads of 64 (2 KV heads),
# 8 experts top-2, expert FFN 512, vocab 4096; batch 8 x seq 256 tokens a step.
# Data: uniform random ids (throughput does not depend on them).
# FLOPs per trained token = 6 x active matmul weights (attention projections,
# router, K experts, lm_head; not the embedding lookup) + attention scores and
# values: 3 (forward + backward) x 4 x layers x heads x head_dim x (T + 1) / 2.
#
#   sh bench/train_bench.sh                  prints a Markdown table
#   MOE=build/moe PY=python3 THREADS=2 STEPS=8 WARMUP=2 ROUNDS=3 sh bench/train_bench.sh
#   TORCH_EXPERTS=eager ...    another transformers experts implementation
#                              (default: transformers' choice, grouped_mm)
# About 20 s a round on an idle 2-core machine (much longer on a busy one);
# run it in the background. Other load on the machine lowers both figures
# (PyTorch the most): compare rounds, and trust a run on an idle machine.
set -e
MOE=${MOE:-build/moe}
PY=${PY:-python3}
THREADS=${THREADS:-2}
STEPS=${STEPS:-8}   # timed steps
WARMUP=${WARMUP:-2} # untimed steps first
ROUNDS=${ROUNDS:-3} # alternating rounds of both trainers
B=8
SEQ=256
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/moe-train-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM

cat >"$W/config.json" <<'EOF'
{
  "architectures": ["MixtralForCausalLM"],
  "model_type": "mixtral",
  "vocab_size": 4096,
  "hidden_size": 256,
  "intermediate_size": 512,
  "num_hidden_layers": 4,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "head_dim": 64,
  "num_local_experts": 8,
  "num_experts_per_tok": 2,
  "max_position_embeddings": 512,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "sliding_window": null,
  "hidden_act": "silu",
  "bos_token_id": null,
  "eos_token_id": null
}
EOF

echo "data ..." >&2
"$PY" "$HERE/train_torch.py" make-data "$W/data" --vocab 4096 --tokens 1000000 >&2

# ROUNDS rounds of (probe, moe train, PyTorch), alternating so that a burst of
# other load on the machine hits one round, not one trainer; the best round of
# each is reported (the one least disturbed), beside the median over rounds.
r=1
while [ $r -le "$ROUNDS" ]; do
  echo "round $r/$ROUNDS: probe, moe train, pytorch ($WARMUP + $STEPS steps each) ..." >&2
  "$MOE" bench --probe-only --threads "$THREADS" --json >"$W/probe.$r.json"
  rm -rf "$W/moe"
  "$MOE" train --data "$W/data" --out "$W/moe" --config "$W/config.json" \
    --steps $((WARMUP + STEPS)) --batch $B --seq $SEQ --threads "$THREADS" --lr 3e-4 --min-lr 3e-5 \
    --warmup 2 --wd 0.1 --clip 1 --aux 0.01 --z 0.001 --eval-every 0 --eval-batches 1 \
    --save-every 0 --log "$W/moe.$r.jsonl" --quiet >/dev/null
  "$PY" "$HERE/train_torch.py" train --config "$W/config.json" --data "$W/data" --steps "$STEPS" \
    --warmup-steps "$WARMUP" --batch $B --seq $SEQ --threads "$THREADS" --lr 3e-4 \
    ${TORCH_EXPERTS:+--experts-impl "$TORCH_EXPERTS"} >"$W/torch.$r.json"
  r=$((r + 1))
done

"$PY" - "$W" "$WARMUP" "$B" "$SEQ" "$ROUNDS" <<'EOF'
import json, os, statistics, sys
w, warm, B, T, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
c = json.load(open(os.path.join(w, "config.json")))
D, L, H = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]
KV, Dh, E, K = c["num_key_value_heads"], c["head_dim"], c["num_local_experts"], c["num_experts_per_tok"]
F, V = c["intermediate_size"], c["vocab_size"]
per_layer = D * H * Dh + 2 * D * KV * Dh + H * Dh * D + D * E + K * 3 * D * F
active_mm = L * per_layer + D * V
flop_tok = 6 * active_mm + 3 * 4 * L * H * Dh * (T + 1) / 2
peaks, moe, pt = [], [], []
for r in range(1, rounds + 1):
    probe = json.load(open(os.path.join(w, f"probe.{r}.json")))
    threads = probe["threads"]
    peaks.append(probe["peak_gflop_s"] * 1e9)
    rows = [json.loads(l) for l in open(os.path.join(w, f"moe.{r}.jsonl")) if l.strip()]
    moe.append(statistics.median(x["tokens_per_s"] for x in rows if x["step"] > warm))
    tj = json.load(open(os.path.join(w, f"torch.{r}.json")))
    pt.append(tj["tokens_per_s"])
peak = max(peaks)  # the machine's limit: its best measurement
load = open("/proc/loadavg").read().split()[:3]
print(f"model: mixtral layout, {L} layers, dim {D}, {H} heads x {Dh} ({KV} KV), {E} experts "
      f"top-{K}, expert FFN {F}, vocab {V}; batch {B} x seq {T} = {B*T} tokens a step")
print(f"active matmul weights {active_mm/1e6:.2f} M; {flop_tok/1e6:.1f} MFLOP per trained token "
      f"(6 x weights + attention); f32 peak {peak/1e9:.1f} GFLOP/s on {threads} threads "
      f"(best of {rounds} probes: {', '.join(f'{p/1e9:.0f}' for p in peaks)})")
print(f"{rounds} alternating rounds, each the median step of {warm} + {len(rows) - warm} "
      f"(untimed + timed); pytorch {tj['torch']}, experts {tj['experts_impl']}, attention "
      f"{tj['attn_impl']}; load average at the end {' '.join(load)}")
print("tokens/s per round: moe train " + ", ".join(f"{x:.0f}" for x in moe) +
      "; pytorch " + ", ".join(f"{x:.0f}" for x in pt))
print()
print("| trainer | threads | tokens/s (best round) | step (s) | GFLOP/s | share of f32 peak | tokens/s (median of rounds) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, v in (("moe train", moe), ("PyTorch (transformers Mixtral, fp32)", pt)):
    tps = max(v)
    print(f"| {name} | {threads} | {tps:.0f} | {B*T/tps:.2f} | {tps*flop_tok/1e9:.1f} | "
          f"{100*tps*flop_tok/peak:.1f}% | {statistics.median(v):.0f} |")
print()
print(f"moe train / PyTorch: {max(moe)/max(pt):.2f}x (best rounds), "
      f"{statistics.median(moe)/statistics.median(pt):.2f}x (medians)")
EOF
