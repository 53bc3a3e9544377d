"""Learning-rate schedule: linear warm-up, then cosine decay to ``lr * min_lr_ratio``.

A pure function of the step, so it needs no state in a checkpoint.
"""

from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Learning rate used for the update that takes the model from ``step`` to ``step + 1``."""
    warmup_steps = min(warmup_steps, steps)
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    floor = lr * min_lr_ratio
    return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
