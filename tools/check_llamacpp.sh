#!/bin/sh
# check_llamacpp.sh - do the GGUF files `moe convert` and `moe quantize` write
# load in llama.cpp and compute what moe computes? For the tiny presets and
# the committed fixtures: convert / quantize with moe, run llama.cpp
# (tools/llamacpp_logits.c, linked against a llama.cpp build) and `moe logits`
# on the same file and the same ids, and print max|a-b| / max|b| per position.
# qwen3_next and qwen3_5_moe too (random models made with transformers: llama.cpp
# wants its DeltaNet value heads as wide as the key heads, which the fixtures'
# are not).
# A mixed file with one-tensor-per-expert layers is expected NOT to load
# (current llama.cpp reads stacked experts only; docs/QUANT.md).
# Then, when the build has llama-quantize: on random qwen3_moe models whose
# rows take K-quants (16 layers with 8 experts, 9 layers with 6), `moe
# quantize --type T` must write the same tensors (names, types, bytes) as
# `llama-quantize F32.gguf OUT T` for q8_0, q4_0, Q4_K_M, Q5_K_M, Q6_K, Q2_K,
# Q3_K_M, IQ4_XS, IQ4_NL, Q4_1, Q5_0, Q5_1, and llama.cpp's logits on the file
# llama-quantize wrote agree with moe's.
#
#   LCP=/path/to/llama.cpp LCP_BUILD=/path/to/build sh tools/check_llamacpp.sh
# The build needs libllama (cmake -DGGML_NATIVE=ON ...; `cmake --build . --target
# llama`). Needs python3 (numpy) for the comparison. Not run in CI.
set -eu
LCP=${LCP:-/tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp}
LCP_BUILD=${LCP_BUILD:-/tmp/lcp-build}
PY=${PY:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MOE=${MOE:-$ROOT/build/moe}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
LIB=$(dirname "$(find "$LCP_BUILD" -name 'libllama.so*' | head -n 1)")
cc -O1 -I"$LCP/include" -I"$LCP/ggml/include" "$ROOT/tools/llamacpp_logits.c" -L"$LIB" \
  -lllama -lggml -lggml-base -Wl,-rpath,"$LIB" -o "$W/llamacpp_logits"
IDS=1,5,17,3,99,42,7,0,127,64
compare() { # NAME FILE.gguf
  "$W/llamacpp_logits" "$2" $IDS "$W/a.bin" 2>/dev/null || { echo "$1: llama.cpp cannot load it"; return; }
  "$MOE" logits "$2" --ids $IDS -o "$W/b.bin"
  "$PY" -c "
import numpy as np
a = np.fromfile('$W/a.bin', np.float32).reshape(10, -1); b = np.fromfile('$W/b.bin', np.float32).reshape(10, -1)
r = [np.abs(a[i] - b[i]).max() / np.abs(b[i]).max() for i in range(10)]
print('%-28s max rel diff %.2g  (per position: %s)' % ('$1', max(r), ' '.join('%.0e' % x for x in r)))"
}
for f in mixtral qwen2_moe qwen3_moe; do # olmoe_base has GQA, which llama.cpp's olmoe does not take
  "$MOE" convert "$ROOT/tests/fixtures/models/${f}_base" "$W/$f.gguf" >/dev/null
  compare "$f f32" "$W/$f.gguf"
done
for p in tiny tiny-olmoe tiny-qwen2 tiny-qwen3; do
  "$MOE" init --preset $p --dtype f32 "$W/$p" >/dev/null
  "$MOE" convert "$W/$p" "$W/$p.gguf" >/dev/null
  compare "$p f32" "$W/$p.gguf"
  for t in q8_0 q6_k q4_k q4_0 q5_1 q5_0 q4_1 iq4_nl; do
    "$MOE" quantize "$W/$p" "$W/$p-$t.gguf" --type $t >/dev/null
    compare "$p $t" "$W/$p-$t.gguf"
  done
done
printf '{"mode":"data","layers":[{"layer":0,"counts":[9,1,1,1,1,1,1,1]},{"layer":1,"counts":[1,1,1,1,1,1,1,9]}]}' >"$W/rs.json"
"$MOE" quantize "$W/tiny-olmoe" "$W/mix.gguf" --type mixed --route-stats "$W/rs.json" --low q4_0 --budget 170K >/dev/null
compare "tiny-olmoe mixed (split)" "$W/mix.gguf"
# qwen3next: llama.cpp takes value heads as wide as key heads (ssm.state_size),
# so a random transformers Qwen3-Next of the committed fixture's shape with
# linear_value_head_dim = linear_key_head_dim (needs torch + transformers)
if "$PY" - "$ROOT/tests/fixtures/models/qwen3_next_base/config.json" "$W/q3n" <<'PYEOF'
import json, sys, torch
from transformers import Qwen3NextConfig, Qwen3NextForCausalLM
c = json.load(open(sys.argv[1]))
c["linear_value_head_dim"] = c["linear_key_head_dim"]
for k in ("architectures", "model_type", "transformers_version", "dtype"): c.pop(k, None)
torch.manual_seed(0)
m = Qwen3NextForCausalLM(Qwen3NextConfig(**c))
with torch.no_grad():
    for n, p in m.named_parameters():
        p.copy_(torch.randn_like(p) * (0.5 if n.endswith("A_log") else 0.3 if "norm" in n else 0.1)
                - (1.5 if n.endswith("A_log") else 0))
m.save_pretrained(sys.argv[2])
PYEOF
then
  for t in f32 q8_0; do
    if [ $t = f32 ]; then "$MOE" convert "$W/q3n" "$W/q3n-$t.gguf" >/dev/null
    else "$MOE" quantize "$W/q3n" "$W/q3n-$t.gguf" --type $t >/dev/null; fi
    compare "qwen3_next $t" "$W/q3n-$t.gguf"
  done
else
  echo "qwen3_next: no torch/transformers, skipped"
fi
# qwen35moe the same way, with twice as many value heads as key heads, so the
# value-head tiling of the file (docs/QUANT.md) is what llama.cpp reads
if "$PY" - "$ROOT/tests/fixtures/models/qwen3_5_moe_text/config.json" "$W/q35" <<'PYEOF'
import json, sys, torch
from transformers import Qwen3_5MoeTextConfig, Qwen3_5MoeForCausalLM
c = json.load(open(sys.argv[1]))
c["linear_value_head_dim"] = c["linear_key_head_dim"]
c["linear_num_value_heads"] = 2 * c["linear_num_key_heads"]
for k in ("architectures", "model_type", "transformers_version", "dtype"): c.pop(k, None)
torch.manual_seed(0)
m = Qwen3_5MoeForCausalLM(Qwen3_5MoeTextConfig(**c))
with torch.no_grad():
    for n, p in m.named_parameters():
        p.copy_(torch.randn_like(p) * (0.5 if n.endswith("A_log") else 0.3 if "norm" in n else 0.1)
                - (1.5 if n.endswith("A_log") else 0))
m.save_pretrained(sys.argv[2])
PYEOF
then
  for t in f32 q8_0; do
    if [ $t = f32 ]; then "$MOE" convert "$W/q35" "$W/q35-$t.gguf" >/dev/null
    else "$MOE" quantize "$W/q35" "$W/q35-$t.gguf" --type $t >/dev/null; fi
    compare "qwen3_5_moe $t" "$W/q35-$t.gguf"
  done
else
  echo "qwen3_5_moe: no torch/transformers, skipped"
fi

LQ=$(find "$LCP_BUILD" -name llama-quantize -type f | head -n 1)
[ -n "$LQ" ] || { echo "no llama-quantize in $LCP_BUILD: skipping the type-rule comparison"; exit 0; }
rand_model() { # DIR LAYERS EXPERTS: a random F32 qwen3_moe directory
  mkdir -p "$1"
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import json, sys
import numpy as np
from safetensors.numpy import save_file
d, L, E = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
D, F, V, H, G, Dh = 256, 256, 512, 4, 2, 64
cfg = {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": V,
       "hidden_size": D, "intermediate_size": 512, "moe_intermediate_size": F,
       "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": G, "head_dim": Dh,
       "num_experts": E, "num_experts_per_tok": 2, "norm_topk_prob": True,
       "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
       "tie_word_embeddings": False, "torch_dtype": "float32"}
json.dump(cfg, open(f"{d}/config.json", "w"))
rng = np.random.default_rng(L * 100 + E)
w = lambda *s: (rng.standard_normal(s) * 0.02).astype(np.float32)
t = {"model.embed_tokens.weight": w(V, D), "model.norm.weight": np.ones(D, np.float32), "lm_head.weight": w(V, D)}
for i in range(L):
    p = f"model.layers.{i}."
    t.update({p + "input_layernorm.weight": np.ones(D, np.float32), p + "post_attention_layernorm.weight": np.ones(D, np.float32),
              p + "self_attn.q_proj.weight": w(H * Dh, D), p + "self_attn.k_proj.weight": w(G * Dh, D),
              p + "self_attn.v_proj.weight": w(G * Dh, D), p + "self_attn.o_proj.weight": w(D, H * Dh),
              p + "self_attn.q_norm.weight": np.ones(Dh, np.float32), p + "self_attn.k_norm.weight": np.ones(Dh, np.float32),
              p + "mlp.gate.weight": w(E, D)})
    for e in range(E):
        q = f"{p}mlp.experts.{e}."
        t.update({q + "gate_proj.weight": w(F, D), q + "up_proj.weight": w(F, D), q + "down_proj.weight": w(D, F)})
save_file(t, f"{d}/model.safetensors")
PYEOF
}
for cfg in "16 8" "9 6"; do
  set -- $cfg
  rand_model "$W/r$1" $1 $2
  "$MOE" convert "$W/r$1" "$W/r$1.gguf" >/dev/null
  for pair in Q8_0:q8_0 Q4_0:q4_0 Q4_K_M:q4_k Q5_K_M:q5_k Q6_K:q6_k Q2_K:q2_k Q3_K_M:q3_k \
              IQ4_XS:iq4_xs IQ4_NL:iq4_nl Q4_1:q4_1 Q5_0:q5_0 Q5_1:q5_1; do
    lt=${pair%%:*} mt=${pair##*:}
    "$LQ" "$W/r$1.gguf" "$W/lq.gguf" "$lt" 2 >/dev/null 2>&1
    "$MOE" quantize "$W/r$1" "$W/mq.gguf" --type "$mt" --force >/dev/null
    "$PY" - "$W/mq.gguf" "$W/lq.gguf" "$1 layers, $2 experts, $lt" <<'PYEOF'
import sys
import gguf
import numpy as np
a, b = gguf.GGUFReader(sys.argv[1]), gguf.GGUFReader(sys.argv[2])
ta, tb = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
diff = [n for n in tb if n not in ta or ta[n].tensor_type != tb[n].tensor_type or
        not np.array_equal(np.asarray(ta[n].data).view(np.uint8), np.asarray(tb[n].data).view(np.uint8))]
print("%-32s %s" % (sys.argv[3], "same tensors as llama-quantize" if not diff and len(ta) == len(tb)
                    else "DIFFERS: %s" % diff[:4]))
PYEOF
    compare "$1 layers, $lt (llama-quantize)" "$W/lq.gguf"
  done
done
