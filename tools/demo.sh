#!/usr/bin/env bash
# demo.sh - the main job (`make demo`): on a Debian 12 machine, install the
# text it needs, build moe, build a five-domain corpus (English prose, German
# and French man pages, C headers, Python modules), train a byte-level BPE
# tokenizer, train a small MoE from scratch for a few minutes, then show what
# it learned: a generated sample per domain, each layer's expert load, the
# domain x expert table with I(domain; expert), and an HTML report.
# `make demo-ci` runs the same steps on a tiny corpus for a few steps.
#
#   BUILD=build tools/demo.sh [full|ci|prep] (the Makefile passes BUILD)
#   DEMO_DIR=dir   where the corpus, data and run go (default BUILD/demo, BUILD/demo-ci)
# prep: only steps 1-5 of full (packages, build, corpus, tokenizer, shards);
# experiments/prep.sh uses it.
#
# docs/DATA.md describes the sources, their licenses and the corpus rules.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-full}
BUILD=${BUILD:-build}
MOE=$BUILD/moe
THREADS=$(nproc 2>/dev/null || echo 2)

# Sizes. full: 3-4 minutes on 2 cores, apt and the build included (training
# about 2 of them; TRAIN_LIMIT bounds it on a slower machine).
# ci: the same path in well under 2 minutes.
case $MODE in
full | prep)
    DIR=${DEMO_DIR:-$BUILD/demo}
    CAP=1500000        # bytes of text per domain
    DOC_CAP=16000      # bytes per document (a longer file is cut at a line)
    VOCAB=4096
    DIM=128; FFN=256; LAYERS=4; HEADS=4; KV=2; EXPERTS=8; TOPK=2
    STEPS=1000; BATCH=8; SEQ=128; LR=4e-3; WARMUP=30; EVAL_EVERY=200; SAVE_EVERY=100
    VAL_FRAC=0.05
    TRAIN_LIMIT=330    # seconds at most (planned: about 220)
    GEN=48; ROUTE_TOKENS=0
    ;;
ci)
    DIR=${DEMO_DIR:-$BUILD/demo-ci}
    CAP=60000
    DOC_CAP=4000
    VOCAB=1024
    DIM=64; FFN=128; LAYERS=2; HEADS=2; KV=1; EXPERTS=8; TOPK=2
    STEPS=20; BATCH=4; SEQ=64; LR=4e-3; WARMUP=5; EVAL_EVERY=10; SAVE_EVERY=10
    VAL_FRAC=0.2       # enough validation documents in every small domain
    TRAIN_LIMIT=60
    GEN=16; ROUTE_TOKENS=0
    ;;
*)
    echo "usage: tools/demo.sh [full|ci|prep]" >&2
    exit 2
    ;;
esac
DOMAINS="english german french c python"

START=$SECONDS
N_STEP=8
[ "$MODE" = prep ] && N_STEP=5
step() { # step N TITLE
    local t=$((SECONDS - START))
    printf '\n[%d:%02d] %s/%s %s\n' $((t / 60)) $((t % 60)) "$1" "$N_STEP" "$2"
}
die() {
    echo "demo: $*" >&2
    exit 1
}

# ---------------------------------------------------------------- packages
# bible-kjv: the King James Bible (bible-kjv-text) and the `bible` reader;
# manpages-de/-fr: translated man pages, rendered by groff (groff-base);
# libc6-dev: the C headers under /usr/include; libpython3-stdlib: the
# Python standard library's sources under /usr/lib/python3.*.
# A C compiler too when there is none (the Makefile's deps step installs
# the libraries moe links).
PKGS="bible-kjv bible-kjv-text manpages-de manpages-fr groff-base libc6-dev libpython3-stdlib"
command -v cc >/dev/null 2>&1 || PKGS="$PKGS gcc"

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_packages() {
    local missing="" p
    for p in $PKGS; do installed "$p" || missing="$missing $p"; done
    if [ -z "$missing" ]; then
        echo "all present: $PKGS"
        return
    fi
    echo "installing:$missing"
    as_root apt-get update -qq || die "apt-get update failed"
    for p in $missing; do
        case $(apt-cache policy "$p" 2>/dev/null) in
        *"Candidate: ("* | "") die "apt has no package '$p' (apt-cache policy $p); is this Debian 12?" ;;
        esac
    done
    # shellcheck disable=SC2086 # $missing is a list of names
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing \
        >"$DIR/apt.log" 2>&1 || { tail -20 "$DIR/apt.log" >&2; die "apt-get install failed"; }
    echo "installed:$missing"
}

