#!/usr/bin/env bash
# corpus.sh - the larger corpus for the experiments: seven domains (English
# documentation, German and French documentation, C, Python, Rust and Go
# code) from Debian 12 packages and PyPI releases at fixed versions, about
# 32 MB of text each; a byte-level BPE tokenizer learned on it; token
# shards with domains; and the evaluation copy of the shards
# (experiments/mix_val.py). docs/DATA.md lists the sources, their licenses,
# the rules and the measured sizes. Needs Debian 12 (apt-get download from
# main; no root), pip, python3 and groff; about 400 MB of downloads, 1.5 GB
# on disk in all. Not run by CI or `make test`.
#
#   BUILD=build CORPUS_DIR=dir experiments/corpus.sh
#
#   CORPUS_DIR  where everything goes (default EXP_DIR/corpus, EXP_DIR
#               default BUILD/experiments); keep it outside the repository:
#                 cache/      the downloads (deb/, pypi/) and the files used (root/);
#                             kept between runs, so a rerun downloads nothing
#                 text/       one file per document, text/DOMAIN/NNNNNN.txt,
#                             text/manifest.tsv (each document's source),
#                             text/sources.tsv (documents and bytes per source)
#                 tok/        the tokenizer (tokenizer.json)
#                 data/       the shards (train.bin, val.bin, meta.json)
#                 data-eval/  the same, val.bin windows shuffled across domains
#   CAP=32000000     bytes of text per domain
#   DOC_CAP=32000    bytes per document (a longer one is cut into parts)
#   VOCAB=4096       tokenizer size (256 bytes + merges + <|endoftext|>)
#   VAL_FRAC=0.02    share of documents for validation
#   FORCE=1          rebuild the text, tokenizer and shards (downloads stay)
#
# The experiments train on it with CORPUS=CORPUS_DIR (experiments/common.sh;
# experiments/prep.sh then runs this script, which returns at once when the
# corpus is built).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MOE=${MOE:-$BUILD/moe}
EXP_DIR=${EXP_DIR:-$BUILD/experiments}
DIR=${CORPUS_DIR:-$EXP_DIR/corpus}
CAP=${CAP:-32000000}
DOC_CAP=${DOC_CAP:-32000}
VOCAB=${VOCAB:-4096}
VAL_FRAC=${VAL_FRAC:-0.02}
JOBS=$(nproc 2>/dev/null || echo 2)
DOMAINS="english german french c python rust go"

die() {
    echo "corpus: $*" >&2
    exit 1
}
START=$SECONDS
stamp() { # stamp TITLE: the time since the start, then the title
    local t=$((SECONDS - START))
    printf '\n[%d:%02d] %s\n' $((t / 60)) $((t % 60)) "$1"
}
for c in apt-get dpkg-deb python3 groff; do
    command -v "$c" >/dev/null 2>&1 || die "needs $c (Debian 12: apt-get install ${c/dpkg-deb/dpkg})"
done
python3 -m pip --version >/dev/null 2>&1 || die "needs pip (python3 -m pip)"
mkdir -p "$DIR"

if [ "${FORCE:-0}" != 1 ] && [ -f "$DIR/data-eval/val.bin" ] && [ -f "$DIR/tok/tokenizer.json" ]; then
    echo "built already: $DIR (FORCE=1 to rebuild)"
else
    stamp "moe"
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -s -j"$JOBS" BUILD="$BUILD" all ||
        die "the build failed"
    [ -x "$MOE" ] || die "no $MOE"

    stamp "sources: apt-get download / pip download into $DIR/cache (once)"
    python3 experiments/corpus.py fetch "$DIR/cache"

    stamp "text: at most $CAP bytes a domain, documents of at most $DOC_CAP bytes"
    python3 experiments/corpus.py build "$DIR/cache" "$DIR/text" --cap "$CAP" --doc-cap "$DOC_CAP" --jobs "$JOBS"

    stamp "tokenizer: byte-level BPE, vocab $VOCAB"
    rm -rf "$DIR/tok"
    dirs=()
    for d in $DOMAINS; do dirs+=("$DIR/text/$d"); done
    "$MOE" tokenizer train -q --vocab "$VOCAB" --out "$DIR/tok" "${dirs[@]}"

    stamp "token shards with domains, $VAL_FRAC of the documents to val"
    rm -rf "$DIR/data" "$DIR/data-eval"
    dom_args=()
    for d in $DOMAINS; do dom_args+=(--domain "$d=$DIR/text/$d"); done
    "$MOE" data -q --tokenizer "$DIR/tok" --out "$DIR/data" --docs file --val-frac "$VAL_FRAC" "${dom_args[@]}"
    python3 experiments/mix_val.py "$DIR/data" "$DIR/data-eval" 128
fi

# The sizes, per domain: documents and bytes of text, tokens of each shard.
python3 - "$DIR" <<'EOF'
import json, os, sys
d = sys.argv[1]
meta = json.load(open(os.path.join(d, "data", "meta.json")))
docs, size = {}, {}
for line in list(open(os.path.join(d, "text", "manifest.tsv")))[1:]:
    f = line.split("\t")
    docs[f[0]] = docs.get(f[0], 0) + 1
    size[f[0]] = size.get(f[0], 0) + int(f[2])
print(f"{'domain':8s} {'documents':>9s} {'bytes':>12s} {'train tokens':>13s} {'val tokens':>11s} {'bytes/token':>11s}")
tot = [0, 0, 0, 0]
for dom in meta["domains"]:
    n = dom["name"]
    tr = dom["train"]["end"] - dom["train"]["start"]
    va = dom["val"]["end"] - dom["val"]["start"]
    print(f"{n:8s} {docs[n]:9,d} {size[n]:12,d} {tr:13,d} {va:11,d} {size[n] / (tr + va):11.2f}")
    for i, v in enumerate((docs[n], size[n], tr, va)):
        tot[i] += v
print(f"{'all':8s} {tot[0]:9,d} {tot[1]:12,d} {tot[2]:13,d} {tot[3]:11,d} {tot[1] / (tot[2] + tot[3]):11.2f}")
print(f"\ntokenizer: {os.path.join(d, 'tok')}  vocab {meta['vocab']}")
print(f"shards: {os.path.join(d, 'data')} (evaluation copy: {os.path.join(d, 'data-eval')})")
EOF
stamp "done"
