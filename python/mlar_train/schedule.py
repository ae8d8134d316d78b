"""The learning-rate schedule of the C++ trainer (src/train/adamw.cpp, LrSchedule::at)."""
import math


def lr_at(step, peak, min_ratio, warmup, total):
    """Learning rate of update `step` (0-based) of `total`: linear warmup to `peak` over
    `warmup` updates, then cosine decay to peak * min_ratio at the last update."""
    if step < warmup:
        return peak * (step + 1) / warmup
    span = total - warmup
    if span <= 1:
        return peak
    progress = (step - warmup) / (span - 1)
    lo = peak * min_ratio
    return lo + 0.5 * (peak - lo) * (1.0 + math.cos(math.pi * min(1.0, progress)))
