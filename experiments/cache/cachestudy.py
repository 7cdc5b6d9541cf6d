#!/usr/bin/env python3
"""cachestudy.py - the two pieces of experiments/cache/study.sh that are
easier in Python (standard library only):

  cachestudy.py expert-bytes MODEL    bytes of the routed experts' tensors in
      MODEL's file(s): a directory of safetensors (model.safetensors or the
      shards of model.safetensors.index.json), or a GGUF file. Shared experts
      are not routed and do not count. Prints one integer.
  cachestudy.py ids SHARD N           the first N token ids of a `moe data`
      shard (val.bin), comma-separated
  cachestudy.py table LOG.jsonl OUT.md
      the markdown table of a study log (one JSON object per line: the run's
      settings and `moe ppl --json`'s output). Exits 1 when a row lacks the
      cache statistics or when the perplexities are not all identical.

A routed-expert tensor: safetensors names with ".experts." (not
"shared_expert"), e.g. model.layers.3.mlp.experts.17.up_proj.weight or
gpt_oss / Qwen3.5 fused ...mlp.experts.gate_up_proj; GGUF names with "_exps."
(blk.3.ffn_up_exps.weight, ffn_gate_up_exps, their biases).
"""
import json
import os
import struct
import sys


def is_expert_st(name):
    return ".experts." in name and "shared_expert" not in name


def st_expert_bytes(path):
    total = 0
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    for name, t in header.items():
        if name != "__metadata__" and is_expert_st(name):
            a, b = t["data_offsets"]
            total += b - a
    return total


