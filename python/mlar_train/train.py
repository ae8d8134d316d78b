"""The training loop: the C++ trainer's recipe (src/train/finetune.cpp) on GPUs.

One process per GPU (torchrun) or a single process. Every rank draws the same global batch of
B windows from the same TokenBatcher and takes its contiguous B / world share; gradients are
summed over ranks so an update depends on the global batch only. e2e on several GPUs shards
the student with FSDP2 (fully_shard per decoder layer, then the root); layerwise keeps the
(attention-only) trainable tensors replicated and all-reduces their gradients.
"""
import array
import contextlib
import json
import math
import os
import sys
import time

from . import checkpoint as ckpt
from .data import TokenBatcher
from .models import (InputError, TeacherCapture, attention_block, decoder_layers, load_student, load_teacher,
                     residual_scale, rotary, trainable_names)
from .output import write_model
from .schedule import lr_at

# Options that change the updates: a resumed run must have the same (as the C++ fingerprint).
FINGERPRINT_KEYS = ["mode", "train", "steps", "lr", "min_lr_ratio", "warmup", "batch", "seq", "seed", "clip",
                    "kl_weight", "weight_decay", "precision"]


class Env:
    """Process group, device and the collectives the loop needs (no-ops on one process)."""

    def __init__(self, device_arg):
        import torch
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.dist = None
        if self.world > 1:
            os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
            import torch.distributed as dist
            torch.cuda.set_device(self.local_rank)
            dist.init_process_group("nccl")
            self.dist = dist
            self.device = torch.device("cuda", self.local_rank)
        elif device_arg:
            self.device = torch.device(device_arg)
        else:
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.main = self.rank == 0

    def all_sum(self, t):
        if self.dist is not None:
            self.dist.all_reduce(t, op=self.dist.ReduceOp.SUM)
        return t

    def barrier(self):
        if self.dist is not None:
            self.dist.barrier()

    def close(self):
        if self.dist is not None:
            self.dist.destroy_process_group()


def log_err(env, msg):
    if env.main:
        print(msg, file=sys.stderr, flush=True)


def read_ids(args, student_dir):
    """Training ids: from --ids (JSON {"ids": [...]}, e.g. `mla-retrofit tokenize MODEL --text F --json`),
    else the student's tokenizer (AutoTokenizer) on the whole file, no special tokens, read raw
    (no newline translation) as the C++ trainer reads it."""
    if args.ids:
        if args.ids.endswith(".npy"):
            import numpy as np
            return np.load(args.ids, mmap_mode="r")
        with open(args.ids, encoding="utf-8") as f:
            j = json.load(f)
        ids = j["ids"] if isinstance(j, dict) else j
        return array.array("i", (int(i) for i in ids))
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(student_dir)
    except Exception as e:  # noqa: BLE001 - name the directory
        raise InputError(f"{student_dir}: cannot load its tokenizer ({e}); pass --ids") from None
    with open(args.text, encoding="utf-8", newline="") as f:
        text = f.read()
    return array.array("i", tok(text, add_special_tokens=False)["input_ids"])


def check_options(a, scfg, tcfg):
    if a.steps < 1 or a.batch < 1:
        raise InputError("--steps and --batch must be at least 1")
    if not a.lr > 0:
        raise InputError(f"--lr must be positive (got {a.lr})")
    if a.warmup < 0 or a.warmup > a.steps:
        raise InputError(f"--warmup {a.warmup} must be in [0, --steps {a.steps}]")
    if a.clip < 0 or a.weight_decay < 0 or a.kl_weight < 0:
        raise InputError("--clip, --weight-decay and --kl-weight must not be negative")
    if a.seq < 2 or a.seq > scfg.get("max_position_embeddings", a.seq):
        raise InputError(f"--seq {a.seq} must be in [2, {scfg.get('max_position_embeddings')}] (the model's context)")
    if a.mode == "layerwise":
        if tcfg is None:
            raise InputError("--mode layerwise needs --teacher (the model whose attention outputs are the targets)")
        if (tcfg.get("num_hidden_layers"), tcfg.get("hidden_size")) != (scfg["num_hidden_layers"], scfg["hidden_size"]):
            raise InputError(f"--mode layerwise: teacher {a.teacher} has {tcfg.get('num_hidden_layers')} layers of "
                             f"{tcfg.get('hidden_size')}, the student {scfg['num_hidden_layers']} of {scfg['hidden_size']}")
    if a.mode == "e2e" and a.kl_weight > 0 and tcfg is None:
        raise InputError("--kl-weight needs --teacher")
    if tcfg is not None and tcfg.get("vocab_size") != scfg.get("vocab_size"):
        raise InputError(f"teacher {a.teacher} has a vocabulary of {tcfg.get('vocab_size')}, "
                         f"the student {scfg.get('vocab_size')}")


