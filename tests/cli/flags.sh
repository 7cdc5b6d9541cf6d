#!/bin/sh
# flags.sh - what a short flag means, across every command: each short form
# names one long option wherever it appears (-t is --threads everywhere,
# -c --ctx, -n --max-tokens, ...), every command with --threads takes -t,
# and the old meanings (-t the tokenizer and -c the config of `train`) are
# gone. Then the context checks of `ppl` and `generate`: a context longer
# than the model's max_position_embeddings runs with a warning, one that
# fits runs without; and `ppl` writes its carriage-return progress only to
# a terminal.
#   MOE=build/moe sh tests/cli/flags.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-flags.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
skip=0
. "$HERE/harness.inc"

# ------------------------------------------------------------ short flags
# "CMD -x --long" for every short option in every command's --help
cmds=$("$MOE" --help | awk '/^commands:/ { f = 1; next } f && /^  [a-z]/ { print $1 } f && /^$/ { f = 0 }')
[ "$(echo "$cmds" | wc -w)" -ge 15 ] && ok || bad "moe --help lists only: $cmds"
: >"$T/pairs"
for c in $cmds "tokenizer train"; do
  # shellcheck disable=SC2086 # "tokenizer train" is two words
  if ! "$MOE" $c --help >"$T/help" 2>&1; then bad "moe $c --help failed"; continue; fi
  sed -nE "s/^  (-[a-zA-Z]), (--[a-z-]+).*/\1 \2 $(echo "$c" | tr ' ' _)/p" "$T/help" >>"$T/pairs"
  if grep -Eq '^  (-[a-zA-Z], )?--threads ' "$T/help"; then
    grep -Eq '^  -t, --threads ' "$T/help" && ok || bad "moe $c: --threads has no -t"
  fi
done
# one long name per short flag
conflicts=$(awk '{ if (($1 in long) && long[$1] != $2) print $1 ": " long[$1] " (" cmd[$1] ") and " $2 " (" $3 ")";
                   long[$1] = $2; cmd[$1] = $3 }' "$T/pairs")
[ -z "$conflicts" ] && ok || bad "short flags with two meanings: $conflicts"
for want in "-t --threads" "-c --ctx" "-n --max-tokens" "-o --out"; do
  grep -q -- "^$want " "$T/pairs" && ok || bad "no command offers $want"
done
[ "$(grep -c -- '^-t --threads ' "$T/pairs")" -ge 10 ] && ok || bad "-t --threads in too few commands"

# train and data: -t is the thread count, the tokenizer and config have only long names
expect_fail "train -t is threads" 2 "--threads: 'tok.json' is not an integer" \
  "$MOE" train -t tok.json --data d --out o --config c.json
expect_fail "data -t is threads" 2 "--threads: 'tok.json' is not an integer" \
  "$MOE" data -t tok.json --out o x.txt
expect_fail "train -c is gone" 2 "unknown option '-c'" "$MOE" train -c c.json --data d --out o
expect_fail "train -n is gone" 2 "unknown option '-n'" "$MOE" train -n 5 --data d --out o
expect_fail "train -t range" 2 "--threads: -1 is out of range" "$MOE" train -t -1 --data d --out o
expect_fail "generate -c is the context" 2 "--ctx: 'x' is not an integer" "$MOE" generate m -p hi -c x
expect_fail "generate --max-tokens" 2 "--max-tokens: -1 is out of range" "$MOE" generate m -p hi -n -1

# -------------------------------------------- contexts past the positions
# mixtral_base: vocab 128, max_position_embeddings 256
M=$FIX/models/mixtral_base
ids() { awk -v n="$1" 'BEGIN { s = 7; for (i = 0; i < n; i++) { s = (s * 1103 + 12345) % 128; printf "%s%d", i ? "," : "", s } }'; }
IDS300=$(ids 300)
expect_ok "ppl ctx 300 > 256" "$MOE" ppl "$M" --ids "$IDS300" -c 300 -t 1 --json
grep -q "warning: a context of 300 tokens is longer than the 256 positions" "$T/err" && ok ||
  bad "ppl: no warning for a context past the positions: $(head -c 300 "$T/err")"
