#!/usr/bin/env python3
"""gguf_crosscheck.py - hold our GGUF reader and writer against the Python
`gguf` package (llama.cpp's gguf-py; 0.19.0 used). Not run in CI: CI reads
only the fixture this writes.

  gen [DIR]      write DIR/py_all_types.gguf with gguf.GGUFWriter (every value
                 type, scalar and array, one tensor of each type we support)
                 and DIR/py_all_types.txt, its canonical dump by gguf.GGUFReader
                 (DIR defaults to tests/fixtures/gguf). tests/test_gguf.c checks
                 our reader against that text.
  dump FILE      print the canonical dump of FILE (format: tests/gguf_canon.h).
  check [FILE..] build tools/gguf_dump.c with cc, then for each FILE compare its
                 dump of our reader with the Python reader's. Without FILEs:
                 the fixtures, /work/shared/vocab/*.gguf, the seed corpus
                 fuzz/corpus/gguf/*, and a file written by our writer
                 (gguf_dump --sample), which checks the writer too.

Usage: python3 tools/gguf_crosscheck.py check
"""
import glob
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGUFReader, GGUFWriter, GGUFValueType as VT, GGMLQuantizationType as QT
from gguf.constants import GGML_QUANT_SIZES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FNV0, FNV_PRIME, MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1

VT_NAME = {VT.UINT8: "u8", VT.INT8: "i8", VT.UINT16: "u16", VT.INT16: "i16", VT.UINT32: "u32",
           VT.INT32: "i32", VT.FLOAT32: "f32", VT.BOOL: "bool", VT.STRING: "str",
           VT.ARRAY: "arr", VT.UINT64: "u64", VT.INT64: "i64", VT.FLOAT64: "f64"}


def fnv(h, data):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def canon_str(b):
    out = ['"']
    for c in b:
        out.append(chr(c) if 0x20 <= c <= 0x7E and c not in (0x22, 0x5C) else "\\x%02x" % c)
    out.append('"')
    return "".join(out)


def canon_scalar(vt, v):
    if vt == VT.FLOAT32:
        return "0x%08x" % struct.unpack("<I", struct.pack("<f", float(v)))[0]
    if vt == VT.FLOAT64:
        return "0x%016x" % struct.unpack("<Q", struct.pack("<d", float(v)))[0]
    if vt == VT.BOOL:
        return "true" if bool(v) else "false"
    return str(int(v))


def canon(path):
    r = GGUFReader(path)
    lines = []
    version = None
    for name, f in r.fields.items():
        if name == "GGUF.version":
            version = int(f.parts[f.data[0]][0])
        if name.startswith("GGUF."):
            continue
        vt = VT(int(f.parts[2][0]))
        if vt == VT.STRING:
            lines.append("kv %s str %s" % (name, canon_str(bytes(f.parts[f.data[0]]))))
        elif vt == VT.ARRAY:
            et = VT(int(f.parts[3][0]))
            n = int(f.parts[4][0])
            h = FNV0
            for i in f.data:
                part = f.parts[i]
                if et == VT.STRING:
                    h = fnv(h, struct.pack("<Q", len(part)))
                h = fnv(h, part.tobytes())
            lines.append("kv %s arr[%s] n=%d fnv=%016x" % (name, VT_NAME[et], n, h))
        else:
            lines.append("kv %s %s %s" % (name, VT_NAME[vt], canon_scalar(vt, f.parts[f.data[0]][0])))
    for t in sorted(r.tensors, key=lambda t: t.name.encode()):
        ne = ",".join(str(int(d)) for d in t.shape)
        off = t.data_offset - r.data_offset
        h = fnv(FNV0, np.ascontiguousarray(t.data).tobytes())
        lines.append("tensor %s %s ne=%s offset=%d nbytes=%d fnv=%016x"
                     % (t.name, t.tensor_type.name, ne, off, t.n_bytes, h))
    return "\n".join(["version %d" % version, "alignment %d" % r.alignment] + lines) + "\n"


