"""Changing a trained run: fine-tune it (:func:`finetune_config`, He et al. 2022's methods in
:mod:`iclab.models.petl`), prune it (:mod:`iclab.change.prune`) or grow it (:mod:`iclab.change.grow`). Each result
is a run folder like any other (config, checkpoints, eval, report) whose ``start`` section and ``start.json``
record the run it came from, so ``eval``, ``analyze``, ``report``, ``compare`` and sweeps work on it unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iclab.config import (
    PETL_METHODS,
    RunConfig,
    apply_overrides,
    read_run_config,
    run_config_from_dict,
    to_dict,
)
from iclab.errors import ConfigError
from iclab.schema import parse_call

__all__ = ["changed_config", "finetune_config", "grow_config", "parse_call"]


def changed_config(run_dir: str | Path, overrides: list[str], **sections: Any) -> RunConfig:
    """The config of a run that starts from ``run_dir``: its config, ``start.run`` set to it, ``sections`` (e.g.
    ``finetune={...}``) merged in and ``overrides`` (``--set``) applied. Changing the task resets the reference
    learners and shifts to the new task's own (unless the overrides name them); the model stays the base's."""
    base = read_run_config(Path(run_dir))
    data = to_dict(base)
    data["start"] = {"run": str(run_dir), "step": None}
    data["finetune"] = None
    for key, value in sections.items():
        data[key] = value
    keys = [item.partition("=")[0] for item in overrides]
    if any(k.startswith("task.") for k in keys):
        if not any(k.startswith("eval.learners") for k in keys):
            data["eval"]["learners"] = None
        if not any(k.startswith("eval.shifts") for k in keys):
            data["eval"]["shifts"] = ["standard"]
    return run_config_from_dict(apply_overrides(data, overrides))


def finetune_config(run_dir: str | Path, method: str, overrides: list[str] | None = None) -> RunConfig:
    """``iclab finetune RUN --method METHOD``: the base's config with ``finetune`` set from ``method`` (a name or a
    call, ``lora(r=4, alpha=8)``), named ``<base>-<method>``, then ``overrides``."""
    name, kwargs = parse_call(method, "--method")
    if name not in PETL_METHODS:
        raise ConfigError(f"--method: {name!r} is not a fine-tuning method; methods: {', '.join(PETL_METHODS)}")
    base = read_run_config(Path(run_dir))
    named = [f"name={base.name}-{name}"]
    return changed_config(run_dir, named + list(overrides or []), finetune={"method": name, **kwargs})


def grow_config(run_dir: str | Path, new_tokens: int, overrides: list[str] | None = None) -> RunConfig:
    """``iclab grow RUN --param-tokens N``: the base's config with ``N`` more parameter tokens in every Pattention
    layer (TokenFormer), the normalisation kept at the old count so that the grown network starts as the base
    (exactly: :mod:`iclab.models.pattention`), named ``<base>-grown``, then ``overrides`` (``train.steps``...)."""
    base = read_run_config(Path(run_dir))
    model = base.model
    if getattr(model, "linear", None) != "pattention":
        raise ConfigError(
            f"{run_dir}: model {model.name} has no Pattention layers (model.linear: "
            f"{getattr(model, 'linear', 'none')}); only a transformer with model.linear=pattention grows"
        )
    if model.pattention_norm != "gelu_l2":
        raise ConfigError(
            f"{run_dir}: model.pattention_norm is {model.pattention_norm}; growth keeps the function only under "
            f"gelu_l2 (a zero key still takes exp(0) of a softmax)"
        )
    if isinstance(new_tokens, bool) or not isinstance(new_tokens, int) or new_tokens < 1:
        raise ConfigError(f"--param-tokens: must be a positive number of tokens to append, got {new_tokens!r}")
    scale = model.param_scale_tokens if model.param_scale_tokens is not None else model.param_tokens
    grown = [
        f"name={base.name}-grown",
        f"model.param_tokens={model.param_tokens + new_tokens}",
        f"model.param_scale_tokens={scale}",
    ]
    return changed_config(run_dir, grown + list(overrides or []))
