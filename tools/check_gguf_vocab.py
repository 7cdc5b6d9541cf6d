#!/usr/bin/env python3
"""check_gguf_vocab.py - the vocabularies `moe convert` writes into GGUF files, against llama.cpp.

For each tokenizer.json fixture (tests/fixtures/tokenizers/*, tests/fixtures/cli,
tests/fixtures/tokenizer_train/trained, tests/fixtures/gguf_tokenizers/hf/*):
  1. a random tiny model with that vocabulary size and the tokenizer files is converted by
     `moe convert DIR OUT.gguf`;
  2. the same directory goes through llama.cpp's own convert_hf_to_gguf.py --vocab-only (its
     get_vocab_base_pre hashes the tokenizer's output; for a vocabulary it does not know,
     which is every small fixture, the name moe chose is forced so the rest can be compared);
     every tokenizer.* key of moe's file is compared with the converter's, and with the
     reference file where the fixture has one (llama.cpp's vocab files of the real Llama and
     MPT tokenizers, the committed gguf_tokenizers fixtures);
  3. token ids for the test texts (tests/fixtures/tokenizers/vectors.json) and random texts:
     HF `tokenizers` with tokenizer.json, `moe tokenize` of the written file, and llama.cpp's
     tokenizer (tools/llamacpp_tokenize.c, linked against a llama.cpp build) on moe's file and
     on the converter's file;
  4. the way back: `moe convert OUT.gguf DIR` (no tokenizer files beside the GGUF) rebuilds
     tokenizer.json + tokenizer_config.json from the vocabulary: HF `tokenizers` and
     transformers' AutoTokenizer must load them and give the original ids.
Prints a table; not run in CI (the C test tests/test_gguf_vocab.c checks the committed
fixtures without Python).

Usage: python3 tools/check_gguf_vocab.py [--moe build/moe] [--lcp DIR]
       [--lcp-build DIR] [--random N]
Needs: tokenizers, transformers, gguf, numpy, safetensors; llama.cpp's source (the
llama-cpp-python 0.3.36 sdist, tools/gen_gguf_fixtures.sh) and, for step 3's llama.cpp
column, a build with libllama (tools/check_llamacpp.sh says how).
"""
import argparse
import glob
import json
import os
import random
import runpy
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "tests", "fixtures")
SEP = "\n__ggml_vocab_test__\n"

# name, tokenizer files, preset, vocabulary, config.json ids, reference GGUF (or None)
CASES = [
    ("qwen2_style", "tokenizers/qwen2-style", "tiny-qwen2", 3003,
     {"bos_token_id": 3000, "eos_token_id": 3002}, "gguf_tokenizers/qwen2_style.gguf"),
    ("bl_mixed", "gguf_tokenizers/hf/bl_mixed", "tiny", 1504,
     {"bos_token_id": 1501, "eos_token_id": 1502}, "gguf_tokenizers/bl_mixed.gguf"),
    ("spm_small", "gguf_tokenizers/hf/spm_small", "tiny", 1800,
     {"bos_token_id": 1, "eos_token_id": 2}, "gguf_tokenizers/spm_small.gguf"),
    ("llama_spm", "tokenizers/llama-spm", "tiny", 32000,
     {"bos_token_id": 1, "eos_token_id": 2}, "gguf/ggml-vocab-llama-spm.gguf"),
    ("mpt", "tokenizers/mpt", "tiny-olmoe", 50432,
     {"bos_token_id": 0, "eos_token_id": 0}, "/work/shared/vocab/ggml-vocab-mpt.gguf"),
    ("cli", "cli", "tiny", 512, {"bos_token_id": 1, "eos_token_id": 2}, None),
    ("trained", "tokenizer_train/trained", "tiny-qwen3", 500,
     {"bos_token_id": None, "eos_token_id": 497}, None),
]


