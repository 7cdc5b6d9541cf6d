#!/usr/bin/env python3
"""check_trained_model.py - does a moe checkpoint load in transformers and give
the logits `moe logits` gives?

  python3 tools/check_trained_model.py DIR [--ids 1,2,3 | --n 32 --seed 0]
                        [--moe build/moe] [--tol 1e-4] [--threads N] [--dropless]

DIR is a checkpoint directory (config.json + *.safetensors), e.g. one `moe train
--out DIR` wrote. The script
  1. loads DIR with transformers (float32, eager attention, eager experts) and
     fails if transformers had to make up any tensor (missing keys), found one it
     does not know (unexpected keys; gate.e_score_correction_bias excepted, which
     only the sigmoid_bias routing reads) or one of the wrong shape;
  2. runs the ids through it as one sequence, with the routing config.json asks
     for under "moe" installed the way tools/gen_train_fixtures.py does (the
     transformers router when there is no "moe" key; refused for a routing it has
     no reference for);
  3. runs `MOE logits DIR --ids ...` and compares, per position,
     max|a-b| / max|ref| <= tol (the conformance test's measure).
Expert choice and capacity routing depend on the whole batch: here the batch is
the one sequence of ids (N = number of ids), so `moe logits` must run them in
one forward for the two to agree (at most 64 ids: its chunk size). --dropless
runs a capacity-routed model without its capacity, as inference engines
(moe logits included) do.
Prints one line per check; exit status 0 when all pass, 1 when one fails, 2 on
bad usage.
"""
import os
os.environ.setdefault("TQDM_DISABLE", "1")
import argparse
import json
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_train_fixtures as gtf  # noqa: E402  (routing kinds, loading, file names)

ROOT = gtf.ROOT


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="checkpoint directory (config.json + *.safetensors)")
    ap.add_argument("--ids", help="comma-separated token ids (default: --n random ids)")
    ap.add_argument("--n", type=int, default=32, help="number of random ids (default 32)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random ids")
    ap.add_argument("--moe", default=os.path.join(ROOT, "build", "moe"), help="the moe binary")
    ap.add_argument("--tol", type=float, default=1e-4, help="per-row max|a-b|/max|ref| allowed")
    ap.add_argument("--threads", type=int, default=0, help="threads for moe (0 = its default)")
    ap.add_argument("--dropless", action="store_true",
                    help="capacity routing: no capacity limit (what inference does)")
    return ap.parse_args()


def load_checked(d):
    """transformers' model of d, and the loading problems (list of strings)."""
    with open(os.path.join(d, "config.json")) as f:
        cj = json.load(f)
    route = gtf.route_of_config(cj.get("moe"))
    if route is None:
        raise SystemExit(f"check_trained_model: {d}: config.json moe = {cj.get('moe')}: "
                         "no PyTorch reference for this routing")
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        d, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager",
        output_loading_info=True)
    model.eval()
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        bad = [k for k in info.get(kind, []) if not str(k).endswith("e_score_correction_bias")]
        if bad:
            problems.append(f"{kind}: {', '.join(str(k) for k in sorted(bad, key=str)[:8])}"
                            + (f" (+{len(bad) - 8})" if len(bad) > 8 else ""))
    if route == "sigmoid_bias":
        # what transformers cannot hold, load_model() attaches from the file
        model = gtf.load_model(d, route)
    return model, route, problems


def ref_logits(model, route, ids, dropless):
    routing = gtf.Routing(model, route, {"dropless": True} if dropless else None)
    x = torch.tensor([ids])
    routing.begin(x)
    with torch.no_grad():
        return model(input_ids=x, use_cache=False).logits[0].float().numpy()


def moe_logits(binary, d, ids, V, threads):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "logits.bin")
        cmd = [binary, "logits", d, "--ids", ",".join(map(str, ids)), "--out", out]
        if threads:
            cmd += ["--threads", str(threads)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:3])} ... exited {r.returncode}: {r.stderr.strip()}")
        a = np.fromfile(out, dtype="<f4")
    if a.size != len(ids) * V:
        raise RuntimeError(f"moe logits wrote {a.size} floats, expected {len(ids)} x {V}")
    return a.reshape(len(ids), V)


def main():
    a = parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    d = os.path.abspath(a.dir)
    if not os.path.isfile(os.path.join(d, "config.json")):
        print(f"check_trained_model: {d}: no config.json", file=sys.stderr)
        return 2
    if not os.access(a.moe, os.X_OK):
        print(f"check_trained_model: {a.moe}: not an executable (build it, or pass --moe)", file=sys.stderr)
        return 2
    model, route, problems = load_checked(d)
    V = model.config.vocab_size
    if a.ids:
        try:
            ids = [int(x) for x in a.ids.split(",")]
        except ValueError:
            print(f"check_trained_model: --ids: not a list of integers: {a.ids}", file=sys.stderr)
            return 2
    else:
        g = torch.Generator().manual_seed(a.seed)
        ids = torch.randint(0, V, (a.n,), generator=g).tolist()
    if not ids or min(ids) < 0 or max(ids) >= V:
        print(f"check_trained_model: ids must be in [0, {V})", file=sys.stderr)
        return 2

    ok = True
    print(f"load    {'ok' if not problems else 'FAIL'}  transformers {transformers.__version__}, "
          f"{model.config.model_type}, routing {route}")
    for p in problems:
        print(f"        {p}")
        ok = False
    if route == "capacity":
        print(f"        capacity {'not applied (--dropless)' if a.dropless else 'applied over the ids'}")
    ref = ref_logits(model, route, ids, a.dropless)
    try:
        got = moe_logits(a.moe, d, ids, V, a.threads)
    except RuntimeError as e:
        print(f"logits  FAIL  {e}")
        return 1
    if not np.all(np.isfinite(got)):
        print("logits  FAIL  moe gave non-finite logits")
        return 1
    err = np.abs(got - ref).max(-1) / np.abs(ref).max(-1)
    worst = int(err.argmax())
    good = float(err.max()) <= a.tol
    ok &= good
    print(f"logits  {'ok' if good else 'FAIL'}  {len(ids)} positions, worst row {worst}: "
          f"max|a-b|/max|ref| = {float(err.max()):.3g} (tol {a.tol:g}); "
          f"argmax agrees at {int((got.argmax(-1) == ref.argmax(-1)).sum())}/{len(ids)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
