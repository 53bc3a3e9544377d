"""Memory layers as test-time learners (linear attention / DeltaNet / Titans family).

Each layer keeps, per head, a matrix memory ``S`` (``Dk x Dv``) written once per token and read by the
query: ``o_t = S_t q_t``. The write rule is the "learning algorithm" of the layer:

- ``linear``: Hebbian, ``S_t = S_{t-1} + v_t k_t^T`` (linear attention);
- ``decay``: ``S_t = gamma S_{t-1} + v_t k_t^T`` (a forgetting, RetNet-like memory);
- ``delta``: ``S_t = S_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T`` (one online regression step: DeltaNet),
  with a learned per-token step ``beta_t = sigmoid(w_beta . x_t)`` and L2-normalised keys;
- ``gated_delta``: ``S_t = alpha_t S_{t-1} + beta_t (v_t - alpha_t S_{t-1} k_t) k_t^T`` with a learned
  gate ``alpha_t`` (gated DeltaNet);
- ``momentum``: the delta rule's gradient step with momentum and forgetting (Titans):
  ``M_t = eta_t M_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T``, ``S_t = alpha_t S_{t-1} + M_t``, learned
  per-token ``eta_t``, ``beta_t``, ``alpha_t`` (recurrent form only);
- ``omega``: the sliding-window ("Omega") rule of ATLAS: forget, then one gradient step on the regression
  loss of the last ``window`` tokens, ``S' = alpha_t S_{t-1}``, ``S_t = S' + sum_{i = t - window + 1}^{t}
  beta_i (v_i - S' k_i) k_i^T`` (``window = 1`` is the gated delta rule; recurrent form only).

``feature_map: poly2`` replaces queries and keys by degree-2 polynomial features
``phi(x) = [x, (x_i x_j / sqrt(2) for i <= j)]``, so ``phi(q) . phi(k) = q . k + (q . k)^2 / 2`` (the ``x_i^2``
terms take ``1 / sqrt(2)`` and the cross terms ``1``): a ``Dh + Dh (Dh + 1) / 2``-dimensional key space,
which is the memory's capacity (ATLAS's polynomial kernels).

With ``token_shift`` (the default) each token's key comes from the token before it, so on the
interleaved stream the y-token ``y_j`` writes the association ``x_j -> y_j`` that a later query ``x_i``
reads (the role short convolutions play in DeltaNet). Two equal computations (``form``): ``recurrent`` (a loop over tokens, the definition) and ``parallel``
(the whole sequence at once: a masked ``Q K^T`` product, with the delta rule's writes ``U`` from one
triangular solve, ``(I + tril(diag(beta) K K^T, -1)) U = diag(beta) V``, weighted by the decay between
tokens for the gated rule); the momentum and Omega rules have the recurrent form only. Blocks: pre-LayerNorm memory
sub-layer and GELU MLP, on the interleaved (causal) stream.

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

import torch
import torch.nn.functional as F
from torch import nn

from iclab.models.encoders import Layout
from iclab.models.hooks import HookPoint
from iclab.schema import require, require_positive

RULES = ("linear", "decay", "delta", "gated_delta", "momentum", "omega")
RECURRENT_ONLY = ("momentum", "omega")
FEATURE_MAPS = ("identity", "poly2")


@dataclass
class MemoryConfig:
    name: str = "memory"
    encoder: str = "interleaved"  # memory layers read the token stream in order
    rule: str = "delta"  # "linear", "decay", "delta" or "gated_delta"
    form: str = "parallel"  # "parallel" or "recurrent": the same function, two computations
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    decay: float = 0.95  # gamma of the "decay" rule
    window: int = 4  # tokens in the "omega" rule's sliding window
    feature_map: str = "identity"  # "identity" or "poly2": degree-2 polynomial features of queries and keys
    token_shift: bool = True  # keys from the previous token, so a y-token writes (key: its x, value: its y)
    n_positions: int | None = None  # learned position embeddings; null = fitted to the task

    def label(self) -> str:
        """The network's name in tables and plots: ``Memory (delta) 2x64``, ``Memory (delta, poly2) 2x64``."""
        rule = self.rule if self.feature_map == "identity" else f"{self.rule}, {self.feature_map}"
        return f"Memory ({rule}) {self.n_layer}x{self.n_embd}"

    def validate(self, path: str = "model") -> None:
        require(self.encoder == "interleaved", f"{path}.encoder", "memory takes the interleaved encoder", self.encoder)
        require(self.rule in RULES, f"{path}.rule", f"must be one of {', '.join(RULES)}", self.rule)
        require(self.form in ("parallel", "recurrent"), f"{path}.form", "must be 'parallel' or 'recurrent'", self.form)
        require(not (self.rule in RECURRENT_ONLY and self.form == "parallel"), f"{path}.form",
                f"{self.rule} has only the recurrent form here", self.form)
        require(self.feature_map in FEATURE_MAPS, f"{path}.feature_map", f"must be one of {', '.join(FEATURE_MAPS)}",
                self.feature_map)
        require_positive(self, path, "n_layer", "n_embd", "n_head", "window")
        require(self.n_embd % self.n_head == 0, f"{path}.n_embd", f"must be divisible by model.n_head ({self.n_head})",
                self.n_embd)
        require(0 < self.decay <= 1, f"{path}.decay", "must be in (0, 1]", self.decay)


