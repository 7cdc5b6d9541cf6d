#!/usr/bin/env python3
"""gen_gguf_pre_fixtures.py - the ids HF `tokenizers` gives under each family's pre-tokenizer.

For the tokenizer.ggml.pre families that have no llama.cpp vocab file to test with, a small
byte-level vocabulary trained here by HF's BpeTrainer on text cut at spaces only (so its merges
cross what the families' regexes cut: letters into Han, marks, digits, "\n/"; plus one token no
merge reaches), written as tests/fixtures/gguf_tokenizers/pre_families.gguf by gguf-py's
GGUFWriter with the keys llama.cpp's _set_vocab_gpt2 writes, is tokenized by HF `tokenizers` with the normalizer, pre_tokenizer and ignore_merges of each
family's real tokenizer.json, written here as HF's own objects (Digits, Punctuation, ByteLevel
with its regex, the Split regexes verbatim, Kimi's class intersections included) - not as the
Splits src/tokenizer/tokenizer_gguf_pre.c turns them into. tests/test_gguf_tokenizer.c rewrites
tokenizer.ggml.pre in pre_families.gguf to each name and compares.

Where each comes from:
  qwen35, gpt-4o / llama4   the Split regex of transformers' GGUF loader
                            (integrations/gguf/gguf_tokenizer_mapping.py, _QWEN35_SPLIT,
                            _GPT4O_SPLIT), equal to the "original regex from tokenizer.json"
                            llama.cpp's llama-vocab.cpp quotes; NFC for Qwen as in every Qwen
                            tokenizer.json; gpt-oss and Llama 4 were converted from tiktoken by
                            TikTokenConverter subclasses (GptOssConverter, Llama4Converter),
                            which set ignore_merges
  glm4                      llama.cpp's LLAMA_VOCAB_PRE_TYPE_CHATGLM4 regex (cl100k / Llama 3's,
                            llama.cpp's (?i:) rewrite undone), no normalizer, merges used
  kimi-k2                   tokenization_kimi.py's pat_str (tiktoken: whole pieces first, so
                            ignore_merges, as TikTokenConverter writes it)
  deepseek-v3, -coder,      the tokenizer.json pre_tokenizers of DeepSeek-V3, DeepSeek Coder,
  falcon, starcoder         Falcon and StarCoder as llama.cpp's llama-vocab.cpp transcribes them
                            (Splits, Digits, Punctuation, ByteLevel(use_regex=true))
The script checks that the families give different ids from each other and that each switch
(NFC, ignore_merges) changes some text.

Writes tests/fixtures/gguf_tokenizers/pre_families.{gguf,json}. Needs tokenizers 0.23.3,
transformers, gguf 0.19. Output is deterministic.
Usage: python3 tools/gen_gguf_pre_fixtures.py
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

KIMI_PAT = "|".join([
    r"""[\p{Han}]+""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
DS_CJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"

# Texts where the families split differently: digit groups, contractions (also with the long s
# that case-folds to s), case runs, "/" after punctuation, CJK with its punctuation and the
# kana length mark, combining marks (Devanagari, Thai, decomposed Latin), bytes whose
# byte-level character is numeric (\u00b2 \u00bd in UTF-8), emoji, whitespace runs.
EXTRA_TEXTS = [
    "camelCaseWord HTTPSession iPhone XMLHttpRequest ABCdef",
    "don't DON'T it'\u017f we'VE path/to/file\n//comment\n",
    "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u300c\u5f15\u7528\u300d\u30b3\u30fc\u30d2\u30fc \u3005\u3007 \u4e2d\u6587abc",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0e17\u0e35\u0e48 \u05e2\u05b4\u05d1\u05b0\u05e8\u05b4\u05d9\u05ea cafe\u0301s",
    "x\u00b2 + \u00bd \u00f2\u00f2 \u0663\u0664\u0665 \uff11\uff12\uff13\uff14 \u2460\u2461 1234567890",
    "\U0001f636\u200d\U0001f32b\ufe0f \U0001f999\U0001f999 \u2705 (\u00ac\u203f\u00ac)",
    "a  b   c\t\td \r\n\r\n   \n  x",
    "...!!! ??? $100+<=>^~|` @user #tag {x:[1,2]}",
]


