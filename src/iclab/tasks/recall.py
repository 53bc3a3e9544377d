"""Multi-query associative recall, in iclab's continuous prompt format (after Zoology's MQAR, Arora et
al. 2023; the capacity test of memory layers in DeltaNet / ATLAS).

Each prompt has its own ``n_keys`` random keys (Gaussian directions scaled to norm ``sqrt(d)``) and a
value ``v ~ N(0, 1)`` for each. The first ``n_keys`` points show every key once with its value, in random
order (the writes); the remaining points are queries: keys drawn again from the same set, labelled with
their value (the reads). Predicting a query needs the (key -> value) table, not a linear function: with
more keys than dimensions, no linear map reproduces it, and a fixed-width memory has to store more
associations than it has room for. Errors are reported (and the training loss taken) on the query
positions only; ``knn(k=1)`` (look the key up) is exact there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iclab.lazy import torch
from iclab.schema import require, require_positive
from iclab.tasks.base import TASKS, Curriculum, Task
from iclab.types import Prompts


def stored_value(xs: torch.Tensor, info: dict) -> torch.Tensor:
    """The value of the stored key nearest to each input (exactly the stored value for a stored key), so label noise
    and other relabelling shifts keep a prompt's key-value table: ``info["keys"] (B, K, d)``, ``info["values"]
    (B, K)``."""
    nearest = torch.cdist(xs, info["keys"].to(xs)).argmin(-1)  # (B, N)
    return torch.gather(info["values"].to(xs), 1, nearest)


@dataclass
class AssociativeRecallConfig:
    name: str = "associative_recall"
    n_dims: int = 8  # key dimension d
    n_points: int = 48  # n_keys writes, then n_points - n_keys queries
    n_keys: int = 16  # associations stored per prompt
    curriculum: Curriculum = field(default_factory=Curriculum)

    def validate(self, path: str = "task") -> None:
        require_positive(self, path, "n_dims", "n_points", "n_keys")
        require(
            self.n_keys < self.n_points,
            f"{path}.n_keys",
            f"must be less than task.n_points ({self.n_points}), leaving room for queries",
            self.n_keys,
        )
        cur = self.curriculum
        require(
            cur.dims_start is None and cur.points_start is None,
            f"{path}.curriculum",
            "associative_recall has no curriculum (leave dims_start and points_start null)",
            "set",
        )


@TASKS.register
class AssociativeRecall(Task):
    """Key-value pairs, then queries of the stored keys (multi-query associative recall)."""

    any_length = False  # the keys come first: a prompt needs more than n_keys points
    Config = AssociativeRecallConfig

    @property
    def error_scale(self) -> float:
        return 1.0  # E[v^2]: predicting zero scores 1

    @property
    def error_label(self) -> str:
        return "squared error / E[y^2] (queries: k >= n_keys)"

    @property
    def scored_from(self) -> int:
        return self.config.n_keys  # the writes are unpredictable; every later point is a query

    def sample(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        c = self.config
        keys = torch.randn(batch_size, c.n_keys, c.n_dims, generator=generator)
        keys = keys / keys.norm(dim=-1, keepdim=True) * c.n_dims**0.5
        values = torch.randn(batch_size, c.n_keys, generator=generator)
        writes = torch.argsort(torch.rand(batch_size, c.n_keys, generator=generator), dim=1)
        reads = torch.randint(0, c.n_keys, (batch_size, n_points - c.n_keys), generator=generator)
        order = torch.cat([writes, reads], dim=1)  # (B, N): which key each point shows
        xs = torch.gather(keys, 1, order.unsqueeze(-1).expand(-1, -1, c.n_dims))
        ys = torch.gather(values, 1, order)
        return Prompts(xs, ys, {"keys": keys, "values": values, "order": order})

    def label(self, xs, info):
        return stored_value(xs, info)

    def relevant_learners(self) -> list[str]:
        return ["knn(k=1)", "least_squares", "ridge(lam=1)", "zero"]
