#!/usr/bin/env python3
"""gen_quant_fixtures.py - reference vectors for the GGUF quantized types.

Writes tests/fixtures/quant/:
  rows.bin    f32 rows that exercise the quantizers (normal, weight-like,
              outliers, heavy tails, all positive, all negative, zero and
              constant blocks, f16-subnormal scales, exact .5 ties, ...)
  <type>.bin  for q4_0 q8_0 q4_K q5_K q6_K q4_1 q5_0 q5_1 q2_K q3_K iq4_nl
              iq4_xs: the blocks llama.cpp's reference
              quantizer (what llama-quantize writes) makes of those rows and their dequantized values, and
              blocks of random bytes (random finite f16 scales, every code and
              scale pattern) with their dequantized values

The reference is ggml's own C (ggml-quants.c, compiled here into a small
shared library and called through ctypes: quantize_row_*_ref, or
quantize_iq4_nl for iq4_nl, and dequantize_row_*), cross-checked against the gguf package's numpy code where
it has a function that agrees (quantize: q4_0, q8_0; dequantize: all of
them). Any disagreement between the two stops the script.

ggml-quants.c comes from the llama.cpp tree vendored in the llama-cpp-python
source distribution on PyPI (see tools/README.md):
  pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/llsrc
  tar xzf /tmp/llsrc/llama_cpp_python-0.3.36.tar.gz -C /tmp/llsrc
  python tools/gen_quant_fixtures.py \
      --ggml /tmp/llsrc/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml

It is compiled the way llama.cpp builds ggml-base (-O3, gnu11, no -march):
without FMA, so no float contraction, which the K-quant scale search is
sensitive to.

File layout (little-endian):
  rows.bin:   "MOEQROW1", u32 rows, u32 cols, f32 x[rows][cols]
  <type>.bin: "MOEQFX01", u32 ggml_type, u32 rows, u32 cols, u32 raw_rows,
              u8  blocks[rows][row_bytes]       quantize_row_*_ref(rows.bin)
              f32 deq[rows][cols]               dequantize_row_*(blocks)
              u8  raw[raw_rows][row_bytes]      random blocks
              f32 raw_deq[raw_rows][cols]       dequantize_row_*(raw)
"""
import argparse
import ctypes
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as GT
from gguf import quants as gq

ROWS, COLS, RAW_ROWS = 10, 512, 2
SEED = 20240611

# name, ggml type, values per block, bytes per block, offsets of f16 fields
TYPES = [
    ("q4_0", GT.Q4_0, 32, 18, [0]),
    ("q8_0", GT.Q8_0, 32, 34, [0]),
    ("q4_K", GT.Q4_K, 256, 144, [0, 2]),
    ("q5_K", GT.Q5_K, 256, 176, [0, 2]),
    ("q6_K", GT.Q6_K, 256, 210, [208]),
    ("q4_1", GT.Q4_1, 32, 20, [0, 2]),
    ("q5_0", GT.Q5_0, 32, 22, [0]),
    ("q5_1", GT.Q5_1, 32, 24, [0, 2]),
    ("q2_K", GT.Q2_K, 256, 84, [80, 82]),
    ("q3_K", GT.Q3_K, 256, 110, [108]),
    ("iq4_nl", GT.IQ4_NL, 32, 18, [0]),
    ("iq4_xs", GT.IQ4_XS, 256, 136, [0]),
]

# Types whose quantize_row_*_ref is not what llama-quantize writes: for
# these the fixture holds quantize_<type>(rows, no importance matrix)
# (IQ4_NL: 15 scales tried per block, the _ref tries one)
LLAMA_QUANTIZE = {"iq4_nl"}

# gguf-py's numpy quantizers that agree with ggml's bit for bit (its Q4_1 /
# Q5_0 / Q5_1 ones round some f16 mins differently; the fixtures are ggml's)
NP_QUANTIZE = {"q4_0", "q8_0"}

