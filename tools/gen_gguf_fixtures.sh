#!/bin/sh
# gen_gguf_fixtures.sh - convert tiny safetensors fixtures to GGUF with llama.cpp's
# own converter, for tests/test_gguf_model.c (GGUF logits vs safetensors logits).
#
# The converter comes from the llama-cpp-python sdist (vendor/llama.cpp):
#   python3 -m pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp
# The fixtures have no tokenizer that matches their 128-token vocab, so set_vocab()
# is made a no-op (tokenizer metadata is tested with the files of
# tools/gen_gguf_tokenizer_fixtures.py); the tensors and the hyperparameters are
# converted exactly as for a real model.
set -eu
LCP=${LCP:-/tmp/lcp}
PY=${PY:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/tests/fixtures/gguf_models
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
[ -d "$LCP/llama_cpp_python-0.3.36" ] || tar xzf "$LCP/llama_cpp_python-0.3.36.tar.gz" -C "$LCP"
CONV=$LCP/llama_cpp_python-0.3.36/vendor/llama.cpp/convert_hf_to_gguf.py
cat > "$WORK/conv.py" <<'PYEOF'
import importlib, pkgutil, runpy, sys
from pathlib import Path
conv = Path(sys.argv[1]); sys.argv = [str(conv)] + sys.argv[2:]
sys.path.insert(0, str(conv.parent)); sys.path.insert(1, str(conv.parent / 'gguf-py'))
import conversion, conversion.base as base
for m in pkgutil.iter_modules(conversion.__path__):
    try: importlib.import_module('conversion.' + m.name)
    except Exception: pass
def subs(c):
    for s in c.__subclasses__():
        yield s; yield from subs(s)
for c in [base.ModelBase] + list(subs(base.ModelBase)):
    if 'set_vocab' in c.__dict__: c.set_vocab = lambda self: None
runpy.run_path(str(conv), run_name='__main__')
PYEOF
mkdir -p "$OUT"
conv() { # fixture outtype outfile [converter flags]
    f=$1 t=$2 o=$3; shift 3
    rm -rf "$WORK/$f"; cp -r "$ROOT/tests/fixtures/models/$f" "$WORK/$f"
    "$PY" "$WORK/conv.py" "$CONV" "$WORK/$f" --outtype "$t" --outfile "$OUT/$o" "$@" >"$WORK/log" 2>&1 ||
        { cat "$WORK/log"; exit 1; }
}
conv mixtral_base f32 mixtral_f32.gguf
conv qwen2_moe_base f32 qwen2_moe_f32.gguf
conv qwen3_moe_base f32 qwen3_moe_f32.gguf
conv olmoe_base f32 olmoe_f32.gguf
conv qwen3_moe_base q8_0 qwen3_moe_q8_0.gguf
conv qwen2_moe_base q8_0 qwen2_moe_q8_0.gguf
# Qwen3-Next: the fixtures have no MTP layer (the converter wants one unless told);
# qwen3_next_legacy has a dense layer, which llama.cpp's qwen3next has no tensors for
conv qwen3_next_base f32 qwen3_next_f32.gguf --no-mtp
conv qwen3_next_base q8_0 qwen3_next_q8_0.gguf --no-mtp
# gpt-oss: float experts (the converter splits gate_up_proj's interleaved
# columns into ffn_gate_exps / ffn_up_exps), and MXFP4 experts, which the
# converter repacks into ggml's MXFP4 blocks and keeps MXFP4.
conv gpt_oss_base f32 gpt_oss_f32.gguf
conv gpt_oss_mxfp4 f32 gpt_oss_mxfp4.gguf
# Qwen3.5-MoE (qwen35moe): the converter tiles the value heads over the key heads;
# qwen3_5_moe_vl has 2 key heads / 4 value heads, so its files show the reorder
# (qwen3_5_moe_text has one value head per key head: nothing to reorder)
conv qwen3_5_moe_vl f32 qwen3_5_moe_f32.gguf --no-mtp
conv qwen3_5_moe_vl q8_0 qwen3_5_moe_q8_0.gguf --no-mtp
conv qwen3_5_moe_text f32 qwen3_5_moe_text_f32.gguf --no-mtp
# DeepSeek (deepseek2: kv_b_proj split into attn_k_b / attn_v_b, YaRN's mscale_all_dim
# as yarn_log_multiplier) and GLM-4.5 (glm4moe: block_count counts the MTP layer)
conv deepseek_v3_base f32 deepseek_v3_f32.gguf
conv deepseek_v2_bf16 f32 deepseek_v2_f32.gguf
conv glm4_moe_base f32 glm4_moe_f32.gguf
conv glm4_moe_base q8_0 glm4_moe_q8_0.gguf
# twins of what `moe convert` / `moe quantize` write for these (tests/test_quantize_ds.c):
# without the MTP layer (moe drops it), V2's group-limited routing, V3 at Q8_0
# (attn_k_b's rows of 8 fall back to F16), q_proj with two-halves RoPE; deepseek_v2_base has no q_lora_rank
# (no attention.q_lora_rank key, attn_q), as DeepSeek-V2-Lite
conv glm4_moe_base f32 glm4_moe_nomtp_f32.gguf --no-mtp
conv glm4_moe_base q8_0 glm4_moe_nomtp_q8_0.gguf --no-mtp
conv deepseek_v2_base f32 deepseek_v2_base_f32.gguf
conv deepseek_v3_base q8_0 deepseek_v3_q8_0.gguf
conv deepseek_v3_noq f32 deepseek_v3_noq_f32.gguf
ls -l "$OUT"
