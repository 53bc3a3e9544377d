"""Structured pruning masks: one per attention head and one per MLP neuron, kept as buffers beside the weights
(``blocks.{l}.attn.head_mask (H,)``, ``blocks.{l}.mlp.neuron_mask (hidden,)``), so a pruned network is a state dict
like any other. A head's output (before the output projection) and a neuron's activation (before the MLP's second
layer) are multiplied by its mask, so a zero removes that unit exactly.

:func:`add_unit_masks` adds all-ones masks (the network unchanged); :func:`prunable_units` lists the units with
the multiply-adds per token each costs, which the pruning methods (:mod:`iclab.change.prune`) rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from iclab.errors import ConfigError
from iclab.models.parts import MLP
from iclab.models.transformer import Attention

__all__ = ["Unit", "add_unit_masks", "prunable_units", "unit_mask"]


@dataclass(frozen=True)
class Unit:
    """One prunable unit: ``kind`` "head" or "neuron", its ``layer`` (block index) and ``index`` in that block, and
    the multiply-adds per token it costs."""

    kind: str
    layer: int
    index: int
    flops: float

    @property
    def name(self) -> str:
        return f"L{self.layer}{'H' if self.kind == 'head' else 'N'}{self.index}"


def _blocks(model: nn.Module) -> list[nn.Module]:
    return list(getattr(getattr(model, "backbone", model), "blocks", []))


def _dense(*maps: nn.Module) -> bool:
    """Whether a unit's maps are weight matrices (TokenFormer's and MemoryFormer's layers have none to rank)."""
    return all(isinstance(m, nn.Linear) for m in maps)


def add_unit_masks(model: nn.Module) -> nn.Module:
    """Give every softmax attention layer a ``head_mask`` and every MLP a ``neuron_mask``, all ones; returns
    ``model``. Refuses a family with neither."""
    found = False
    for block in _blocks(model):
        attn, mlp = getattr(block, "attn", None), getattr(block, "mlp", None)
        if isinstance(attn, Attention) and _dense(attn.qkv, attn.proj):
            attn.head_mask = torch.ones(attn.n_head, device=attn.proj.weight.device)
            found = True
        if isinstance(mlp, MLP) and _dense(mlp.fc, mlp.proj):
            mlp.neuron_mask = torch.ones(mlp.fc.out_features, device=mlp.fc.weight.device)
            found = True
    if not found:
        name = getattr(getattr(model, "config", None), "name", type(model).__name__)
        raise ConfigError(f"prune: model {name} has no attention heads or MLP neurons to prune")
    return model


def prunable_units(model: nn.Module, tokens: int) -> list[Unit]:
    """Every head and neuron of a masked network, in block order, with its multiply-adds per token at a prompt of
    ``tokens`` tokens: a head its q, k, v and output columns (``4 D Dh``) and its scores and mixing (``2 T Dh``,
    causal attention averaging ``T / 2`` keys each); a neuron its weight vectors (``2 D``; SwiGLU's ``3 D``)."""
    units = []
    for layer, block in enumerate(_blocks(model)):
        attn, mlp = getattr(block, "attn", None), getattr(block, "mlp", None)
        if isinstance(attn, Attention) and attn.head_mask is not None:
            d = attn.proj.in_features
            dh = d // attn.n_head
            units += [Unit("head", layer, h, 4 * d * dh + tokens * dh) for h in range(attn.n_head)]
        if isinstance(mlp, MLP) and mlp.neuron_mask is not None:
            d = mlp.fc.in_features
            units += [Unit("neuron", layer, i, mlp.matrices * d) for i in range(mlp.fc.out_features)]
    return units


def unit_mask(model: nn.Module, unit: Unit) -> torch.Tensor:
    """The mask buffer that holds ``unit`` (index it with ``unit.index``)."""
    block = _blocks(model)[unit.layer]
    return block.attn.head_mask if unit.kind == "head" else block.mlp.neuron_mask
