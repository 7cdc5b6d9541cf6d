#!/bin/sh
# route_report.sh - `moe route` and `moe report` end to end on a tiny model:
# tokenizer train -> data in three domains -> train 20 steps; route --text
# (one entry per token, K experts per MoE layer), route --data (counts add
# up to tokens x K per layer, the domain table too, MI within
# [0, log2(min(domains, experts))], --max-tokens, --top), report (an HTML
# page with inline SVG and its section titles, nothing external, the routing
# section from --route-data / --route-json / RUN/route.json) and bad inputs
# (usage errors, missing run directory, a bad log line named by number, bad
# routing JSON). Runs in a few seconds.
#   MOE=build/moe sh tests/cli/route_report.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS="$HERE/../fixtures/tokenizer_train/corpus.txt"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-route.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
skip=0

. "$HERE/harness.inc"
file_has() {
  if grep -Eq -- "$3" "$2"; then ok; else bad "$1: $2 lacks '$3'"; fi
}

# json_valid NAME FILE: FILE parses as JSON (with jq or python3; skipped
# when neither is installed -- CI may have neither)
json_valid() {
  if command -v jq >/dev/null 2>&1; then
    if jq -e . "$2" >/dev/null 2>&1; then ok; else bad "$1: not valid JSON (jq)"; fi
  elif command -v python3 >/dev/null 2>&1; then
    if python3 -m json.tool "$2" >/dev/null 2>&1; then ok; else bad "$1: not valid JSON (python3)"; fi
  else
    skip=$((skip + 1))
  fi
}

# sum_list "1,2,3" -> 6
sum_list() { echo "$1" | tr ',' '\n' | awk '{ s += $1 } END { printf "%d\n", s }'; }
# top FIELD FILE: the value of a top-level "FIELD": N line
top() { sed -nE "s/^\"$1\": (-?[0-9.eE+-]+),?$/\1/p" "$2"; }

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

# ------------------------------------------------------------------- help
expect_ok "moe --help" "$MOE" --help
out_has "--help lists route" "^  route "
out_has "--help lists report" "^  report "
expect_ok "route --help" "$MOE" route --help
out_has "route help usage" "^usage: moe route MODEL \(--text TEXT \| --data DIR"
out_has "route help: ROUTING.md" "docs/ROUTING.md"
expect_ok "report --help" "$MOE" report --help
out_has "report help usage" "^usage: moe report RUN_DIR"

# ------------------------------------------------------------ usage errors
expect_fail "route: neither --text nor --data" 2 "one of --text TEXT or --data DIR is required" "$MOE" route "$T/m"
expect_fail "route: both" 2 "exclude each other" "$MOE" route "$T/m" --text hi --data "$T/d"
expect_fail "route: bad split" 2 "--split: 'test' is not val or train" "$MOE" route "$T/m" --data "$T/d" --split test
expect_fail "route: no model" 2 "missing argument" "$MOE" route
expect_fail "route: bad --max-tokens" 2 "--max-tokens: 'many' is not an integer" "$MOE" route "$T/m" --data "$T/d" --max-tokens many
expect_fail "route: unknown flag" 2 "unknown option '--bogus'" "$MOE" route "$T/m" --bogus
expect_fail "report: no run" 2 "missing argument" "$MOE" report
expect_fail "report: both route sources" 2 "exclude each other" "$MOE" report "$T" --route-data "$T/d" --route-json "$T/r.json"
expect_fail "report: bad route split" 2 "--route-split: 'x' is not val or train" "$MOE" report "$T" --route-split x

# ------------------------------------------- tokenizer -> 3 domains -> train
D="$T/data" C="$T/config.json" R="$T/run"
sed -n '1,13p;52,58p' "$CORPUS" >"$T/prose.txt"
sed -n '15,35p' "$CORPUS" >"$T/code.txt"
sed -n '37,50p' "$CORPUS" >"$T/intl.txt"
expect_ok "tokenizer train" "$MOE" tokenizer train --vocab 400 --out "$T/tok" -q "$CORPUS"
expect_ok "data" "$MOE" data --tokenizer "$T/tok" --out "$D" --val-frac 0.3 -q \
  --domain prose="$T/prose.txt" --domain code="$T/code.txt" --domain intl="$T/intl.txt"
