#!/bin/sh
# data.sh - `moe tokenizer train` and `moe data` end to end: help texts, usage
# errors, training on the committed corpus (must reproduce the committed
# tokenizer byte for byte), directory inputs, repeated --special, then token
# shards: files, header, meta.json, determinism across runs and thread counts,
# seeds, document modes, domains, and bad input of each kind.
#   MOE=build/moe sh tests/cli/data.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures/tokenizer_train"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-cli-data.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

run() {
  "$@" >"$T/out" 2>"$T/err"
  rc=$?
}

expect_ok() {
  name=$1; shift
  run "$@"
  if [ "$rc" -eq 0 ]; then ok; else bad "$name: exit $rc: $(head -c 300 "$T/err")"; fi
}

# expect_fail NAME PATTERN CMD...: exit 1 or 2, nothing on stdout, PATTERN in stderr
expect_fail() {
  name=$1; pat=$2; shift 2
  run "$@"
  if [ "$rc" -ne 1 ] && [ "$rc" -ne 2 ]; then bad "$name: exit $rc (expected 1 or 2): $(head -c 300 "$T/err")"; return; fi
  if [ -s "$T/out" ]; then bad "$name: wrote to stdout on error"; return; fi
  if grep -Eq -- "$pat" "$T/err"; then ok; else bad "$name: stderr lacks '$pat': $(head -c 300 "$T/err")"; fi
}

out_has() {
  if grep -Eq -- "$2" "$T/out"; then ok; else bad "$1: stdout lacks '$2': $(head -c 300 "$T/out")"; fi
}

check() { # check NAME COMMAND...: the command succeeds
  name=$1; shift
  if "$@"; then ok; else bad "$name"; fi
}

# u64 at byte offset OFF of FILE (little-endian)
u64_at() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }

if [ ! -x "$MOE" ]; then
  echo "FAIL: $MOE is not an executable (set MOE=path/to/moe)"
  echo "0 passed, 1 failed"
  exit 1
fi

# ------------------------------------------------------------------ help
expect_ok "moe --help" "$MOE" --help
out_has "help lists tokenizer" "^  tokenizer "
out_has "help lists data" "^  data "
expect_ok "tokenizer --help" "$MOE" tokenizer --help
out_has "tokenizer --help text" "^usage: moe tokenizer train"
expect_ok "tokenizer train --help" "$MOE" tokenizer train --help
out_has "train help: --special" "^  --special TOK"
out_has "train help: --vocab" "^  --vocab N"
expect_ok "data --help" "$MOE" data --help
out_has "data help: usage" "^usage: moe data --tokenizer PATH --out DIR"
out_has "data help: --domain" "^  --domain NAME=FILES"
expect_ok "help data" "$MOE" help data

# ------------------------------------------------------- tokenizer train
C="$FIX/corpus.txt"
expect_fail "tokenizer without subcommand" "usage: moe tokenizer train" "$MOE" tokenizer
expect_fail "tokenizer unknown subcommand" "unknown subcommand 'frob'" "$MOE" tokenizer frob
expect_fail "train without --vocab" "--vocab N is required" "$MOE" tokenizer train --out "$T/t" "$C"
expect_fail "train without --out" "--out DIR is required" "$MOE" tokenizer train --vocab 300 "$C"
expect_fail "train without files" "missing argument" "$MOE" tokenizer train --vocab 300 --out "$T/t"
expect_fail "train vocab too small" "--vocab: 100 is out of range" "$MOE" tokenizer train --vocab 100 --out "$T/t" "$C"
expect_fail "train vocab below specials" "vocab size 257 out of range \[258," \
  "$MOE" tokenizer train --vocab 257 --special a --special b --out "$T/t" "$C"
expect_fail "train missing file" "$T/nope.txt: No such file" "$MOE" tokenizer train --vocab 300 --out "$T/t" "$T/nope.txt"
expect_fail "train --special without value" "--special needs a value" "$MOE" tokenizer train --vocab 300 --out "$T/t" "$C" --special
expect_fail "train eos not special" "eos token \"</s>\" is not one of the special tokens" \
  "$MOE" tokenizer train --vocab 300 --eos "</s>" --out "$T/t" "$C"
