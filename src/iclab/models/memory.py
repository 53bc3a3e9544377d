"""Memory layers as test-time learners (linear attention / DeltaNet / Titans family).

Each layer keeps, per head, a matrix memory ``S`` (``Dk x Dv``) written once per token and read by the query: ``o_t =
S_t q_t``. The write rule is the "learning algorithm" of the layer. The write rules (``linear``, ``decay``, ``delta``,
``gated_delta``, ``momentum``, ``omega``) are one function each in :mod:`iclab.models.memory_rules`, the recurrent
definition beside the parallel and chunked forms.

``feature_map: poly2`` replaces queries and keys by degree-2 polynomial features
``phi(x) = [x, (x_i x_j / sqrt(2) for i <= j)]``, so ``phi(q) . phi(k) = q . k + (q . k)^2 / 2`` (the ``x_i^2``
terms take ``1 / sqrt(2)`` and the cross terms ``1``): a ``Dh + Dh (Dh + 1) / 2``-dimensional key space,
which is the memory's capacity (ATLAS's polynomial kernels).

With ``token_shift`` (the default) each token's key comes from the token before it, so on the interleaved stream the
y-token ``y_j`` writes the association ``x_j -> y_j`` that a later query ``x_i`` reads (the role short convolutions play
in DeltaNet). Equal computations (``form``): ``recurrent`` (a loop over tokens, the definition); ``parallel`` (the
whole sequence at once: a masked ``Q K^T`` product, with the delta rule's writes ``U`` from one triangular solve,
``(I + tril(diag(beta) K K^T, -1)) U = diag(beta) V``, weighted by the decay between tokens for the gated rule: the
linear, decay, delta and gated delta rules); ``chunk`` (the same within chunks of 32 writes, the memory carried from
chunk to chunk: the delta, gated delta, momentum and Omega rules). ``auto`` takes the chunked form where there is one.
Blocks: pre-LayerNorm memory sub-layer and GELU MLP, on the interleaved (causal) stream; the network
(:class:`MemoryNetwork`) adds the read-in, learned positions, final LayerNorm and read-out. The file reads top to
bottom: config (:class:`MemoryConfig`), blocks, network.

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
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from iclab.models.encoders import Layout
from iclab.models.family import MODELS, ModelConfig, heads_divide_width
from iclab.models.hooks import HookPoint
from iclab.models.memory_rules import (
    RULES,
    Gates,
    memory_parallel,
    memory_recurrent,
    poly2_features,
    recurrent,
)
from iclab.models.ngram_heads import with_ngram_layers
from iclab.models.parts import MLP, learned_positions, linear_read_out, position_embeddings, read_in
from iclab.schema import one_of, require, require_positive


@MODELS.register
@dataclass
class MemoryConfig(ModelConfig):
    """Matrix-memory layers as test-time learners (linear attention, DeltaNet, gated DeltaNet, Titans, ATLAS);
    the write rules are in :mod:`iclab.models.memory_rules`."""

    name: str = "memory"
    encoder: str = "interleaved"  # memory layers read the token stream in order
    n_layer: int = 2
    rule: str = "delta"  # the write rule: linear, decay, delta, gated_delta, momentum or omega
    # the same function, three computations: "recurrent" (token by token, the definition), "parallel" (the whole
    # sequence at once), "chunk" (parallel within chunks of tokens, recurrent across them); "auto": chunk where the
    # rule has a chunked form, else parallel, else recurrent
    form: Literal["auto", "chunk", "parallel", "recurrent"] = "auto"
    n_embd: int = 64
    n_head: int = 4
    decay: float = 0.95  # gamma of the "decay" rule
    window: int = 4  # tokens in the "omega" rule's sliding window
    feature_map: str = "identity"  # "identity" or "poly2": degree-2 polynomial features of q and k
    token_shift: bool = True  # keys from the previous token, so a y-token writes (key: its x, value: its y)
    n_positions: int | None = None  # learned position embeddings; null = fitted to the task

    quick: ClassVar[dict] = {"n_layer": 1, "n_embd": 32, "n_head": 2}

    def build(self, d_in: int, n_outputs: int = 1, vocab_size: int | None = None) -> MemoryNetwork:
        return MemoryNetwork(self, d_in, n_outputs, vocab_size)

    def validate(self, path: str = "model") -> None:
        from iclab.models.memory_rules import FEATURE_MAPS, RULES

        super().validate(path)
        require(self.rule in RULES, f"{path}.rule", one_of(RULES), self.rule)
        require(
            self.feature_map in FEATURE_MAPS,
            f"{path}.feature_map",
            f"must be one of {', '.join(FEATURE_MAPS)}",
            self.feature_map,
        )
        rule = RULES[self.rule]
        forms = ["auto", *(["chunk"] if rule.chunked else []), *(["parallel"] if rule.parallel else []), "recurrent"]
        require(self.form in forms, f"{path}.form", f"the {self.rule} rule has the forms {', '.join(forms)}", self.form)
        heads_divide_width(self, path)
        require_positive(self, path, "window")
        require(0 < self.decay <= 1, f"{path}.decay", "must be in (0, 1]", self.decay)

    def parameters_lower_bound(self) -> int:
        return self.n_layer * 12 * self.n_embd**2  # q, k, v, out; the MLP's two 4x matrices

    def activations_lower_bound(self) -> int:
        return self.n_layer * 12 * self.n_embd  # q, k, v, memory output, residuals, MLP hidden

    def label(self, tokens: bool = False) -> str:
        rule = self.rule if self.feature_map == "identity" else f"{self.rule}, {self.feature_map}"
        return f"Memory ({rule}) {self.n_layer}x{self.n_embd}"


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
        eta = torch.sigmoid(self.eta(x)).transpose(1, 2)  # momentum (the momentum rule)
        gates = Gates(beta, alpha, eta, self.c.decay, self.c.window)  # each rule reads the gates it has
        form = rule.form(self.c.form)
        if form == "recurrent":
            out = recurrent(rule.write, q, k, v, gates)
        else:
            out = (rule.chunked if form == "chunk" else rule.parallel)(q, k, v, gates)
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


class MemoryNetwork(nn.Module):
    """The network: read-in, learned positions, the memory blocks (with any n-gram layers), final LayerNorm,
    read-out."""

    def __init__(self, config: MemoryConfig, d_in: int, n_outputs: int = 1, vocab_size: int | None = None):
        super().__init__()
        self.config = config
        width = config.n_embd
        # modules are registered in forward order (hook names list in forward order; initial weights follow)
        self.read_in = read_in(d_in, width, vocab_size)
        self.hook_embed = HookPoint()
        self.pos_embed = learned_positions(config, width)
        self.hook_pos_embed = HookPoint()
        layers = [MemoryBlock(config, width) for _ in range(config.n_layer)]
        self.blocks = nn.ModuleList(with_ngram_layers(layers, config, width))
        self.ln_f = nn.LayerNorm(width)
        self.hook_final = HookPoint()
        self.read_out = nn.Linear(width, n_outputs)

    def forward(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.hook_embed(self.read_in(tokens))  # (B, T, D)
        x = x + self.hook_pos_embed(position_embeddings(self.pos_embed, layout.positions, x.shape[0]))
        for block in self.blocks:
            x = block(x, layout)
        return linear_read_out(self.read_out(self.hook_final(self.ln_f(x))))
