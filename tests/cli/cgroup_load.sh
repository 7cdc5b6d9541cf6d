#!/bin/sh
# cgroup_load.sh - weights are read into memory only where they fit: the
# room a memory cgroup leaves counts, not only the machine's MemAvailable.
# A 200 MB model in a cgroup of 150 MB must be memory-mapped (and run);
# read whole into memory it would be killed. Needs a writable cgroup-v1
# memory controller (root); elsewhere the suite reports it skipped.
#   MOE=build/moe sh tests/cli/cgroup_load.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-cli.XXXXXX") || exit 1
CG=/sys/fs/cgroup/memory/moe-test-$$
trap 'rmdir "$CG" 2>/dev/null; rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"

if ! mkdir "$CG" 2>/dev/null || ! echo $((150 * 1024 * 1024)) >"$CG/memory.limit_in_bytes" 2>/dev/null; then
  echo "skipped: no writable memory cgroup"
  echo "0 passed, 0 failed"
  exit 0
fi
# in a cgroup: CMD...
in_cg() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }

expect_ok "init 200 MB" "$MOE" init --preset qwen3-30b-a3b --layers 1 --experts 20 --vocab 4096 "$T/m"
size=$(du -m "$T/m/model.safetensors" | cut -f1)
if [ "$size" -gt 180 ]; then ok; else bad "model of $size MB: too small for the test"; fi
expect_ok "logits outside" "$MOE" logits "$T/m" --ids 1,2,3 --out "$T/a.bin"
run in_cg "$MOE" logits "$T/m" --ids 1,2,3 --out "$T/b.bin"
if [ "$rc" -eq 0 ]; then ok; else bad "logits in a 150 MB cgroup: exit $rc: $(head -c 300 "$T/err")"; fi
if cmp -s "$T/a.bin" "$T/b.bin"; then ok; else bad "logits differ in the cgroup"; fi
# forcing the read shows the limit is real
run in_cg env MOE_LOAD=read "$MOE" logits "$T/m" --ids 1,2,3 --out "$T/c.bin"
if [ "$rc" -ne 0 ]; then ok; else bad "MOE_LOAD=read ran in 150 MB: the cgroup limits nothing"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
