"""Shared machinery of the reference learners: parameters, labels, spec parsing, prefix sums.

A reference learner is built from a *spec*: a name (``"least_squares"``), a call string
(``"ridge(lam=0.25)"``) or a mapping (``{"name": "ridge", "lam": 0.25}``). Its parameters are the
keyword arguments of its ``__init__``, checked on construction.
"""

from __future__ import annotations

import inspect
import re
import typing
from typing import Any

from iclab.errors import ConfigError
from iclab.lazy import torch
from iclab.registry import Registry
from iclab.schema import convert
from iclab.types import Prompts
from iclab.utils import exclusive_cumsum  # noqa: F401  (re-exported: the learners' prefix sums)

LEARNERS = Registry("learner")  # name -> learner class; ``@LEARNERS.register`` on each, named by its ``name``

COMPUTE_DTYPE = "float64"  # reference algorithms run in double precision (torch.float64), then cast back


class ReferenceLearner:
    """Base class: subclasses set ``name``, implement ``_predict(xs, ys) -> (B, N)`` in float64 and are
    registered with ``@LEARNERS.register``."""

    name: str = ""
    prompt_kind: str = "real"  # the kind of prompts it predicts on (a name in iclab.kinds.KINDS)
    predicts_what: str = "real-valued labels"  # what it predicts, in words (for messages)
    requires_task: bool = False  # built with ``task=...`` (Bayes learners need the prior, pool, features)
    slow: bool = False  # fits a model per prompt and prefix in a Python loop: analyses skip it unless asked

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}

    @classmethod
    def applies_to(cls, task) -> str | None:
        """None when this learner can predict on ``task``'s prompts, else the reason it cannot."""
        return None

    def _set_params(self, **params: Any) -> None:
        self._params = params
        for key, value in params.items():
            setattr(self, key, value)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def label(self) -> str:
        if not self._params:
            return self.name
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self._params.items())
        return f"{self.name}({args})"

    def __repr__(self) -> str:
        return self.label

    def predict(self, prompts: Prompts) -> torch.Tensor:  # (B, N), or (B, N, C) scores for C classes
        dtype = getattr(torch, COMPUTE_DTYPE)
        xs = prompts.xs.to(dtype)
        ys = prompts.ys.to(dtype)
        with torch.no_grad():
            if prompts.n_classes is None:
                return self._predict(xs, ys).to(prompts.ys.dtype)
            # classification: regress each class's one-hot indicator (k-NN: vote shares) in one batch
            b, n, d = xs.shape
            c = prompts.n_classes
            onehot = torch.nn.functional.one_hot(ys.long(), c).to(dtype)  # (B, N, C)
            per_class = self._predict(xs.repeat_interleave(c, 0), onehot.permute(0, 2, 1).reshape(b * c, n))
            return per_class.view(b, c, n).permute(0, 2, 1).to(prompts.xs.dtype)

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$")


def parse_learner_spec(spec: Any, path: str = "learner", task=None) -> tuple[str, dict[str, Any]]:
    """Parse and check a learner spec; return ``(name, kwargs)`` or raise :class:`ConfigError`.

    With ``task``, also check that the learner applies to it.
    """
    import yaml

    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("name", None)
        kwargs = spec
    elif isinstance(spec, str):
        m = _CALL.match(spec)
        if not m:
            raise ConfigError(f"{path}: expected a learner name or call like 'ridge(lam=0.25)', got {spec!r}")
        name, argstr = m.group(1), m.group(2)
        kwargs = {}
        if argstr and argstr.strip():
            for part in argstr.split(","):
                key, sep, raw = part.partition("=")
                if not sep:
                    raise ConfigError(f"{path}: arguments must be key=value, got {part.strip()!r} in {spec!r}")
                try:
                    kwargs[key.strip()] = yaml.safe_load(raw.strip())
                except yaml.YAMLError:
                    raise ConfigError(
                        f"{path}: cannot read the value of {key.strip()!r} in {spec!r}: "
                        f"{raw.strip()!r} is not a number, string or list"
                    ) from None
    else:
        raise ConfigError(f"{path}: expected a learner name, call string or mapping, got {spec!r}")
    if name not in LEARNERS:
        raise ConfigError(f"{path}: unknown learner {name!r}; registered: {', '.join(sorted(LEARNERS))}")
    cls = LEARNERS[name]
    sig = inspect.signature(cls.__init__)
    hints = typing.get_type_hints(cls.__init__)
    allowed = [p for p in sig.parameters if p not in ("self", "task")]
    out = {}
    for key, value in kwargs.items():
        if key not in allowed:
            what = ", ".join(allowed) if allowed else "none"
            raise ConfigError(f"{path}: learner {name!r} has no parameter {key!r}; parameters: {what}")
        out[key] = convert(hints.get(key, Any), value, f"{path}.{key}")
    if task is not None:
        reason = learner_unsupported(cls, task)
        if reason is not None:
            raise ConfigError(f"{path}: learner {name!r} does not apply to task {task.name!r}: {reason}")
    if not cls.requires_task or task is not None:
        try:
            cls(**out, **({"task": task} if cls.requires_task else {}))  # the learner's own value checks
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    return name, out


def learner_unsupported(cls, task) -> str | None:
    """Why the learner class ``cls`` cannot predict on ``task``'s prompts, or None."""
    if cls.prompt_kind != task.prompt_kind:
        return (
            f"it reads {cls.prompt_kind!r} prompts and predicts {cls.predicts_what}; the task's prompts are of "
            f"kind {task.prompt_kind!r}, whose learners predict {task.predicts_what}"
        )
    if cls.predicts_what != task.predicts_what:  # next tokens, or a pretext task's classes
        return f"it predicts {cls.predicts_what}; task {task.name}'s learners predict {task.predicts_what}"
    return cls.applies_to(task)


def make_learner(spec: Any, path: str = "learner", task=None) -> ReferenceLearner:
    """Build a reference learner from a spec: ``make_learner("knn(k=3)")``.

    Learners that need the task (posterior means over its prior, feature maps) take it as ``task``:
    ``make_learner("dmmse", task=make_task(cfg.task))``.
    """
    name, kwargs = parse_learner_spec(spec, path, task)
    cls = LEARNERS[name]
    if cls.requires_task:
        if task is None:
            raise ConfigError(f"{path}: learner {name!r} needs the task it predicts on (pass task=...)")
        return cls(**kwargs, task=task)
    return cls(**kwargs)


def check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)
