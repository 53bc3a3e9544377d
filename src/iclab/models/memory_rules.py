"""Write rules of matrix-memory layers: how a memory ``S`` (``Dv x Dk`` per head) learns at test time.

Each rule is one function, its recurrent *write* ``S_t = write(S_{t-1}, ...)`` for token ``t``: the
definition, run by :func:`recurrent` one token at a time and read as ``o_t = S_t q_t``. Where a rule has
a parallel form (the whole sequence at once), it is defined right above the write and registered with it,
the way flash-linear-attention keeps ``naive`` beside ``chunk``; the tests check the two agree.

- ``linear``: Hebbian, ``S_t = S_{t-1} + v_t k_t^T`` (linear attention);
- ``decay``: ``S_t = gamma S_{t-1} + v_t k_t^T`` (a forgetting, RetNet-like memory);
- ``delta``: ``S_t = S_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T`` (one online regression step: DeltaNet);
- ``gated_delta``: ``S_t = alpha_t S_{t-1} + beta_t (v_t - alpha_t S_{t-1} k_t) k_t^T`` (gated DeltaNet);
- ``momentum``: the delta rule's gradient step with momentum and forgetting (Titans):
  ``M_t = eta_t M_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T``, ``S_t = alpha_t S_{t-1} + M_t``;
- ``omega``: the sliding-window rule of ATLAS: forget, then one gradient step on the regression loss of the
  last ``window`` tokens, ``S' = alpha_t S_{t-1}``, ``S_t = S' + sum_{i > t - window} beta_i (v_i - S' k_i) k_i^T``
  (``window = 1`` is the gated delta rule).

Adding a rule is one ``@rule(...)`` function here (and its parallel form if it has one); ``model.rule``
accepts every registered name.

This module imports torch on first use only (:mod:`iclab.lazy`), so configs can check ``model.rule``
without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from iclab.lazy import F, torch
from iclab.registry import Registry

RULES = Registry("memory rule")
FEATURE_MAPS = ("identity", "poly2")


@dataclass
class Gates:
    """Per-token, per-head quantities a rule may use: ``beta`` (write strength), ``alpha`` (forgetting gate),
    ``eta`` (momentum), each ``(B, H, T)``; the constant ``decay`` and the ``window`` of the omega rule."""

    beta: torch.Tensor | None = None
    alpha: torch.Tensor | None = None
    eta: torch.Tensor | None = None
    decay: float = 1.0
    window: int = 1


@dataclass(frozen=True)
class Rule:
    name: str
    write: Callable  # (S, M, i, k, v, gates) -> (S, M): the recurrent definition
    parallel: Callable | None = None  # (q, k, v, gates) -> (B, H, T, Dv), or None
    keys: Callable | None = None  # key preprocessing (unit keys for the delta rules), (k, window) -> k


def rule(name: str, parallel: Callable | None = None, keys: Callable | None = None):
    """Register ``write`` as the memory rule ``name``."""

    def register(write):
        RULES.register(Rule(name, write, parallel, keys), name=name)
        return write

    return register


def unit_keys(k, window: int):
    return F.normalize(k, dim=-1)  # unit keys keep the delta rule's step stable


def windowed_unit_keys(k, window: int):
    return F.normalize(k, dim=-1) / math.sqrt(window)  # a window of unit keys: keep the summed step stable


def outer(v, k):
    """``v k^T`` per head: ``(B, H, Dv), (B, H, Dk) -> (B, H, Dv, Dk)``."""
    return v.unsqueeze(-1) * k.unsqueeze(-2)


def recall(s, k):
    """``S k``: what the memory returns for key ``k``, ``(B, H, Dv)``."""
    return (s @ k.unsqueeze(-1)).squeeze(-1)


def recurrent(write: Callable, q, k, v, gates: Gates):
    """Run a write rule token by token from ``S = 0``. ``q, k``: (B, H, T, Dk); ``v``: (B, H, T, Dv)."""
    b, h, t, dk = k.shape
    s = q.new_zeros(b, h, v.shape[-1], dk)  # memory S: (B, H, Dv, Dk)
    m = torch.zeros_like(s)  # a second state (the momentum rule's M)
    outs = []
    for i in range(t):
        s, m = write(s, m, i, k, v, gates)
        outs.append(recall(s, q[:, :, i]))
    return torch.stack(outs, dim=2)  # (B, H, T, Dv)


def _causal(t: int, like):
    idx = torch.arange(t, device=like.device)
    return idx, (idx.unsqueeze(1) >= idx.unsqueeze(0)).to(like.dtype)  # j <= i


def _delta_writes(k, v, beta, weights):
    """The delta rule's writes ``U`` for the whole sequence from one unit lower-triangular system,
    ``u_i = beta_i (v_i - sum_{j<i} w_ij (k_j . k_i) u_j)``; ``weights`` (strictly lower) weigh each pair."""
    t = k.shape[2]
    system = torch.eye(t, dtype=k.dtype, device=k.device) + beta.unsqueeze(-1) * (k @ k.transpose(-1, -2)) * weights
    return torch.linalg.solve_triangular(system, beta.unsqueeze(-1) * v, upper=False, unitriangular=True)


def linear_parallel(q, k, v, g: Gates):
    _, causal = _causal(k.shape[2], q)
    return ((q @ k.transpose(-1, -2)) * causal) @ v


@rule("linear", parallel=linear_parallel)
def linear(s, m, i, k, v, g: Gates):
    return s + outer(v[:, :, i], k[:, :, i]), m


def decay_parallel(q, k, v, g: Gates):
    idx, causal = _causal(k.shape[2], q)
    powers = (idx.unsqueeze(1) - idx.unsqueeze(0)).clamp_min(0).to(q.dtype)
    return ((q @ k.transpose(-1, -2)) * causal * g.decay**powers) @ v


@rule("decay", parallel=decay_parallel)
def decay(s, m, i, k, v, g: Gates):
    return g.decay * s + outer(v[:, :, i], k[:, :, i]), m


def delta_parallel(q, k, v, g: Gates):
    idx, causal = _causal(k.shape[2], q)
    strict = (idx.unsqueeze(1) > idx.unsqueeze(0)).to(q.dtype)
    return ((q @ k.transpose(-1, -2)) * causal) @ _delta_writes(k, v, g.beta, strict)


@rule("delta", parallel=delta_parallel, keys=unit_keys)
def delta(s, m, i, k, v, g: Gates):
    ki = k[:, :, i]
    return s + g.beta[:, :, i, None, None] * outer(v[:, :, i] - recall(s, ki), ki), m


def gated_delta_parallel(q, k, v, g: Gates):
    """With ``g_i = prod_{r <= i} alpha_r``, ``S_t = sum_{j <= t} (g_t / g_j) u_j k_j^T``: the delta rule's
    triangular system with every product weighted by the decay between the two tokens."""
    idx, causal = _causal(k.shape[2], q)
    logs = torch.cumsum(torch.log(g.alpha), dim=-1)  # log g_i, (B, H, T)
    gap = logs.unsqueeze(-1) - logs.unsqueeze(-2)  # log (g_i / g_j), <= 0 below the diagonal
    ratio = torch.exp(gap.masked_fill(causal == 0, float("-inf")))  # 0 above the diagonal
    strict = ratio * (idx.unsqueeze(1) > idx.unsqueeze(0)).to(q.dtype)
    return ((q @ k.transpose(-1, -2)) * ratio) @ _delta_writes(k, v, g.beta, strict)


@rule("gated_delta", parallel=gated_delta_parallel, keys=unit_keys)
def gated_delta(s, m, i, k, v, g: Gates):
    s = g.alpha[:, :, i, None, None] * s
    ki = k[:, :, i]
    return s + g.beta[:, :, i, None, None] * outer(v[:, :, i] - recall(s, ki), ki), m


@rule("momentum", keys=unit_keys)
def momentum(s, m, i, k, v, g: Gates):
    ki = k[:, :, i]
    m = g.eta[:, :, i, None, None] * m + g.beta[:, :, i, None, None] * outer(v[:, :, i] - recall(s, ki), ki)
    return g.alpha[:, :, i, None, None] * s + m, m


@rule("omega", keys=windowed_unit_keys)
def omega(s, m, i, k, v, g: Gates):
    lo = max(0, i - g.window + 1)
    kw, vw, bw = k[:, :, lo : i + 1], v[:, :, lo : i + 1], g.beta[:, :, lo : i + 1]  # the window
    s = g.alpha[:, :, i, None, None] * s  # forget first, as the gated delta rule does
    resid = bw.unsqueeze(-1) * (vw - kw @ s.transpose(-1, -2))  # (B, H, W, Dv)
    return s + resid.transpose(-1, -2) @ kw, m


def memory_recurrent(q, k, v, rule: str, beta=None, alpha=None, decay: float = 1.0, eta=None, window: int = 1):
    """The outputs ``(B, H, T, Dv)`` of rule ``rule`` by its definition, token by token."""
    return recurrent(RULES[rule].write, q, k, v, Gates(beta, alpha, eta, decay, window))


def memory_parallel(q, k, v, rule: str, beta=None, decay: float = 1.0, alpha=None):
    """The same outputs for the whole sequence at once (rules with a parallel form)."""
    parallel = RULES[rule].parallel
    if parallel is None:
        raise ValueError(f"no parallel form for rule {rule!r}")
    return parallel(q, k, v, Gates(beta, alpha, None, decay))


def poly2_features(x):
    """``[x, x_i x_j c_ij (i <= j)]`` with ``c_ii = 1 / sqrt(2)``, ``c_ij = 1``, so that
    ``phi(a) . phi(b) = a . b + (a . b)^2 / 2``. ``(..., D) -> (..., D + D (D + 1) / 2)``."""
    d = x.shape[-1]
    i, j = torch.triu_indices(d, d, device=x.device)
    scale = torch.full(i.shape, 2**-0.5, dtype=x.dtype, device=x.device).where(i == j, 1.0)
    return torch.cat([x, x[..., i] * x[..., j] * scale], dim=-1)
