"""Pattention (Wang et al. 2024, "TokenFormer: Rethinking Transformer Scaling with Tokenized Model Parameters"; code
Haiyang-W/TokenFormer): a linear map replaced by attention from the input to ``n`` learnable key-value parameter
tokens, so that a layer grows by appending tokens instead of being retrained from scratch.

    scores  A = x K_P^T                       (B, T, n)     no 1/sqrt(d) scale, as the reference code
    weights gelu_l2:  w = GELU(A) / ||GELU(A)||_2 * sqrt(n_scale)   (the reference code's default, gelu_l2_norm)
            softmax:  w = exp(A) / ||exp(A)||_1 * n_scale           (its softmax variant: softmax times the count)
    output  w V_P                             (B, T, d_out)

``n_scale`` is the token count the normalisation scales by. The reference code uses the current count, so appending
``N`` tokens multiplies every output by ``sqrt((n + N) / n)``: a grown layer keeps ``n_scale`` at the old count. Its
new tokens get zero keys (the paper's choice) and freshly initialised values; since GELU(0) = 0 they take no weight
and add nothing to the L2 norm, so the layer computes exactly what it did before growth, while the values give the
zero keys a gradient (zero keys *and* values would be a saddle that never trains). Under softmax a zero key still
takes ``exp(0)`` of the mass, so growth is exact only under gelu_l2 (``iclab grow`` refuses softmax).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Pattention"]

EPS = 1e-12  # a row whose GELU scores are all zero outputs zero, not NaN


class Pattention(nn.Module):
    """``d_in -> d_out`` through ``tokens`` key-value parameter tokens (``param_keys (n, d_in)``, ``param_values
    (n, d_out)``), normalised by ``norm`` ("gelu_l2" or "softmax") at ``scale_tokens`` (default: ``tokens``)."""

    def __init__(self, d_in: int, d_out: int, tokens: int, norm: str = "gelu_l2", scale_tokens: int | None = None):
        super().__init__()
        self.param_keys = nn.Parameter(torch.empty(tokens, d_in))
        self.param_values = nn.Parameter(torch.empty(tokens, d_out))
        self.norm = norm
        self.scale_tokens = scale_tokens if scale_tokens is not None else tokens
        self.in_features, self.out_features = d_in, d_out  # as nn.Linear names them
        nn.init.normal_(self.param_keys, std=0.02)
        nn.init.normal_(self.param_values, std=0.02)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised weights of the parameter tokens, ``(..., n)``."""
        scores = x @ self.param_keys.T
        if self.norm == "softmax":
            return scores.softmax(-1) * self.scale_tokens
        g = F.gelu(scores)
        return g / g.norm(dim=-1, keepdim=True).clamp_min(EPS) * math.sqrt(self.scale_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights(x) @ self.param_values

    def extra_repr(self) -> str:
        n = self.param_keys.shape[0]
        return (
            f"{self.in_features} -> {self.out_features}, tokens={n}, norm={self.norm}, scale_tokens={self.scale_tokens}"
        )
