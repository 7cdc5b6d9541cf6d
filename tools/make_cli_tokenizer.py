#!/usr/bin/env python3
"""make_cli_tokenizer.py - the tokenizer the CLI tests give the tiny random models.

Writes tests/fixtures/cli/tokenizer.json: a GPT-2 style byte-level BPE of exactly 512 ids (the
vocab of `moe init --preset tiny*`), trained here on a short English text, with special tokens
<unk> = 0, <s> = 1, </s> = 2 (the tiny presets' bos / eos ids) and a post-processor that
prepends <s>, so `moe tokenize` / `generate` run end to end on a random model.

Usage: python3 tools/make_cli_tokenizer.py [--out tests/fixtures/cli]
Needs: tokenizers 0.23.3.
"""
import argparse
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

TEXT = """The quick brown fox jumps over the lazy dog. Hello world, hello there!
A mixture of experts routes every token to a few experts chosen by a router; the
outputs are weighted and summed. Tokens per second, bytes per token, memory bandwidth.
Once upon a time there was a small model that could only say random things, and it was
happy anyway. Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Caf\u00e9, na\u00efve, \u00fcber, \u65e5\u672c.
In the beginning the weights were random and the logits were flat; then training began, the loss
went down, and the model learned which expert should answer which question. Attention looks back
over the context, keys and values wait in the cache, queries arrive one position at a time.
Rotary position embeddings turn pairs of dimensions by an angle that grows with the position.
def main(argc, argv): return 0  # code, with symbols: {}, [], (), <>, ==, !=, +=, ->, ::
Spring, summer, autumn, winter; north, south, east, west; red, green, blue, yellow, purple.
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "cli"))
    a = ap.parse_args()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([TEXT] * 20, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    assert tok.get_vocab_size() == 512, tok.get_vocab_size()
    assert tok.token_to_id("<s>") == 1 and tok.token_to_id("</s>") == 2
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "tokenizer.json")
    tok.save(path)
    enc = tok.encode("hello world")
    print(path, "vocab", tok.get_vocab_size(), "'hello world' ->", enc.ids,
          "->", repr(tok.decode(enc.ids, skip_special_tokens=True)))


if __name__ == "__main__":
    main()
