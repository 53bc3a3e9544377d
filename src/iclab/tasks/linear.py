"""Linear function classes in context: ``y = w . x + noise_std * eps`` with ``x ~ N(0, x_scale^2 I_d)``.

The families differ in the prior on ``w`` (drawn per prompt):

- ``linear_regression``: ``w ~ N(0, I_d)`` (Garg et al. 2022; Akyürek et al. 2022). Bayes-optimal:
  min-norm least squares when noiseless, ridge with ``lam = noise_std^2`` otherwise.
- ``sparse_linear_regression``: ``sparsity`` nonzero coordinates, N(0, 1), on a uniformly random support
  (Garg et al.: k = 3). Reference: Lasso.
- ``sign_vector_regression``: ``w`` uniform on ``{-1, +1}^d`` (Panwar et al. 2023).
- ``low_rank_regression``: ``x`` and ``w`` are ``m x m`` matrices flattened (``d = m^2``), ``w = U V^T / sqrt(r)``
  of rank ``r`` with Gaussian factors (Panwar et al. 2023).
- ``gaussian_mixture_regression``: ``w ~ sum_c pi_c N(mu_c, I)`` with ``mu_c = +-mean_scale e_1``
  (Panwar et al. 2023); its posterior mean is the ``gmm_posterior`` learner.

With a curriculum, the inactive coordinates of x (and of w) are zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

from iclab.lazy import torch
from iclab.schema import require, require_finite, require_non_negative, require_positive
from iclab.tasks.base import TASKS, Curriculum, Task
from iclab.tasks.posterior import (
    combine,
    discrete_predictive,
    gaussian_predictive,
    likelihood_var,
    too_many,
)
from iclab.types import Prompts


@dataclass
class LinearRegressionConfig:
    name: str = "linear_regression"
    n_dims: int = 5  # input dimension d
    n_points: int = 11  # (x, y) pairs per prompt at the end of the curriculum
    noise_std: float = 0.0  # label noise sigma; ridge(lam = sigma^2) is then Bayes-optimal
    x_scale: float = 1.0  # standard deviation of each input coordinate (half-width for "uniform")
    x_distribution: Literal["gaussian", "uniform"] = "gaussian"  # N(0, x_scale^2), or U(-x_scale, x_scale) (von Oswald)
    curriculum: Curriculum = field(default_factory=Curriculum)

    def validate(self, path: str = "task") -> None:
        require_positive(self, path, "n_dims", "n_points", "x_scale")
        require_non_negative(self, path, "noise_std")
        require_finite(self, path, "noise_std", "x_scale")
        self.curriculum.check_sizes(path, self.n_dims, self.n_points)


class LinearTask(Task):
    """Shared sampling of the linear families; subclasses draw ``w`` in :meth:`sample_w`."""

    weight_vector = True

    def sample_w(
        self, batch_size: int, generator: torch.Generator, n_active_dims: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weights ``(B, d)`` and any extra ground truth for ``Prompts.info``."""
        raise NotImplementedError

    def sample(
        self, batch_size: int, generator: torch.Generator, n_active_dims: int, n_points: int, sample_w=None
    ) -> Prompts:
        """Prompts with weights from ``sample_w`` (default: the family's :meth:`sample_w`)."""
        c = self.config
        d = c.n_dims
        if c.x_distribution == "uniform":
            xs = (torch.rand(batch_size, n_points, d, generator=generator) * 2 - 1) * c.x_scale  # (B, N, d)
        else:
            xs = torch.randn(batch_size, n_points, d, generator=generator) * c.x_scale  # (B, N, d)
        w, extra = (sample_w or self.sample_w)(batch_size, generator, n_active_dims)  # (B, d)
        if n_active_dims < d:
            xs[:, :, n_active_dims:] = 0
            w[:, n_active_dims:] = 0
        ys = torch.einsum("bnd,bd->bn", xs, w)  # (B, N)
        if c.noise_std > 0:
            ys = ys + c.noise_std * torch.randn(batch_size, n_points, generator=generator)
        return Prompts(xs, ys, {"w": w, **extra})

    def label(self, xs, info):
        return torch.einsum("bnd,bd->bn", xs, info["w"].to(xs))

    def _bayes_gaussian(self) -> str:
        noise = self.config.noise_std
        return "least_squares" if noise == 0 else f"ridge(lam={noise**2:g})"

    def relevant_learners(self) -> list[str]:
        return ["least_squares", "knn(k=3)", "averaging", "zero"]


