"""Recurrent networks (Lipton et al. 2015's review): tanh RNN, LSTM and GRU from ``torch.nn``.

Read the interleaved token stream ``x_1, y_1, x_2, ...`` left to right (so they are causal by
construction): ``n_layer`` stacked recurrent layers of width ``n_embd`` between the shell's linear read-in
and its linear read-out at every token (no final norm). The config is :class:`iclab.models.configs.RNNConfig`.

Hooks (``B`` batch, ``T`` tokens, ``H = n_embd``)::

    hook_embed               (B, T, H)   read-in of the tokens
    blocks.{l}.hook_state    (B, T, H)   hidden state of layer l after each token
    hook_final               (B, T, H)   the last layer's states, before the read-out
"""

from __future__ import annotations

import torch
from torch import nn

from iclab.models.configs import RNN_CELLS, RNNConfig
from iclab.models.encoders import Layout
from iclab.models.hooks import HookPoint


class RecurrentLayer(nn.Module):
    """One ``torch.nn`` recurrent layer (``model.cell``) of width ``n_embd``; its states are the output."""

    def __init__(self, c: RNNConfig, width: int) -> None:
        super().__init__()
        self.rnn = getattr(nn, RNN_CELLS[c.cell])(width, width, batch_first=True)
        self.hook_state = HookPoint()

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        states, _ = self.rnn(x)  # (B, T, H)
        return self.hook_state(states)
