"""One shell for every model family: read-in, optional learned positions, the family's blocks, final norm,
read-out.

    tokens (B, T, d_in) --read_in--> + pos_embed --dropout--> block_0 .. block_{L-1} --ln_f--> read_out --> (B, T)

A family supplies its config (:mod:`iclab.models.configs`, which also says which of these parts it wants)
and its block: ``Block(config, width)`` with ``forward(x, layout) -> x`` on ``(B, T, width)``, where
``layout`` (:class:`~iclab.models.encoders.Layout`) carries the encoder's positions and attention mask. A
block class may define ``stack(config, width) -> list[Block]`` (to share weights across layers) and
``init_weights(network)`` (a family-specific initialisation, e.g. GPT-2's). :class:`MLP` is the one
feed-forward sub-layer the families share.

Shell hooks: ``hook_embed`` (B, T, D) after the read-in, ``hook_pos_embed`` (B, T, D) with learned positions,
``hook_final`` (B, T, D) before a linear read-out; the blocks' own hooks are under ``blocks.{l}.``.
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from torch import nn

from iclab.models.encoders import Layout
from iclab.models.hooks import HookPoint


def block_class(config) -> type:
    """The family's block class; ``config.block`` may name it as ``"module:Class"``."""
    block = type(config).block
    if isinstance(block, str):
        module, _, attr = block.partition(":")
        block = getattr(importlib.import_module(module), attr)
    if block is None:
        raise TypeError(f"model config {type(config).__name__} names no block class")
    return block


class MLP(nn.Module):
    """``proj(GELU(fc(x)))``, GELU in its tanh approximation (GPT-2)."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, hidden)
        self.proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the shared MLP kept it as nn.Sequential(Linear, GELU, Linear): "0." and "2."
        for old, new in (("0.", "fc."), ("2.", "proj.")):
            for name in ("weight", "bias"):
                if prefix + old + name in state_dict:
                    state_dict[prefix + new + name] = state_dict.pop(prefix + old + name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class Network(nn.Module):
    """Maps tokens ``(B, T, d_in)`` to one prediction per token, ``(B, T)`` (or ``(B, T, n_outputs)`` logits).

    With ``vocab_size``, a language model: token ids ``(B, T)`` through an embedding table (the read-in) to
    ``(B, T, vocab_size)`` logits. ``config.ngram_heads`` inserts n-gram layers
    (:class:`~iclab.models.ngram_heads.NgramBlock`, which read the token ids) after block ``config.ngram_after``."""

    def __init__(self, config, d_in: int, n_outputs: int = 1, vocab_size: int | None = None) -> None:
        super().__init__()
        kind = type(config)
        self.config = config
        block = block_class(config)
        width = config.n_embd if kind.read_in else d_in
        if vocab_size is not None and not kind.read_in:
            raise ValueError(f"{config.name} has no read-in, so it cannot read tokens")
        # modules are registered in forward order (hook names list in forward order; initial weights follow)
        if vocab_size is not None:
            self.read_in = nn.Embedding(vocab_size, width)
        else:
            self.read_in = nn.Linear(d_in, width) if kind.read_in else None
        self.hook_embed = HookPoint() if kind.read_in else None
        if hasattr(config, "n_positions") and getattr(config, "positional", "learned") == "learned":
            if config.n_positions is None:
                raise ValueError(f"{kind.__name__}.n_positions must be resolved before building the model")
            self.pos_embed = nn.Embedding(config.n_positions, width)
            self.hook_pos_embed = HookPoint()
        else:
            self.pos_embed = None
        self.drop = nn.Dropout(config.dropout) if hasattr(config, "dropout") else None
        layers = (
            block.stack(config, width)
            if hasattr(block, "stack")
            else [block(config, width) for _ in range(config.n_layer)]
        )
        if getattr(config, "ngram_heads", None):
            from iclab.models.ngram_heads import NgramBlock

            at = config.ngram_after
            layers = [*layers[:at], *(NgramBlock(width, n) for n in config.ngram_heads), *layers[at:]]
        self.blocks = nn.ModuleList(layers)
        self.ln_f = nn.LayerNorm(width) if kind.final_norm else None
        if kind.readout == "linear":
            self.hook_final = HookPoint()
            self.read_out = nn.Linear(width, n_outputs)
        elif kind.readout == "y_slot":
            if n_outputs != 1:
                raise ValueError(f"{config.name} predicts one real value per position")
            self.y_slot = d_in - 2  # stacked tokens are (x, y, is_query)
        else:
            raise ValueError(f"unknown read-out {kind.readout!r} for {kind.__name__}")
        if hasattr(block, "init_weights"):
            block.init_weights(self)

    def forward(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        b, t = tokens.shape[:2]
        x = tokens if self.read_in is None else self.hook_embed(self.read_in(tokens))  # (B, T, D)
        if self.pos_embed is not None:
            x = x + self.hook_pos_embed(self.pos_embed(layout.positions).unsqueeze(0).expand(b, t, -1))
        if self.drop is not None:
            x = self.drop(x)
        for block in self.blocks:
            x = block(x, layout)
        if self.ln_f is not None:
            x = self.ln_f(x)
        if type(self.config).readout == "y_slot":
            return -x[..., self.y_slot]
        out = self.read_out(self.hook_final(x))  # (B, T, n_outputs)
        return out.squeeze(-1) if out.shape[-1] == 1 else out