def gen(outdir):
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "py_all_types.gguf")
    w = GGUFWriter(path, "llama")  # adds general.architecture
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 3.14159)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "h\u00e9llo \"w\u00f6rld\"\n")
    w.add_uint64("t.u64", 18000000000000000000)
    w.add_int64("t.i64", -9000000000000000000)
    w.add_float64("t.f64", -2.718281828459045)
    arrays = {VT.UINT8: [0, 1, 255], VT.INT8: [-128, 0, 127], VT.UINT16: [0, 65535],
              VT.INT16: [-32768, 32767], VT.UINT32: [1, 2, 4294967295],
              VT.INT32: [-1, 0, 2147483647], VT.FLOAT32: [0.5, -1.25, 1e30],
              VT.BOOL: [True, False, True], VT.UINT64: [0, 18446744073709551615],
              VT.INT64: [-9223372036854775808, 9223372036854775807],
              VT.FLOAT64: [1e-300, -0.0, 3.5]}
    for vt, vals in arrays.items():
        w.add_key_value("a." + VT_NAME[vt], vals, VT.ARRAY, sub_type=vt)
    w.add_key_value("a.str", ["<unk>", "", "\u2581the", "a b"], VT.ARRAY, sub_type=VT.STRING)

    rng = np.random.default_rng(1234)
    w.add_tensor("t.f32", rng.standard_normal((3, 5)).astype(np.float32))
    w.add_tensor("t.f16", rng.standard_normal((2, 2, 4)).astype(np.float16))
    for name, qt, ne in [("t.bf16", QT.BF16, (6, 2)), ("t.q4_0", QT.Q4_0, (64, 2)),
                         ("t.q8_0", QT.Q8_0, (32, 3)), ("t.q4_k", QT.Q4_K, (256, 1)),
                         ("t.q5_k", QT.Q5_K, (512, 1)), ("t.q6_k", QT.Q6_K, (256, 2, 1, 1))]:
        block, size = GGML_QUANT_SIZES[qt]
        byte_shape = tuple(reversed(ne[1:])) + (ne[0] // block * size,)
        data = rng.integers(0, 256, size=byte_shape, dtype=np.uint8)
        w.add_tensor(name, data, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(outdir, "py_all_types.txt"), "w") as f:
        f.write(canon(path))
    print("wrote", path, os.path.getsize(path), "bytes")


def build_c_dump(tmp):
    exe = os.path.join(tmp, "gguf_dump")
    srcs = ["tools/gguf_dump.c", "src/formats/gguf.c", "src/formats/gguf_write.c",
            "src/base/err.c", "src/base/mapfile.c"]
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-Iinclude", "-Isrc", "-Itests",
                    "-fsanitize=address,undefined", "-o", exe] + srcs, cwd=ROOT, check=True)
    return exe


def check(files):
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_c_dump(tmp)
        if not files:
            sample = os.path.join(tmp, "c_sample.gguf")
            subprocess.run([exe, "--sample", sample], check=True)
            files = (sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/gguf/*.gguf")))
                     + sorted(glob.glob("/work/shared/vocab/*.gguf"))
                     + sorted(glob.glob(os.path.join(ROOT, "fuzz/corpus/gguf/*"))) + [sample])
        for path in files:
            c = subprocess.run([exe, path], capture_output=True, text=True)
            try:
                py = canon(path)
            except Exception as e:  # the Python reader refused it
                py = "python reader: %s\n" % e
            same = c.returncode == 0 and c.stdout == py
            print("%-4s %s" % ("ok" if same else "DIFF", os.path.relpath(path, ROOT)))
            if not same:
                bad += 1
                print("  C rc=%d %s" % (c.returncode, c.stderr.strip()))
                for a, b in zip(c.stdout.splitlines(), py.splitlines()):
                    if a != b:
                        print("  C : " + a + "\n  py: " + b)
                        break
    print("%d files, %d differ" % (len(files), bad))
    return 1 if bad else 0


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    if sys.argv[1] == "gen":
        gen(sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests/fixtures/gguf"))
        return 0
    if sys.argv[1] == "dump":
        sys.stdout.write(canon(sys.argv[2]))
        return 0
    if sys.argv[1] == "check":
        return check(sys.argv[2:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