# man_pages PKG: the package's own man pages (not other packages' pages in
# the same language directory), sorted. Images that keep dpkg from writing
# /usr/share/man (path-exclude in /etc/dpkg/dpkg.cfg.d) install the package
# without its pages: then they come from the .deb, unpacked under DIR/deb.
man_pages() {
    local pkg=$1 root=""
    local list
    list=$(dpkg -L "$pkg" | grep -E '/man[1-9]/[^/]+\.gz$' | LC_ALL=C sort)
    [ -n "$list" ] || die "dpkg -L $pkg lists no man pages"
    if [ ! -f "$(echo "$list" | head -1)" ]; then
        mkdir -p "$DIR/deb"
        (cd "$DIR/deb" && apt-get download "$pkg" >/dev/null 2>&1) ||
            die "$pkg is installed without its man pages and apt-get download $pkg failed"
        dpkg-deb -x "$DIR"/deb/"$pkg"_*.deb "$DIR/deb/root"
        root=$DIR/deb/root
    fi
    echo "$list" | sed "s|^|$root|"
}

# ------------------------------------------------------------------ corpus
# One file per document under DIR/corpus/DOMAIN/, in a fixed order, until
# the domain has CAP bytes; a document longer than DOC_CAP is cut after its
# last whole line below DOC_CAP.

# copy_files DOMAIN FILES...: plain text files (C, Python) as documents.
# A file's opening comment is left out when it is a license notice (it
# says "Copyright"; every glibc header starts with the same 17 lines), and
# so are the blank lines after it.
copy_files() {
    local out=$DIR/corpus/$1
    shift
    awk -v dir="$out" -v cap="$CAP" -v doccap="$DOC_CAP" '
        function emit(s, len) {
            len = length(s) + 1
            if (used + len > doccap || total >= cap) return 0
            print s > f; used += len; total += len
            return 1
        }
        FNR == 1 {
            if (n > 0) close(f)
            if (total >= cap) exit
            n++; f = sprintf("%s/%04d.txt", dir, n); used = 0
            head = ($0 ~ /^\/\*/); nh = 0; lic = 0; skip_blank = 0
        }
        head {
            hl[nh++] = $0
            if ($0 ~ /Copyright/) lic = 1
            if (index($0, "*/")) {
                head = 0
                if (lic) skip_blank = 1
                else for (i = 0; i < nh; i++) if (!emit(hl[i])) nextfile
            }
            next
        }
        skip_blank && $0 == "" { next }
        { skip_blank = 0; if (!emit($0)) nextfile }' "$@"
}

# bible_text: the King James Bible, one chapter a document, one verse a line
# (`bible -f` prints "Ge1:1 In the beginning ...").
bible_text() {
    local out=$DIR/corpus/english
    bible -f 'Gen1:1-Rev22:21' | awk -v dir="$out" -v cap="$CAP" '
        full { next } # read on to the end: no SIGPIPE for bible
        {
            ch = $1; sub(/:[0-9]+$/, "", ch)
            line = substr($0, length($1) + 2)
            if (ch != cur) {
                if (n > 0) close(f)
                if (total >= cap) { full = 1; next }
                n++; f = sprintf("%s/%04d.txt", dir, n); cur = ch
            }
            print line > f; total += length(line) + 1
        }'
}

