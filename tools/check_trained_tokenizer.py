#!/usr/bin/env python3
"""check_trained_tokenizer.py - does a tokenizer written by `moe tokenizer train` load in
Hugging Face tokenizers 0.23.3 (and transformers) and give the same ids as moe?

It trains one with the `moe` binary (or takes --tokenizer DIR), loads it with
tokenizers.Tokenizer.from_file and transformers.AutoTokenizer, and for every test text
compares HF's ids (add_special_tokens=False) and decoded text with `moe tokenize --no-special`
and `moe detokenize`. Texts: a fixed list (English, code, accents with and without NFC,
CJK, emoji, whitespace runs, special tokens inside text, unseen scripts), every line of the
training corpus, the llama.cpp tokenizer test inputs under shared/vocab when present, and
random mixes of all of those.

--write-fixture trains on tests/fixtures/tokenizer_train/corpus.txt with the fixture options
and writes, next to it, trained/ (the two JSON files) and expected.json (HF's ids and decoded
strings for the fixed texts), which tests/test_tokenizer_train.c compares against.

--data DIR checks `moe data` output made with this tokenizer: every document of meta.json's
files, encoded by HF and followed by EOS, must equal the tokens in DIR/train.bin + val.bin.

Usage:
  python3 tools/check_trained_tokenizer.py --moe build/moe [--write-fixture]
  python3 tools/check_trained_tokenizer.py --moe build/moe --corpus a.txt b.txt --vocab 4096
Needs: tokenizers 0.23.3, transformers 5.x (optional: skipped if missing).
"""
import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizer_train")

# The options the committed fixture is trained with (test_tokenizer_train.c uses the same).
FIXTURE_VOCAB = 500
FIXTURE_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

TEXTS = [
    "Hello world",
    " Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "the experts were routed; the router was trained",
    "I'M SHOUTING, YOU'VE HEARD, it's fine, we'll see, they'd know",
    "def train_step(model, batch, lr=3e-4):\n    return loss.item()\n",
    "int main(int argc, char **argv) {\n\treturn 0;\n}\n",
    "Café, naïve, façade, résumé, crème brûlée, Ångström",
    "cafe\u0301 and nai\u0308ve (combining marks: NFC composes them)",
    "日本語のテキストです。東京は日本の首都です。",
    "中文文本：快速的棕色狐狸跳过了懒狗。",
    "한국어 텍스트: 빠른 갈색 여우",
    "Русский текст и Ελληνικά",
    "Emoji: 🙂 🚀 🎉 👩‍💻 😶‍🌫️",
    "Unseen scripts: ภาษาไทย العربية עברית हिन्दी",
    "    four spaces\n\ttab\n\n\nthree newlines   \n  ",
    "line one\r\nline two\r\n",
    "numbers 0 1 12 123 1234 3.14159 -42 1e-9 0x7fff",
    "special <|endoftext|> inside <|im_start|>user\nhi<|im_end|>",
    "<|endoftext|>",
    "glued<|endoftext|>text",
    "a" * 300,
    "  ",
    "\n",
    "x",
]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, check=False, **kw)


def moe_tokenize(moe, tok_dir, text):
    r = run([moe, "tokenize", tok_dir, "--no-special", "--", text])
    if r.returncode != 0:
        raise SystemExit(f"moe tokenize failed on {text!r}: {r.stderr.decode()}")
    out = r.stdout.decode().strip()
    return [int(x) for x in out.split(",")] if out else []


def moe_detokenize(moe, tok_dir, ids, skip):
    if not ids:
        return ""
    cmd = [moe, "detokenize", tok_dir, ",".join(map(str, ids))] + (["--skip-special"] if skip else [])
    r = run(cmd)
    if r.returncode != 0:
        raise SystemExit(f"moe detokenize failed: {r.stderr.decode()}")
    out = r.stdout.decode("utf-8", errors="surrogateescape")
    return out[:-1] if out.endswith("\n") else out


def train(moe, corpus, vocab, special, out_dir, min_freq=None):
    cmd = [moe, "tokenizer", "train", "-q", "--vocab", str(vocab), "--out", out_dir]
    for s in special:
        cmd += ["--special", s]
    if min_freq:
        cmd += ["--min-freq", str(min_freq)]
    r = run(cmd + list(corpus))
    if r.returncode != 0:
        raise SystemExit(f"moe tokenizer train failed: {r.stderr.decode()}")
    print(r.stdout.decode().strip())


def shared_inputs():
    texts = []
    p = os.path.join(ROOT, "..", "shared", "vocab", "ggml-vocab-mpt.gguf.inp")
    for cand in (p, "/work/shared/vocab/ggml-vocab-mpt.gguf.inp"):
        if os.path.exists(cand):
            with open(cand, encoding="utf-8") as f:
                texts = [t.strip("\n") for t in f.read().split("__ggml_vocab_test__")]
            break
    return [t for t in texts if t]


