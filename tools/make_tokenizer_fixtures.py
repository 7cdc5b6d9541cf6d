#!/usr/bin/env python3
"""make_tokenizer_fixtures.py - build the tokenizer fixtures the C tests read.

Writes tests/fixtures/tokenizers/:
  llama-spm/tokenizer.json    SentencePiece-style BPE with byte fallback (Llama/Mistral/Mixtral),
                              built from /work/shared/vocab/ggml-vocab-llama-spm.gguf, written in
                              the older Mixtral layout (normalizer Prepend+Replace, string merges).
  mpt/tokenizer.json          GPT-NeoX byte-level BPE (MPT/OLMoE style: NFC + ByteLevel with the
                              GPT-2 regex), from ggml-vocab-mpt.gguf, plus tokenizer_config.json.
  qwen2-style/tokenizer.json  a small byte-level BPE trained here with the Qwen2 Split regex +
                              NFC + ByteLevel(use_regex=false), added tokens <|endoftext|>,
                              <|im_start|>, <|im_end|>; merges as [a, b] pairs (newer layout).
  vectors.json                texts and the ids / decoded strings HF `tokenizers` gives for them,
                              for each tokenizer and for "variants" of it (a patch of JSON paths
                              applied to its tokenizer.json: e.g. the Metaspace layout of newer
                              Mistral files), so one vocabulary file tests several styles.

It also checks that HF tokenizers with the rebuilt llama-spm / mpt tokenizer.json reproduce the
ids in the shared .out files (llama.cpp's test vectors, themselves made with HF tokenizers) and
prints every mismatch.

Usage: python3 tools/make_tokenizer_fixtures.py [--vocab DIR] [--out DIR]
Needs: tokenizers 0.23.3, transformers 5.23, gguf 0.19 (pip install gguf).
"""
import argparse
import copy
import glob
import json
import os
import re
import sys

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import Regex

SEP = "\n__ggml_vocab_test__\n"

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Texts beyond the shared .inp ones: every class the brief names.
EXTRA_TEXTS = [
    "Hello world! Ça va? Über naïve café — señor ñandú, façade, Ærøskøbing.",
    "日本語のテキストと中文字符。한국어 텍스트. Tiếng Việt có dấu. Ελληνικά. עברית. العربية.",
    "Emoji: 👋🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🦙🚀 and flags 🇫🇷🇯🇵.",
    "def foo(x):\n\tif x > 0:\n\t\treturn x * 3.14\n    else:\n        return -12345  # neg\n",
    "int main(void) {\n    for (int i = 0; i < 10; i++) { printf(\"%d\\n\", i); }\n}\n",
    "Numbers: 12345 3.14 -0.5 1,000,000 0x1F 2024-01-01 1e-9 ½ ² ٣ ４２",
    "a  b   c    d\n\n\n  \t\t end   \n",
    "     leading and trailing spaces     ",
    "\n\n\nnewlines first",
    "I'M HE'S they'Re We'VE it'll I'd can't O'NEIL 's",
    "Unicode spaces:\u00a0nbsp\u3000ideographic\u2028line\u2029para\u2009thin\u180emongol\u0085nel.",
    "Combining: e\u0301 A\u030a \u212b \u1e9b\u0323 Å ﬁ ﬀ ① ｶ",  # NFC composes; NFKC-only forms stay
    "Controls \x01\x02\x07 \x1b[31mred\x1b[0m \x7f end",
    "<s>[INST] What is 2+2? [/INST] 4</s>",
    "<|endoftext|>Hello<|endoftext|> world <|endoftext|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "text<|im_end|>more<|im_start|> <|im_end|>  <|im_start|>\n",
    "Mixed <s> and </s> and <unk> and <|padding|> tokens.",
    "URL https://example.com/path?q=1&r=two#frag and e-mail a.b@c.org",
    "x" * 300 + " " + "ab" * 120,
    "!!!???...,,,;;;:::---___===+++***&&&^^^%%%$$$###@@@",
    "Tabs\tin\tthe\tmiddle\t\tand\t\t\tmore",
    "🤖" * 7 + "🧑🏿‍💻 " + "\U0001F600\U0001F601",
    "lowercase UPPERCASE MiXeD CaSe İstanbul ǅ ß ẞ",
]


# ----------------------------------------------------------------- helpers

def read_inp(path):
    txt = open(path, encoding="utf-8").read()
    parts = txt.split(SEP)
    assert parts[-1] == "", "trailing separator expected"
    return parts[:-1]


