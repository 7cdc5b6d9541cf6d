#!/bin/sh
# Run every test suite and add up their "N passed, N failed" lines; each
# suite's line also gives its wall time.
B=${BUILD:-build}
total_p=0; total_f=0; total_s=0; status=0
run() {
  name=$1; shift
  echo "== $name"
  t0=$(date +%s)
  out=$("$@" 2>&1); rc=$?
  secs=$(( $(date +%s) - t0 ))
  printf '%s\n' "$out" | grep -v '^[0-9]* passed, ' 
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ -z "$line" ]; then
    echo "$name: no result line (exit $rc, $secs s)"; total_f=$((total_f + 1)); status=1; return
  fi
  echo "$name: $line ($secs s)"
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
  s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p'); s=${s:-0}
  total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + s))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then total_f=$((total_f + 1)); fi
  [ "$rc" -ne 0 ] && status=1
}
run unit "$B/moe_tests"
# On a CPU with AVX-512 the default path skips the AVX2 kernels in every
# model test: run the suite again on them (with AVX-VNNI where the CPU has it).
if grep -qw avx512f /proc/cpuinfo 2>/dev/null && grep -qw avx2 /proc/cpuinfo; then
  MOE_ISA=avx2 run "unit (avx2 kernels)" "$B/moe_tests"
fi
if [ -z "$NO_ASAN" ]; then
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run "unit (asan+ubsan)" "$B/asan/moe_tests"
fi
for t in tests/cli/*.sh; do
  [ -f "$t" ] || continue
  MOE="$B/moe" run "cli $(basename "$t" .sh)" sh "$t"
done
if [ -z "$NO_ASAN" ]; then
  MOE="$B/asan/moe" run "serve flood (asan+ubsan)" sh tests/serve/flood.sh
fi
echo "$total_p passed, $total_f failed, $total_s skipped"
[ "$status" -eq 0 ] && [ "$total_f" -eq 0 ]
