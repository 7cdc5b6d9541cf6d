#!/bin/sh
# vs_llamacpp.sh - moe and llama.cpp on the same GGUF files, same threads,
# alternating in one run: prefill (128 tokens) and decode (32 tokens) tokens/s,
# their ratio, and moe's decode as a fraction of the read bandwidth probed
# around each of its reps (`moe bench --probe-each`).
#
# Models (random weights with the released shapes, 4 layers each, made once
# in DIR by `moe init` and written by `moe convert` / `moe quantize` in
# llama.cpp's layouts):
#   gpt-oss-20b     4 of 24 layers, 32 experts top-4, experts MXFP4 as released
#                   (the rest BF16), vocab 201088
#   qwen3.5-35b-a3b 4 of 40 layers (3 Gated DeltaNet + 1 gated attention),
#                   256 experts top-8 + shared expert, Q8_0 and Q4_K
#                   (llama-quantize's Q4_K_M rules)
#
#   LLAMA_BENCH=/path/to/llama-bench BUILD=build sh bench/vs_llamacpp.sh
#   MODELS="oss-mxfp4 q35-q8_0 q35-q4_k" ROUNDS=3 THREADS=2 DIR=/tmp/vs sh bench/vs_llamacpp.sh
#   LCP_ARGS="--repack 0" ...    extra llama-bench options (on a machine where its
#                                AMX / repacked path faults, as noted in docs/PERF.md)
#
# llama-bench comes from a llama.cpp build (cmake -DGGML_NATIVE=ON; target
# llama-bench). Each round runs every model once in each engine (3 reps
# each), so a burst of other load hits both alike; the summary gives the
# medians over rounds. Other processes on the machine lower every figure:
# compare numbers from one run only.
set -e
BUILD=${BUILD:-build}
MOE=${MOE:-$BUILD/moe}
DIR=${DIR:-$BUILD/bench-vs}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-128}
GEN=${GEN:-32}
MODELS=${MODELS:-"oss-mxfp4 q35-q8_0 q35-q4_k"}
LLAMA_BENCH=${LLAMA_BENCH:-$(command -v llama-bench || true)}
LCP_ARGS=${LCP_ARGS:-}

[ -x "$MOE" ] || { echo "vs_llamacpp.sh: $MOE not found (make first, or set BUILD/MOE)" >&2; exit 1; }
[ -n "$LLAMA_BENCH" ] && [ -x "$LLAMA_BENCH" ] ||
    { echo "vs_llamacpp.sh: set LLAMA_BENCH to a llama.cpp build's llama-bench" >&2; exit 1; }
mkdir -p "$DIR"
OSS=$DIR/gpt-oss-20b-4l
Q35=$DIR/qwen3.5-35b-a3b-4l

file_of() { # model key -> GGUF path (made on first use)
    case $1 in
    oss-mxfp4)
        [ -f "$OSS/model.safetensors" ] || "$MOE" init --preset gpt-oss-20b --layers 4 "$OSS" >&2
        [ -f "$OSS.gguf" ] || "$MOE" convert "$OSS" "$OSS.gguf" >&2
        echo "$OSS.gguf" ;;
    q35-*)
        t=${1#q35-}
        [ -f "$Q35/model.safetensors" ] || "$MOE" init --preset qwen3.5-35b-a3b --layers 4 "$Q35" >&2
        [ -f "$Q35-$t.gguf" ] || "$MOE" quantize "$Q35" "$Q35-$t.gguf" --type "$t" --threads "$THREADS" >&2
        echo "$Q35-$t.gguf" ;;
    *) echo "vs_llamacpp.sh: unknown model $1" >&2; exit 1 ;;
    esac
}

field() { echo "$1" | sed -n "s/.*\"$2\": \([-0-9.e+]*\).*/\1/p" | head -n 1; }

RES=$(mktemp)
trap 'rm -f "$RES"' EXIT
for k in $MODELS; do f=$(file_of "$k"); echo "$k: $f ($(du -m "$f" | cut -f1) MiB)"; done
printf '\n%-10s %3s %9s %9s %6s %9s %9s %6s %8s %8s %6s\n' model rnd "moe pp/s" "lcp pp/s" ratio \
    "moe tg/s" "lcp tg/s" ratio "tg GB/s" "BW GB/s" "of BW"
for r in $(seq "$ROUNDS"); do
    for k in $MODELS; do
        f=$(file_of "$k")
        j=$("$MOE" bench "$f" --prompt "$PROMPT" --gen "$GEN" --threads "$THREADS" --reps 3 --probe-each --json)
        mp=$(field "$j" prefill_tok_s); md=$(field "$j" decode_tok_s)
        dg=$(field "$j" decode_gb_s); bw=$(field "$j" bandwidth_gb_s); fr=$(field "$j" decode_frac_bandwidth)
        l=$("$LLAMA_BENCH" -m "$f" -p "$PROMPT" -n "$GEN" -t "$THREADS" -r 3 $LCP_ARGS -o jsonl 2>/dev/null || true)
        lp=$(echo "$l" | grep "\"n_gen\": 0," | sed -n 's/.*"avg_ts": \([0-9.e+]*\).*/\1/p')
        ld=$(echo "$l" | grep "\"n_prompt\": 0," | sed -n 's/.*"avg_ts": \([0-9.e+]*\).*/\1/p')
        [ -n "$lp" ] && [ -n "$ld" ] || { echo "llama-bench failed on $f" >&2; lp=0; ld=0; }
        awk -v k="$k" -v r="$r" -v mp="$mp" -v lp="$lp" -v md="$md" -v ld="$ld" -v dg="$dg" -v bw="$bw" -v fr="$fr" \
            'BEGIN { rp = lp > 0 ? mp / lp : 0; rd = ld > 0 ? md / ld : 0
                     printf "%-10s %3d %9.1f %9.1f %5.2fx %9.2f %9.2f %5.2fx %8.2f %8.2f %5.1f%%\n", k, r, mp, lp, rp, md, ld, rd, dg, bw, 100 * fr }'
        echo "$k $mp $lp $md $ld $fr" >>"$RES"
    done
done
printf '\nmedians over %s rounds, %s threads\n%-10s %9s %9s %6s %9s %9s %6s %6s\n' "$ROUNDS" "$THREADS" \
    model "moe pp/s" "lcp pp/s" ratio "moe tg/s" "lcp tg/s" ratio "of BW"
for k in $MODELS; do
    awk -v k="$k" '$1 == k { n++; mp[n] = $2; lp[n] = $3; md[n] = $4; ld[n] = $5; fr[n] = $6;
                             rp[n] = $3 > 0 ? $2 / $3 : 0; rd[n] = $5 > 0 ? $4 / $5 : 0 }
        function med(a, n,   i, j, x) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { x = a[j]; a[j] = a[j-1]; a[j-1] = x }
                                      return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
        END { printf "%-10s %9.1f %9.1f %5.2fx %9.2f %9.2f %5.2fx %5.1f%%\n", k, med(mp, n), med(lp, n), med(rp, n),
                     med(md, n), med(ld, n), med(rd, n), 100 * med(fr, n) }' "$RES"
done
