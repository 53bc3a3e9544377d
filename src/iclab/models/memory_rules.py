"""Write rules of matrix-memory layers: how a memory ``S`` (``Dv x Dk`` per head) learns at test time.

Each rule is one function, its recurrent *write* ``S_t = write(S_{t-1}, ...)`` for token ``t``: the
definition, run by :func:`recurrent` one token at a time and read as ``o_t = S_t q_t``. Where a rule has
a parallel form (the whole sequence at once) or a chunked form (parallel within chunks of tokens, recurrent
from chunk to chunk, as flash-linear-attention's ``chunk`` kernels are), it is defined beside the write and
registered with it, the way flash-linear-attention keeps ``naive`` beside ``chunk``; the tests check they agree.

The chunked forms of the delta-rule family (``delta``, ``gated_delta``, ``omega``: :func:`omega_chunked`;
``momentum``: :func:`momentum_chunked`) follow the WY / UT-transform idea of Yang et al. 2024 ("Parallelizing
Linear Transformers with the Delta Rule over Sequence Length") and Yang, Kautz & Hatamizadeh 2024 ("Gated Delta
Networks"): within a chunk, every write is a linear function of the memory at the chunk's start, found for all
of the chunk's tokens at once from one unit lower-triangular system; only the memory passes from chunk to chunk.

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
from dataclasses import dataclass, replace

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
    chunked: Callable | None = None  # (q, k, v, gates) -> (B, H, T, Dv), or None

    def form(self, asked: str) -> str:
        """The computation ``model.form`` asks for: ``auto`` is the chunked form where the rule has one, else the
        parallel form, else the recurrent definition."""
        if asked != "auto":
            return asked
        return "chunk" if self.chunked else "parallel" if self.parallel else "recurrent"


def rule(name: str, parallel: Callable | None = None, keys: Callable | None = None, chunked: Callable | None = None):
    """Register ``write`` as the memory rule ``name``."""

    def register(write):
        RULES.register(Rule(name, write, parallel, keys, chunked), name=name)
        return write

    return register


# writes per chunk in the chunked forms of the delta rules (a chunk of the omega rule holds CHUNK // window tokens),
# and tokens per chunk of the momentum rule: chosen by measurement at 256 tokens on a CPU (docs/benchmarks.md)
CHUNK = 32
MOMENTUM_CHUNK = 32
# within a chunk, decays g_t / g_t' are folded into the keys as exp(lg_t) and exp(-lg_t') while every log g in the
# batch stays above -SAFE_LOG (exp(SAFE_LOG) is far below float32's and bfloat16's largest number); else formed pairwise
SAFE_LOG = 60.0


def _chunks(x, n: int, size: int):
    """``(B, H, T, ...) -> (B, H, n, size, ...)``, zero-padded at the end to ``n * size`` tokens."""
    pad = n * size - x.shape[2]
    if pad:
        x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, pad))
    return x.reshape(*x.shape[:2], n, size, *x.shape[3:])


def _windowed(x, window: int):
    """``(B, H, T, ...) -> (B, H, T, window, ...)``: at step t, the tokens t - window + 1 .. t (zeros before 0)."""
    if window == 1:
        return x.unsqueeze(3)
    pad = F.pad(x, (0, 0) * (x.dim() - 3) + (window - 1, 0))
    return pad.unfold(2, window, 1).movedim(-1, 3)


def _log_gate(gate, like):
    """``log gate``, kept finite (a gate of exactly 0 would make the decay between two tokens 0 / 0); no gate:
    zeros, like ``like``."""
    return torch.zeros_like(like) if gate is None else torch.log(gate.clamp_min(1e-30))


def _lower(logs, inclusive: bool):
    """``exp(logs_i - logs_j)`` where ``j <= i`` (or ``j < i``), else 0: ``(..., C) -> (..., C, C)``."""
    c = logs.shape[-1]
    idx = torch.arange(c, device=logs.device)
    keep = idx.unsqueeze(1) >= idx.unsqueeze(0) if inclusive else idx.unsqueeze(1) > idx.unsqueeze(0)
    return torch.exp((logs.unsqueeze(-1) - logs.unsqueeze(-2)).masked_fill(~keep, float("-inf")))


def omega_chunked(q, k, v, g: Gates):
    """The delta, gated delta and omega rules, chunk by chunk. A step ``t`` writes ``window`` times, each write
    ``u = beta_r (v_r - alpha_t S_{t-1} k_r)`` for a token ``r`` of its window (one write, ``r = t``, for the
    delta rules), and ``S_t = alpha_t S_{t-1} + sum_r u k_r^T``. Within a chunk, with ``g_t`` the product of the
    gates from the chunk's start to ``t`` and ``S_0`` the memory before it, every write solves
    ``u_m + beta_m sum_{m': step(m') < step(m)} (g_t / g_t') (k_m . k_m') u_m' = beta_m (v_m - g_t S_0 k_m)``:
    one unit lower-triangular system per chunk whose solution is linear in ``S_0``, so both parts are solved for
    every chunk at once and only ``S_0`` runs from chunk to chunk."""
    from iclab.models.unit_lower import writes_solve  # (torch imported here, not when configs are checked)

    b, h, t, dk = k.shape
    w = g.window
    size = max(1, CHUNK // w)  # steps per chunk
    n = -(-t // size)
    lg = torch.cumsum(_chunks(_log_gate(g.alpha, g.beta), n, size), dim=-1)  # log g_t within each chunk, (B, H, n, C)
    qc = _chunks(q, n, size)  # (B, H, n, C, Dk)
    kw = _chunks(_windowed(k, w), n, size).flatten(3, 4)  # the writes' keys, (B, H, n, C * W, Dk)
    vw = _chunks(_windowed(v, w), n, size).flatten(3, 4)
    bw = _chunks(_windowed(g.beta, w), n, size).flatten(3, 4)  # (B, H, n, C * W); 0 before the first token

    def per_write(x, dims=(-1,)):  # a step's quantity for each of its writes, along the given dimensions
        for dim in dims if w > 1 else ():
            x = x.repeat_interleave(w, dim=dim)
        return x

    lw = per_write(lg)  # log g at each write's step
    q_gated = qc * torch.exp(lg).unsqueeze(-1)
    step = torch.arange(size, device=k.device)
    earlier = per_write(step.unsqueeze(1) > step.unsqueeze(0), dims=(-1, -2))  # (C W, C W): step(m') < step(m)
    upto = per_write(step.unsqueeze(1) >= step.unsqueeze(0))  # (C, C W): write m is at a step <= t
    # The system is the identity plus a strictly lower part (solve_triangular with unitriangular=True reads nothing
    # else, and gives nothing else a gradient); writes of one step do not see each other.
    k_in = kw * (bw * torch.exp(lw)).unsqueeze(-1)  # beta_m g_t k_m: also what S_0 k takes off write m
    # the writes when S_0 = 0, and what S_0 k takes off them: one solve for both right-hand sides
    rhs = (bw.unsqueeze(-1) * vw, k_in)
    if lg.is_meta or bool(lg.min() > -SAFE_LOG):  # g_t / g_t' = exp(lg_t) exp(-lg_t'), folded into the keys
        k_out = kw * torch.exp(-lw).unsqueeze(-1)
        u = writes_solve(k_in, k_out, rhs, ~earlier, masked=w > 1)  # system: beta_m (g_t / g_t') (k_m . k_m')
        read = (q_gated @ k_out.transpose(-1, -2)).masked_fill(~upto, 0)
    else:  # gates small enough that exp(-lg) could overflow: the decays between steps, each formed on its own
        system = per_write(_lower(lg, inclusive=False), dims=(-1, -2)) * (
            (bw.unsqueeze(-1) * kw) @ kw.transpose(-1, -2)
        )
        system = system.masked_fill(~earlier, 0)
        u = torch.linalg.solve_triangular(system, torch.cat(rhs, dim=-1), upper=False, unitriangular=True)
        read = (qc @ kw.transpose(-1, -2)) * per_write(_lower(lg, inclusive=True))  # g_t / g_step(m), step(m) <= t
    to_end = torch.exp(lg[..., -1:] - lw).unsqueeze(-1)  # the decay from each write to the chunk's end
    last = torch.exp(lg[..., -1, None, None])  # the decay over the whole chunk
    dv = v.shape[-1]
    st = q.new_zeros(b * h, dk, dv)  # the memory, transposed: S^T
    outs = []
    # one chunk at a time, each taken by unbind (one backward for all chunks; indexing in the loop would write a
    # zero-filled gradient of the whole tensor per chunk), batch and heads as one dimension for baddbmm
    # (u split chunk by chunk: split once, its backward would put the two halves of u's gradient together again)
    chunks = (u, q_gated, read, kw * to_end, last)
    for i, (u_c, q_g, r, k_end, la) in enumerate(zip(*(x.flatten(0, 1).unbind(1) for x in chunks))):
        u_free, u_per_s = u_c.split([dv, dk], dim=-1)
        writes = torch.baddbmm(u_free, u_per_s, st, alpha=-1)  # the chunk's writes, (B H, C W, Dv)
        outs.append(torch.baddbmm(q_g @ st, r, writes))
        if i < n - 1:
            st = torch.baddbmm(la * st, k_end.transpose(-1, -2), writes)
    return torch.cat(outs, dim=1).view(b, h, n * size, dv)[:, :, :t]


def delta_chunked(q, k, v, g: Gates):
    """The delta rule: one write per step, no forgetting (:func:`omega_chunked` with a window of one, no gate)."""
    return omega_chunked(q, k, v, replace(g, alpha=None, window=1))


def gated_delta_chunked(q, k, v, g: Gates):
    """The gated delta rule: one write per step (:func:`omega_chunked` with a window of one)."""
    return omega_chunked(q, k, v, replace(g, window=1))


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


@rule("delta", parallel=delta_parallel, keys=unit_keys, chunked=delta_chunked)
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


@rule("gated_delta", parallel=gated_delta_parallel, keys=unit_keys, chunked=gated_delta_chunked)
def gated_delta(s, m, i, k, v, g: Gates):
    s = g.alpha[:, :, i, None, None] * s
    ki = k[:, :, i]
    return s + g.beta[:, :, i, None, None] * outer(v[:, :, i] - recall(s, ki), ki), m


def momentum_chunked(q, k, v, g: Gates):
    """The momentum rule, chunk by chunk. With ``w_t = beta_t (v_t - S_{t-1} k_t)``, within a chunk from
    ``(S_0, M_0)``: ``S_t = a_t S_0 + c_t M_0 + sum_{s <= t} D_ts w_s k_s^T``, where ``a_t`` is the product of the
    forgetting gates, ``c_t = sum_{l <= t} alpha_{l+1..t} eta_{0..l}`` and ``D = A E`` is the product of the two
    lower-triangular matrices of gate products (``A_tl = alpha_{l+1..t}``, ``E_ls = eta_{s+1..l}``). The writes then
    solve one unit lower-triangular system per chunk, linear in ``S_0`` and ``M_0``."""
    b, h, t, dk = k.shape
    size = MOMENTUM_CHUNK
    n = -(-t // size)
    la = torch.cumsum(_chunks(_log_gate(g.alpha, g.beta), n, size), dim=-1)  # (B, H, n, C)
    le = torch.cumsum(_chunks(_log_gate(g.eta, g.beta), n, size), dim=-1)
    qc, kc, vc, bc = (_chunks(x, n, size) for x in (q, k, v, g.beta))
    forget = _lower(la, inclusive=True)  # A_tl = alpha_{l+1..t}
    carry = _lower(le, inclusive=True)  # E_ls = eta_{s+1..l}
    d = forget @ carry  # D_ts
    a = torch.exp(la)  # alpha_{0..t}
    c = (forget @ torch.exp(le).unsqueeze(-1)).squeeze(-1)  # sum_l alpha_{l+1..t} eta_{0..l}
    # what w_t sees is S_{t-1}: the rows of a, c and D one step back (S_{-1} = S_0: a = 1, c = 0, D = 0)
    a_prev = torch.cat([torch.ones_like(a[..., :1]), a[..., :-1]], dim=-1)
    c_prev = torch.cat([torch.zeros_like(c[..., :1]), c[..., :-1]], dim=-1)
    d_prev = F.pad(d, (0, 0, 1, 0))[..., :-1, :]
    system = torch.eye(size, dtype=k.dtype, device=k.device) + bc.unsqueeze(-1) * d_prev * (kc @ kc.transpose(-1, -2))
    rhs = torch.cat([bc.unsqueeze(-1) * vc, (bc * a_prev).unsqueeze(-1) * kc, (bc * c_prev).unsqueeze(-1) * kc], -1)
    w_free, w_per_s, w_per_m = torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True).split(
        [v.shape[-1], dk, dk], dim=-1
    )  # one solve for the three right-hand sides
    read = (qc @ kc.transpose(-1, -2)) * d
    q_s, q_m = qc * a.unsqueeze(-1), qc * c.unsqueeze(-1)
    m_to_end = torch.exp(le[..., -1:] - le).unsqueeze(-1)  # eta_{s+1..end}
    s_from_s, s_from_m = a[..., -1, None, None], c[..., -1, None, None]  # the chunk's end, (B, H, n, 1, 1)
    m_from_m = torch.exp(le[..., -1, None, None])
    s_from_w = d[..., -1, None, :]  # D at the chunk's last row, (B, H, n, 1, C)
    m_from_w = m_to_end.transpose(-1, -2)
    s = q.new_zeros(b, h, v.shape[-1], dk)
    m = torch.zeros_like(s)
    outs = []
    chunks = (w_free, w_per_s, w_per_m, q_s, q_m, read, kc, s_from_s, s_from_m, m_from_m, s_from_w, m_from_w)
    for w_f, w_s, w_m, qs, qm, r, kk, ss, sm, mm, sw, mw in zip(*(x.unbind(2) for x in chunks)):  # see omega_chunked
        st, mt = s.transpose(-1, -2), m.transpose(-1, -2)
        w = w_f - w_s @ st - w_m @ mt  # (B, H, C, Dv)
        outs.append(qs @ st + qm @ mt + r @ w)
        wk = w.transpose(-1, -2)
        s, m = ss * s + sm * m + (wk * sw) @ kk, mm * m + (wk * mw) @ kk
    return torch.cat(outs, dim=2)[:, :, :t]


@rule("momentum", keys=unit_keys, chunked=momentum_chunked)
def momentum(s, m, i, k, v, g: Gates):
    ki = k[:, :, i]
    m = g.eta[:, :, i, None, None] * m + g.beta[:, :, i, None, None] * outer(v[:, :, i] - recall(s, ki), ki)
    return g.alpha[:, :, i, None, None] * s + m, m


@rule("omega", keys=windowed_unit_keys, chunked=omega_chunked)
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
