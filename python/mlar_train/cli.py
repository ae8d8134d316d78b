"""python3 -m mlar_train MODEL --text FILE --out DIR [--teacher SRC] --mode layerwise|e2e ...

The C++ `mla-retrofit finetune` recipe and option names (docs/finetune.md) on GPUs."""
import argparse
import json
import os
import shutil
import sys
import time

HELP = """Fine-tune the DeepSeek-V3 export of a converted model (`mla-retrofit export --format deepseek-v3`,
the student) against its GQA source (an HF directory, the teacher) on GPUs, with the C++ trainer's recipe:
  --mode layerwise: each student attention block, fed rmsnorm(the teacher's residual stream), learns the
                    teacher block's output (MSE, mean over layers), one block at a time;
  --mode e2e:       next-token cross-entropy + --kl-weight x KL(teacher || student) on the logits.
Data: the text tokenised by the student's tokenizer (or --ids), cut into windows [BOS, t_s .. t_{s+L-2}]
-> t_s .. t_{s+L-1}, shuffled per epoch by a std::mt19937_64 seeded by --seed: the same batches as
`mla-retrofit finetune --seed S --batch B --seq L`. AdamW (0.9 / 0.95, eps 1e-8, decoupled weight decay on
matrices), linear warmup then cosine decay to --min-lr-ratio x LR, global-norm clipping; bf16 autocast with
float32 master weights (--precision fp32 for exact comparisons). Several GPUs: the same command under
torchrun (e2e shards with FSDP2; the global batch B is split over the ranks). DIR receives the trained
DeepSeek-V3 directory (config.json last), train_log.jsonl, finetune.json and checkpoint/ (--resume).
MODEL may also be a GQA source (HF llama / mistral / qwen2 / qwen3 directory): the control arm, the source
fine-tuned by the same loop (e.g. e2e with --teacher the same directory); DIR then holds that family."""


def parse(argv):
    ap = argparse.ArgumentParser(prog="python3 -m mlar_train", description=HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="student: DeepSeek-V3 directory written by mla-retrofit export, "
                                  "or a GQA source HF directory (the control)")
    ap.add_argument("--text", help="training text (UTF-8), tokenised by the student's tokenizer")
    ap.add_argument("--ids", help="training ids instead of --text: JSON ({\"ids\": [...]}, as `mla-retrofit "
                                  "tokenize MODEL --text F --json` prints) or .npy")
    ap.add_argument("--out", required=True, help="output directory (must not exist unless --force or --resume)")
    ap.add_argument("--teacher", help="teacher: the GQA source as an HF directory (e.g. `mla-retrofit import`)")
    ap.add_argument("--mode", choices=["layerwise", "e2e"], default="e2e")
    ap.add_argument("--train", choices=["attn", "all"], default="attn")
    ap.add_argument("--steps", type=int, required=True, help="updates")
    ap.add_argument("--lr", type=float, required=True, help="peak learning rate")
    ap.add_argument("--batch", type=int, default=8, help="sequences per update (global, over all GPUs)")
    ap.add_argument("--seq", type=int, default=256, help="tokens per sequence (BOS included)")
    ap.add_argument("--seed", type=int, default=0, help="data-order seed")
    ap.add_argument("--warmup", type=int, default=0, help="linear warmup updates")
    ap.add_argument("--min-lr-ratio", type=float, default=0.1, help="cosine decays to LR x this")
    ap.add_argument("--weight-decay", type=float, default=0.0, help="decoupled weight decay (matrices only)")
    ap.add_argument("--clip", type=float, default=1.0, help="global gradient-norm limit (0 = none)")
    ap.add_argument("--kl-weight", type=float, default=0.0, help="e2e: weight of KL(teacher || student)")
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                    help="bf16: autocast with float32 master weights, teacher in bf16; fp32: everything in "
                         "float32, TF32 off, math attention (for comparisons with the C++ trainer)")
    ap.add_argument("--micro-batch", type=int, default=0, help="sequences per forward on each GPU (0 = all "
                                                               "of its share; gradients accumulate)")
    ap.add_argument("--grad-checkpointing", action="store_true", help="e2e: recompute layer activations")
    ap.add_argument("--deterministic", action="store_true",
                    help="deterministic kernels (math attention): the same command repeats bit for bit")
    ap.add_argument("--checkpoint-every", type=int, default=0, help="checkpoint every K updates (always at the end)")
    ap.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="stop after update K without checkpointing or writing the model (tests --resume)")
    ap.add_argument("--log", help="JSON-lines log (default DIR/train_log.jsonl)")
    ap.add_argument("--progress-every", type=int, default=10)
    ap.add_argument("--device", help="torch device for a single process (default cuda if available)")
    ap.add_argument("--force", action="store_true", help="replace an existing output directory")
    a = ap.parse_args(argv)
    if bool(a.text) == bool(a.ids):
        ap.error("give exactly one of --text and --ids")
    return a


def main(argv=None):
    a = parse(sys.argv[1:] if argv is None else argv)
    if a.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    from .models import InputError
    try:
        sys.exit(run(a))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


def run(a):
    from .models import InputError
    from .train import Env, Trainer, read_ids
    out = a.out
    if a.resume:
        if not os.path.isdir(os.path.join(out, "checkpoint")):
            raise InputError(f"{os.path.join(out, 'checkpoint')}: no checkpoint to resume from")
    elif os.path.exists(out) and not a.force:
        raise InputError(f"{out}: exists (use --force to replace it)")
    env = Env(a.device)
    try:
        t_start = time.perf_counter()
        trainer = Trainer(a, env)
        ids = read_ids(a, a.model)
        log_path = a.log or os.path.join(out, "train_log.jsonl")
        if env.main:
            if not a.resume:
                if os.path.exists(out):
                    shutil.rmtree(out)
                os.makedirs(out)
                open(log_path, "w").close()
            else:
                from .checkpoint import read_state, truncate_log
                truncate_log(log_path, int(read_state(os.path.join(out, "checkpoint"))["step"]))
        env.barrier()
        r = trainer.run(ids, out, log_path)
        if r["stopped"]:
            return 0
        state = trainer.full_state(False)
        if env.main:
            from .output import write_model
            from .train import fingerprint
            write_model(state, a.model, out)
            summary = {"model": a.model, "teacher": a.teacher or "", "text": a.text or a.ids,
                       "options": fingerprint(a, trainer.teacher is not None), "train_tokens": len(ids),
                       "updates": r["end_step"], "processes": env.world,
                       "final_loss": r["losses"][-1] if r["losses"] else None,
                       "seconds": time.perf_counter() - t_start}
            tmp = os.path.join(out, "finetune.json.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=2)
            os.replace(tmp, os.path.join(out, "finetune.json"))
            print(f"wrote {out} ({r['end_step']} updates"
                  + (f", last loss {r['losses'][-1]:.5f}" if r["losses"] else "") + ")")
        env.barrier()
        return 0
    finally:
        env.close()
