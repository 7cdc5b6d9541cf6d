#!/bin/sh
# threads.sh - one limit on --threads everywhere (MOE_MAX_THREADS, 256, in
# include/moe.h): every command whose help lists --threads refuses 257 as a
# usage error naming the range, and the cheap ones run with 256 (init, data,
# logits, generate, bench, ppl on a tiny model).
#   MOE=build/moe sh tests/cli/threads.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures/cli"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"

# The commands, from `moe --help`; those whose help has --threads.
cmds=$("$MOE" --help | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
n_threads=0
for c in $cmds; do
  "$MOE" "$c" --help 2>/dev/null | grep -q -- '--threads' || continue
  n_threads=$((n_threads + 1))
  expect_fail "$c --threads 257" 2 "^moe $c: --threads: 257 is out of range \[0, 256\]" \
    "$MOE" "$c" --threads 257 a b
  expect_fail "$c --threads -1" 2 "^moe $c: --threads: -1 is out of range" "$MOE" "$c" --threads -1 a b
done
# bench convert data generate init logits ppl quantize report route train
if [ "$n_threads" -ge 11 ]; then ok; else bad "only $n_threads commands list --threads: $cmds"; fi

# 256 threads accepted (a tiny model; more threads than cores is allowed)
M="$T/m"
expect_ok "init --threads 256" "$MOE" init --preset tiny --layers 1 --threads 256 "$M"
cp "$FIX/tokenizer.json" "$M/"
expect_ok "logits --threads 256" "$MOE" logits "$M" --ids 1,2,3 --threads 256 --out "$T/l.bin"
expect_ok "generate --threads 256" "$MOE" generate "$M" -p "hello" -n 2 --threads 256
expect_ok "bench --threads 256" "$MOE" bench "$M" --prompt 4 --gen 2 --reps 1 --threads 256
printf 'one two three four five six seven eight nine ten\n\nagain one two three four five\n' > "$T/a.txt"
expect_ok "ppl --threads 256" "$MOE" ppl "$M" --text "$T/a.txt" --ctx 8 --threads 256
expect_ok "data --threads 256" "$MOE" data --tokenizer "$FIX/tokenizer.json" --out "$T/d" --threads 256 \
  --quiet "$T/a.txt"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
