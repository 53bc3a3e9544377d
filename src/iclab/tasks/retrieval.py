"""Vector retrieval (the 2024 successor of Garg et al.'s codebase, in-context-learning-2024/in-context):
``n_points - 1`` random pairs ``x ~ N(0, I_d)``, ``y ~ N(0, 1)``, independent of each other, then a query that
repeats one of the earlier ``x`` (chosen uniformly); its answer is that point's ``y``. Nothing but looking the query
up in the context predicts it, so the error (and the training loss) is taken at the query only: the earlier labels
are pure noise, their errors NaN. ``retrieval`` (find the earlier point equal to the query, return its label) is
exact; ``knn(k=1)`` is too, since the stored inputs are distinct with probability one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iclab.lazy import torch
from iclab.schema import require, require_positive
from iclab.tasks.base import TASKS, Curriculum, Task
from iclab.tasks.recall import stored_value
from iclab.types import Prompts


@dataclass
class VectorRetrievalConfig:
    name: str = "vector_retrieval"
    n_dims: int = 5  # input dimension d
    n_points: int = 11  # n_points - 1 stored pairs, then the query
    curriculum: Curriculum = field(default_factory=Curriculum)

    def validate(self, path: str = "task") -> None:
        require_positive(self, path, "n_dims")
        require(
            self.n_points >= 2, f"{path}.n_points", "must be at least 2 (a stored pair and the query)", self.n_points
        )
        cur = self.curriculum
        require(
            cur.points_start is None,
            f"{path}.curriculum.points_start",
            "vector_retrieval has no curriculum on the prompt length (the query is always last)",
            cur.points_start,
        )
        cur.check_sizes(path, self.n_dims, self.n_points)


@TASKS.register
class VectorRetrieval(Task):
    """Random pairs, then a query repeating one of their inputs; the answer is its label."""

    Config = VectorRetrievalConfig
    any_length = False  # the query is the last point of a prompt of n_points

    @property
    def error_scale(self) -> float:
        return 1.0  # E[y^2]: predicting zero scores 1

    @property
    def error_label(self) -> str:
        return "squared error / E[y^2] (at the query)"

    @property
    def scored_from(self) -> int:
        return self.config.n_points - 1  # the query alone: the stored labels are noise

    def sample(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        c = self.config
        stored = torch.randn(batch_size, n_points - 1, c.n_dims, generator=generator)
        stored[:, :, n_active_dims:] = 0
        values = torch.randn(batch_size, n_points - 1, generator=generator)
        pick = torch.randint(0, n_points - 1, (batch_size,), generator=generator)
        rows = torch.arange(batch_size)
        xs = torch.cat([stored, stored[rows, pick].unsqueeze(1)], dim=1)
        ys = torch.cat([values, values[rows, pick].unsqueeze(1)], dim=1)
        return Prompts(xs, ys, {"keys": stored, "values": values, "query_index": pick})

    def label(self, xs, info):
        return stored_value(xs, info)

    def relevant_learners(self) -> list[str]:
        return ["retrieval", "knn(k=1)", "least_squares", "averaging", "zero"]