# A tiny mixtral: dim 32, 2 layers, 4 experts top-2, vocab = the tokenizer's.
cat >"$C" <<'EOF'
{
  "architectures": ["MixtralForCausalLM"],
  "model_type": "mixtral",
  "vocab_size": 400,
  "hidden_size": 32,
  "intermediate_size": 64,
  "num_hidden_layers": 2,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "num_local_experts": 4,
  "num_experts_per_tok": 2,
  "max_position_embeddings": 128,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "bos_token_id": null,
  "eos_token_id": 399
}
EOF
expect_ok "train 20 steps" "$MOE" train --data "$D" --config "$C" --tokenizer "$T/tok" --out "$R" \
  --steps 20 --batch 4 --seq 32 --lr 3e-3 --min-lr 3e-4 --warmup 2 --seed 7 --threads 2 \
  --eval-every 5 --eval-batches 2 --quiet
[ -f "$R/log.jsonl" ] && [ -d "$R/latest" ] && ok || bad "train: no log or checkpoint in $R"

# ------------------------------------------------------------ route --text
TEXT="The quick brown fox. def f(x): return 0"
expect_ok "tokenize" "$MOE" tokenize "$R/latest" "$TEXT"
n_ids=$(tr ',' '\n' <"$T/out" | grep -c .)
expect_ok "route --text" "$MOE" route "$R/latest" --text "$TEXT" --threads 2
cp "$T/out" "$T/text.json"
json_valid "route --text" "$T/text.json"
file_has "route --text: mode" "$T/text.json" '^"mode": "text",$'
n_tok=$(top n_tokens "$T/text.json")
n_lines=$(grep -c '^\{"i":' "$T/text.json")
if [ -n "$n_tok" ] && [ "$n_tok" -eq "$n_ids" ] && [ "$n_lines" -eq "$n_ids" ]; then ok
else bad "route --text: n_tokens '$n_tok', $n_lines token entries, tokenize gives $n_ids"; fi
# every token: its id, its text, and per MoE layer (2) exactly K=2 experts in [0, 4) and 2 weights
n_ex=$(grep -o '"experts":\[[^]]*\]' "$T/text.json" | wc -l)
n_ex2=$(grep -o '"experts":\[[0-3],[0-3]\]' "$T/text.json" | wc -l)
n_w2=$(grep -o '"weights":\[[0-9.e-]*,[0-9.e-]*\]' "$T/text.json" | wc -l)
if [ "$n_ex" -eq $((n_ids * 2)) ] && [ "$n_ex2" -eq "$n_ex" ] && [ "$n_w2" -eq "$n_ex" ]; then ok
else bad "route --text: $n_ex expert lists ($n_ex2 of 2 experts in [0,4), $n_w2 weight pairs), expected $((n_ids * 2))"; fi
if grep '^\{"i":0,' "$T/text.json" | grep -q '"text":"The"'; then ok; else bad "route --text: first token's text is not 'The': $(grep '^\{"i":0,' "$T/text.json" | head -c 200)"; fi
# the two experts of a token differ, weights sum to 1 (mixtral renormalizes)
if grep -o '"experts":\[[0-9]*,[0-9]*\],"weights":\[[0-9.e-]*,[0-9.e-]*\]' "$T/text.json" | tr '[],:' '    ' |
   awk '{ if ($2 == $3) exit 1; s = $5 + $6; if (s < 0.9999 || s > 1.0001) exit 1 }'; then ok
else bad "route --text: repeated expert or weights not summing to 1"; fi
cp -r "$R/latest/" "$T/notok" && rm -f "$T/notok/tokenizer.json"
expect_fail "route --text: model without tokenizer.json" 1 "tokenizer.json not found" "$MOE" route "$T/notok" --text hi

