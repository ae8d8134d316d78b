#!/usr/bin/env python3
"""Random-weight MLA models in the DeepSeek layout, written in this project's MLA
directory format (docs/mla-format.md), with the Python standard library only.

They stand for what `convert --rope-mode extend` makes (one shared rope key, a NoPE
part, latent RMSNorm) and exercise every rewrite `export` makes on the way to the
DeepSeek formats: half-layout rope rows, a softmax scale that is not
1/sqrt(d_n + d_r), rms_norm_eps other than 1e-6, latent and rope-key biases,
explicit rope frequencies, Llama 3 rope scaling, q_lora, tied embeddings.

Usage: python3 tools/interop/random_mla_dir.py OUT_DIR   (writes OUT_DIR/<variant>/)
"""
import json
import math
import os
import random
import struct
import sys

VARIANTS = {
    # q_lora, half rope rows, eps 1e-5 (rescaled on export), scale 1/sqrt(d) of a
    # head of 16 (folded on export), latent / rope-key biases (attention_bias).
    "ds-qlora-half-bias": dict(q_lora=32, layout="half", eps=1e-5, scale=1 / math.sqrt(16), kv_bias=True,
                               tied=False, nope=16, rope=8, freqs=None, scaling=None, seed=11),
    # full-rank q, tied head, interleaved rows, llama3 rope scaling, DeepSeek's scale.
    "ds-fullq-tied-llama3": dict(q_lora=0, layout="interleaved", eps=1e-6, scale=1 / math.sqrt(24), kv_bias=False,
                                 tied=True, nope=16, rope=8, freqs=None,
                                 scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
                                 seed=12),
    # explicit frequencies: every 2nd one of a head of 16 from offset 1 (-> theta and
    # a linear factor), small NoPE part, q_lora.
    "ds-freqs-linear": dict(q_lora=24, layout="half", eps=1e-5, scale=1 / math.sqrt(16), kv_bias=False, tied=False,
                            nope=8, rope=8, freqs=[10000.0 ** (-2.0 * (2 * j + 1) / 16) for j in range(4)],
                            scaling=None, seed=13),
}

V, D, F, L, H, R, DV = 300, 64, 112, 2, 4, 24, 16


def write_safetensors(path, tensors):
    """tensors: list of (name, shape, list of floats) -> an F32 safetensors file."""
    header, blobs, offset = {}, [], 0
    for name, shape, values in tensors:
        n = 1
        for s in shape:
            n *= s
        assert len(values) == n, (name, shape, len(values))
        blob = struct.pack("<%df" % n, *values)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make(out, name, v):
    rng = random.Random(v["seed"])

    dn, dr, ql = v["nope"], v["rope"], v["q_lora"]
    qrows = H * (dn + dr)
    ts = []

    def add(tname, shape, sd, mean=0.0):
        n = 1
        for s in shape:
            n *= s
        ts.append((tname, tuple(shape), [rng.gauss(mean, sd) for _ in range(n)]))

    add("model.embed_tokens.weight", [V, D], 0.25)
    for i in range(L):
        p = f"model.layers.{i}."
        add(p + "input_layernorm.weight", [D], 0.1, 1.0)
        if ql:
            add(p + "self_attn.q_a_proj.weight", [ql, D], 1 / math.sqrt(D))
            add(p + "self_attn.q_a_layernorm.weight", [ql], 0.1, 1.0)
            add(p + "self_attn.q_b_proj.weight", [qrows, ql], 1 / math.sqrt(ql))
        else:
            add(p + "self_attn.q_proj.weight", [qrows, D], 1 / math.sqrt(D))
        add(p + "self_attn.kv_a_proj.weight", [R, D], 1 / math.sqrt(D))
        add(p + "self_attn.kv_a_layernorm.weight", [R], 0.1, 1.0)
        add(p + "self_attn.k_rope_proj.weight", [dr, D], 1 / math.sqrt(D))
        if v["kv_bias"]:
            add(p + "self_attn.kv_a_proj.bias", [R], 0.1)
            add(p + "self_attn.k_rope_proj.bias", [dr], 0.1)
        add(p + "self_attn.k_up_proj.weight", [H * dn, R], 1 / math.sqrt(R))
        add(p + "self_attn.v_up_proj.weight", [H * DV, R], 1 / math.sqrt(R))
        add(p + "self_attn.o_proj.weight", [D, H * DV], 1 / math.sqrt(H * DV))
        add(p + "post_attention_layernorm.weight", [D], 0.1, 1.0)
        add(p + "mlp.gate_proj.weight", [F, D], 1 / math.sqrt(D))
        add(p + "mlp.up_proj.weight", [F, D], 1 / math.sqrt(D))
        add(p + "mlp.down_proj.weight", [D, F], 1 / math.sqrt(F))
    add("model.norm.weight", [D], 0.1, 1.0)
    if not v["tied"]:
        add("lm_head.weight", [V, D], 1 / math.sqrt(D))

    mla = {"rope_mode": "extend", "kv_lora_rank": R, "qk_nope_head_dim": dn, "qk_rope_head_dim": dr,
           "num_rope_heads": 1, "v_head_dim": DV, "q_lora_rank": ql, "q_rope_in_dim": 0, "latent_norm": True,
           "absorbed": False, "softmax_scale": v["scale"], "rope_layout": v["layout"]}
    if v["freqs"]:
        mla["rope_inv_freq"] = v["freqs"]
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D,
              "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": 2,
              "head_dim": 16, "rms_norm_eps": v["eps"], "rope_theta": 10000.0, "rope_scaling": v["scaling"],
              "max_position_embeddings": 512, "tie_word_embeddings": v["tied"], "vocab_size": V,
              "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "torch_dtype": "float32",
              "mla": mla, "mla_retrofit": {"format_version": 1, "converted_from": {"path": "interop " + name}}}
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), ts)
    return d


def make_all(out):
    return {name: make(out, name, v) for name, v in VARIANTS.items()}


if __name__ == "__main__":
    for n, d in make_all(sys.argv[1]).items():
        print(n, d)