@TASKS.register
class LinearRegression(LinearTask):
    """Noisy or noiseless linear regression with a standard Gaussian prior on the weights."""

    Config = LinearRegressionConfig

    def sample_w(self, batch_size, generator, n_active_dims):
        return torch.randn(batch_size, self.n_dims, generator=generator), {}

    def posterior(self, xs, ys):
        return gaussian_predictive(xs, ys, likelihood_var(self))

    def relevant_learners(self) -> list[str]:
        # posterior mean under w ~ N(0, I): min-norm least squares when noiseless, ridge(sigma^2) otherwise
        bayes = self._bayes_gaussian()
        rest = ["knn(k=3)", "averaging", "zero"]
        if bayes != "least_squares":
            rest.insert(0, "least_squares")
        return [bayes, *rest]


@dataclass
class SparseLinearRegressionConfig(LinearRegressionConfig):
    name: str = "sparse_linear_regression"
    n_dims: int = 10
    n_points: int = 21
    sparsity: int = 3  # nonzero coordinates of w

    def validate(self, path: str = "task") -> None:
        super().validate(path)
        require_positive(self, path, "sparsity")
        require(
            self.sparsity <= self.n_dims,
            f"{path}.sparsity",
            f"must be at most task.n_dims ({self.n_dims})",
            self.sparsity,
        )


@TASKS.register
class SparseLinearRegression(LinearTask):
    """``sparsity`` nonzero N(0, 1) coordinates on a uniformly random support."""

    Config = SparseLinearRegressionConfig

    @property
    def error_scale(self) -> float:
        return float(self.config.sparsity)

    def sample_w(self, batch_size, generator, n_active_dims):
        k = min(self.config.sparsity, n_active_dims)
        w = torch.randn(batch_size, self.n_dims, generator=generator)
        support = torch.rand(batch_size, n_active_dims, generator=generator).argsort(-1)[:, :k]  # (B, k)
        mask = torch.zeros(batch_size, self.n_dims, dtype=torch.bool)
        mask.scatter_(1, support, True)
        return w * mask, {}

    def relevant_learners(self) -> list[str]:
        return [
            "lasso(alpha=0.1)",
            "lasso(alpha=0.01)",
            "lasso(alpha=0.001)",
            "least_squares",
            "knn(k=3)",
            "averaging",
            "zero",
        ]

    def posterior(self, xs, ys):
        # the Gaussian recursion on every support of size k, weighed by its evidence
        k = self.config.sparsity
        supports = list(combinations(range(self.n_dims), k))
        index = torch.tensor(supports, device=xs.device)  # (S, k)
        b, n, _ = xs.shape
        sub = xs[:, :, index].permute(0, 2, 1, 3).reshape(b * len(supports), n, k)  # (B*S, N, k)
        pred, log_ev = gaussian_predictive(sub, ys.repeat_interleave(len(supports), 0), likelihood_var(self))
        pred, log_ev = pred.view(b, -1, n), log_ev.view(b, -1, n)
        log_joint = log_ev - math.log(len(supports))
        return (torch.softmax(log_joint, 1) * pred).sum(1), torch.logsumexp(log_joint, 1)

    def posterior_unsupported(self) -> str | None:
        return too_many(math.comb(self.n_dims, self.config.sparsity), "supports")


@dataclass
class SignVectorRegressionConfig(LinearRegressionConfig):
    name: str = "sign_vector_regression"
    n_dims: int = 8
    n_points: int = 17


@TASKS.register
class SignVectorRegression(LinearTask):
    """``w`` uniform on the corners of the hypercube ``{-1, +1}^d``."""

    Config = SignVectorRegressionConfig

    def relevant_learners(self) -> list[str]:
        bayes = ["sign_posterior"] if self.posterior_unsupported() is None else []
        return [*bayes, "linf_min", "least_squares", "knn(k=3)", "averaging", "zero"]

    def posterior(self, xs, ys):  # the posterior over all 2^d corners of the cube
        codes = torch.arange(2**self.n_dims).unsqueeze(-1).bitwise_right_shift(torch.arange(self.n_dims)).bitwise_and(1)
        return discrete_predictive(xs, ys, codes.to(xs.dtype) * 2 - 1, likelihood_var(self))

    def posterior_unsupported(self) -> str | None:
        return too_many(2**self.n_dims, "sign vectors")

    def sample_w(self, batch_size, generator, n_active_dims):
        return torch.randint(0, 2, (batch_size, self.n_dims), generator=generator).float() * 2 - 1, {}


@dataclass
class LowRankRegressionConfig(LinearRegressionConfig):
    name: str = "low_rank_regression"
    n_dims: int = 16  # must be a square m * m: x and w are m x m matrices, flattened
    n_points: int = 17
    rank: int = 1

    def validate(self, path: str = "task") -> None:
        super().validate(path)
        m = math.isqrt(self.n_dims)
        require(
            m * m == self.n_dims, f"{path}.n_dims", "must be a perfect square (x and w are m x m matrices)", self.n_dims
        )
        require_positive(self, path, "rank")
        require(self.rank <= m, f"{path}.rank", f"must be at most sqrt(task.n_dims) = {m}", self.rank)