# ------------------------------------------------------------ route --data
# check_data NAME FILE TOKENS: per layer counts and domain counts add up to TOKENS x 2, MI in bounds
check_data() {
  name=$1; f=$2; want=$3
  tokens=$(top tokens "$f")
  [ "$tokens" = "$want" ] && ok || bad "$name: tokens '$tokens', expected $want"
  n_layers=$(grep -c '^\{"layer":' "$f")
  [ "$n_layers" -eq 2 ] && ok || bad "$name: $n_layers layer lines, expected 2"
  grep '^\{"layer":' "$f" >"$T/layers"
  bad_sum=""
  while IFS= read -r line; do
    counts=$(echo "$line" | sed -nE 's/.*"counts":\[([0-9,]*)\].*/\1/p')
    pairs=$(echo "$line" | sed -nE 's/.*"pairs":([0-9]+).*/\1/p')
    table=$(echo "$line" | sed -nE 's/.*"domain_counts":(\[[][0-9,]*\]),"mi_bits".*/\1/p')
    doms=$(echo "$table" | tr '[]' ',,')
    n_rows=$(echo "$table" | grep -o '\[[0-9]' | wc -l)
    s1=$(sum_list "$counts"); s2=$(sum_list "$doms")
    [ "$s1" -eq $((want * 2)) ] && [ "$s2" -eq $((want * 2)) ] && [ "$pairs" = $((want * 2)) ] && [ "$n_rows" -eq 3 ] \
      || bad_sum="$bad_sum [counts $s1, domain counts $s2 in $n_rows rows, pairs $pairs]"
    mi=$(echo "$line" | sed -nE 's/.*"mi_bits":([0-9.eE+-]+).*/\1/p')
    awk -v m="$mi" 'BEGIN { exit !(m != "" && m + 0 >= 0 && m + 0 <= log(3) / log(2) + 1e-9) }' \
      || bad_sum="$bad_sum [mi_bits '$mi' outside [0, log2 3]]"
  done <"$T/layers"
  [ -z "$bad_sum" ] && ok || bad "$name: expected $((want * 2)) pairs a layer, 3 domains:$bad_sum"
}
expect_ok "route --data (train)" "$MOE" route "$R/latest" --data "$D" --split train --threads 2
cp "$T/out" "$T/data.json"
json_valid "route --data" "$T/data.json"
file_has "route --data: mode" "$T/data.json" '^"mode": "data",$'
n_train=$(sed -nE 's/.*"train":[^}]*"tokens":[[:space:]]*([0-9]+).*/\1/p' "$D/meta.json" | head -n 1)
[ -z "$n_train" ] && n_train=$(tr -d '\n\t ' <"$D/meta.json" | sed -nE 's/.*"train":\{"file":"train.bin","tokens":([0-9]+).*/\1/p')
check_data "route --data" "$T/data.json" "$n_train"
file_has "route --data: domains" "$T/data.json" '^\{"name":"prose","tokens":[0-9]+\},$'
file_has "route --data: code domain" "$T/data.json" '^\{"name":"code","tokens":[0-9]+\},$'
for k in load max_violation dead dead_experts router_entropy top_tokens; do
  if [ "$(grep -c "\"$k\":" "$T/layers")" -eq 2 ]; then ok; else bad "route --data: \"$k\" missing from a layer"; fi
done
# --max-tokens: the first 100 tokens; --top 3: at most 3 tokens an expert, with texts
expect_ok "route --data --max-tokens 100" "$MOE" route "$R/latest" --data "$D" --split train --max-tokens 100 --top 3 --seq 32
cp "$T/out" "$T/data100.json"
check_data "route --max-tokens 100" "$T/data100.json" 100
# 4 experts, at most 3 tokens each, at least 1 each
grep '^\{"layer":' "$T/data100.json" | sed -E 's/.*"top_tokens"://' | while IFS= read -r tt; do
  n=$(echo "$tt" | grep -o '"count":' | wc -l)
  [ "$n" -ge 4 ] && [ "$n" -le 12 ] || echo "$n"
done >"$T/topbad"
[ ! -s "$T/topbad" ] && ok || bad "route --top 3: a layer lists $(head -n 1 "$T/topbad") top tokens (expected 4..12)"
if command -v jq >/dev/null 2>&1; then
  m=$(jq '[.layers[].top_tokens[] | length] | max' "$T/data100.json")
  [ "$m" -le 3 ] && ok || bad "route --top 3: an expert lists $m tokens"
fi
file_has "route --top: texts" "$T/data100.json" '"top_tokens":\[\[\{"id":[0-9]+,"text":"[^"]*","count":[0-9]+\}'
expect_ok "route --data val" "$MOE" route "$R/latest" --data "$D"
file_has "route --data val split" "$T/out" '^"split": "val",$'
# errors of the work
expect_fail "route: missing model" 1 "$T/nomodel" "$MOE" route "$T/nomodel" --data "$D"
expect_fail "route: missing data dir" 1 "$T/nodata: not a data directory" "$MOE" route "$R/latest" --data "$T/nodata"
mkdir -p "$T/baddata" && printf 'not a shard' >"$T/baddata/val.bin"
expect_fail "route: damaged shard" 1 "val.bin" "$MOE" route "$R/latest" --data "$T/baddata"
expect_fail "route: --seq past the positions" 2 "--seq 4096 is longer than the model's 128 positions" \
  "$MOE" route "$R/latest" --data "$D" --seq 4096
