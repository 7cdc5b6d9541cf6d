#!/bin/sh
# results.sh - docs/RESULTS.md is what the committed run logs give:
# `experiments/run_all.sh --from-logs --check` passes; a number edited by
# hand in the document, a number changed in a log, or a template value the
# logs do not give each make the check fail; `report.py pack` turns a run
# directory back into the committed files byte for byte.
#   sh tests/cli/results.sh     ends with "N passed, N failed"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT="$HERE/../.."
R="$ROOT/experiments/report.py"
RUNS="$ROOT/docs/results/runs"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-results.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"

expect_ok "document matches the logs" bash "$ROOT/experiments/run_all.sh" --from-logs --check
out_has "document matches the logs" "matches the logs"

# a hand edit: the first "x.xxx ± y.yyy" of the document, its last digit changed
cp "$ROOT/docs/RESULTS.md" "$T/doc.md"
python3 - "$T/doc.md" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
m = re.search(r"[0-9]\.[0-9]{3} ± ", s)
i = m.start() + 4
s = s[:i] + str((int(s[i]) + 1) % 10) + s[i + 1:]
open(p, "w").write(s)
PY
if cmp -s "$ROOT/docs/RESULTS.md" "$T/doc.md"; then bad "the edit changed nothing"; else ok; fi
run python3 "$R" render --check --doc "$T/doc.md"
if [ "$rc" -eq 1 ] && grep -q "differs from what the logs" "$T/err"; then ok; else bad "hand edit: exit $rc: $(head -c 300 "$T/err")"; fi
if grep -q '^+.*±' "$T/out"; then ok; else bad "hand edit: no diff line shown"; fi

# a log changed: the last validation loss of the first run's log
mkdir -p "$T/runs"
cp "$RUNS"/* "$T/runs/"
first=$(ls "$T/runs" | grep -E -- '-s[0-9]+\.log\.jsonl\.xz$' | grep -v -- '-s11\.' | head -1)
python3 - "$T/runs/$first" <<'PY'
import lzma, re, sys
p = sys.argv[1]
s = lzma.decompress(open(p, "rb").read()).decode()
i = s.rindex('"val_loss":')
s = s[:i] + re.sub(r'^"val_loss":[0-9.eE+-]+', '"val_loss":9.999', s[i:])
open(p, "wb").write(lzma.compress(s.encode()))
PY
run python3 "$R" render --check --runs "$T/runs"
if [ "$rc" -eq 1 ]; then ok; else bad "changed log: exit $rc"; fi

# a template value the logs do not give
printf 'loss {{top2.val}} and {{no_such.value}}\n' >"$T/t.md.in"
run python3 "$R" render --check --template "$T/t.md.in" --doc "$T/t.md"
if [ "$rc" -eq 1 ] && grep -q "no value 'no_such.value'" "$T/err"; then ok; else bad "unknown value: exit $rc: $(head -c 300 "$T/err")"; fi

# pack: a run directory made from a committed run packs to the same files
rn=$(basename "$first" .log.jsonl.xz)
mkdir -p "$T/exp/runs/$rn" "$T/packed"
python3 - "$RUNS" "$rn" "$T/exp/runs/$rn" <<'PY'
import json, lzma, os, sys
runs, name, d = sys.argv[1:4]
meta = json.load(open(os.path.join(runs, name + ".meta.json")))
cfg = meta.pop("config")
json.dump(cfg, open(os.path.join(d, "config.in.json"), "w"))
json.dump(meta, open(os.path.join(d, "run.json"), "w"))
open(os.path.join(d, "log.jsonl"), "wb").write(lzma.decompress(open(os.path.join(runs, name + ".log.jsonl.xz"), "rb").read()))
PY
expect_ok "pack" python3 "$R" pack --exp-dir "$T/exp" --runs "$T/packed"
if cmp -s "$T/packed/$rn.meta.json" "$RUNS/$rn.meta.json"; then ok; else bad "pack: $rn.meta.json differs"; fi
unxz() { python3 -c "import lzma,sys; sys.stdout.buffer.write(lzma.decompress(open(sys.argv[1],'rb').read()))" "$1"; }
unxz "$T/packed/$rn.log.jsonl.xz" >"$T/a.jsonl" && unxz "$RUNS/$rn.log.jsonl.xz" >"$T/b.jsonl"
if [ -s "$T/a.jsonl" ] && cmp -s "$T/a.jsonl" "$T/b.jsonl"; then ok; else bad "pack: $rn.log.jsonl.xz holds another log"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
