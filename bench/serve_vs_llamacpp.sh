#!/bin/sh
# serve_vs_llamacpp.sh - throughput against latency of `moe serve` and
# llama.cpp's llama-server on the same GGUF file, same threads, same
# machine, one run: for 1, 2, 4, 8, 16 and 32 concurrent streaming clients,
# aggregate output tokens/s and the p50/p99 time to first token and time
# per output token (bench/serve_load.py, standard library only).
#
# Model: the OLMoE-1B-7B shape, 4 of 16 layers (64 experts top-8), random
# weights, Q8_0 (`moe init` + `moe quantize`, made once in DIR), with a
# byte-level BPE tokenizer of OLMoE's vocabulary size (50304) that
# `moe tokenizer train` learns from the Python standard library's sources
# on this machine (both servers need a tokenizer in the file; no download).
#
#   LLAMA_SERVER=/path/to/llama-server sh bench/serve_vs_llamacpp.sh
#   CLIENTS=1,2,4,8,16,32 REQUESTS=4 MAX_TOKENS=64 PROMPT_WORDS=64 ROUNDS=1 \
#   THREADS=2 DIR=/tmp/sv OUT=docs/results/logs/serve_vs_llamacpp.jsonl sh bench/serve_vs_llamacpp.sh
#
# Each round runs every client count on one engine, then the other (moe
# first in odd rounds, llama-server first in even ones). Both servers get
# one slot per client at the largest count (--parallel) and enough context
# for every slot's prompt and answer. Every request asks for MAX_TOKENS
# tokens past end-of-sequence (`ignore_eos`) so both engines produce the
# same number of tokens. bench/serve_plot.py turns OUT into the table and
# the plot of docs/PERF.md.
set -e
BUILD=${BUILD:-build}
MOE=${MOE:-$BUILD/moe}
DIR=${DIR:-$BUILD/bench-serve}
ROUNDS=${ROUNDS:-1}
THREADS=${THREADS:-2}
CLIENTS=${CLIENTS:-1,2,4,8,16,32}
REQUESTS=${REQUESTS:-4}
MAX_TOKENS=${MAX_TOKENS:-64}
PROMPT_WORDS=${PROMPT_WORDS:-64}
PORT=${PORT:-18431}
OUT=${OUT:-$DIR/serve_vs_llamacpp.jsonl}
LLAMA_SERVER=${LLAMA_SERVER:-$(command -v llama-server || true)}

[ -x "$MOE" ] || { echo "serve_vs_llamacpp.sh: $MOE not found (make first, or set BUILD/MOE)" >&2; exit 1; }
[ -n "$LLAMA_SERVER" ] && [ -x "$LLAMA_SERVER" ] ||
    { echo "serve_vs_llamacpp.sh: set LLAMA_SERVER to a llama.cpp build's llama-server" >&2; exit 1; }
mkdir -p "$DIR"
BASE=$DIR/olmoe-1b-7b-4l
[ -f "$BASE/model.safetensors" ] || "$MOE" init --preset olmoe-1b-7b --layers 4 "$BASE" >&2
if [ ! -f "$BASE/tokenizer.json" ]; then
    STDLIB=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
    find "$STDLIB" -path '*site-packages*' -prune -o -name '*.py' -print | sort | xargs cat >"$DIR/corpus.txt"
    "$MOE" tokenizer train --vocab 50304 --min-freq 1 --out "$DIR/tokenizer" "$DIR/corpus.txt" >&2
    python3 -c 'import json, sys; t = json.load(open(sys.argv[1]))
ids = list(t["model"]["vocab"].values()) + [a["id"] for a in t["added_tokens"]]
sys.exit(0 if max(ids) == 50303 else 1)' "$DIR/tokenizer/tokenizer.json" ||
        { echo "serve_vs_llamacpp.sh: the corpus gave fewer than 50304 tokens" >&2; exit 1; }
    cp "$DIR/tokenizer/tokenizer.json" "$DIR/tokenizer/tokenizer_config.json" "$BASE/"
fi
[ -f "$BASE-q8_0.gguf" ] || "$MOE" quantize "$BASE" "$BASE-q8_0.gguf" --type q8_0 --threads "$THREADS" >&2
GGUF=$BASE-q8_0.gguf

MAXC=$(echo "$CLIENTS" | tr ',' '\n' | sort -n | tail -n 1)
SLOT_CTX=$(( (PROMPT_WORDS * 2 + MAX_TOKENS + 64 + 255) / 256 * 256 ))
URL=http://127.0.0.1:$PORT
PID=

stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=; }
trap stop EXIT INT TERM

wait_up() { # until /health answers 200 (loading can take a while)
    i=0
    while [ $i -lt 600 ]; do
        if python3 - "$URL/health" <<'EOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
EOF
        kill -0 "$PID" 2>/dev/null || { echo "serve_vs_llamacpp.sh: server exited" >&2; exit 1; }
        sleep 0.5; i=$((i + 1))
    done
    echo "serve_vs_llamacpp.sh: server not up after 300 s" >&2; exit 1
}

run_engine() { # engine round
    case $1 in
    moe) "$MOE" serve "$GGUF" --host 127.0.0.1 --port "$PORT" --threads "$THREADS" \
             --parallel "$MAXC" --ctx "$SLOT_CTX" --max-queue 256 >"$DIR/moe-serve.log" 2>&1 &
         PID=$! ;;
    llama-server) "$LLAMA_SERVER" -m "$GGUF" --host 127.0.0.1 --port "$PORT" -t "$THREADS" \
             -np "$MAXC" -c $((SLOT_CTX * MAXC)) >"$DIR/llama-server.log" 2>&1 &
         PID=$! ;;
    esac
    wait_up
    python3 "$(dirname "$0")/serve_load.py" --url "$URL" --clients "$CLIENTS" --requests "$REQUESTS" \
        --max-tokens "$MAX_TOKENS" --prompt-words "$PROMPT_WORDS" --ignore-eos --label "$1" --json "$OUT"
    stop
}

echo "model $GGUF ($(($(stat -c %s "$GGUF") / 1048576)) MiB), threads $THREADS, slots $MAXC x $SLOT_CTX positions"
echo "llama-server: $LLAMA_SERVER"
r=1
while [ $r -le "$ROUNDS" ]; do
    if [ $((r % 2)) -eq 1 ]; then order="moe llama-server"; else order="llama-server moe"; fi
    for e in $order; do run_engine "$e"; done
    r=$((r + 1))
done
echo "results: $OUT"
