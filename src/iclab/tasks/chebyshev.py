"""Chebyshev function classes of the 2024 successor of Garg et al.'s codebase (in-context-learning-2024/in-context,
``function_classes/chebyshev.py``), on scalar inputs ``x ~ U(-1, 1)``:

- ``chebyshev_kernel_regression``: ``f(x) = sum_j w_j T_j(x)`` over the Chebyshev polynomials ``T_low .. T_high``
  (3 .. 11), ``w ~ N(0, I)``, and, as the reference does, every coefficient above a random cut zeroed: the cut is
  uniform over the ``high - low + 1`` positions, so a prompt uses ``T_low .. T_(low + c)``. The posterior mean is a
  mixture over the cuts of Bayesian linear regressions on the first ``c + 1`` features, weighed by their evidence
  (``posterior_mean``); ``feature_least_squares`` fits all of them.
- ``chebyshev_shared_roots``: a degree-``degree`` polynomial whose roots are the Chebyshev nodes
  ``cos((2k - 1) pi / (2 degree))`` each moved by ``U(-perturbation, perturbation)``, with a random sign, divided by
  its largest absolute value over the prompt's points (the reference's normalisation; ``info["scale"]`` keeps it, so
  moved inputs keep the function). Linear in ``T_0 .. T_degree``: ``feature_least_squares`` on them is determined by
  ``degree + 1`` points (exact once they are spread enough to be numerically independent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from iclab.lazy import torch
from iclab.schema import require, require_positive
from iclab.tasks.base import TASKS, FeatureTask, ScalarInputsConfig, Task, measured_error_scale
from iclab.tasks.posterior import gaussian_predictive, likelihood_var
from iclab.types import Prompts


def chebyshev_basis(x: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """``T_low(x) .. T_high(x)`` by the recurrence ``T_(n+1) = 2 x T_n - T_(n-1)``: ``(..., high - low + 1)``."""
    t = [torch.ones_like(x), x]
    for _ in range(2, high + 1):
        t.append(2 * x * t[-1] - t[-2])
    return torch.stack(t[low : high + 1], dim=-1)


@dataclass
class ChebyshevKernelConfig(ScalarInputsConfig):
    name: str = "chebyshev_kernel_regression"
    n_points: int = 41
    lowest_degree: int = 3
    highest_degree: int = 11
    noise_std: float = 0.0

    def validate(self, path: str = "task") -> None:
        self.check_scalar(path, "lowest_degree", "noise_std")
        require(
            self.highest_degree >= self.lowest_degree,
            f"{path}.highest_degree",
            f"must be at least task.lowest_degree ({self.lowest_degree})",
            self.highest_degree,
        )


@TASKS.register
class ChebyshevKernelRegression(FeatureTask):
    """Random combinations of Chebyshev polynomials ``T_low .. T_high``, cut at a random degree per prompt."""

    Config = ChebyshevKernelConfig

    @property
    def n_features(self) -> int:
        return self.config.highest_degree - self.config.lowest_degree + 1

    @property
    def error_scale(self) -> float:
        """``E[f(x)^2]``: feature ``j`` is kept with probability ``(F - j) / F`` and ``E[T_k(x)^2] = 1/2 - 1 / (2 (4
        k^2 - 1))`` for ``x ~ U(-1, 1)`` (``1`` for ``k = 0``)."""
        c, f = self.config, self.n_features
        second = [1.0 if k == 0 else 0.5 - 0.5 / (4 * k * k - 1) for k in range(c.lowest_degree, c.highest_degree + 1)]
        return sum((f - j) / f * m for j, m in enumerate(second))

    def features(self, xs: torch.Tensor) -> torch.Tensor:
        c = self.config
        return chebyshev_basis(xs[..., 0], c.lowest_degree, c.highest_degree)  # (B, N, F)

    def sample_inputs(self, batch_size, generator, n_active_dims, n_points):
        return torch.rand(batch_size, n_points, 1, generator=generator) * 2 - 1

    def sample(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        xs = self.sample_inputs(batch_size, generator, n_active_dims, n_points)
        w = torch.randn(batch_size, self.n_features, generator=generator)
        cut = torch.randint(0, self.n_features, (batch_size, 1), generator=generator)
        w = torch.where(torch.arange(self.n_features) > cut, torch.zeros_like(w), w)
        ys = self.label(xs, {"w": w})
        if self.config.noise_std > 0:
            ys = ys + self.config.noise_std * torch.randn(batch_size, n_points, generator=generator)
        return Prompts(xs, ys, {"w": w, "cut": cut.squeeze(-1)})

    def relevant_learners(self) -> list[str]:
        return ["posterior_mean", "feature_least_squares", "least_squares", "knn(k=3)", "zero"]

    def posterior(self, xs, ys):
        """A mixture over the cuts (uniform prior): per cut ``c``, Bayesian linear regression on the first ``c + 1``
        features, weighed by its evidence."""
        phi = self.features(xs)
        preds, evidence = [], []
        for c in range(self.n_features):
            pred, log_ev = gaussian_predictive(phi[..., : c + 1], ys, likelihood_var(self))
            preds.append(pred)
            evidence.append(log_ev)
        pred, log_ev = torch.stack(preds, 1), torch.stack(evidence, 1) - math.log(self.n_features)  # (B, F, N)
        return (torch.softmax(log_ev, 1) * pred).sum(1), torch.logsumexp(log_ev, 1)


@dataclass
class ChebyshevSharedRootsConfig(ScalarInputsConfig):
    name: str = "chebyshev_shared_roots"
    n_points: int = 41
    degree: int = 5
    perturbation: float = 0.2  # each root moves by U(-perturbation, perturbation) (the reference's tasks.yml: 0.2)

    def validate(self, path: str = "task") -> None:
        self.check_scalar(path, "perturbation")
        require_positive(self, path, "degree")


@TASKS.register
class ChebyshevSharedRoots(Task):
    """Polynomials with roots near the Chebyshev nodes, random sign, scaled to a largest value of 1 per prompt."""

    Config = ChebyshevSharedRootsConfig

    @cached_property
    def error_scale(self) -> float:
        return measured_error_scale(self)  # the per-prompt normalisation leaves no simple closed form

    def nodes(self) -> torch.Tensor:
        k = torch.arange(1, self.config.degree + 1, dtype=torch.float64)
        return torch.cos((2 * k - 1) * math.pi / (2 * self.config.degree)).float()

    def label(self, xs, info):
        roots, sign, scale = (info[k].to(xs) for k in ("roots", "sign", "scale"))
        values = (xs[..., :1] - roots.unsqueeze(1)).prod(-1)  # (B, N)
        return sign.unsqueeze(1) * values / scale.unsqueeze(1)

    def sample(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        c = self.config
        xs = torch.rand(batch_size, n_points, 1, generator=generator) * 2 - 1
        moves = (torch.rand(batch_size, c.degree, generator=generator) * 2 - 1) * c.perturbation
        roots = self.nodes() + moves
        sign = torch.randint(0, 2, (batch_size,), generator=generator).float() * 2 - 1
        values = (xs - roots.unsqueeze(1)).prod(-1)
        info = {"roots": roots, "sign": sign, "scale": values.abs().amax(1).clamp_min(1e-12)}
        return Prompts(xs, self.label(xs, info), info)

    def features(self, xs: torch.Tensor) -> torch.Tensor:
        """``T_0(x) .. T_degree(x)``: every polynomial of the family is linear in them (they span the polynomials of
        its degree, far better conditioned on [-1, 1] than the powers of x)."""
        return chebyshev_basis(xs[..., 0], 0, self.config.degree)

    @property
    def n_features(self) -> int:
        return self.config.degree + 1

    def relevant_learners(self) -> list[str]:
        return ["feature_least_squares", "least_squares", "knn(k=3)", "zero"]
