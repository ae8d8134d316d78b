#!/usr/bin/env python3
"""The GPU checks of mlar_train against the C++ trainer (run by scripts/test_gpu_train.sh).

  python3 -m mlar_train.gpu_checks --cli build-gputrain/bin/mla-retrofit --data DATA_DIR --out OUT_DIR \
      [--json RESULTS.json]

DATA_DIR: models/stories260K/{stories260K.bin,tok512.model}, text/{tinystories-calib.txt,tinystories-dev.txt};
optionally models/llama3ish/ (an HF Llama directory) for the first-step checks on a second model. The
layout of the lead's .gpu-data also works (interop/models/stories260K, interop/text, text/, llama3ish/).
Steps (stories260K converted at 25% of the KV cache, exported to DeepSeek-V3; teacher = the source
imported as an HF Llama directory):
  1. the student's tokenizer in transformers gives our CLI's ids for the whole training text;
  2. first-step losses of both modes (fp32) against `mla-retrofit finetune` on the same export, the same
     first batch (--seed 3 --batch 4 --seq 128): relative difference <= 1e-4;
  3. 50 updates of each mode (C++ in float32; GPU in fp32 and in bf16, the same options): dev perplexity of
     each GPU output (our CLI's eval) within 2% of the C++ one; the e2e bf16 run lowers the loss and perplexity;
  4. resume: 8 updates in one go vs 5 (checkpoint at 4) + --resume: identical losses and weights;
  5. the Python output is read by our CLI: eval and compare against the student;
  6. a student whose latent runs in the linear regime of its norm (convert --latent-scale linear) is refused.
Prints a table, writes the JSON, exits 1 when a check fails.
"""
import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYPATH = os.path.dirname(HERE)
LOSS_RTOL = 1e-4
PPL_RTOL = 0.02


def sh(cmd, env=None, check=True):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}\nexit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return r, time.perf_counter() - t0


def py_env():
    e = dict(os.environ)
    e["PYTHONPATH"] = PYPATH + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def mlar_train(args):
    return sh([sys.executable, "-m", "mlar_train", *map(str, args)], env=py_env())


def log_records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def first_record(out_dir):
    return log_records(os.path.join(out_dir, "train_log.jsonl"))[0]


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


class Rows:
    def __init__(self):
        self.rows = []

    def add(self, check, model, value, ok, note=""):
        self.rows.append({"check": check, "model": model, "value": value, "ok": bool(ok), "note": note})
        v = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{check:<44} {model:<14} {v:>12}  {'ok' if ok else 'FAIL'}  {note}", flush=True)

    def error(self, check, model, e):
        msg = str(e).strip().splitlines()
        self.add(check, model, "ERROR", False, " | ".join(msg[-3:])[:400])


def find(data, *rels):
    """The first of DATA_DIR/rel that exists (the shared-data layout, or the lead's .gpu-data one)."""
    for r in rels:
        p = os.path.join(data, r)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{data}: none of {', '.join(rels)}")


def stories_dir(data):
    return os.path.dirname(find(data, "models/stories260K/stories260K.bin", "interop/models/stories260K/stories260K.bin"))


def text_file(data, name):
    return find(data, f"text/{name}", f"interop/text/{name}")


def llama3ish_dir(data):
    for r in ("models/llama3ish", "llama3ish"):
        if os.path.exists(os.path.join(data, r, "model.safetensors")):
            return os.path.join(data, r)
    return None


def prepare_stories(cli, data, out):
    st = stories_dir(data)
    calib = text_file(data, "tinystories-calib.txt")
    teacher = os.path.join(out, "stories-teacher-hf")
    student = os.path.join(out, "stories-ds25")
    sh([cli, "import", os.path.join(st, "stories260K.bin"), "--tokenizer", os.path.join(st, "tok512.model"),
        "--out", teacher, "--force"])
    sh([cli, "convert", os.path.join(st, "stories260K.bin"), "--tokenizer", os.path.join(st, "tok512.model"),
        "--rope-mode", "extend", "--target", "transformers", "--kv-budget", "0.25", "--latent-scale", "natural",
        "--calib", calib, "--calib-tokens", "20000", "--out", os.path.join(out, "stories-mla25"),
        "--format", "deepseek-v3", "--export-out", student, "--force", "-q"])
    return teacher, student, calib


