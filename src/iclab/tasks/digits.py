"""General-purpose in-context classification (Kirsch, Harrison, Sohl-Dickstein, Metz 2022), offline.

Each task is scikit-learn's bundled ``digits`` (8 x 8 images, nothing downloaded) seen through a random
linear projection ``A`` (``64 -> n_dims``, entries N(0, 1/64), applied to standardised pixels) and a
random permutation of the labels. A prompt draws ``n_points`` images of one task. ``n_tasks`` is the
knob of the paper: a finite number of tasks fixed by ``task_seed`` (memorisation -> task identification),
or null for a fresh task per prompt (general-purpose learning). Trained with cross-entropy on
``n_classes`` logits; evaluated by classification error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from iclab.lazy import torch
from iclab.schema import require, require_non_negative, require_positive
from iclab.tasks.base import TASKS, Curriculum, Task
from iclab.types import Prompts


@lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)  # standardised pixels; constant pixels stay 0
    return x, torch.tensor(y)


@dataclass
class DigitsClassificationConfig:
    name: str = "digits_classification"
    n_dims: int = 16  # dimension of the random projection of the 64 pixels
    n_points: int = 31
    n_classes: int = 10  # digits 0 .. n_classes - 1
    n_tasks: int | None = None  # distinct (projection, permutation) tasks; null = a fresh one per prompt
    task_seed: int = 0
    curriculum: Curriculum = field(default_factory=Curriculum)

    def validate(self, path: str = "task") -> None:
        require_positive(self, path, "n_dims", "n_points", "n_classes")
        require(2 <= self.n_classes <= 10, f"{path}.n_classes", "must be between 2 and 10", self.n_classes)
        if self.n_tasks is not None:
            require_positive(self, path, "n_tasks")
        require_non_negative(self, path, "task_seed")


@TASKS.register
class DigitsClassification(Task):
    """Randomly projected, label-permuted ``digits`` (Kirsch et al. 2022)."""

    regression = False  # class labels, scored by classification error

    Config = DigitsClassificationConfig

    def __init__(self, config) -> None:
        super().__init__(config)
        self.n_classes = config.n_classes

    # the data and the finite task set are made on first use, so building the task to check a config is cheap
    @cached_property
    def _data(self) -> tuple:
        x, y = _digits()
        keep = y < self.config.n_classes
        return x[keep], y[keep]

    @property
    def images(self):
        return self._data[0]

    @property
    def labels(self):
        return self._data[1]

    @cached_property
    def _tasks(self) -> tuple:
        g = torch.Generator().manual_seed(4_000_037 + self.config.task_seed)
        return self._draw_tasks(self.config.n_tasks, g)

    @property
    def projections(self):
        return self._tasks[0]

    @property
    def permutations(self):
        return self._tasks[1]

    @property
    def error_label(self) -> str:
        return "classification error"

    def _draw_tasks(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        proj = torch.randn(count, self.n_dims, self.images.shape[1], generator=generator) / self.images.shape[1] ** 0.5
        perm = torch.rand(count, self.n_classes, generator=generator).argsort(-1)
        return proj, perm

    has_task_set = True  # with n_tasks null every prompt is a fresh task, so fresh_tasks is the standard distribution

    def sample_fresh(self, batch_size, generator, n_active_dims, n_points) -> Prompts:
        """Prompts of fresh (projection, permutation) tasks, outside the ``n_tasks`` training tasks."""
        return self.sample(batch_size, generator, n_active_dims, n_points, fresh=True)

    def sample(self, batch_size, generator, n_active_dims, n_points, fresh: bool = False) -> Prompts:
        if self.config.n_tasks is None or fresh:
            proj, perm = self._draw_tasks(batch_size, generator)
            ids = torch.full((batch_size,), -1)
        else:
            ids = torch.randint(0, self.config.n_tasks, (batch_size,), generator=generator)
            proj, perm = self.projections[ids], self.permutations[ids]
        pick = torch.randint(0, len(self.labels), (batch_size, n_points), generator=generator)
        xs = torch.einsum("bnp,bdp->bnd", self.images[pick], proj)  # (B, N, d)
        if n_active_dims < self.n_dims:
            xs[:, :, n_active_dims:] = 0
        ys = torch.gather(perm, 1, self.labels[pick]).float()  # (B, N) permuted class indices
        return Prompts(xs, ys, {"task_id": ids}, n_classes=self.n_classes)

    def loss(self, pred, ys):
        return torch.nn.functional.cross_entropy(pred.reshape(-1, self.n_classes), ys.reshape(-1).long())

    def error(self, pred, ys):
        return (pred.argmax(-1) != ys.long()).to(pred.dtype)

    def relevant_learners(self) -> list[str]:
        return ["knn(k=1)", "knn(k=3)", "ridge(lam=1)", "zero"]
