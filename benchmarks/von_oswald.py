"""von Oswald et al. 2022's check: one trained linear self-attention layer against one GD step.

    python benchmarks/von_oswald.py [--steps 5000]

Trains the ``von_oswald2022_lsa`` recipe (d = 10, N = 10, x ~ U(-0.5, 0.5), Adam 1e-3, batch 2048), then on
10000 held-out prompts reports the loss 0.5 * MSE at the query for the trained layer, for one GD step at
the best step size (scanned), and for predicting zero, and the cosine similarity of the sensitivities
d y_hat / d x_q between the trained layer and the GD construction; then GD with K = 1, 2, 3 step sizes
learned on the same prompts (``iclab.analysis.step_size.learn_gd_lrs``), the losses K constructed layers reach.
"""

from __future__ import annotations

import argparse

import torch

from _common import SMOKE_OVERRIDES, scratch, small, train_fresh
from iclab.analysis import query_sensitivity, sensitivity_cosine
from iclab.analysis.step_size import gd_lr_scan, gd_query_error, learn_gd_lrs
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.learners import make_learner
from iclab.recipes import von_oswald2022_lsa
from iclab.rundir import load_model
from iclab.tasks import make_task


def query_loss(pred: torch.Tensor, ys: torch.Tensor) -> float:
    return 0.5 * ((pred[:, -1] - ys[:, -1]) ** 2).mean().item()


def best_gd_step(prompts, grid=None) -> tuple[float, float]:
    grid = grid or [x / 10 for x in range(10, 121)]
    eta, mse = min(gd_lr_scan(prompts.xs, prompts.ys, grid), key=lambda t: t[1])
    return 0.5 * mse, eta


def run(steps: int, out: str | None = None) -> dict:
    out = out or scratch("iclab-von-oswald")
    cfg = run_config_from_dict(
        apply_overrides(to_dict(von_oswald2022_lsa(steps)), ["train.device=cpu", *SMOKE_OVERRIDES])
    )
    seconds = train_fresh(cfg, out)
    _, model, _ = load_model(out)
    prompts = make_task(cfg.task).eval_prompts(small(10000, 64), seed=7)
    with torch.no_grad():
        trained = query_loss(model.predict(prompts), prompts.ys)
    gd_loss, eta = best_gd_step(prompts)
    zero = query_loss(torch.zeros_like(prompts.ys), prompts.ys)
    gd = make_learner(f"gd_lsa(lr={eta})")
    cos = sensitivity_cosine(query_sensitivity(model, prompts), query_sensitivity(gd._predict, prompts))
    learned = {}
    for k in (1, 2, 3):  # GD with K learned step sizes: what K constructed LSA layers can reach
        etas = learn_gd_lrs(prompts.xs, prompts.ys, steps=k, iters=small(300, 3), lr0=eta)
        loss_k = 0.5 * gd_query_error(prompts.xs.double(), prompts.ys.double(), etas, prompts.xs.shape[1] - 1).item()
        learned[f"gd_{k}_learned_steps"] = {"etas": [round(e, 3) for e in etas], "loss": round(loss_k, 4)}
    return {
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "trained_lsa_loss": round(trained, 4),
        "gd_best_loss": round(gd_loss, 4),
        "gd_best_eta": eta,
        "zero_loss": round(zero, 4),
        "sensitivity_cosine": round(cos, 4),
        **learned,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=5000)
    args = p.parse_args()
    torch.set_num_threads(2)
    print(run(args.steps))


if __name__ == "__main__":
    main()
