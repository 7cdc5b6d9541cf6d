#!/bin/sh
# train_recompute.sh - what `moe train --recompute` saves and costs: peak
# resident memory (/usr/bin/time -v, the whole process) and step time of the
# same run with the full activation tape and with --recompute (each layer's
# activations recomputed in the backward from its kept input).
#
# Model: mixtral layout, LAYERS layers (4), dim 256, 8 heads of 32 (4 KV
# heads), 8 experts top-2, expert FFN 512, vocab 512; batch 16 x seq 512 =
# 8192 tokens a step: activations dominate the memory. Data: this
# repository's C sources through `moe tokenizer train` and `moe data`.
#
#   sh bench/train_recompute.sh                prints a Markdown table
#   MOE=build/moe THREADS=2 LAYERS=4 STEPS=3 WARMUP=1 ROUNDS=3 sh bench/train_recompute.sh
# ROUNDS alternating rounds of (full tape, --recompute), so that a burst of
# other load hits one round, not one mode; the step time of a run is the
# median of its timed steps (the JSONL log's tokens_per_s: the forward,
# backward and update, not the final checkpoint); the CPU time is the whole
# process's (user + system: the start and the checkpoint, the same in both
# modes, included), which a busy machine disturbs less than the wall time.
# About a minute a round on an idle 2-core machine.
set -e
MOE=${MOE:-build/moe}
THREADS=${THREADS:-2}
LAYERS=${LAYERS:-4}
STEPS=${STEPS:-3}   # timed steps
WARMUP=${WARMUP:-1} # untimed steps first
ROUNDS=${ROUNDS:-3}
B=16
SEQ=512
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/moe-recompute-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM

cat "$HERE"/../src/*/*.c >"$W/corpus.txt"
"$MOE" tokenizer train --vocab 512 --out "$W/tok" -q "$W/corpus.txt" >/dev/null
"$MOE" data --tokenizer "$W/tok" --out "$W/data" --val-frac 0 -q "$W/corpus.txt" >/dev/null
rm -f "$W/data/val.bin" # no evaluation: steps only
cat >"$W/config.json" <<EOF
{
  "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "vocab_size": 512,
  "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": $LAYERS,
  "num_attention_heads": 8, "num_key_value_heads": 4, "num_local_experts": 8,
  "num_experts_per_tok": 2, "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0, "tie_word_embeddings": false
}
EOF

# one_run MODE ROUND: train, keep the log and the peak RSS (KiB)
one_run() {
  flag=""
  [ "$1" = recompute ] && flag=--recompute
  rm -rf "$W/run"
  /usr/bin/time -v "$MOE" train --data "$W/data" --config "$W/config.json" --out "$W/run" \
    --steps $((WARMUP + STEPS)) --batch $B --seq $SEQ --warmup 1 --threads "$THREADS" \
    --eval-every 0 --quiet --log "$W/$1.$2.jsonl" $flag >/dev/null 2>"$W/time.txt"
  sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/time.txt" >"$W/$1.$2.rss"
  awk -F': ' '/User time|System time/ { s += $2 } END { print s }' "$W/time.txt" >"$W/$1.$2.cpu"
}

r=1
while [ $r -le "$ROUNDS" ]; do
  echo "round $r/$ROUNDS: full tape, --recompute ($WARMUP + $STEPS steps each) ..." >&2
  one_run full $r
  one_run recompute $r
  r=$((r + 1))
done

# median of the timed steps' seconds (B*SEQ / tokens_per_s) of one log
step_s() {
  grep '"lr"' "$1" | sed -E 's/.*"step":([0-9]+).*"tokens_per_s":([0-9.]+).*/\1 \2/' |
    awk -v w="$WARMUP" -v n=$((B * SEQ)) '$1 > w { print n / $2 }' | sort -n |
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo "model: mixtral layout, $LAYERS layers, dim 256, 8 heads x 32 (4 KV), 8 experts top-2," \
  "expert FFN 512, vocab 512; batch $B x seq $SEQ = $((B * SEQ)) tokens a step, $THREADS threads;" \
  "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| round | full: peak RSS (MiB) | full: step (s) | full: CPU (s) | --recompute: peak RSS (MiB) | --recompute: step (s) | --recompute: CPU (s) | memory saved | step time ratio | CPU time ratio |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
r=1
while [ $r -le "$ROUNDS" ]; do
  mf=$(cat "$W/full.$r.rss") mr=$(cat "$W/recompute.$r.rss")
  cf=$(cat "$W/full.$r.cpu") cr=$(cat "$W/recompute.$r.cpu")
  sf=$(step_s "$W/full.$r.jsonl") sr=$(step_s "$W/recompute.$r.jsonl")
  awk -v r=$r -v mf="$mf" -v mr="$mr" -v sf="$sf" -v sr="$sr" -v cf="$cf" -v cr="$cr" 'BEGIN {
    printf "| %d | %.0f | %.2f | %.1f | %.0f | %.2f | %.1f | %.0f%% | %.2fx | %.2fx |\n", r,
      mf / 1024, sf, cf, mr / 1024, sr, cr, 100 * (1 - mr / mf), sr / sf, cr / cf }'
  r=$((r + 1))
done
# the two modes train the same bits: their last losses agree
lf=$(grep '"lr"' "$W/full.1.jsonl" | tail -n 1 | sed -E 's/.*"loss":([^,]*).*/\1/')
lr=$(grep '"lr"' "$W/recompute.1.jsonl" | tail -n 1 | sed -E 's/.*"loss":([^,]*).*/\1/')
echo
echo "last loss of round 1: full $lf, --recompute $lr"
