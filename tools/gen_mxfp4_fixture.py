#!/usr/bin/env python3
"""gen_mxfp4_fixture.py - reference vectors for MXFP4, beside the other
types' (tools/gen_quant_fixtures.py writes those from ggml's own C).

Writes tests/fixtures/quant/mxfp4.bin in the same layout ("MOEQFX01", see
gen_quant_fixtures.py) from tests/fixtures/quant/rows.bin:
  blocks   the gguf package's MXFP4.quantize_blocks of every row (its numpy
           port of ggml's quantize_row_mxfp4_ref: exponent
           floor(log2(amax)) - 2 + 127, nearest doubled E2M1 value, first of
           equals) and their dequantized values
  raw      blocks of random bytes whose E8M0 bytes run through every value
           0..255 (the subnormal 0 and 1, and 255, which ggml reads as 2^127)
           with their dequantized values (inf where 2^127 * 12 overflows)

Run: python tools/gen_mxfp4_fixture.py   (needs numpy and gguf >= 0.17)
"""
import os
import struct

import numpy as np
from gguf import GGMLQuantizationType as GT
from gguf import quants as gq

HERE = os.path.dirname(os.path.abspath(__file__))
DIR = os.path.join(HERE, "..", "tests", "fixtures", "quant")
RAW_ROWS = 16  # 16 rows of 512 values: 256 blocks, one per E8M0 byte
SEED = 20250805


def main():
    with open(os.path.join(DIR, "rows.bin"), "rb") as f:
        data = f.read()
    assert data[:8] == b"MOEQROW1"
    rows, cols = struct.unpack("<II", data[8:16])
    x = np.frombuffer(data[16:], dtype=np.float32).reshape(rows, cols)
    amax = np.abs(x.reshape(-1, 32)).max(axis=1)
    # ggml's uint8 conversion of the exponent is defined for these only
    assert np.all((amax == 0) | ((amax >= 2.0**-125) & np.isfinite(amax)))
    blocks = gq.quantize(x, GT.MXFP4)
    deq = gq.dequantize(blocks, GT.MXFP4).astype(np.float32)
    rng = np.random.default_rng(SEED)
    raw = rng.integers(0, 256, size=(RAW_ROWS, cols // 32, 17), dtype=np.uint8)
    raw[:, :, 0] = np.arange(RAW_ROWS * cols // 32, dtype=np.uint32).reshape(RAW_ROWS, -1) % 256
    raw = raw.reshape(RAW_ROWS, -1)
    with np.errstate(over="ignore"):
        raw_deq = gq.dequantize(raw, GT.MXFP4).astype(np.float32)
    with open(os.path.join(DIR, "mxfp4.bin"), "wb") as f:
        f.write(b"MOEQFX01" + struct.pack("<IIII", int(GT.MXFP4), rows, cols, RAW_ROWS))
        f.write(blocks.tobytes() + deq.tobytes() + raw.tobytes() + raw_deq.tobytes())


if __name__ == "__main__":
    main()
