"""Named identity hooks on every activation an analyst may want, and a context manager to read them.

Every model routes its interesting tensors through a :class:`HookPoint`; its name is its module path
(``blocks.0.attn.hook_pattern``). :func:`capture` records them::

    with capture(model, ["blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern"]) as cache:
        model.predict(prompts)
    cache["blocks.1.attn.hook_pattern"].shape  # (B, H, T, T)

Hooks are always removed when the ``with`` block exits, even on error.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from iclab.errors import UserError


class HookPoint(nn.Module):
    """Identity module marking a named activation. ``active`` is true while something listens."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def active(self) -> bool:
        return bool(self._forward_hooks)


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """All hook points of ``model``, by name, in forward order."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, HookPoint):
            out[name.removeprefix("backbone.")] = module
    return out


@contextmanager
def capture(model: nn.Module, names: list[str] | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Record the named activations (all of them when ``names`` is None) during the ``with`` block.

    Yields a dict from hook name to the detached tensor of the last forward pass.
    """
    points = hook_points(model)
    if names is None:
        names = list(points)
    for name in names:
        if name not in points:
            raise UserError(f"hook {name!r} does not exist; valid hooks: {', '.join(points)}")
    cache: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name in names:
            def record(_module, _inputs, output, name=name):
                cache[name] = output.detach()

            handles.append(points[name].register_forward_hook(record))
        yield cache
    finally:
        for handle in handles:
            handle.remove()