@TASKS.register
class LowRankRegression(LinearTask):
    """``w = U V^T / sqrt(rank)`` with ``U, V`` of shape ``(m, rank)``, entries N(0, 1); ``y = <w, x>``."""

    Config = LowRankRegressionConfig

    def relevant_learners(self) -> list[str]:
        return ["nuclear_min", "least_squares", "knn(k=3)", "averaging", "zero"]

    def sample_w(self, batch_size, generator, n_active_dims):
        m, r = math.isqrt(self.n_dims), self.config.rank
        u = torch.randn(batch_size, m, r, generator=generator)
        v = torch.randn(batch_size, m, r, generator=generator)
        return (u @ v.transpose(1, 2) / math.sqrt(r)).reshape(batch_size, m * m), {}


@dataclass
class LinearClassificationConfig(LinearRegressionConfig):
    name: str = "linear_classification"
    n_dims: int = 5
    n_points: int = 21


@TASKS.register
class LinearClassification(LinearTask):
    """Labels ``sign(w . x)`` with ``w ~ N(0, I)`` (Garg et al. 2022). Trained with the logistic loss on
    the network's output; evaluated by classification error (a prediction of exactly 0 counts half)."""

    Config = LinearClassificationConfig
    regression = False  # labels are signs, scored by classification error

    @property
    def error_label(self) -> str:
        return "classification error"

    def sample_w(self, batch_size, generator, n_active_dims):
        return torch.randn(batch_size, self.n_dims, generator=generator), {}

    def sample(self, batch_size, generator, n_active_dims, n_points):
        prompts = super().sample(batch_size, generator, n_active_dims, n_points)
        return Prompts(prompts.xs, self._sign(prompts.ys), prompts.info)

    @staticmethod
    def _sign(ys: torch.Tensor) -> torch.Tensor:
        return torch.where(ys >= 0, torch.ones_like(ys), -torch.ones_like(ys))

    def label(self, xs, info):
        return self._sign(super().label(xs, info))

    def noisy_label(self, xs, info, generator):
        # as in sampling: the noise acts on w . x, before the sign
        scores = super().label(xs, info)
        if self.config.noise_std > 0:
            scores = scores + self.config.noise_std * torch.randn(scores.shape, generator=generator)
        return self._sign(scores)

    def loss(self, pred, ys):
        return torch.nn.functional.binary_cross_entropy_with_logits(pred, (ys + 1) / 2)

    def error(self, pred, ys):
        agree = pred * ys
        return (agree < 0).to(pred.dtype) + 0.5 * (agree == 0).to(pred.dtype)


@dataclass
class GaussianMixtureRegressionConfig(LinearRegressionConfig):
    name: str = "gaussian_mixture_regression"
    n_dims: int = 5
    noise_std: float = 0.1
    mean_scale: float = 3.0  # component means are +mean_scale * e_1 and -mean_scale * e_1
    weights: list[float] = field(default_factory=lambda: [0.5, 0.5])  # mixing weights of the two components

    def validate(self, path: str = "task") -> None:
        super().validate(path)
        require_finite(self, path, "mean_scale")
        require(
            len(self.weights) == 2 and all(w >= 0 for w in self.weights) and abs(sum(self.weights) - 1) < 1e-6,
            f"{path}.weights",
            "must be two non-negative numbers summing to 1",
            self.weights,
        )


@TASKS.register
class GaussianMixtureRegression(LinearTask):
    """``w ~ pi_1 N(+m e_1, I) + pi_2 N(-m e_1, I)``; ``info["component"]`` says which."""

    Config = GaussianMixtureRegressionConfig

    @property
    def error_scale(self) -> float:
        return self.n_dims + self.config.mean_scale**2

    def means(self) -> torch.Tensor:  # (2, d)
        mu = torch.zeros(2, self.n_dims)
        mu[0, 0], mu[1, 0] = self.config.mean_scale, -self.config.mean_scale
        return mu

    def sample_w(self, batch_size, generator, n_active_dims):
        comp = (torch.rand(batch_size, generator=generator) >= self.config.weights[0]).long()
        w = torch.randn(batch_size, self.n_dims, generator=generator) + self.means()[comp]
        return w, {"component": comp}

    def relevant_learners(self) -> list[str]:
        return ["gmm_posterior", self._bayes_gaussian(), "knn(k=3)", "averaging", "zero"]

    def posterior(self, xs, ys):  # each component's Gaussian posterior, weighed by its evidence
        weights = torch.tensor(self.config.weights, dtype=xs.dtype).log()
        parts = [gaussian_predictive(xs, ys, likelihood_var(self), prior_mean=mu) for mu in self.means()]
        return combine(parts, weights)