grep -q "predictions are usually worse" "$T/err" && ok || bad "ppl: the warning does not say what happens"
grep -q '"positions": 299' "$T/out" && ok || bad "ppl: the long window was not scored: $(head -c 200 "$T/out")"
expect_ok "ppl ctx 256" "$MOE" ppl "$M" --ids "$IDS300" -c 256 -t 1 --json
[ ! -s "$T/err" ] && ok || bad "ppl ctx 256: stderr not empty: $(head -c 300 "$T/err")"
# --ctx beyond the tokens: the window is only as long as the text
expect_ok "ppl ctx past the text" "$MOE" ppl "$M" --ids "$(ids 100)" -c 4096 -t 1 --json
[ ! -s "$T/err" ] && ok || bad "ppl 100 tokens, ctx 4096: stderr not empty: $(head -c 300 "$T/err")"
# a reference model with fewer positions is warned about by its own name
mkdir -p "$T/short"
cp "$M/model.safetensors" "$T/short/"
sed 's/"max_position_embeddings": 256/"max_position_embeddings": 64/' "$M/config.json" >"$T/short/config.json"
expect_ok "ppl ref with 64 positions" "$MOE" ppl "$M" --ids "$(ids 100)" --ref "$T/short" -c 100 -t 1 --json
grep -q "100 tokens is longer than the 64 positions $T/short" "$T/err" && ok ||
  bad "ppl: no warning for the reference: $(head -c 300 "$T/err")"
[ "$(grep -c warning "$T/err")" -eq 1 ] && ok || bad "ppl: warned about the model that fits"

# progress: never a carriage return into a file or pipe
expect_ok "ppl text output to a file" "$MOE" ppl "$M" --ids "$IDS300" -c 64 -t 1
if tr -d '\n' <"$T/err" | grep -q "$(printf '\r')"; then bad "ppl wrote a carriage return into a file"; else ok; fi
[ ! -s "$T/err" ] && ok || bad "ppl: progress written to a file: $(head -c 200 "$T/err")"
out_has "ppl text output" "^perplexity "
# ... and progress on a terminal (script(1) gives the command one)
if command -v script >/dev/null 2>&1; then
  script -qec "'$MOE' ppl '$M' --ids '$IDS300' -c 64 -t 1 >/dev/null" /dev/null </dev/null >"$T/tty" 2>&1
  grep -q "moe ppl: window 5, 295 positions scored" "$T/tty" && ok ||
    bad "ppl: no progress on a terminal: $(head -c 300 "$T/tty")"
else
  skip=$((skip + 1))
fi

# generate: a tiny model with 16 positions and the fixture tokenizer
G=$T/tiny
"$MOE" init --preset tiny --dtype f32 "$G" >/dev/null 2>&1 || bad "init tiny"
sed -E 's/("max_position_embeddings":[[:space:]]*)[0-9]+/\116/' "$G/config.json" >"$T/cfg" && mv "$T/cfg" "$G/config.json"
cp "$FIX/cli/tokenizer.json" "$G/"
grep -Eq '"max_position_embeddings":[[:space:]]*16' "$G/config.json" && ok || bad "tiny config not edited"
expect_ok "generate ctx 32 > 16" "$MOE" generate "$G" -p hello -n 4 --temp 0 -c 32 -t 1
grep -q "warning: a context of 32 tokens is longer than the 16 positions" "$T/err" && ok ||
  bad "generate: no warning for a context past the positions: $(head -c 300 "$T/err")"
expect_ok "generate ctx 16" "$MOE" generate "$G" -p hello -n 4 --temp 0 -c 16 -t 1
grep -q warning "$T/err" && bad "generate ctx 16 warned: $(head -c 300 "$T/err")" || ok
expect_ok "generate default ctx" "$MOE" generate "$G" -p hello -n 4 --temp 0 -t 1
grep -q warning "$T/err" && bad "generate default ctx warned: $(head -c 300 "$T/err")" || ok

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
