#!/bin/sh
# numa.sh - NUMA placement from the command line (src/base/numa.c): asked
# for on this machine's nodes, `moe bench` places the weights it read and
# says so; a kernel that refuses the placement (mbind made to fail by a
# preloaded shim) leaves a working run that names the refusal; a bad
# MOE_NUMA is an error naming the value, whether the file is read or mapped.
#   MOE=build/moe sh tests/cli/numa.sh     ends with "N passed, N failed"
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
G="$HERE/../fixtures/gguf_models/qwen3_moe_q8_0.gguf"
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"

# placed (on one node interleaving is a no-op, but it is asked for and done)
expect_ok "interleave" env MOE_NUMA=interleave MOE_LOAD=read "$MOE" bench "$G" --prompt 4 --gen 2 --reps 1 --warmup 0 --probe-mb 16
if grep -q "placement refused" "$T/out"; then
  # a machine whose kernel refuses memory policies (a container's seccomp filter)
  echo "note: this machine refuses the placement: $(grep -o 'placement refused: [^)]*' "$T/out")"
  ok
else
  out_has "interleave: the machine line" '^machine .*; NUMA: [0-9]+ nodes?, [0-9.]+ [KMG]iB interleaved$'
  expect_ok "interleave json" env MOE_NUMA=interleave MOE_LOAD=read "$MOE" bench "$G" --prompt 4 --gen 2 --reps 1 --warmup 0 --probe-mb 16 --json
  out_has "interleave json: bytes" '"numa_nodes": [1-9][0-9]*, "numa_interleaved_bytes": [1-9][0-9]*\}'
fi
expect_ok "off" env MOE_NUMA=off MOE_LOAD=read "$MOE" bench "$G" --prompt 4 --gen 2 --reps 1 --warmup 0 --probe-mb 16 --json
out_has "off json: nothing placed" '"numa_interleaved_bytes": 0\}'

# refused: a shim makes mbind fail with EPERM, as a seccomp filter would
cat >"$T/shim.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>
long syscall(long n, ...) {
    va_list ap;
    va_start(ap, n);
    long a[6];
    for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
    va_end(ap);
    if (n == SYS_mbind) {
        errno = EPERM;
        return -1;
    }
    long (*real)(long, ...) = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
C
if ${CC:-cc} -shared -fPIC -O1 -o "$T/shim.so" "$T/shim.c" -ldl 2>"$T/cc.err"; then
  expect_ok "refused" env LD_PRELOAD="$T/shim.so" MOE_NUMA=interleave MOE_LOAD=read "$MOE" bench "$G" --prompt 4 --gen 2 --reps 1 --warmup 0 --probe-mb 16
  out_has "refused: named" '; NUMA: [0-9]+ nodes?, nothing interleaved \(placement refused: Operation not permitted\)$'
  out_has "refused: the run went on" '^decode +2 '
else
  bad "the mbind shim did not compile: $(head -c 300 "$T/cc.err")"
fi

# a bad value: an error naming it, read or mapped
expect_fail "bad value, read" 1 "MOE_NUMA=sideways: expected auto, interleave or off" \
  env MOE_NUMA=sideways MOE_LOAD=read "$MOE" bench "$G" --prompt 4 --gen 2 --reps 1
expect_fail "bad value, mapped" 1 "MOE_NUMA=sideways: expected auto, interleave or off" \
  env MOE_NUMA=sideways MOE_LOAD=mmap "$MOE" logits "$G" --ids 1,2,3

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
