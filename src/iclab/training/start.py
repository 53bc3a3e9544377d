"""A run that starts from another run's weights (``start.run``): fine-tuning, pruning and growing begin here.

The started-from run must be finished (or ``start.step`` names one of its checkpoints) and its network must be
this run's: the same model section (a grown run may differ in the fields growth changes). Its state dict is loaded
into this run's network; what this run adds (a fine-tuning method's parameters, pruning masks) keeps its own
initialisation, and a parameter that growth made longer takes the old values first and zeros after. The run folder's
``start.json`` records the folder, step and a digest of the weights loaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from iclab.config import read_run_config, to_dict
from iclab.errors import ConfigError, RunFolderError
from iclab.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from iclab.utils import flatten

__all__ = ["GROWN_FIELDS", "check_start", "load_start", "read_start_run"]

# model fields a grown run may change from the run it started from (their parameters grow: see _fitted_state)
GROWN_FIELDS = ("model.param_tokens", "model.param_scale_tokens")


def read_start_run(cfg):
    """``(config, checkpoint)`` of the run ``cfg.start`` names, or a one-line refusal: not a run folder, not
    finished, no checkpoint at ``start.step``, itself fine-tuned with a method that adds parameters."""
    where = Path(cfg.start.run)
    if not (where / "config.yaml").is_file():
        raise RunFolderError(f"start.run: {where} is not an iclab run folder (no config.yaml)")
    base = read_run_config(where)
    if cfg.start.step is None:
        if not list_checkpoints(where):
            raise RunFolderError(f"start.run: {where} has no checkpoint; train it first")
        ckpt = latest_checkpoint(where)
        if ckpt.step < base.train.steps:
            raise RunFolderError(
                f"start.run: {where} is unfinished ({ckpt.step} of {base.train.steps} steps); finish it with "
                f"`iclab train --resume --out {where}`, or name a checkpoint with start.step"
            )
    else:
        steps = {int(p.name.removeprefix("step-")): p for p in list_checkpoints(where)}
        if cfg.start.step not in steps:
            have = ", ".join(map(str, sorted(steps))) or "none"
            raise RunFolderError(f"start.step: {where} has no checkpoint at step {cfg.start.step} (it has: {have})")
        ckpt = load_checkpoint(steps[cfg.start.step])
    if base.finetune is not None and base.finetune.method not in ("full", "readout"):
        raise ConfigError(
            f"start.run: {where} is itself fine-tuned with {base.finetune.method}; start from the run it was "
            f"fine-tuned from ({base.start.run})"
        )
    return base, ckpt


def _from_pretext(base, cfg) -> bool:
    """Whether ``base`` is a run of a pretext task (position prediction) and ``cfg`` goes on to another task, where
    the network may get positions and gets a new read-out."""
    from iclab.tasks import TASKS

    return TASKS[base.task.name].pretext and cfg.task.name != base.task.name


def _check_same_network(base, cfg) -> None:
    a, b = flatten({"model": to_dict(base.model)}), flatten({"model": to_dict(cfg.model)})
    changeable = GROWN_FIELDS + (("model.positional", "model.n_positions") if _from_pretext(base, cfg) else ())
    for key in sorted(set(a) | set(b), key=lambda k: (k != "model.name", k)):  # the family first: it explains the rest
        if key not in changeable and a.get(key) != b.get(key):
            raise ConfigError(
                f"{key}: {b.get(key)!r} here but {a.get(key)!r} in start.run {cfg.start.run}; a run that starts from "
                f"another keeps its network (only growth changes {', '.join(GROWN_FIELDS)})"
            )


def _fitted_state(cfg, base, own: dict, ckpt) -> dict:
    """The started-from state dict fitted to this run's (``own``: name -> tensor, possibly on the meta device);
    refuses a tensor with no place or another shape. A grown Pattention layer's new parameter tokens get zero keys
    (TokenFormer's choice: GELU(0) = 0, so they add nothing to the output or to the normalisation, and the function
    is kept exactly) and the values this network drew at initialisation. Zero values as well would be a saddle: the
    gradients of both would be exactly zero, and the new tokens would never train."""
    state = {}
    fresh_read_out = _from_pretext(base, cfg)  # the pretext's read-out predicts the pretext's classes
    for name, value in ckpt.model.items():
        if fresh_read_out and ".read_out." in f".{name}":
            continue
        if name not in own:
            raise ConfigError(f"start.run: {cfg.start.run}'s {name} has no place in this run's network")
        target = own[name]
        if target.shape == value.shape:
            state[name] = value
            continue
        grows = target.dim() == value.dim() and target.shape[1:] == value.shape[1:] and target.shape[0] > value.shape[0]
        if not (grows and name.endswith(("param_keys", "param_values"))):
            raise ConfigError(
                f"start.run: {cfg.start.run}'s {name} is {tuple(value.shape)}, this run's network has "
                f"{tuple(target.shape)} (a different task size or vocabulary?)"
            )
        if name.endswith("param_keys") or target.is_meta:
            padded = torch.zeros(target.shape, dtype=value.dtype)
        else:
            padded = target.detach().to("cpu", value.dtype).clone()
        padded[: value.shape[0]] = value
        state[name] = padded
    return state


def check_start(cfg, task) -> torch.nn.Module:
    """Everything :func:`load_start` would refuse, refused before anything is written; returns the run's network
    built on the meta device (its sizes, without weights)."""
    from iclab.kinds import build_run_network

    base, ckpt = read_start_run(cfg)
    _check_same_network(base, cfg)
    with torch.device("meta"):
        model = build_run_network(cfg, task)
    _fitted_state(cfg, base, model.state_dict(), ckpt)
    return model


def load_start(cfg, model: torch.nn.Module) -> dict:
    """Load ``cfg.start``'s weights into ``model`` (built for ``cfg``); returns what ``start.json`` records."""
    base, ckpt = read_start_run(cfg)
    _check_same_network(base, cfg)
    if base.prune is not None and cfg.prune is None:
        raise ConfigError(f"prune: start.run {cfg.start.run} is pruned; keep its prune section so its masks load")
    own = model.state_dict()
    state = _fitted_state(cfg, base, own, ckpt)
    missing = [n for n in own if n not in state]
    with torch.no_grad():
        model.load_state_dict({**{n: own[n] for n in missing}, **state})
    digest = hashlib.sha256()
    for name in sorted(ckpt.model):
        digest.update(name.encode())
        digest.update(ckpt.model[name].detach().cpu().contiguous().numpy().tobytes())
    record = {
        "run": str(Path(cfg.start.run).resolve()),
        "step": ckpt.step,
        "weights_sha256": digest.hexdigest(),
        "added": missing,
    }
    before, after = getattr(base.model, "param_tokens", None), getattr(cfg.model, "param_tokens", None)
    if getattr(cfg.model, "linear", None) == "pattention" and before != after:
        record["grow"] = {"from_tokens": before, "to_tokens": after}
    return record