def sh(*cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return r


def make_model(d, preset, n_vocab, ids, tok_dir):
    """moe init PRESET (f32), its vocabulary resized to n_vocab, the tokenizer files copied."""
    import numpy as np
    from safetensors.numpy import load_file, save_file
    sh(ARGS.moe, "init", "--preset", preset, "--dtype", "f32", d)
    st = os.path.join(d, "model.safetensors")
    w = load_file(st)
    rng = np.random.default_rng(0)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        if k in w:
            w[k] = (rng.standard_normal((n_vocab, w[k].shape[1])) * 0.02).astype(np.float32)
    save_file(w, st, metadata={"format": "pt"})
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg.update(vocab_size=n_vocab, **ids)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    for f in ("tokenizer.json", "tokenizer_config.json", "added_tokens.json"):
        if os.path.exists(os.path.join(FIX, tok_dir, f)):
            shutil.copy(os.path.join(FIX, tok_dir, f), d)


def converter_child(lcp, model_dir, out_path, forced):
    """convert_hf_to_gguf.py --vocab-only; the pre-tokenizer hash lookup falls back to forced."""
    sys.path.insert(0, lcp)
    sys.path.insert(1, os.path.join(lcp, "gguf-py"))
    import conversion.base as base
    orig = base.TextModel.get_vocab_base_pre

    def pre(self, tokenizer):
        try:
            res = orig(self, tokenizer)
            print(f"PRE-BY-HASH {res}")
            return res
        except NotImplementedError:
            print(f"PRE-FORCED {forced}")
            return forced
    base.TextModel.get_vocab_base_pre = pre
    conv = os.path.join(lcp, "convert_hf_to_gguf.py")
    sys.argv = [conv, model_dir, "--vocab-only", "--outfile", out_path]
    runpy.run_path(conv, run_name="__main__")


def run_converter(model_dir, out, forced):
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--convert", ARGS.lcp, model_dir, out,
                        forced], capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stdout + r.stderr)[-400:]
    how = [ln for ln in r.stdout.splitlines() if ln.startswith("PRE-")]
    return out, how[0] if how else "PRE-? (SentencePiece path)"


def tok_fields(path):
    import gguf
    r = gguf.GGUFReader(path)
    return {k: f.contents() for k, f in r.fields.items() if k.startswith("tokenizer.")}


def compare(ours, ref):
    """Per key: 'same', or what differs."""
    out = {}
    for k in sorted(set(ours) | set(ref)):
        if k not in ref:
            out[k] = "only moe"
        elif k not in ours:
            out[k] = "only reference"
        elif isinstance(ours[k], list) and isinstance(ref[k], list):
            a, b = ours[k], ref[k]
            if len(a) != len(b):
                out[k] = f"length {len(a)} vs {len(b)}"
            else:
                d = [i for i in range(len(a)) if a[i] != b[i]]
                out[k] = "same" if not d else f"{len(d)}/{len(a)} differ, e.g. [{d[0]}] {a[d[0]]!r} vs {b[d[0]]!r}"
        else:
            out[k] = "same" if ours[k] == ref[k] else f"{ours[k]!r:.40} vs {ref[k]!r:.40}"
    return out


def texts_for(case_texts, n_random, seed):
    rnd = random.Random(seed)
    extra = ["<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", " ", "  ", "\n", "\t",
             "\u2581", "\U0001F600", "\u4e2d", "e\u0301", "\u00e9", "'s", "123", "\u00a0", "[INST]", "\u3000"]
    out = list(case_texts)
    for _ in range(n_random):
        parts = []
        for _ in range(rnd.randint(1, 10)):
            if rnd.random() < 0.3:
                parts.append(rnd.choice(extra))
            else:
                t = rnd.choice(case_texts)
                if t:
                    at = rnd.randrange(len(t))
                    parts.append(t[at:at + rnd.randint(1, 40)])
        out.append("".join(parts))
    return out


