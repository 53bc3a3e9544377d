"""Linear functions of a fixed learned-looking representation (Guo et al. 2023).

``y = <w, Phi(x)> + noise_std * eps`` where ``Phi`` is a fixed random two-layer ReLU MLP
``R^d -> R^phi_dim`` (weights drawn once from ``phi_seed``, shared by all prompts) and ``w ~ N(0, I)`` is
drawn per prompt. The optimal learner is ridge on ``Phi(x)`` (``feature_ridge``), not ridge on ``x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from iclab.lazy import torch
from iclab.schema import require_non_negative, require_positive
from iclab.tasks.base import TASKS, FeatureTask
from iclab.tasks.linear import LinearRegressionConfig


@dataclass
class RepresentationConfig(LinearRegressionConfig):
    name: str = "representation"
    n_dims: int = 5
    n_points: int = 21
    noise_std: float = 0.1
    phi_dim: int = 5  # output width of Phi
    phi_hidden: int = 32  # hidden width of Phi
    phi_seed: int = 0

    def validate(self, path: str = "task") -> None:
        super().validate(path)
        require_positive(self, path, "phi_dim", "phi_hidden")
        require_non_negative(self, path, "phi_seed")


@TASKS.register
class Representation(FeatureTask):
    """``y = <w, Phi(x)> + noise`` with a fixed random two-layer ReLU MLP ``Phi`` (Guo et al. 2023)."""

    """``y = <w, Phi(x)> + noise`` with a fixed random ReLU MLP ``Phi``."""

    Config = RepresentationConfig

    @cached_property
    def _phi(self) -> tuple:  # Phi's two weight matrices, made on first use
        c = self.config
        g = torch.Generator().manual_seed(2_000_003 + c.phi_seed)
        a1 = torch.randn(c.n_dims, c.phi_hidden, generator=g) * math.sqrt(2 / c.n_dims)
        a2 = torch.randn(c.phi_hidden, c.phi_dim, generator=g) / math.sqrt(c.phi_hidden)
        return a1, a2

    @property
    def error_scale(self) -> float:
        return float(self.config.phi_dim)

    def features(self, xs: torch.Tensor) -> torch.Tensor:
        a1, a2 = (a.to(xs) for a in self._phi)
        return torch.relu(xs @ a1) @ a2  # (B, N, phi_dim)

    @property
    def n_features(self) -> int:
        return self.config.phi_dim

    def relevant_learners(self) -> list[str]:
        noise = self.config.noise_std
        on_x = "least_squares" if noise == 0 else f"ridge(lam={noise**2:g})"
        return [self._bayes_on_features(), on_x, "knn(k=3)", "averaging", "zero"]