def random_mixes(pool, n, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [rng.choice(pool) for _ in range(rng.randint(1, 4))]
        out.append(rng.choice(["", " ", "\n", "  ", "\t"]).join(parts))
    return out


def check(moe, tok_dir, texts, verbose=True):
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    with open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    n_vocab = len(tj["model"]["vocab"]) + len(tj["added_tokens"])
    assert hf.get_vocab_size(with_added_tokens=True) == n_vocab, "HF vocab size differs"
    cases, bad = [], 0
    for text in texts:
        want = hf.encode(text, add_special_tokens=False).ids
        got = moe_tokenize(moe, tok_dir, text)
        dec = hf.decode(want, skip_special_tokens=False)
        dec_skip = hf.decode(want, skip_special_tokens=True)
        if got != want:
            bad += 1
            print(f"MISMATCH ids for {text[:60]!r}:\n  hf  {want[:40]}\n  moe {got[:40]}")
        elif want:
            mdec = moe_detokenize(moe, tok_dir, got, False)
            mdec_skip = moe_detokenize(moe, tok_dir, got, True)
            if mdec != dec or mdec_skip != dec_skip:
                bad += 1
                print(f"MISMATCH decode for {text[:60]!r}: hf {dec[:60]!r} moe {mdec[:60]!r}")
        if dec != unicodedata.normalize("NFC", text):
            bad += 1
            print(f"HF round trip fails for {text[:60]!r}: {dec[:60]!r}")
        cases.append({"text": text, "ids": want, "decoded": dec, "decoded_skip_special": dec_skip})
    if verbose:
        print(f"{len(texts) - bad} of {len(texts)} texts: ids and decoded text equal to HF tokenizers")
    try:
        from transformers import AutoTokenizer

        at = AutoTokenizer.from_pretrained(tok_dir)
        cfg = json.load(open(os.path.join(tok_dir, "tokenizer_config.json")))
        assert at.eos_token == cfg.get("eos_token"), (at.eos_token, cfg.get("eos_token"))
        assert at.bos_token == cfg.get("bos_token"), (at.bos_token, cfg.get("bos_token"))
        for text in texts[:50]:
            assert at.encode(text, add_special_tokens=False) == hf.encode(text, add_special_tokens=False).ids
        print(f"transformers AutoTokenizer: loads, eos {at.eos_token!r} (id {at.eos_token_id}), "
              f"bos {at.bos_token!r}, same ids")
    except ImportError:
        print("transformers not installed: AutoTokenizer check skipped")
    return cases, bad


MASK64 = (1 << 64) - 1


def splitmix64(x):
    """rng_splitmix64 of src/base/rng.h: one step from state x."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def documents_of(data, mode):
    """(offset, length) of each document, as data_prep.c's next_doc cuts them."""
    if mode == "file":
        return [(0, len(data))] if data else []
    docs, lines, pos = [], [], 0
    while pos < len(data):  # lines as (start, end) without the newline
        e = data.find(b"\n", pos)
        e = len(data) if e < 0 else e
        lines.append((pos, e))
        pos = e + 1
    blank = lambda s, e: all(c in b" \t\r\f\v" for c in data[s:e])
    i = 0
    while i < len(lines):
        if blank(*lines[i]):
            i += 1
            continue
        start, end = lines[i][0], lines[i][1]
        while i < len(lines) and not blank(*lines[i]):
            end = lines[i][1]
            i += 1
        if end > start and data[end - 1:end] == b"\r":
            end -= 1
        docs.append((start, end - start))
    return docs


def expected_documents(meta):
    """Every document in shard order with its split, derived from meta.json alone."""
    seed = int(meta["split"]["seed_str"])
    frac = meta["split"]["val_frac"]
    mode = "file" if meta["document_split"] == "file" else "blank"
    out = []
    for k, dom in enumerate(meta["domains"]):
        for i, f in enumerate(dom["files"]):
            data = open(f["path"], "rb").read()
            for j, (off, n) in enumerate(documents_of(data, mode)):
                h = splitmix64(seed ^ (k << 48) ^ (i << 32) ^ j)
                split = "val" if frac >= 1 or h < int(frac * 2.0**64) else "train"
                out.append({"file": f["path"], "offset": off, "bytes": n, "split": split,
                            "text": data[off:off + n].decode("utf-8", errors="replace")})
    if frac > 0 and len(out) >= 2 and not any(d["split"] == "val" for d in out):
        out[-1]["split"] = "val"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moe", default=os.path.join(ROOT, "build", "moe"))
    ap.add_argument("--tokenizer", help="check this trained directory instead of training one")
    ap.add_argument("--corpus", nargs="+", default=[os.path.join(FIX, "corpus.txt")])
    ap.add_argument("--vocab", type=int, default=FIXTURE_VOCAB)
    ap.add_argument("--special", nargs="*", default=FIXTURE_SPECIAL)
    ap.add_argument("--random", type=int, default=200, help="random text mixes to add")
    ap.add_argument("--write-fixture", action="store_true")
    ap.add_argument("--data", help="check a `moe data` output directory made with --list-docs")
    a = ap.parse_args()

    if a.data:
        meta_path = os.path.join(a.data, "meta.json")
        meta = json.load(open(meta_path))
        meta["_path"] = meta_path
        check_data_impl(meta)
        return

    tmp = tempfile.mkdtemp(prefix="moe-tok-check.")
    try:
        tok_dir = a.tokenizer
        if not tok_dir:
            tok_dir = os.path.join(tmp, "tok")
            corpus = [os.path.join(FIX, "corpus.txt")] if a.write_fixture else a.corpus
            vocab = FIXTURE_VOCAB if a.write_fixture else a.vocab
            special = FIXTURE_SPECIAL if a.write_fixture else a.special
            train(a.moe, corpus, vocab, special, tok_dir)
        lines = []
        for p in a.corpus:
            with open(p, encoding="utf-8", errors="replace") as f:
                lines += [l for l in f.read().split("\n") if l][:2000]
        shared = shared_inputs()
        texts = TEXTS + lines[:300] + shared + random_mixes(TEXTS + lines[:300] + shared, a.random)
        cases, bad = check(a.moe, tok_dir, texts)
        if bad:
            print(f"FAILED: {bad} mismatches")
            sys.exit(1)
        if a.write_fixture:
            out = os.path.join(FIX, "trained")
            os.makedirs(out, exist_ok=True)
            for n in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copyfile(os.path.join(tok_dir, n), os.path.join(out, n))
            import tokenizers

            fixed = [c for c in cases if c["text"] in TEXTS or c["text"] in shared]
            exp = {
                "generator": "tools/check_trained_tokenizer.py --write-fixture",
                "tokenizers_version": tokenizers.__version__,
                "train": {"corpus": "corpus.txt", "vocab": FIXTURE_VOCAB, "min_freq": 2,
                          "special": FIXTURE_SPECIAL},
                "cases": fixed,
            }
            with open(os.path.join(FIX, "expected.json"), "w", encoding="utf-8") as f:
                json.dump(exp, f, ensure_ascii=False, indent=1)
                f.write("\n")
            print(f"wrote {out}/ and {FIX}/expected.json ({len(fixed)} cases)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_data_impl(meta):
    """The shards of `moe data` against documents and splits derived here from meta.json
    (not from moe's own listing), each encoded by HF tokenizers and followed by EOS."""
    data_dir = os.path.dirname(meta["_path"])
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(meta["tokenizer"])
    eos = meta["eos_id"]
    shards = {}
    for split in ("train", "val"):
        with open(os.path.join(data_dir, meta[split]["file"]), "rb") as f:
            raw = f.read()
        magic, version, dtype, n, vocab, n_dom, data_off = struct.unpack_from("<8sIIQIIQ", raw, 0)
        assert magic == b"MOETOKS\0", magic
        assert len(raw) == data_off + n * dtype, "file size"
        fmt = {2: "H", 4: "I"}[dtype]
        shards[split] = list(struct.unpack_from(f"<{n}{fmt}", raw, data_off))
    docs = expected_documents(meta)
    listing = os.path.join(data_dir, meta.get("documents_file") or "")
    if meta.get("documents_file"):
        with open(listing, encoding="utf-8") as f:
            listed = [json.loads(l) for l in f]
        by_split = lambda ds, s: [(d["file"], d["offset"], d["bytes"]) for d in ds if d["split"] == s]
        for s in ("train", "val"):
            assert by_split(listed, s) == by_split(docs, s), f"documents.jsonl disagrees on {s}"
    want = {"train": [], "val": []}
    for d in docs:
        want[d["split"]].extend(hf.encode(d["text"], add_special_tokens=False).ids + [eos])
    for split in ("train", "val"):
        a, b = want[split], shards[split]
        if a != b:
            i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            raise SystemExit(f"{split}: shard differs from HF at token {i} (HF {len(a)}, shard {len(b)})")
    print(f"data: {len(docs)} documents (split recomputed here); train {len(shards['train'])} + val "
          f"{len(shards['val'])} tokens equal HF tokenizers' encoding of each document + EOS")


if __name__ == "__main__":
    main()
