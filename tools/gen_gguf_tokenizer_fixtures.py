#!/usr/bin/env python3
"""gen_gguf_tokenizer_fixtures.py - GGUF files with tokenizer metadata, and the ids HF gives.

Writes tests/fixtures/gguf_tokenizers/ (read by tests/test_gguf_tokenizer.c):
  qwen2_style.gguf  byte-level BPE ("gpt2"): the qwen2-style tokenizer.json fixture
                    (tests/fixtures/tokenizers/qwen2-style) converted by llama.cpp's own
                    convert_hf_to_gguf.py --vocab-only as a Qwen2-MoE model: its real
                    set_vocab path (_set_vocab_gpt2 -> get_vocab_base + gguf.SpecialVocab).
                    Only get_vocab_base_pre() is forced to "qwen2": it recognizes published
                    tokenizers by a hash of their output, and ours is not published.
  spm_small.gguf    SentencePiece BPE with byte fallback ("llama"): a small tokenizer.model
                    trained here with sentencepiece (Llama's trainer settings: identity
                    normalization, digits split, dummy prefix, byte fallback), with user-defined
                    symbols [INST] [/INST] and control symbols <|im_start|> <|im_end|>, converted
                    by convert_hf_to_gguf.py --vocab-only as a Mixtral model (its real set_vocab
                    path: _set_vocab_sentencepiece).
  bl_mixed.gguf     byte-level BPE trained here on text cut at spaces only (so its tokens cross
                    the boundaries the families' regexes cut at), as a Llama-3-style tokenizer.json
                    (ignore_merges, BOS template) converted as a Mixtral model, where
                    LlamaModel.set_vocab falls through to _set_vocab_gpt2 (pre forced to
                    "llama-bpe"). Its variants: every tokenizer.ggml.pre family supported.
  qwen2_moe_q8_0_tok.gguf  tests/fixtures/gguf_models/qwen2_moe_q8_0.gguf with a 128-token
                    byte-level tokenizer added (gguf-py's GGUFWriter, the fields _set_vocab_gpt2
                    writes), so `moe generate FILE.gguf` runs from the one file.
  hf/NAME/          the HF files the converter read for qwen2_style (config.json; its
                    tokenizer files are tests/fixtures/tokenizers/qwen2-style), bl_mixed and
                    spm_small (tokenizer.json, tokenizer_config.json, config.json; not
                    tokenizer.model): tests/test_gguf_vocab.c writes the vocabulary from them as
                    `moe convert` does and compares it with the converter's GGUF key by key.
  vectors.json      for the test texts of tests/fixtures/tokenizers/vectors.json: the ids HF
                    `tokenizers` gives with the model's HF tokenizer (with and without special
                    tokens) and its decodes; for bl_mixed also the ids of each byte-level family
                    llama.cpp names in tokenizer.ggml.pre ("variants": the tokenizer.json of that
                    family - its normalizer, pre-tokenizer, ignore_merges - over the same
                    vocabulary; the C test rewrites tokenizer.ggml.pre in the GGUF to match).
                    The script refuses variants that two families, or a family with one switch
                    flipped (NFC, ignore_merges), would pass alike.

The HF tokenizer of spm_small is what transformers makes of a tokenizer.model
(SentencePieceExtractor: vocabulary and merges) in the layout of Mixtral's and Llama 2's
tokenizer.json (Prepend + Replace normalizer, ByteFallback decoder, BOS added). The script
checks it against sentencepiece itself (the tokenizer the model is trained with) on every text
that names no special token, and stops on any difference.

Usage: python3 tools/gen_gguf_tokenizer_fixtures.py [--lcp DIR] [--out DIR]
Needs: tokenizers 0.23.3, transformers 5.23, gguf 0.19, sentencepiece 0.2.3, protobuf, and the
llama.cpp source of the llama-cpp-python 0.3.36 sdist (tools/gen_gguf_fixtures.sh says how to
get it). Output is deterministic.
"""
import argparse
import json
import os
import re
import runpy
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

LCP_DEFAULT = "/tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp"