# man_text DOMAIN PKG: translated man pages rendered to plain text by
# groff (no hyphenation, one line per paragraph), then by awk: indentation
# and runs of spaces squeezed, blank lines too; the page header and footer
# and the translators' credits (the same paragraphs on every page, section
# ÜBERSETZUNG / TRADUCTION) left out. One page a document; a page under 200
# bytes (a .so redirect) is not kept.
man_text() {
    local out=$DIR/corpus/$1 total=0 n=0 f doc size pages
    pages=$(man_pages "$2")
    while IFS= read -r f; do
        [ -L "$f" ] && continue # another name for a page already there
        doc=$(printf '%s/%04d.txt' "$out" $((n + 1)))
        size=$(zcat "$f" | groff -k -t -Tutf8 -mandoc -rLL=2000n -rHY=0 -P-cbou 2>/dev/null |
            awk -v doccap="$DOC_CAP" -v doc="$doc" '
                { sub(/^ +/, ""); gsub(/  +/, " "); line[n++] = $0 }
                /^(ÜBERSETZUNG|TRADUCTION)$/ && !cut { cut = n - 1 }
                END {
                    first = 0; while (first < n && line[first] == "") first++
                    last = n - 1; while (last > first && line[last] == "") last--
                    if (cut) { last = cut; while (last > first + 1 && line[last - 1] == "") last-- }
                    for (i = first + 1; i < last; i++) { # not the header and footer
                        if (line[i] == "" && (prev == "" || i == first + 1)) { prev = ""; continue }
                        used += length(line[i]) + 1
                        if (used > doccap) break
                        print line[i] > doc; prev = line[i]; bytes += length(line[i]) + 1
                    }
                    print bytes + 0
                }') || size=0
        if [ "$size" -lt 200 ]; then
            rm -f "$doc"
            continue
        fi
        n=$((n + 1))
        total=$((total + size))
        [ "$total" -ge "$CAP" ] && break
    done <<<"$pages"
    return 0 # the pages ran out before CAP: what there is
}

build_corpus() {
    rm -rf "$DIR/corpus"
    local d
    for d in $DOMAINS; do mkdir -p "$DIR/corpus/$d"; done
    local py
    py=$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | sort -t. -k2 -n | tail -1)
    [ -n "$py" ] || die "no /usr/lib/python3.* (libpython3-stdlib)"
    # The five domains at once, two of them (the man pages) busy with groff.
    bible_text &
    local p1=$!
    man_text german manpages-de &
    local p2=$!
    man_text french manpages-fr &
    local p3=$!
    local files
    mapfile -t files < <(dpkg -L libc6-dev | grep '^/usr/include/.*\.h$' | LC_ALL=C sort)
    copy_files c "${files[@]}"
    # Top-level modules; not the symlinks, nor _sysconfigdata* (build flags).
    mapfile -t files < <(find "$py" -maxdepth 1 -type f -name '*.py' ! -name '_sysconfigdata*' | LC_ALL=C sort)
    copy_files python "${files[@]}"
    wait $p1 && wait $p2 && wait $p3 || die "building the corpus failed"
    printf '%-8s %6s %9s\n' domain docs bytes
    for d in $DOMAINS; do
        printf '%-8s %6d %9d\n' "$d" "$(ls "$DIR/corpus/$d" | wc -l)" "$(cat "$DIR/corpus/$d"/* | wc -c)"
    done
    echo "python sources: $py"
}

# ------------------------------------------------------------------- model
write_config() {
    cat >"$DIR/config.json" <<EOF
{
  "architectures": ["MixtralForCausalLM"],
  "model_type": "mixtral",
  "vocab_size": $1,
  "hidden_size": $DIM,
  "intermediate_size": $FFN,
  "num_hidden_layers": $LAYERS,
  "num_attention_heads": $HEADS,
  "num_key_value_heads": $KV,
  "head_dim": $((DIM / HEADS)),
  "num_local_experts": $EXPERTS,
  "num_experts_per_tok": $TOPK,
  "max_position_embeddings": $SEQ,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "bos_token_id": null,
  "eos_token_id": $(($1 - 1)),
  "moe": {"score": "softmax", "router": "token_choice"}
}
EOF
}

# One prompt per domain, in DOMAINS order.
PROMPTS=(
    "And God said unto Moses,"
    "Diese Option"
    "Cette option"
    "extern int"
    "    def __init__(self"
)

# -------------------------------------------------------------------- run
mkdir -p "$DIR"
echo "moe demo ($MODE): everything goes to $DIR"

