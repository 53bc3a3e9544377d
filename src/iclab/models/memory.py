"""Memory layers as test-time learners (linear attention / DeltaNet / Titans family).

Each layer keeps, per head, a matrix memory ``S`` (``Dk x Dv``) written once per token and read by the query: ``o_t =
S_t q_t``. The write rule is the "learning algorithm" of the layer. The write rules (``linear``, ``decay``, ``delta``,
``gated_delta``, ``momentum``, ``omega``) are one function each in :mod:`iclab.models.memory_rules`, the recurrent
definition beside the parallel form.

``feature_map: poly2`` replaces queries and keys by degree-2 polynomial features
``phi(x) = [x, (x_i x_j / sqrt(2) for i <= j)]``, so ``phi(q) . phi(k) = q . k + (q . k)^2 / 2`` (the ``x_i^2``
terms take ``1 / sqrt(2)`` and the cross terms ``1``): a ``Dh + Dh (Dh + 1) / 2``-dimensional key space,
which is the memory's capacity (ATLAS's polynomial kernels).

With ``token_shift`` (the default) each token's key comes from the token before it, so on the interleaved stream the
y-token ``y_j`` writes the association ``x_j -> y_j`` that a later query ``x_i`` reads (the role short convolutions play
in DeltaNet). Two equal computations (``form``): ``recurrent`` (a loop over tokens, the definition) and ``parallel``
(the whole sequence at once: a masked ``Q K^T`` product, with the delta rule's writes ``U`` from one triangular solve,
``(I + tril(diag(beta) K K^T, -1)) U = diag(beta) V``, weighted by the decay between tokens for the gated rule); the
momentum and Omega rules have the recurrent form only. Blocks: pre-LayerNorm memory sub-layer and GELU MLP, on the
interleaved (causal) stream; the shell (:mod:`iclab.models.shell`) adds the read-in, learned positions, final LayerNorm
and read-out. The config is :class:`iclab.models.configs.MemoryConfig`.

Hooks (``H`` heads)::

    hook_embed, hook_pos_embed                (B, T, D)
    blocks.{l}.hook_resid_pre                 (B, T, D)
    blocks.{l}.mem.hook_q / hook_k / hook_v   (B, H, T, Dh)
    blocks.{l}.hook_mem_out                   (B, T, D)
    blocks.{l}.hook_resid_mid                 (B, T, D)
    blocks.{l}.hook_mlp_out                   (B, T, D)
    blocks.{l}.hook_resid_post                (B, T, D)
    hook_final                                (B, T, D)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from iclab.models.configs import MemoryConfig
from iclab.models.encoders import Layout
from iclab.models.hooks import HookPoint
from iclab.models.memory_rules import (
    RULES,
    Gates,
    memory_parallel,
    memory_recurrent,
    poly2_features,
    recurrent,
)
from iclab.models.shell import MLP

__all__ = ["MemoryBlock", "MemorySublayer", "memory_parallel", "memory_recurrent", "poly2_features"]


class MemorySublayer(nn.Module):
    def __init__(self, c: MemoryConfig) -> None:
        super().__init__()
        self.c = c
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd)
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.beta = nn.Linear(c.n_embd, c.n_head)  # per-head write strength (delta rules)
        self.alpha = nn.Linear(c.n_embd, c.n_head)  # per-head forgetting gate (gated_delta, momentum, omega)
        self.eta = nn.Linear(c.n_embd, c.n_head)  # per-head momentum (momentum)
        self.proj = nn.Linear(c.n_embd, c.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, dm = x.shape
        h = self.c.n_head
        q, k, v = self.qkv(x).view(b, t, 3, h, dm // h).permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)
        if self.c.token_shift:  # causal: token t's key is made from token t - 1
            k = F.pad(k, (0, 0, 1, 0))[:, :, :-1]
        rule = RULES[self.c.rule]
        if self.c.feature_map == "poly2":
            q, k = poly2_features(q), poly2_features(k)
        if rule.keys is not None:
            k = rule.keys(k, self.c.window)
        q = q / math.sqrt(q.shape[-1])
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        beta = torch.sigmoid(self.beta(x)).transpose(1, 2)  # (B, H, T)
        alpha = torch.sigmoid(self.alpha(x) + 3.0).transpose(1, 2)  # starts near 1: little forgetting
        if self.c.form == "recurrent":
            eta = torch.sigmoid(self.eta(x)).transpose(1, 2)
            out = recurrent(rule.write, q, k, v, Gates(beta, alpha, eta, self.c.decay, self.c.window))
        else:
            out = rule.parallel(q, k, v, Gates(beta, alpha, None, self.c.decay))
        return self.proj(out.transpose(1, 2).reshape(b, t, dm))


class MemoryBlock(nn.Module):
    """Pre-LN: ``x + mem(ln1(x))``, then ``+ mlp(ln2(x))``."""

    def __init__(self, c: MemoryConfig, width: int) -> None:
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.ln1 = nn.LayerNorm(c.n_embd)
        self.mem = MemorySublayer(c)
        self.hook_mem_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.ln2 = nn.LayerNorm(c.n_embd)
        self.mlp = MLP(c.n_embd, 4 * c.n_embd)
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.hook_mem_out(self.mem(self.ln1(x))))
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.ln2(x))))