STUB = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
/* ggml-quants.c references these only in paths the fixtures never take */
void ggml_abort(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "ggml_abort at %s:%d\n", file, line); abort();
}
size_t ggml_row_size(int type, long long ne) { (void)type; (void)ne; abort(); }
size_t ggml_type_size(int type) { (void)type; abort(); }
const char *ggml_type_name(int type) { (void)type; return "?"; }
"""


def build_ggml(ggml_dir, work):
    src = os.path.join(ggml_dir, "src", "ggml-quants.c")
    if not os.path.exists(src):
        sys.exit(f"no {src}: --ggml must be llama.cpp's ggml/ directory")
    stub = os.path.join(work, "stub.c")
    with open(stub, "w") as f:
        f.write(STUB)
    lib = os.path.join(work, "libggmlq.so")
    cmd = ["cc", "-O3", "-DNDEBUG", "-std=gnu11", "-fPIC", "-shared",
           "-I" + os.path.join(ggml_dir, "include"), "-I" + os.path.join(ggml_dir, "src"),
           src, stub, "-o", lib, "-lm"]
    subprocess.run(cmd, check=True)
    return ctypes.CDLL(lib)


def make_rows(rng):
    x = np.zeros((ROWS, COLS), dtype=np.float32)
    x[0] = rng.standard_normal(COLS)
    x[1] = rng.standard_normal(COLS) * 0.02
    x[2] = rng.uniform(-1, 1, COLS)
    x[2, rng.choice(COLS, 12, replace=False)] *= 60.0  # outliers
    x[3] = rng.laplace(0, 0.5, COLS)
    x[4] = rng.uniform(0, 1, COLS)  # all positive: K-quant mins are 0
    x[5] = rng.uniform(-1, -0.5, COLS)  # all negative
    # zero blocks and a zero super-block, constant blocks, then normal
    x[6, 256:288] = 0.3
    x[6, 288:320] = -1e-3
    x[6, 320:] = rng.standard_normal(COLS - 320)
    # f16-subnormal scales; then multiples of 1/4 (exact .5 ties in every quantizer)
    x[7, :256] = rng.standard_normal(256) * 1e-6
    x[7, 256:] = rng.integers(-32, 33, 256) / 4.0
    x[8] = rng.standard_normal(COLS) * 3e3  # large values
    x[9] = rng.standard_normal(COLS) * (rng.uniform(0, 1, COLS) < 0.1)  # sparse
    return x


def random_blocks(rng, bpb, f16_offsets, nblocks):
    b = rng.integers(0, 256, (nblocks, bpb), dtype=np.uint8)
    for off in f16_offsets:  # finite scales of either sign, some f16-subnormal
        d = (rng.standard_normal(nblocks) * 0.01).astype(np.float16)
        d[::7] = (rng.standard_normal(len(d[::7])) * 1e-6).astype(np.float16)
        b[:, off:off + 2] = d.view(np.uint8).reshape(nblocks, 2)
    return b


def ggml_quantize(lib, name, x):
    out = np.zeros((x.shape[0], qsize(name, x.shape[1])), dtype=np.uint8)
    for r in range(x.shape[0]):
        row = np.ascontiguousarray(x[r])
        src, dst = row.ctypes.data_as(ctypes.c_void_p), out[r].ctypes.data_as(ctypes.c_void_p)
        if name in LLAMA_QUANTIZE:  # what llama-quantize calls: no importance matrix
            getattr(lib, f"quantize_{name}")(src, dst, ctypes.c_int64(1), ctypes.c_int64(x.shape[1]), None)
        else:
            getattr(lib, f"quantize_row_{name}_ref")(src, dst, ctypes.c_int64(x.shape[1]))
    return out


def ggml_dequantize(lib, name, blocks, cols):
    out = np.zeros((blocks.shape[0], cols), dtype=np.float32)
    fn = getattr(lib, f"dequantize_row_{name}")
    for r in range(blocks.shape[0]):
        row = np.ascontiguousarray(blocks[r])
        fn(row.ctypes.data_as(ctypes.c_void_p), out[r].ctypes.data_as(ctypes.c_void_p),
           ctypes.c_int64(cols))
    return out


def qsize(name, cols):
    for n, _, qk, bpb, _ in TYPES:
        if n == name:
            return cols // qk * bpb
    raise KeyError(name)


def same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ggml", required=True, help="llama.cpp's ggml/ directory (has src/ggml-quants.c)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "quant"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    x = make_rows(rng)
    with tempfile.TemporaryDirectory() as work:
        lib = build_ggml(args.ggml, work)
        with open(os.path.join(args.out, "rows.bin"), "wb") as f:
            f.write(b"MOEQROW1" + struct.pack("<II", ROWS, COLS) + x.tobytes())
        total = 16 + x.nbytes
        for name, gt, qk, bpb, f16_off in TYPES:
            q = ggml_quantize(lib, name, x)
            deq = ggml_dequantize(lib, name, q, COLS)
            try:  # the gguf package's numpy quantizer, where it has one that matches ggml's
                if name not in NP_QUANTIZE:
                    raise NotImplementedError
                q_np = gq.quantize(x, gt)
                if not np.array_equal(q_np.reshape(q.shape), q):
                    bad = np.argwhere(q_np.reshape(q.shape) != q)[:5]
                    sys.exit(f"{name}: ggml and gguf-py quantize differ at {bad.tolist()}")
                np_q = "quantize+"
            except NotImplementedError:
                np_q = ""
            if not same_bits(gq.dequantize(q, gt).reshape(deq.shape).astype(np.float32), deq):
                sys.exit(f"{name}: ggml and gguf-py dequantize differ")
            raw = random_blocks(rng, bpb, f16_off, RAW_ROWS * COLS // qk).reshape(RAW_ROWS, -1)
            raw_deq = ggml_dequantize(lib, name, raw, COLS)
            if not same_bits(gq.dequantize(raw, gt).reshape(raw_deq.shape).astype(np.float32), raw_deq):
                sys.exit(f"{name}: ggml and gguf-py dequantize differ on random blocks")
            data = (b"MOEQFX01" + struct.pack("<IIII", int(gt), ROWS, COLS, RAW_ROWS) + q.tobytes() +
                    deq.tobytes() + raw.tobytes() + raw_deq.tobytes())
            with open(os.path.join(args.out, f"{name}.bin"), "wb") as f:
                f.write(data)
            total += len(data)
            print(f"{name}: {ROWS} rows quantized, {RAW_ROWS} random rows; ggml == gguf-py ({np_q}dequantize)")
        print(f"wrote {total} bytes to {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main()
