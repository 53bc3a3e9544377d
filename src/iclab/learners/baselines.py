"""Trivial baselines: predict zero, and averaging (Garg et al. 2022, ``w_hat = mean_j y_j x_j``)."""

from __future__ import annotations

from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner, exclusive_cumsum


@LEARNERS.register
class Zero(ReferenceLearner):
    """Predicts 0 everywhere: the error of the prior mean, ``E[y^2] / d = 1`` for standard regression."""

    name = "zero"

    def __init__(self) -> None:
        super().__init__()

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(ys)


@LEARNERS.register
class Averaging(ReferenceLearner):
    """``y_hat_i = x_i . w_hat`` with ``w_hat = (1/(i)) sum_{j<i} y_j x_j``; predicts 0 with no examples."""

    name = "averaging"

    def __init__(self) -> None:
        super().__init__()

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        n = xs.shape[1]
        sums = exclusive_cumsum(xs * ys.unsqueeze(-1), dim=1)  # (B, N, d)
        counts = torch.arange(n, dtype=xs.dtype, device=xs.device).clamp_min(1).view(1, n, 1)
        return ((sums / counts) * xs).sum(-1)