def prepare_llama3ish(cli, data, out):
    src = llama3ish_dir(data)
    calib = text_file(data, "tinystories-calib.txt")
    student = os.path.join(out, "llama3ish-ds25")
    sh([cli, "convert", src, "--rope-mode", "extend", "--target", "transformers", "--kv-budget", "0.25",
        "--latent-scale", "natural", "--calib", calib, "--calib-tokens", "20000",
        "--out", os.path.join(out, "llama3ish-mla25"), "--format", "deepseek-v3", "--export-out", student,
        "--force", "-q"])
    return src, student, calib


def cli_ids(cli, model, text, path):
    r, _ = sh([cli, "tokenize", model, "--text", text, "--json"])
    with open(path, "w", encoding="utf-8") as f:
        f.write(r.stdout)
    return json.loads(r.stdout)["ids"]


def check_tokenizer(rows, name, student, text, ids):
    try:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(student)
        with open(text, encoding="utf-8", newline="") as f:
            theirs = tok(f.read(), add_special_tokens=False)["input_ids"]
        same = list(theirs) == list(ids)
        first = next((i for i, (x, y) in enumerate(zip(theirs, ids)) if x != y), min(len(theirs), len(ids)))
        rows.add("tokenizer: AutoTokenizer ids == CLI ids", name, len(ids), same,
                 "whole training text" + ("" if same else f"; first difference at {first}, "
                                                          f"{len(theirs)} vs {len(ids)} ids"))
    except Exception as e:  # noqa: BLE001
        rows.error("tokenizer: AutoTokenizer ids == CLI ids", name, e)


def first_step(rows, cli, name, teacher, student, text, ids_json, out):
    common = ["--teacher", teacher, "--kl-weight", "1", "--train", "attn", "--steps", "1", "--lr", "1e-3",
              "--batch", "4", "--seq", "128", "--seed", "3"]
    for mode in ["e2e", "layerwise"]:
        check = f"first-step loss, {mode} (C++ vs fp32 GPU)"
        try:
            c_out, p_out = os.path.join(out, f"{name}-c1-{mode}"), os.path.join(out, f"{name}-p1-{mode}")
            sh([cli, "finetune", student, "--text", text, "--mode", mode, *common, "--out", c_out, "--force", "-q"])
            mlar_train([student, "--ids", ids_json, "--mode", mode, *common, "--precision", "fp32",
                        "--out", p_out, "--force"])
            c, p = first_record(c_out), first_record(p_out)
            d = rel(p["loss"], c["loss"])
            parts = (f"ce {p['ce']:.6f}/{c['ce']:.6f} kl {p['kl']:.6f}/{c['kl']:.6f}" if mode == "e2e" else
                     "worst layer rel " + f"{max(rel(x, y) for x, y in zip(p['layer_mse'], c['layer_mse'])):.2e}")
            rows.add(check, name, d, d <= LOSS_RTOL, f"loss {p['loss']:.6f} vs {c['loss']:.6f}; {parts}")
        except Exception as e:  # noqa: BLE001
            rows.error(check, name, e)


def ppl(cli, model, dev):
    r, _ = sh([cli, "eval", model, "--text", dev, "--ctx", "256", "--json", "-q"])
    return json.loads(r.stdout)["perplexity"]


