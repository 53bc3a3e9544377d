"""A selective state-space model (Mamba, Gu & Dao 2023), in plain PyTorch.

Each block: pre-LayerNorm, an input projection to ``E = expand * n_embd`` channels ``u`` and a gate
``z``, a causal depthwise convolution over ``d_conv`` tokens and SiLU on ``u``, the selective scan, the
gate ``y * SiLU(z)``, an output projection, and the residual. The scan is diagonal, per channel ``c`` and
state ``n``, with an input-dependent step ``Delta_t`` and input-dependent ``B_t``, ``C_t``::

    h_t = exp(Delta_t[c] A[c, n]) h_{t-1} + Delta_t[c] B_t[n] u_t[c]
    y_t[c] = sum_n C_t[n] h_t[c, n] + D[c] u_t[c]

with ``A = -exp(A_log) < 0`` (initialised to ``-1 .. -d_state``, S4D-real) and
``Delta_t = softplus(W_up W_down u_t + b)`` (low rank ``dt_rank``, bias set so ``Delta`` starts in
``[0.001, 0.1]``). Two equal computations (``form``): ``scan``, a parallel prefix scan over the tokens (log2 T
steps of the associative combine ``(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2)`` on ``(B, T, E, N)`` tensors:
few, large operations, the better choice on a GPU); and ``loop``, the recurrence one token at a time, which
forms ``exp(Delta_t A)`` and ``y_t`` inside the step and never holds more than the states autograd keeps (the
faster form on CPU; the two are timed side by side in docs/benchmarks.md).
``auto`` (the default) takes the scan on CUDA and the loop elsewhere. No position embeddings: order comes
from the recurrence and the convolution. Reads the interleaved stream. The file reads top to bottom: config
(:class:`MambaConfig`), the scan, the blocks, the network (:class:`Mamba`: read-in, blocks, final LayerNorm,
read-out).

Hooks (``E`` channels, ``N = d_state``)::

    hook_embed                              (B, T, D)
    blocks.{l}.hook_resid_pre               (B, T, D)
    blocks.{l}.ssm.hook_delta               (B, T, E)     the input-dependent step
    blocks.{l}.ssm.hook_B / hook_C          (B, T, N)
    blocks.{l}.ssm.hook_state               (B, T, E, N)  h_t
    blocks.{l}.hook_ssm_out                 (B, T, D)
    blocks.{l}.hook_resid_post              (B, T, D)
    hook_final                              (B, T, D)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from iclab.models.encoders import Layout
from iclab.models.family import MODELS, ModelConfig
from iclab.models.hooks import HookPoint
from iclab.models.ngram_heads import with_ngram_layers
from iclab.models.parts import linear_read_out, read_in
from iclab.schema import require_positive


@MODELS.register
@dataclass
class MambaConfig(ModelConfig):
    """A selective state-space model (Mamba, Gu & Dao 2023), in plain PyTorch."""

    name: str = "mamba"
    encoder: str = "interleaved"  # reads the token stream in order
    form: Literal["auto", "scan", "loop"] = "auto"  # parallel prefix scan or token by token, the same function;
    # auto: the scan on CUDA, the loop elsewhere
    n_layer: int = 2
    n_embd: int = 64
    d_state: int = 16  # N: state size per channel
    expand: int = 2  # E = expand * n_embd channels inside a block
    d_conv: int = 4  # causal depthwise convolution width
    dt_rank: int | None = None  # rank of the step's projection; null = ceil(n_embd / 16)

    quick: ClassVar[dict] = {"n_layer": 1, "n_embd": 32, "d_state": 8}

    def build(self, d_in: int, n_outputs: int = 1, vocab_size: int | None = None) -> Mamba:
        return Mamba(self, d_in, n_outputs, vocab_size)

    def validate(self, path: str = "model") -> None:
        super().validate(path)
        require_positive(self, path, "n_embd", "d_state", "expand", "d_conv")
        if self.dt_rank is not None:
            require_positive(self, path, "dt_rank")

    def parameters_lower_bound(self) -> int:
        return self.n_layer * 3 * self.expand * self.n_embd**2  # input (u and z) and output projections

    def activations_lower_bound(self) -> int:
        return self.n_layer * self.expand * self.n_embd * (4 + self.d_state)  # u, z, gate, y and the states

    def label(self, tokens: bool = False) -> str:
        return f"Mamba {self.n_layer}x{self.n_embd}"


def selective_ssm_loop(
    delta: torch.Tensor,
    A: torch.Tensor,
    drive: torch.Tensor,
    bmat: torch.Tensor,
    cmat: torch.Tensor,
    keep_states: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``y_t = sum_n C_t[n] h_t[:, n]`` with ``h_t = exp(Delta_t A) h_{t-1} + drive_t B_t``, one token at a
    time, without the ``(B, T, E, N)`` tensors of ``a`` and ``b``. Tokens are taken by ``unbind``: indexing
    ``x[:, t]`` would make its backward write a zero-filled full-size gradient per token, quadratic in T.

    ``delta, drive``: (B, T, E) (``drive = Delta * u``); ``A``: (E, N); ``bmat, cmat``: (B, T, N). Returns
    ``y`` (B, T, E) and, when ``keep_states``, the states ``h`` (B, T, E, N). When training, the same loop runs
    with its backward written out (:class:`_SelectiveLoop`)."""
    if not keep_states and torch.is_grad_enabled() and any(x.requires_grad for x in (delta, A, drive, bmat, cmat)):
        return _SelectiveLoop.apply(delta, A, drive, bmat, cmat), None
    h = drive.new_zeros(drive.shape[0], *A.shape)
    ys, states = [], []
    for d_t, x_t, b_t, c_t in zip(delta.unbind(1), drive.unbind(1), bmat.unbind(1), cmat.unbind(1)):
        h = torch.addcmul(x_t.unsqueeze(-1) * b_t.unsqueeze(1), torch.exp(d_t.unsqueeze(-1) * A), h)
        ys.append(torch.bmm(h, c_t.unsqueeze(-1)).squeeze(-1))
        if keep_states:
            states.append(h)
    return torch.stack(ys, dim=1), (torch.stack(states, dim=1) if keep_states else None)


