"""k-nearest-neighbour regression on the prefix (uniform weights, Euclidean distance)."""

from __future__ import annotations

from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner, check

SELECT_BY_MIN = 8  # up to this k, the neighbours are found by k passes of min instead of one topk


@LEARNERS.register
class KNN(ReferenceLearner):
    """Average label of the ``k`` prefix points nearest to the query (all of them while fewer than k).

    Predicts 0 with no examples. All prefixes at once: one ``(B, N, N)`` matrix of squared distances, with
    point ``j`` masked out for queries ``i <= j``.
    """

    name = "knn"

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        check(isinstance(k, int) and k >= 1, f"knn: k must be a positive integer, got {k!r}")
        self._set_params(k=k)

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        b, n, _ = xs.shape
        # squared distances |x_i|^2 + |x_j|^2 - 2 x_i . x_j (the order of the distances, without the square root)
        sq = (xs * xs).sum(-1)
        dist = torch.baddbmm(sq.unsqueeze(2) + sq.unsqueeze(1), xs, xs.transpose(1, 2), alpha=-2)  # (B, N_q, N_p)
        future = torch.ones(n, n, dtype=torch.bool, device=xs.device).triu()  # j >= i is not in the prefix
        dist = dist.masked_fill(future, float("inf"))
        k = min(self.k, max(n - 1, 1))
        if k <= SELECT_BY_MIN:  # k passes of min, the nearest first (ties: the earliest point), beat topk for small k
            total, count = torch.zeros_like(dist[..., 0]), torch.zeros_like(dist[..., 0])
            for _ in range(k):
                nearest, index = dist.min(-1)  # (B, N)
                valid = torch.isfinite(nearest)
                total += torch.gather(ys, 1, index) * valid
                count += valid
                dist.scatter_(-1, index.unsqueeze(-1), float("inf"))
        else:
            nearest = dist.topk(k, dim=-1, largest=False)  # (B, N, k)
            valid = torch.isfinite(nearest.values)
            labels = torch.gather(ys.unsqueeze(1).expand(b, n, n), 2, nearest.indices)  # (B, N, k)
            total, count = (labels * valid).sum(-1), valid.sum(-1)
        return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))
