"""Learning-rate schedule: linear warmup then cosine decay to 0 (diffusers' "cosine", as Diffusion
Policy trains: docs/background.md).

A pure function of the step rather than a torch LRScheduler object: on resume the LR is recomputed
from the restored step, so there is no scheduler state to save (and none to get out of sync).
"""
from __future__ import annotations

import math


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Multiplier on the base LR for optimizer step `step` (0-based)."""
    if warmup > 0 and step < warmup:
        return float(step + 1) / float(warmup)  # +1: the very first update is not a zero-LR no-op
    if total <= warmup:
        return 1.0
    progress = min(1.0, float(step - warmup) / float(max(1, total - warmup)))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_lr(optimizer, base_lr: float, step: int, warmup: int, total: int) -> float:
    lr = base_lr * lr_factor(step, warmup, total)
    for group in optimizer.param_groups:
        # param groups may carry their own scale (e.g. a smaller LR for a pretrained encoder)
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr
