"""Minimum L-infinity-norm interpolation (Panwar et al. 2023's reference for sign-vector regression,
whose weights are corners of the cube ``{-1, +1}^d``).

On a prefix of ``i`` examples: ``min |w|_inf subject to X w = y`` while the system is underdetermined,
and least squares once the prefix determines ``w`` (``i >= d`` with full column rank). Each
underdetermined problem is a linear programme, ``min t s.t. X w = y, -t <= w_j <= t``, solved with
scipy's HiGHS one problem at a time: this learner is exact but not batched.
"""

from __future__ import annotations

import numpy as np

from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner
from iclab.learners.least_squares import min_norm_prefix_solutions


def linf_min_solution(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``argmin |w|_inf s.t. x w = y`` for one problem; the least-squares answer if infeasible."""
    from scipy.optimize import linprog

    i, d = x.shape
    cost = np.zeros(d + 1)
    cost[-1] = 1.0  # variables (w, t): minimise t
    eye = np.eye(d)
    a_ub = np.block([[eye, -np.ones((d, 1))], [-eye, -np.ones((d, 1))]])  # w - t <= 0, -w - t <= 0
    a_eq = np.hstack([x, np.zeros((i, 1))])
    res = linprog(
        cost,
        A_ub=a_ub,
        b_ub=np.zeros(2 * d),
        A_eq=a_eq,
        b_eq=y,
        bounds=[(None, None)] * d + [(0, None)],
        method="highs",
    )
    if res.status != 0:
        return np.linalg.lstsq(x, y, rcond=None)[0]
    return res.x[:d]


@LEARNERS.register
class LinfMin(ReferenceLearner):
    """Minimum L-infinity-norm interpolation of the prefix; least squares once the prefix determines w."""

    name = "linf_min"

    def __init__(self) -> None:
        super().__init__()

    def weights(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:  # (B, N, d)
        w = min_norm_prefix_solutions(xs, ys)
        x, y = xs.cpu().numpy(), ys.cpu().numpy()
        b, n, d = x.shape
        for p in range(b):
            for i in range(1, n):
                if np.linalg.matrix_rank(x[p, :i]) < d:
                    w[p, i] = torch.from_numpy(linf_min_solution(x[p, :i], y[p, :i])).to(w)
        return w

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return (self.weights(xs, ys) * xs).sum(-1)
