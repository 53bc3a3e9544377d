"""Linear self-attention (von Oswald et al. 2022, "Transformers learn in-context by gradient descent").

Tokens are the stacked encoder's ``e_j = (x_j, y_j, 0)`` and query tokens ``(x_i, 0, 1)``; the residual
stream is the tokens themselves (no read-in). Each layer adds, to every token,
``W_P sum_j (W_Q h)^T (W_K h_j) W_V h_j`` over the context tokens it may see (never a query token:
keys and values exclude the queries), divided by their number when ``normalize`` is on. No softmax.
The prediction is minus the y-slot of the query token (von Oswald et al.'s convention: the query's
y-slot starts at 0 and collects ``-y_hat``).

With ``W_Q = W_K = [[I, 0], [0, 0]]``, ``W_V`` reading the y-slot, ``W_P`` writing ``-eta`` times it back
and ``normalize``, one layer turns every context token's ``y_j`` into the residual ``y_j - w_1 . x_j`` and
the query's y-slot into ``-w_1 . x_q``, with ``w_1 = (eta / i) sum_j y_j x_j``: one step of gradient
descent from ``w = 0`` on the prefix's mean squared loss. ``K`` such layers are ``K`` steps, provided the
context tokens see the whole prefix (:func:`gd_construction`, :func:`prefix_predictions`).

Options: ``n_layer``, ``share_weights`` (one layer applied ``n_layer`` times), ``normalize``, ``layernorm``
(pre-LN on each sub-layer) and ``mlp`` (a GELU MLP sub-layer after each attention); the GD construction
uses none of the last two.

Hooks: ``blocks.{l}.hook_resid_pre`` (B, T, D), ``blocks.{l}.attn.hook_scores`` (B, T, T) (masked
``q . k``), ``blocks.{l}.hook_attn_out`` (B, T, D), with ``mlp``: ``blocks.{l}.hook_resid_mid`` and
``blocks.{l}.hook_mlp_out`` (B, T, D); ``blocks.{l}.hook_resid_post`` (B, T, D).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from iclab.models.encoders import Layout
from iclab.models.family import MODELS, ModelConfig
from iclab.models.hooks import HookPoint
from iclab.models.parts import MLP
from iclab.schema import require_positive


@MODELS.register
@dataclass
class LinearSelfAttentionConfig(ModelConfig):
    """Linear self-attention on stacked tokens (von Oswald et al. 2022): no read-in, no softmax, no final norm;
    the prediction is minus the query token's y-slot."""

    name: str = "linear_self_attention"
    encoder: str = "stacked"  # the only encoder it takes: one token per (x, y) pair
    n_layer: int = 1
    share_weights: bool = False  # one set of weights applied n_layer times (a recurrent GD-like iteration)
    normalize: bool = True  # divide each token's sum by the number of context tokens it sees
    layernorm: bool = False  # LayerNorm on each sub-layer's input (pre-LN); the GD construction has none
    mlp: bool = False  # a GELU MLP sub-layer (4x the token width) after each attention sub-layer
    init_std: float = 0.02

    encoders: ClassVar[tuple[str, ...]] = ("stacked",)
    read_in: ClassVar[bool] = False
    quick: ClassVar[dict] = {"init_std": 0.1}

    def build(self, d_in: int, n_outputs: int = 1, vocab_size: int | None = None) -> LinearSelfAttention:
        if n_outputs != 1 or vocab_size is not None:
            raise ValueError(f"{self.name} predicts one real value per position, in the tokens' y-slot")
        return LinearSelfAttention(self, d_in)

    def validate(self, path: str = "model") -> None:
        super().validate(path)
        require_positive(self, path, "init_std")

    def parameters_lower_bound(self) -> int:
        return (1 if self.share_weights else self.n_layer) * 4 * 3**2  # four matrices over tokens at least 3 wide

    def activations_lower_bound(self) -> int:
        return self.n_layer * 3 * 3  # scores, attention output and residual, at least 3 wide

    def label(self, tokens: bool = False) -> str:
        shared = " (shared)" if self.share_weights else ""
        return f"LSA {self.n_layer} layer{'s' if self.n_layer != 1 else ''}{shared}"


class LSALayer(nn.Module):
    def __init__(self, width: int, init_std: float) -> None:
        super().__init__()
        self.w_q = nn.Parameter(torch.randn(width, width) * init_std)
        self.w_k = nn.Parameter(torch.randn(width, width) * init_std)
        self.w_v = nn.Parameter(torch.randn(width, width) * init_std)
        self.w_p = nn.Parameter(torch.randn(width, width) * init_std)
        self.hook_scores = HookPoint()

    def forward(self, h: torch.Tensor, allowed: torch.Tensor, normalize: bool) -> torch.Tensor:
        q, k, v = h @ self.w_q.T, h @ self.w_k.T, h @ self.w_v.T  # (B, T, D)
        scores = self.hook_scores((q @ k.transpose(1, 2)) * allowed)  # (B, T, T), no softmax
        out = scores @ v
        if normalize:
            out = out / allowed.sum(-1, keepdim=True).clamp_min(1)
        return out @ self.w_p.T