step 1 "Debian packages"
install_packages

step 2 "building moe"
# A make of its own (-j over the cores), not the caller's jobserver; a dot
# per file compiled, other lines (packages installed, errors) as they are.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -j"$THREADS" BUILD="$BUILD" all |
    awk '/^cc .* -c / { printf "."; n++; open = 1; fflush(); next } /^(cc|ar) / { next }
         { if (open) print ""; open = 0; print; fflush() }
         END { if (open) print ""; if (n) printf "compiled %d files\n", n }' ||
    die "the build failed"
[ -x "$MOE" ] || die "the build did not make $MOE"
echo "built $MOE"

step 3 "corpus: five domains, at most $CAP bytes each"
build_corpus

step 4 "tokenizer: byte-level BPE, vocab $VOCAB"
"$MOE" tokenizer train --vocab "$VOCAB" --out "$DIR/tok" "$DIR"/corpus/* | tee "$DIR/tokenizer.log"
# On a small corpus learning may stop short of VOCAB: the printed size is
# the model's vocab_size, and its last id the end-of-document token.
vocab=$(sed -nE 's/.*: vocab ([0-9]+) .*/\1/p' "$DIR/tokenizer.log" | head -1)
[ -n "$vocab" ] || die "no vocabulary size in the tokenizer's output"

step 5 "token shards with domains"
dom_args=()
for d in $DOMAINS; do dom_args+=(--domain "$d=$DIR/corpus/$d"); done
"$MOE" data --tokenizer "$DIR/tok" --out "$DIR/data" --docs file --val-frac "$VAL_FRAC" "${dom_args[@]}"

if [ "$MODE" = prep ]; then
    t=$((SECONDS - START))
    printf '\n[%d:%02d] done: corpus, tokenizer and shards in %s\n' $((t / 60)) $((t % 60)) "$DIR"
    exit 0
fi

step 6 "training: $LAYERS layers, dim $DIM, $EXPERTS experts top-$TOPK, $STEPS steps of $BATCH x $SEQ tokens"
write_config "$vocab"
rm -rf "$DIR/run"
# On a machine much slower than planned the run stops at TRAIN_LIMIT
# seconds (timeout) and the demo goes on from the last checkpoint.
train_rc=0
timeout "$TRAIN_LIMIT" "$MOE" train --config "$DIR/config.json" --data "$DIR/data" --tokenizer "$DIR/tok" \
    --out "$DIR/run" --steps "$STEPS" --batch "$BATCH" --seq "$SEQ" --warmup "$WARMUP" --lr "$LR" \
    --min-lr 3e-4 --aux 0.01 --z 0.001 --eval-every "$EVAL_EVERY" --save-every "$SAVE_EVERY" --keep 1 \
    --threads "$THREADS" --seed 1 || train_rc=$?
[ "$train_rc" -ne 124 ] || echo "demo: training stopped at the ${TRAIN_LIMIT} s limit"
[ -e "$DIR/run/latest" ] || die "training failed (exit $train_rc) before its first checkpoint"
[ "$train_rc" -eq 0 ] || echo "demo: going on with $(readlink "$DIR/run/latest")"

step 7 "samples: one prompt per domain (temperature 0.6, seed 1)"
i=0
for d in $DOMAINS; do
    prompt=${PROMPTS[$i]}
    i=$((i + 1))
    printf -- '--- %s: %s' "$d" "$prompt"
    "$MOE" generate "$DIR/run/latest" -p "$prompt" -n "$GEN" --temp 0.6 --seed 1 --threads "$THREADS" 2>/dev/null ||
        die "moe generate failed"
    echo
done

step 8 "routing over the validation shard, and the report"
"$MOE" route "$DIR/run/latest" --data "$DIR/data" --max-tokens "$ROUTE_TOKENS" --table --json "$DIR/run/route.json" \
    --threads "$THREADS"
echo
report=$("$MOE" report "$DIR/run" --route-json "$DIR/run/route.json")
t=$((SECONDS - START))
printf '\n[%d:%02d] done. Report: %s\n' $((t / 60)) $((t % 60)) "$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
