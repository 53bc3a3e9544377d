"""Prompt encoders: how ``(xs, ys)`` become a token sequence, which tokens may attend to which, and
where the predictions are read.

- ``interleaved`` (Garg et al. 2022): tokens ``x_1, y_1, x_2, y_2, ..., x_N`` in one ``d + 1``-wide
  stream (``x``-token ``[x, 0]``, ``y``-token ``[0, ..., 0, y]``), causal attention, predictions read
  at the x-tokens. ``2N - 1`` tokens, positions ``0 .. 2N - 2``.
- ``stacked`` (von Oswald et al. 2022): context tokens ``e_j = [x_j, y_j, 0]`` and, for every
  position, a query token ``[x_i, 0, 1]``. Context tokens attend causally to context tokens; query
  ``i`` attends to ``e_1 .. e_{i-1}`` and itself, and nothing attends to a query. Predictions read at
  the query tokens; ``e_i`` and query ``i`` share position ``i``. ``2N - 1`` tokens, positions ``0 .. N - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from iclab.lazy import torch
from iclab.registry import Registry

ENCODERS = Registry("encoder")  # name -> encoder class


@dataclass
class Layout:
    """Where things are in an encoded sequence of ``T`` tokens."""

    positions: torch.Tensor  # (T,) position id of each token
    readout: torch.Tensor  # (N,) index of the token whose output predicts y_i
    attn_mask: torch.Tensor | None  # (T, T) bool, True = may attend; None = plain causal
    token_ids: torch.Tensor | None = None  # (B, T) int64 for token prompts (n-gram layers match on them)


def _label_features(ys: torch.Tensor) -> torch.Tensor:
    """Labels as token features: ``(B, N) -> (B, N, 1)``; one-hot class labels ``(B, N, C)`` pass through."""
    return ys.unsqueeze(-1) if ys.dim() == 2 else ys


@ENCODERS.register
class Interleaved:
    """Garg et al. 2022: tokens ``x_1, y_1, ..., x_N`` in one ``d + 1``-wide causal stream, predictions read at
    the x-tokens."""

    name = "interleaved"

    @staticmethod
    def width(n_dims: int, y_width: int = 1) -> int:
        return n_dims + y_width

    @staticmethod
    def positions_needed(n_points: int) -> int:
        return 2 * n_points - 1

    @staticmethod
    def encode(xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, Layout]:
        b, n, d = xs.shape
        yf = _label_features(ys)  # (B, N, Y)
        x_tok = torch.cat([xs, xs.new_zeros(b, n, yf.shape[-1])], dim=-1)  # (B, N, d+Y)
        y_tok = torch.cat([xs.new_zeros(b, n, d), yf], dim=-1)  # (B, N, d+Y)
        tokens = torch.stack([x_tok, y_tok], dim=2).reshape(b, 2 * n, -1)[:, :-1]  # (B, 2N-1, d+Y)
        t = 2 * n - 1
        layout = Layout(
            positions=torch.arange(t, device=xs.device),
            readout=torch.arange(0, t, 2, device=xs.device),
            attn_mask=None,
        )
        return tokens, layout


@ENCODERS.register
class Stacked:
    """von Oswald et al. 2022: a context token ``(x_j, y_j, 0)`` per example and a query token ``(x_i, 0, 1)``
    per position; each query sees the examples before it."""

    name = "stacked"

    @staticmethod
    def width(n_dims: int, y_width: int = 1) -> int:
        return n_dims + y_width + 1

    @staticmethod
    def positions_needed(n_points: int) -> int:
        return n_points

    @staticmethod
    def encode(xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, Layout]:
        b, n, d = xs.shape
        yf = _label_features(ys)  # (B, N, Y)
        ctx = torch.cat([xs[:, :-1], yf[:, :-1], xs.new_zeros(b, n - 1, 1)], dim=-1)  # (B, N-1, d+Y+1)
        qry = torch.cat([xs, torch.zeros_like(yf), xs.new_ones(b, n, 1)], dim=-1)  # (B, N, d+Y+1)
        tokens = torch.cat([ctx, qry], dim=1)  # (B, 2N-1, d+2)
        m = n - 1
        idx = torch.arange(n, device=xs.device)
        mask = torch.zeros(m + n, m + n, dtype=torch.bool, device=xs.device)
        mask[:m, :m] = idx[:m, None] >= idx[None, :m]  # context: causal among context tokens
        mask[m:, :m] = idx[:, None] > idx[None, :m]  # query i sees context j < i
        mask[m:, m:] = torch.eye(n, dtype=torch.bool, device=xs.device)  # and itself
        layout = Layout(
            positions=torch.cat([idx[:m], idx]),
            readout=m + idx,
            attn_mask=mask,
        )
        return tokens, layout


@ENCODERS.register
class SetBased(Stacked):
    """Set-based prompting: like ``stacked``, but the demonstrations cannot attend to each other and all
    share position 0 (queries take position 1), so a prediction cannot depend on the demonstrations'
    order: permuting ``(x_j, y_j)`` for ``j < i`` leaves ``y_hat_i`` unchanged."""

    name = "set"

    @staticmethod
    def positions_needed(n_points: int) -> int:
        return 2

    @staticmethod
    def encode(xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, Layout]:
        tokens, layout = Stacked.encode(xs, ys)
        n = xs.shape[1]
        m = n - 1
        mask = layout.attn_mask.clone()
        mask[:m, :m] = torch.eye(m, dtype=torch.bool, device=xs.device)  # a demonstration sees only itself
        positions = torch.cat(
            [torch.zeros(m, dtype=torch.long, device=xs.device), torch.ones(n, dtype=torch.long, device=xs.device)]
        )
        return tokens, Layout(positions=positions, readout=layout.readout, attn_mask=mask)
