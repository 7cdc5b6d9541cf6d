#!/usr/bin/env python3
"""check_lora_peft.py - does an adapter `moe train --lora-rank` wrote load in
peft and give the logits `moe logits --lora` gives?

  python3 tools/check_lora_peft.py BASE ADAPTER [--ids 1,2,3] [--moe build/moe] [--tol 1e-4]

BASE is the base model directory (the --init of the run), ADAPTER a checkpoint
directory holding adapter_config.json + adapter_model.safetensors. The script
  1. loads BASE with transformers (float32, eager attention) and ADAPTER with
     peft's PeftModel.from_pretrained, and fails if peft reports a missing or an
     unexpected adapter tensor;
  2. runs the ids through it as one sequence;
  3. runs `MOE logits BASE --lora ADAPTER --ids ...` and `MOE lora merge` then
     `MOE logits MERGED`, and compares each: max|a-b| / max|ref| <= tol.
Exit status 0 when all pass, 1 when one fails. Needs peft (0.21.2 used).
"""
import os
os.environ.setdefault("TQDM_DISABLE", "1")
import argparse
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel


def moe_logits(moe, model, ids, extra):
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        subprocess.run([moe, "logits", model, "--ids", ",".join(map(str, ids)), "--out", f.name,
                        *extra], check=True)
        return np.fromfile(f.name, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("adapter")
    ap.add_argument("--ids", default="1,5,9,13,17,21,25,29,33,37,41,45")
    ap.add_argument("--moe", default="build/moe")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    ids = [int(x) for x in a.ids.split(",")]
    model = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32,
                                                 attn_implementation="eager")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        pm = PeftModel.from_pretrained(model, a.adapter)
    bad = [str(x.message) for x in w if "missing" in str(x.message).lower()
           or "unexpected" in str(x.message).lower()]
    ok = True
    print(("FAIL" if bad else "ok  ") + " peft loads the adapter" + (": " + bad[0] if bad else ""))
    ok &= not bad
    pm.eval()
    with torch.no_grad():
        ref = pm(torch.tensor([ids])).logits[0].numpy().ravel()
    scale = np.abs(ref).max()
    got = moe_logits(a.moe, a.base, ids, ["--lora", a.adapter])
    e = np.abs(got - ref).max() / scale
    print(("ok  " if e <= a.tol else "FAIL") + f" moe logits --lora vs peft: {e:.2e}")
    ok &= e <= a.tol
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([a.moe, "lora", "merge", a.base, a.adapter, d + "/m"], check=True,
                       stdout=subprocess.DEVNULL)
        got = moe_logits(a.moe, d + "/m", ids, [])
        e = np.abs(got - ref).max() / scale
        print(("ok  " if e <= a.tol else "FAIL") + f" moe lora merge, moe logits vs peft: {e:.2e}")
        ok &= e <= a.tol
        merged = AutoModelForCausalLM.from_pretrained(d + "/m", dtype=torch.float32,
                                                      attn_implementation="eager")
        with torch.no_grad():
            got = merged(torch.tensor([ids])).logits[0].numpy().ravel()
        e = np.abs(got - ref).max() / scale
        print(("ok  " if e <= a.tol else "FAIL") + f" transformers on the merged model vs peft: {e:.2e}")
        ok &= e <= a.tol
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
