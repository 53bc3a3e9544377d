"""Checks of the function-class catalogue with trained transformers (issue 3), at CPU scale.

    python benchmarks/catalogue_checks.py [--steps 3000] [--only pool8,fresh,sparse,representation] [--set KEY=VALUE]

Trains a 4-layer, width-64 transformer (stacked encoder) per check into /tmp/iclab-checks/<name> and
compares its predictions on held-out prompts with the reference learners by mean squared prediction
difference (lower = the model behaves more like that learner) and by error:

- pool8: task pool with M = 8 (d = 8, 16 points, sigma = 0.5): closer to dMMSE than to ridge on pool tasks;
- fresh: unbounded pool (fresh Gaussian tasks): error tracks ridge(lam = 0.25);
- sparse: sparse regression (d = 10, k = 3): closer to Lasso than to least squares for k < d examples;
- representation: y = <w, Phi(x)>: closer to ridge on Phi(x) than to ridge on x.
"""

from __future__ import annotations

import argparse
import json

import torch

from _common import SMOKE_OVERRIDES, scratch, small, train_fresh
from iclab.config import load_config
from iclab.learners import make_learner
from iclab.rundir import load_model
from iclab.tasks import make_task

COMMON = [
    "model.encoder=stacked",
    "model.n_layer=4",
    "model.n_embd=64",
    "model.n_head=4",
    "train.lr=1e-3",
    "train.warmup_steps=200",
    "train.threads=2",
    "train.device=cpu",
    "train.eval_every=500",
    "train.checkpoint_every=100000",
]

CHECKS = {
    "pool8": (["task.name=task_pool", "task.pool_size=8"], ["dmmse", "ridge(lam=0.25)"]),
    "fresh": (
        ["task.name=linear_regression", "task.n_dims=8", "task.n_points=16", "task.noise_std=0.5"],
        ["ridge(lam=0.25)", "least_squares"],
    ),
    "sparse": (
        ["task.name=sparse_linear_regression", "task.n_dims=10", "task.n_points=21", "task.sparsity=3"],
        ["lasso(alpha=0.1)", "lasso(alpha=0.01)", "least_squares"],
    ),
    "sparse_small": (
        ["task.name=sparse_linear_regression", "task.n_dims=8", "task.n_points=13", "task.sparsity=2"],
        ["lasso(alpha=0.1)", "sparse_posterior", "least_squares"],
    ),
    "sparse_tiny": (
        ["task.name=sparse_linear_regression", "task.n_dims=5", "task.n_points=11", "task.sparsity=1"],
        ["lasso(alpha=0.1)", "lasso(alpha=0.01)", "sparse_posterior", "least_squares"],
    ),
    "sparse_short": (
        ["task.name=sparse_linear_regression", "task.n_dims=5", "task.n_points=5", "task.sparsity=1"],
        ["lasso(alpha=0.1)", "lasso(alpha=0.01)", "sparse_posterior", "least_squares"],
    ),
    "representation": (["task.name=representation"], ["feature_ridge(lam=0.01)", "ridge(lam=0.01)"]),
}


def run_check(name: str, steps: int, threads: int = 2, extra: tuple[str, ...] = ()) -> dict:
    overrides, learners = CHECKS[name]
    out = scratch(f"iclab-checks/{name}")
    cfg = load_config(
        None, [*COMMON, *overrides, f"train.steps={steps}", f"train.threads={threads}", *extra, *SMOKE_OVERRIDES]
    )
    seconds = train_fresh(cfg, out)
    _, model, _ = load_model(out)
    task = make_task(cfg.task)
    prompts = task.eval_prompts(small(1000, 16), seed=99)
    pred = model.predict(prompts).double()
    ys = prompts.ys.double()
    scale = task.error_scale
    k_max = cfg.task.n_dims if name.startswith("sparse") else cfg.task.n_points  # sparse: k < d only
    result = {
        "check": name,
        "train_seconds": round(seconds, 1),
        "steps": steps,
        "model_error": round(((pred - ys) ** 2)[:, 1:k_max].mean().item() / scale, 4),
    }
    for spec in learners:
        ref = make_learner(spec, task=task).predict(prompts).double()
        result[f"error {spec}"] = round(((ref - ys) ** 2)[:, 1:k_max].mean().item() / scale, 4)
        result[f"diff to {spec}"] = round(((pred - ref) ** 2)[:, 1:k_max].mean().item() / scale, 4)
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--only", default="pool8,fresh,sparse,representation")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", action="append", default=[], help="a further config override, e.g. train.batch_size=256")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.only.split(","):
        print(json.dumps(run_check(name, args.steps, args.threads, tuple(args.set))), flush=True)


if __name__ == "__main__":
    main()