class _SelectiveLoop(torch.autograd.Function):
    """:func:`selective_ssm_loop`'s recurrence with its backward written out: one pass back through time on
    ``(B, E, N)`` tensors that stay in cache, six small operations a token where autograd's graph of the loop takes
    about a dozen (its speed: docs/benchmarks.md). Keeps every state and decay, as autograd's graph of the loop
    does. Equal to the autograd loop to float rounding (tests, and gradcheck in float64)."""

    @staticmethod
    def forward(ctx, delta, A, drive, bmat, cmat):
        h = drive.new_zeros(drive.shape[0], *A.shape)
        states, decays, ys = [], [], []
        for d_t, x_t, b_t, c_t in zip(delta.unbind(1), drive.unbind(1), bmat.unbind(1), cmat.unbind(1)):
            decay = torch.exp(d_t.unsqueeze(-1) * A)
            h = torch.addcmul(x_t.unsqueeze(-1) * b_t.unsqueeze(1), decay, h)
            states.append(h)
            decays.append(decay)
            ys.append(torch.bmm(h, c_t.unsqueeze(-1)).squeeze(-1))
        ctx.save_for_backward(delta, A, drive, bmat, cmat)
        ctx.states, ctx.decays = states, decays
        return torch.stack(ys, dim=1)

    @staticmethod
    def backward(ctx, dy):
        delta, A, drive, bmat, cmat = ctx.saved_tensors
        states, decays = ctx.states, ctx.decays
        dh = torch.zeros_like(states[0])  # dL / dh_t, carried back through time
        d_delta, d_drive, d_b, d_c = [], [], [], []
        d_a = torch.zeros_like(A)
        columns = zip(delta.unbind(1), drive.unbind(1), bmat.unbind(1), cmat.unbind(1), dy.unbind(1))
        for t, (d_t, x_t, b_t, c_t, g_t) in reversed(list(enumerate(columns))):
            d_c.append(torch.bmm(g_t.unsqueeze(1), states[t]).squeeze(1))  # y_t = h_t C_t
            dh = torch.addcmul(dh, g_t.unsqueeze(-1), c_t.unsqueeze(1))
            d_drive.append(torch.bmm(dh, b_t.unsqueeze(-1)).squeeze(-1))  # h_t += drive_t B_t
            d_b.append(torch.bmm(x_t.unsqueeze(1), dh).squeeze(1))
            if t > 0:  # h_t = exp(Delta_t A) h_{t-1} + ...: the exponent's gradient, then dh_{t-1}
                dh = dh * decays[t]
                g = dh * states[t - 1]
                d_delta.append((g * A).sum(-1))
                d_a.add_((g * d_t.unsqueeze(-1)).sum(0))
            else:  # h_{-1} = 0: the first decay multiplies nothing
                d_delta.append(torch.zeros_like(d_t))
        d_delta, d_drive, d_b, d_c = (torch.stack(x[::-1], dim=1) for x in (d_delta, d_drive, d_b, d_c))
        return d_delta, d_a, d_drive, d_b, d_c