def gguf_expert_bytes(path):
    """Sizes from the offsets: each tensor runs to the next one's offset (the
    last to the end of the file), so alignment padding counts, as it does in
    the ranges a reader reads."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        def rd(fmt):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]

        def rstr():
            return f.read(rd("Q")).decode("utf-8", "replace")

        scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
                  12: "d"}

        def skip_value(t):
            if t in scalar:
                f.read(struct.calcsize("<" + scalar[t]))
            elif t == 8:
                rstr()
            elif t == 9:
                et, cnt = rd("I"), rd("Q")
                if et in scalar:
                    f.read(cnt * struct.calcsize("<" + scalar[et]))
                else:
                    for _ in range(cnt):
                        skip_value(et)
            else:
                raise SystemExit(f"cachestudy: {path}: unknown GGUF value type {t}")

        if f.read(4) != b"GGUF":
            raise SystemExit(f"cachestudy: {path}: not a GGUF file")
        version = rd("I")
        if version < 2:
            raise SystemExit(f"cachestudy: {path}: GGUF version {version} is not supported")
        n_tensors, n_kv = rd("Q"), rd("Q")
        align = 32
        for _ in range(n_kv):
            key = rstr()
            t = rd("I")
            if key == "general.alignment" and t == 4:
                align = rd("I")
            else:
                skip_value(t)
        tensors = []
        for _ in range(n_tensors):
            name = rstr()
            nd = rd("I")
            f.read(8 * nd)
            rd("I")  # type
            tensors.append((rd("Q"), name))
        data = (f.tell() + align - 1) // align * align
    tensors.sort()
    total = 0
    for i, (off, name) in enumerate(tensors):
        end = tensors[i + 1][0] if i + 1 < len(tensors) else size - data
        if "_exps." in name:
            total += end - off
    return total


def expert_bytes(model):
    if os.path.isfile(model):
        return gguf_expert_bytes(model)
    index = os.path.join(model, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = sorted(x for x in os.listdir(model) if x.endswith(".safetensors")
                       and not x.startswith("optimizer"))
    if not files:
        raise SystemExit(f"cachestudy: {model}: no .safetensors files")
    return sum(st_expert_bytes(os.path.join(model, x)) for x in files)


def shard_ids(path, n):
    with open(path, "rb") as f:
        blob = f.read(64)
        magic, version, dtype, n_tokens, _vocab, _nd, data_offset, _eos = struct.unpack_from(
            "<8sIIQIIQI", blob, 0)
        if magic != b"MOETOKS\0" or version != 1 or dtype not in (2, 4):
            raise SystemExit(f"cachestudy: {path}: not a version 1 token shard")
        if n_tokens < n:
            raise SystemExit(f"cachestudy: {path} holds {n_tokens} tokens, fewer than {n}")
        f.seek(data_offset)
        body = f.read(n * dtype)
    ids = struct.unpack("<%d%s" % (n, "H" if dtype == 2 else "I"), body)
    return ",".join(map(str, ids))


CACHE_KEYS = ("hits", "misses", "bytes_read", "tokens", "predicted", "predicted_used",
              "used_after_prediction")


def ratio(a, b):
    return a / b if b else None


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def table(log, out):
    rows = []
    with open(log) as f:
        for ln, line in enumerate(f, 1):
            if line.strip():
                rows.append((ln, json.loads(line)))
    if not rows:
        raise SystemExit(f"cachestudy: {log}: no runs")
    errors = []
    base = [r for _, r in rows if r.get("budget_pct") is None]
    ref_ppl = base[0]["ppl"]["perplexity"] if base else rows[0][1]["ppl"]["perplexity"]
    lines = [
        "| budget | --mem bytes | policy | prefetch | hit rate | MB read / token | "
        "prediction precision | prediction recall | prefetches used | stall s | perplexity |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ln, r in rows:
        p = r["ppl"]
        same = p["perplexity"] == ref_ppl
        if not same:
            errors.append(f"line {ln}: perplexity {p['perplexity']} differs from {ref_ppl}")
        mark = "" if same else " **differs**"
        if r.get("budget_pct") is None:
            lines.append(f"| all resident | - | - | - | - | - | - | - | - | - | "
                         f"{p['perplexity']:.6f}{mark} |")
            continue
        c = p.get("cache")
        if not isinstance(c, dict):
            errors.append(f"line {ln}: `moe ppl --json` has no \"cache\" object")
            continue
        missing = [k for k in CACHE_KEYS if k not in c]
        if missing:
            errors.append(f"line {ln}: \"cache\" lacks {', '.join(missing)} "
                          f"(has: {', '.join(sorted(c))})")
            continue
        need = c["hits"] + c["misses"]
        issued = c.get("prefetch_issued")
        used = c.get("prefetch_used")
        lines.append(
            f"| {r['budget_pct']}% | {r['mem']} | {r['policy']} | {r['prefetch']} | "
            f"{fmt(ratio(c['hits'], need), '.4f')} | "
            f"{fmt(ratio(c['bytes_read'], c['tokens'] * 1e6), '.3f')} | "
            f"{fmt(ratio(c['predicted_used'], c['predicted']), '.4f')} | "
            f"{fmt(ratio(c['predicted_used'], c['used_after_prediction']), '.4f')} | "
            f"{fmt(ratio(used, issued) if issued is not None and used is not None else None, '.4f')} | "
            f"{fmt(c.get('stall_seconds'), '.2f')} | "
            f"{p['perplexity']:.6f}{mark} |")
    first = rows[0][1]
    head = [
        f"Model `{first.get('model')}`, {first['ppl']['positions']} scored positions "
        f"(windows of {first['ppl']['ctx']}, fed one token per forward call: `--chunk 1`), "
        f"routed experts {first.get('expert_bytes')} bytes.",
        "",
        "hit rate = hits / (hits + misses); MB read / token = bytes read / tokens; "
        "prediction precision = predicted experts the layer used / predicted; "
        "recall = predicted and used / experts used by layers that had a prediction; "
        "prefetches used = prefetch reads acquired before eviction / prefetch reads.",
        "",
    ]
    with open(out, "w") as f:
        f.write("\n".join(head + lines) + "\n")
        if errors:
            f.write("\nERRORS:\n" + "".join(f"- {e}\n" for e in errors))
    for e in errors:
        print(f"cachestudy: {e}", file=sys.stderr)
    return 1 if errors else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "expert-bytes":
        print(expert_bytes(argv[2]))
        return 0
    if len(argv) == 4 and argv[1] == "ids":
        print(shard_ids(argv[2], int(argv[3])))
        return 0
    if len(argv) == 4 and argv[1] == "table":
        return table(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
