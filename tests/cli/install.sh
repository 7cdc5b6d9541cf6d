#!/bin/sh
# install.sh - libmoe as a user gets it: `make install PREFIX=...` into a
# temporary prefix (and once more with DESTDIR), then docs/example.c built
# with pkg-config against the installed tree, once with the shared library
# (found by rpath, then by LD_LIBRARY_PATH) and once with the static one, and
# run on a tiny random model with the fixture tokenizer: greedy output equal
# to `moe generate --temp 0` on the same model.
#   MOE=build/moe sh tests/cli/install.sh     ends with "N passed, N failed"
# Installs from the build directory that holds $MOE (it must be built).
MOE=${MOE:-build/moe}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
B=$(cd "$(dirname "$MOE")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/moe-install.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0
. "$HERE/harness.inc"
CC=${CC:-cc}

# a make started from `make test` must not talk to that make's job server
unset MAKEFLAGS MFLAGS MAKELEVEL
P=$T/prefix
expect_ok "make install" make -s -C "$ROOT" install BUILD="$B" PREFIX="$P"
for f in bin/moe lib/libmoe.a lib/libmoe.so.0 include/moe.h include/moe_train.h \
         include/moe_route.h lib/pkgconfig/moe.pc; do
  [ -f "$P/$f" ] && ok || bad "not installed: $f"
done
[ "$(readlink "$P/lib/libmoe.so")" = libmoe.so.0 ] && ok || bad "lib/libmoe.so is not a link to libmoe.so.0"
expect_ok "installed moe runs" "$P/bin/moe" --version
out_has "installed moe --version" "^moe [0-9]"
# only the public names leave the shared library
if command -v nm >/dev/null 2>&1; then
  nm -D --defined-only "$P/lib/libmoe.so.0" | awk '$2 == "T" { print $3 }' >"$T/syms"
  grep -q '^moe_forward$' "$T/syms" && ok || bad "libmoe.so does not export moe_forward"
  grep -qv '^moe_' "$T/syms" && bad "libmoe.so exports non-moe names: $(grep -v '^moe_' "$T/syms" | head -5 | tr '\n' ' ')" || ok
fi

# DESTDIR: the files under DESTDIR, the .pc file naming PREFIX
expect_ok "make install DESTDIR" make -s -C "$ROOT" install BUILD="$B" PREFIX=/opt/moe DESTDIR="$T/stage"
[ -f "$T/stage/opt/moe/lib/libmoe.so.0" ] && [ -f "$T/stage/opt/moe/include/moe.h" ] && ok ||
  bad "DESTDIR: files not under $T/stage/opt/moe"
grep -qx 'prefix=/opt/moe' "$T/stage/opt/moe/lib/pkgconfig/moe.pc" && ok || bad "DESTDIR: moe.pc does not name /opt/moe"

if ! command -v pkg-config >/dev/null 2>&1; then
  bad "pkg-config is not installed (Debian: pkg-config)"
  echo "$pass passed, $fail failed"
  exit 1
fi
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
expect_ok "pkg-config --cflags --libs" pkg-config --cflags --libs moe
out_has "pkg-config: include dir" "-I$P/include"
out_has "pkg-config: -lmoe" "-L$P/lib -lmoe"
expect_ok "pkg-config --static" pkg-config --libs --static moe
for l in -lcjson -lpcre2-8 -lutf8proc -lm -pthread; do out_has "pkg-config --static: $l" "(^| )$l( |$)"; done

# the example, shared: rpath, then LD_LIBRARY_PATH
EX=$ROOT/docs/example.c
# shellcheck disable=SC2046 # pkg-config's words
expect_ok "cc example (shared, rpath)" "$CC" -std=c11 -Wall -Wextra -Werror -o "$T/ex_rpath" "$EX" \
  $(pkg-config --cflags --libs moe) -Wl,-rpath,"$P/lib"
# shellcheck disable=SC2046
expect_ok "cc example (shared)" "$CC" -std=c11 -Wall -Wextra -Werror -o "$T/ex_shared" "$EX" \
  $(pkg-config --cflags --libs moe)
# static: the archive instead of -lmoe, the dependencies from --static
# shellcheck disable=SC2046
expect_ok "cc example (static)" "$CC" -std=c11 -Wall -Wextra -Werror -o "$T/ex_static" "$EX" \
  $(pkg-config --cflags moe) $(pkg-config --libs --static moe | sed 's|-lmoe|-l:libmoe.a|')
if command -v ldd >/dev/null 2>&1; then
  ldd "$T/ex_rpath" | grep -q "libmoe.so.0 => $P/lib/libmoe.so.0" && ok || bad "ex_rpath: $(ldd "$T/ex_rpath" | grep moe)"
  ldd "$T/ex_static" | grep -q libmoe && bad "ex_static needs libmoe.so" || ok
fi

M=$T/tiny
"$P/bin/moe" init --preset tiny --dtype f32 --seed 4 "$M" >/dev/null 2>&1 || bad "init tiny"
cp "$HERE/../fixtures/cli/tokenizer.json" "$M/"
expect_ok "moe generate" "$P/bin/moe" generate "$M" -p "hello world" -n 8 --temp 0 -t 1
want="text: hello world$(cat "$T/out")"
for how in rpath shared static; do
  if [ "$how" = shared ]; then
    expect_ok "example ($how)" env LD_LIBRARY_PATH="$P/lib" "$T/ex_$how" "$M" "hello world" 8
  else
    expect_ok "example ($how)" "$T/ex_$how" "$M" "hello world" 8
  fi
  out_has "example ($how): prompt ids" "^prompt ids: 1( [0-9]+)+$"
  out_has "example ($how): 8 generated ids" "^generated ids:( [0-9]+){8}$"
  got=$(grep '^text: ' "$T/out")
  [ "$got" = "$want" ] && ok || bad "example ($how): '$got', moe generate: '$want'"
  cp "$T/out" "$T/out_$how"
done
cmp -s "$T/out_rpath" "$T/out_static" && ok || bad "shared and static examples differ"

# the batch example: three prompts decoded together, each line what the
# one-prompt example gives for that prompt alone
# shellcheck disable=SC2046
expect_ok "cc example_batch" "$CC" -std=c11 -Wall -Wextra -Werror -o "$T/exb" "$ROOT/docs/example_batch.c" \
  $(pkg-config --cflags --libs moe) -Wl,-rpath,"$P/lib"
i=0
for prompt in "hello world" "the cat" "a b c d e f"; do
  expect_ok "example alone: $prompt" "$T/ex_rpath" "$M" "$prompt" 8
  sed -n "s/^text: /$i: /p" "$T/out" >>"$T/want_batch"
  i=$((i + 1))
done
expect_ok "example_batch" "$T/exb" "$M" 8 "hello world" "the cat" "a b c d e f"
cmp -s "$T/out" "$T/want_batch" && ok || bad "example_batch: '$(cat "$T/out")', alone: '$(cat "$T/want_batch")'"
expect_fail "example: bad model" 1 "error: .*nope" "$T/ex_static" "$T/nope" "hi" 2

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