# --table: the same statistics as text tables; --json FILE keeps the JSON
# (the same bytes as on stdout without --table); a symlink planted at the
# old fixed temporary name is not written through
echo precious >"$T/victim"
ln -s "$T/victim" "$T/table.json.tmp"
expect_ok "route --data --table --json" "$MOE" route "$R/latest" --data "$D" --split train --threads 2 \
  --table --json "$T/table.json"
[ "$(cat "$T/victim")" = precious ] && ok || bad "route --json: wrote through a planted symlink"
rm -f "$T/table.json.tmp"
out_has "route --table: load title" "^expert load: share of each layer's $((n_train * 2)) \(token, slot\) pairs \(even: 25\.0%\)$"
out_has "route --table: load row" "^ +1( +[0-9]+\.[0-9]%){4} +[0-9]+\.[0-9]{3} +[0-9]+  [0-9.]+/1\.386$"
out_has "route --table: MI" "^layer 1: domain x expert, .*I\(domain; expert\) = [0-9]+\.[0-9]{3} bits \(max 1\.585\)$"
out_has "route --table: domain row" "^prose +[0-9]+( +[0-9]+\.[0-9]%){4}$"
out_has "route --table: top tokens" "^e0   '.*'$"
if cmp -s "$T/table.json" "$T/data.json"; then ok; else bad "route --json: differs from the JSON on stdout"; fi
expect_fail "route: --table with --text" 2 "--table goes with --data" "$MOE" route "$R/latest" --text hi --table
expect_fail "route: --json unwritable" 1 "--json $T/nodir/r.json: cannot write it" \
  "$MOE" route "$R/latest" --data "$D" --json "$T/nodir/r.json"

# ------------------------------------------------------------------ report
expect_ok "report" "$MOE" report "$R" --out "$T/r1.html"
out_has "report prints the page path" "^$T/r1.html$"
[ -s "$T/r1.html" ] && ok || bad "report: $T/r1.html not written"
file_has "report: html" "$T/r1.html" "^<!DOCTYPE html>"
file_has "report: inline svg" "$T/r1.html" "<svg"
for title in "Loss" "Learning rate and throughput" "Expert load" "Load balance" "Dropped tokens"; do
  file_has "report: section '$title'" "$T/r1.html" "<h2>$title</h2>"
done
for fig in "Train and validation loss" "Learning rate" "Throughput" "Layer 0: load fraction per expert" \
           "Layer 1: load fraction per expert" "Max violation per layer" "Dead experts per layer" "Dropped pairs"; do
  file_has "report: figure '$fig'" "$T/r1.html" "<h3>$fig"
done
if grep -q "Routing by domain" "$T/r1.html"; then bad "report: routing section without routing data"; else ok; fi
# self-contained: no scripts, no links or sources, no URL but the SVG namespace
if grep -Eiq '<script|<link|<img|<iframe| src=| href=|url\(http' "$T/r1.html"; then bad "report: external resource or script"; else ok; fi
if grep -o 'https\?://[^"]*' "$T/r1.html" | grep -qv '^http://www.w3.org/2000/svg$'; then bad "report: a URL besides the SVG namespace"; else ok; fi
# one polyline per curve at least: loss curves have points
file_has "report: drawn curves" "$T/r1.html" '<polyline [^>]*points="[0-9.]+,[0-9.]+ [0-9.]+,[0-9.]+'
file_has "report: val markers" "$T/r1.html" '<circle '
# default output path, RUN/route.json picked up
cp "$T/data.json" "$R/route.json"
expect_ok "report with RUN/route.json" "$MOE" report "$R"
[ -s "$R/report.html" ] && ok || bad "report: $R/report.html (default --out) not written"
file_has "report: routing section" "$R/report.html" "<h2>Routing by domain</h2>"
file_has "report: MI per layer" "$R/report.html" "<h3>Layer 0: I\(domain; expert\) = [0-9.]+ bits"
file_has "report: domain rows" "$R/report.html" ">prose</text>"
rm -f "$R/route.json"
expect_ok "report --route-data" "$MOE" report "$R" --route-data "$D" --route-split train --out "$T/r2.html" --threads 2
file_has "report --route-data: routing section" "$T/r2.html" "<h2>Routing by domain</h2>"
file_has "report --route-data: layer 1 MI" "$T/r2.html" "<h3>Layer 1: I\(domain; expert\) = [0-9.]+ bits"
file_has "report: readable domain tooltips" "$T/r2.html" "<title>layer 1, expert [0-3], prose: [0-9]+\.[0-9]% of its pairs \([0-9,]+\)</title>"
file_has "report: readable load tooltips" "$T/r2.html" "<title>layer 0, expert [0-3], steps? [0-9-]+: [0-9]+\.[0-9]% of the layer's pairs \(even: 25\.0%\)</title>"
file_has "report: one colour scale" "$T/r2.html" "One colour scale for all layers"
expect_ok "report --route-json" "$MOE" report "$R" --route-json "$T/data100.json" --out "$T/r3.html"
file_has "report --route-json: 100 tokens" "$T/r3.html" ": 100 tokens of the train split"

