"""Error-versus-k curves with 95% confidence intervals over a fixed held-out prompt set.

The error at ``k`` is the squared error of the prediction for point ``k + 1`` given the first ``k``
points, divided by the input dimension ``d`` (Garg et al. 2022), averaged over prompts. The interval
is the normal approximation ``mean +- 1.96 * sd / sqrt(n)``, which is accurate at the default 1280
prompts.
"""

from __future__ import annotations

import math

import torch

from iclab.types import Learner, Prompts

Z_95 = 1.959964
COLUMNS = ("learner", "shift", "k", "mean", "ci_low", "ci_high")  # eval/curves.csv, one row per (learner, shift, k)
TYPES = {"learner": str, "shift": str, "k": int, "mean": float, "ci_low": float, "ci_high": float}


def squared_errors(learner: Learner, prompts: Prompts, n_dims: float, error_fn=None) -> torch.Tensor:
    """Per-prompt, per-position error, shape (B, N), in float64: ``(y_hat - y)^2 / n_dims``, or
    ``error_fn(y_hat, y)`` when given (a task's own metric, e.g. classification error)."""
    pred = learner.predict(prompts).to(torch.float64).cpu()
    ys = prompts.ys.to(torch.float64).cpu()
    errors = error_fn(pred, ys) if error_fn is not None else (pred - ys) ** 2 / n_dims
    finite = torch.isfinite(pred) if pred.dim() == 2 else torch.isfinite(pred).all(-1)
    # a non-finite prediction is a non-finite error, whatever the metric (an argmax of NaN logits is not a class)
    return errors.masked_fill(~finite, float("nan"))


def curve_rows(errors: torch.Tensor, label: str, shift: str, scored: torch.Tensor | None = None) -> list[dict]:
    """One row per scored position ``k``: the mean error over the prompts scored there and its 95% interval.

    ``scored`` (B, N) marks the (prompt, position) pairs the task scores (default: all); a position no prompt
    scores (associative recall's writes) has no row. A learner whose error is NaN or infinite at a scored
    position keeps its row, with a non-finite mean: it diverged, and tables and plots say so."""
    if scored is None:
        scored = torch.ones(errors.shape, dtype=torch.bool)
    rows = []
    for k in range(errors.shape[1]):
        e = errors[scored[:, k], k]
        if e.numel() == 0:
            continue
        n = e.numel()
        m = e.mean().item()
        half = Z_95 * (e.std(unbiased=True).item() if n > 1 else 0.0) / math.sqrt(n)
        rows.append({"learner": label, "shift": shift, "k": k, "mean": m, "ci_low": m - half, "ci_high": m + half})
    return rows


def error_curves(
    learners: list[Learner], prompts: Prompts | list, n_dims: float, shift: str = "standard", error_fn=None
) -> list[dict]:
    """Rows ``{learner, shift, k, mean, ci_low, ci_high}`` for every learner and every ``k``.

    ``prompts`` is one batch (every position scored) or, for query shifts, a list of ``(k, prompts)``
    pairs where only position ``k`` of each batch is scored (see :func:`iclab.tasks.apply_shift`).
    ``n_dims`` is the normaliser (the task's ``error_scale``; ``d`` for linear regression); ``error_fn``
    replaces the squared error with a task's own metric (``task.error``).

    Example::

        rows = error_curves([model, make_learner("least_squares")], task.eval_prompts(1280, seed=1), 5)
    """
    parts = [(None, prompts)] if isinstance(prompts, Prompts) else prompts
    # the positions the task scores: where a perfect prediction has a (finite) error
    masks = []
    for _, batch in parts:
        ys = batch.ys.to(torch.float64).cpu()
        truth = torch.nn.functional.one_hot(ys.long(), batch.n_classes).to(ys) if batch.n_classes else ys
        perfect = error_fn(truth, ys) if error_fn is not None else torch.zeros_like(ys)
        masks.append(~torch.isnan(perfect))
    rows = []
    for learner in learners:
        for (k, batch), scored in zip(parts, masks):
            errors = squared_errors(learner, batch, n_dims, error_fn)
            if k is not None:
                errors, scored = errors[:, k : k + 1], scored[:, k : k + 1]
            found = curve_rows(errors, learner.label, shift, scored)
            if k is not None and found:
                found[0]["k"] = k
            rows.extend(found)
    return rows


def error_at(rows: list[dict], learner: str, k: int, shift: str = "standard") -> float:
    for row in rows:
        if row["learner"] == learner and row["k"] == k and row["shift"] == shift:
            return row["mean"]
    raise KeyError((learner, k, shift))
