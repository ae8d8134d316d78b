"""Writing the trained student as a DeepSeek-V3 directory our CLI reads: the student's own
tensor names and dtypes (read from its safetensors files), its config.json byte for byte, its
tokenizer and generation files copied. Files are staged in DIR/final-model.tmp and moved into
DIR one by one, config.json last (its presence marks a complete model), as the C++ trainer
writes its output (tools/mla-retrofit/cmd_finetune.cpp)."""
import json
import os
import shutil

from .models import InputError

_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}
MAX_SHARD_BYTES = 5 << 30


def weight_files(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx, encoding="utf-8") as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    if os.path.exists(os.path.join(d, "model.safetensors")):
        return ["model.safetensors"]
    raise InputError(f"{d}: no model.safetensors or model.safetensors.index.json")


def tensor_layout(d):
    """{name: dtype string ('F32', 'BF16', ...)} of the tensors stored in directory d."""
    from safetensors import safe_open
    out = {}
    for fn in weight_files(d):
        with safe_open(os.path.join(d, fn), framework="pt") as f:
            for k in f.keys():
                out[k] = f.get_slice(k).get_dtype()
    return out


def _is_weight_file(name):
    return name.endswith(".safetensors") or name.endswith(".safetensors.index.json")


# What a training run writes beside the model: never carried from the student into a new output,
# where it would stand for the new run's log (a run from an earlier run's output has them).
RUN_RECORDS = ("train_log.jsonl", "finetune.json")


def carried_files(student_dir):
    """The student's files that go with the trained weights: tokenizer files, generation_config.json,
    config.json; not its weights and not the records of the run that made it."""
    return [fn for fn in sorted(os.listdir(student_dir))
            if os.path.isfile(os.path.join(student_dir, fn)) and not _is_weight_file(fn)
            and fn not in RUN_RECORDS and not fn.endswith(".tmp")]


def write_model(state, student_dir, out_dir, max_shard_bytes=MAX_SHARD_BYTES):
    """state: {name: tensor} of the full model (transformers' names)."""
    import torch
    from safetensors.torch import save_file
    layout = tensor_layout(student_dir)
    missing = [k for k in layout if k not in state]
    if missing:
        raise InputError(f"{student_dir}: tensors {missing[:5]} of the student have no trained counterpart "
                         "(transformers renamed them?)")
    tensors = {}
    for k, dt in layout.items():
        if dt not in _DTYPES:
            raise InputError(f"{student_dir}: tensor {k} has dtype {dt}, expected F32, BF16 or F16")
        tensors[k] = state[k].detach().to("cpu", getattr(torch, _DTYPES[dt])).contiguous().clone()
    stage = os.path.join(out_dir, "final-model.tmp")
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    # Shards in the student's tensor order.
    shards, cur, size = [], {}, 0
    for k, t in tensors.items():
        n = t.numel() * t.element_size()
        if cur and size + n > max_shard_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[k] = t
        size += n
    shards.append(cur)
    if len(shards) == 1:
        save_file(shards[0], os.path.join(stage, "model.safetensors"), metadata={"format": "pt"})
    else:
        wm, total = {}, 0
        for i, sh in enumerate(shards):
            fn = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(sh, os.path.join(stage, fn), metadata={"format": "pt"})
            for k, t in sh.items():
                wm[k] = fn
                total += t.numel() * t.element_size()
        with open(os.path.join(stage, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)
    for fn in carried_files(student_dir):
        shutil.copy2(os.path.join(student_dir, fn), os.path.join(stage, fn))
    # Into place: config.json removed first and moved last; weights of an earlier write removed.
    cfg = os.path.join(out_dir, "config.json")
    if os.path.exists(cfg):
        os.remove(cfg)
    for fn in os.listdir(out_dir):
        if fn.startswith("model") and _is_weight_file(fn):
            os.remove(os.path.join(out_dir, fn))
    names = sorted(os.listdir(stage), key=lambda n: (n == "config.json", n))
    for fn in names:
        os.replace(os.path.join(stage, fn), os.path.join(out_dir, fn))
    os.rmdir(stage)