expect_fail "train duplicate special" "given twice" \
  "$MOE" tokenizer train --vocab 300 --special "<a>" --special "<a>" --out "$T/t" "$C"
echo x >"$T/afile"
expect_fail "train --out is a file" "exists and is not a directory" "$MOE" tokenizer train --vocab 300 --out "$T/afile" "$C"

# The committed fixture was trained exactly so: the same bytes must come out.
TOK="$T/tok"
expect_ok "train fixture corpus" "$MOE" tokenizer train -q --vocab 500 --special "<|endoftext|>" \
  --special "<|im_start|>" --special "<|im_end|>" --out "$TOK" "$C"
out_has "train summary" "^wrote .*tokenizer.json: vocab 500 \(256 bytes \+ 241 merges \+ 3 special\)"
out_has "train speed line" "^read 3.07 KiB in 1 file: .* words, .* distinct; .* MB/s"
check "tokenizer.json equals the fixture" cmp -s "$TOK/tokenizer.json" "$FIX/trained/tokenizer.json"
check "tokenizer_config.json equals the fixture" cmp -s "$TOK/tokenizer_config.json" "$FIX/trained/tokenizer_config.json"
check "no temporary file left" sh -c "! ls '$TOK' | grep -q '\.tmp'"
expect_ok "tokenize with the trained tokenizer" "$MOE" tokenize "$TOK" "The experts were routed." --no-special
ids=$(cat "$T/out")
expect_ok "detokenize" "$MOE" detokenize "$TOK" "$ids"
check "round trip" test "$(cat "$T/out")" = "The experts were routed."
expect_ok "special token is one id" "$MOE" tokenize "$TOK" "<|im_end|>" --no-special
out_has "special id" "^499$"

# A directory of files; nested output directory; bos/eos; min-freq stop note
mkdir -p "$T/corpus"
cp "$C" "$T/corpus/a.txt"
printf 'def f(x):\n    return x + 1\n\nprint(f(41))\n' >"$T/corpus/b.py"
expect_ok "train on a directory" "$MOE" tokenizer train --vocab 2000 --special "<s>" --special "</s>" \
  --bos "<s>" --eos "</s>" --out "$T/deep/er/tok2" "$T/corpus"
out_has "directory: 2 files" "in 2 files"
out_has "min-freq note" "^note: stopped at [0-9]+ of 1742 merges"
check "config bos" grep -q '"bos_token":.*"<s>"' "$T/deep/er/tok2/tokenizer_config.json"
check "config eos" grep -q '"eos_token":.*"</s>"' "$T/deep/er/tok2/tokenizer_config.json"

# ------------------------------------------------------------------- data
D="$T/d"
expect_fail "data without --tokenizer" "--tokenizer PATH is required" "$MOE" data --out "$D" "$C"
expect_fail "data without --out" "--out DIR is required" "$MOE" data --tokenizer "$TOK" "$C"
expect_fail "data without files" "no input files" "$MOE" data --tokenizer "$TOK" --out "$D"
expect_fail "data bad val-frac" "--val-frac: '2' is not a number in \[0, 1\]" "$MOE" data --tokenizer "$TOK" --out "$D" --val-frac 2 "$C"
expect_fail "data val-frac junk" "--val-frac: '0.1x'" "$MOE" data --tokenizer "$TOK" --out "$D" --val-frac 0.1x "$C"
expect_fail "data bad docs mode" "--docs: 'para' is not blank or file" "$MOE" data --tokenizer "$TOK" --out "$D" --docs para "$C"
expect_fail "data domain without =" "--domain 'code': expected NAME=FILE" "$MOE" data --tokenizer "$TOK" --out "$D" --domain code
expect_fail "data bad domain name" "domain name \"a b\"" "$MOE" data --tokenizer "$TOK" --out "$D" --domain "a b=$C"
expect_fail "data duplicate domain" "domain \"x\" given twice" "$MOE" data --tokenizer "$TOK" --out "$D" --domain "x=$C" --domain "x=$C"
expect_fail "data missing input" "$T/nope.txt: No such file" "$MOE" data --tokenizer "$TOK" --out "$D" "$T/nope.txt"
expect_fail "data missing tokenizer" "cannot open|No such file" "$MOE" data --tokenizer "$T/notok" --out "$D" "$C"
expect_fail "data --out is a file" "exists and is not a directory" "$MOE" data --tokenizer "$TOK" --out "$T/afile" "$C"
mkdir -p "$T/noeos"
cp "$TOK/tokenizer.json" "$T/noeos/"
echo '{"eos_token": null}' >"$T/noeos/tokenizer_config.json"
expect_fail "data tokenizer without EOS" "has no EOS token" "$MOE" data --tokenizer "$T/noeos" --out "$D" "$C"

