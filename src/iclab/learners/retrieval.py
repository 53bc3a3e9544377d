"""Retrieval: the label of the latest earlier point whose input equals the query's (the exact learner of the
``vector_retrieval`` task), 0 (the labels' prior mean) when none does."""

from __future__ import annotations

from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner, check


@LEARNERS.register
class Retrieval(ReferenceLearner):
    """Look the query up among the prefix's inputs: equal within ``tol`` (relative to the query's squared norm, plus
    one), the latest match wins; no match predicts 0. All prefixes at once from one ``(B, N, N)`` distance matrix."""

    name = "retrieval"

    def __init__(self, tol: float = 1e-8) -> None:
        super().__init__()
        check(isinstance(tol, (int, float)) and tol >= 0, f"retrieval: tol must be a non-negative number, got {tol!r}")
        self._set_params(tol=tol)

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        n = xs.shape[1]
        sq = (xs * xs).sum(-1)  # (B, N)
        dist = (sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * xs @ xs.transpose(1, 2)).clamp_min(0)  # (B, N_q, N_p)
        earlier = torch.ones(n, n, dtype=torch.bool, device=xs.device).tril(-1)  # j < i
        match = (dist <= self.tol * (sq.unsqueeze(2) + 1)) & earlier
        latest = (match * torch.arange(1, n + 1, device=xs.device)).argmax(-1)  # (B, N): the last matching j
        found = match.any(-1)
        return torch.where(found, torch.gather(ys, 1, latest), torch.zeros_like(ys))
