"""Linear regression in context (Garg et al. 2022, Akyürek et al. 2022).

``x ~ N(0, x_scale^2 I_d)``, ``w ~ N(0, I_d)`` drawn per prompt, ``y = w . x + noise_std * eps``.
With a curriculum, the inactive coordinates of x (and of w) are zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from iclab.tasks.base import Curriculum, Task
from iclab.types import Prompts


@dataclass
class LinearRegressionConfig:
    name: str = "linear_regression"
    n_dims: int = 5  # input dimension d
    n_points: int = 11  # (x, y) pairs per prompt at the end of the curriculum
    noise_std: float = 0.0  # label noise sigma; ridge(lam = sigma^2) is then Bayes-optimal
    x_scale: float = 1.0  # standard deviation of each input coordinate
    curriculum: Curriculum = field(default_factory=Curriculum)

    def validate(self, path: str = "task") -> None:
        from iclab.config import require, require_finite, require_non_negative, require_positive

        require_positive(self, path, "n_dims", "n_points", "x_scale")
        require_non_negative(self, path, "noise_std")
        require_finite(self, path, "noise_std", "x_scale")
        cur = self.curriculum
        if cur.dims_start is not None:
            require(cur.dims_start <= self.n_dims, f"{path}.curriculum.dims_start",
                    f"must be at most task.n_dims ({self.n_dims})", cur.dims_start)
        if cur.points_start is not None:
            require(cur.points_start <= self.n_points, f"{path}.curriculum.points_start",
                    f"must be at most task.n_points ({self.n_points})", cur.points_start)


class LinearRegression(Task):
    """Noisy or noiseless linear regression with a standard Gaussian prior on the weights."""

    Config = LinearRegressionConfig
    name = "linear_regression"

    def sample(self, batch_size: int, generator: torch.Generator, n_active_dims: int, n_points: int) -> Prompts:
        c = self.config
        d = c.n_dims
        xs = torch.randn(batch_size, n_points, d, generator=generator) * c.x_scale  # (B, N, d)
        w = torch.randn(batch_size, d, generator=generator)  # (B, d)
        if n_active_dims < d:
            xs[:, :, n_active_dims:] = 0
            w[:, n_active_dims:] = 0
        ys = torch.einsum("bnd,bd->bn", xs, w)  # (B, N)
        if c.noise_std > 0:
            ys = ys + c.noise_std * torch.randn(batch_size, n_points, generator=generator)
        return Prompts(xs, ys, {"w": w})

    def relevant_learners(self) -> list[str]:
        noise = self.config.noise_std
        # posterior mean under w ~ N(0, I): min-norm least squares when noiseless, ridge(sigma^2) otherwise
        bayes = "least_squares" if noise == 0 else f"ridge(lam={noise**2:g})"
        rest = ["knn(k=3)", "averaging", "zero"]
        if noise > 0:
            rest.insert(0, "least_squares")
        return [bayes, *rest]
