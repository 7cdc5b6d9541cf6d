#!/usr/bin/env python3
"""gen_iq_fixtures.py - reference vectors for ggml's grid i-quants
(IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M).

Writes tests/fixtures/quant/<type>.bin: rows of blocks of random bytes
(every index, sign and scale pattern; the f16 scale fields set to random
finite values, a few f16-subnormal) and their dequantized values.

The values come from ggml's own C (ggml-quants.c, compiled into a small
shared library as tools/gen_quant_fixtures.py does: dequantize_row_*) and
from the gguf package's numpy dequantizers; the script stops unless the
two agree bit for bit. There is no quantizer to check: ggml's need an
importance matrix, and moe only reads these types.

  python tools/gen_iq_fixtures.py \\
      --ggml /tmp/llsrc/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml

File layout (little-endian):
  "MOEQIQ01", u32 ggml_type, u32 rows, u32 cols,
  u8  blocks[rows][row_bytes]     random blocks
  f32 deq[rows][cols]             dequantize_row_*(blocks)
"""
import argparse
import os
import struct
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as GT
from gguf import quants as gq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_quant_fixtures import build_ggml, ggml_dequantize, same_bits  # noqa: E402

ROWS, COLS = 4, 1024
SEED = 20261205

# name, ggml type, bytes per 256-value block, offsets of f16 scale fields
# (IQ1_M has none: its f16 is the top nibbles of the 4 u16 words at 48)
TYPES = [
    ("iq2_xxs", GT.IQ2_XXS, 66, [0]),
    ("iq2_xs", GT.IQ2_XS, 74, [0]),
    ("iq2_s", GT.IQ2_S, 82, [0]),
    ("iq3_xxs", GT.IQ3_XXS, 98, [0]),
    ("iq3_s", GT.IQ3_S, 110, [0]),
    ("iq1_s", GT.IQ1_S, 50, [0]),
    ("iq1_m", GT.IQ1_M, 56, []),
]


def random_scales(rng, n):
    d = (rng.standard_normal(n) * 0.01).astype(np.float16)
    d[::7] = (rng.standard_normal(len(d[::7])) * 1e-6).astype(np.float16)  # some f16-subnormal
    return d.view(np.uint16)


def random_blocks(rng, name, bpb, f16_offsets, nblocks):
    b = rng.integers(0, 256, (nblocks, bpb), dtype=np.uint8)
    for off in f16_offsets:
        b[:, off:off + 2] = random_scales(rng, nblocks).view(np.uint8).reshape(nblocks, 2)
    if name == "iq1_m":  # d's 4 nibbles into the top of scales' u16 words
        d = random_scales(rng, nblocks)
        w = b[:, 48:56].copy().view(np.uint16)
        for k in range(4):
            w[:, k] = (w[:, k] & 0x0FFF) | (((d >> (4 * k)) & 0xF) << 12)
        b[:, 48:56] = w.view(np.uint8)
    return b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ggml", required=True, help="llama.cpp's ggml/ directory (has src/ggml-quants.c)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "quant"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    total = 0
    with tempfile.TemporaryDirectory() as work:
        lib = build_ggml(args.ggml, work)
        for name, gt, bpb, f16_off in TYPES:
            blocks = random_blocks(rng, name, bpb, f16_off, ROWS * COLS // 256).reshape(ROWS, -1)
            deq = ggml_dequantize(lib, name, blocks, COLS)
            if not np.all(np.isfinite(deq)):
                sys.exit(f"{name}: non-finite values (a scale field was missed)")
            if not same_bits(gq.dequantize(blocks, gt).reshape(deq.shape).astype(np.float32), deq):
                sys.exit(f"{name}: ggml and gguf-py dequantize differ")
            data = b"MOEQIQ01" + struct.pack("<III", int(gt), ROWS, COLS) + blocks.tobytes() + deq.tobytes()
            with open(os.path.join(args.out, f"{name}.bin"), "wb") as f:
                f.write(data)
            total += len(data)
            print(f"{name}: {ROWS} random rows of {COLS}; ggml == gguf-py (dequantize)")
    print(f"wrote {total} bytes to {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main()
