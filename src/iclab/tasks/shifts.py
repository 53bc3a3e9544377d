"""Distribution shifts for evaluation: train on the standard prompt, test on a shifted one.

Garg et al. 2022: ``skewed_covariance``, ``noisy_y``, ``scale_x(scale=...)``, ``orthant`` (in-context
inputs in one random orthant, the query in the opposite one), ``half_subspace`` (in-context inputs and
query in a random d/2-dimensional subspace) and ``orthogonal_query`` (in-context inputs in the subspace,
query orthogonal to it). von Oswald et al. 2022: input-scale and weight-scale sweeps, ``scale_x(scale=s)``
and ``scale_w(scale=s)``.

A shift keeps each prompt's function (``info``) and moves the inputs, relabelling them with
``task.label`` plus the task's label noise. *Prompt* shifts change every point, so one prompt scores
every k; *query* shifts treat the query differently from the context, so the curve at ``k`` is computed
on its own prompts of ``k + 1`` points. Specs are names or calls: ``"scale_x(scale=2)"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from iclab.errors import ConfigError
from iclab.lazy import torch
from iclab.registry import Registry
from iclab.types import Prompts
from iclab.utils import derive_seed

SHIFT_STREAM = 3
SHIFTS = Registry("shift")  # name -> shift function (task, n_prompts, seed, **params); named by the function


def shift(*requires: str, name: str | None = None):
    """Register a shift; ``requires`` names what it needs of a task (``Task.shift_unsupported`` checks):
    ``relabel`` (labels for moved inputs), ``real_labels`` (not classes), ``weights`` (a weight vector),
    ``any_length`` (prompts of any number of points: the query shifts draw k + 1 of them), ``task_set`` (a finite
    set of training tasks, so that tasks outside it exist)."""

    def register(fn):
        fn.requires = requires
        return SHIFTS.register(fn, name=name)

    return register


def _relabel(task, xs: torch.Tensor, info: dict, generator: torch.Generator) -> torch.Tensor:
    return task.noisy_label(xs, info, generator)


def _base(task, n_prompts, seed, n_points=None):
    g = torch.Generator().manual_seed(derive_seed(seed, SHIFT_STREAM, n_points or 0))
    prompts = task.sample(n_prompts, g, task.n_dims, n_points or task.n_points)
    return prompts, g


@shift()
def standard(task, n_prompts, seed):
    """The training distribution (held-out prompts)."""
    return [(None, task.eval_prompts(n_prompts, seed))]


@shift("real_labels")
def noisy_y(task, n_prompts, seed, std: float = 1.0):
    """Extra label noise of standard deviation ``std`` on every point."""
    p = task.eval_prompts(n_prompts, seed)
    g = torch.Generator().manual_seed(derive_seed(seed, SHIFT_STREAM, 1))
    return [(None, Prompts(p.xs, p.ys + std * torch.randn(p.ys.shape, generator=g), p.info))]


@shift("relabel")
def scale_x(task, n_prompts, seed, scale: float = 2.0):
    """Inputs multiplied by ``scale`` (von Oswald et al.'s input-scale sweep)."""
    p, g = _base(task, n_prompts, seed)
    xs = p.xs * scale
    return [(None, Prompts(xs, _relabel(task, xs, p.info, g), p.info))]


@shift("relabel", "weights")
def scale_w(task, n_prompts, seed, scale: float = 2.0):
    """Weights multiplied by ``scale`` (von Oswald et al.'s weight-scale sweep)."""
    p, g = _base(task, n_prompts, seed)
    if "w" not in p.info:
        raise ConfigError(f"shift scale_w: task {task.name} has no weight vector w to scale")
    info = {**p.info, "w": p.info["w"] * scale}
    return [(None, Prompts(p.xs, _relabel(task, p.xs, info, g), info))]


@shift("relabel")
def skewed_covariance(task, n_prompts, seed, decay: float = 2.0):
    """Inputs ``x -> A x`` with a fixed random eigenbasis and eigenvalues ``∝ 1 / i^decay`` (trace d)."""
    p, g = _base(task, n_prompts, seed)
    d = task.n_dims
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(17)))
    eig = 1.0 / torch.arange(1, d + 1, dtype=torch.float32) ** decay
    eig = eig * d / eig.sum()
    xs = p.xs @ (basis * eig.sqrt()) @ basis.T
    return [(None, Prompts(xs, _relabel(task, xs, p.info, g), p.info))]


