"""n-gram layers (Akyürek et al. 2024, "In-Context Language Learning: Architectures and Algorithms"; seq_icl's
``src/models/sequence/rnn/ngram.py``): a fixed, parameter-free attention pattern that copies what followed
earlier occurrences of the current n-gram, the mechanism the paper finds in trained transformers' heads.

Position ``i`` attends uniformly to every ``j < i`` whose preceding ``n`` tokens equal the ``n`` tokens ending at
``i`` (``tokens[j-n .. j-1] == tokens[i-n+1 .. i]``): the positions that followed an earlier copy of the current
n-gram. Positions with no earlier copy attend nowhere (their head output is zero). The layer's output is
``Linear(mean of the attended states) + Linear(state)``; :class:`NgramBlock` wraps it in a pre-LN residual
block with an MLP of the stream's width, as the paper's hybrids do. The model config's ``ngram_heads`` (orders,
e.g. ``[1, 2, 4]``) inserts one block per order after block ``ngram_after`` of any family.

Hooks: ``hook_resid_pre``, ``attn.hook_pattern`` (B, T, T), ``hook_attn_out``, ``hook_mlp_out``,
``hook_resid_post``.
"""

from __future__ import annotations

import torch
from torch import nn

from iclab.models.encoders import Layout
from iclab.models.hooks import HookPoint
from iclab.models.parts import MLP


def ngram_matches(ids: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, T, T)`` bool: ``[b, i, j]`` when ``j < i`` and the ``n`` tokens before ``j`` equal the ``n`` tokens ending
    at ``i`` (all indices in range)."""
    b, t = ids.shape
    eq = ids.unsqueeze(2) == ids.unsqueeze(1)  # [i, j']: token i equals token j'
    same = eq.clone()
    for k in range(1, n):  # and the k-th tokens back from both
        shifted = torch.zeros_like(eq)
        shifted[:, k:, k:] = eq[:, :-k, :-k]
        same &= shifted
    out = torch.zeros_like(same)
    out[:, :, 1:] = same[:, :, :-1]  # attend to the token after the earlier copy: j = j' + 1
    return out & torch.ones(t, t, dtype=torch.bool, device=ids.device).tril(-1)


class NgramAttention(nn.Module):
    def __init__(self, width: int, n: int) -> None:
        super().__init__()
        self.n = n
        self.hook_pattern = HookPoint()
        self.t0 = nn.Linear(width, width)  # the mean of the attended states
        self.t1 = nn.Linear(width, width)  # the state itself

    def forward(self, h: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        match = ngram_matches(ids, self.n).to(h.dtype)
        pattern = self.hook_pattern(match / match.sum(-1, keepdim=True).clamp_min(1))
        return self.t0(pattern @ h) + self.t1(h)


class NgramBlock(nn.Module):
    """Pre-LN: ``x + ngram(ln1(x))``, then ``x + mlp(ln2(x))`` (hidden width = stream width)."""

    def __init__(self, width: int, n: int) -> None:
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.ln1 = nn.LayerNorm(width)
        self.attn = NgramAttention(width, n)
        self.hook_attn_out = HookPoint()
        self.ln2 = nn.LayerNorm(width)
        self.mlp = MLP(width, width)
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        if layout.token_ids is None:
            raise ValueError("an n-gram layer reads token ids; real-valued prompts have none")
        x = self.hook_resid_pre(x)
        x = x + self.hook_attn_out(self.attn(self.ln1(x), layout.token_ids))
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.ln2(x))))


def with_ngram_layers(layers: list[nn.Module], config, width: int) -> list[nn.Module]:
    """``layers`` with one n-gram layer per order in ``config.ngram_heads`` inserted after layer
    ``config.ngram_after`` (Akyürek et al. 2024's hybrids)."""
    if not config.ngram_heads:
        return layers
    at = config.ngram_after
    return [*layers[:at], *(NgramBlock(width, n) for n in config.ngram_heads), *layers[at:]]
