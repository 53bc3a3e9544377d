"""A finite pool of regression tasks (Raventós, Paul, Chen, Ganguli 2023: task diversity).

``pool_size`` weight vectors ``w_1..w_M ~ N(0, I_d)`` are fixed by ``pool_seed`` before training (or read
from ``pool_file``, a NumPy ``.npy`` array of shape (M, d), to use exactly the pool of another codebase); each
prompt uses one of them, uniformly at random, with label noise ``noise_std``. The Bayes-optimal
predictor on pool tasks is the discrete posterior mean over the pool (``dmmse``); on fresh Gaussian
tasks it is ridge with ``lam = noise_std^2``. Held-out prompts on fresh tasks: ``--shift fresh_tasks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from iclab.lazy import torch
from iclab.schema import require_non_negative, require_positive
from iclab.tasks.base import TASKS
from iclab.tasks.linear import LinearRegressionConfig, LinearTask
from iclab.tasks.posterior import discrete_predictive, likelihood_var


@dataclass
class TaskPoolConfig(LinearRegressionConfig):
    name: str = "task_pool"
    n_dims: int = 8
    n_points: int = 16
    noise_std: float = 0.5
    pool_size: int = 64  # M, the number of distinct tasks seen in training
    pool_seed: int = 0  # the pool is a function of this seed alone
    pool_file: str | None = None  # a .npy array (pool_size, n_dims) used as the pool instead; null = drawn

    def validate(self, path: str = "task") -> None:
        super().validate(path)
        require_positive(self, path, "pool_size")
        require_non_negative(self, path, "pool_seed")
        if self.pool_file is not None:
            load_pool_file(self.pool_file, self.pool_size, self.n_dims, f"{path}.pool_file")


def load_pool_file(file: str, pool_size: int, n_dims: int, field: str = "task.pool_file") -> torch.Tensor:
    """The pool stored in ``file`` (a NumPy ``.npy`` array of shape (pool_size, n_dims), finite values)."""
    import numpy as np

    from iclab.errors import ConfigError

    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as err:
        reason = (
            (err.strerror or str(err)).lower()
            if isinstance(err, OSError) and err.strerror
            else "not a NumPy .npy array"
        )
        raise ConfigError(
            f"{field}: must name a .npy file of shape ({pool_size}, {n_dims}); {file!r}: {reason}"
        ) from None
    if not isinstance(array, np.ndarray) or array.shape != (pool_size, n_dims):
        shape = getattr(array, "shape", None)
        raise ConfigError(
            f"{field}: must hold an array of shape (task.pool_size, task.n_dims) = ({pool_size}, {n_dims}); "
            f"{file!r} holds shape {shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        raise ConfigError(f"{field}: must hold finite numbers; {file!r} does not")
    return torch.from_numpy(array.astype(np.float32))


POOL_COPY = "pool.npy"  # a run's own copy of its pool file


def keep_pool_with_run(task_config, run_dir: Path):
    """``task_config`` naming the run folder's copy of its pool file (``RUN/pool.npy``, written here), so
    that the run's config.yaml reproduces the run after the original file moves or changes. Configs
    without a pool file come back unchanged."""
    from dataclasses import replace

    from iclab.utils import atomic_write_bytes

    source = getattr(task_config, "pool_file", None)
    copy = (Path(run_dir) / POOL_COPY).resolve()
    if source is None or Path(source).resolve() == copy:
        return task_config
    atomic_write_bytes(copy, Path(source).read_bytes())
    return replace(task_config, pool_file=str(copy))


def same_pool(file_a: str | None, file_b: str | None) -> bool:
    """Whether two ``pool_file`` values give the same pool (the same file, or files holding equal arrays)."""
    import numpy as np

    if file_a is None or file_b is None:
        return file_a is file_b
    try:
        return bool(np.array_equal(np.load(file_a, allow_pickle=False), np.load(file_b, allow_pickle=False)))
    except (OSError, ValueError):
        return False


@TASKS.register
class TaskPool(LinearTask):
    """Linear regression whose weights come from a fixed pool of ``pool_size`` tasks."""

    Config = TaskPoolConfig

    @cached_property
    def pool(self) -> torch.Tensor:  # (M, d), made on first use
        c = self.config
        if c.pool_file is not None:
            return load_pool_file(c.pool_file, c.pool_size, c.n_dims)
        g = torch.Generator().manual_seed(1_000_003 + c.pool_seed)
        return torch.randn(c.pool_size, c.n_dims, generator=g)

    def sample_w(self, batch_size, generator, n_active_dims):
        ids = torch.randint(0, self.config.pool_size, (batch_size,), generator=generator)
        return self.pool[ids].clone(), {"task_id": ids}

    has_task_set = True

    def sample_fresh(self, batch_size, generator, n_active_dims, n_points):
        """Fresh Gaussian tasks, ``w ~ N(0, I)`` (task id -1): where ridge is Bayes-optimal."""

        def fresh(b, g, _):
            return torch.randn(b, self.n_dims, generator=g), {"task_id": torch.full((b,), -1)}

        return self.sample(batch_size, generator, n_active_dims, n_points, sample_w=fresh)

    def relevant_learners(self) -> list[str]:
        return ["dmmse", self._bayes_gaussian(), "least_squares", "zero"]

    def posterior(self, xs, ys):  # discrete MMSE: the posterior over the pool, uniform prior
        return discrete_predictive(xs, ys, self.pool, likelihood_var(self))