def poly2_features(x: torch.Tensor) -> torch.Tensor:
    """``[x, x_i x_j c_ij (i <= j)]`` with ``c_ii = 1 / sqrt(2)``, ``c_ij = 1``, so that
    ``phi(a) . phi(b) = a . b + (a . b)^2 / 2``. ``(..., D) -> (..., D + D (D + 1) / 2)``."""
    d = x.shape[-1]
    i, j = torch.triu_indices(d, d, device=x.device)
    scale = torch.full(i.shape, 2**-0.5, dtype=x.dtype, device=x.device).where(i == j, 1.0)
    return torch.cat([x, x[..., i] * x[..., j] * scale], dim=-1)


def memory_recurrent(q, k, v, rule: str, beta=None, alpha=None, decay: float = 1.0, eta=None,
                     window: int = 1) -> torch.Tensor:
    """The definition: a loop over tokens. ``q, k``: (B, H, T, Dk); ``v``: (B, H, T, Dv); ``beta``,
    ``alpha``, ``eta``: (B, H, T)."""
    b, h, t, dk = k.shape
    s = q.new_zeros(b, h, v.shape[-1], dk)  # memory S: (B, H, Dv, Dk)
    m = torch.zeros_like(s)  # momentum of the "momentum" rule
    outs = []
    for i in range(t):
        ki, vi = k[:, :, i], v[:, :, i]  # (B, H, Dk), (B, H, Dv)
        if rule == "momentum":
            pred = (s @ ki.unsqueeze(-1)).squeeze(-1)
            m = eta[:, :, i, None, None] * m + beta[:, :, i, None, None] * (vi - pred).unsqueeze(-1) * ki.unsqueeze(-2)
            s = alpha[:, :, i, None, None] * s + m
        elif rule == "omega":
            lo = max(0, i - window + 1)
            kw, vw, bw = k[:, :, lo : i + 1], v[:, :, lo : i + 1], beta[:, :, lo : i + 1]  # the window
            s = alpha[:, :, i, None, None] * s  # forget first, as the gated delta rule does
            resid = bw.unsqueeze(-1) * (vw - kw @ s.transpose(-1, -2))  # (B, H, W, Dv)
            s = s + resid.transpose(-1, -2) @ kw
        elif rule == "linear":
            s = s + vi.unsqueeze(-1) * ki.unsqueeze(-2)
        elif rule == "decay":
            s = decay * s + vi.unsqueeze(-1) * ki.unsqueeze(-2)
        else:
            if rule == "gated_delta":
                s = alpha[:, :, i, None, None] * s
            pred = (s @ ki.unsqueeze(-1)).squeeze(-1)  # what the memory recalls for k_i
            s = s + beta[:, :, i, None, None] * (vi - pred).unsqueeze(-1) * ki.unsqueeze(-2)
        outs.append((s @ q[:, :, i].unsqueeze(-1)).squeeze(-1))
    return torch.stack(outs, dim=2)  # (B, H, T, Dv)


