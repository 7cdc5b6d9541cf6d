#!/usr/bin/env python3
"""prune_gguf_vocab.py - llama.cpp's vocab files, cut down to what their test texts can reach.

llama.cpp ships ggml-vocab-NAME.gguf (the tokenizer metadata of a real model) with
NAME.gguf.inp (test texts separated by lines "__ggml_vocab_test__") and NAME.gguf.out (the ids
Hugging Face `tokenizers` gives for each text, no BOS; written by llama.cpp's
convert_hf_to_gguf_update.py). The files are 0.7-4 MB each; this keeps, of each vocabulary,
only what can take part in tokenizing those texts, so the checks fit in tests/fixtures:

  - every token that is a substring of some text as the tokenizer sees it (byte-level: the text,
    and its NFC form, mapped through GPT-2's byte-to-character table; SentencePiece: with spaces
    as U+2581 and a U+2581 in front). Whatever a pre-tokenizer cuts, its pieces are substrings
    of the text, and BPE on a piece only ever forms substrings of it: so no merge that could
    apply to any split of these texts is lost, and a wrong split still shows.
  - the single-byte tokens (byte-level characters, <0xNN>) and every token not of type normal;
  - the merges whose result is kept (their parts are then substrings too), in their order; the
    scores of SentencePiece files as they are.

Kept tokens keep their order and are renumbered; the expected ids are mapped to the new ids
(a text whose expected id was not kept stops the script: the premise would be wrong).

Writes OUT/NAME.gguf and OUT/NAME.json ({"texts": [...], "ids": [[...], ...]}).
Usage: python3 tools/prune_gguf_vocab.py [--src /work/shared/vocab] [--out DIR] NAME...
Needs gguf (gguf-py) 0.19.
"""
import argparse
import json
import os
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def read_case_files(base):
    texts = open(base + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
    outs = open(base + ".out", encoding="utf-8").read().split("\n")
    if len(outs) < len(texts):
        raise SystemExit(f"{base}: {len(texts)} texts, {len(outs)} lines of ids")
    return texts, [[int(x) for x in outs[i].split()] for i in range(len(texts))]


def seen_forms(model, texts):
    """The strings the vocabulary's tokens are matched against."""
    b2u = bytes_to_unicode()
    forms = []
    for t in texts:
        for v in {t, unicodedata.normalize("NFC", t)}:
            if model == "gpt2":
                forms.append("".join(b2u[b] for b in v.encode("utf-8")))
            else:
                forms.append("\u2581" + v.replace(" ", "\u2581"))
    return "\x00".join(forms)


def prune(name, src, out):
    import gguf
    base = os.path.join(src, f"ggml-vocab-{name}.gguf")
    r = gguf.GGUFReader(base)
    f = r.fields
    model = f["tokenizer.ggml.model"].contents()
    tokens = f["tokenizer.ggml.tokens"].contents()
    types = f["tokenizer.ggml.token_type"].contents() if "tokenizer.ggml.token_type" in f else None
    texts, want = read_case_files(base)
    hay = seen_forms(model, texts)
    b2u = bytes_to_unicode()
    singles = set(b2u.values()) if model == "gpt2" else {f"<0x{b:02X}>" for b in range(256)}
    keep = [i for i, tok in enumerate(tokens)
            if (types is not None and types[i] != gguf.TokenType.NORMAL) or tok in singles
            or (tok and tok in hay)]
    new_id = {old: new for new, old in enumerate(keep)}
    ids = []
    for t, w in zip(texts, want):
        miss = [i for i in w if i not in new_id]
        if miss:
            raise SystemExit(f"{name}: expected ids {miss[:5]} of {t[:40]!r} were cut")
        ids.append([new_id[i] for i in w])

    w = gguf.GGUFWriter(os.path.join(out, f"{name}.gguf"), f["general.architecture"].contents()
                        if "general.architecture" in f else "llama")
    kept_tokens = [tokens[i] for i in keep]
    for k, fld in f.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        if k == "tokenizer.ggml.tokens":
            w.add_token_list(kept_tokens)
        elif k == "tokenizer.ggml.token_type":
            w.add_token_types([types[i] for i in keep])
        elif k == "tokenizer.ggml.scores":
            sc = fld.contents()
            w.add_token_scores([sc[i] for i in keep])
        elif k == "tokenizer.ggml.merges":
            kept = set(kept_tokens)
            w.add_token_merges([m for m in fld.contents() if m.replace(" ", "", 1) in kept
                                and m.replace(" ", "", 1) in hay])
        elif k.endswith("_token_id"):
            w.add_uint32(k, new_id[fld.contents()])
        elif k == "tokenizer.chat_template":
            continue
        else:
            w.add_key_value(k, fld.contents(), fld.types[0])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    with open(os.path.join(out, f"{name}.json"), "w", encoding="utf-8") as fo:
        json.dump({"source": f"ggml-vocab-{name}.gguf{{,.inp,.out}} of llama.cpp, pruned by "
                             "tools/prune_gguf_vocab.py", "texts": texts, "ids": ids},
                  fo, ensure_ascii=False, separators=(",", ":"))
    print(f"{name}: {model}/{f['tokenizer.ggml.pre'].contents() if 'tokenizer.ggml.pre' in f else '-'}"
          f", {len(keep)} of {len(tokens)} tokens, {len(texts)} texts, "
          f"{os.path.getsize(os.path.join(out, name + '.gguf'))} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default="/work/shared/vocab")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/gguf_vocab"))
    ap.add_argument("names", nargs="*", default=["gpt-2", "mpt", "deepseek-llm", "deepseek-coder",
                                                 "falcon", "starcoder", "phi-3", "llama-spm"])
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for n in a.names:
        prune(n, a.src, a.out)


if __name__ == "__main__":
    main()
