"""Fourier series in context (Panwar, Ahuja, Goyal 2023).

One-dimensional ``x ~ U(-L, L)`` (``L = 5``) and
``f(x) = a_0 + sum_{k=1..K} a_k cos(k pi x / L) + b_k sin(k pi x / L)`` with all coefficients N(0, 1)
drawn per prompt; ``y = f(x) + noise_std * eps``. The posterior mean is ridge on the Fourier features
with ``lam = noise_std^2`` (min-norm least squares on them when noiseless): ``feature_ridge``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from iclab.lazy import torch
from iclab.schema import require, require_non_negative, require_positive
from iclab.tasks.base import TASKS, Curriculum, FeatureTask


@dataclass
class FourierSeriesConfig:
    name: str = "fourier_series"
    n_dims: int = 1  # fixed: the inputs are scalars
    n_points: int = 21
    max_frequency: int = 4  # K
    half_period: float = 5.0  # L: x ~ U(-L, L), frequencies k pi / L
    noise_std: float = 0.0
    curriculum: Curriculum = field(default_factory=Curriculum)

    def validate(self, path: str = "task") -> None:
        require(self.n_dims == 1, f"{path}.n_dims", "must be 1 for fourier_series", self.n_dims)
        require_positive(self, path, "n_points", "max_frequency", "half_period")
        require_non_negative(self, path, "noise_std")


@TASKS.register
class FourierSeries(FeatureTask):
    """Random 1-D Fourier series up to frequency ``max_frequency``, ``x ~ U(-L, L)`` (Panwar et al. 2023);
    ``info["w"]`` holds the coefficients."""

    Config = FourierSeriesConfig

    @property
    def error_scale(self) -> float:
        return 1.0 + self.config.max_frequency  # E[f(x)^2]

    @property
    def periodic_domain(self) -> tuple[float, float]:
        return -self.config.half_period, self.config.half_period

    @property
    def max_frequency(self) -> int:
        return self.config.max_frequency

    def features(self, xs: torch.Tensor) -> torch.Tensor:
        c = self.config
        k = torch.arange(1, c.max_frequency + 1, dtype=xs.dtype, device=xs.device)
        angle = xs[..., :1] * k * math.pi / c.half_period  # (B, N, K)
        return torch.cat([torch.ones_like(xs[..., :1]), torch.cos(angle), torch.sin(angle)], dim=-1)  # (B, N, 2K+1)

    @property
    def n_features(self) -> int:
        return 2 * self.config.max_frequency + 1

    def sample_inputs(self, batch_size, generator, n_active_dims, n_points):
        return (torch.rand(batch_size, n_points, 1, generator=generator) * 2 - 1) * self.config.half_period

    def relevant_learners(self) -> list[str]:
        return [self._bayes_on_features(), "knn(k=3)", "zero"]
