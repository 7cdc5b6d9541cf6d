#!/bin/sh
# chat.sh - `moe chat` driven through a pipe on a tiny random model with the
# fixture tokenizer and a chat template: replies come out (deterministic at
# --temp 0), blank lines are skipped, "/exit" and the end of input end the
# chat, a conversation longer than the context fails with a message, and a
# model without a template is refused. The KV cache kept between turns gives
# the same replies as a run that starts from the saved conversation.
#   MOE=build/moe sh tests/cli/chat.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-chat.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"

M="$T/m"
"$MOE" init --preset tiny "$M" >/dev/null 2>&1 || bad "init tiny"
cp "$FIX/cli/tokenizer.json" "$M/"
cp "$FIX/chat_templates/templates/allenai-OLMoE-1B-7B-0924-Instruct.jinja" "$M/chat_template.jinja"

chat() { # INPUT ARGS...: moe chat M ARGS with INPUT on stdin
  input=$1; shift
  printf "$input" | "$MOE" chat "$M" --temp 0 -n 6 -t 1 "$@" >"$T/out" 2>"$T/err"
  rc=$?
}

chat 'hello there\nhow are you\n'
if [ "$rc" -eq 0 ] && [ -s "$T/out" ]; then ok; else bad "two turns: exit $rc: $(head -c 300 "$T/err")"; fi
cp "$T/out" "$T/two"
chat 'hello there\nhow are you\n'
if cmp -s "$T/out" "$T/two"; then ok; else bad "greedy chat differs between runs"; fi
chat '\nhello there\n\n\nhow are you\n/exit\nnever read\n'
if [ "$rc" -eq 0 ] && cmp -s "$T/out" "$T/two"; then ok; else bad "blank lines and /exit: exit $rc, output differs"; fi
chat 'hello there\n/exit\nhow are you\n'
if [ "$rc" -eq 0 ] && [ "$(wc -c <"$T/out")" -lt "$(wc -c <"$T/two")" ]; then ok; else bad "/exit: the second line was answered"; fi
chat ''
if [ "$rc" -eq 0 ] && [ ! -s "$T/out" ]; then ok; else bad "empty input: exit $rc, output '$(head -c 100 "$T/out")'"; fi
chat 'hello there\n' --system "Be brief."
if [ "$rc" -eq 0 ] && [ -s "$T/out" ]; then ok; else bad "--system: exit $rc: $(head -c 300 "$T/err")"; fi
# a template file over the model's own: another prompt, so (very likely) another reply
chat 'hello there\nhow are you\n' --chat-template "$FIX/chat_templates/templates/Qwen-Qwen2.5-7B-Instruct.jinja"
if [ "$rc" -eq 0 ] && [ -s "$T/out" ]; then ok; else bad "--chat-template: exit $rc: $(head -c 300 "$T/err")"; fi

# the KV cache kept between turns gives what a fresh run of the whole
# conversation gives: turn 2 after turn 1 in one run == turn 2 started from
# the saved turn 1 (--save, then --messages)
chat 'hello there\n' --save "$T/conv.json"
cp "$T/out" "$T/turn1"
if [ "$rc" -eq 0 ] && grep -q '"role":[[:space:]]*"assistant"' "$T/conv.json"; then ok; else bad "--save: exit $rc: $(head -c 300 "$T/conv.json")"; fi
chat 'how are you\n' --messages "$T/conv.json"
cat "$T/turn1" "$T/out" >"$T/resumed"
if [ "$rc" -eq 0 ] && cmp -s "$T/resumed" "$T/two"; then ok; else bad "cache reuse: turn 2 differs from a fresh run of the conversation"; fi
echo '{"role": "user"}' >"$T/notlist.json"
run sh -c "printf 'hi\n' | '$MOE' chat '$M' --messages '$T/notlist.json'"
if [ "$rc" -eq 1 ] && grep -q "not a JSON list" "$T/err"; then ok; else bad "--messages not a list: exit $rc: $(head -c 300 "$T/err")"; fi

run sh -c "printf 'hello there\n' | '$MOE' chat '$M' --ctx 8 -t 1"
if [ "$rc" -eq 1 ] && grep -q "raise --ctx" "$T/err"; then ok; else bad "context too small: exit $rc: $(head -c 300 "$T/err")"; fi
cp -r "$M" "$T/plain" && rm "$T/plain/chat_template.jinja"
run sh -c "printf 'hi\n' | '$MOE' chat '$T/plain'"
if [ "$rc" -eq 1 ] && grep -q "ships no chat template" "$T/err"; then ok; else bad "no template: exit $rc: $(head -c 300 "$T/err")"; fi
expect_fail "missing model" 1 "nowhere" "$MOE" chat "$T/nowhere"
expect_fail "bad temp" 2 "--temp" "$MOE" chat "$M" --temp -1
expect_ok "help" "$MOE" chat --help
out_has "help" "/exit"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
