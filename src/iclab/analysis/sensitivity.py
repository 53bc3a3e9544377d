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
