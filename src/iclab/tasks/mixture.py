"""Mixtures of task families (Panwar et al. 2023): each prompt comes from one component family, chosen
at random per prompt with probabilities ``weights``. ``info["component"]`` says which.

The Bayes-optimal predictor is the posterior-weighted combination of the components' posterior means
(``bayes_mixture``), available when every component has a closed-form evidence (linear regression,
sparse regression, Gaussian-mixture prior, task pools).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from iclab.lazy import torch
from iclab.schema import family_config, require, require_positive
from iclab.tasks.base import TASKS, Curriculum, Task
from iclab.tasks.posterior import combine
from iclab.types import Prompts


def _default_components() -> list[dict]:
    return [{"name": "linear_regression"}, {"name": "sparse_linear_regression", "sparsity": 2}]


@dataclass
class MixtureConfig:
    name: str = "mixture"
    n_dims: int = 5
    n_points: int = 11
    # component task configs ({name: ..., other fields}); n_dims and n_points are the mixture's
    components: list[dict] = field(default_factory=_default_components)
    weights: list[float] | None = None  # probability of each component; null = uniform
    curriculum: Curriculum = field(default_factory=Curriculum)

    def validate(self, path: str = "task") -> None:
        from iclab.tasks import TASKS

        require_positive(self, path, "n_dims", "n_points")
        require(len(self.components) >= 1, f"{path}.components", "must list at least one task family", self.components)
        resolved = []
        for i, comp in enumerate(self.components):
            where = f"{path}.components[{i}]"
            require(isinstance(comp, dict), where, "must be a mapping with a task name", comp)
            require(comp.get("name") != "mixture", f"{where}.name", "cannot be a mixture itself", comp.get("name"))
            for key in ("n_dims", "n_points"):
                require(
                    comp.get(key, getattr(self, key)) == getattr(self, key),
                    f"{where}.{key}",
                    f"must equal the mixture's task.{key} ({getattr(self, key)})",
                    comp.get(key),
                )
            comp = {**comp, "n_dims": self.n_dims, "n_points": self.n_points}
            family_config(TASKS, where, comp, "linear_regression", word="task")  # full check of the component
            resolved.append(comp)
        self.components = resolved
        if self.weights is not None:
            require(
                len(self.weights) == len(self.components)
                and all(w >= 0 for w in self.weights)
                and abs(sum(self.weights) - 1) < 1e-6,
                f"{path}.weights",
                f"must be {len(self.components)} non-negative numbers summing to 1",
                self.weights,
            )


@TASKS.register
class Mixture(Task):
    """Each prompt from one of several task families, chosen at random per prompt (Panwar et al. 2023)."""

    Config = MixtureConfig

    def __init__(self, config) -> None:
        from iclab.tasks import TASKS

        super().__init__(config)
        self.components = [
            TASKS[c["name"]](family_config(TASKS, "task.components", c, "linear_regression")) for c in config.components
        ]

    @property
    def weight_vector(self) -> bool:
        return all(c.weight_vector for c in self.components)

    @property
    def periodic_domain(self) -> tuple[float, float] | None:
        """The components' common period (Panwar et al.'s mixtures of Fourier series), else None."""
        domains = {c.periodic_domain for c in self.components}
        return domains.pop() if len(domains) == 1 else None

    @property
    def max_frequency(self) -> int | None:
        found = [getattr(c, "max_frequency", None) for c in self.components]
        return max(found) if all(f is not None for f in found) else None

    @cached_property
    def weights(self) -> torch.Tensor:  # (C,) the components' probabilities
        k = len(self.components)
        return torch.tensor(self.config.weights if self.config.weights is not None else [1.0 / k] * k)

    @property
    def error_scale(self) -> float:
        return float(sum(w * c.error_scale for w, c in zip(self.weights.tolist(), self.components)))

    def sample(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        ids = torch.multinomial(self.weights, batch_size, replacement=True, generator=generator)
        xs = torch.zeros(batch_size, n_points, self.n_dims)
        ys = torch.zeros(batch_size, n_points)
        infos: list[dict[str, Any]] = []
        for c, task in enumerate(self.components):
            where = (ids == c).nonzero().squeeze(-1)
            part = task.sample(int(where.numel()), generator, n_active_dims, n_points)
            xs[where], ys[where] = part.xs, part.ys
            infos.append((where, part.info))
        info: dict[str, torch.Tensor] = {"component": ids}
        common = set.intersection(*(set(i.keys()) for _, i in infos)) if infos else set()
        for key in common:
            shapes = {tuple(i[key].shape[1:]) for _, i in infos}
            if len(shapes) == 1:
                first = infos[0][1][key]
                full = torch.zeros((batch_size, *first.shape[1:]), dtype=first.dtype)
                for where, i in infos:
                    full[where] = i[key]
                info[key] = full
        return Prompts(xs, ys, info)

    def label(self, xs, info):
        ys = torch.zeros(xs.shape[:2], dtype=xs.dtype)
        for c, task in enumerate(self.components):
            where = (info["component"] == c).nonzero().squeeze(-1)
            if where.numel():
                ys[where] = task.label(xs[where], {k: v[where] for k, v in info.items()})
        return ys

    def posterior(self, xs, ys):  # the components' posterior means weighed by p(component | prefix)
        return combine([c.posterior(xs, ys) for c in self.components], self.weights.log())

    def posterior_unsupported(self) -> str | None:
        for comp in self.components:
            reason = comp.posterior_unsupported()
            if reason is not None:
                return f"component {comp.name}: {reason}"
        return None

    def relevant_learners(self) -> list[str]:
        first = ["bayes_mixture"] if self.posterior_unsupported() is None else []
        seen = []
        for task in self.components:
            for spec in task.relevant_learners():
                if spec not in seen and spec not in ("knn(k=3)", "averaging", "zero"):
                    seen.append(spec)
        return [*first, *seen[:4], "knn(k=3)", "zero"]