class LSABlock(nn.Module):
    """``h + attn(ln1(h))`` with linear self-attention over the context tokens, then (with ``mlp``)
    ``+ mlp(ln2(h))``. With ``share_weights`` every block holds the same attention layer."""

    def __init__(self, c: LinearSelfAttentionConfig, width: int, attn: LSALayer | None = None) -> None:
        super().__init__()
        self.normalize = c.normalize
        self.hook_resid_pre = HookPoint()
        self.ln1 = nn.LayerNorm(width) if c.layernorm else nn.Identity()
        self.attn = attn or LSALayer(width, c.init_std)
        self.hook_attn_out = HookPoint()
        if c.mlp:
            self.hook_resid_mid = HookPoint()
            self.ln2 = nn.LayerNorm(width) if c.layernorm else nn.Identity()
            self.mlp = MLP(width, 4 * width)
            self.hook_mlp_out = HookPoint()
        else:
            self.mlp = None
        self.hook_resid_post = HookPoint()

    def forward(self, h: torch.Tensor, layout: Layout) -> torch.Tensor:
        n = (h.shape[1] + 1) // 2
        allowed = layout.attn_mask.clone()  # keys and values are context tokens only, never a query
        allowed[:, n - 1 :] = False
        h = self.hook_resid_pre(h)
        h = h + self.hook_attn_out(self.attn(self.ln1(h), allowed.to(h.dtype), self.normalize))
        if self.mlp is not None:
            h = self.hook_resid_mid(h)
            h = h + self.hook_mlp_out(self.mlp(self.ln2(h)))
        return self.hook_resid_post(h)


class LinearSelfAttention(nn.Module):
    """The network: the stacked tokens are the residual stream (no read-in, no positions), the blocks (one shared
    attention layer with ``share_weights``), and the prediction read as minus each query token's y-slot."""

    def __init__(self, config: LinearSelfAttentionConfig, d_in: int) -> None:
        super().__init__()
        self.config = config
        self.pos_embed = None
        shared = LSALayer(d_in, config.init_std) if config.share_weights else None
        self.blocks = nn.ModuleList([LSABlock(config, d_in, shared) for _ in range(config.n_layer)])
        self.y_slot = d_in - 2  # stacked tokens are (x, y, is_query)

    def forward(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = tokens
        for block in self.blocks:
            x = block(x, layout)
        return -x[..., self.y_slot]  # (B, T)


def prefix_predictions(model: LinearSelfAttention, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` predictions, prefix ``i`` run as its own sequence whose context tokens all see each
    other (von Oswald et al.'s setting: one query after a full context). In the model's usual causal
    stream a context token sees only the tokens before it, which is the same thing for one layer but not
    for several: the construction's K layers are K GD steps only with full-context tokens."""
    from iclab.models.encoders import Stacked

    out = []
    for i in range(xs.shape[1]):
        tokens, layout = Stacked.encode(xs[:, : i + 1], ys[:, : i + 1])
        mask = layout.attn_mask.clone()
        mask[:i, :i] = True  # context tokens see the whole prefix
        pred = model(tokens, Layout(positions=layout.positions, readout=layout.readout, attn_mask=mask))
        out.append(pred[:, -1])
    return torch.stack(out, dim=1)


def gd_construction(n_dims: int, eta: float | list[float], n_layer: int = 1) -> LinearSelfAttention:
    """The LSA weights that make each layer one gradient-descent step (von Oswald et al. 2022,
    Proposition 1), for the stacked encoder's tokens (x, y, is_query): ``K`` layers, ``K`` steps. ``eta``
    is one step size for every layer or a list of ``n_layer`` of them."""
    etas = list(eta) if isinstance(eta, (list, tuple)) else [eta] * n_layer
    if len(etas) != n_layer:
        raise ValueError(f"gd_construction: {len(etas)} step sizes for {n_layer} layers")
    width = n_dims + 2
    model = LinearSelfAttentionConfig(n_layer=n_layer).build(width)
    with torch.no_grad():
        for block, step in zip(model.blocks, etas):
            layer = block.attn
            for p in (layer.w_q, layer.w_k, layer.w_v, layer.w_p):
                p.zero_()
            layer.w_q[:n_dims, :n_dims] = torch.eye(n_dims)
            layer.w_k[:n_dims, :n_dims] = torch.eye(n_dims)
            layer.w_v[n_dims, n_dims] = 1.0  # value: the y-slot
            layer.w_p[n_dims, n_dims] = -step  # y_j <- y_j - eta * (prediction of the current w)
    return model