# A corpus of many documents in two domains
i=0
: >"$T/prose.txt"
while [ $i -lt 60 ]; do
  printf 'Document %d. The experts were routed, and the loss went down %d times.\nSecond line %d.\n\n' $i $i $i >>"$T/prose.txt"
  i=$((i + 1))
done
expect_ok "data two domains" "$MOE" data -q --tokenizer "$TOK" --out "$D" --val-frac 0.2 --seed 3 --list-docs \
  "$T/prose.txt" --domain "code=$T/corpus/b.py,$C"
out_has "data summary" "^wrote .*: train.bin [0-9.]+ K? ?tokens \([0-9]+ documents\), val.bin"
out_has "data speed line" "^read .* in 3 files, 2 domains: .* MB/s"
for f in train.bin val.bin meta.json documents.jsonl; do
  check "data wrote $f" test -s "$D/$f"
done
check "no .tmp left" sh -c "! ls '$D' | grep -q tmp"
check "train.bin magic" sh -c "head -c 7 '$D/train.bin' | grep -q MOETOKS"
check "meta: domains" grep -q '"name":.*"code"' "$D/meta.json"
check "meta: default domain" grep -q '"name":.*"default"' "$D/meta.json"
check "meta: dtype uint16" grep -q '"dtype":.*"uint16"' "$D/meta.json"
check "meta: tokenizer path" grep -q '"tokenizer":.*tok/tokenizer.json"' "$D/meta.json"
n_train=$(u64_at "$D/train.bin" 16)
off=$(u64_at "$D/train.bin" 32)
size=$(wc -c <"$D/train.bin" | tr -d ' ')
check "header count matches the file size" test "$size" -eq $((off + 2 * n_train))
check "header count matches meta.json" grep -q "\"tokens\":.*$n_train," "$D/meta.json"
# 60 prose documents + 2 in b.py + 8 in corpus.txt
check "documents listed" test "$(wc -l <"$D/documents.jsonl" | tr -d ' ')" -eq 70
check "val has documents" grep -q '"split":"val"' "$D/documents.jsonl"

expect_ok "data again, one thread" "$MOE" data -q --threads 1 --tokenizer "$TOK" --out "$T/d2" --val-frac 0.2 --seed 3 \
  "$T/prose.txt" --domain "code=$T/corpus/b.py,$C"
check "same train.bin on a second run" cmp -s "$D/train.bin" "$T/d2/train.bin"
check "same val.bin on a second run" cmp -s "$D/val.bin" "$T/d2/val.bin"
expect_ok "data other seed" "$MOE" data -q --tokenizer "$TOK" --out "$T/d3" --val-frac 0.2 --seed 4 \
  "$T/prose.txt" --domain "code=$T/corpus/b.py,$C"
check "another seed, another split" sh -c "! cmp -s '$D/val.bin' '$T/d3/val.bin'"
expect_ok "data --docs file" "$MOE" data -q --docs file --val-frac 0 --tokenizer "$TOK/tokenizer.json" --out "$T/d4" "$T/corpus"
out_has "one document per file" "train.bin .* \(2 documents\), val.bin 0 tokens \(0 documents\)"
val_n=$(u64_at "$T/d4/val.bin" 16)
check "empty val.bin is a valid shard" test "$val_n" -eq 0

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
