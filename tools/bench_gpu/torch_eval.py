#!/usr/bin/env python3
"""Perplexity tokens/s of transformers on the GPU: the baseline a user has for
`mla-retrofit eval --device cuda` (docs/benchmarks-gpu.md). Same protocol as our eval
(runtime/perplexity.h): the text's ids (no BOS) cut into windows of ctx-1 tokens, each run
as [BOS, t_1 .. t_{k-1}] from an empty cache and scored against t_1 .. t_k; bf16 weights,
SDPA attention, log-softmax in fp32. Prints the perplexity too: with the same ids it must
agree with ours to bf16 rounding (a check that both ran the same work).

  python3 torch_eval.py MODEL_DIR --text FILE --ctx 2048 [--max-tokens N] [--batch 1] [--json FILE]
"""
import argparse, json, math, time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--text", required=True)
    p.add_argument("--ctx", type=int, default=2048)
    p.add_argument("--max-tokens", type=int, default=0, help="score only the first N ids (0 = all)")
    p.add_argument("--batch", type=int, default=1, help="windows per forward call (full windows only)")
    p.add_argument("--json")
    a = p.parse_args()
    tok = AutoTokenizer.from_pretrained(a.model)
    ids = tok(open(a.text, encoding="utf-8").read(), add_special_tokens=False)["input_ids"]
    if a.max_tokens > 0:
        ids = ids[: a.max_tokens]
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    bos = model.config.bos_token_id
    w = a.ctx - 1
    wins = [ids[i: i + w] for i in range(0, len(ids), w)]

    def run(group):
        x = torch.tensor([[bos] + g[:-1] for g in group], device="cuda")
        y = torch.tensor(group, device="cuda")
        logits = model(x).logits.float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")

    with torch.no_grad():
        run([wins[0][: min(len(wins[0]), 64)]])  # warm-up (kernels, allocator)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        nll, n, i = 0.0, 0, 0
        while i < len(wins):
            group = [wins[i]]
            while len(group) < a.batch and i + len(group) < len(wins) and len(wins[i + len(group)]) == len(wins[i]):
                group.append(wins[i + len(group)])
            nll += run(group).item()  # .item() synchronises
            n += sum(len(g) for g in group)
            i += len(group)
        dt = time.perf_counter() - t0
    res = {"model": a.model, "ctx": a.ctx, "batch": a.batch, "tokens_scored": n, "windows": len(wins),
           "perplexity": math.exp(nll / n), "seconds": dt, "tokens_per_s": n / dt,
           "device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30}
    print(f"transformers eval {a.model}: perplexity {res['perplexity']:.4f} over {n} tokens ({len(wins)} windows of "
          f"<= {a.ctx}, batch {a.batch}), {res['tokens_per_s']:.0f} tokens/s, {res['device']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