def read_out(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return [[int(x) for x in line.split()] for line in lines]


def gguf_fields(path):
    import gguf
    r = gguf.GGUFReader(path)
    out = {}
    for k, f in r.fields.items():
        if k.startswith("tokenizer."):
            out[k] = f.contents()
    return out


def compact(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def apply_patch(tj, patch):
    """Replace the values at dotted paths ("model.ignore_merges") in a tokenizer.json dict."""
    tj = copy.deepcopy(tj)
    for path, value in patch.items():
        keys = path.split(".")
        node = tj
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return tj


# ------------------------------------------------------------ llama (SPM)

def build_llama(gguf_path, workdir):
    """SentencePiece BPE via transformers' GGUF converter, then the Mixtral file layout."""
    from transformers import AutoTokenizer
    d, f = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    tok.backend_tokenizer.save(os.path.join(workdir, "llama-gguf.json"))
    tj = json.load(open(os.path.join(workdir, "llama-gguf.json"), encoding="utf-8"))
    # Layout of mistralai/Mixtral-8x7B-v0.1's tokenizer.json (and Llama-2's).
    tj["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    tj["pre_tokenizer"] = None
    tj["model"]["unk_token"] = "<unk>"
    tj["model"]["merges"] = [a + " " + b for a, b in tj["model"]["merges"]]
    return tj


LLAMA_METASPACE = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                   "split": False}


# ------------------------------------------------------------- mpt (NeoX)

def build_mpt(gguf_path):
    """GPT-NeoX-20B layout (MPT; OLMoE uses the same pipeline)."""
    g = gguf_fields(gguf_path)
    tokens = g["tokenizer.ggml.tokens"]
    types = g["tokenizer.ggml.token_type"]
    merges = g["tokenizer.ggml.merges"]
    vocab, added = {}, []
    for i, (t, ty) in enumerate(zip(tokens, types)):
        if t.startswith("[PAD") and ty == 4:
            continue  # MPT pads its embedding to 50432; the HF tokenizer has no such tokens
        vocab[t] = i
        if ty == 3:
            added.append({"id": i, "content": t, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True})
        elif ty == 4:
            added.append({"id": i, "content": t, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": True, "special": False})
    tj = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": list(merges)},
    }
    return tj


# ------------------------------------------------------- qwen2-style (ours)

def training_corpus():
    """Deterministic given the machine's Python stdlib and glibc locale files."""
    texts = []
    for pat in ["/usr/lib/python3.11/json/*.py", "/usr/lib/python3.11/email/*.py",
                "/usr/lib/python3.11/textwrap.py", "/usr/lib/python3.11/argparse.py"]:
        for p in sorted(glob.glob(pat)):
            texts.append(open(p, encoding="utf-8").read())
    esc = re.compile(r"<U([0-9A-Fa-f]{4,6})>")
    for p in sorted(glob.glob("/usr/share/i18n/locales/*_*")):
        try:
            body = open(p, encoding="utf-8", errors="replace").read()
        except OSError:
            continue
        for line in body.splitlines():
            if line.startswith(("mon ", "day ", "abmon ", "abday ", "lang_name", "country_name")):
                s = esc.sub(lambda m: chr(int(m.group(1), 16)), line)
                texts.append(re.sub(r'[";]', " ", s.split(None, 1)[1] if " " in s else s))
    texts.extend(EXTRA_TEXTS)
    return texts


def build_qwen2_style():
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                              use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=3000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    # Qwen2 puts its special tokens after the BPE vocabulary.
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tj = json.loads(tok.to_str())
    # Qwen2's files spell the absent affixes as "" rather than null.
    tj["model"]["continuing_subword_prefix"] = ""
    tj["model"]["end_of_word_suffix"] = ""
    return tj


def qwen2_added_variant(tj):
    """Extra added tokens exercising lstrip/rstrip/single_word/normalized."""
    n = max(t["id"] for t in tj["added_tokens"]) + 1
    added = copy.deepcopy(tj["added_tokens"]) + [
        {"id": n, "content": "<mask>", "single_word": False, "lstrip": True, "rstrip": False,
         "normalized": False, "special": True},
        {"id": n + 1, "content": "[tag]", "single_word": False, "lstrip": False, "rstrip": True,
         "normalized": False, "special": False},
        {"id": n + 2, "content": "café", "single_word": True, "lstrip": False, "rstrip": False,
         "normalized": True, "special": False},
        {"id": n + 3, "content": "<|im_start|>user", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True},
    ]
    return {"added_tokens": added}


LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# DeepSeek-V3's pre-tokenizer: digits in threes, CJK runs, then its main regex.
DEEPSEEK_SPLITS = [
    r"\p{N}{1,3}",
    r"[一-龥\u3040-ゟ゠-ヿ]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|"
    r" ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
]
BYTELEVEL_NOREGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                     "use_regex": False}


def split(pattern, behavior="Isolated", invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern},
            "behavior": behavior, "invert": invert}


def seq(*pre):
    return {"type": "Sequence", "pretokenizers": list(pre)}


# Pre-tokenizer / normalizer shapes real MoE models do not all use but the
# C side claims to support: every Split behaviour, invert, other regexes.
QWEN2_SHAPE_VARIANTS = [
    ("llama3-regex", {"pre_tokenizer": seq(split(LLAMA3_REGEX), BYTELEVEL_NOREGEX)}),
    ("deepseek-splits", {"pre_tokenizer": seq(*[split(r) for r in DEEPSEEK_SPLITS],
                                              BYTELEVEL_NOREGEX)}),
    ("merged-prev", {"pre_tokenizer": seq(split(r"\s+", "MergedWithPrevious"), split(QWEN2_REGEX),
                                          BYTELEVEL_NOREGEX)}),
    ("merged-next-contiguous", {"pre_tokenizer": seq(split(r"[,.]", "MergedWithNext"),
                                                     split(r"\p{N}", "Contiguous"),
                                                     BYTELEVEL_NOREGEX)}),
    ("removed-invert", {"pre_tokenizer": seq(split("x", "Removed", literal=True),
                                             split(r"\p{L}+", "Isolated", invert=True),
                                             split(r"\d", "Removed", invert=True),
                                             BYTELEVEL_NOREGEX)}),
    ("bytelevel-regex", {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True,
                                           "trim_offsets": True, "use_regex": True}}),
    ("norm-nfkc-replace-strip", {"normalizer": {"type": "Sequence", "normalizers": [
        {"type": "NFKC"},
        {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
        {"type": "Strip", "strip_left": True, "strip_right": True}]}}),
    ("norm-nfd", {"normalizer": {"type": "NFD"}}),
    ("norm-nfkd", {"normalizer": {"type": "NFKD"}}),
]

QWEN2_ADDED_TEXTS = [
    "a <mask> b   <mask>c<mask>",
    "x [tag]   y [tag]\n\nz[tag]",
    "café cafe\u0301 cafés le café. xcafé _café café_ 1café",
    "<|im_start|>user\nhi<|im_end|><|im_start|>users",
    "   <mask>   [tag]   ",
]


# ------------------------------------------------------------------ vectors

def make_cases(tj, texts):
    tok = Tokenizer.from_str(json.dumps(tj))
    cases = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_sp = tok.encode(text, add_special_tokens=True).ids
        dec = tok.decode(ids_sp, skip_special_tokens=False)
        dec_skip = tok.decode(ids_sp, skip_special_tokens=True)
        case = {"text": text, "ids": ids, "ids_special": ids_sp, "decode": dec,
                "decode_skip": dec_skip, "roundtrip": tok.decode(ids, skip_special_tokens=False) == text}
        cases.append(case)
    return cases


def vectors_text(vectors):
    """Compact JSON with one case per line (small, and diffs stay readable)."""
    out = ['{"about":' + compact(vectors["about"]) + ',"tokenizers":[']
    for ti, tk in enumerate(vectors["tokenizers"]):
        out.append('{"name":' + compact(tk["name"]) + ',"dir":' + compact(tk["dir"]) + ',"long":[')
        out.append(",\n".join(compact(c) for c in tk["long"]))
        out.append('],"variants":[')
        for vi, var in enumerate(tk["variants"]):
            out.append('{"name":' + compact(var["name"]) + ',"patch":' + compact(var["patch"]) +
                       ',"cases":[')
            out.append(",\n".join(compact(c) for c in var["cases"]))
            out.append("]}" + ("," if vi + 1 < len(tk["variants"]) else ""))
        out.append("]}" + ("," if ti + 1 < len(vectors["tokenizers"]) else ""))
    out.append("]}\n")
    return "\n".join(out)


LONG_FILLS = ["a", " ", "\n", "7", "!", "中", "ab ", "😀", "x\t", "\u2581", "<s>", "'s "]
LONG_BYTES = 1 << 16


def fnv1a_ids(ids):
    h = 2166136261
    for i in ids:
        for b in (i & 0xFFFFFFFF).to_bytes(4, "little"):
            h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def long_cases(tj, texts):
    """Long inputs (64 KiB of one repeated string, and of the test texts joined by newlines,
    repeated and cut to 64 KiB at a character boundary): only the id count and an FNV-1a hash
    of the ids (as little-endian uint32) are stored, to keep the file small."""
    tok = Tokenizer.from_str(json.dumps(tj))
    out = []
    mixed = "\n".join(texts)
    for fill in LONG_FILLS + [mixed]:
        b = fill.encode()
        reps = max(1, LONG_BYTES // len(b))
        text = (fill * reps) if fill is not mixed else (fill * (LONG_BYTES // len(b) + 1))
        if fill is mixed:
            text = text.encode()[:LONG_BYTES].decode("utf-8", "ignore")
        ids = tok.encode(text, add_special_tokens=False).ids
        out.append({"fill": fill if fill is not mixed else "(test texts)", "repeat": reps,
                    "bytes": len(text.encode()), "n_ids": len(ids), "fnv1a": fnv1a_ids(ids)})
    return out


def check_out(name, tj, texts, expected):
    tok = Tokenizer.from_str(json.dumps(tj))
    bad = 0
    for i, (text, exp) in enumerate(zip(texts, expected)):
        got = tok.encode(text, add_special_tokens=False).ids
        if got != exp:
            bad += 1
            print(f"  {name}: text {i} {text!r:.60}: HF {got[:12]} vs .out {exp[:12]}")
    print(f"{name}: {len(texts) - bad}/{len(texts)} texts match the shared .out ids")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", default="/work/shared/vocab")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "fixtures", "tokenizers"))
    ap.add_argument("--work", default="/tmp/moe_tok_fixtures")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)

    inp = read_inp(os.path.join(a.vocab, "ggml-vocab-llama-spm.gguf.inp"))
    texts = inp + EXTRA_TEXTS
    vectors = {"about": "made by tools/make_tokenizer_fixtures.py with tokenizers "
                        + __import__("tokenizers").__version__, "tokenizers": []}
    mismatches = 0

    # llama-spm
    llama = build_llama(os.path.join(a.vocab, "ggml-vocab-llama-spm.gguf"), a.work)
    exp = read_out(os.path.join(a.vocab, "ggml-vocab-llama-spm.gguf.out"))
    mismatches += check_out("llama-spm (Mixtral layout)", llama, inp, exp)
    meta_patch = {"normalizer": None, "pre_tokenizer": LLAMA_METASPACE}
    check_out("llama-spm (Metaspace first, as transformers' GGUF converter writes it)",
              apply_patch(llama, meta_patch), inp, exp)
    llama_variants = [
        ("legacy", {}),
        ("metaspace-first", meta_patch),
        ("metaspace-always-split", {"normalizer": None, "pre_tokenizer": dict(
            LLAMA_METASPACE, prepend_scheme="always", split=True)}),
        ("metaspace-never", {"normalizer": None, "pre_tokenizer": dict(
            LLAMA_METASPACE, prepend_scheme="never")}),
        ("metaspace-decoder", {"normalizer": None, "pre_tokenizer": LLAMA_METASPACE,
                               "decoder": dict(LLAMA_METASPACE)}),
        ("bos-eos-template", {"post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                               "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}}),
    ]
    # mpt
    mpt = build_mpt(os.path.join(a.vocab, "ggml-vocab-mpt.gguf"))
    exp = read_out(os.path.join(a.vocab, "ggml-vocab-mpt.gguf.out"))
    mismatches += check_out("mpt", mpt, inp, exp)
    mpt_variants = [
        ("neox", {}),
        ("prefix-space", {"pre_tokenizer.add_prefix_space": True}),
        ("roberta", {"post_processor": {"type": "RobertaProcessing", "sep": ["<|endoftext|>", 0],
                                        "cls": ["<|padding|>", 1], "trim_offsets": True,
                                        "add_prefix_space": False}}),
    ]
    # qwen2-style
    qwen = build_qwen2_style()
    qwen_variants = [
        ("qwen2", {}),
        ("ignore-merges", {"model.ignore_merges": True}),
        ("added", qwen2_added_variant(qwen)),
        ("eos-template", {"post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>",
                                                 "ids": [qwen["added_tokens"][0]["id"]],
                                                 "tokens": ["<|endoftext|>"]}}}}),
    ] + QWEN2_SHAPE_VARIANTS

    for name, tj, variants, config in [
            ("llama-spm", llama, llama_variants,
             {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True,
              "add_eos_token": False, "unk_token": "<unk>"}),
            ("mpt", mpt, mpt_variants,
             {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>"}),
            ("qwen2-style", qwen, qwen_variants,
             {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})]:
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(compact(tj))
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=1)
        entry = {"name": name, "dir": name, "variants": [], "long": long_cases(tj, texts)}
        for vname, patch in variants:
            vt = texts + (QWEN2_ADDED_TEXTS if vname == "added" else [])
            entry["variants"].append({"name": vname, "patch": patch,
                                      "cases": make_cases(apply_patch(tj, patch), vt)})
        vectors["tokenizers"].append(entry)
        print(f"{name}: {os.path.getsize(os.path.join(d, 'tokenizer.json'))} bytes, "
              f"{len(variants)} variants x {len(texts)} texts")

    with open(os.path.join(a.out, "vectors.json"), "w", encoding="utf-8") as f:
        f.write(vectors_text(vectors))
    print("vectors.json:", os.path.getsize(os.path.join(a.out, "vectors.json")), "bytes")
    if mismatches:
        print(f"WARNING: {mismatches} texts differ from the shared .out files", file=sys.stderr)


if __name__ == "__main__":
    main()
