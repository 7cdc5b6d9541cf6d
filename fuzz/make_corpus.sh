#!/bin/sh
# make_corpus.sh - (re)write the seed corpora fuzz/corpus/NAME of the fuzz
# targets from the committed test fixtures (tests/fixtures), each corpus
# well under 100 kB so that a short run spends its time mutating:
#   safetensors      st_reference.safetensors, and the small tensors (norms,
#                    routers) of fixture models in f32 and bf16
#   hf_config        every fixture config.json
#   tokenizer_json   three small fixture tokenizer.json files
#   tokenizer_gguf   the two small GGUF tokenizer fixtures
#   model_gguf       one-layer cuts of three fixture models, quantized to q4_0
#   data             train.bin / val.bin of the tokenizer_train corpus (2-byte
#                    ids) and the same shard with 4-byte ids
#   trainer_state    trainer_state.json of a one-step `moe train` run
#   chat_template    small fixture chat templates, and two with a JSON context
#                    after a NUL byte
#   serve_request    request bodies of `moe serve` (completions by text and
#                    by ids, chat) and a generated text with a partial
#                    character and a stop string
# Needs build/moe (make all) and python3 (standard library only).
#   sh fuzz/make_corpus.sh          from the repository root
set -eu
MOE=${MOE:-build/moe}
FIX=tests/fixtures
OUT=fuzz/corpus
W=$(mktemp -d "${TMPDIR:-/tmp}/moe-corpus.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM
fresh() { rm -rf "$OUT/$1"; mkdir -p "$OUT/$1"; }

# st.py: safetensors cuts. "small SRC DST N": the tensors of SRC with at most N
# elements; "layers SRCDIR DSTDIR L": a model directory cut to its first L layers.
cat >"$W/st.py" <<'EOF'
import json, re, struct, sys

def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    return head, b[8 + n:]

def write(path, meta, tensors):  # tensors: [(name, dtype, shape, bytes)]
    head, off, data = {}, 0, b""
    if meta is not None:
        head["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        head[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)

def keep(path, pred):
    head, data = read(path)
    out = []
    for name, t in head.items():
        if name == "__metadata__" or not pred(name, t):
            continue
        a, b = t["data_offsets"]
        out.append((name, t["dtype"], t["shape"], data[a:b]))
    return head.get("__metadata__"), out

def prod(s):
    p = 1
    for x in s:
        p *= x
    return p

if sys.argv[1] == "small":
    n = int(sys.argv[4])
    meta, t = keep(sys.argv[2], lambda name, t: prod(t["shape"]) <= n)
    write(sys.argv[3], meta, t)
else:
    src, dst, L = sys.argv[2], sys.argv[3], int(sys.argv[4])
    cfg = json.load(open(src + "/config.json"))
    cfg["num_hidden_layers"] = L
    json.dump(cfg, open(dst + "/config.json", "w"), indent=1)
    def in_cut(name, t):
        m = re.match(r"model\.layers\.(\d+)\.", name)
        return not m or int(m.group(1)) < L
    meta, t = keep(src + "/model.safetensors", in_cut)
    write(dst + "/model.safetensors", meta, t)
EOF

fresh safetensors
cp "$FIX/st_reference.safetensors" "$OUT/safetensors/reference.safetensors"
for m in mixtral_base qwen2_moe_base mixtral_bf16 qwen3_moe_base; do
  python3 "$W/st.py" small "$FIX/models/$m/model.safetensors" "$OUT/safetensors/$m.safetensors" 256
done

fresh hf_config
for d in "$FIX"/models/* "$FIX"/train/* "$FIX"/gguf_tokenizers/hf/*; do
  [ -f "$d/config.json" ] && cp "$d/config.json" "$OUT/hf_config/$(basename "$(dirname "$d")")_$(basename "$d").json"
done

fresh tokenizer_json
cp "$FIX/cli/tokenizer.json" "$OUT/tokenizer_json/cli.json"
cp "$FIX/tokenizer_train/trained/tokenizer.json" "$OUT/tokenizer_json/trained.json"
cp "$FIX/gguf_tokenizers/hf/bl_mixed/tokenizer.json" "$OUT/tokenizer_json/bl_mixed.json"

fresh tokenizer_gguf
cp "$FIX/gguf_tokenizers/spm_small.gguf" "$FIX/gguf_tokenizers/bl_mixed.gguf" "$OUT/tokenizer_gguf/"

fresh model_gguf
for m in qwen2_moe_base qwen3_moe_base olmoe_base; do
  mkdir -p "$W/$m"
  python3 "$W/st.py" layers "$FIX/models/$m" "$W/$m" 1
  "$MOE" quantize "$W/$m" "$OUT/model_gguf/$m.gguf" --type q4_0 --pure >/dev/null 2>&1
done

fresh data
"$MOE" data --tokenizer "$FIX/tokenizer_train/trained" --out "$W/d" --val-frac 0.2 --seed 1 -q \
  "$FIX/tokenizer_train/corpus.txt" 2>/dev/null 2>/dev/null
cp "$W/d/train.bin" "$W/d/val.bin" "$OUT/data/"
python3 - "$W/d/train.bin" "$OUT/data/train_u32.bin" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
off = struct.unpack("<Q", b[32:40])[0]
ids = b[off:]
wide = b"".join(struct.pack("<I", v) for (v,) in struct.iter_unpack("<H", ids))
open(sys.argv[2], "wb").write(b[:12] + struct.pack("<I", 4) + b[16:off] + wide)
EOF

fresh trainer_state
sed -e 's/"vocab_size": 128/"vocab_size": 512/' -e 's/"num_hidden_layers": 2/"num_hidden_layers": 1/' \
  "$FIX/models/mixtral_base/config.json" >"$W/cfg.json"
"$MOE" train --data "$W/d" --config "$W/cfg.json" --out "$W/run" --steps 2 --batch 2 --seq 16 \
  --save-every 1 --keep 2 --threads 1 >/dev/null 2>&1
cp "$W/run/step-00000001/trainer_state.json" "$OUT/trainer_state/step1.json"
cp "$W/run/step-00000002/trainer_state.json" "$OUT/trainer_state/step2.json"

fresh chat_template
for t in mistralai-Mixtral-8x7B-Instruct-v0.1 allenai-OLMoE-1B-7B-0924-Instruct Qwen-Qwen2.5-7B-Instruct \
  Qwen-Qwen3-0.6B google-gemma-2-2b-it microsoft-Phi-3.5-mini-instruct LFM2-8B-A1B Kimi-K2-Instruct \
  deepseek-ai-DeepSeek-V3.1 GLM-4.6 meetkai-functionary-medium-v3.1; do
  cp "$FIX/chat_templates/templates/$t.jinja" "$OUT/chat_template/$t.jinja"
done
{ cat "$FIX/chat_templates/templates/Qwen-Qwen3-0.6B.jinja"; printf '\0'; cat "$FIX/chat_templates/contexts/tool_calls.json"; } \
  >"$OUT/chat_template/qwen3_with_context"
{ printf '%s' "{% set ns = namespace(n=0) %}{% for k, v in d|dictsort if v is number %}{% set ns.n = ns.n + v %}{{ k ~ '=' ~ v|tojson }}{% endfor %}{{ ns.n }} {{ s[1:-1]|upper|replace('L', 'l') }} {{ xs|map('string')|join(',') }}"; \
  printf '\0'; cat "$FIX/chat_templates/contexts/units.json"; } >"$OUT/chat_template/features_with_context"
fresh serve_request
printf '%s' '{"prompt": "hello", "max_tokens": 8, "temperature": 0, "stop": ["\n", "END"], "stream": true, "logprobs": 2}' \
  >"$OUT/serve_request/completion.json"
printf '%s' '{"prompt": [1, 2, 3], "top_p": 0.9, "top_k": 40, "seed": -7, "n": 1, "echo": false}' \
  >"$OUT/serve_request/ids.json"
printf '%s' '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_completion_tokens": 9, "logprobs": true, "top_logprobs": 3, "tools": []}' \
  >"$OUT/serve_request/chat.json"
printf 'text with \303\251 and \342\202 and END\n\n' >"$OUT/serve_request/text.bin"

du -sh "$OUT"/*
