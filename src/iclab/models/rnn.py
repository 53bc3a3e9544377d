"""Recurrent networks (Lipton et al. 2015's review): tanh RNN, LSTM and GRU from ``torch.nn``.

Read the interleaved token stream ``x_1, y_1, x_2, ...`` left to right (so they are causal by
construction): ``n_layer`` stacked recurrent layers of width ``n_embd`` between a linear read-in
and its linear read-out at every token (no final norm). The file reads top to bottom: config (:class:`RNNConfig`),
layer, network (:class:`RNN`).

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
from iclab.models.family import MODELS, ModelConfig
from iclab.models.hooks import HookPoint
from iclab.models.ngram_heads import with_ngram_layers
from iclab.models.parts import linear_read_out, read_in
from iclab.schema import one_of, require, require_positive

RNN_CELLS = {"tanh": "RNN", "lstm": "LSTM", "gru": "GRU"}  # cell -> its torch.nn class


@MODELS.register
@dataclass
class RNNConfig(ModelConfig):
    """Recurrent networks (Lipton et al. 2015's review): tanh RNN, LSTM, GRU from ``torch.nn``."""

    name: str = "rnn"
    encoder: str = "interleaved"  # recurrent models read the interleaved stream in order
    n_layer: int = 1
    cell: str = "lstm"  # "tanh", "lstm" or "gru"
    n_embd: int = 64  # hidden state width

    def build(self, d_in: int, n_outputs: int = 1, vocab_size: int | None = None) -> RNN:
        return RNN(self, d_in, n_outputs, vocab_size)

    def validate(self, path: str = "model") -> None:
        super().validate(path)
        require(self.cell in RNN_CELLS, f"{path}.cell", one_of(RNN_CELLS), self.cell)
        require_positive(self, path, "n_embd")

    def parameters_lower_bound(self) -> int:
        gates = {"tanh": 1, "lstm": 4, "gru": 3}.get(self.cell, 1)
        return self.n_layer * gates * 2 * self.n_embd**2

    def label(self, tokens: bool = False) -> str:
        name = "tanh RNN" if self.cell == "tanh" else RNN_CELLS.get(self.cell, self.cell)
        return f"{name} {self.n_layer}x{self.n_embd}"


class RecurrentLayer(nn.Module):
    """One ``torch.nn`` recurrent layer (``model.cell``) of width ``n_embd``; its states are the output."""

    def __init__(self, c: RNNConfig, width: int) -> None:
        super().__init__()
        self.rnn = getattr(nn, RNN_CELLS[c.cell])(width, width, batch_first=True)
        self.hook_state = HookPoint()

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        states, _ = self.rnn(x)  # (B, T, H)
        return self.hook_state(states)


class RNN(nn.Module):
    """The network: read-in, the recurrent layers (with any n-gram layers), read-out (no final norm)."""

    def __init__(self, config: RNNConfig, d_in: int, n_outputs: int = 1, vocab_size: int | None = None):
        super().__init__()
        self.config = config
        width = config.n_embd
        # modules are registered in forward order (hook names list in forward order; initial weights follow)
        self.read_in = read_in(d_in, width, vocab_size)
        self.hook_embed = HookPoint()
        self.pos_embed = None  # no position embeddings: order comes from the recurrence
        layers = [RecurrentLayer(config, width) for _ in range(config.n_layer)]
        self.blocks = nn.ModuleList(with_ngram_layers(layers, config, width))
        self.hook_final = HookPoint()
        self.read_out = nn.Linear(width, n_outputs)

    def forward(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.hook_embed(self.read_in(tokens))  # (B, T, H)
        for block in self.blocks:
            x = block(x, layout)
        return linear_read_out(self.read_out(self.hook_final(x)))
