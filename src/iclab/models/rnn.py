"""Recurrent networks (Lipton et al. 2015's review): tanh RNN, LSTM and GRU from ``torch.nn``.

Read the interleaved token stream ``x_1, y_1, x_2, ...`` left to right (so they are causal by
construction), a linear read-in, ``n_layer`` stacked recurrent layers of width ``n_embd``, a linear read-out
at every token.

Hooks (``B`` batch, ``T`` tokens, ``H = n_embd``)::

    hook_embed               (B, T, H)   read-in of the tokens
    blocks.{l}.hook_state    (B, T, H)   hidden state of layer l after each token
    hook_final               (B, T, H)   the last layer's states, before the read-out
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from iclab.models.encoders import Layout
from iclab.models.hooks import HookPoint
from iclab.schema import require, require_positive

CELLS = {"tanh": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELL_NAMES = {"tanh": "tanh RNN", "lstm": "LSTM", "gru": "GRU"}


@dataclass
class RNNConfig:
    name: str = "rnn"
    encoder: str = "interleaved"  # recurrent models read the interleaved stream in order
    cell: str = "lstm"  # "tanh", "lstm" or "gru"
    n_layer: int = 1
    n_embd: int = 64  # hidden state width

    def label(self) -> str:
        """The network's name in tables and plots: ``LSTM 2x64``."""
        return f"{CELL_NAMES[self.cell]} {self.n_layer}x{self.n_embd}"

    def validate(self, path: str = "model") -> None:
        require(self.encoder == "interleaved", f"{path}.encoder", "rnn takes the interleaved encoder", self.encoder)
        require(self.cell in CELLS, f"{path}.cell", f"must be one of {', '.join(CELLS)}", self.cell)
        require_positive(self, path, "n_layer", "n_embd")


class RecurrentLayer(nn.Module):
    def __init__(self, cell: str, width: int) -> None:
        super().__init__()
        self.rnn = CELLS[cell](width, width, batch_first=True)
        self.hook_state = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(x)  # (B, T, H)
        return self.hook_state(states)


class RNN(nn.Module):
    """A stack of recurrent layers; maps tokens ``(B, T, d_in)`` to ``(B, T)`` (or ``(B, T, C)`` logits)."""

    Config = RNNConfig
    encoders = ("interleaved",)

    def __init__(self, config: RNNConfig, d_in: int, n_outputs: int = 1) -> None:
        super().__init__()
        self.config = config
        self.read_in = nn.Linear(d_in, config.n_embd)
        self.hook_embed = HookPoint()
        self.blocks = nn.ModuleList(RecurrentLayer(config.cell, config.n_embd) for _ in range(config.n_layer))
        self.hook_final = HookPoint()
        self.read_out = nn.Linear(config.n_embd, n_outputs)

    def forward(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        if layout.attn_mask is not None:
            raise ValueError("rnn reads a causal token stream; use the interleaved encoder")
        h = self.hook_embed(self.read_in(tokens))
        for block in self.blocks:
            h = block(h)
        out = self.read_out(self.hook_final(h))
        return out.squeeze(-1) if out.shape[-1] == 1 else out
