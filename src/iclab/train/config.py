"""The ``train`` section of a run config."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    steps: int = 5000  # optimiser steps in total
    batch_size: int = 64  # prompts per step
    lr: float = 1e-3  # peak learning rate (AdamW)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 200  # linear warm-up from 0 to lr (capped at steps)
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # clip the global gradient norm; 0 turns clipping off
    loss_on: str = "all"  # "all" positions, or only the "last" (the query of von Oswald et al.)
    seed: int = 0  # the training batch at step t is a function of (seed, t)
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:N"
    threads: int | None = None  # torch CPU threads; null leaves torch's default
    log_every: int = 50  # steps between metrics.jsonl lines (and plain progress lines)
    eval_every: int = 250  # steps between quick held-out evaluations logged to metrics.jsonl; 0 = never
    eval_prompts: int = 512  # prompts in that quick held-out evaluation
    checkpoint_every: int = 1000  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk

    def validate(self, path: str = "train") -> None:
        from iclab.config import require, require_finite, require_non_negative, require_positive

        require_positive(self, path, "steps", "batch_size", "lr", "log_every", "checkpoint_every",
                         "keep_checkpoints", "eval_prompts")
        require_finite(self, path, "lr", "weight_decay", "min_lr_ratio", "grad_clip", "beta1", "beta2")
        require_non_negative(self, path, "weight_decay", "warmup_steps", "grad_clip", "eval_every", "seed")
        require(0 <= self.min_lr_ratio <= 1, f"{path}.min_lr_ratio", "must be between 0 and 1", self.min_lr_ratio)
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            require(0 <= value < 1, f"{path}.{name}", "must be in [0, 1)", value)
        require(self.loss_on in ("all", "last"), f"{path}.loss_on", "must be 'all' or 'last'", self.loss_on)
        if self.threads is not None:
            require_positive(self, path, "threads")
