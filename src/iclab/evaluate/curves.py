"""Error-versus-k curves with 95% confidence intervals over a fixed held-out prompt set.

The error at ``k`` is the squared error of the prediction for point ``k + 1`` given the first ``k``
points, divided by the input dimension ``d`` (Garg et al. 2022), averaged over prompts. The interval
is the normal approximation ``mean +- 1.96 * sd / sqrt(n)``, which is accurate at the default 1280
prompts.
"""

from __future__ import annotations

import csv
import io
import math

import torch

from iclab.rundir import CURVE_COLUMNS as COLUMNS
from iclab.types import Learner, Prompts

Z_95 = 1.959964


def squared_errors(learner: Learner, prompts: Prompts, n_dims: float, error_fn=None) -> torch.Tensor:
    """Per-prompt, per-position error, shape (B, N), in float64: ``(y_hat - y)^2 / n_dims``, or
    ``error_fn(y_hat, y)`` when given (a task's own metric, e.g. classification error)."""
    pred = learner.predict(prompts).to(torch.float64).cpu()
    ys = prompts.ys.to(torch.float64).cpu()
    return error_fn(pred, ys) if error_fn is not None else (pred - ys) ** 2 / n_dims


def curve_rows(errors: torch.Tensor, label: str, shift: str) -> list[dict]:
    n = errors.shape[0]
    mean = errors.mean(0)
    sd = errors.std(0, unbiased=True) if n > 1 else torch.zeros_like(mean)
    half = Z_95 * sd / math.sqrt(n)
    return [  # a position a task does not score (NaN error, e.g. associative recall's writes) has no row
        {"learner": label, "shift": shift, "k": k, "mean": float(m), "ci_low": float(m - h), "ci_high": float(m + h)}
        for k, (m, h) in enumerate(zip(mean.tolist(), half.tolist())) if not math.isnan(m)
    ]


def error_curves(learners: list[Learner], prompts: Prompts | list, n_dims: float, shift: str = "standard",
                 error_fn=None) -> list[dict]:
    """Rows ``{learner, shift, k, mean, ci_low, ci_high}`` for every learner and every ``k``.

    ``prompts`` is one batch (every position scored) or, for query shifts, a list of ``(k, prompts)``
    pairs where only position ``k`` of each batch is scored (see :func:`iclab.tasks.apply_shift`).
    ``n_dims`` is the normaliser (the task's ``error_scale``; ``d`` for linear regression); ``error_fn``
    replaces the squared error with a task's own metric (``task.error``).

    Example::

        rows = error_curves([model, make_learner("least_squares")], task.eval_prompts(1280, seed=1), 5)
    """
    parts = [(None, prompts)] if isinstance(prompts, Prompts) else prompts
    rows = []
    for learner in learners:
        for k, batch in parts:
            errors = squared_errors(learner, batch, n_dims, error_fn)
            found = curve_rows(errors if k is None else errors[:, k : k + 1], learner.label, shift)
            if k is not None and found:
                found[0]["k"] = k
            rows.extend(found)
    return rows


def rows_to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{k: f"{row[k]:.6g}" for k in ("mean", "ci_low", "ci_high")}})
    return buf.getvalue()


def error_at(rows: list[dict], learner: str, k: int, shift: str = "standard") -> float:
    for row in rows:
        if row["learner"] == learner and row["k"] == k and row["shift"] == shift:
            return row["mean"]
    raise KeyError((learner, k, shift))