def families():
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS as S

    def bl(use_regex):
        return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                "use_regex": use_regex}

    def split(r):
        return {"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": False}

    def seq(*steps):
        return {"type": "Sequence", "pretokenizers": list(steps)}

    def digits(individual):
        return {"type": "Digits", "individual_digits": individual}

    nfc = {"type": "NFC"}
    fam = {
        "qwen35": (nfc, seq(split(S["qwen35"]), bl(False)), False),
        "gpt-4o": (None, seq(split(S["gpt-4o"]), bl(False)), True),
        "llama4": (None, seq(split(S["llama4"]), bl(False)), True),
        "glm4": (None, seq(split(S["llama3"]), bl(False)), False),
        "kimi-k2": (None, seq(split(KIMI_PAT), bl(False)), True),
        "deepseek-v3": (None, seq(*[split(r) for r in __import__("make_tokenizer_fixtures").DEEPSEEK_SPLITS],
                                  bl(False)), False),
        "deepseek-coder": (None, seq(split("[\r\n]"), split(r"\s?\p{L}+"), split(r"\s?\p{P}+"),
                                     split(DS_CJK), digits(True), bl(False)), False),
        "falcon": (None, seq({"type": "Punctuation", "behavior": "Contiguous"}, bl(True),
                             digits(False), split("[0-9][0-9][0-9]")), False),
        "starcoder": (None, seq(digits(True), bl(True)), False),
        "qwen2": (nfc, seq(split(S["qwen2"]), bl(False)), False),
    }
    return fam


# strings whose frequent tokens cross a boundary only some families cut at
CROSSING = ["the\u4e2dthe \u8a9e\u306eabc\u6587x end.\n/next x\u00b2y \u00bdz naive\u0308t "
            "\u0928\u092e\u0938\u094d\u0924\u0947 HTTPSession camelCase it'\u017f 2024x12345"]


def train_vocab(texts):
    """A byte-level BPE trained on the corpus cut at spaces only, as a tokenizer.json dict."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    import make_tokenizer_fixtures as mtf
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(" ", behavior="merged_with_next"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=1400, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(mtf.training_corpus() + texts * 20 + CROSSING * 300, trainer=trainer)
    tj = json.loads(tok.to_str())
    tj["model"]["vocab"]["\u0120zqxjwk"] = len(tj["model"]["vocab"])  # no merge reaches it
    tj["added_tokens"] = [{"id": len(tj["model"]["vocab"]), "content": "<|endoftext|>",
                           "single_word": False, "lstrip": False, "rstrip": False,
                           "normalized": False, "special": True}]
    tj["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                     "use_regex": True}
    return tj


def write_gguf(tj, path):
    """The vocabulary as llama.cpp's _set_vocab_gpt2 writes it (gguf-py's GGUFWriter)."""
    import gguf
    vocab = tj["model"]["vocab"]
    n = len(vocab) + 1
    tokens = [None] * n
    for t, i in vocab.items():
        tokens[i] = t
    tokens[n - 1] = "<|endoftext|>"
    merges = [" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]]
    w = gguf.GGUFWriter(path, "qwen2moe")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.NORMAL] * (n - 1) + [gguf.TokenType.CONTROL])
    w.add_token_merges(merges)
    w.add_eos_token_id(n - 1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    return n


def main():
    from tokenizers import Tokenizer
    import gen_gguf_tokenizer_fixtures as ggf
    texts = ggf.FAMILY_TEXTS + EXTRA_TEXTS
    base = train_vocab(texts)
    gguf_path = os.path.join(ROOT, "tests/fixtures/gguf_tokenizers/pre_families.gguf")
    n_vocab = write_gguf(base, gguf_path)

    def ids_of(norm, pre, ignore):
        tj = dict(base, normalizer=norm, pre_tokenizer=pre, model=dict(base["model"], ignore_merges=ignore))
        tok = Tokenizer.from_str(json.dumps(tj))
        return [tok.encode(t, add_special_tokens=False).ids for t in texts]

    fam = families()
    ids = {name: ids_of(*spec) for name, spec in fam.items()}
    same_pipeline = {("gpt-4o", "llama4")}
    for a in ids:
        for b in ids:
            if a < b and (a, b) not in same_pipeline and (b, a) not in same_pipeline and ids[a] == ids[b]:
                raise SystemExit(f"{a} and {b} give the same ids on every text")
    for name, (norm, pre, ignore) in fam.items():
        flips = [("ignore_merges", ids_of(norm, pre, not ignore))]
        if norm:
            flips.append(("no NFC", ids_of(None, pre, ignore)))
        for what, got in flips:
            k = sum(x != y for x, y in zip(got, ids[name]))
            print(f"{name}: {what} differs on {k} texts")
            if k == 0 and (what != "ignore_merges" or ignore):
                raise SystemExit(f"{name}: {what} changes nothing")
    import tokenizers
    out = {"about": f"made by tools/gen_gguf_pre_fixtures.py with tokenizers {tokenizers.__version__} "
                    "over the vocabulary of pre_families.gguf",
           "gguf": "pre_families.gguf", "vocab": n_vocab,
           "texts": texts, "families": [{"pre": k, "ids": v} for k, v in ids.items()]}
    path = os.path.join(ROOT, "tests/fixtures/gguf_tokenizers/pre_families.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{path}: {os.path.getsize(path)} bytes, {len(texts)} texts, {len(ids)} families")


if __name__ == "__main__":
    main()