def fifty_steps(rows, cli, name, teacher, student, text, ids_json, dev, out, timing):
    base = ppl(cli, student, dev)
    rows.add("dev perplexity before training", name, base, True)
    train = ["--teacher", teacher, "--train", "attn", "--steps", "50", "--batch", "8", "--seq", "256", "--seed", "1",
             "--warmup", "10", "--clip", "1"]
    for mode, extra in [("layerwise", ["--lr", "3e-3"]), ("e2e", ["--lr", "2e-3", "--kl-weight", "1"])]:
        try:
            c_out = os.path.join(out, f"{name}-c50-{mode}")
            _, tc = sh([cli, "finetune", student, "--text", text, "--mode", mode, *train, *extra, "--out", c_out,
                        "--force", "-q"])
            pc = ppl(cli, c_out, dev)
        except Exception as e:  # noqa: BLE001
            rows.error(f"50 updates, {mode}: C++ run", name, e)
            continue
        for prec in ["fp32", "bf16"]:
            check = f"50 updates, {mode}, GPU {prec}: dev ppl GPU / C++"
            try:
                p_out = os.path.join(out, f"{name}-p50-{mode}-{prec}")
                _, tp = mlar_train([student, "--ids", ids_json, "--mode", mode, *train, *extra, "--precision", prec,
                                    "--out", p_out, "--force"])
                timing[f"{name} 50 {mode} {prec}"] = {"cpp_s": tc, "gpu_process_s": tp}
                pp = ppl(cli, p_out, dev)
                r = pp / pc
                rows.add(check, name, r, abs(r - 1) <= PPL_RTOL,
                         f"GPU {pp:.4f}, C++ {pc:.4f} (before {base:.4f}); C++ {tc:.1f} s, GPU process {tp:.1f} s")
                if mode == "e2e" and prec == "bf16":
                    recs = log_records(os.path.join(p_out, "train_log.jsonl"))
                    first, last5 = recs[0]["loss"], sum(x["loss"] for x in recs[-5:]) / 5
                    rows.add("50 updates e2e bf16 lower the loss (last 5 / first)", name, last5 / first,
                             last5 < first and pp < base,
                             f"loss {first:.4f} -> {last5:.4f}, dev ppl {base:.4f} -> {pp:.4f}")
                    # 5. our CLI reads the output.
                    r2, _ = sh([cli, "compare", student, p_out, "--text", dev, "--ctx", "256", "--json", "-q"])
                    cj = json.loads(r2.stdout)
                    rows.add("CLI eval + compare read the GPU output", name, float(cj.get("mean_kl", float("nan"))),
                             True, "mean KL between the student before and after, on dev text")
            except Exception as e:  # noqa: BLE001
                rows.error(check, name, e)


