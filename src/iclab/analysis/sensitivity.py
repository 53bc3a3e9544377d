"""Sensitivity analysis (von Oswald et al. 2022): how a learner's prediction for the query moves with
the query input, ``d y_hat / d x_q``, and how alike two learners are in that respect."""

from __future__ import annotations

import torch

from iclab.types import Prompts


def query_sensitivity(predict, prompts: Prompts) -> torch.Tensor:
    """``d y_hat_N / d x_N`` for the last position of every prompt, ``(B, d)``; ``predict(xs, ys)`` must be
    differentiable in ``xs`` (a network's forward, or a reference learner's ``_predict``)."""
    xs = prompts.xs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = predict(xs, prompts.ys)
        (grad,) = torch.autograd.grad(out[:, -1].sum(), xs)
    return grad[:, -1]


def sensitivity_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over prompts of the cosine similarity of two sensitivities ``(B, d)``."""
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).mean().item()


def order_sensitivity(learner, prompts: Prompts, n_permutations: int = 8, seed: int = 0) -> float:
    """Variance of the last position's prediction under random permutations of the demonstrations,
    averaged over prompts (0 for an order-invariant learner such as least squares or set-based prompting).

    Example::

        order_sensitivity(model, task.eval_prompts(256, seed=0))
    """
    g = torch.Generator().manual_seed(seed)
    n = prompts.n_points
    outs = []
    for _ in range(n_permutations):
        perm = torch.cat([torch.randperm(n - 1, generator=g), torch.tensor([n - 1])])
        shuffled = Prompts(prompts.xs[:, perm], prompts.ys[:, perm], prompts.info, prompts.n_classes)
        outs.append(learner.predict(shuffled)[:, -1].double())
    return torch.stack(outs).var(0, unbiased=True).mean().item()
