"""Sparse parity (the 2024 successor of Garg et al.'s codebase, in-context-learning-2024/in-context; after
Bhattamishra et al. 2023, "Understanding In-Context Learning in Transformers and LLMs by Learning to Learn Discrete
Functions").

Inputs are uniform on ``{-1, +1}^d``; each prompt draws a subset ``S`` of ``k`` coordinates, uniformly among the
``C(d, k)`` subsets, and labels ``y = prod_{i in S} x_i`` (the reference adds no noise; ``noise_std`` adds
Gaussian label noise), so ``E[y^2] = 1`` without noise. Under that uniform prior
the posterior over ``S`` after some examples is uniform over the subsets consistent with all of them, and the
Bayes predictor (posterior mean) is the average of ``prod_{i in S} x_q,i`` over those subsets: the *elimination*
learner ``parity_elimination``, exact for every prefix at once (each prefix's set of consistent subsets is a
running product of the per-example matches). With a curriculum on the dimensions, ``S`` is drawn among the active
coordinates (the inactive ones are zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

from iclab.lazy import torch
from iclab.schema import require, require_finite, require_non_negative, require_positive
from iclab.tasks.base import TASKS, Curriculum, Task
from iclab.tasks.posterior import too_many
from iclab.types import Prompts


@dataclass
class SparseParityConfig:
    name: str = "sparse_parity"
    n_dims: int = 10  # input dimension d
    n_points: int = 41  # (x, y) pairs per prompt
    k: int = 2  # coordinates in each prompt's parity
    noise_std: float = 0.0  # label noise sigma (the reference has none); the posterior then weighs subsets
    curriculum: Curriculum = field(default_factory=Curriculum)

    def validate(self, path: str = "task") -> None:
        require_positive(self, path, "n_dims", "n_points", "k")
        require_non_negative(self, path, "noise_std")
        require_finite(self, path, "noise_std")
        require(self.k <= self.n_dims, f"{path}.k", f"must be at most task.n_dims ({self.n_dims})", self.k)
        self.curriculum.check_sizes(path, self.n_dims, self.n_points, self.k, "task.k")


@TASKS.register
class SparseParity(Task):
    """The parity of ``k`` hidden coordinates of a ``{-1, +1}^d`` input, a fresh subset per prompt."""

    Config = SparseParityConfig

    @property
    def error_scale(self) -> float:
        return 1.0  # E[y^2]: predicting zero scores 1

    def label(self, xs, info):
        support = info["support"].to(xs.device)  # (B, k)
        picked = torch.gather(xs, 2, support.unsqueeze(1).expand(-1, xs.shape[1], -1))  # (B, N, k)
        return picked.prod(-1)

    def sample(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        c = self.config
        xs = torch.randint(0, 2, (batch_size, n_points, c.n_dims), generator=generator).float() * 2 - 1
        xs[:, :, n_active_dims:] = 0
        # a uniform k-subset of the active coordinates per prompt: the first k of a random permutation
        support = torch.rand(batch_size, n_active_dims, generator=generator).argsort(-1)[:, : c.k].sort(-1).values
        ys = self.label(xs, {"support": support})
        if c.noise_std > 0:
            ys = ys + c.noise_std * torch.randn(ys.shape, generator=generator)
        return Prompts(xs, ys, {"support": support})

    def relevant_learners(self) -> list[str]:
        exact = ["parity_elimination"] if self.posterior_unsupported() is None else []
        return [*exact, "least_squares", "knn(k=3)", "averaging", "zero"]

    def subsets(self, device=None) -> torch.Tensor:
        """Every candidate subset, ``(C(d, k), k)``."""
        return torch.tensor(list(combinations(range(self.n_dims), self.config.k)), device=device)

    def posterior(self, xs, ys):
        """The posterior mean over the subsets, every prefix at once. Without noise it is the elimination learner:
        ``pred[:, i]`` averages the query's parity over the subsets consistent with examples ``0 .. i - 1``, and
        ``log_evidence[:, i]`` is the log of the consistent share (``-inf`` once none is: labels no subset
        explains; it then predicts 0). With label noise sigma each subset is weighed by its Gaussian likelihood."""
        subsets = self.subsets(xs.device)  # (S, k)
        b, n, _ = xs.shape
        parities = xs[:, :, subsets].prod(-1)  # (B, N, S): each candidate's label for each point
        sigma = self.config.noise_std
        if sigma == 0:
            match = (parities - ys.unsqueeze(-1)).abs() <= 1e-6
            consistent = torch.ones(b, n, len(subsets), dtype=torch.bool, device=xs.device)
            consistent[:, 1:] = torch.cummin(match[:, :-1].to(torch.uint8), dim=1).values.bool()  # all earlier match
            count = consistent.sum(-1)
            total = (parities * consistent).sum(-1)
            pred = torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))
            return pred.to(xs.dtype), torch.log(count.to(xs.dtype)) - math.log(len(subsets))
        loglik = -0.5 * ((parities - ys.unsqueeze(-1)) / sigma) ** 2 - 0.5 * math.log(2 * math.pi * sigma**2)
        before = torch.cumsum(loglik, dim=1) - loglik  # (B, N, S): log p(y_<i | S)
        pred = (torch.softmax(before, -1) * parities).sum(-1)
        return pred.to(xs.dtype), torch.logsumexp(before, -1) - math.log(len(subsets))

    def posterior_unsupported(self) -> str | None:
        return too_many(math.comb(self.n_dims, self.config.k), "parity subsets")
