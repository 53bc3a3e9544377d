"""Gradient descent on the prefix (von Oswald et al. 2022; Akyürek et al. 2022).

Both start from ``w = 0`` and use the mean squared loss ``L(w) = 1/(2i) sum_{j<i} (w . x_j - y_j)^2``
on the prefix of ``i`` examples:

- :class:`GD`: ``steps`` full-batch steps ``w <- w - lr * grad L(w)`` on every prefix;
- :class:`OnlineGD`: one step per new example, ``w <- w - lr * (w . x_j - y_j) x_j``, in order.
"""

from __future__ import annotations

from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner, check, exclusive_cumsum


@LEARNERS.register
class GD(ReferenceLearner):
    """``steps`` steps of full-batch gradient descent with step size ``lr`` from ``w = 0``."""

    name = "gd"

    def __init__(self, steps: int = 1, lr: float = 0.1) -> None:
        super().__init__()
        check(isinstance(steps, int) and steps >= 1, f"gd: steps must be a positive integer, got {steps!r}")
        check(isinstance(lr, (int, float)) and lr > 0, f"gd: lr must be positive, got {lr!r}")
        self._set_params(steps=steps, lr=float(lr))

    def weights(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:  # (B, N, d)
        n = xs.shape[1]
        gram = exclusive_cumsum(xs.unsqueeze(-1) * xs.unsqueeze(-2), dim=1)  # (B, N, d, d) = X^T X of prefix
        xty = exclusive_cumsum(xs * ys.unsqueeze(-1), dim=1)  # (B, N, d)
        scale = self.lr / torch.arange(n, dtype=xs.dtype, device=xs.device).clamp_min(1).view(1, n, 1)
        w = torch.zeros_like(xty)
        for _ in range(self.steps):
            grad = torch.einsum("bnij,bnj->bni", gram, w) - xty  # i * grad L
            w = w - scale * grad
        return w

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return (self.weights(xs, ys) * xs).sum(-1)


@LEARNERS.register
class OnlineGD(ReferenceLearner):
    """One SGD step per example, in prompt order, with step size ``lr``, from ``w = 0``."""

    name = "online_gd"

    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        check(isinstance(lr, (int, float)) and lr > 0, f"online_gd: lr must be positive, got {lr!r}")
        self._set_params(lr=float(lr))

    def weights(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:  # (B, N, d)
        b, n, d = xs.shape
        w = xs.new_zeros(b, d)
        out = xs.new_zeros(b, n, d)
        for i in range(n):
            out[:, i] = w
            resid = (w * xs[:, i]).sum(-1) - ys[:, i]
            w = w - self.lr * resid.unsqueeze(-1) * xs[:, i]
        return out

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return (self.weights(xs, ys) * xs).sum(-1)


@LEARNERS.register
class GDConstruction(ReferenceLearner):
    """Von Oswald et al.'s construction: ``steps`` linear self-attention layers whose weights implement
    one gradient-descent step each with step size ``lr`` (:func:`iclab.models.lsa.gd_construction`), run
    as a network, every prefix as one full-context sequence. Equal to ``gd(steps, lr)``; the tests check it."""

    name = "gd_lsa"

    def __init__(self, lr: float = 0.1, steps: int = 1) -> None:
        super().__init__()
        check(isinstance(lr, (int, float)) and lr > 0, f"gd_lsa: lr must be positive, got {lr!r}")
        check(isinstance(steps, int) and steps >= 1, f"gd_lsa: steps must be a positive integer, got {steps!r}")
        self._set_params(lr=float(lr), steps=steps)

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        from iclab.models.lsa import gd_construction, prefix_predictions

        net = gd_construction(xs.shape[2], self.lr, n_layer=self.steps).to(xs)
        return prefix_predictions(net, xs, ys)
