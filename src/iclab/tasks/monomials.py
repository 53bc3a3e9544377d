"""Degree-2 monomial regression (Panwar et al. 2023).

A fixed set of ``n_monomials`` products ``x_i x_j`` (``i <= j``), chosen once from ``monomial_seed``;
``y = sum_s w_s x_{i_s} x_{j_s} + noise``, ``w ~ N(0, I)`` per prompt, ``x ~ N(0, I_d)``. The posterior
mean is (min-norm) least squares on those monomials: ``feature_least_squares`` / ``feature_ridge``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from iclab.lazy import torch
from iclab.schema import require, require_non_negative, require_positive
from iclab.tasks.base import TASKS, FeatureTask
from iclab.tasks.linear import LinearRegressionConfig


@dataclass
class MonomialRegressionConfig(LinearRegressionConfig):
    name: str = "monomial_regression"
    n_dims: int = 5
    n_points: int = 21
    n_monomials: int = 6  # how many of the d (d + 1) / 2 degree-2 monomials the functions use
    monomial_seed: int = 0

    def validate(self, path: str = "task") -> None:
        super().validate(path)
        require_positive(self, path, "n_monomials")
        require_non_negative(self, path, "monomial_seed")
        total = self.n_dims * (self.n_dims + 1) // 2
        require(
            self.n_monomials <= total,
            f"{path}.n_monomials",
            f"must be at most d (d + 1) / 2 = {total}",
            self.n_monomials,
        )


@TASKS.register
class MonomialRegression(FeatureTask):
    """Linear combinations of a fixed set of degree-2 monomials ``x_i x_j`` (Panwar et al. 2023)."""

    Config = MonomialRegressionConfig

    @cached_property
    def pairs(self) -> torch.Tensor:  # (2, S): the chosen monomials x_i x_j, made on first use
        c = self.config
        pairs = torch.triu_indices(c.n_dims, c.n_dims)  # (2, d (d + 1) / 2), i <= j
        g = torch.Generator().manual_seed(3_000_017 + c.monomial_seed)
        chosen = torch.randperm(pairs.shape[1], generator=g)[: c.n_monomials].sort().values
        return pairs[:, chosen]

    @property
    def error_scale(self) -> float:
        i, j = self.pairs
        return float(sum(3.0 if a == b else 1.0 for a, b in zip(i.tolist(), j.tolist())))  # E[y^2], x ~ N(0, I)

    def features(self, xs: torch.Tensor) -> torch.Tensor:
        i, j = self.pairs.to(xs.device)
        return xs[..., i] * xs[..., j]  # (B, N, S)

    @property
    def n_features(self) -> int:
        return self.config.n_monomials

    def relevant_learners(self) -> list[str]:
        return [self._bayes_on_features(), "least_squares", "knn(k=3)", "averaging", "zero"]