# the head: the run's settings from RUN/latest/config.json (this run has no
# RUN/config.json), its log and trainer state, and the wall time
file_has "report head: config source" "$T/r1.html" "<tr><th>config</th><td>$R/latest/config.json</td></tr>"
file_has "report head: model shape" "$T/r1.html" \
  "<tr><th>model</th><td>mixtral: 2 layers, dim 32, 4 heads \(2 KV, head dim 8\), vocab 400, 128 positions</td></tr>"
file_has "report head: router" "$T/r1.html" \
  "<tr><th>router</th><td>4 experts, top-2, softmax, token choice, dropless \(2 of 2 layers MoE\)</td></tr>"
file_has "report head: no moe key" "$T/r1.html" "<tr><th>config &quot;moe&quot;</th><td>none"
# 20 steps of batch 4 x seq 32: 2560 tokens
file_has "report head: training" "$T/r1.html" \
  "<tr><th>training</th><td>20 steps, 2560 tokens trained; batch 4 x seq 32</td></tr>"
file_has "report head: wall time" "$T/r1.html" \
  "<tr><th>wall time</th><td>[0-9.]+ (s|min [0-9]+ s): the sum of the 20 logged steps&#39; step_s \(each step&#39;s wall time, evaluation and checkpoints included\)</td></tr>"
# the log's own fields: tokens so far and each step's wall seconds
file_has "train log: tokens and step_s" "$R/log.jsonl" '^\{"step":20,.*"tokens":2560,"step_s":[0-9.]+,'
# RUN/config.json comes first, with its "moe" object; without a checkpoint
# the tokens a step come from the log, and an old log without step_s gets
# its wall time from tokens_per_s
mkdir -p "$T/cfgrun"
sed 's/"step_s":[0-9.]*,//' "$R/log.jsonl" >"$T/cfgrun/log.jsonl"
sed 's/^{/{\n  "moe": {"router": "token_choice", "capacity_factor": 1.25, "noise": 0.5},/' "$C" >"$T/cfgrun/config.json"
expect_ok "report: RUN/config.json with a moe key" "$MOE" report "$T/cfgrun"
H="$T/cfgrun/report.html"
file_has "report head: RUN/config.json" "$H" "<tr><th>config</th><td>$T/cfgrun/config.json</td></tr>"
file_has "report head: capacity factor and noise" "$H" \
  "<tr><th>router</th><td>4 experts, top-2, softmax, token choice, capacity factor 1.25, noise 0.5 "
file_has "report head: the moe object" "$H" \
  '<tr><th>config &quot;moe&quot;</th><td>\{&quot;router&quot;:&quot;token_choice&quot;,&quot;capacity_factor&quot;:1.25,&quot;noise&quot;:0.5\}</td></tr>'
file_has "report head: tokens a step from the log" "$H" \
  "<tr><th>training</th><td>20 steps, 2560 tokens trained; 128 tokens a step \(batch x seq not recorded\)</td></tr>"
file_has "report head: wall time from tokens_per_s" "$H" \
  "<tr><th>wall time</th><td>[0-9.]+ (s|min [0-9]+ s): the sum of 20 logged steps&#39; times, 20 of them as tokens a step / tokens_per_s"

