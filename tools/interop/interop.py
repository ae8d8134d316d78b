#!/usr/bin/env python3
"""Checks mla-retrofit's files and runtime against Hugging Face transformers.

Runs where transformers and torch are installed (the GPU machine). Steps:
  a. build small random-weight HF fixtures with save_pretrained: llama (llama3 rope
     scaling, explicit head_dim), qwen2 (q/k/v biases, tied embeddings), mistral, qwen3
     (per-head q/k norms; tools/interop/check_qwen3.py checks Qwen3 and its conversion further);
  b. our runtime's logits on those fixtures == transformers' (fp32, <= 1e-4);
  c. DeepSeek-V3 exports (`mla-retrofit export --format deepseek-v3`) of random
     DeepSeek-layout MLA models (tools/interop/random_mla_dir.py: q_lora, biases,
     half rows, eps 1e-5, llama3 scaling, explicit frequencies, tied head) and of
     stories260K converted with --rope-mode extend load with DeepseekV3ForCausalLM
     (no remote code) and give `mla-retrofit logits` of the model exported;
  d. the stories260K directory written by `mla-retrofit import` loads with
     LlamaForCausalLM (and its tokenizer with AutoTokenizer) and gives our logits.

Usage: python3 tools/interop/interop.py --cli build/bin/mla-retrofit --data ../shared/data --out OUTDIR
       [--qwen2 DIR] [--qwen3 DIR] [--trained-only]   (trained models: their exports at 50% and 25%)
Prints a table and writes OUTDIR/interop.json.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

TOL = 1e-4
# Logits compared over hundreds of tokens of a model with |logit| up to ~25 differ by f32
# summation order alone by more than 1e-4 absolute (8 ulp at 22 is 1.5e-5 each step); the bound
# is 1e-4 or 5e-6 of the largest |logit|, whichever is larger.
TOL_REL = 5e-6


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{r.stderr}")
    return r.stdout


def our_logits(cli, model, ids, extra=()):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "l.npy")
        run([cli, "logits", model, "--ids", ",".join(map(str, ids)), "--out", out, "--kv-dtype", "f32", *extra])
        return np.load(out)


def hf_logits(path, ids, cls=AutoModelForCausalLM):
    m = cls.from_pretrained(path, torch_dtype=torch.float32)
    m.eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].float().numpy()


def fixture(family, out):
    torch.manual_seed({"llama": 1, "qwen2": 2, "mistral": 3, "qwen3": 4}[family])
    common = dict(vocab_size=300, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
                  max_position_embeddings=512, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)
    if family == "llama":
        cfg = transformers.LlamaConfig(num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                       rope_theta=500000.0,
                                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                     "high_freq_factor": 4.0,
                                                     "original_max_position_embeddings": 64},
                                       **common)
        m = transformers.LlamaForCausalLM(cfg)
    elif family == "qwen2":
        cfg = transformers.Qwen2Config(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                                       rope_theta=1000000.0, **common)
        m = transformers.Qwen2ForCausalLM(cfg)
    elif family == "qwen3":  # per-head q_norm / k_norm, head_dim 32 != 64 / 4
        cfg = transformers.Qwen3Config(num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                       tie_word_embeddings=True, rope_theta=1000000.0, **common)
        m = transformers.Qwen3ForCausalLM(cfg)
    else:
        cfg = transformers.MistralConfig(num_attention_heads=8, num_key_value_heads=2, sliding_window=None, **common)
        m = transformers.MistralForCausalLM(cfg)
    # Larger-than-default weights so the logits are not all near zero.
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1 and "norm" in n:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif "bias" in n:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    path = os.path.join(out, family)
    m.save_pretrained(path, safe_serialization=True)
    return path


def deepseek_logits(path, ids):
    """transformers' DeepseekV3ForCausalLM (no remote code) on `ids`, and what loading reported."""
    cls = transformers.DeepseekV3ForCausalLM
    try:
        m, info = cls.from_pretrained(path, torch_dtype=torch.float32, output_loading_info=True)
    except TypeError:  # a transformers without output_loading_info
        m, info = cls.from_pretrained(path, torch_dtype=torch.float32), {}
    m.eval()
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].float().numpy(), bad


def failed_row(rows, check, model, err):
    msg = str(err).strip().splitlines()
    note = (msg[-1] if msg else repr(err))[:300]
    rows.append({"check": check, "model": model, "max_abs_diff": float("nan"), "ok": False, "note": note})
    print(f"{check:<34} {model:<28} {'ERROR':>12}  FAIL {note}", flush=True)


