#!/usr/bin/env python3
"""make_o200k_tokenizer_fixture.py - a small tokenizer.json shaped as gpt-oss's (o200k).

gpt-oss ships its o200k tokenizer as a tokenizer.json (transformers' GptOssConverter, a
TikTokenConverter): no normalizer; pre_tokenizer Sequence[Split(the o200k regex, Isolated),
ByteLevel(use_regex=false)]; ByteLevel decoder; the harmony special tokens after the BPE
vocabulary. This script trains a byte-level BPE of that exact shape on the committed text
tests/fixtures/tokenizers/o200k-style/train.txt with HF `tokenizers`, and writes next to it:
  tokenizer.json, tokenizer_config.json
  vectors.json   texts and the ids / decoded strings HF `tokenizers` gives for them, in the
                 layout of ../vectors.json (tools/make_tokenizer_fixtures.py), for the file as
                 written ("gpt-oss") and with ignore_merges on (as TikTokenConverter sets it).
The texts: llama.cpp's shared test texts, the classes of tools/make_tokenizer_fixtures.py and
tools/gen_gguf_pre_fixtures.py, and strings where o200k differs from cl100k / Qwen2 (case runs
inside words, contractions glued to words, digits in threes, "/" after punctuation, harmony
messages).

Usage: python3 tools/make_o200k_tokenizer_fixture.py [--vocab /work/shared/vocab]
Needs tokenizers 0.23.3 and transformers 5.23 (for the regex). Output is deterministic.
"""
import argparse
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_gguf_pre_fixtures as ggp  # noqa: E402
import make_tokenizer_fixtures as mtf  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "fixtures", "tokenizers", "o200k-style")

SPECIALS = ["<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>",
            "<|start|>", "<|end|>", "<|message|>", "<|call|>"]

O200K_TEXTS = [
    "HelloWorld JSONParser getHTTPResponseCode iOS macOS ÉCOLEnormale ΑθήναΣ",
    "don'tDON'T they'reThey'RE O'Neil's rock'n'roll 'tis I'veI'd",
    "1 12 123 1234 12345 123456 1234567 v1.2.3 3.14159 ٣٤٥٦ 10,000",
    "a/b //x /// ./run.sh ../../up http://x.y/z?q=1#f ;/\n!//\r\n",
    "<|start|>system<|message|>You are ChatGPT.<|end|><|start|>user<|message|>Hi<|end|>",
    "<|start|>assistant<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final<|message|>ok<|return|>",
    "<|start|>assistant to=functions.get<|channel|>commentary <|constrain|>json<|message|>{\"a\":1}<|call|>",
    "\u00e9\u0301 e\u0301 A\u030a \u0915\u094d\u0937 \u0e01\u0e33 Xy\u0308z",
    "  \n\n  \t \u3000x\u00a0y\u2003z   ",
]


def o200k_regex():
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS
    return GGUF_PRE_TOKENIZER_SPLITS["gpt-4o"]


def build(train_text):
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(mtf.Regex(o200k_regex()), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2500, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(train_text.split("\n\n"), trainer=trainer)
    tok.add_special_tokens(SPECIALS)
    tj = json.loads(tok.to_str())
    assert tj["normalizer"] is None
    return tj


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", default="/work/shared/vocab")
    a = ap.parse_args()
    train = open(os.path.join(OUT, "train.txt"), encoding="utf-8").read()
    tj = build(train)
    texts = (mtf.read_inp(os.path.join(a.vocab, "ggml-vocab-llama-spm.gguf.inp")) +
             mtf.EXTRA_TEXTS + ggp.EXTRA_TEXTS + O200K_TEXTS)
    with open(os.path.join(OUT, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(mtf.compact(tj))
    with open(os.path.join(OUT, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|return|>",
                   "pad_token": "<|endoftext|>"}, f, indent=1)
    entry = {"name": "o200k-style", "dir": "o200k-style", "variants": [],
             "long": mtf.long_cases(tj, texts)}
    for vname, patch in [("gpt-oss", {}), ("ignore-merges", {"model.ignore_merges": True})]:
        entry["variants"].append({"name": vname, "patch": patch,
                                  "cases": mtf.make_cases(mtf.apply_patch(tj, patch), texts)})
    vectors = {"about": "made by tools/make_o200k_tokenizer_fixture.py with tokenizers "
                        + __import__("tokenizers").__version__, "tokenizers": [entry]}
    with open(os.path.join(OUT, "vectors.json"), "w", encoding="utf-8") as f:
        f.write(mtf.vectors_text(vectors))
    print(f"o200k-style: {len(tj['model']['vocab'])} tokens + {len(SPECIALS)} specials, "
          f"{len(texts)} texts x 2 variants")


if __name__ == "__main__":
    main()