def memory_parallel(q, k, v, rule: str, beta=None, decay: float = 1.0, alpha=None) -> torch.Tensor:
    """The same outputs for the whole sequence at once (linear, decay, delta and gated delta rules).

    Gated delta: with ``g_i = prod_{r <= i} alpha_r``, ``S_t = sum_{j <= t} (g_t / g_j) u_j k_j^T`` where the
    writes solve ``u_j = beta_j (v_j - sum_{i < j} (g_j / g_i) (k_i . k_j) u_i)``: the delta rule's triangular
    system with every product weighted by the decay between the two tokens."""
    t = k.shape[2]
    idx = torch.arange(t, device=k.device)
    causal = (idx.unsqueeze(1) >= idx.unsqueeze(0)).to(q.dtype)  # j <= i
    scores = q @ k.transpose(-1, -2)  # (B, H, T, T)
    if rule == "gated_delta":
        logs = torch.cumsum(torch.log(alpha), dim=-1)  # log g_i, (B, H, T)
        gap = logs.unsqueeze(-1) - logs.unsqueeze(-2)  # log (g_i / g_j), <= 0 below the diagonal
        ratio = torch.exp(gap.masked_fill(causal == 0, float("-inf")))  # 0 above the diagonal
        strict = ratio * (idx.unsqueeze(1) > idx.unsqueeze(0)).to(q.dtype)
        system = torch.eye(t, dtype=q.dtype, device=q.device) + beta.unsqueeze(-1) * (k @ k.transpose(-1, -2)) * strict
        writes = torch.linalg.solve_triangular(system, beta.unsqueeze(-1) * v, upper=False, unitriangular=True)
        return (scores * ratio) @ writes
    if rule == "linear":
        return (scores * causal) @ v
    if rule == "decay":
        powers = (idx.unsqueeze(1) - idx.unsqueeze(0)).clamp_min(0).to(q.dtype)
        return (scores * causal * decay**powers) @ v
    if rule == "delta":
        # u_i = beta_i (v_i - sum_{j<i} u_j (k_j . k_i)): a unit lower-triangular system for all writes U
        strict = (idx.unsqueeze(1) > idx.unsqueeze(0)).to(q.dtype)
        system = torch.eye(t, dtype=q.dtype, device=q.device) + beta.unsqueeze(-1) * (k @ k.transpose(-1, -2)) * strict
        writes = torch.linalg.solve_triangular(system, beta.unsqueeze(-1) * v, upper=False, unitriangular=True)
        return (scores * causal) @ writes
    raise ValueError(f"no parallel form for rule {rule!r}")


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
        rule = self.c.rule
        if self.c.feature_map == "poly2":
            q, k = poly2_features(q), poly2_features(k)
        if rule in ("delta", "gated_delta", "momentum", "omega"):
            k = F.normalize(k, dim=-1)  # unit keys keep the delta rule's step stable
            if rule == "omega":
                k = k / math.sqrt(self.c.window)  # a window of unit keys: keep the summed step stable
        q = q / math.sqrt(q.shape[-1])
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        beta = torch.sigmoid(self.beta(x)).transpose(1, 2)  # (B, H, T)
        alpha = torch.sigmoid(self.alpha(x) + 3.0).transpose(1, 2)  # starts near 1: little forgetting
        if self.c.form == "recurrent":
            eta = torch.sigmoid(self.eta(x)).transpose(1, 2)
            out = memory_recurrent(q, k, v, rule, beta, alpha, self.c.decay, eta, self.c.window)
        else:
            out = memory_parallel(q, k, v, rule, beta, self.c.decay, alpha)
        return self.proj(out.transpose(1, 2).reshape(b, t, dm))


class MemoryBlock(nn.Module):
    def __init__(self, c: MemoryConfig) -> None:
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.ln1 = nn.LayerNorm(c.n_embd)
        self.mem = MemorySublayer(c)
        self.hook_mem_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.ln2 = nn.LayerNorm(c.n_embd)
        self.mlp = nn.Sequential(nn.Linear(c.n_embd, 4 * c.n_embd), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * c.n_embd, c.n_embd))
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x):
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.hook_mem_out(self.mem(self.ln1(x))))
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.ln2(x))))


class Memory(nn.Module):
    """A stack of memory blocks on the interleaved stream; ``(B, T, d_in) -> (B, T)`` (or C logits)."""

    Config = MemoryConfig
    encoders = ("interleaved",)

    def __init__(self, config: MemoryConfig, d_in: int, n_outputs: int = 1) -> None:
        super().__init__()
        if config.n_positions is None:
            raise ValueError("MemoryConfig.n_positions must be resolved before building the model")
        self.config = config
        self.read_in = nn.Linear(d_in, config.n_embd)
        self.hook_embed = HookPoint()
        self.pos_embed = nn.Embedding(config.n_positions, config.n_embd)
        self.hook_pos_embed = HookPoint()
        self.blocks = nn.ModuleList(MemoryBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.hook_final = HookPoint()
        self.read_out = nn.Linear(config.n_embd, n_outputs)

    def forward(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        if layout.attn_mask is not None:
            raise ValueError("memory layers read a causal token stream; use the interleaved encoder")
        b, t, _ = tokens.shape
        x = self.hook_embed(self.read_in(tokens))
        x = x + self.hook_pos_embed(self.pos_embed(layout.positions).unsqueeze(0).expand(b, t, -1))
        for block in self.blocks:
            x = block(x)
        out = self.read_out(self.hook_final(self.ln_f(x)))
        return out.squeeze(-1) if out.shape[-1] == 1 else out
