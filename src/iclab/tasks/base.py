"""What every task family shares: the curriculum, seeded sampling, and the Task interface.

A training batch is a pure function of ``(seed, step)``: :meth:`Task.train_batch` derives a fresh
``torch.Generator`` from them, so data needs no checkpoint and resumed runs see the same prompts.
Held-out prompts come from a separate stream (:meth:`Task.eval_prompts`), so they never coincide
with a training batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iclab.lazy import torch
from iclab.registry import Registry
from iclab.schema import require, require_finite, require_non_negative, require_positive
from iclab.types import Prompts
from iclab.utils import derive_seed

TRAIN_STREAM = 0
EVAL_STREAM = 1


@dataclass
class Curriculum:
    """Grow the active dimensions and the prompt length during training (Garg et al. 2022).

    At step ``t`` the active dimensions are ``min(n_dims, dims_start + dims_inc * (t // dims_every))``
    (inactive input coordinates are zero) and likewise for the number of points. ``null`` starts at
    the task's full size, i.e. no curriculum.
    """

    dims_start: int | None = None  # active input dimensions at step 0; null = all of them
    dims_inc: int = 1  # added every dims_every steps
    dims_every: int = 2000
    points_start: int | None = None  # points per prompt at step 0; null = all of them
    points_inc: int = 2
    points_every: int = 2000

    def validate(self, path: str = "task.curriculum") -> None:
        require_positive(self, path, "dims_inc", "dims_every", "points_inc", "points_every")
        if self.dims_start is not None:
            require_positive(self, path, "dims_start")
        if self.points_start is not None:
            require_positive(self, path, "points_start")

    def check_sizes(self, path: str, n_dims: int, n_points: int, min_dims: int = 1, why: str = "") -> None:
        """Refuse a start beyond the task's sizes (``path`` is the task's): ``dims_start`` in ``[min_dims,
        n_dims]`` (``why`` says what needs ``min_dims``), ``points_start`` at most ``n_points``."""
        from iclab.schema import require

        if self.dims_start is not None:
            low = f"between {why} ({min_dims}) and" if min_dims > 1 else "at most"
            require(
                min_dims <= self.dims_start <= n_dims,
                f"{path}.curriculum.dims_start",
                f"must be {low} task.n_dims ({n_dims})",
                self.dims_start,
            )
        if self.points_start is not None:
            require(
                self.points_start <= n_points,
                f"{path}.curriculum.points_start",
                f"must be at most task.n_points ({n_points})",
                self.points_start,
            )

    def dims_at(self, step: int, n_dims: int) -> int:
        if self.dims_start is None:
            return n_dims
        return min(n_dims, self.dims_start + self.dims_inc * (step // self.dims_every))

    def points_at(self, step: int, n_points: int) -> int:
        if self.points_start is None:
            return n_points
        return min(n_points, self.points_start + self.points_inc * (step // self.points_every))


@dataclass
class ScalarInputsConfig:
    """The fields a family on scalar inputs shares (Chebyshev, Haar): ``n_dims`` is fixed at 1."""

    name: str = ""
    n_dims: int = 1  # fixed: the inputs are scalars
    n_points: int = 21
    curriculum: Curriculum = field(default_factory=Curriculum)

    def check_scalar(self, path: str, *non_negative: str) -> None:
        """Scalar inputs, the sizes, and the named fields non-negative and finite."""
        require(self.n_dims == 1, f"{path}.n_dims", f"must be 1 for {self.name}", self.n_dims)
        require_positive(self, path, "n_points")
        require_non_negative(self, path, *non_negative)
        require_finite(self, path, *non_negative)
        self.curriculum.check_sizes(path, self.n_dims, self.n_points)


def _set_name(name: str, cls) -> None:
    cls.name = name  # a task's name is written once, as its Config's ``name`` default


TASKS = Registry("task", on_register=_set_name)  # name -> task class; ``@TASKS.register`` on each family


class Task:
    """A distribution over prompts. Subclasses define ``Config`` (whose ``name`` field is the registered name)
    and ``sample``, and are registered with ``@TASKS.register``.

    ``sample(batch_size, generator, n_active_dims, n_points)`` draws prompts with inputs of width
    ``config.n_dims`` whose coordinates beyond ``n_active_dims`` are zero.
    """

    Config: type
    name: str = ""
    prompt_kind: str = "real"  # the kind of its prompts, a name in iclab.kinds.KINDS: "real" (Prompts), "tokens", ...
    predicts_what: str = "real-valued labels"  # (for messages) what a learner of this task predicts
    # a pretext task (position prediction): a run started from one may go on to another task, with positions added
    # and a new read-out
    pretext: bool = False
    n_classes: int | None = None  # classification into C classes: ys hold class indices, models output C logits
    regression: bool = True  # real-valued labels scored by squared error (wrappers that add noise or scale need it)
    periodic_domain: tuple[float, float] | None = None  # one period of a 1-D periodic task (the spectrum instrument)
    weight_vector: bool = False  # each prompt's function is a weight vector ``info["w"]`` (B, F)
    any_length: bool = True  # prompts of any number of points can be drawn (query shifts draw k + 1 points)

    def __init__(self, config) -> None:
        self.config = config

    @property
    def n_dims(self) -> int:
        return self.config.n_dims

    @property
    def n_points(self) -> int:
        return self.config.n_points

    @property
    def error_scale(self) -> float:
        """Curves report squared error divided by this: ``E|w|^2`` for linear families (``d`` for standard
        regression, as Garg et al.), ``E[f(x)^2]`` otherwise, so that predicting zero scores about 1."""
        return float(self.n_dims)

    @property
    def error_label(self) -> str:
        return "squared error / d" if self.error_scale == self.n_dims else "squared error / E[y^2]"

    @property
    def scored_from(self) -> int:
        """The first position whose label the prompt can predict (0: every one). Tasks that first store key-value
        pairs (associative recall, vector retrieval) start later: the loss skips the stored labels, which no learner
        can predict, and their errors are NaN (curves skip them)."""
        return 0

    def loss(self, pred: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Training loss: mean squared error over the scored positions (with ``loss_on: last`` the last point alone,
        always scored)."""
        first = min(self.scored_from, ys.shape[1] - 1)
        return torch.mean((pred[:, first:] - ys[:, first:]) ** 2)

    def batch_loss(self, model, batch, loss_on: str = "all") -> torch.Tensor:
        """The training loss of ``model`` on ``batch``: :meth:`loss` on every position, or on the last only."""
        pred = model(batch.xs, batch.ys)  # (B, N)
        return self.loss(pred, batch.ys) if loss_on == "all" else self.loss(pred[:, -1:], batch.ys[:, -1:])

    def loss_terms(self, batch, loss_on: str = "all") -> int:
        """How many terms :meth:`batch_loss` averages over (data-parallel training weights each rank's slice by its
        share): every prompt contributes the same number of positions."""
        return batch.ys.shape[0]

    def log_fields(self, step: int, batch_size: int) -> dict:
        """What the training log records about the data at ``step``: the curriculum's state."""
        cur = self.config.curriculum
        return {"active_dims": cur.dims_at(step, self.n_dims), "n_points": cur.points_at(step, self.n_points)}

    def error(self, pred: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Per-prompt, per-position evaluation error ``(B, N)``: squared error / ``error_scale``, NaN before
        :attr:`scored_from`."""
        err = (pred - ys) ** 2 / self.error_scale
        if self.scored_from:
            err[:, : self.scored_from] = float("nan")
        return err

    # ------------------------------------------------------------------------------------------
    # what applies to this task: each answer is None, or the reason it does not apply

    @property
    def can_relabel(self) -> bool:
        """Whether :meth:`label` can label moved inputs (what most distribution shifts need)."""
        return type(self).label is not Task.label

    def shift_unsupported(self, name: str) -> str | None:
        """Why the distribution shift ``name`` cannot be evaluated on this task, or None."""
        from iclab.tasks.shifts import SHIFTS

        reasons = {
            "relabel": None if self.can_relabel else "it cannot label moved inputs (no label function)",
            "real_labels": None
            if self.n_classes is None
            else "its labels are classes, label noise is defined for real values",
            "weights": None if self.weight_vector else "its prompts carry no weight vector to scale",
            "task_set": None if self.has_task_set else "it has no finite set of training tasks to step outside of",
            "any_length": None
            if self.any_length
            else "its prompts have a fixed structure, so prompts of k + 1 points cannot be drawn",
        }
        for need in getattr(SHIFTS[name], "requires", ()):
            if reasons[need] is not None:
                return reasons[need]
        return None

    def probe_target_unsupported(self, name: str) -> str | None:
        """Why the probe target ``name`` (``w``, ``xty``, ``w_ols``, ``w_ridge``, ``phi``) does not apply, or None."""
        if name == "phi":
            return None if self.has_features else "it has no fixed feature map"
        if self.n_classes is not None:
            return "its labels are classes"
        if name == "w" and not self.weight_vector:
            return "its prompts carry no weight vector"
        return None

    def applicable(self) -> dict[str, list[str]]:
        """Everything registered that applies to this task: shifts, learners, probe targets (analysis
        instruments say for themselves: ``iclab.analysis.INSTRUMENTS[name].task_unsupported``)."""
        from iclab.learners import LEARNERS
        from iclab.learners.base import learner_unsupported
        from iclab.tasks.shifts import SHIFTS

        out = {
            "shifts": [s for s in SHIFTS if self.shift_unsupported(s) is None],
            "learners": [n for n, cls in LEARNERS.items() if learner_unsupported(cls, self) is None],
            "probe targets": [
                t for t in ("w", "xty", "w_ols", "w_ridge", "phi") if self.probe_target_unsupported(t) is None
            ],
        }
        return out

    @property
    def has_features(self) -> bool:
        """Whether ``y`` is linear in a fixed feature map :meth:`features` (feature learners apply)."""
        return type(self).features is not Task.features

    def features(self, xs: torch.Tensor) -> torch.Tensor | None:
        """The task's fixed feature map ``(B, N, d) -> (B, N, F)`` when ``y`` is linear in it, else None."""
        return None

    def sample(self, batch_size: int, generator: torch.Generator, n_active_dims: int, n_points: int) -> Prompts:
        raise NotImplementedError

    has_task_set = False  # training draws from a finite set of tasks, so tasks outside it exist (shift fresh_tasks)

    def sample_fresh(self, batch_size: int, generator: torch.Generator, n_active_dims: int, n_points: int) -> Prompts:
        """Prompts of tasks drawn fresh, outside the training task set (tasks with ``has_task_set``)."""
        raise NotImplementedError

    def noisy_label(self, xs: torch.Tensor, info: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """``label`` plus the task's label noise, as in training prompts (used by distribution shifts)."""
        ys = self.label(xs, info)
        noise = getattr(self.config, "noise_std", 0.0)
        if noise > 0:
            ys = ys + noise * torch.randn(ys.shape, generator=generator)
        return ys

    def label(self, xs: torch.Tensor, info: dict[str, torch.Tensor]) -> torch.Tensor:
        """Noise-free labels of inputs ``xs (B, N, d)`` under the functions described by ``info``; lets
        distribution shifts move the inputs of a prompt and keep its function."""
        raise NotImplementedError(f"task {self.name} cannot relabel shifted inputs")

    def relevant_learners(self) -> list[str]:
        """Reference learner specs worth comparing with, the Bayes-optimal one first where known."""
        raise NotImplementedError

    def posterior(self, xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Bayes predictor of this task's prior, for every prefix at once: ``(pred, log_evidence)``, both
        ``(B, N)`` in the inputs' dtype; ``pred[:, i]`` is the posterior mean of ``y_i`` given the first ``i``
        examples and ``log_evidence[:, i] = log p(y_<i | x_<i)`` (:mod:`iclab.tasks.posterior` has the math).
        A family with a closed form overrides this; the posterior-mean learners call it."""
        raise NotImplementedError(f"task {self.name} has no closed-form posterior mean")

    def posterior_unsupported(self) -> str | None:
        """None when :meth:`posterior` has a closed form for this task's settings, else why not."""
        if type(self).posterior is Task.posterior:
            return "it has no closed-form posterior mean here"
        return None

    def train_batch(self, batch_size: int, seed: int, step: int) -> Prompts:
        """The training batch of step ``step``: a function of ``(seed, step)`` only, curriculum applied."""
        cur = self.config.curriculum
        g = torch.Generator().manual_seed(derive_seed(seed, TRAIN_STREAM, step))
        return self.sample(batch_size, g, cur.dims_at(step, self.n_dims), cur.points_at(step, self.n_points))

    def eval_prompts(self, n_prompts: int, seed: int) -> Prompts:
        """A fixed held-out set at the full dimension and prompt length (no curriculum)."""
        g = torch.Generator().manual_seed(derive_seed(seed, EVAL_STREAM, 0))
        return self.sample(n_prompts, g, self.n_dims, self.n_points)


def measured_error_scale(task: Task, n_prompts: int = 4096) -> float:
    """``E[y^2]`` of ``task`` measured on a fixed sample of ``n_prompts`` prompts: the error scale of a family whose
    second moment has no simple closed form, so that predicting zero scores about 1."""
    g = torch.Generator().manual_seed(20_240_001)
    ys = task.sample(n_prompts, g, task.n_dims, task.n_points).ys
    return float((ys.double() ** 2).mean())


class FeatureTask(Task):
    """Functions linear in a fixed feature map: ``y = <w, features(x)> + noise_std * eps``, ``w ~ N(0, I)``
    per prompt. Subclasses define ``features``, ``n_features`` and, if not Gaussian, ``sample_inputs``."""

    weight_vector = True

    n_features: int

    def sample_inputs(
        self, batch_size: int, generator: torch.Generator, n_active_dims: int, n_points: int
    ) -> torch.Tensor:
        c = self.config
        xs = torch.randn(batch_size, n_points, c.n_dims, generator=generator) * c.x_scale
        if n_active_dims < c.n_dims:
            xs[:, :, n_active_dims:] = 0
        return xs

    def label(self, xs, info):
        return torch.einsum("bnf,bf->bn", self.features(xs), info["w"].to(xs))

    def sample(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        xs = self.sample_inputs(batch_size, generator, n_active_dims, n_points)
        w = torch.randn(batch_size, self.n_features, generator=generator)
        ys = self.label(xs, {"w": w})
        if self.config.noise_std > 0:
            ys = ys + self.config.noise_std * torch.randn(batch_size, n_points, generator=generator)
        return Prompts(xs, ys, {"w": w})

    def _bayes_on_features(self) -> str:
        noise = self.config.noise_std
        return "feature_least_squares" if noise == 0 else f"feature_ridge(lam={noise**2:g})"
