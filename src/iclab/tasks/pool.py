"""A finite pool of regression tasks (Raventós, Paul, Chen, Ganguli 2023: task diversity).

``pool_size`` weight vectors ``w_1..w_M ~ N(0, I_d)`` are fixed by ``pool_seed`` before training; each
prompt uses one of them, uniformly at random, with label noise ``noise_std``. The Bayes-optimal
predictor on pool tasks is the discrete posterior mean over the pool (``dmmse``); on fresh Gaussian
tasks it is ridge with ``lam = noise_std^2``. Held-out prompts on fresh tasks: ``--shift fresh_tasks``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from iclab.tasks.linear import LinearRegressionConfig, LinearTask


@dataclass
class TaskPoolConfig(LinearRegressionConfig):
    name: str = "task_pool"
    n_dims: int = 8
    n_points: int = 16
    noise_std: float = 0.5
    pool_size: int = 64  # M, the number of distinct tasks seen in training
    pool_seed: int = 0  # the pool is a function of this seed alone

    def validate(self, path: str = "task") -> None:
        from iclab.config import require_non_negative, require_positive

        super().validate(path)
        require_positive(self, path, "pool_size")
        require_non_negative(self, path, "pool_seed")


class TaskPool(LinearTask):
    """Linear regression whose weights come from a fixed pool of ``pool_size`` tasks."""

    Config = TaskPoolConfig
    name = "task_pool"

    def __init__(self, config) -> None:
        super().__init__(config)
        g = torch.Generator().manual_seed(1_000_003 + config.pool_seed)
        self.pool = torch.randn(config.pool_size, config.n_dims, generator=g)  # (M, d)

    def sample_w(self, batch_size, generator, n_active_dims):
        ids = torch.randint(0, self.config.pool_size, (batch_size,), generator=generator)
        return self.pool[ids].clone(), {"task_id": ids}

    def relevant_learners(self) -> list[str]:
        return ["dmmse", self._bayes_gaussian(), "least_squares", "zero"]
