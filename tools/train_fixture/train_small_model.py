#!/usr/bin/env python3
"""Train a small Qwen2- or Qwen3-shaped model from scratch on the shared English text.

Runs on the GPU machine (torch + transformers). The models it writes are measurement
fixtures for conversions (query bias of Qwen2, key norm of Qwen3): random weights say
nothing about the mean directions and norms a trained attention has. They are not kept in
the repository; docs/serving.md says where the measured copies live and how to remake them.

  python3 train_small_model.py --arch qwen2 --data DATA_DIR --tokenizer TOKENIZER_DIR --out OUT

Training text: tinystories-calib.txt and WikiText-2 test from character 200,000 on (the
first 200,000 characters are the evaluation text of docs/compression.md and are not seen).
"""
import argparse, json, math, os, shutil, time

import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

EVAL_CHARS = 200_000


def build(arch, vocab, args):
    common = dict(vocab_size=vocab, hidden_size=args.hidden, intermediate_size=args.ffn,
                  num_hidden_layers=args.layers, num_attention_heads=args.heads,
                  num_key_value_heads=args.kv_heads, head_dim=64, max_position_embeddings=2048,
                  rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                  bos_token_id=0, eos_token_id=1)
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**common))
    return Qwen3ForCausalLM(Qwen3Config(attention_bias=False, **common))


def windows(ids, ctx):
    n = (len(ids) - 1) // ctx
    t = torch.tensor(ids[: n * ctx + 1])
    return torch.stack([t[i * ctx: i * ctx + ctx + 1] for i in range(n)])


@torch.no_grad()
def perplexity(model, ids, ctx, dev):
    w = windows(ids, ctx).to(dev)
    nll, count = 0.0, 0
    for b in range(0, len(w), 64):
        x = w[b:b + 64]
        logits = model(x[:, :-1]).logits.float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="sum")
        nll += loss.item(); count += x[:, 1:].numel()
    return math.exp(nll / count)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["qwen2", "qwen3"], required=True)
    p.add_argument("--data", required=True, help="folder holding text/tinystories-calib.txt and text/wikitext2-test.raw")
    p.add_argument("--tokenizer", required=True, help="HF folder with tokenizer.json (llama3ish's byte-level BPE)")
    p.add_argument("--out", required=True)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=1024)
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    # 400 updates of 32 x 256 tokens are about 6 passes over the 0.52 M training tokens; 3000 (the old
    # default) memorised the text (training loss 0.0085, WikiText-2 2277: docs/query-bias.md).
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1234)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    dev = "cuda"
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    calib = open(os.path.join(args.data, "text/tinystories-calib.txt"), encoding="utf-8").read()
    wiki = open(os.path.join(args.data, "text/wikitext2-test.raw"), encoding="utf-8").read()
    train_ids = tok(calib + "\n" + wiki[EVAL_CHARS:])["input_ids"]
    eval_ids = tok(wiki[:EVAL_CHARS])["input_ids"]
    data = windows(train_ids, args.ctx)
    print(f"{args.arch}: {len(train_ids)} training tokens, {len(data)} windows; eval {len(eval_ids)} tokens", flush=True)
    model = build(args.arch, len(tok), args).to(dev)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"parameters: {nparams}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warm = args.steps // 20
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        idx = torch.randint(0, len(data), (args.batch,), generator=g)
        x = data[idx].to(dev)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step()
        if step % 500 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    model = model.to(torch.bfloat16)
    ppl = perplexity(model.float(), eval_ids, args.ctx, dev)
    print(f"{args.arch}: WikiText-2 first {EVAL_CHARS} chars, ctx {args.ctx}: ppl {ppl:.4f} (bf16 weights, f32 compute)", flush=True)
    model = model.to(torch.bfloat16)
    model.save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump({"arch": args.arch, "args": vars(args), "train_tokens": len(train_ids), "parameters": nparams,
                   "wikitext_ppl_transformers": ppl, "seconds": time.time() - t0}, f, indent=1)


if __name__ == "__main__":
    main()
