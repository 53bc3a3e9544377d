"""Parts that every model family builds its network from, imported by name: the read-in, learned positions, the
feed-forward sub-layer and the n-gram layers a config can insert. Each family's file composes them in its own
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))

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


def with_ngram_layers(layers: list[nn.Module], config, width: int) -> list[nn.Module]:
    """``layers`` with one n-gram layer per order in ``config.ngram_heads`` inserted after layer
    ``config.ngram_after`` (Akyürek et al. 2024's hybrids; :mod:`iclab.models.ngram_heads`)."""
    if not config.ngram_heads:
        return layers
    from iclab.models.ngram_heads import NgramBlock

    at = config.ngram_after
    return [*layers[:at], *(NgramBlock(width, n) for n in config.ngram_heads), *layers[at:]]


def linear_read_out(out: torch.Tensor) -> torch.Tensor:
    """``(B, T, 1) -> (B, T)`` for one prediction per token; ``(B, T, C)`` logits stay as they are."""
    return out.squeeze(-1) if out.shape[-1] == 1 else out


class BlockStack(nn.Module):
    """The default network of a family that only writes a block (:meth:`ModelConfig.build`): read-in, the blocks
    (and any n-gram layers), LayerNorm, linear read-out. Hooks: ``hook_embed``, the blocks' own, ``hook_final``."""

    def __init__(self, config, d_in: int, n_outputs: int = 1, vocab_size: int | None = None) -> None:
        super().__init__()
        from iclab.models.hooks import HookPoint

        self.config = config
        width = config.n_embd
        self.read_in = read_in(d_in, width, vocab_size)
        self.hook_embed = HookPoint()
        self.pos_embed = None
        layers = [config.block(config, width) for _ in range(config.n_layer)]
        self.blocks = nn.ModuleList(with_ngram_layers(layers, config, width))
        self.ln_f = nn.LayerNorm(width)
        self.hook_final = HookPoint()
        self.read_out = nn.Linear(width, n_outputs)

    def forward(self, tokens: torch.Tensor, layout) -> torch.Tensor:
        x = self.hook_embed(self.read_in(tokens))  # (B, T, D)
        for block in self.blocks:
            x = block(x, layout)
        return linear_read_out(self.read_out(self.hook_final(self.ln_f(x))))