def selective_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` from ``h_{-1} = 0`` (``a, b``: (B, T, ...)) by a parallel prefix
    (Hillis-Steele) scan: after the step with offset ``s``, position ``t`` holds the composition of tokens
    ``t - 2s + 1 .. t``."""
    t = b.shape[1]
    s = 1
    while s < t:  # positions before s compose with the identity: they keep their (a, b)
        b = torch.cat([b[:, :s], torch.addcmul(b[:, s:], a[:, s:], b[:, :-s])], dim=1)
        if 2 * s < t:  # the last level's products are not needed
            a = torch.cat([a[:, :s], a[:, s:] * a[:, :-s]], dim=1)
        s *= 2
    return b


class SelectiveSSM(nn.Module):
    def __init__(self, c: MambaConfig) -> None:
        super().__init__()
        self.c = c
        e, n = c.expand * c.n_embd, c.d_state
        rank = c.dt_rank or math.ceil(c.n_embd / 16)
        self.in_proj = nn.Linear(c.n_embd, 2 * e)
        self.conv = nn.Conv1d(e, e, c.d_conv, groups=e, padding=c.d_conv - 1)
        self.x_proj = nn.Linear(e, rank + 2 * n, bias=False)  # -> (dt low-rank, B, C)
        self.dt_proj = nn.Linear(rank, e)
        dt = torch.exp(torch.rand(e) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^{-1}(dt)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(e, 1))  # (E, N)
        self.D = nn.Parameter(torch.ones(e))
        self.out_proj = nn.Linear(e, c.n_embd)
        self.rank = rank
        self.hook_delta, self.hook_B, self.hook_C, self.hook_state = HookPoint(), HookPoint(), HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        u, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, E) each
        u = F.silu(self.conv(u.transpose(1, 2))[..., :t].transpose(1, 2))  # causal: drop the look-ahead
        dt_low, bmat, cmat = self.x_proj(u).split([self.rank, self.c.d_state, self.c.d_state], dim=-1)
        delta = self.hook_delta(F.softplus(self.dt_proj(dt_low)))  # (B, T, E)
        bmat, cmat = self.hook_B(bmat), self.hook_C(cmat)  # (B, T, N)
        A = -torch.exp(self.A_log)  # (E, N), negative: exp(Delta A) in (0, 1)
        if self.c.form == "scan" or (self.c.form == "auto" and x.is_cuda):
            a = torch.exp(delta.unsqueeze(-1) * A)  # (B, T, E, N)
            b = (delta * u).unsqueeze(-1) * bmat.unsqueeze(2)  # (B, T, E, N)
            h = self.hook_state(selective_scan(a, b))
            y = (h * cmat.unsqueeze(2)).sum(-1)
        else:  # the state hook observes h_t; y is read from the states inside the loop
            y, h = selective_ssm_loop(delta, A, delta * u, bmat, cmat, keep_states=self.hook_state.active)
            if h is not None:
                self.hook_state(h)
        return self.out_proj((y + self.D * u) * F.silu(z))


class MambaBlock(nn.Module):
    """Pre-LN residual block around the selective SSM: ``x + ssm(ln(x))``."""

    def __init__(self, c: MambaConfig, width: int) -> None:
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.ln = nn.LayerNorm(c.n_embd)
        self.ssm = SelectiveSSM(c)
        self.hook_ssm_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        return self.hook_resid_post(x + self.hook_ssm_out(self.ssm(self.ln(x))))


class Mamba(nn.Module):
    """The network: read-in, the Mamba blocks (with any n-gram layers), final LayerNorm, read-out."""

    def __init__(self, config: MambaConfig, d_in: int, n_outputs: int = 1, vocab_size: int | None = None):
        super().__init__()
        self.config = config
        width = config.n_embd
        # modules are registered in forward order (hook names list in forward order; initial weights follow)
        self.read_in = read_in(d_in, width, vocab_size)
        self.hook_embed = HookPoint()
        self.pos_embed = None  # no position embeddings: order comes from the recurrence
        layers = [MambaBlock(config, width) for _ in range(config.n_layer)]
        self.blocks = nn.ModuleList(with_ngram_layers(layers, config, width))
        self.ln_f = nn.LayerNorm(width)
        self.hook_final = HookPoint()
        self.read_out = nn.Linear(width, n_outputs)

    def forward(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.hook_embed(self.read_in(tokens))  # (B, T, D)
        for block in self.blocks:
            x = block(x, layout)
        return linear_read_out(self.read_out(self.hook_final(self.ln_f(x))))
