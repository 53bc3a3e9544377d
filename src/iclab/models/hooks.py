"""Named identity hooks on every activation an analyst may want, and a context manager to read them.

Every model routes its interesting tensors through a :class:`HookPoint`; its name is its module path
(``blocks.0.attn.hook_pattern``). :func:`capture` records them::

    with capture(model, ["blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern"]) as cache:
        model.predict(prompts)
    cache["blocks.1.attn.hook_pattern"].shape  # (B, H, T, T)

Hooks are always removed when the ``with`` block exits, even on error.

:func:`run_with_hooks` patches or ablates activations by name instead of recording them (:func:`zero_ablation`,
:func:`mean_ablation`, :func:`patch_with`)::

    out = run_with_hooks(model, prompts, {"blocks.0.attn.hook_v": zero_ablation(head=1)})
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

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


HookFn = Callable[[torch.Tensor, str], "torch.Tensor | None"]


@contextmanager
def patched(model: nn.Module, hooks: Mapping[str, HookFn]) -> Iterator[None]:
    """Replace named activations during the ``with`` block: ``hooks[name](activation, name)`` returns the tensor
    the rest of the forward pass sees instead (or None to leave it as it is). Hooks are always removed on exit."""
    points = hook_points(model)
    for name in hooks:
        if name not in points:
            raise UserError(f"hook {name!r} does not exist; valid hooks: {', '.join(points)}")
    handles = []
    try:
        for name, fn in hooks.items():

            def replace(_module, _inputs, output, name=name, fn=fn):
                return fn(output, name)

            handles.append(points[name].register_forward_hook(replace))
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_with_hooks(model: nn.Module, prompts, hooks: Mapping[str, HookFn]) -> torch.Tensor:
    """The model's output on ``prompts`` with named activations patched or ablated (TransformerLens's
    ``run_with_hooks``): ``hooks`` maps a hook name to ``fn(activation, name)``, which returns the replacement
    (or None to keep the activation). Works for every family, since every family routes its activations through
    named :class:`HookPoint` modules; the output is what ``model.forward_prompts(prompts)`` returns (``(B, N)``
    predictions for real-valued prompts, ``(B, T, V)`` logits for token prompts), without gradients.

    Example: ablate head 1 of layer 0 by zeroing its values, and compare::

        from iclab.models import run_with_hooks, zero_ablation
        clean = run_with_hooks(model, prompts, {})
        ablated = run_with_hooks(model, prompts, {"blocks.0.attn.hook_v": zero_ablation(head=1)})
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), patched(model, hooks):
            return model.forward_prompts(prompts.to(device))
    finally:
        model.train(was_training)


def zero_ablation(head: int | None = None, dim: int = 1) -> HookFn:
    """A hook function that sets the activation to zero; with ``head``, only index ``head`` of dimension ``dim``
    (heads are dimension 1 of ``hook_q`` / ``hook_k`` / ``hook_v`` / ``hook_pattern``, shaped ``(B, H, ...)``)."""

    def ablate(x: torch.Tensor, _name: str) -> torch.Tensor:
        if head is None:
            return torch.zeros_like(x)
        x = x.clone()
        x.select(dim, head).zero_()
        return x

    return ablate


def mean_ablation(mean: torch.Tensor, head: int | None = None, dim: int = 1) -> HookFn:
    """A hook function that replaces the activation by ``mean`` (e.g. the activation averaged over a reference batch,
    ``cache[name].mean(0)``, broadcast over the batch); with ``head``, only index ``head`` of dimension ``dim``."""

    def ablate(x: torch.Tensor, _name: str) -> torch.Tensor:
        m = mean.to(x.device, x.dtype).expand_as(x)
        if head is None:
            return m.clone()
        x = x.clone()
        x.select(dim, head).copy_(m.select(dim, head))
        return x

    return ablate


def patch_with(values: torch.Tensor) -> HookFn:
    """A hook function that replaces the activation by ``values`` (activation patching: the same hook's activation
    from another run, e.g. from :func:`capture` on corrupted prompts)."""

    def replace(x: torch.Tensor, _name: str) -> torch.Tensor:
        if values.shape != x.shape:
            raise UserError(f"patch: the values have shape {tuple(values.shape)}, the activation {tuple(x.shape)}")
        return values.to(x.device, x.dtype)

    return replace