def lcp_ids(tool, gguf_path, texts, add_special, work):
    if not tool:
        return None
    p = os.path.join(work, "texts.txt")
    with open(p, "w", encoding="utf-8") as f:
        f.write(SEP.join(texts))
    r = subprocess.run([tool, gguf_path, p, "1" if add_special else "0"], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    lines = r.stdout.split("\n")[:len(texts)]
    return [[int(x) for x in ln.split(",")] if ln else [] for ln in lines]


def build_tool(work):
    lib = glob.glob(os.path.join(ARGS.lcp_build, "**", "libllama.so*"), recursive=True)
    if not lib:
        print("no libllama in", ARGS.lcp_build, "- the llama.cpp column is skipped")
        return None
    out = os.path.join(work, "llamacpp_tokenize")
    libdir = os.path.dirname(lib[0])
    subprocess.run(["cc", "-O1", f"-I{ARGS.lcp}/include", f"-I{ARGS.lcp}/ggml/include",
                    os.path.join(HERE, "llamacpp_tokenize.c"), f"-L{libdir}", "-lllama", "-lggml",
                    "-lggml-base", f"-Wl,-rpath,{libdir}", "-o", out], check=True)
    return out


def agree(a, b):
    return sum(x == y for x, y in zip(a, b)) if a is not None and b is not None else None


def main():
    global ARGS
    if len(sys.argv) > 1 and sys.argv[1] == "--convert":
        converter_child(*sys.argv[2:6])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moe", default=os.path.join(ROOT, "build", "moe"))
    ap.add_argument("--lcp", default="/tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp")
    ap.add_argument("--lcp-build", default="/tmp/lcp-build")
    ap.add_argument("--random", type=int, default=200, help="random texts per tokenizer")
    ap.add_argument("--only", nargs="*")
    ARGS = ap.parse_args()
    from tokenizers import Tokenizer
    vec = json.load(open(os.path.join(FIX, "tokenizers", "vectors.json"), encoding="utf-8"))
    base_texts = [c["text"] for c in vec["tokenizers"][2]["variants"][0]["cases"]]
    work = tempfile.mkdtemp(prefix="moe-vocab-")
    tool = build_tool(work)
    rows = []
    for name, tok_dir, preset, n_vocab, ids, ref in CASES:
        if ARGS.only and name not in ARGS.only:
            continue
        d = os.path.join(work, name)
        make_model(d, preset, n_vocab, ids, tok_dir)
        ours = os.path.join(work, name + ".gguf")
        r = sh(ARGS.moe, "convert", d, ours)
        vline = [ln.strip() for ln in r.stdout.splitlines() if "vocabulary:" in ln]
        print(f"== {name}: {vline[0] if vline else 'NO VOCABULARY'}")
        if r.stderr.strip():
            print("   moe says:", r.stderr.strip())
        fo = tok_fields(ours)
        conv, how = run_converter(d, os.path.join(work, name + "-lcpp.gguf"), fo.get("tokenizer.ggml.pre", "default"))
        refs = [("llama.cpp converter", conv, how)]
        if ref:
            rp = ref if os.path.isabs(ref) else os.path.join(FIX, ref)
            if os.path.exists(rp):
                refs.append((os.path.relpath(rp, ROOT) if rp.startswith(ROOT) else rp, rp, ""))
        for what, path, note in refs:
            if not path:
                print(f"   vs {what}: failed ({note})")
                continue
            print(f"   vs {what} {note}:")
            for k, v in compare(fo, tok_fields(path)).items():
                print(f"     {k:42} {v}")
        # ids
        hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        texts = texts_for(base_texts, ARGS.random, 1)
        back = os.path.join(work, name + "-back")
        sh(ARGS.moe, "convert", ours, back)
        from transformers import AutoTokenizer
        hb = Tokenizer.from_file(os.path.join(back, "tokenizer.json"))
        ab = AutoTokenizer.from_pretrained(back)
        for sp in (0, 1):
            want = [hf.encode(t, add_special_tokens=bool(sp)).ids for t in texts]
            moe_ok = 0
            for t, w in zip(texts[:len(base_texts)], want):
                args = [ARGS.moe, "tokenize", ours, "--", t] + ([] if sp else ["--no-special"])
                if not sp:
                    args = [ARGS.moe, "tokenize", ours, "--no-special", "--", t]
                out = subprocess.run(args, capture_output=True, text=True).stdout.strip()
                moe_ok += (out == ",".join(map(str, w)))
            lo = lcp_ids(tool, ours, texts, sp, work)
            lc = lcp_ids(tool, conv, texts, sp, work) if conv else None
            bk = [hb.encode(t, add_special_tokens=bool(sp)).ids for t in texts]
            at = [ab.encode(t, add_special_tokens=bool(sp)) for t in texts]
            rows.append((name, sp, len(texts), moe_ok, len(base_texts), agree(lo, want), agree(lc, want),
                         agree(lo, lc), agree(bk, want), agree(at, want)))
    print("\nids equal to HF tokenizers (texts: the vectors.json texts + random ones)")
    print(f"{'tokenizer':12} {'special':7} {'moe GGUF':>12} {'llama.cpp on moe GGUF':>22} "
          f"{'llama.cpp on its GGUF':>22} {'llama.cpp moe vs its':>21} {'HF back':>8} {'AutoTok back':>13}")
    for name, sp, n, mo, nb, lo, lc, lb, bk, at in rows:
        def f(x):
            return "-" if x is None else f"{x}/{n}"
        print(f"{name:12} {sp:7} {mo:>8}/{nb:<3} {f(lo):>22} {f(lc):>22} {f(lb):>21} {f(bk):>8} {f(at):>13}")
    shutil.rmtree(work, ignore_errors=True)


ARGS = None

if __name__ == "__main__":
    main()
