#!/usr/bin/env python3
"""Throughput of the trainer on one GPU for a Llama-3.2-1B-shaped model converted at 25% of the KV cache.

  PYTHONPATH=python python3 -m mlar_train.bench [--mode e2e|layerwise] [--batch 16 --seq 2048 --micro-batch 2]
      [--steps 12] [--kv-lora-rank 192 --qk-rope-dim 64] [--json OUT.json]

Random weights (throughput does not depend on them), built on the GPU: the teacher is a LlamaForCausalLM of
Llama-3.2-1B's shape (16 layers, D 2048, F 8192, 32 heads, 8 kv heads of 64, vocab 128256, tied embeddings,
llama3 RoPE scaling); the student is the DeepseekV3ForCausalLM of its 25% conversion: per layer
2 x 8 x 64 = 1024 cached values -> 256 = kv_lora_rank 192 + qk_rope_head_dim 64 (qk_nope 64, v 64, full-rank
q, all layers dense), the shape `mla-retrofit convert --kv-budget 0.25` then `export` writes. The same Trainer
as the CLI runs --steps updates (bf16 autocast, fp32 master weights, AdamW, --train attn, e2e with KL to the
teacher); the first 2 are warm-up and not counted.

Reported: tokens/s (global batch tokens / step time, median), peak GPU memory, and model FLOP utilisation =
model FLOPs / time / peak bf16 dense FLOP/s (H100 / H200 SXM: 989.4 TFLOP/s; --peak-tflops otherwise).
Model FLOPs per token (T = tokens, S = sequence, causal attention counted at half):
  e2e:       student forward 2 N_s + input-gradient backward 2 N_s + weight gradients 2 N_train,
             attention 3 x (2 x S/2 x H x (d_qk + d_v)) per layer, teacher forward 2 N_t + its attention;
  layerwise: teacher forward (as above) + the student's attention blocks: 2 N_a forward,
             2 N_a + 2 N_train backward, their attention 3x;
where N counts matmul weights (embedding lookup excluded, the output head included).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12}


def shapes(a):
    import transformers
    common = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                  num_attention_heads=32, max_position_embeddings=131072, rms_norm_eps=1e-5, bos_token_id=128000,
                  eos_token_id=128001, tie_word_embeddings=True, hidden_act="silu")
    rope = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}
    tcfg = transformers.LlamaConfig(num_key_value_heads=8, head_dim=64, rope_theta=500000.0, rope_scaling=rope,
                                    **common)
    scfg = transformers.DeepseekV3Config(
        num_key_value_heads=32, kv_lora_rank=a.kv_lora_rank, q_lora_rank=None, qk_nope_head_dim=a.qk_nope_dim,
        qk_rope_head_dim=a.qk_rope_dim, v_head_dim=a.v_head_dim, first_k_dense_replace=16, n_routed_experts=0,
        n_shared_experts=0, num_experts_per_tok=0, n_group=1, topk_group=1, moe_intermediate_size=8192,
        rope_theta=500000.0, rope_scaling=rope, rope_interleave=True, attention_bias=False,
        **{**common, "rms_norm_eps": 1e-6})
    for c in (tcfg, scfg):
        c._attn_implementation = "sdpa"
    return tcfg, scfg


def build(cls, cfg, dtype, device):
    import torch
    with torch.device(device):
        m = cls(cfg)
    return m.to(dtype)


def matmul_params(model):
    n = 0
    for name, p in model.named_parameters():
        if p.dim() == 2 and "embed_tokens" not in name:
            n += p.numel()
    if model.config.tie_word_embeddings:
        n += model.get_input_embeddings().weight.numel()  # the head is a matmul
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["e2e", "layerwise"], default="e2e")
    ap.add_argument("--train", choices=["attn", "all"], default="attn")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--micro-batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--grad-checkpointing", action="store_true")
    ap.add_argument("--kv-lora-rank", type=int, default=192)
    ap.add_argument("--qk-rope-dim", type=int, default=64)
    ap.add_argument("--qk-nope-dim", type=int, default=64)
    ap.add_argument("--v-head-dim", type=int, default=64)
    ap.add_argument("--peak-tflops", type=float, default=0.0)
    ap.add_argument("--json")
    b = ap.parse_args()
    import torch
    import transformers
    from .cli import parse
    from .train import Env, Trainer
    env = Env(None)
    tcfg, scfg = shapes(b)
    teacher = build(transformers.LlamaForCausalLM, tcfg, torch.bfloat16, env.device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = build(transformers.DeepseekV3ForCausalLM, scfg, torch.float32, env.device)
    student.config.use_cache = False
    with tempfile.TemporaryDirectory() as d:
        argv = ["random-student", "--ids", "random", "--out", d, "--teacher", "random-teacher", "--mode", b.mode,
                "--train", b.train, "--steps", str(b.steps), "--lr", "1e-4", "--batch", str(b.batch), "--seq",
                str(b.seq), "--micro-batch", str(b.micro_batch), "--warmup", "2", "--progress-every", "1"]
        if b.mode == "e2e":
            argv += ["--kl-weight", "1"]
        if b.grad_checkpointing:
            argv.append("--grad-checkpointing")
        a = parse(argv)
        a.no_checkpoints = True
        tr = Trainer(a, env, student=student, teacher=teacher)
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, scfg.vocab_size, (b.batch * b.seq * 4,), generator=g).tolist()
        log = os.path.join(d, "log.jsonl")
        tr.run(ids, d, log)
        with open(log, encoding="utf-8") as f:
            recs = [json.loads(x) for x in f if x.strip()]
    times = [r["seconds"] for r in recs[2:]] or [r["seconds"] for r in recs]
    dt = statistics.median(times)
    T = b.batch * b.seq
    n_s, n_t = matmul_params(student), matmul_params(teacher)
    n_train = sum(p.numel() for n, p in tr.params if p.dim() == 2)
    n_attn = sum(p.numel() for n, p in student.named_parameters() if ".self_attn." in n and p.dim() == 2)
    L, H, S = scfg.num_hidden_layers, scfg.num_attention_heads, b.seq
    d_qk = scfg.qk_nope_head_dim + scfg.qk_rope_head_dim
    attn_s = L * 2 * (S / 2) * H * (d_qk + scfg.v_head_dim)  # per token, forward
    attn_t = L * 2 * (S / 2) * tcfg.num_attention_heads * (2 * tcfg.head_dim)
    if b.mode == "e2e":
        per_tok = 2 * n_s + 2 * n_s + 2 * n_train + 3 * attn_s + 2 * n_t + attn_t
    else:
        t_no_head = n_t - tcfg.vocab_size * tcfg.hidden_size  # the layerwise teacher stops before the head
        per_tok = 2 * t_no_head + attn_t + 2 * n_attn + 2 * n_attn + 2 * n_train + 3 * attn_s
    name = torch.cuda.get_device_name(env.device) if env.device.type == "cuda" else "cpu"
    peak = b.peak_tflops * 1e12 or next((v for k, v in PEAK_BF16.items() if k in name), 0.0)
    flops = per_tok * T / dt
    res = {"device": name, "torch": torch.__version__, "transformers": transformers.__version__,
           "mode": b.mode, "train": b.train, "batch": b.batch, "seq": b.seq, "micro_batch": b.micro_batch,
           "grad_checkpointing": b.grad_checkpointing, "kv_lora_rank": scfg.kv_lora_rank,
           "qk_rope_head_dim": scfg.qk_rope_head_dim, "student_matmul_params": n_s, "teacher_matmul_params": n_t,
           "trained_params": sum(p.numel() for _, p in tr.params), "step_seconds_median": dt,
           "tokens_per_s": T / dt, "model_tflops_per_s": flops / 1e12,
           "mfu": flops / peak if peak else None, "peak_tflops": peak / 1e12 if peak else None,
           "max_memory_gib": max(r.get("max_memory_gib", 0) for r in recs), "steps": len(recs),
           "first_loss": recs[0]["loss"], "last_loss": recs[-1]["loss"]}
    print(json.dumps(res, indent=2))
    if b.json:
        with open(b.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
