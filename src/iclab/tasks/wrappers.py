"""Generic wrappers over any real-valued regression task (after the 2024 successor of Garg et al.'s codebase,
in-context-learning-2024/in-context, ``function_classes/wrappers.py``):

- ``noisy``: the wrapped task's prompts with Gaussian label noise ``noise_std`` added (on top of the task's own);
- ``scaled``: inputs multiplied by ``x_scale`` (the function is kept: labels are recomputed from the scaled inputs
  with the task's label function, so the task must be able to relabel moved inputs) and labels by ``y_scale``.
  The reference's ``ScaledRegression`` scales the outputs only: ``x_scale: 1`` is that.

``base`` is the wrapped task's config (``{name: ..., fields}``); its ``n_dims`` and ``n_points`` are the wrapper's.
Each wrapper keeps the wrapped task's learners; ``noisy`` also keeps its posterior mean where the wrapped task has a
closed form with label noise (the two noises add in variance), so ``posterior_mean`` stays Bayes-optimal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from functools import cached_property

from iclab.lazy import torch
from iclab.schema import family_config, require, require_finite, require_non_negative, require_positive
from iclab.tasks.base import TASKS, Curriculum, Task, measured_error_scale
from iclab.types import Prompts


def _check_base(wrapper: str, path: str, base, n_dims: int, n_points: int) -> dict:
    """The wrapped task's config (a mapping), checked in full, with the wrapper's sizes."""
    from iclab.tasks import TASKS

    require(isinstance(base, dict) and "name" in base, f"{path}.base", "must be a task config with a name", base)
    require(
        base["name"] not in ("noisy", "scaled", "mixture"),
        f"{path}.base.name",
        f"{wrapper} wraps a single task family, not {base['name']}",
        base["name"],
    )
    family = TASKS[base["name"]] if base["name"] in TASKS else None
    if family is not None:  # (an unknown name is refused below, with the names allowed)
        kind = "token prompts" if family.prompt_kind != "real" else "class labels"
        require(
            family.prompt_kind == "real" and family.n_classes is None and family.regression,
            f"{path}.base.name",
            f"{wrapper} wraps a real-valued regression task; {base['name']} has {kind}",
            base["name"],
        )
    for key, value in (("n_dims", n_dims), ("n_points", n_points)):
        require(base.get(key, value) == value, f"{path}.base.{key}", f"must equal task.{key} ({value})", base.get(key))
    base = {**base, "n_dims": n_dims, "n_points": n_points}
    family_config(TASKS, f"{path}.base", base, "linear_regression", word="task")  # the full check
    return base


class _Wrapper(Task):
    """What both wrappers share: the wrapped task built from ``config.base``, and its learners."""

    def __init__(self, config) -> None:
        from iclab.tasks import TASKS

        super().__init__(config)
        self.base = TASKS[config.base["name"]](family_config(TASKS, "task.base", config.base, "linear_regression"))

    @property
    def weight_vector(self) -> bool:
        return self.base.weight_vector

    @property
    def any_length(self) -> bool:
        return self.base.any_length

    def relevant_learners(self) -> list[str]:
        return self.base.relevant_learners()

    def loss(self, pred, ys):
        return self.base.loss(pred, ys)  # a task that scores some positions only (retrieval, recall) keeps doing so

    def error(self, pred, ys):
        return self.base.error(pred, ys) * (self.base.error_scale / self.error_scale)

    @property
    def error_label(self) -> str:
        return self.base.error_label


@dataclass
class _WrapperConfig:
    name: str = ""
    n_dims: int = 5
    n_points: int = 11
    base: dict = field(default_factory=lambda: {"name": "linear_regression"})  # the wrapped task's config
    curriculum: Curriculum = field(default_factory=Curriculum)


@dataclass
class NoisyConfig(_WrapperConfig):
    name: str = "noisy"
    noise_std: float = 0.5  # Gaussian label noise added to the wrapped task's labels

    def validate(self, path: str = "task") -> None:
        require_positive(self, path, "n_dims", "n_points")
        require_non_negative(self, path, "noise_std")
        require_finite(self, path, "noise_std")
        self.base = _check_base("noisy", path, self.base, self.n_dims, self.n_points)


@TASKS.register
class Noisy(_Wrapper):
    """Any regression task with Gaussian label noise added."""

    Config = NoisyConfig

    @property
    def error_scale(self) -> float:
        return self.base.error_scale  # the clean signal's scale, as the tasks with their own noise report it

    def sample(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        p = self.base.sample(batch_size, generator, n_active_dims, n_points)
        noise = self.config.noise_std * torch.randn(p.ys.shape, generator=generator)
        return Prompts(p.xs, p.ys + noise, p.info)

    def label(self, xs, info):
        return self.base.label(xs, info)

    @property
    def can_relabel(self) -> bool:
        return self.base.can_relabel

    def noisy_label(self, xs, info, generator):
        ys = self.base.noisy_label(xs, info, generator)
        return ys + self.config.noise_std * torch.randn(ys.shape, generator=generator)

    @cached_property
    def _combined(self):
        """The wrapped task with both noises as its own (their variances add), when it has a noise field."""
        if "noise_std" not in {f.name for f in fields(self.base.config)}:
            return None
        total = math.hypot(self.base.config.noise_std, self.config.noise_std)
        return type(self.base)(replace(self.base.config, noise_std=total))

    def relevant_learners(self) -> list[str]:
        return self._combined.relevant_learners() if self._combined is not None else self.base.relevant_learners()

    def posterior(self, xs, ys):
        return self._combined.posterior(xs, ys)

    def posterior_unsupported(self) -> str | None:
        if self._combined is None:
            return f"{self.base.name} has no label-noise field to fold the wrapper's noise into"
        return self._combined.posterior_unsupported()


@dataclass
class ScaledConfig(_WrapperConfig):
    name: str = "scaled"
    x_scale: float = 2.0  # inputs multiplied by this (labels recomputed from them)
    y_scale: float = 1.0  # labels multiplied by this

    def validate(self, path: str = "task") -> None:
        require_positive(self, path, "n_dims", "n_points", "x_scale", "y_scale")
        require_finite(self, path, "x_scale", "y_scale")
        self.base = _check_base("scaled", path, self.base, self.n_dims, self.n_points)
        if self.x_scale != 1:
            from iclab.tasks import TASKS

            require(
                TASKS[self.base["name"]].label is not Task.label,  # (Task.can_relabel, asked of the class)
                f"{path}.x_scale",
                f"{self.base['name']} cannot label moved inputs, so only x_scale 1 (output scaling) applies",
                self.x_scale,
            )


@TASKS.register
class Scaled(_Wrapper):
    """Any regression task with its inputs (function kept) and labels scaled."""

    Config = ScaledConfig

    @cached_property
    def error_scale(self) -> float:
        """``E[y^2]`` of the scaled task, measured on a fixed sample (scaling the inputs changes it in a way only
        the wrapped function knows)."""
        return measured_error_scale(self)

    @property
    def error_label(self) -> str:
        label = self.base.error_label  # keep what it says about the positions scored ("(at the query)")
        return "squared error / E[y^2]" + (" " + label[label.index("(") :] if "(" in label else "")

    def sample(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        p = self.base.sample(batch_size, generator, n_active_dims, n_points)
        c = self.config
        if c.x_scale == 1:
            return Prompts(p.xs, c.y_scale * p.ys, p.info)
        xs = c.x_scale * p.xs
        return Prompts(xs, c.y_scale * self.base.noisy_label(xs, p.info, generator), p.info)

    def label(self, xs, info):
        return self.config.y_scale * self.base.label(xs, info)

    @property
    def can_relabel(self) -> bool:
        return self.base.can_relabel

    def noisy_label(self, xs, info, generator):
        return self.config.y_scale * self.base.noisy_label(xs, info, generator)
