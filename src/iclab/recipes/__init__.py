"""Recipes: the papers' experiments as functions that return a run config.

``iclab demo`` runs :func:`demo`; ``iclab train --recipe NAME`` starts from any of ``RECIPES``.
"""

from __future__ import annotations

from iclab.config import RunConfig, run_config_from_dict


def demo() -> RunConfig:
    """Linear regression at laptop scale: d = 5, 11 points, a 4-layer width-64 transformer on 2 CPU cores.

    Uses the stacked encoder (one token per (x, y) pair, von Oswald et al.), with which in-context
    learning emerges within about a thousand steps; Garg et al.'s interleaved encoding needs several
    times longer on CPU (docs/benchmarks.md). Reaches squared error / d below 0.1 at k = 2d in about
    two minutes.
    """
    return run_config_from_dict({
        "name": "demo",
        "task": {"name": "linear_regression", "n_dims": 5, "n_points": 11},
        "model": {"name": "transformer", "encoder": "stacked", "n_layer": 4, "n_embd": 64, "n_head": 4},
        "train": {"steps": 3000, "batch_size": 64, "lr": 1e-3, "warmup_steps": 200, "min_lr_ratio": 0.1,
                  "threads": 2, "log_every": 50, "eval_every": 100, "checkpoint_every": 500},
        "eval": {"n_prompts": 1280},
    })


def garg2022_linear_regression() -> RunConfig:
    """Garg et al. 2022, linear regression at full scale (a GPU job): d = 20, 41 points, curriculum
    5 -> 20 dimensions and 11 -> 41 points every 2000 steps, GPT-2 12 layers x 256 wide x 8 heads,
    batch 64, Adam 1e-4, 500k steps."""
    return run_config_from_dict({
        "name": "garg2022_linear_regression",
        "task": {"name": "linear_regression", "n_dims": 20, "n_points": 41,
                 "curriculum": {"dims_start": 5, "dims_inc": 1, "dims_every": 2000,
                                "points_start": 11, "points_inc": 2, "points_every": 2000}},
        "model": {"name": "transformer", "encoder": "interleaved", "n_layer": 12, "n_embd": 256, "n_head": 8,
                  "n_positions": 101},
        "train": {"steps": 500_000, "batch_size": 64, "lr": 1e-4, "warmup_steps": 0, "min_lr_ratio": 1.0,
                  "grad_clip": 0.0, "log_every": 100, "eval_every": 2000, "checkpoint_every": 2000},
    })


RECIPES = {
    "demo": demo,
    "garg2022_linear_regression": garg2022_linear_regression,
}

__all__ = ["RECIPES", "demo", "garg2022_linear_regression"]
