"""The ``eval`` section of a run config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EvalConfig:
    n_prompts: int = 1280  # held-out prompts behind every curve
    batch_size: int = 256  # prompts per forward pass of the network
    seed: int = 1234  # the held-out set is a function of this seed alone (disjoint stream from training)
    # reference learners to compare against; null = the task's relevant learners (Bayes-optimal first).
    # Each item is a name ("least_squares"), a call ("ridge(lam=0.25)") or a mapping {name: ridge, lam: 0.25}.
    learners: list[Any] | None = None
    shifts: list[str] = field(default_factory=lambda: ["standard"])  # distribution shifts to evaluate on
    after_train: bool = True  # `iclab train` evaluates and writes the report when it finishes

    def validate(self, path: str = "eval") -> None:
        from iclab.config import require, require_non_negative, require_positive

        require_positive(self, path, "n_prompts", "batch_size")
        require_non_negative(self, path, "seed")
        if self.learners is not None:
            from iclab.learners import parse_learner_spec

            for i, spec in enumerate(self.learners):
                parse_learner_spec(spec, f"{path}.learners[{i}]")
        from iclab.tasks.shifts import parse_shift

        require(len(self.shifts) >= 1, f"{path}.shifts", "must name at least one shift", self.shifts)
        for i, shift in enumerate(self.shifts):
            parse_shift(shift, f"{path}.shifts[{i}]")
