#!/usr/bin/env python3
"""Qwen3 (dense) against transformers: our runtime and our exact repeat conversion.

Runs where transformers (with Qwen3, >= 4.51) and torch are installed (the GPU machine).
For each small random-weight Qwen3ForCausalLM built here with save_pretrained (fp32):
  qwen3       head_dim 32 != hidden 64 / 4 heads, 2 kv heads, tied embeddings, no biases;
  qwen3-bias  attention_bias (q/k/v biases before the norms; o_proj bias zeroed, the only
              one our reader accepts), separate lm_head, 4 kv heads of 16;
it compares, on a few dozen token ids, with f32 KV caches:
  a. `mla-retrofit logits` of the HF directory             vs transformers (<= 1e-4);
  b. `mla-retrofit convert --rope-mode repeat` of it, then `logits` of the MLA directory
     vs transformers (<= 1e-4): the per-head q_norm / k_norm carried into the MLA layer;
  c. `convert --absorb` and `export` of the MLA directory are refused, naming the norms.

Usage: python3 tools/interop/check_qwen3.py --cli build-interop/bin/mla-retrofit --out OUTDIR
Prints a table, writes OUTDIR/qwen3.json, exits 1 if any check fails.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch
import transformers

TOL = 1e-4


def run(cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{r.stderr}")
    return r


def our_logits(cli, model, ids, out_dir):
    out = os.path.join(out_dir, os.path.basename(os.path.normpath(model)) + ".logits.npy")  # one file per model
    run([cli, "logits", model, "--ids", ",".join(map(str, ids)), "--out", out, "--kv-dtype", "f32", "--force"])
    return np.load(out)


def hf_logits(path, ids):
    m = transformers.Qwen3ForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    m.eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].float().numpy()


def build(name, out):
    torch.manual_seed(13 if name == "qwen3" else 14)
    common = dict(vocab_size=300, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
                  max_position_embeddings=512, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2,
                  rope_theta=1000000.0)
    if name == "qwen3":
        cfg = transformers.Qwen3Config(num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                       tie_word_embeddings=True, attention_bias=False, **common)
    else:
        cfg = transformers.Qwen3Config(num_attention_heads=8, num_key_value_heads=4, head_dim=16,
                                       tie_word_embeddings=False, attention_bias=True, **common)
    m = transformers.Qwen3ForCausalLM(cfg)
    # Larger-than-default weights so the logits are not all near zero; the q/k norms get
    # weights away from 1 so that they matter.
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1 and "norm" in n:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif "o_proj.bias" in n:
                p.zero_()
            elif "bias" in n:
                p.copy_(0.3 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    path = os.path.join(out, name)
    m.save_pretrained(path, safe_serialization=True)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    ids = [1, 17, 250, 3, 99, 42, 7, 180, 64, 5, 2, 33, 120, 77, 8, 290] + [(i * 37 + 11) % 300 for i in range(48)]
    rows = []

    def row(check, model, diff, note=""):
        ok = bool(diff <= TOL)
        rows.append({"check": check, "model": model, "max_abs_diff": float(diff), "ok": ok, "note": note})
        print(f"{check:<40} {model:<12} {diff:12.3e}  {'ok' if ok else 'FAIL'} {note}", flush=True)

    def refused(check, model, r, needle):
        ok = r.returncode == 1 and needle in r.stderr
        rows.append({"check": check, "model": model, "max_abs_diff": 0.0 if ok else 1.0, "ok": ok,
                     "note": r.stderr.strip()[:200]})
        print(f"{check:<40} {model:<12} {'refused' if ok else 'NOT REFUSED'}  {r.stderr.strip()[:120]}", flush=True)

    for name in ["qwen3", "qwen3-bias"]:
        path = build(name, args.out)
        ref = hf_logits(path, ids)
        row("a. runtime vs Qwen3ForCausalLM", name, np.abs(our_logits(args.cli, path, ids, args.out) - ref).max(),
            f"{len(ids)} tokens, |logit| <= {np.abs(ref).max():.2f}")
        mla = os.path.join(args.out, name + "-repeat")
        run([args.cli, "convert", path, "--rope-mode", "repeat", "--out", mla, "--force", "-q"])
        row("b. repeat conversion vs Qwen3ForCausalLM", name, np.abs(our_logits(args.cli, mla, ids, args.out) - ref).max())
        refused("c. convert --absorb refused", name,
                run([args.cli, "convert", path, "--rope-mode", "repeat", "--absorb", "--out", mla + "-abs", "--force",
                     "-q"], check=False), "q_norm")
        refused("c. export refused", name,
                run([args.cli, "export", mla, "--format", "deepseek-v3", "--out", mla + "-ds", "--force"],
                    check=False), "key norm")

    with open(os.path.join(args.out, "qwen3.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "tolerance": TOL,
                   "rows": rows}, f, indent=2)
    bad = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(bad)} passed, {len(bad)} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
