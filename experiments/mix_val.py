#!/usr/bin/env python3
"""mix_val.py - write an evaluation copy of a `moe data` directory whose
val.bin holds the same validation tokens with its windows shuffled.

Why: `moe train` evaluates on the first --eval-batches x --batch windows of
val.bin, in order, and `moe data` writes val.bin domain by domain, so a
small evaluation would see only the first domain (english). Here the
val shard is cut into windows of SEQ tokens (the stride `moe train` reads
them with), the windows are put in a fixed random order (seed 0), and the
result is written as one domain "mixed"; any prefix of it is then a uniform
sample of all domains. train.bin is linked, not copied.

    python3 experiments/mix_val.py SRC_DATA_DIR OUT_DIR [SEQ]

Only the standard library is used. A window's last target is the first
token of the window after it in the new order (1 target in SEQ).
"""
import os
import random
import shutil
import struct
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    seq = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    with open(os.path.join(src, "val.bin"), "rb") as f:
        blob = f.read()
    magic, version, dtype, n_tokens, vocab, n_domains, data_offset, eos = struct.unpack_from(
        "<8sIIQIIQI", blob, 0)
    if magic != b"MOETOKS\0" or version != 1 or dtype not in (2, 4):
        sys.exit(f"{src}/val.bin: not a version 1 token shard")
    toks = blob[data_offset:data_offset + n_tokens * dtype]
    nw = n_tokens // seq
    order = list(range(nw))
    random.Random(0).shuffle(order)
    body = b"".join(toks[k * seq * dtype:(k + 1) * seq * dtype] for k in order)
    body += toks[nw * seq * dtype:]  # the tail shorter than a window, last
    n = len(body) // dtype
    header = struct.pack("<8sIIQIIQI20s", b"MOETOKS\0", 1, dtype, n, vocab, 1, 128, eos, b"\0" * 20)
    domain = struct.pack("<32sQQ", b"mixed", 0, n)
    pad = b"\0" * (128 - len(header) - len(domain))
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "val.bin.tmp")
    with open(tmp, "wb") as f:
        f.write(header + domain + pad + body)
    os.replace(tmp, os.path.join(out, "val.bin"))
    link = os.path.join(out, "train.bin")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.abspath(os.path.join(src, "train.bin")), link)
    shutil.copy(os.path.join(src, "meta.json"), os.path.join(out, "meta.json"))
    print(f"wrote {out}/val.bin: {n} tokens, {nw} windows of {seq} shuffled (seed 0); "
          f"train.bin -> {src}/train.bin")


if __name__ == "__main__":
    main()
