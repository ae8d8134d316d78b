"""Training checkpoints: DIR/checkpoint/ holds state.json (step, the options that determine
the updates, the data-order state in the C++ trainer's form) and tensors.pt (every trained
tensor in float32 and the AdamW state, full, not sharded). Written into checkpoint.tmp and
renamed into place, so an interruption leaves the previous checkpoint or the new one."""
import json
import os
import shutil

from .models import InputError

FORMAT = "mlar_train-checkpoint"
VERSION = 1


def _fsync_dir(d):
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(ckpt_dir, state, tensors):
    """state: JSON-able dict; tensors: anything torch.save takes."""
    import torch
    tmp, old = ckpt_dir + ".tmp", ckpt_dir + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with open(os.path.join(tmp, "tensors.pt"), "wb") as f:
        torch.save(tensors, f)
        f.flush()
        os.fsync(f.fileno())
    with open(os.path.join(tmp, "state.json"), "w", encoding="utf-8") as f:
        json.dump({"format": FORMAT, "version": VERSION, **state}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(ckpt_dir):
        os.replace(ckpt_dir, old)
    os.replace(tmp, ckpt_dir)
    _fsync_dir(os.path.dirname(os.path.abspath(ckpt_dir)))
    shutil.rmtree(old, ignore_errors=True)


def read_state(ckpt_dir):
    f = os.path.join(ckpt_dir, "state.json")
    try:
        with open(f, encoding="utf-8") as fh:
            st = json.load(fh)
    except FileNotFoundError:
        raise InputError(f"{ckpt_dir}: no checkpoint to resume from") from None
    if st.get("format") != FORMAT or st.get("version") != VERSION:
        raise InputError(f"{f}: not a {FORMAT} version {VERSION} checkpoint")
    return st


def read_tensors(ckpt_dir):
    import torch
    return torch.load(os.path.join(ckpt_dir, "tensors.pt"), map_location="cpu", weights_only=False)


def truncate_log(path, step):
    """Keeps only the records of updates <= step (a resumed run redoes the later ones)."""
    if not os.path.exists(path):
        return
    kept = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                j = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the interruption
            if j.get("step", 0) <= step:
                kept.append(line if line.endswith("\n") else line + "\n")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(kept)
    os.replace(tmp, path)
