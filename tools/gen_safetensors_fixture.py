#!/usr/bin/env python3
"""Write tests/fixtures/st_reference.safetensors with the reference
implementation (huggingface safetensors), so tests/test_safetensors.c can check
that our reader reads it and that st_write produces the same bytes.

Run: python3 tools/gen_safetensors_fixture.py [OUT]
"""
import sys

import torch
from safetensors.torch import save_file

out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/st_reference.safetensors"
tensors = {
    "a": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5,
    "b": torch.tensor([1.0, -2.0, 0.5], dtype=torch.float16),
    "c": torch.tensor([[1.0, 2.0], [3.0, -4.0]], dtype=torch.bfloat16),
    "s": torch.tensor(7.0, dtype=torch.float32),
    "z": torch.zeros(0, dtype=torch.float32),
}
save_file(tensors, out, metadata={"format": "pt"})
print("wrote", out)
