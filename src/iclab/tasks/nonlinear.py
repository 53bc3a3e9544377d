"""Non-linear function classes of Garg et al. 2022: decision trees and two-layer ReLU networks.

- ``decision_tree``: a full binary tree of depth ``depth``; every internal node tests one coordinate,
  drawn uniformly, against 0 (right if positive); leaf values N(0, 1). ``x ~ N(0, I_d)``.
- ``relu_network``: ``f(x) = sqrt(2 / H) sum_h a_h relu(w_h . x)`` with ``w_h ~ N(0, I_d)``,
  ``a_h ~ N(0, 1)``, ``H = hidden`` (100 in the paper), drawn per prompt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from iclab.lazy import torch
from iclab.schema import require, require_positive
from iclab.tasks.base import TASKS, Task
from iclab.tasks.linear import LinearRegressionConfig
from iclab.types import Prompts


def _gaussian_inputs(task, batch_size, generator, n_active_dims, n_points):
    c = task.config
    xs = torch.randn(batch_size, n_points, c.n_dims, generator=generator) * c.x_scale
    if n_active_dims < c.n_dims:
        xs[:, :, n_active_dims:] = 0
    return xs


@dataclass
class DecisionTreeConfig(LinearRegressionConfig):
    name: str = "decision_tree"
    n_dims: int = 5
    n_points: int = 31
    depth: int = 4

    def validate(self, path: str = "task") -> None:
        super().validate(path)
        require_positive(self, path, "depth")
        require(self.depth <= 12, f"{path}.depth", "must be at most 12", self.depth)


@TASKS.register
class DecisionTree(Task):
    """Random depth-``depth`` trees; ``info`` holds ``coords (B, 2^depth - 1)`` and ``leaves (B, 2^depth)``."""

    Config = DecisionTreeConfig

    @property
    def error_scale(self) -> float:
        return 1.0

    @staticmethod
    def evaluate(xs: torch.Tensor, coords: torch.Tensor, leaves: torch.Tensor, depth: int) -> torch.Tensor:
        b, n, _ = xs.shape
        node = torch.zeros(b, n, dtype=torch.long)
        for _ in range(depth):
            feature = torch.gather(coords, 1, node)  # (B, N): coordinate tested at each point's node
            right = torch.gather(xs, 2, feature.unsqueeze(-1)).squeeze(-1) > 0
            node = 2 * node + 1 + right.long()
        return torch.gather(leaves, 1, node - (2**depth - 1))

    def label(self, xs, info):
        return self.evaluate(xs, info["coords"], info["leaves"].to(xs), self.config.depth)

    def sample(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        depth = self.config.depth
        xs = _gaussian_inputs(self, batch_size, generator, n_active_dims, n_points)
        coords = torch.randint(0, n_active_dims, (batch_size, 2**depth - 1), generator=generator)
        leaves = torch.randn(batch_size, 2**depth, generator=generator)
        ys = self.evaluate(xs, coords, leaves, depth)
        if self.config.noise_std > 0:
            ys = ys + self.config.noise_std * torch.randn(batch_size, n_points, generator=generator)
        return Prompts(xs, ys, {"coords": coords, "leaves": leaves})

    def relevant_learners(self) -> list[str]:
        return [f"tree(max_depth={self.config.depth})", "least_squares", "knn(k=3)", "averaging", "zero"]


@dataclass
class ReluNetworkConfig(LinearRegressionConfig):
    name: str = "relu_network"
    n_dims: int = 5
    n_points: int = 31
    hidden: int = 100

    def validate(self, path: str = "task") -> None:
        super().validate(path)
        require_positive(self, path, "hidden")


@TASKS.register
class ReluNetwork(Task):
    """Random two-layer ReLU networks; ``info`` holds ``w1 (B, d, H)`` and ``w2 (B, H)``."""

    Config = ReluNetworkConfig

    def label(self, xs, info):
        h = self.config.hidden
        return math.sqrt(2 / h) * torch.einsum("bnh,bh->bn", torch.relu(xs @ info["w1"].to(xs)), info["w2"].to(xs))

    def sample(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        h = self.config.hidden
        xs = _gaussian_inputs(self, batch_size, generator, n_active_dims, n_points)
        w1 = torch.randn(batch_size, self.n_dims, h, generator=generator)
        w2 = torch.randn(batch_size, h, generator=generator)
        ys = math.sqrt(2 / h) * torch.einsum("bnh,bh->bn", torch.relu(xs @ w1), w2)
        if self.config.noise_std > 0:
            ys = ys + self.config.noise_std * torch.randn(batch_size, n_points, generator=generator)
        return Prompts(xs, ys, {"w1": w1, "w2": w2})

    def relevant_learners(self) -> list[str]:
        return ["nn_gd", "least_squares", "knn(k=3)", "averaging", "zero"]