def fingerprint(a, has_teacher):
    d = {k: getattr(a, k.replace("-", "_")) for k in FINGERPRINT_KEYS}
    d["teacher"] = has_teacher
    return d


class Trainer:
    def __init__(self, args, env, student=None, teacher=None):
        """student / teacher: already built models (bench.py); else loaded from args.model / args.teacher."""
        import torch
        self.a, self.env = args, env
        self.torch = torch
        a = args
        if a.precision == "fp32" and env.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        if a.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.amp_dtype = torch.bfloat16 if a.precision == "bf16" else None
        if student is not None:
            self.student, self.scfg = student, student.config.to_dict()
        else:
            self.student, self.scfg = load_student(a.model, env.device)
        self.teacher, tcfg = (None, None)
        if teacher is not None:
            self.teacher, tcfg = teacher, teacher.config.to_dict()
        elif a.teacher:
            self.teacher, tcfg = load_teacher(a.teacher, env.device,
                                              torch.bfloat16 if a.precision == "bf16" else torch.float32)
        check_options(a, self.scfg, tcfg)
        if env.world > 1 and a.batch % env.world:
            raise InputError(f"--batch {a.batch} must be a multiple of the {env.world} processes")
        self.alpha = residual_scale(self.student, self.teacher, lambda m: log_err(env, m)) if self.teacher else 1.0
        self.bos = self.scfg.get("bos_token_id")
        if self.bos is None:
            raise InputError(f"{a.model}/config.json: no bos_token_id")
        names = trainable_names(self.student, a.mode, a.train)
        if not names:
            raise InputError(f"{a.model}: nothing to train with --train {a.train}")
        self.names = set(names)
        for n, p in self.student.named_parameters():
            p.requires_grad_(n in self.names)
        self.student.train()
        if a.grad_checkpointing and a.mode == "e2e":
            self.student.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.fsdp = env.world > 1 and a.mode == "e2e"
        if self.fsdp:
            from torch.distributed.fsdp import fully_shard
            for layer in decoder_layers(self.student):
                fully_shard(layer)
            fully_shard(self.student)
        self.params = [(n, p) for n, p in self.student.named_parameters() if n in self.names]
        decay = [p for n, p in self.params if p.dim() >= 2]
        no_decay = [p for n, p in self.params if p.dim() < 2]
        groups = [g for g in ({"params": decay, "weight_decay": a.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
        self.opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
        self.n_values = sum(p.numel() for _, p in self.params)

    # ----- objectives ------------------------------------------------------------------
    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return self.torch.autocast(device_type=self.env.device.type, dtype=self.amp_dtype)

    def sdpa_context(self):
        if not (self.a.deterministic or self.a.precision == "fp32"):
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel([SDPBackend.MATH])

    def e2e_micro(self, inp, tgt, n_global, grad_scale, sums):
        torch, F = self.torch, self.torch.nn.functional
        with self.sdpa_context():
            with self.autocast():
                logits = self.student(input_ids=inp, use_cache=False).logits
            lf = logits.float().reshape(-1, logits.shape[-1])
            ce = F.cross_entropy(lf, tgt.reshape(-1), reduction="sum")
            loss = ce
            kl = None
            if self.teacher is not None and self.a.kl_weight > 0:
                with torch.no_grad(), self.autocast():
                    tl = self.teacher(input_ids=inp, use_cache=False).logits
                tl = F.log_softmax(tl.float().reshape(-1, tl.shape[-1]), dim=-1)
                kl = F.kl_div(F.log_softmax(lf, dim=-1), tl, reduction="sum", log_target=True)
                loss = ce + self.a.kl_weight * kl
            (loss * (grad_scale / n_global)).backward()
        sums[0] += ce.detach().double()
        if kl is not None:
            sums[1] += kl.detach().double()

    def layerwise_micro(self, inp, n_global, sums):
        """sums: [2 * layers] squared error then squared teacher norm per layer. Loss: mean over
        layers of the mean squared error over the global batch's tokens x hidden values."""
        torch = self.torch
        layers = decoder_layers(self.student)
        nl = len(layers)
        cap = self.capture
        with self.sdpa_context():
            with torch.no_grad(), self.autocast():
                self.teacher.model(input_ids=inp, use_cache=False)
            b, L = inp.shape
            pos = torch.arange(L, device=inp.device).unsqueeze(0).expand(b, L)
            for i, layer in enumerate(layers):
                t_out = cap.attn_out[i].float()
                h = cap.h_in[i].float() * self.alpha
                with torch.no_grad():
                    pe = rotary(self.student, h, pos)
                with self.autocast():
                    x = layer.input_layernorm(h)
                    y = attention_block(layer, x, pe)
                d = y.float() / self.alpha - t_out
                se = d.pow(2).sum()
                (se / (n_global * self.scfg["hidden_size"] * nl)).backward()
                sums[i] += se.detach().double()
                sums[nl + i] += t_out.pow(2).sum().double()
            cap.clear()

    # ----- the loop ----------------------------------------------------------------------
    def run(self, ids, out_dir, log_path):
        torch, a, env = self.torch, self.a, self.env
        batcher = TokenBatcher(ids, a.seq, self.bos, a.seed)
        fp = fingerprint(a, self.teacher is not None)
        ckpt_dir = os.path.join(out_dir, "checkpoint")
        start = 0
        if a.resume:
            st = ckpt.read_state(ckpt_dir)
            for k, v in fp.items():
                if st["options"].get(k) != v:
                    raise InputError(f"{ckpt_dir}: the checkpoint was made with {k} = {st['options'].get(k)!r}, "
                                     f"this run has {v!r} (resume needs the same options)")
            self.load_checkpoint(ckpt.read_tensors(ckpt_dir))
            batcher.restore(st["data"])
            start = int(st["step"])
        self.capture = TeacherCapture(self.teacher) if a.mode == "layerwise" else None
        if a.mode == "layerwise":
            self.check_block_call()
        log = open(log_path, "a", encoding="utf-8") if env.main else None
        if env.main:
            print(f"mlar_train: {a.mode} of {len(self.params)} tensors ({self.n_values} values), {a.steps} updates "
                  f"of {a.batch} x {a.seq} tokens on {env.world} process(es), {a.precision}"
                  + (f", residual scale {self.alpha:.6g}" if self.alpha != 1.0 else "")
                  + (f", resuming after update {start}" if start else ""), file=sys.stderr, flush=True)
        per_rank = a.batch // env.world
        micro = a.micro_batch or per_rank
        n_global = a.batch * a.seq
        grad_scale = env.world if self.fsdp else 1  # FSDP averages the gradients over ranks
        nl = len(decoder_layers(self.student))
        losses = []
        for step in range(start, a.steps):
            t0 = time.perf_counter()
            starts = batcher.next_windows(a.batch)
            mine = starts[env.rank * per_rank:(env.rank + 1) * per_rank]
            rows = [[int(t) for t in ids[s:s + a.seq]] for s in mine]
            inp_all = torch.tensor([[self.bos] + r[:-1] for r in rows], dtype=torch.long)
            tgt_all = torch.tensor(rows, dtype=torch.long)
            self.opt.zero_grad(set_to_none=True)
            sums = torch.zeros(2 if a.mode == "e2e" else 2 * nl, dtype=torch.float64, device=env.device)
            chunks = list(range(0, per_rank, micro))
            for ci, c0 in enumerate(chunks):
                inp = inp_all[c0:c0 + micro].to(env.device, non_blocking=True)
                tgt = tgt_all[c0:c0 + micro].to(env.device, non_blocking=True)
                if self.fsdp:
                    self.student.set_requires_gradient_sync(ci == len(chunks) - 1)
                if a.mode == "e2e":
                    self.e2e_micro(inp, tgt, n_global, grad_scale, sums)
                else:
                    self.layerwise_micro(inp, n_global, sums)
            if not self.fsdp and env.world > 1:
                for _, p in self.params:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    env.all_sum(p.grad)
            env.all_sum(sums)
            gnorm = self.clip()
            lr = lr_at(step, a.lr, a.min_lr_ratio, a.warmup, a.steps)
            for g in self.opt.param_groups:
                g["lr"] = lr
            self.opt.step()
            if env.device.type == "cuda":
                torch.cuda.synchronize(env.device)
            dt = time.perf_counter() - t0
            s = sums.tolist()
            rec = {"step": step + 1}
            if a.mode == "e2e":
                ce, kl = s[0] / n_global, s[1] / n_global
                loss = ce + (a.kl_weight * kl if self.teacher is not None and a.kl_weight > 0 else 0.0)
                rec.update(loss=loss, ce=ce)
                if self.teacher is not None and a.kl_weight > 0:
                    rec["kl"] = kl
            else:
                numel = n_global * self.scfg["hidden_size"]
                mse = [x / numel for x in s[:nl]]
                loss = sum(mse) / nl
                rec.update(loss=loss, layer_mse=mse, layer_rel=[x / max(1e-30, t) for x, t in zip(s[:nl], s[nl:])])
            rec.update(lr=lr, grad_norm=gnorm, tokens=n_global, seconds=dt, tokens_per_s=n_global / max(dt, 1e-9))
            if env.device.type == "cuda":
                rec["max_memory_gib"] = torch.cuda.max_memory_allocated(env.device) / 2**30
            losses.append(loss)
            if log:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            if (step + 1) % a.progress_every == 0 or step + 1 == a.steps or step == start:
                extra = f" (ce {rec['ce']:.4f} kl {rec['kl']:.4f})" if "kl" in rec else ""
                log_err(env, f"mlar_train: step {step + 1}/{a.steps} loss {loss:.5f}{extra} lr {lr:.3g} "
                             f"|g| {gnorm:.3g} {rec['tokens_per_s']:.0f} tok/s")
            if a.stop_after and step + 1 == a.stop_after and step + 1 < a.steps:
                log_err(env, f"stopped after update {step + 1} (--stop-after); continue with --resume")
                return {"stopped": True, "losses": losses, "end_step": step + 1}
            if getattr(a, "no_checkpoints", False):
                continue
            if (a.checkpoint_every and (step + 1) % a.checkpoint_every == 0) or step + 1 == a.steps:
                self.save_checkpoint(ckpt_dir, {"step": step + 1, "options": fp, "data": batcher.state(),
                                                "student": a.model, "teacher": a.teacher or ""})
        if log:
            log.close()
        return {"stopped": False, "losses": losses, "end_step": a.steps}

    def check_block_call(self):
        """Runs the student's whole forward once with hooks and checks that calling layer 0's
        attention the way the layerwise objective does gives the same output: guards against a
        transformers version calling its attention differently (mask, rotary arguments)."""
        torch = self.torch
        ids = torch.arange(1, 17, device=self.env.device).unsqueeze(0) % self.scfg["vocab_size"]
        cap = TeacherCapture(self.student)
        try:
            with torch.no_grad(), self.sdpa_context():
                self.student.model(input_ids=ids, use_cache=False)
                layer = decoder_layers(self.student)[0]
                pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
                h = cap.h_in[0]
                y = attention_block(layer, layer.input_layernorm(h), rotary(self.student, h, pos))
                ref = cap.attn_out[0]
                rel = ((y.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30)).item()
        finally:
            cap.remove()
        if not rel < 1e-4:
            raise RuntimeError(f"layerwise: calling the student's attention block directly gives a relative "
                               f"difference of {rel:.3g} from its output inside the model; this transformers "
                               "version calls attention differently (models.attention_block needs updating)")

    def clip(self):
        """Global L2 norm of the trainable gradients (sums in float64), scaled to --clip."""
        torch = self.torch
        ss = torch.zeros((), dtype=torch.float64, device=self.env.device)
        for _, p in self.params:
            if p.grad is not None:
                g = p.grad.to_local() if hasattr(p.grad, "to_local") else p.grad
                ss += g.double().pow(2).sum()
        if self.fsdp:
            self.env.all_sum(ss)
        norm = math.sqrt(ss.item())
        if self.a.clip > 0 and norm > self.a.clip:
            s = self.a.clip / norm
            for _, p in self.params:
                if p.grad is not None:
                    p.grad.mul_(s)
        return norm

    # ----- state ---------------------------------------------------------------------------
    def full_state(self, trainable_only):
        """{name: tensor on CPU}: every rank must call it (FSDP gathers)."""
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
            sd = get_model_state_dict(self.student, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        else:
            sd = {k: v.detach().cpu() for k, v in self.student.state_dict().items()}
        if trainable_only:
            sd = {k: v for k, v in sd.items() if k in self.names}
        return sd

    def optim_state(self):
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
            return get_optimizer_state_dict(self.student, self.opt,
                                            options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return self.opt.state_dict()

    def save_checkpoint(self, ckpt_dir, state):
        params, optim = self.full_state(True), self.optim_state()
        if self.env.main:
            ckpt.write(ckpt_dir, {**state, "params": sorted(params)}, {"params": params, "optim": optim})
        self.env.barrier()

    def load_checkpoint(self, t):
        torch = self.torch
        params, optim = t["params"], t["optim"]
        if set(params) != self.names:
            raise InputError(f"checkpoint: trained tensors differ from this run's ({len(params)} vs {len(self.names)})")
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                                 set_optimizer_state_dict)
            o = StateDictOptions(full_state_dict=True, strict=False)
            set_model_state_dict(self.student, params, options=o)
            set_optimizer_state_dict(self.student, self.opt, optim, options=o)
        else:
            with torch.no_grad():
                for n, p in self.params:
                    if params[n].shape != p.shape:
                        raise InputError(f"checkpoint: {n} has shape {tuple(params[n].shape)}, the model {tuple(p.shape)}")
                    p.copy_(params[n])
            self.opt.load_state_dict(optim)