def _per_query(task, n_prompts, seed, move: Callable) -> list:
    """Query shifts: for each k, prompts of k + 1 points whose context and query ``move`` places."""
    out = []
    for k in range(task.n_points):
        p, g = _base(task, n_prompts, seed, n_points=k + 1)
        xs = move(p.xs, g)
        out.append((k, Prompts(xs, _relabel(task, xs, p.info, g), p.info)))
    return out


@shift("relabel", "any_length")
def orthant(task, n_prompts, seed):
    """In-context inputs in one random orthant, the query in the opposite one."""

    def move(xs, g):
        sign = torch.randint(0, 2, (xs.shape[0], 1, xs.shape[2]), generator=g).float() * 2 - 1
        out = xs.abs() * sign
        out[:, -1] = -out[:, -1]
        return out

    return _per_query(task, n_prompts, seed, move)


def _subspace(query_in: bool):
    def shift(task, n_prompts, seed):
        d = task.n_dims

        def move(xs, g):
            basis, _ = torch.linalg.qr(torch.randn(xs.shape[0], d, d, generator=g))
            proj = basis[:, :, : max(d // 2, 1)]
            inside = proj @ proj.transpose(1, 2)  # (B, d, d) projector onto the subspace
            out = xs @ inside
            if not query_in:
                out[:, -1] = (xs[:, -1:] @ (torch.eye(d) - inside)).squeeze(1)  # orthogonal to the subspace
            return out

        return _per_query(task, n_prompts, seed, move)

    shift.__doc__ = (
        "In-context inputs and the query in a random d/2-dimensional subspace."
        if query_in
        else "In-context inputs in a random d/2-dimensional subspace, the query orthogonal to it."
    )
    return shift


shift("relabel", "any_length", name="half_subspace")(_subspace(query_in=True))
shift("relabel", "any_length", name="orthogonal_query")(_subspace(query_in=False))

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$")


@shift("task_set")
def fresh_tasks(task, n_prompts, seed):
    """Tasks outside the training set: fresh Gaussian weights for a task pool (Raventós et al. 2023), fresh
    projections and label permutations for digits (Kirsch et al. 2022)."""
    g = torch.Generator().manual_seed(derive_seed(seed, SHIFT_STREAM, 1_000_003))
    return [(None, task.sample_fresh(n_prompts, g, task.n_dims, task.n_points))]


def parse_shift(spec: str, path: str = "shift") -> tuple[str, dict[str, Any]]:
    """``"scale_x(scale=2)" -> ("scale_x", {"scale": 2.0})``, checked against the shift's parameters."""
    import inspect

    m = _CALL.match(spec) if isinstance(spec, str) else None
    if not m or m.group(1) not in SHIFTS:
        raise ConfigError(f"{path}: unknown shift {spec!r}; available: {', '.join(SHIFTS)}")
    name, argstr = m.group(1), m.group(2)
    params = [p for p in inspect.signature(SHIFTS[name]).parameters if p not in ("task", "n_prompts", "seed")]
    kwargs = {}
    for part in filter(None, (a.strip() for a in (argstr or "").split(","))):
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or key not in params:
            raise ConfigError(f"{path}: shift {name!r} takes {', '.join(params) or 'no parameters'}; got {part!r}")
        try:
            kwargs[key] = float(raw)
        except ValueError:
            raise ConfigError(f"{path}: {name}.{key} must be a number, got {raw.strip()!r}") from None
        if not math.isfinite(kwargs[key]) or kwargs[key] <= 0:
            raise ConfigError(f"{path}: {name}.{key} must be a positive number, got {raw.strip()!r}")
    return name, kwargs


def check_shift(spec: str, task, path: str = "shift") -> tuple[str, dict[str, Any]]:
    """:func:`parse_shift`, then a :class:`ConfigError` naming ``path`` when the shift does not apply to ``task``."""
    name, kwargs = parse_shift(spec, path)
    reason = task.shift_unsupported(name)
    if reason is not None:
        raise ConfigError(
            f"{path}: shift {name!r} does not apply to task {task.name!r}: {reason}; it takes "
            f"{', '.join(task.applicable()['shifts'])}"
        )
    return name, kwargs


def apply_shift(spec: str, task, n_prompts: int, seed: int) -> list[tuple[int | None, Prompts]]:
    """Held-out prompts under a shift: ``[(None, prompts)]`` for a prompt shift (every k scored), or
    ``[(k, prompts_k), ...]`` for a query shift (only position k of ``prompts_k`` scored)."""
    name, kwargs = check_shift(spec, task)
    return SHIFTS[name](task, n_prompts, seed, **kwargs)
