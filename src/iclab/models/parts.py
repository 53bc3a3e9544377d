"""Parts that every model family builds its network from, imported by name: the read-in, learned positions, the
feed-forward sub-layers (GELU or SwiGLU), the normalisation (LayerNorm or RMSNorm) and the linear read-out. Each
family's file composes them in its own network class, in the order its forward pass uses them (``transformer.py``
is the example to read first)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """``proj(GELU(fc(x)))``, GELU in its tanh approximation (GPT-2)."""

    def __init__(self, width: int, hidden: int, bias: bool = True, linear=None) -> None:
        super().__init__()
        linear = linear or (lambda d_in, d_out: nn.Linear(d_in, d_out, bias=bias))  # (a family may map otherwise)
        self.fc = linear(width, hidden)
        self.proj = linear(hidden, width)
        self.register_buffer("neuron_mask", None)  # (hidden,) when pruned (iclab.models.pruning)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden activations, ``(..., hidden)``, before any neuron mask."""
        return F.gelu(self.fc(x), approximate="tanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(x)
        if self.neuron_mask is not None:
            h = h * self.neuron_mask
        return self.proj(h)

    @property
    def matrices(self) -> int:
        """Weight vectors per hidden neuron (what pruning one saves, times the width)."""
        return 2

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the shared MLP kept it as nn.Sequential(Linear, GELU, Linear): "0." and "2."
        for old, new in (("0.", "fc."), ("2.", "proj.")):
            for name in ("weight", "bias"):
                if prefix + old + name in state_dict:
                    state_dict[prefix + new + name] = state_dict.pop(prefix + old + name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class SwiGLU(MLP):
    """``proj(SiLU(gate(x)) * fc(x))``: the gated feed-forward of Shazeer 2020 ("GLU Variants Improve
    Transformer") that Llama uses (its ``w1`` is ``gate``, ``w3`` is ``fc``, ``w2`` is ``proj``). A hidden neuron is
    one row of ``gate`` and of ``fc`` and one column of ``proj``, so neuron masks, adapters and LoRA on ``mlp.fc``
    apply as they do to :class:`MLP`."""

    def __init__(self, width: int, hidden: int, bias: bool = True, linear=None) -> None:
        super().__init__(width, hidden, bias, linear)
        self.gate = (linear or (lambda d_in, d_out: nn.Linear(d_in, d_out, bias=bias)))(width, hidden)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.gate(x)) * self.fc(x)

    @property
    def matrices(self) -> int:
        return 3


def feed_forward(kind: str, width: int, hidden: int, bias: bool = True, linear=None) -> MLP:
    """The feed-forward sub-layer ``kind``: ``"gelu"`` (:class:`MLP`) or ``"swiglu"`` (:class:`SwiGLU`); its maps are
    ``nn.Linear`` unless ``linear(d_in, d_out)`` makes them (MemoryFormer's hashed layers)."""
    return (SwiGLU if kind == "swiglu" else MLP)(width, hidden, bias, linear)


def norm(kind: str, width: int, bias: bool = True) -> nn.Module:
    """``"layernorm"`` (``nn.LayerNorm``, with a bias unless ``bias`` is false) or ``"rmsnorm"`` (``nn.RMSNorm``,
    Zhang & Sennrich 2019: ``x / sqrt(mean(x^2) + eps) * weight``, no centring and no bias), eps 1e-5 both."""
    if kind == "rmsnorm":
        return nn.RMSNorm(width, eps=1e-5)
    return nn.LayerNorm(width, bias=bias)


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
