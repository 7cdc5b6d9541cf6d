#!/usr/bin/env bash
# e_specialization.sh - experiment e: what the experts specialize in. Routes
# every validation token (103 K, the shards with domains) through trained
# models with `moe route --data`: per MoE layer the domain x expert counts,
# I(domain; expert) in bits, each expert's most frequent tokens. The
# baseline (e8k2-s1) gives the heatmaps and token lists; the other routers
# of experiment c (and E = 32 of b) are routed too, for their I(domain;
# expert). Runs that are missing are skipped. 5-20 s per model.
#
#   BUILD=build experiments/e_specialization.sh    (after the runs of a-d)
cd "$(dirname "$0")/.."
. experiments/common.sh
need_prep
for name in e8k2-s1 e8k2-s2 nobal-s1 aux-s1 bias-s1 bias01-s1 noisy-s1 ec-s1 hash-s1 top1-s1 fgshared-s1 e32k2-s1; do
    run=$RUNS/$name
    if [ ! -e "$run/latest" ]; then
        echo "[$name] no checkpoint, skipped"
        continue
    fi
    if [ "${FORCE:-0}" != 1 ] && [ -s "$run/route.json" ] && [ "$run/route.json" -nt "$run/latest" ]; then
        echo "[$name] routed already"
        continue
    fi
    t0=$SECONDS
    "$MOE" route "$run/latest" --data "$PREP/data" --split val --max-tokens 0 --top 12 \
        --threads "$THREADS" --table --json "$run/route.json" >"$run/route.txt" ||
        { echo "[$name] moe route failed"; continue; }
    echo "[$name] routed in $((SECONDS - t0)) s: $(grep -c '"layer"' "$run/route.json") layer lines -> $run/route.txt"
done
