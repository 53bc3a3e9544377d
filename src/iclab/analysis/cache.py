"""Activation capture: run a model on prompts and keep the named activations, addressable by hook name.

    pred, cache = run_with_cache(model, prompts, ["blocks.*.hook_resid_post"])
    cache["blocks.1.hook_resid_post"]          # (B, T, D): every token
    cache.at_readout("blocks.1.hook_resid_post")  # (B, N, D): the tokens that predict y_1 .. y_N
    names, acts = cache.stack("blocks.*.hook_resid_post")  # (L, B, T, D)

Hooks are attached only while the model runs and always removed afterwards (:func:`iclab.models.capture`).
A name that is not a hook of the model is an error that lists the valid ones.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

import torch

from iclab.errors import UserError
from iclab.models import capture, hook_points
from iclab.models.encoders import Layout
from iclab.types import Prompts


class ActivationCache(Mapping):
    """Captured activations by hook name, with the prompt layout (which token predicts which ``y``)."""

    def __init__(self, tensors: dict[str, torch.Tensor], valid: list[str], layout: Layout) -> None:
        self._tensors = tensors
        self.valid = valid  # every hook name of the model, in forward order
        self.layout = layout

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._tensors:
            if name not in self.valid:
                raise UserError(f"hook {name!r} does not exist; valid hooks: {', '.join(self.valid)}")
            raise UserError(f"hook {name!r} was not captured; captured: {', '.join(self._tensors)}")
        return self._tensors[name]

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self._tensors.items())
        return f"ActivationCache({shapes})"

    def at_readout(self, name: str) -> torch.Tensor:
        """The activation at the tokens whose output predicts ``y_1 .. y_N``: ``(B, N, ...)``. For hooks
        shaped ``(B, T, ...)`` (residual streams, states, block outputs)."""
        t = self[name]
        if t.dim() < 2 or t.shape[1] != len(self.layout.positions):
            raise UserError(
                f"hook {name!r} has shape {tuple(t.shape)}, not (batch, tokens, ...): it has no "
                "per-token readout (use a residual-stream or state hook)"
            )
        return t[:, self.layout.readout.to(t.device)]

    def stack(self, pattern: str) -> tuple[list[str], torch.Tensor]:
        """Every captured hook matching a glob pattern (``"blocks.*.hook_resid_post"``), in forward order,
        stacked on a new first dimension."""
        names = [n for n in self.valid if n in self._tensors and fnmatch.fnmatchcase(n, pattern)]
        if not names:
            raise UserError(f"no captured hook matches {pattern!r}; captured: {', '.join(self._tensors)}")
        return names, torch.stack([self._tensors[n] for n in names])


def resolve_hooks(model, patterns: list[str] | None) -> list[str]:
    """Hook names from names or glob patterns (all hooks when None), in forward order; an unknown name or
    a pattern matching nothing is an error listing the valid hooks."""
    valid = list(hook_points(model))
    if patterns is None:
        return valid
    chosen: list[str] = []
    for p in patterns:
        found = [n for n in valid if fnmatch.fnmatchcase(n, p)]
        if not found:
            raise UserError(f"hook {p!r} does not exist; valid hooks: {', '.join(valid)}")
        chosen.extend(n for n in found if n not in chosen)
    return [n for n in valid if n in chosen]


@torch.no_grad()
def run_with_cache(model, prompts: Prompts, hooks: list[str] | None = None) -> tuple[torch.Tensor, ActivationCache]:
    """Predictions ``(B, N)`` and the activations of ``hooks`` (names or glob patterns; all when None) for
    one batch of prompts, on the model's device; the cache holds detached CPU tensors."""
    names = resolve_hooks(model, hooks)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with capture(model, names) as raw:
            pred = model.forward_prompts(prompts.to(device))
    finally:
        model.train(was_training)
    layout = model.layout(prompts)  # where each prompt position sits among the tokens
    return pred.cpu(), ActivationCache({k: v.cpu() for k, v in raw.items()}, list(hook_points(model)), layout)
