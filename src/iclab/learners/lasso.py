"""Lasso on every prefix, solved for all prompts and prefix lengths at once (Garg et al. 2022's reference
for sparse regression).

Objective, as scikit-learn's ``Lasso(fit_intercept=False)`` on the ``i`` examples of the prefix:
``(1 / (2 i)) |y - X w|^2 + alpha |w|_1``. Cyclic coordinate descent on the prefix Gram matrices
``X^T X / i`` (a prefix sum over the prompt), vectorised over every (prompt, prefix) problem, finds each
problem's support and signs; the KKT system on that support is then solved exactly and checked, and the
certified problems leave the working set, so the answers are exact optima, not a descent iterate.
"""

from __future__ import annotations

import torch

from iclab.learners.base import ReferenceLearner, check, exclusive_cumsum


def _polish(g, c, w, alpha):
    """Solve the KKT system on each problem's current support and sign pattern, and say where the
    result satisfies the Lasso optimality conditions (then it is the exact solution)."""
    d = w.shape[-1]
    support = w != 0
    sign = torch.sign(w)
    m = support.to(w.dtype)
    eye = torch.eye(d, dtype=w.dtype, device=w.device)
    system = g * m.unsqueeze(-1) * m.unsqueeze(-2) + eye * (1 - m).unsqueeze(-1)
    chol, info = torch.linalg.cholesky_ex(system)
    rhs = ((c - alpha * sign) * m).unsqueeze(-1)
    sol = torch.cholesky_solve(rhs, chol).squeeze(-1) * m
    grad = c - torch.bmm(g, sol.unsqueeze(-1)).squeeze(-1)  # X^T (y - X w) / i
    slack = 1e-9 * (1 + alpha)
    # a usable solve: the factorisation exists and no pivot on the support is (numerically) zero, which
    # happens when the support is larger than the number of examples
    pivots = torch.diagonal(chol, dim1=-2, dim2=-1)
    scale = torch.diagonal(g, dim1=-2, dim2=-1).amax(-1, keepdim=True).clamp_min(1e-300).sqrt()
    well_posed = torch.where(support, pivots > 1e-9 * scale, True).all(-1)
    solved = (info == 0) & well_posed & torch.isfinite(sol).all(-1)
    return sol, solved & torch.where(support, sol * sign > 0, grad.abs() <= alpha + slack).all(-1)


def _finish_with_sklearn(xs, ys, problems, alpha) -> torch.Tensor:
    """The stragglers: scikit-learn's (Cython) coordinate descent at a tight tolerance, one problem at a time."""
    import warnings

    from sklearn.linear_model import Lasso as SkLasso

    n = xs.shape[1]
    x, y = xs.cpu().numpy(), ys.cpu().numpy()
    out = torch.zeros(len(problems), xs.shape[2], dtype=xs.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row, p in enumerate(problems.tolist()):
            b, i = divmod(p, n)
            fit = SkLasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=1_000_000).fit(x[b, :i], y[b, :i])
            out[row] = torch.from_numpy(fit.coef_)
    return out.to(xs.device)


def lasso_prefix_solutions(xs: torch.Tensor, ys: torch.Tensor, alpha: float, sweeps_per_round: int = 3,
                           rounds: int = 60) -> torch.Tensor:
    """``W[:, i]`` = Lasso solution on the first ``i`` examples; ``W[:, 0] = 0``. Shape (B, N, d).

    Rounds of coordinate descent find each problem's support and signs; after each, the KKT system on
    that support is solved exactly and checked, and certified problems leave the working set. Problems
    still uncertified after ``rounds`` rounds (a few percent: prefixes shorter than d with a small alpha,
    where coordinate descent crawls) are finished one by one by scikit-learn at a tight tolerance.
    """
    b, n, d = xs.shape
    counts = torch.arange(n, dtype=xs.dtype, device=xs.device).clamp_min(1).view(1, n, 1)
    gram = exclusive_cumsum(xs.unsqueeze(-1) * xs.unsqueeze(-2), dim=1) / counts.unsqueeze(-1)  # (B, N, d, d)
    corr = exclusive_cumsum(xs * ys.unsqueeze(-1), dim=1) / counts  # (B, N, d)
    gram, corr = gram.reshape(b * n, d, d), corr.reshape(b * n, d)
    w = torch.zeros_like(corr)
    # w = 0 is optimal when |X^T y / i| <= alpha everywhere (always so for the empty prefix)
    active = torch.arange(b * n, device=xs.device)[corr.abs().amax(-1) > alpha]
    g, c = gram[active], corr[active]
    wa = torch.zeros_like(c)
    q = torch.zeros_like(c)  # G w
    for _ in range(rounds):
        if len(active) == 0:
            break
        diag = torch.diagonal(g, dim1=-2, dim2=-1)
        for _ in range(sweeps_per_round):
            for j in range(d):
                gjj = diag[:, j]
                rho = c[:, j] - q[:, j] + gjj * wa[:, j]
                new = torch.sign(rho) * torch.clamp(rho.abs() - alpha, min=0) / torch.where(gjj > 0, gjj, 1)
                new = torch.where(gjj > 0, new, torch.zeros_like(new))
                q += g[:, j] * (new - wa[:, j]).unsqueeze(-1)  # row j = column j: G is symmetric
                wa[:, j] = new
        sol, ok = _polish(g, c, wa, alpha)
        # a Lasso solution has at most i nonzeros on i examples (inputs in general position); where the
        # iterate still has more, coordinate descent is slowly shrinking the extras: try the i largest
        samples = (active % n).unsqueeze(-1)  # the prefix length of each problem
        crowded = ~ok & ((wa != 0).sum(-1, keepdim=True) > samples).squeeze(-1)
        if bool(crowded.any()):
            rank = wa[crowded].abs().argsort(-1, descending=True).argsort(-1)  # 0 = largest
            trial = torch.where(rank < samples[crowded], wa[crowded], torch.zeros_like(wa[crowded]))
            sol2, ok2 = _polish(g[crowded], c[crowded], trial, alpha)
            sol[crowded], ok[crowded] = sol2, ok2
        w[active[ok]] = sol[ok]
        keep = ~ok
        active, g, c, wa, q = active[keep], g[keep], c[keep], wa[keep], q[keep]
    if len(active):
        w[active] = _finish_with_sklearn(xs, ys, active, alpha)
    return w.view(b, n, d)


class Lasso(ReferenceLearner):
    """L1-regularised least squares on the prefix (scikit-learn's objective and ``alpha``)."""

    name = "lasso"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        check(isinstance(alpha, (int, float)) and alpha > 0, f"lasso: alpha must be positive, got {alpha!r}")
        self._set_params(alpha=float(alpha))

    def weights(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:  # (B, N, d)
        return lasso_prefix_solutions(xs, ys, self.alpha)

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return (self.weights(xs, ys) * xs).sum(-1)