def file_hash(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def resume(rows, name, teacher, student, ids_json, out):
    check = "resume: 8 vs 5 (+ckpt 4) + resume, weights"
    try:
        opts = [student, "--ids", ids_json, "--teacher", teacher, "--mode", "e2e", "--kl-weight", "1", "--train",
                "all", "--steps", "8", "--lr", "2e-3", "--batch", "4", "--seq", "128", "--seed", "5", "--warmup", "2",
                "--weight-decay", "0.01", "--clip", "0.5", "--checkpoint-every", "2", "--deterministic"]
        a, a2, b = (os.path.join(out, f"{name}-resume-{x}") for x in ("a", "a2", "b"))
        mlar_train([*opts, "--out", a, "--force"])
        mlar_train([*opts, "--out", a2, "--force"])
        mlar_train([*opts, "--out", b, "--force", "--stop-after", "5"])
        stopped = not os.path.exists(os.path.join(b, "config.json"))
        mlar_train([*opts, "--out", b, "--resume"])
        la = [r["loss"] for r in log_records(os.path.join(a, "train_log.jsonl"))]
        la2 = [r["loss"] for r in log_records(os.path.join(a2, "train_log.jsonl"))]
        lb = [r["loss"] for r in log_records(os.path.join(b, "train_log.jsonl"))]
        ha, ha2, hb = (file_hash(os.path.join(x, "model.safetensors")) for x in (a, a2, b))
        rows.add("same command twice: identical weights", name, int(ha == ha2), ha == ha2 and la == la2,
                 "losses " + ("identical" if la == la2 else "differ"))
        rows.add(check, name, int(ha == hb), ha == hb and la == lb and stopped and len(lb) == 8,
                 f"losses {'identical' if la == lb else 'differ'} ({len(lb)} records); interrupted run wrote no model: "
                 f"{stopped}")
    except Exception as e:  # noqa: BLE001
        rows.error(check, name, e)


def linear_refused(rows, cli, data, teacher, ids_json, out):
    """A student exported from a linear-regime conversion is refused with a clear message."""
    check = "linear-regime latent refused"
    try:
        st = stories_dir(data)
        lin = os.path.join(out, "stories-ds25-linear")
        sh([cli, "convert", os.path.join(st, "stories260K.bin"), "--tokenizer", os.path.join(st, "tok512.model"),
            "--rope-mode", "extend", "--target", "transformers", "--kv-budget", "0.25", "--latent-scale", "linear",
            "--calib", text_file(data, "tinystories-calib.txt"), "--calib-tokens", "20000",
            "--out", os.path.join(out, "stories-mla25-linear"), "--format", "deepseek-v3", "--export-out", lin,
            "--force", "-q"])
        r, _ = sh([sys.executable, "-m", "mlar_train", lin, "--ids", ids_json, "--teacher", teacher, "--steps", "1",
                   "--lr", "1e-3", "--out", os.path.join(out, "stories-linear-out"), "--force"], env=py_env(),
                  check=False)
        ok = r.returncode == 1 and "linear regime" in r.stderr
        rows.add(check, "stories260K", r.returncode, ok, r.stderr.strip().splitlines()[-1][:160] if r.stderr else "")
    except Exception as e:  # noqa: BLE001
        rows.error(check, "stories260K", e)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--json", help="results JSON (default OUT/gpu_train.json)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import torch
    import transformers
    t0 = time.perf_counter()
    dev_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python {platform.python_version()}, "
          f"{dev_name}", flush=True)
    rows, timing = Rows(), {}
    dev = text_file(args.data, "tinystories-dev.txt")

    teacher, student, text = prepare_stories(args.cli, args.data, args.out)
    ids_json = os.path.join(args.out, "stories-train-ids.json")
    ids = cli_ids(args.cli, student, text, ids_json)
    check_tokenizer(rows, "stories260K", student, text, ids)
    first_step(rows, args.cli, "stories260K", teacher, student, text, ids_json, args.out)
    fifty_steps(rows, args.cli, "stories260K", teacher, student, text, ids_json, dev, args.out, timing)
    resume(rows, "stories260K", teacher, student, ids_json, args.out)
    linear_refused(rows, args.cli, args.data, teacher, ids_json, args.out)

    if llama3ish_dir(args.data):
        try:
            lt, ls, ltext = prepare_llama3ish(args.cli, args.data, args.out)
            lids_json = os.path.join(args.out, "llama3ish-train-ids.json")
            lids = cli_ids(args.cli, ls, ltext, lids_json)
            check_tokenizer(rows, "llama3ish", ls, ltext, lids)
            first_step(rows, args.cli, "llama3ish", lt, ls, ltext, lids_json, args.out)
        except Exception as e:  # noqa: BLE001
            rows.error("llama3ish: convert + export", "llama3ish", e)
    else:
        print("llama3ish: skipped (no DATA_DIR/models/llama3ish/model.safetensors or DATA_DIR/llama3ish/...)")

    bad = [r for r in rows.rows if not r["ok"]]
    summary = {"torch": torch.__version__, "transformers": transformers.__version__,
               "python": platform.python_version(), "device": dev_name, "loss_rtol": LOSS_RTOL, "ppl_rtol": PPL_RTOL,
               "seconds": time.perf_counter() - t0, "timing": timing, "rows": rows.rows}
    path = args.json or os.path.join(args.out, "gpu_train.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    print(f"{len(rows.rows) - len(bad)} passed, {len(bad)} failed, {summary['seconds']:.0f} s; wrote {path}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
