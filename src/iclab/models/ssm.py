"""A selective state-space model (Mamba, Gu & Dao 2023), in plain PyTorch.

Each block: pre-LayerNorm, an input projection to ``E = expand * n_embd`` channels ``u`` and a gate
``z``, a causal depthwise convolution over ``d_conv`` tokens and SiLU on ``u``, the selective scan, the
gate ``y * SiLU(z)``, an output projection, and the residual. The scan is diagonal, per channel ``c`` and
state ``n``, with an input-dependent step ``Delta_t`` and input-dependent ``B_t``, ``C_t``::

    h_t = exp(Delta_t[c] A[c, n]) h_{t-1} + Delta_t[c] B_t[n] u_t[c]
    y_t[c] = sum_n C_t[n] h_t[c, n] + D[c] u_t[c]

with ``A = -exp(A_log) < 0`` (initialised to ``-1 .. -d_state``, S4D-real) and
``Delta_t = softplus(W_up W_down u_t + b)`` (low rank ``dt_rank``, bias set so ``Delta`` starts in
``[0.001, 0.1]``). Two equal computations (``form``): ``scan`` (a parallel prefix scan over the tokens, log2 T
steps of the associative combine ``(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2)``) and ``loop`` (the
recurrence, one token at a time: the definition). No position embeddings: order comes from the
recurrence and the convolution. Reads the interleaved stream.

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

import torch
import torch.nn.functional as F
from torch import nn

from iclab.models.encoders import Layout
from iclab.models.hooks import HookPoint
from iclab.schema import require, require_positive


@dataclass
class MambaConfig:
    name: str = "mamba"
    encoder: str = "interleaved"  # reads the token stream in order
    form: str = "scan"  # "scan" (parallel prefix scan) or "loop" (token by token): the same function
    n_layer: int = 2
    n_embd: int = 64
    d_state: int = 16  # N: state size per channel
    expand: int = 2  # E = expand * n_embd channels inside a block
    d_conv: int = 4  # causal depthwise convolution width
    dt_rank: int | None = None  # rank of the step's projection; null = ceil(n_embd / 16)

    def label(self) -> str:
        """The network's name in tables and plots: ``Mamba 2x64``."""
        return f"Mamba {self.n_layer}x{self.n_embd}"

    def validate(self, path: str = "model") -> None:
        require(self.encoder == "interleaved", f"{path}.encoder", "mamba takes the interleaved encoder", self.encoder)
        require(self.form in ("scan", "loop"), f"{path}.form", "must be 'scan' or 'loop'", self.form)
        require_positive(self, path, "n_layer", "n_embd", "d_state", "expand", "d_conv")
        if self.dt_rank is not None:
            require_positive(self, path, "dt_rank")


def selective_scan_loop(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` from ``h_{-1} = 0``, one token at a time. ``a, b``: (B, T, ...)."""
    h = torch.zeros_like(b[:, 0])
    out = []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


def selective_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The same recurrence as :func:`selective_scan_loop` by a parallel prefix (Hillis-Steele) scan:
    after the step with offset ``s``, position ``t`` holds the composition of tokens ``t - 2s + 1 .. t``."""
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
        a = torch.exp(delta.unsqueeze(-1) * -torch.exp(self.A_log))  # (B, T, E, N), in (0, 1)
        b = (delta * u).unsqueeze(-1) * bmat.unsqueeze(2)  # (B, T, E, N)
        scan = selective_scan if self.c.form == "scan" else selective_scan_loop
        h = self.hook_state(scan(a, b))
        y = (h * cmat.unsqueeze(2)).sum(-1) + self.D * u  # (B, T, E)
        return self.out_proj(y * F.silu(z))


class MambaBlock(nn.Module):
    def __init__(self, c: MambaConfig) -> None:
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.ln = nn.LayerNorm(c.n_embd)
        self.ssm = SelectiveSSM(c)
        self.hook_ssm_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x):
        x = self.hook_resid_pre(x)
        return self.hook_resid_post(x + self.hook_ssm_out(self.ssm(self.ln(x))))


class Mamba(nn.Module):
    """A stack of selective state-space blocks on the interleaved stream; ``(B, T, d_in) -> (B, T)``."""

    Config = MambaConfig
    encoders = ("interleaved",)

    def __init__(self, config: MambaConfig, d_in: int, n_outputs: int = 1) -> None:
        super().__init__()
        self.config = config
        self.read_in = nn.Linear(d_in, config.n_embd)
        self.hook_embed = HookPoint()
        self.blocks = nn.ModuleList(MambaBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.hook_final = HookPoint()
        self.read_out = nn.Linear(config.n_embd, n_outputs)

    def forward(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        if layout.attn_mask is not None:
            raise ValueError("mamba reads a causal token stream; use the interleaved encoder")
        x = self.hook_embed(self.read_in(tokens))
        for block in self.blocks:
            x = block(x)
        out = self.read_out(self.hook_final(self.ln_f(x)))
        return out.squeeze(-1) if out.shape[-1] == 1 else out
