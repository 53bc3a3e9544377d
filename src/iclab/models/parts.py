"""Parts that every model family builds its network from, imported by name: the read-in, learned positions, the
feed-forward sub-layer and the linear read-out. Each family's file composes them in its own
network class, in the order its forward pass uses them (``transformer.py`` is the example to read first)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """``proj(GELU(fc(x)))``, GELU in its tanh approximation (GPT-2)."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, hidden)
        self.proj = nn.Linear(hidden, width)
        self.register_buffer("neuron_mask", None)  # (hidden,) when pruned (iclab.models.pruning)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.fc(x), approximate="tanh")
        if self.neuron_mask is not None:
            h = h * self.neuron_mask
        return self.proj(h)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the shared MLP kept it as nn.Sequential(Linear, GELU, Linear): "0." and "2."
        for old, new in (("0.", "fc."), ("2.", "proj.")):
            for name in ("weight", "bias"):
                if prefix + old + name in state_dict:
                    state_dict[prefix + new + name] = state_dict.pop(prefix + old + name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def read_in(d_in: int, width: int, vocab_size: int | None = None) -> nn.Module:
    """Tokens into the residual stream: an embedding table of token ids (a language model over ``vocab_size``
    symbols), else a linear map of the prompt encoder's ``d_in``-wide real-valued tokens."""
    return nn.Embedding(vocab_size, width) if vocab_size is not None else nn.Linear(d_in, width)


def learned_positions(config, width: int) -> nn.Embedding:
    """One learned embedding per position, ``config.n_positions`` of them (resolved from the task when null)."""
    if config.n_positions is None:
        raise ValueError(f"{type(config).__name__}.n_positions must be resolved before building the model")
    return nn.Embedding(config.n_positions, width)


def position_embeddings(pos_embed: nn.Embedding, positions: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B, T, D)``: the embeddings of ``positions (T,)``, broadcast over the batch."""
    return pos_embed(positions).unsqueeze(0).expand(batch, len(positions), -1)


def linear_read_out(out: torch.Tensor) -> torch.Tensor:
    """``(B, T, 1) -> (B, T)`` for one prediction per token; ``(B, T, C)`` logits stay as they are."""
    return out.squeeze(-1) if out.shape[-1] == 1 else out
