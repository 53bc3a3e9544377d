"""k-nearest-neighbour regression on the prefix (uniform weights, Euclidean distance)."""

from __future__ import annotations

from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner, check


@LEARNERS.register
class KNN(ReferenceLearner):
    """Average label of the ``k`` prefix points nearest to the query (all of them while fewer than k).

    Predicts 0 with no examples. All prefixes at once: one ``(B, N, N)`` distance matrix, with point
    ``j`` masked out for queries ``i <= j``.
    """

    name = "knn"

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        check(isinstance(k, int) and k >= 1, f"knn: k must be a positive integer, got {k!r}")
        self._set_params(k=k)

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        b, n, _ = xs.shape
        dist = torch.cdist(xs, xs)  # (B, N_query, N_prefix)
        future = torch.ones(n, n, dtype=torch.bool, device=xs.device).triu()  # j >= i is not in the prefix
        dist = dist.masked_fill(future, float("inf"))
        k = min(self.k, max(n - 1, 1))
        nearest = dist.topk(k, dim=-1, largest=False)  # (B, N, k)
        valid = torch.isfinite(nearest.values)
        labels = torch.gather(ys.unsqueeze(1).expand(b, n, n), 2, nearest.indices)  # (B, N, k)
        total = (labels * valid).sum(-1)
        count = valid.sum(-1)
        return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))
