#!/bin/sh
# template.sh - `moe template`: the prompt a conversation becomes under a chat
# template, byte for byte what transformers' apply_chat_template renders
# (tests/fixtures/chat_templates/cli, from tools/gen_chat_template_fixtures.py):
# the template from the model directory or --chat-template, BOS/EOS from the
# model's tokenizer, --tools, --no-generation-prompt; a conversation the
# template refuses, and every misuse, fail with a message.
#   MOE=build/moe sh tests/cli/template.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures"
CT="$FIX/chat_templates"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-template.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"

out_is_file() { # NAME FILE: stdout is exactly FILE
  if cmp -s "$T/out" "$2"; then ok; else bad "$1: stdout differs from $(basename "$2"): $(head -c 300 "$T/out")"; fi
}

# a model directory: a SentencePiece tokenizer (<s>, </s>) and Mixtral's template
M="$T/model"
mkdir -p "$M"
cp "$FIX/tokenizers/llama-spm/tokenizer.json" "$FIX/tokenizers/llama-spm/tokenizer_config.json" "$M/"
cp "$CT/templates/mistralai-Mixtral-8x7B-Instruct-v0.1.jinja" "$M/chat_template.jinja"

expect_ok "model template" "$MOE" template "$M" --messages "$CT/contexts/multi_turn.json"
out_is_file "model template" "$CT/cli/mistralai-Mixtral-8x7B-Instruct-v0.1__multi_turn.txt"

# --chat-template alone; the conversation as a list plus --tools, or as one object
expect_ok "list + tools" "$MOE" template --chat-template "$CT/templates/Qwen-Qwen3-0.6B.jinja" \
  --messages "$CT/cli/messages.json" --tools "$CT/cli/tools.json"
out_is_file "list + tools" "$CT/cli/Qwen-Qwen3-0.6B__tool_calls.txt"
expect_ok "object" "$MOE" template --chat-template "$CT/templates/Qwen-Qwen3-0.6B.jinja" -m "$CT/contexts/tool_calls.json"
out_is_file "object" "$CT/cli/Qwen-Qwen3-0.6B__tool_calls.txt"
expect_ok "non-ascii" "$MOE" template --chat-template "$CT/templates/Qwen3.5-4B.jinja" -m "$CT/contexts/non_ascii.json"
out_is_file "non-ascii" "$CT/cli/Qwen3.5-4B__non_ascii.txt"

# numbers keep their kind: 21.0 stays a float in tojson
expect_ok "float arguments" "$MOE" template --chat-template "$CT/templates/Qwen-Qwen3-0.6B.jinja" -m "$CT/contexts/float_args.json"
out_is_file "float arguments" "$CT/cli/Qwen-Qwen3-0.6B__float_args.txt"
out_has "float arguments" '"celsius": 21.0'

# --chat-template over a model's own; BOS/EOS still the model's
expect_ok "no generation prompt" "$MOE" template "$M" --chat-template "$CT/templates/allenai-OLMoE-1B-7B-0924-Instruct.jinja" \
  --messages "$CT/contexts/multi_turn_nogen.json" --no-generation-prompt
out_is_file "no generation prompt" "$CT/cli/allenai-OLMoE-1B-7B-0924-Instruct__multi_turn_nogen.txt"
expect_ok "generation prompt" "$MOE" template "$M" --chat-template "$CT/templates/allenai-OLMoE-1B-7B-0924-Instruct.jinja" \
  --messages "$CT/contexts/multi_turn_nogen.json"
if tail -c 14 "$T/out" | grep -q '<|assistant|>'; then ok; else bad "generation prompt: no '<|assistant|>' at the end"; fi

# the template refuses the conversation (Mixtral has no system or tool roles)
expect_fail "raise_exception" 1 "raise_exception: .*roles" "$MOE" template "$M" --messages "$CT/contexts/tool_calls.json"

# misuse
expect_fail "no messages" 2 "--messages FILE is required" "$MOE" template "$M"
expect_fail "nothing" 2 "give MODEL or --chat-template" "$MOE" template --messages "$CT/cli/messages.json"
expect_fail "missing model" 1 "nowhere" "$MOE" template "$T/nowhere" --messages "$CT/cli/messages.json"
mkdir -p "$T/plain"
cp "$FIX/tokenizers/llama-spm/tokenizer.json" "$T/plain/"
expect_fail "no template" 1 "ships no chat template" "$MOE" template "$T/plain" --messages "$CT/cli/messages.json"
expect_fail "gguf without template" 1 "ships no chat template" "$MOE" template \
  "$FIX/gguf_tokenizers/qwen2_moe_q8_0_tok.gguf" --messages "$CT/cli/messages.json"
printf '{%% for m in messages %%}\n{{ m.content | nosuchfilter }}\n{%% endfor %%}' > "$T/bad.jinja"
expect_fail "refused template" 1 "bad.jinja:2: unsupported feature: filter 'nosuchfilter'" \
  "$MOE" template --chat-template "$T/bad.jinja" --messages "$CT/cli/messages.json"
echo '{"role": "user"}' > "$T/notlist.json"
expect_fail "messages not a list" 1 "neither a list" "$MOE" template "$M" --messages "$T/notlist.json"
echo '[{"role": ' > "$T/broken.json"
expect_fail "messages not JSON" 1 "not valid JSON" "$MOE" template "$M" --messages "$T/broken.json"
expect_fail "tools not a list" 1 "--tools: .* is not a JSON list" "$MOE" template "$M" --messages "$CT/cli/messages.json" \
  --tools "$T/notlist.json"
expect_ok "help" "$MOE" template --help
out_has "help" "apply_chat_template"
expect_ok "listed" "$MOE" --help
out_has "listed" "template +print the prompt"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