def trained_exports(args, rows, calib, text):
    """Trained models converted in the forms that export, at 50% and 25%: a Qwen2 (--qwen2 DIR, q/k/v biases)
    with its query bias folded (issue 17, docs/query-bias.md), a Qwen3 (--qwen3 DIR, per-head q/k norms) with
    the norms' per-token scales calibrated (docs/serving.md). Returns (name, MLA dir, export dir, ids) rows."""
    trained = []
    if args.qwen2:
        trained.append(("qwen2", args.qwen2, ["--query-bias", "fold"], "qbias-fold"))
    if args.qwen3:
        trained.append(("qwen3", args.qwen3, [], "qknorm-calibrated"))  # --target implies --qk-norm calibrated
    models = []
    for fam, src, extra, tag in trained:
        for b in ("0.5", "0.25"):
            name = f"{fam}-extend-{b}-{tag}"
            mla_dir = os.path.join(args.out, "c-mla", name)
            ds = os.path.join(args.out, "c-export", name)
            try:
                print(run([args.cli, "convert", src, "--rope-mode", "extend", "--calib", calib, "--calib-tokens",
                           "20000", "--kv-budget", b, "--target", "transformers", *extra, "--out", mla_dir,
                           "--format", "deepseek-v3", "--export-out", ds, "--force", "-q"]), end="")
                qids = [int(x) for x in run([args.cli, "tokenize", ds, "--string", text[:3000]]).split()]
                models.append((name, mla_dir, ds, qids[:256]))
            except Exception as e:  # noqa: BLE001
                failed_row(rows, "c. convert extend + export", name, e)
    return models


