"""The two types everything else is built on: a batch of prompts, and a learner.

A prompt is ``(x_1, y_1, ..., x_N, y_N)``. A learner predicts, for every position ``i``, the label
``y_i`` from the prefix ``(x_1, y_1, ..., x_{i-1}, y_{i-1}, x_i)`` only, so one call scores every
number of in-context examples ``k = 0 .. N-1`` at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from iclab.lazy import torch


@dataclass
class Prompts:
    """A batch of in-context regression prompts.

    Attributes:
        xs: inputs, shape ``(B, N, d)``.
        ys: labels, shape ``(B, N)``.
        info: per-prompt ground truth (e.g. ``"w"`` of shape ``(B, d)``) for Bayes learners and probes.
    """

    xs: torch.Tensor  # (B, N, d)
    ys: torch.Tensor  # (B, N); class indices (as floats) for classification into n_classes classes
    info: dict[str, torch.Tensor] = field(default_factory=dict)
    n_classes: int | None = None  # set for multi-class tasks: learners then return (B, N, C) scores

    def __post_init__(self) -> None:
        if self.xs.dim() != 3:
            raise ValueError(f"Prompts.xs must have shape (B, N, d), got {tuple(self.xs.shape)}")
        if self.ys.shape != self.xs.shape[:2]:
            raise ValueError(
                f"Prompts.ys must have shape (B, N) = {tuple(self.xs.shape[:2])}, got {tuple(self.ys.shape)}"
            )

    @property
    def batch_size(self) -> int:
        return self.xs.shape[0]

    @property
    def n_points(self) -> int:
        return self.xs.shape[1]

    @property
    def n_dims(self) -> int:
        return self.xs.shape[2]

    def to(self, device: torch.device | str) -> "Prompts":
        return Prompts(self.xs.to(device), self.ys.to(device), {k: v.to(device) for k, v in self.info.items()},
                       self.n_classes)

    def __getitem__(self, index: slice) -> "Prompts":
        """Select prompts along the batch dimension: ``prompts[0:64]``."""
        return Prompts(self.xs[index], self.ys[index], {k: v[index] for k, v in self.info.items()}, self.n_classes)

    @staticmethod
    def cat(parts: list["Prompts"]) -> "Prompts":
        keys = parts[0].info.keys()
        return Prompts(
            torch.cat([p.xs for p in parts]),
            torch.cat([p.ys for p in parts]),
            {k: torch.cat([p.info[k] for p in parts]) for k in keys},
            parts[0].n_classes,
        )


@runtime_checkable
class Learner(Protocol):
    """Anything that predicts every label of a prompt from its prefix.

    ``predict(prompts)[:, i]`` may depend on ``xs[:, : i + 1]`` and ``ys[:, :i]`` only.
    Trained networks (see :class:`iclab.models.ICLModel`) and reference algorithms
    (:mod:`iclab.learners`) both satisfy this protocol, so evaluation loops over learners
    without caring which kind it holds.
    """

    @property
    def label(self) -> str:
        """A short name for tables and plots, e.g. ``"ridge(lam=0.25)"``."""
        ...

    def predict(self, prompts: Prompts) -> torch.Tensor:  # (B, N)
        ...