# ------------------------------------------------------- the llama.cpp converter

def run_converter(lcp, model_dir, out_path, pre):
    """convert_hf_to_gguf.py --vocab-only in a child process (this script with --convert)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--convert", lcp, model_dir, out_path, pre]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stdout.write(r.stdout + r.stderr)
        raise SystemExit(f"converter failed on {model_dir}")


def save_hf(d, out_dir, name, files):
    """Copy the HF files the converter read next to its output (out_dir/hf/NAME)."""
    dst = os.path.join(out_dir, "hf", name)
    os.makedirs(dst, exist_ok=True)
    for f in files:
        shutil.copy(os.path.join(d, f), dst)


def converter_child(lcp, model_dir, out_path, pre):
    sys.path.insert(0, lcp)
    sys.path.insert(1, os.path.join(lcp, "gguf-py"))
    import conversion.base as base
    if pre != "-":
        base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
    conv = os.path.join(lcp, "convert_hf_to_gguf.py")
    sys.argv = [conv, model_dir, "--vocab-only", "--outfile", out_path]
    runpy.run_path(conv, run_name="__main__")


# ------------------------------------------------------------------ test texts

def test_texts():
    """The texts the tokenizer.json tests use (tests/fixtures/tokenizers/vectors.json)."""
    v = json.load(open(os.path.join(ROOT, "tests/fixtures/tokenizers/vectors.json"), encoding="utf-8"))
    qwen = next(t for t in v["tokenizers"] if t["name"] == "qwen2-style")
    return [c["text"] for c in qwen["variants"][0]["cases"]]


def make_cases(tok, texts):
    cases = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_sp = tok.encode(text, add_special_tokens=True).ids
        cases.append({"text": text, "ids": ids, "ids_special": ids_sp,
                      "decode": tok.decode(ids_sp, skip_special_tokens=False),
                      "decode_skip": tok.decode(ids_sp, skip_special_tokens=True),
                      "roundtrip": tok.decode(ids, skip_special_tokens=False) == text})
    return cases


# ------------------------------------------------------------ byte-level (gpt2)

def byte_level_families():
    """tokenizer.ggml.pre name -> the tokenizer.json patch of that family."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS
    import make_tokenizer_fixtures as mtf

    def bl(use_regex):
        return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                "use_regex": use_regex}

    def splits(*regexes):
        return {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": False}
            for r in regexes] + [bl(False)]}

    # DeepSeek LLM's splits, read from llama.cpp's source (llama-vocab.cpp keeps the regexes of
    # the HF tokenizer.json of each family it names)
    src = open(os.path.join(ARGS.lcp, "src/llama-vocab.cpp"), encoding="utf-8").read()
    block = src[src.index("case LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM:"):]
    block = block[block.index("{") + 1:block.index("};")]
    ds_llm = [bytes(m, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
              for m in re.findall(r'"((?:[^"\\]|\\.)*)"', block)]
    families = {
        "qwen2": {"normalizer": {"type": "NFC"},
                  "pre_tokenizer": splits(GGUF_PRE_TOKENIZER_SPLITS["qwen2"])},
        "gpt-2": {"normalizer": None, "pre_tokenizer": bl(True)},
        "olmo": {"normalizer": {"type": "NFC"}, "pre_tokenizer": bl(True)},
        "llama-bpe": {"normalizer": None, "pre_tokenizer": splits(GGUF_PRE_TOKENIZER_SPLITS["llama3"]),
                      "model.ignore_merges": True},
        "deepseek-llm": {"normalizer": None, "pre_tokenizer": splits(*ds_llm)},
        "deepseek-v3": {"normalizer": None, "pre_tokenizer": splits(*mtf.DEEPSEEK_SPLITS)},
    }
    # every family sets all three: normalizer, pre_tokenizer, ignore_merges
    return {k: dict({"model.ignore_merges": False}, **v) for k, v in families.items()}


def gen_qwen2_style(work, out_dir, texts):
    from tokenizers import Tokenizer
    import make_tokenizer_fixtures as mtf
    src = os.path.join(ROOT, "tests/fixtures/tokenizers/qwen2-style")
    d = os.path.join(work, "qwen2_style")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(src, d)
    cfg = json.load(open(os.path.join(ROOT, "tests/fixtures/models/qwen2_moe_base/config.json")))
    tj = json.load(open(os.path.join(src, "tokenizer.json"), encoding="utf-8"))
    n = max(max(tj["model"]["vocab"].values()), max(t["id"] for t in tj["added_tokens"])) + 1
    # Qwen's config.json names <|endoftext|> as BOS; its tokenizer adds none
    cfg.update(vocab_size=n, bos_token_id=3000, eos_token_id=3002)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    out = os.path.join(out_dir, "qwen2_style.gguf")
    run_converter(ARGS.lcp, d, out, "qwen2")
    save_hf(d, out_dir, "qwen2_style", ["config.json"])

    tok = Tokenizer.from_str(json.dumps(tj))
    fixture = {"name": "qwen2_style", "gguf": "qwen2_style.gguf", "vocab": n,
               "bos": 3000, "eos": 3002, "cases": make_cases(tok, texts), "variants": []}
    return fixture, out


# Texts where the byte-level families split differently (digit groups, contractions in
# capitals, punctuation before letters, CJK and kana runs, marks, CR/LF, trailing spaces).
FAMILY_TEXTS = [
    "1234567 89 3.14159 2024-01-01 x1000000y 12,345,678",
    "DON'T I'M HE'LL WE'VE they'RE it'S can't O'Neil",
    ".Hello,World!(foo)[bar]{baz} --flag=1 a.b.c x+y=z",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8abc\u4e2d\u6587123\ud55c\uad6d\uc5b4 "
    "\u30ab\u30bf\u30ab\u30ca\u3072\u3089\u304c\u306a",
    "cafe\u0301 e\u0301le\u0300ve na\u0308ive \u212b \u00c5 \uff21\uff22\uff23\uff11\uff12",
    "line one\r\nline two\r\n\r\n  indented\n\n\n",
    "trailing spaces   \n   and tabs\t\t\n",
    "\u00b5s \u03a9 \u2126 K \u212a \u0416\u0436 \u0411\u0443\u043b\u0433\u0430\u0440\u0438\u044f",
    "foo(){return a->b;}//done /* c */ #include <stdio.h>",
    "!!!???... ,,, ;;; \u3002\u3001\uff01\uff1f\u201c\u201d\u2018\u2019",
    "a zqxjwk b zqxjwk",
    "un cafe\u0301 na\u0308ive, l'e\u0301te\u0301 .\u0416\u0438\u0437\u043d\u044c \u20acuro 'sam",
]


def gen_bl_mixed(work, out_dir, texts):
    """A byte-level vocabulary whose merges cross what the families split (trained here on the
    corpus cut at spaces only), written as a Llama-3-style tokenizer.json (ignore_merges, BOS
    template) and converted by convert_hf_to_gguf.py --vocab-only as a Mixtral model
    (LlamaModel.set_vocab falls through to _set_vocab_gpt2 for such a file). Its variants:
    every byte-level family over the same vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    import make_tokenizer_fixtures as mtf
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(" ", behavior="merged_with_next"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=1500, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # strings whose frequent tokens cross a boundary only some families cut at (a mark after
    # its letter, punctuation before a non-ASCII word, a currency sign before letters)
    crossing = ["cafe\u0301 na\u0308ive e\u0301te\u0301 .\u0416\u0438\u0437\u043d\u044c "
                "\u20acuro 'sam"] * 300
    tok.train_from_iterator(mtf.training_corpus() + FAMILY_TEXTS + crossing, trainer=trainer)
    tok.add_special_tokens(["<|begin_of_text|>", "<|end_of_text|>"])
    tok.add_tokens(["<think>"])
    fam = byte_level_families()
    tj = mtf.apply_patch(json.loads(tok.to_str()), fam["llama-bpe"])
    # a token no merge reaches (Llama 3 has such): found only where ignore_merges holds
    for a in tj["added_tokens"]:
        a["id"] += 1
    tj["model"]["vocab"]["\u0120zqxjwk"] = len(tj["model"]["vocab"])
    tj["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                     "use_regex": True}
    n = len(tj["model"]["vocab"]) + 3
    bot = n - 3
    assert tj["added_tokens"][0]["id"] == bot
    tj["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bot],
                                                 "tokens": ["<|begin_of_text|>"]}}}
    d = os.path.join(work, "bl_mixed")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
               "tokenizer_class": "PreTrainedTokenizerFast"},
              open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)
    cfg = json.load(open(os.path.join(ROOT, "tests/fixtures/models/mixtral_base/config.json")))
    cfg.update(vocab_size=n, bos_token_id=bot, eos_token_id=bot + 1)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    out = os.path.join(out_dir, "bl_mixed.gguf")
    run_converter(ARGS.lcp, d, out, "llama-bpe")
    save_hf(d, out_dir, "bl_mixed", ["tokenizer.json", "tokenizer_config.json", "config.json"])

    all_texts = texts + FAMILY_TEXTS
    fixture = {"name": "bl_mixed", "gguf": "bl_mixed.gguf", "vocab": n, "bos": bot, "eos": bot + 1,
               "cases": make_cases(Tokenizer.from_str(json.dumps(tj)), all_texts), "variants": []}

    def family_ids(patch):
        ftok = Tokenizer.from_str(json.dumps(mtf.apply_patch(tj, patch)))
        return [ftok.encode(t, add_special_tokens=False).ids for t in all_texts]

    ids = {pre: family_ids(patch) for pre, patch in fam.items()}
    fixture["variants"] = [{"pre": pre, "ids": v} for pre, v in ids.items()]
    # Each family must differ from every other somewhere, and each switch of a family must
    # matter (NFC, ignore_merges), or the test could not tell a wrong mapping.
    for a in ids:
        for b in ids:
            if a < b and ids[a] == ids[b]:
                raise SystemExit(f"bl_mixed: {a} and {b} give the same ids on every text")
    for pre, flip in (("qwen2", {"normalizer": None}), ("olmo", {"normalizer": None}),
                      ("llama-bpe", {"model.ignore_merges": False})):
        got = family_ids(dict(fam[pre], **flip))
        k = sum(x != y for x, y in zip(got, ids[pre]))
        print(f"bl_mixed: {pre} with {flip} differs on {k} texts")
        if k == 0:
            raise SystemExit(f"bl_mixed: {pre}: {flip} changes nothing")
    return fixture, out


# ------------------------------------------------------- SentencePiece (llama)

SPM_USER = ["[INST]", "[/INST]"]
SPM_CONTROL = ["<|im_start|>", "<|im_end|>"]


def gen_spm_small(work, out_dir, texts):
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import SentencePieceExtractor
    import make_tokenizer_fixtures as mtf

    d = os.path.join(work, "spm_small")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    corpus = os.path.join(work, "spm_corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for t in mtf.training_corpus():
            for line in t.splitlines():
                if line.strip():
                    f.write(line + "\n")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=os.path.join(d, "tokenizer"), model_type="bpe",
        vocab_size=1800, character_coverage=0.995, byte_fallback=True, split_digits=True,
        add_dummy_prefix=True, remove_extra_whitespaces=False, normalization_rule_name="identity",
        allow_whitespace_only_pieces=True, max_sentencepiece_length=16,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        user_defined_symbols=SPM_USER, control_symbols=SPM_CONTROL,
        num_threads=1, minloglevel=2, input_sentence_size=0, shuffle_input_sentence=False)
    model = os.path.join(d, "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=model)
    n = sp.get_piece_size()

    # HF's tokenizer for it: transformers' extractor, Mixtral's tokenizer.json layout
    kw = SentencePieceExtractor(model).extract(BPE)
    tok = Tokenizer(BPE(kw["vocab"], kw["merges"], unk_token="<unk>", fuse_unk=True,
                        byte_fallback=True, dropout=None))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                           normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                            for t in ("<unk>", "<s>", "</s>")])
    tok.add_tokens(kw["additional_special_tokens"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])

    # HF must be sentencepiece itself wherever sentencepiece sees the same text
    specials = ["<unk>", "<s>", "</s>"] + SPM_USER + SPM_CONTROL
    checked = 0
    for t in texts:
        if any(s in t for s in specials):
            continue
        a, b = sp.encode(t), tok.encode(t, add_special_tokens=False).ids
        if a != b:
            raise SystemExit(f"spm_small: HF {b[:16]} != sentencepiece {a[:16]} for {t!r:.60}")
        checked += 1
    print(f"spm_small: HF ids == sentencepiece ids on {checked} texts")

    cfg = json.load(open(os.path.join(ROOT, "tests/fixtures/models/mixtral_base/config.json")))
    cfg.update(vocab_size=n, bos_token_id=1, eos_token_id=2)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    # the HF files a model repository ships beside tokenizer.model; the converter takes the
    # token types of added tokens from tokenizer_config.json's added_tokens_decoder
    from transformers import PreTrainedTokenizerFast
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(d)
    tc = json.load(open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8"))
    tc.update(add_bos_token=True, add_eos_token=False, legacy=True)
    # transformers 4 (which wrote the files of the published models) lists every added token
    tc["added_tokens_decoder"] = {
        str(i): {"content": a.content, "lstrip": a.lstrip, "normalized": a.normalized,
                 "rstrip": a.rstrip, "single_word": a.single_word, "special": a.special}
        for i, a in sorted(tok.get_added_tokens_decoder().items())}
    json.dump(tc, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)
    out = os.path.join(out_dir, "spm_small.gguf")
    run_converter(ARGS.lcp, d, out, "-")
    save_hf(d, out_dir, "spm_small", ["tokenizer.json", "tokenizer_config.json", "config.json"])
    fixture = {"name": "spm_small", "gguf": "spm_small.gguf", "vocab": n, "bos": 1, "eos": 2,
               "cases": make_cases(tok, texts), "variants": []}
    return fixture, out


# ------------------------------------------- a model with its tokenizer inside

BYTE_MODEL_MERGES = ["Ġ t", "h e", "Ġt he", "i n", "e r", "a n", "o n", "Ġ a", "r e", "a t",
                     "e n", "o r", "e s", "Ġ s", "Ġ w", "Ġ o", "Ġ c", "i s", "i t", "Ġ b",
                     "Ġ f", "Ġ m", "Ġ p", "a r", "a l", "l l", "Ġ h", "e d", "o u", "Ġ d"]


def gen_byte_model(work, out_dir, texts):
    """tests/fixtures/gguf_models/qwen2_moe_q8_0.gguf (llama.cpp's converter output, 128-token
    vocabulary) with a 128-token byte-level tokenizer written into it by gguf-py's GGUFWriter,
    field by field as _set_vocab_gpt2 writes them: a .gguf that `moe generate` runs alone."""
    import gguf
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in [10] + list(range(32, 127))]
    tokens += ["".join(m.split(" ")) for m in BYTE_MODEL_MERGES]
    tokens += ["<|endoftext|>", "<|im_end|>"]
    assert len(tokens) == 128 and len(set(tokens)) == 128
    types = [gguf.TokenType.NORMAL] * 126 + [gguf.TokenType.CONTROL] * 2

    src = os.path.join(ROOT, "tests/fixtures/gguf_models/qwen2_moe_q8_0.gguf")
    r = gguf.GGUFReader(src)
    out = os.path.join(out_dir, "qwen2_moe_q8_0_tok.gguf")
    w = gguf.GGUFWriter(out, r.fields["general.architecture"].contents())
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        w.add_key_value(k, f.contents(), f.types[0])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(BYTE_MODEL_MERGES)
    w.add_bos_token_id(126)
    w.add_eos_token_id(127)
    w.add_add_bos_token(False)
    for t in r.tensors:
        w.add_tensor(t.name, t.data, raw_shape=list(t.data.shape),
                     raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    tok = Tokenizer(BPE({t: i for i, t in enumerate(tokens[:126])},
                        [tuple(m.split(" ")) for m in BYTE_MODEL_MERGES]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>", "<|im_end|>"])
    fixture = {"name": "byte_model", "gguf": "qwen2_moe_q8_0_tok.gguf", "vocab": 128, "bos": 126,
               "eos": 127, "cases": make_cases(tok, texts[:24]), "variants": []}
    print("byte_model: 'Hello world, the end.' ->",
          ",".join(map(str, tok.encode("Hello world, the end.").ids)))
    return fixture, out


# --------------------------------------------------------------- cross-checks

def transformers_view(path, fixture):
    """What transformers' own GGUF loader makes of the file (informational: it drops some
    normalizers and uses Metaspace for SentencePiece files, so small differences are expected)."""
    from transformers import AutoTokenizer
    d, f = os.path.split(path)
    try:
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    except Exception as e:  # noqa: BLE001 - report and go on
        print(f"  transformers cannot load {f}: {e}")
        return
    cases = fixture["cases"]
    same = sum(tok.encode(c["text"], add_special_tokens=False) == c["ids"] for c in cases)
    print(f"  transformers' GGUF loader agrees on {same}/{len(cases)} texts for {f}")


def dump_meta(path):
    import gguf
    r = gguf.GGUFReader(path)
    for k, fld in r.fields.items():
        if not k.startswith("tokenizer."):
            continue
        if k in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.scores",
                 "tokenizer.ggml.token_type"):
            print(f"  {k}: [{len(fld.data)}]")
        else:
            print(f"  {k}: {fld.contents()!r:.80}")


def vectors_text(v):
    """Compact JSON, one case per line."""
    def c(o):
        return json.dumps(o, ensure_ascii=False, separators=(",", ":"))
    out = ['{"about":' + c(v["about"]) + ',"fixtures":[']
    for fi, fx in enumerate(v["fixtures"]):
        head = {k: fx[k] for k in ("name", "gguf", "vocab", "bos", "eos")}
        out.append(c(head)[:-1] + ',"cases":[')
        out.append(",\n".join(c(x) for x in fx["cases"]))
        out.append('],"variants":[')
        out.append(",\n".join(c(x) for x in fx["variants"]))
        out.append("]}" + ("," if fi + 1 < len(v["fixtures"]) else ""))
    out.append("]}\n")
    return "\n".join(out)


def main():
    global ARGS
    if len(sys.argv) > 1 and sys.argv[1] == "--convert":
        converter_child(*sys.argv[2:6])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lcp", default=LCP_DEFAULT, help="llama.cpp source (convert_hf_to_gguf.py)")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/gguf_tokenizers"))
    ap.add_argument("--work", default="/tmp/moe_gguf_tok_fixtures")
    ARGS = ap.parse_args()
    os.makedirs(ARGS.out, exist_ok=True)
    os.makedirs(ARGS.work, exist_ok=True)
    texts = test_texts()
    import tokenizers
    v = {"about": "made by tools/gen_gguf_tokenizer_fixtures.py with tokenizers "
                  f"{tokenizers.__version__} and llama.cpp's convert_hf_to_gguf.py", "fixtures": []}
    for gen in (gen_qwen2_style, gen_bl_mixed, gen_spm_small, gen_byte_model):
        fixture, path = gen(ARGS.work, ARGS.out, texts)
        print(f"{fixture['name']}: {os.path.getsize(path)} bytes, {fixture['vocab']} tokens")
        dump_meta(path)
        transformers_view(path, fixture)
        v["fixtures"].append(fixture)
    with open(os.path.join(ARGS.out, "vectors.json"), "w", encoding="utf-8") as f:
        f.write(vectors_text(v))
    print(f"vectors.json: {os.path.getsize(os.path.join(ARGS.out, 'vectors.json'))} bytes")


ARGS = None

if __name__ == "__main__":
    main()
