"""Distribution shifts applied to held-out prompts at evaluation time.

``standard`` is the training distribution. Each shift maps ``(task, n_prompts, seed) -> Prompts``.
"""

from __future__ import annotations

from typing import Callable

from iclab.types import Prompts


def _standard(task, n_prompts: int, seed: int) -> Prompts:
    return task.eval_prompts(n_prompts, seed)


SHIFTS: dict[str, Callable] = {
    "standard": _standard,
}


def apply_shift(name: str, task, n_prompts: int, seed: int) -> Prompts:
    return SHIFTS[name](task, n_prompts, seed)
