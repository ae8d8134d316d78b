#!/usr/bin/env python3
"""The recipe end to end on one GPU, against a control (run by scripts/gpu_finetune_llama3ish.sh).

  python3 -m mlar_train.recipe --cli MLA_RETROFIT --source HF_DIR --calib CALIB.txt --wiki WIKITEXT.raw \
      --out OUT_DIR [--json RESULTS.json] [--eval-chars 200000] [--lw-steps 200] [--e2e-steps 400] [--batch 32] ...

1. Texts: eval = the first --eval-chars characters of WIKITEXT (never trained on); training text =
   CALIB + WIKITEXT from character --eval-chars on (OUT/train.txt, OUT/eval.txt; read and written
   without newline translation).
2. Conversion with our CLI: convert SOURCE --rope-mode extend --target transformers --kv-budget 0.25
   --latent-scale natural --calib CALIB (all of it) --format deepseek-v3 (the student).
3. Training (mlar_train, bf16, --train attn, same ids: `mla-retrofit tokenize` of the training text):
   student: layerwise (--lw-steps, lr --lw-lr) then e2e (--e2e-steps, lr --e2e-lr, CE + --kl-weight x KL to
   the source); control: the source itself, the same e2e run (KL to itself). Same --batch/--seq/--seed.
4. Perplexity (our CLI's eval, --ctx 256) of the source, the converted student, the trained student and the
   trained control on the eval text; the goal is student / control <= 1.05. Evaluations run in the
   background while the GPU trains (they are small); with --eval-device cuda a CPU evaluation of the
   converted student cross-checks the device.
5. Throughput of each training phase from its train_log.jsonl (tokens/s: median step without the first
   2; peak GPU memory: torch.cuda.max_memory_allocated), then `python3 -m mlar_train.bench` once.
Prints a table, writes the JSON after every stage (a run cut short still leaves what it finished).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYPATH = os.path.dirname(HERE)
GOAL = 1.05


def py_env():
    e = dict(os.environ)
    e["PYTHONPATH"] = PYPATH + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def sh(cmd, env=None, stdout_path=None, passthrough=False):
    """Runs cmd; passthrough: its output goes to ours (progress lines), else captured (shown on failure)."""
    t0 = time.perf_counter()
    cmd = [str(c) for c in cmd]
    print("+ " + " ".join(cmd), flush=True)
    if passthrough:
        r = subprocess.run(cmd, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}\nexit {r.returncode} (its output is above)")
        return r, time.perf_counter() - t0
    if stdout_path:
        with open(stdout_path, "w", encoding="utf-8") as f:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, text=True, env=env)
    else:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\nexit {r.returncode}\n{(r.stdout or '')[-2000:]}\n{r.stderr[-4000:]}")
    return r, time.perf_counter() - t0


class Evals:
    """`mla-retrofit eval` processes in the background: start(name, model) now, result(name) later."""

    def __init__(self, cli, text, out, device, threads):
        self.cli, self.text, self.out, self.device, self.threads = cli, text, out, device, threads
        self.procs = {}

    def start(self, name, model, device=None):
        device = device or self.device
        stem = os.path.join(self.out, f"eval-{name}")
        cmd = [self.cli, "eval", model, "--text", self.text, "--ctx", "256", "--json", "-q", "--device", device,
               "--threads", str(self.threads)]
        print("+ " + " ".join(map(str, cmd)) + " &", flush=True)
        fo, fe = open(stem + ".json", "w", encoding="utf-8"), open(stem + ".err", "w", encoding="utf-8")
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe)
        self.procs[name] = (p, fo, fe, stem, model, device, time.perf_counter())

    def result(self, name):
        """{"perplexity", "tokens_scored", "device", "seconds"}; a failed CUDA eval is redone on the CPU."""
        p, fo, fe, stem, model, device, t0 = self.procs[name]
        rc = p.wait()
        fo.close()
        fe.close()
        if rc != 0:
            with open(stem + ".err", encoding="utf-8") as f:
                err = f.read().strip().splitlines()
            if device != "cpu":
                self.device = "cpu"  # evaluations started from now on go to the CPU directly
                print(f"eval {name} on {device} failed ({' | '.join(err[-2:])}); again on the CPU", flush=True)
                self.start(name, model, "cpu")
                r = self.result(name)
                r["note"] = f"{device} eval failed: {' | '.join(err[-2:])[:200]}"
                return r
            raise RuntimeError(f"eval {name} ({model}) exit {rc}: {' | '.join(err[-3:])}")
        with open(stem + ".json", encoding="utf-8") as f:
            j = json.load(f)
        return {"perplexity": j["perplexity"], "tokens_scored": j["tokens_scored"], "device": device,
                "seconds": time.perf_counter() - t0}


def phase_stats(out_dir, wall):
    with open(os.path.join(out_dir, "train_log.jsonl"), encoding="utf-8") as f:
        recs = [json.loads(x) for x in f if x.strip()]
    steady = recs[2:] or recs
    tok = sum(r["tokens"] for r in recs)
    return {"updates": len(recs), "tokens": tok, "first_loss": recs[0]["loss"],
            "last_loss_mean5": sum(r["loss"] for r in recs[-5:]) / len(recs[-5:]),
            "tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in steady),
            "tokens_per_s_overall": tok / sum(r["seconds"] for r in recs),
            "train_seconds": sum(r["seconds"] for r in recs), "process_seconds": wall,
            "max_memory_gib": max(r.get("max_memory_gib", 0.0) for r in recs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--source", required=True, help="GQA source, HF directory (teacher and control)")
    ap.add_argument("--calib", required=True, help="calibration text (also the first part of the training text)")
    ap.add_argument("--wiki", required=True, help="WikiText-2 raw text: eval head, training tail")
    ap.add_argument("--out", required=True)
    ap.add_argument("--json")
    ap.add_argument("--eval-chars", type=int, default=200000)
    ap.add_argument("--kv-budget", default="0.25")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--lw-steps", type=int, default=200)
    ap.add_argument("--lw-lr", default="3e-3")
    ap.add_argument("--e2e-steps", type=int, default=400)
    ap.add_argument("--e2e-lr", default="2e-3")
    ap.add_argument("--kl-weight", default="1")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--eval-device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--bench-steps", type=int, default=8, help="mlar_train.bench updates (0 = no bench)")
    ap.add_argument("--budget-s", type=float, default=200.0,
                    help="the bench is skipped when fewer than --bench-reserve-s seconds of this are left")
    ap.add_argument("--bench-reserve-s", type=float, default=45.0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    out = a.out
    path = a.json or os.path.join(out, "finetune_llama3ish.json")
    t_all = time.perf_counter()
    # No torch in this process (the training runs in subprocesses): versions and GPU name without importing it.
    from importlib.metadata import PackageNotFoundError, version

    def ver(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "missing"
    try:
        dev_name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                  text=True, check=True).stdout.strip().splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        dev_name = "no GPU (nvidia-smi)"
    res = {"torch": ver("torch"), "transformers": ver("transformers"), "python": platform.python_version(),
           "device": dev_name, "options": vars(a), "goal_student_over_control": GOAL, "stages": {}}

    def save():
        res["seconds"] = time.perf_counter() - t_all
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
        os.replace(tmp, path)

    print(f"{dev_name}; torch {res['torch']}, transformers {res['transformers']}", flush=True)
    # 1. texts
    with open(a.calib, encoding="utf-8", newline="") as f:
        calib = f.read()
    with open(a.wiki, encoding="utf-8", newline="") as f:
        wiki = f.read()
    train_txt, eval_txt = os.path.join(out, "train.txt"), os.path.join(out, "eval.txt")
    with open(train_txt, "w", encoding="utf-8", newline="") as f:
        f.write(calib + ("" if calib.endswith("\n") else "\n") + wiki[a.eval_chars:])
    with open(eval_txt, "w", encoding="utf-8", newline="") as f:
        f.write(wiki[:a.eval_chars])
    res["texts"] = {"train_chars": len(calib) + len(wiki) - a.eval_chars, "eval_chars": a.eval_chars}

    # 2. conversion (the student) and the training ids
    mla, student = os.path.join(out, "llama3ish-mla25"), os.path.join(out, "llama3ish-ds25")
    r, dt = sh([a.cli, "convert", a.source, "--rope-mode", "extend", "--target", "transformers", "--kv-budget",
                a.kv_budget, "--latent-scale", "natural", "--calib", a.calib, "--out", mla, "--format", "deepseek-v3",
                "--export-out", student, "--threads", a.threads, "--force", "-q", "--json"])
    conv = json.loads(r.stdout)
    res["stages"]["convert_seconds"] = dt
    res["convert"] = {"mla": conv.get("mla"), "kv_bytes_per_token_before": conv.get("kv_bytes_per_token_before"),
                      "kv_bytes_per_token_after": conv.get("kv_bytes_per_token_after")}
    print(f"converted in {dt:.1f} s: {res['convert']}", flush=True)
    ids_json = os.path.join(out, "train-ids.json")
    sh([a.cli, "tokenize", student, "--text", train_txt, "--json"], stdout_path=ids_json)
    with open(ids_json, encoding="utf-8") as f:
        res["texts"]["train_tokens"] = json.load(f)["count"]
    save()

    ev_threads = max(1, a.threads // 2)  # the other half for the training process and the tokenizer
    evals = Evals(a.cli, eval_txt, out, a.eval_device, ev_threads)
    evals.start("source", a.source)
    evals.start("converted", student)
    if a.eval_device != "cpu":
        evals.start("converted-cpu", student, "cpu")

    # 3. training
    common = ["--ids", ids_json, "--teacher", a.source, "--train", "attn", "--batch", a.batch, "--seq", a.seq,
              "--precision", "bf16", "--progress-every", "50", "--force"]
    e2e = ["--mode", "e2e", "--kl-weight", a.kl_weight, "--steps", a.e2e_steps, "--lr", a.e2e_lr,
           "--warmup", max(1, a.e2e_steps // 20), "--seed", "2"]
    lw_dir, st_dir, ct_dir = (os.path.join(out, x) for x in ("student-layerwise", "student-e2e", "control-e2e"))
    # (name, arguments, output, what it needs, the evaluation started when it ends: overlaps the next phase)
    phases = [("student layerwise", [student, *common, "--mode", "layerwise", "--steps", a.lw_steps, "--lr", a.lw_lr,
                                     "--warmup", max(1, a.lw_steps // 10), "--seed", "1", "--out", lw_dir], lw_dir,
               None, "student-layerwise"),
              ("student e2e", [lw_dir, *common, *e2e, "--out", st_dir], st_dir, "student layerwise", "student"),
              ("control e2e (source)", [a.source, *common, *e2e, "--out", ct_dir], ct_dir, None, "control")]
    res["training"], failed = {}, []
    for name, args, d, needs, ev in phases:
        if needs in failed:
            res["training"][name] = {"error": f"skipped: {needs} failed"}
            failed.append(name)
            continue
        try:
            _, wall = sh([sys.executable, "-m", "mlar_train", *args], env=py_env(), passthrough=True)
            res["training"][name] = phase_stats(d, wall)
        except (RuntimeError, OSError, ValueError, KeyError) as ex:
            print(f"{name} FAILED: {ex}", flush=True)
            res["training"][name] = {"error": str(ex)[-1500:]}
            failed.append(name)
            save()
            continue
        evals.start(ev, d)
        s = res["training"][name]
        print(f"{name}: {s['updates']} updates in {wall:.1f} s, loss {s['first_loss']:.4f} -> "
              f"{s['last_loss_mean5']:.4f}, {s['tokens_per_s_median']:.0f} tok/s, {s['max_memory_gib']:.2f} GiB",
              flush=True)
        save()

    # 4. perplexities
    res["eval"] = {}
    for name in ["source", "converted", "converted-cpu", "student-layerwise", "student", "control"]:
        if name in evals.procs:
            try:
                res["eval"][name] = evals.result(name)
            except RuntimeError as ex:
                print(f"eval {name} FAILED: {ex}", flush=True)
    e = {k: v["perplexity"] for k, v in res["eval"].items()}
    for key, num, den in [("student_over_control", "student", "control"), ("student_over_source", "student", "source"),
                          ("control_over_source", "control", "source"),
                          ("converted_cuda_over_cpu", "converted", "converted-cpu")]:
        if num in e and den in e and (key != "converted_cuda_over_cpu" or res["eval"][num]["device"] != "cpu"):
            res[key] = e[num] / e[den]
    save()
    # The student and the control are different models that may score alike: how far apart their logits are.
    if "student" in e and "control" in e:
        try:
            r, _ = sh([a.cli, "compare", ct_dir, st_dir, "--text", eval_txt, "--ctx", "256", "--max-tokens", "8192",
                       "--threads", a.threads, "--json", "-q"])
            c = json.loads(r.stdout)
            res["student_vs_control"] = {k: c[k] for k in ("tokens_compared", "max_abs_logit_diff", "max_abs_logit",
                                                           "mean_kl", "greedy_agreement")}
        except (RuntimeError, ValueError, KeyError) as ex:
            res["student_vs_control"] = {"error": str(ex)[-500:]}
        save()

    # 5. throughput of a Llama-3.2-1B-shaped model at 25%
    left = a.budget_s - (time.perf_counter() - t_all)
    if a.bench_steps > 0 and left < a.bench_reserve_s:
        res["bench"] = {"error": f"skipped: {left:.0f} s of --budget-s {a.budget_s:.0f} left"}
        print(res["bench"]["error"], flush=True)
    elif a.bench_steps > 0:
        bj = os.path.join(out, "bench.json")
        try:
            _, dt = sh([sys.executable, "-m", "mlar_train.bench", "--steps", a.bench_steps, "--json", bj], env=py_env())
            with open(bj, encoding="utf-8") as f:
                res["bench"] = json.load(f)
            res["bench"]["process_seconds"] = dt
        except RuntimeError as ex:
            res["bench"] = {"error": str(ex)[-1500:]}
        save()

    # table
    print(f"\n{'model (eval: first ' + str(a.eval_chars) + ' chars of WikiText-2, ctx 256)':<58} {'ppl':>10}  device")
    labels = {"source": "source GQA (llama3ish)", "converted": f"converted at {a.kv_budget} (no training)",
              "converted-cpu": "  same, evaluated on the CPU (cross-check)",
              "student-layerwise": f"student after layerwise ({a.lw_steps})",
              "student": f"student after layerwise + e2e ({a.lw_steps} + {a.e2e_steps})",
              "control": f"control: source after the same e2e ({a.e2e_steps})"}
    for k, lab in labels.items():
        if k in res["eval"]:
            v = res["eval"][k]
            print(f"{lab:<58} {v['perplexity']:>10.3f}  {v['device']}{'  ' + v['note'] if v.get('note') else ''}")
    if "student_over_control" in res:
        ok = res["student_over_control"] <= GOAL
        print(f"{'student / control':<58} {res['student_over_control']:>10.4f}  goal <= {GOAL}: "
              f"{'met' if ok else 'NOT met'}")
        print(f"{'student / source, control / source':<58} {res['student_over_source']:>10.4f}  "
              f"{res['control_over_source']:.4f}")
    c = res.get("student_vs_control", {})
    if "mean_kl" in c:
        print(f"{'student vs control, first ' + str(c['tokens_compared']) + ' tokens: max |dlogit|, mean KL, greedy':<58} "
              f"{c['max_abs_logit_diff']:>10.4f}  {c['mean_kl']:.5f}  {100 * c['greedy_agreement']:.1f}%")
    if "converted_cuda_over_cpu" in res:
        print(f"{'converted: cuda / cpu perplexity':<58} {res['converted_cuda_over_cpu']:>10.5f}")
    print(f"\n{'training phase (bf16, ' + str(a.batch) + ' x ' + str(a.seq) + ' tokens/update)':<40} "
          f"{'updates':>7} {'tok/s':>9} {'GiB':>6} {'s':>6}  loss first -> last5")
    for k, s in res["training"].items():
        if "error" in s:
            print(f"{k:<40} FAILED: {s['error'].strip().splitlines()[-1][:200]}")
            continue
        print(f"{k:<40} {s['updates']:>7} {s['tokens_per_s_median']:>9.0f} {s['max_memory_gib']:>6.2f} "
              f"{s['process_seconds']:>6.1f}  {s['first_loss']:.4f} -> {s['last_loss_mean5']:.4f}")
    b = res.get("bench")
    if b and "error" not in b:
        mfu = f"{100 * b['mfu']:.1f}%" if b.get("mfu") is not None else "n/a"
        print(f"\nbench (Llama-3.2-1B shape at 25%, {b['mode']}, {b['batch']} x {b['seq']}, micro {b['micro_batch']}): "
              f"{b['tokens_per_s']:.0f} tok/s, MFU {mfu}, {b['max_memory_gib']:.1f} GiB, {b['device']}")
    elif b:
        print(f"\nbench failed: {b['error'][-400:]}")
    save()
    print(f"\n{res['seconds']:.0f} s; wrote {path}")
    return 1 if failed or "student_over_control" not in res else 0


if __name__ == "__main__":
    sys.exit(main())