def part_c(args, rows, ids, text):
    """c. `export --format deepseek-v3` of our DeepSeek-layout models, loaded by
    DeepseekV3ForCausalLM, against `mla-retrofit logits` of the model exported."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import random_mla_dir  # stdlib-only writer of our MLA directory format

    models = []  # (name, our MLA dir, export dir, ids)
    src = os.path.join(args.out, "c-mla")
    os.makedirs(os.path.join(args.out, "c-export"), exist_ok=True)
    for name, mla_dir in random_mla_dir.make_all(src).items():
        ds = os.path.join(args.out, "c-export", name)
        try:
            print(run([args.cli, "export", mla_dir, "--format", "deepseek-v3", "--out", ds, "--force"]), end="")
            models.append((name, mla_dir, ds, ids + [(i * 37 + 11) % 300 for i in range(48)]))
        except Exception as e:  # noqa: BLE001 - record and go on
            failed_row(rows, "c. export", name, e)

    # stories260K converted with --rope-mode extend (calibrated latent norm) and exported in the same run.
    st = os.path.join(args.data, "models", "stories260K")
    calib = os.path.join(args.data, "text", "tinystories-calib.txt")
    if not os.path.exists(calib):  # the calibration text only shapes the conversion; any text will do here
        calib = os.path.join(args.data, "text", "tinystories-dev.txt")
    for name, extra in [("stories260K-extend", ["--kv-budget", "0.5"]),
                        ("stories260K-extend-r16-rope4", ["--kv-lora-rank", "16", "--qk-rope-dim", "4"])]:
        mla_dir = os.path.join(args.out, "c-mla", name)
        ds = os.path.join(args.out, "c-export", name)
        try:
            print(run([args.cli, "convert", os.path.join(st, "stories260K.bin"), "--tokenizer",
                       os.path.join(st, "tok512.model"), "--rope-mode", "extend", "--calib", calib,
                       "--calib-tokens", "20000", "--latent-norm", "calibrated", *extra, "--out", mla_dir,
                       "--format", "deepseek-v3", "--export-out", ds, "--force", "-q"]), end="")
        except Exception as e:  # noqa: BLE001
            failed_row(rows, "c. convert extend + export", name, e)
            continue
        ours = [int(x) for x in run([args.cli, "tokenize", ds, "--string", text[:5000]]).split()]
        try:
            tok = AutoTokenizer.from_pretrained(ds)
            theirs = tok(text[:5000], add_special_tokens=False)["input_ids"]
            rows.append({"check": "c. tokenizer ids (5000 chars)", "model": name, "ok": ours == theirs,
                         "max_abs_diff": 0.0 if ours == theirs else 1.0, "note": f"{len(ours)} ids"})
            print(f"{'c. tokenizer ids (5000 chars)':<34} {name:<28} {'same' if ours == theirs else 'DIFFERENT'}")
        except Exception as e:  # noqa: BLE001
            failed_row(rows, "c. tokenizer ids (5000 chars)", name, e)
        models.append((name, mla_dir, ds, [1] + ours[:255]))  # BOS of tok512 is 1

    models += trained_exports(args, rows, calib, text)

    check_exports(args, rows, models)


def check_exports(args, rows, models):
    """Each export loaded by DeepseekV3ForCausalLM against our runtime on the model before export, and the
    export reloaded by us."""
    for name, mla_dir, ds, mids in models:
        try:
            ref = our_logits(args.cli, mla_dir, mids)  # the runtime on the model before export
            hf, bad = deepseek_logits(ds, mids)
            row(rows, "c. DeepseekV3ForCausalLM vs ours", name, np.abs(ref - hf).max(),
                f"{len(mids)} tokens, |logit| <= {np.abs(ref).max():.2f}" + (f", loading: {bad}" if bad else ""),
                scale=float(np.abs(ref).max()))
            row(rows, "c. export reloaded vs runtime", name, np.abs(ref - our_logits(args.cli, ds, mids)).max())
        except Exception as e:  # noqa: BLE001
            failed_row(rows, "c. DeepseekV3ForCausalLM vs ours", name, e)


def row(rows, check, model, diff, extra="", scale=0.0):
    ok = diff <= max(TOL, TOL_REL * scale)
    rows.append({"check": check, "model": model, "max_abs_diff": float(diff), "ok": bool(ok), "note": extra})
    print(f"{check:<34} {model:<28} {diff:12.3e}  {'ok' if ok else 'FAIL'} {extra}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--data", required=True, help="the shared data directory (models/stories260K, text/)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--qwen2", help="a trained Qwen2 HF directory (with tokenizer) for the query-bias export check")
    ap.add_argument("--qwen3", help="a trained Qwen3 HF directory (with tokenizer) for the q/k-norm export check")
    ap.add_argument("--trained-only", action="store_true",
                    help="only the trained models' exports (--qwen2, --qwen3) against DeepseekV3ForCausalLM")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    ids = [1, 17, 250, 3, 99, 42, 7, 180, 64, 5, 2, 33, 120, 77, 8, 290]
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, python {platform.python_version()}")

    if args.trained_only:
        text = open(os.path.join(args.data, "text", "tinystories-dev.txt"), encoding="utf-8").read()
        calib = os.path.join(args.data, "text", "tinystories-calib.txt")
        for d in ("c-mla", "c-export"):
            os.makedirs(os.path.join(args.out, d), exist_ok=True)
        check_exports(args, rows, trained_exports(args, rows, calib, text))
    else:
        # a + b: fixtures and our runtime on them.
        for fam in ["llama", "qwen2", "mistral", "qwen3"]:
            path = fixture(fam, args.out)
            diff = np.abs(our_logits(args.cli, path, ids) - hf_logits(path, ids)).max()
            row(rows, "b. runtime vs transformers", fam, diff)

        # d: imported stories260K with LlamaForCausalLM and AutoTokenizer.
        st = os.path.join(args.data, "models", "stories260K")
        hf_dir = os.path.join(args.out, "stories260K-hf")
        run([args.cli, "import", os.path.join(st, "stories260K.bin"), "--tokenizer", os.path.join(st, "tok512.model"),
             "--out", hf_dir, "--force"])
        text = open(os.path.join(args.data, "text", "tinystories-dev.txt"), encoding="utf-8").read()
        tok = AutoTokenizer.from_pretrained(hf_dir)
        ours = [int(x) for x in run([args.cli, "tokenize", hf_dir, "--string", text[:5000]]).split()]
        theirs = tok(text[:5000], add_special_tokens=False)["input_ids"]
        rows.append({"check": "d. tokenizer ids (5000 chars)", "model": "stories260K-hf", "ok": ours == theirs,
                     "max_abs_diff": 0.0 if ours == theirs else 1.0, "note": f"{len(ours)} ids"})
        print(f"{'d. tokenizer ids (5000 chars)':<34} {'stories260K-hf':<28} {'same' if ours == theirs else 'DIFFERENT'}")
        sids = [tok.bos_token_id] + theirs[:255]
        for src, extra in [(hf_dir, ()), (os.path.join(st, "stories260K.bin"), ("--tokenizer", os.path.join(st, "tok512.model")))]:
            diff = np.abs(our_logits(args.cli, src, sids, extra) -
                          hf_logits(hf_dir, sids, transformers.LlamaForCausalLM)).max()
            row(rows, "d. LlamaForCausalLM vs runtime", os.path.basename(src), diff, f"{len(sids)} tokens")

        # c: DeepSeek-V3 exports, when the export command exists.
        help_text = subprocess.run([args.cli, "--help"], capture_output=True, text=True).stdout
        if " export" not in help_text:
            print("c. skipped: this build has no `export` command yet")
        else:
            part_c(args, rows, ids, text)

    summary = {"transformers": transformers.__version__, "torch": torch.__version__,
               "python": platform.python_version(), "tolerance": TOL, "rows": rows}
    with open(os.path.join(args.out, "interop.json"), "w") as f:
        json.dump(summary, f, indent=2)
    bad = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(bad)} passed, {len(bad)} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
