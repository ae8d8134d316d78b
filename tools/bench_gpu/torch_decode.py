#!/usr/bin/env python3
"""Decode tokens/s of transformers' LlamaForCausalLM on the GPU: the baseline a user has
for bench_cuda_decode (docs/benchmarks-gpu.md). Same shape (Llama-3-8B: hidden 4096,
32/8 heads of 128, FFN 14336, vocab 128256, tied head, --layers of its 32), random bf16
weights, SDPA attention, a static cache of bf16. Each context is reached by decoding at
cache position ctx over a zero-filled static cache (as bench_cuda_decode's
advance_zero), then --decode steps are timed (synchronised, logits of the step computed).

  python3 torch_decode.py [--layers 4] [--contexts 1024,32768] [--decode 32] [--compile] [--json FILE]
"""
import argparse, json, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, StaticCache


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--contexts", default="1024,32768")
    p.add_argument("--decode", type=int, default=32)
    p.add_argument("--compile", action="store_true", help="torch.compile(mode='reduce-overhead') the step")
    p.add_argument("--json")
    a = p.parse_args()
    ctxs = [int(x) for x in a.contexts.split(",")]
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=a.layers, num_attention_heads=32,
                      num_key_value_heads=8, head_dim=128, vocab_size=128256, max_position_embeddings=max(ctxs) + a.decode + 8,
                      rope_theta=500000.0, tie_word_embeddings=True, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    rows = []
    name = torch.cuda.get_device_name()
    for ctx in ctxs:
        cache = StaticCache(config=cfg, max_batch_size=1, max_cache_len=ctx + a.decode + 2, device="cuda",
                            dtype=torch.bfloat16)
        tok = torch.ones((1, 1), dtype=torch.long, device="cuda")

        def step(pos):
            cp = torch.tensor([pos], device="cuda")
            return model(tok, past_key_values=cache, cache_position=cp, use_cache=True).logits

        fn = torch.compile(step, mode="reduce-overhead") if a.compile else step
        with torch.no_grad():
            for w in range(3):
                fn(ctx + w)
            torch.cuda.synchronize()
            t = time.perf_counter()
            for i in range(a.decode):
                logits = fn(ctx + 3 + i)
                logits.float().cpu()
            torch.cuda.synchronize()
            secs = time.perf_counter() - t
        tps = a.decode / secs
        rows.append({"context": ctx, "layers": a.layers, "tokens_per_s": tps, "compile": a.compile})
        print(f"torch {'compiled' if a.compile else 'eager'} llama3-8b shape, {a.layers} layers, ctx {ctx}: {tps:.1f} tok/s ({name})", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bench": "torch_decode", "device": name, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