# ---------------------------------------------------- report: bad inputs
expect_fail "report: missing run dir" 1 "$T/norun: no such run directory" "$MOE" report "$T/norun"
mkdir -p "$T/empty"
expect_fail "report: no log" 1 "$T/empty/log.jsonl: No such file" "$MOE" report "$T/empty"
mkdir -p "$T/bad1" && head -n 2 "$R/log.jsonl" >"$T/bad1/log.jsonl" && printf '{"step": 3, "loss": \n' >>"$T/bad1/log.jsonl"
expect_fail "report: bad log line" 1 "log.jsonl:3: not a JSON object \(invalid JSON\)" "$MOE" report "$T/bad1"
mkdir -p "$T/bad2" && head -n 1 "$R/log.jsonl" >"$T/bad2/log.jsonl" && echo '{"loss": 1.5}' >>"$T/bad2/log.jsonl"
expect_fail "report: line without step" 1 "log.jsonl:2: no numeric \"step\"" "$MOE" report "$T/bad2"
mkdir -p "$T/bad3" && printf '\n[1, 2]\n' >"$T/bad3/log.jsonl"
expect_fail "report: a line not an object" 1 "log.jsonl:2: not a JSON object" "$MOE" report "$T/bad3"
mkdir -p "$T/bad4" && head -n 1 "$R/log.jsonl" >"$T/bad4/log.jsonl" &&
  echo '{"step":2,"loss":5,"layers":[{"layer":0,"max_violation":0,"dead":0,"load":[1,2,3]}]}' >>"$T/bad4/log.jsonl"
expect_fail "report: expert count changes" 1 "log.jsonl:2: layer 0 has 3 expert loads, earlier lines 4" "$MOE" report "$T/bad4"
mkdir -p "$T/bad5" && echo '{"step":1,"loss":"low"}' >"$T/bad5/log.jsonl"
expect_fail "report: field not a number" 1 "log.jsonl:1: \"loss\" is not a number" "$MOE" report "$T/bad5"
mkdir -p "$T/bad6" && printf '\n\n' >"$T/bad6/log.jsonl"
expect_fail "report: empty log" 1 "no step records" "$MOE" report "$T/bad6"
printf '{"mode": "data", "layers": [' >"$T/broken.json"
expect_fail "report: broken route json" 1 "broken.json: not valid JSON" "$MOE" report "$R" --route-json "$T/broken.json" --out "$T/x.html"
echo '{"domains": [{"name": "a"}], "layers": [{"layer": 0, "n_experts": 4, "mi_bits": 0, "domain_counts": [[1, 2]]}]}' >"$T/short.json"
expect_fail "report: route json with a short row" 1 "short.json: layers\[0\]: a domain_counts row is not 4 numbers" \
  "$MOE" report "$R" --route-json "$T/short.json" --out "$T/x.html"
[ ! -e "$T/x.html" ] && ! ls "$T" | grep -q 'x\.html\.tmp' && ok || bad "report: a page or temporary left behind after an error"
mkdir -p "$T/nockpt" && cp "$R/log.jsonl" "$T/nockpt/"
expect_fail "report: --route-data without a checkpoint" 1 "$T/nockpt/latest: no such file" "$MOE" report "$T/nockpt" --route-data "$D"
# a resumed run's log repeats steps: the later records win, no error
mkdir -p "$T/resumed" && head -n 12 "$R/log.jsonl" >"$T/resumed/log.jsonl" && sed -n '10,20p' "$R/log.jsonl" >>"$T/resumed/log.jsonl"
expect_ok "report: repeated steps of a resumed run" "$MOE" report "$T/resumed"
file_has "report: resumed run has 20 steps" "$T/resumed/report.html" "<td>20 \(steps 1 to 20; 23 lines\)</td>"

# group-limited routing: the report adds I(domain; group), the groups' shares
# and a domain x group heatmap per layer
mkdir -p "$T/grp"
sed 's/^{/{\n  "moe": {"group": "max", "n_group": 2, "topk_group": 1},/' "$C" >"$T/grp/config.json"
expect_ok "train with groups" "$MOE" train --data "$D" --config "$T/grp/config.json" --tokenizer "$T/tok" \
  --out "$T/grp/run" --steps 6 --batch 4 --seq 32 --lr 3e-3 --warmup 2 --seed 7 --threads 2 --quiet
expect_ok "report with groups" "$MOE" report "$T/grp/run" --route-data "$D" --route-split train --out "$T/g.html" --threads 2
file_has "report: I(domain; group) column" "$T/g.html" "<th>I\(domain; group\)</th>"
file_has "report: group shares" "$T/g.html" "<td>0: [0-9]+%, 1: [0-9]+%</td>"
file_has "report: group heatmap" "$T/g.html" "<h3>Layer 1: groups kept \(1 of 2\), I\(domain; group\) = [0-9.]+ bits"
file_has "report: group tooltips" "$T/g.html" "<title>layer 0, group [01], prose: [0-9]+\.[0-9]% of its group choices \([0-9,]+\)</title>"
if grep -q "I(domain; group)" "$T/r2.html"; then bad "report: group columns without groups"; else ok; fi

if [ "$skip" -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
[ "$fail" -eq 0 ]
