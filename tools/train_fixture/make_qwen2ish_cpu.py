#!/usr/bin/env python3
"""A random-init Qwen2-shaped (or, with --qwen3, Qwen3-shaped: q/k norms, no biases) HF
directory (F32 safetensors; standard library only), for training from scratch with the CPU
trainer when no GPU is lent (docs/query-bias.md, docs/serving.md):
  python3 make_qwen2ish_cpu.py OUT_DIR TOKENIZER_DIR [--qwen3]   (TOKENIZER_DIR: ../shared/data/models/llama3ish)
"""
import json, os, random, struct, shutil, sys, array
out, src = sys.argv[1], sys.argv[2]
qwen3 = "--qwen3" in sys.argv[3:]
os.makedirs(out, exist_ok=True)
H, L, NH, NKV, HD, I, V = 256, 4, 4, 2, 64, 704, 4096
cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": H, "num_hidden_layers": L,
       "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": HD, "intermediate_size": I,
       "vocab_size": V, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
       "max_position_embeddings": 2048, "bos_token_id": 0, "eos_token_id": 1, "hidden_act": "silu",
       "attention_dropout": 0.0, "initializer_range": 0.02, "use_sliding_window": False, "sliding_window": None,
       "max_window_layers": L, "torch_dtype": "float32", "use_cache": True}
if qwen3:
    cfg.update({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "attention_bias": False})
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)

for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
    shutil.copy(os.path.join(src, f), out)
rng = random.Random(1)
def normal(shape):
    n = 1
    for s in shape: n *= s
    return array.array("f", (rng.gauss(0.0, 0.02) for _ in range(n)))
def ones(n): return array.array("f", [1.0] * n)
tensors = [("model.embed_tokens.weight", [V, H], normal([V, H]))]
for l in range(L):
    p = f"model.layers.{l}."
    tensors += [(p + "input_layernorm.weight", [H], ones(H)),
                (p + "self_attn.q_proj.weight", [NH * HD, H], normal([NH * HD, H]))]
    if not qwen3: tensors += [(p + "self_attn.q_proj.bias", [NH * HD], normal([NH * HD]))]
    tensors += [(p + "self_attn.k_proj.weight", [NKV * HD, H], normal([NKV * HD, H]))]
    if not qwen3: tensors += [(p + "self_attn.k_proj.bias", [NKV * HD], normal([NKV * HD]))]
    tensors += [(p + "self_attn.v_proj.weight", [NKV * HD, H], normal([NKV * HD, H]))]
    if not qwen3: tensors += [(p + "self_attn.v_proj.bias", [NKV * HD], normal([NKV * HD]))]
    if qwen3: tensors += [(p + "self_attn.q_norm.weight", [HD], ones(HD)), (p + "self_attn.k_norm.weight", [HD], ones(HD))]
    tensors += [
        (p + "self_attn.o_proj.weight", [H, NH * HD], normal([H, NH * HD])),
        (p + "post_attention_layernorm.weight", [H], ones(H)),
        (p + "mlp.gate_proj.weight", [I, H], normal([I, H])),
        (p + "mlp.up_proj.weight", [I, H], normal([I, H])),
        (p + "mlp.down_proj.weight", [H, I], normal([H, I])),
    ]
tensors.append(("model.norm.weight", [H], ones(H)))
header, off = {}, 0
for name, shape, data in tensors:
    nb = len(data) * 4
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + nb]}
    off += nb
header["__metadata__"] = {"format": "pt"}
hb = json.dumps(header).encode()
hb += b" " * ((8 - len(hb) % 8) % 8)
tmp = os.path.join(out, "model.safetensors.tmp")
with open(tmp, "wb") as f:
    f.write(struct.pack("<Q", len(hb))); f.write(hb)
    for _, _, data in tensors:
        if sys.byteorder != "little": data.byteswap()
        data.tofile(f)
os.replace(tmp, os.path.join(out, "model.safetensors"))
print("wrote", out, off, "bytes")
