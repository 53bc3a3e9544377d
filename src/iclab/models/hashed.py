"""MemoryFormer's hashed memory layer (Ding et al. 2024, "MemoryFormer: Minimize Transformer Computation by Removing
Fully-Connected Layers"; code C0-Design/MemoryFormer) in place of a linear map ``d_in -> d_out``.

The input is split into ``K = d_in / tau`` chunks ``z_k`` of ``tau`` dimensions. Each chunk's sign pattern is a
``tau``-bit code, the row it reads from its own table ``T_k`` of ``2^tau`` rows of width ``d_out``; the output is
the sum of the selected rows, each weighted by a differentiable score of its chunk, plus a bias::

    y = sum_k  p(z_k) T_k[h(z_k)] + b,     h(z) = sum_j [z_j >= 0] 2^(tau - 1 - j)

The score is the probability of the selected code under a softmax over all ``2^tau`` codes ``c in {-1, 1}^tau``
with logits ``<c, z> / t`` (temperature ``t``); the selected code is the argmax, and the sum over codes factorises::

    p(z) = exp(sum_j |z_j| / t) / sum_c exp(<c, z> / t) = prod_j sigmoid(2 |z_j| / t)

(``score: probability``, the paper's). ``score: scaled`` multiplies it by ``sum_j |z_j|``, the reference code's
``compute_code_score_torch`` (at ``t = 1``), whose gradient does not vanish as the chunk grows. Gradients reach the
selected rows through the lookup and the input through the score; the code itself is piecewise constant.

Cost per token: ``K`` row reads and ``K d_out`` multiply-adds (the dense map: ``d_in d_out``, ``tau`` times more);
parameters: ``K 2^tau d_out`` (the dense map: ``d_in d_out``; ``2^tau / tau`` times fewer). The lookup is
``torch.nn.functional.embedding_bag`` with per-sample weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCORES = ("probability", "scaled")


def hash_codes(z: torch.Tensor) -> torch.Tensor:
    """``(..., K, tau) -> (..., K)`` int64: each chunk's sign pattern read as a binary number, most significant
    bit first (``z_j >= 0`` is a one)."""
    tau = z.shape[-1]
    powers = 2 ** torch.arange(tau - 1, -1, -1, device=z.device)
    return ((z >= 0).long() * powers).sum(-1)


def code_scores(z: torch.Tensor, temperature: float = 1.0, score: str = "probability") -> torch.Tensor:
    """``(..., K, tau) -> (..., K)``: the probability of each chunk's code under the softmax over all codes (the
    closed form above), or (``scaled``) that probability times ``sum_j |z_j|``."""
    a = z.abs()
    p = torch.sigmoid(2 * a / temperature).prod(-1)
    return p * a.sum(-1) if score == "scaled" else p


class HashedLinear(nn.Module):
    """A hashed memory layer ``d_in -> d_out``: ``d_in / tau`` tables of ``2^tau`` rows."""

    def __init__(
        self,
        d_in: int,
        d_out: int,
        tau: int = 8,
        temperature: float = 1.0,
        score: str = "probability",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if d_in % tau:
            raise ValueError(f"HashedLinear: d_in ({d_in}) must be a multiple of tau ({tau})")
        self.in_features, self.out_features = d_in, d_out
        self.tau, self.temperature, self.score = tau, temperature, score
        self.n_tables = d_in // tau
        # (K * 2^tau, d_out): table k's rows are k * 2^tau .. (k + 1) * 2^tau - 1; N(0, 0.02) as the reference's
        self.tables = nn.Parameter(0.02 * torch.randn(self.n_tables * 2**tau, d_out))
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None
        self.register_buffer("offsets", torch.arange(self.n_tables) * 2**tau, persistent=False)

    def lookup(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, scores)``, each ``(..., K)``: the table row each chunk of ``x`` reads and its weight."""
        z = x.unflatten(-1, (self.n_tables, self.tau))
        return hash_codes(z) + self.offsets, code_scores(z, self.temperature, self.score)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, scores = self.lookup(x)
        lead = x.shape[:-1]
        out = F.embedding_bag(
            rows.reshape(-1, self.n_tables),
            self.tables,
            per_sample_weights=scores.reshape(-1, self.n_tables).to(self.tables.dtype),
            mode="sum",
        ).reshape(*lead, self.out_features)
        return out + self.bias if self.bias is not None else out

    def flops_per_token(self) -> int:
        """Multiply-adds per token: ``K d_out`` for the weighted sum (the hashing is ``O(d_in)``)."""
        return self.n_tables * self.out_features

    def extra_repr(self) -> str:
        return (
            f"d_in={self.in_features}, d_out={self.out_features}, tau={self.tau}, tables={self.n_tables}"
            f"x{2**self.tau}, score={self.score}, temperature={self.temperature}"
        )
