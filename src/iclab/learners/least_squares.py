"""Minimum-norm least squares on every prefix (the Bayes-optimal predictor for noiseless regression
with a Gaussian prior on w, Garg et al. 2022; Akyürek et al. 2022).

All prefixes are solved in one pass over the prompt by Greville's recursion for the pseudo-inverse,
vectorised over prompts. After the examples ``x_1..x_{i-1}`` it holds

- ``w``: the minimum-norm least-squares solution on the prefix,
- ``M = (X^T X)^+``: the pseudo-inverse of the prefix Gram matrix,
- ``Q``: the projector onto the orthogonal complement of the span of the prefix inputs.

A new example ``x`` either brings a new direction ``c = Q x != 0`` (the system stays consistent and
``w`` moves along ``c``) or lies in the span (a rank-one Sherman–Morrison update of ``M``). Each step
costs O(d^2) per prompt, against O(i d^2) for a fresh solve per prefix, and handles rank-deficient
prefixes (fewer examples than dimensions, inactive curriculum coordinates, subspace shifts) exactly.
"""

from __future__ import annotations

from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner, check

NEW_DIRECTION_RTOL = 1e-9  # |Q x|^2 / |x|^2 below this counts as "x lies in the span already"


def min_norm_prefix_solutions(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``W[:, i]`` = minimum-norm least-squares solution on ``(xs[:, :i], ys[:, :i])``; shape (B, N, d)."""
    if xs.shape[1] > xs.shape[2]:
        fast = _full_rank_solutions(xs, ys)
        if fast is not None:
            return fast
    return _greville_solutions(xs, ys)


def _first_inputs_factor(xs: torch.Tensor, ys: torch.Tensor):
    """``(L, Q, z)`` for the first ``d`` inputs of every prompt: ``X_d X_d^T = L L^T``, ``Q = L^{-1} X_d`` (orthonormal
    rows: Gram–Schmidt) and ``z = L^{-1} y_d``; None when some prompt's first ``d`` inputs are (nearly) dependent."""
    d = xs.shape[2]
    xd, yd = xs[:, :d], ys[:, :d]  # (B, d, d), (B, d)
    chol, info = torch.linalg.cholesky_ex(xd @ xd.transpose(1, 2))
    if bool(info.any()):
        return None
    # the squared diagonal of L is |component of x_i outside span(x_1..x_{i-1})|^2: Greville's test
    new = torch.diagonal(chol, dim1=-2, dim2=-1) ** 2 > NEW_DIRECTION_RTOL * (xd * xd).sum(-1)
    if not bool(new.all()):
        return None
    q = torch.linalg.solve_triangular(chol, xd, upper=False)  # (B, d, d)
    return chol, q, torch.linalg.solve_triangular(chol, yd.unsqueeze(-1), upper=False)  # z: (B, d, 1)


def _full_rank_solutions(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor | None:
    """The common case in one shot: when every prompt's first ``d`` inputs are linearly independent,
    the first ``d`` prefixes come from one Cholesky factor ``X_d X_d^T = L L^T`` (Gram–Schmidt: the
    rows of ``Q = L^{-1} X_d`` are orthonormal and ``w_i = sum_{j<i} z_j q_j`` with ``z = L^{-1} y``),
    and the rest from recursive least squares started at ``M = (X_d^T X_d)^{-1}``.
    Returns None when some prompt is (nearly) rank-deficient; Greville's recursion handles those.
    """
    b, n, d = xs.shape
    factor = _first_inputs_factor(xs, ys)
    if factor is None:
        return None
    chol, q, z = factor
    out = xs.new_zeros(b, n, d)
    out[:, 1 : d + 1] = torch.cumsum(z * q, dim=1)
    v = torch.linalg.solve_triangular(chol.transpose(1, 2), q, upper=True)
    m = v.transpose(1, 2) @ v  # (X_d^T X_d)^{-1}
    w = out[:, d].clone()
    for i in range(d, n - 1):
        x, y = xs[:, i], ys[:, i]
        u = torch.bmm(m, x.unsqueeze(-1)).squeeze(-1)
        e = 1 / (1 + (u * x).sum(-1))
        w = w + u * ((y - (x * w).sum(-1)) * e).unsqueeze(-1)
        m.baddbmm_((u * e.unsqueeze(-1)).unsqueeze(-1), u.unsqueeze(-2), alpha=-1)
        out[:, i + 1] = w
    return out


def _greville_solutions(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    b, n, d = xs.shape
    w = xs.new_zeros(b, d)
    m = xs.new_zeros(b, d, d)  # (X^T X)^+
    q = torch.eye(d, dtype=xs.dtype, device=xs.device).expand(b, d, d).clone()  # projector onto span(X)^perp
    out = xs.new_zeros(b, n, d)
    spanning = False  # once every prompt's inputs span R^d, q is 0 and only case 2 remains
    for i in range(n):
        out[:, i] = w
        if i == n - 1:
            break
        x, y = xs[:, i], ys[:, i]  # (B, d), (B,)
        u = torch.bmm(m, x.unsqueeze(-1)).squeeze(-1)  # M x
        s = (u * x).sum(-1)  # x^T M x
        resid = y - (x * w).sum(-1)
        if spanning:
            e = 1 / (1 + s)
            w = w + u * (resid * e).unsqueeze(-1)
            m = torch.baddbmm(m, (u * e.unsqueeze(-1)).unsqueeze(-1), u.unsqueeze(-2), alpha=-1)
            continue
        c = torch.bmm(q, x.unsqueeze(-1)).squeeze(-1)  # component of x outside the span
        cc = (c * c).sum(-1)
        new = cc > NEW_DIRECTION_RTOL * (x * x).sum(-1)  # (B,)
        newf = new.to(xs.dtype)
        # case 1 (new direction): M' = M - (c u^T + u c^T)/cc + (1 + s) c c^T / cc^2, Q' = Q - c c^T / cc,
        #                          w' = w + c resid / cc (the prefix stays exactly interpolated)
        # case 2 (in the span):    M' = M - u u^T / (1 + s), w' = w + u resid / (1 + s)
        a = newf / torch.where(new, cc, torch.ones_like(cc))
        bb = a * a * (1 + s)
        e = (1 - newf) / (1 + s)
        w = w + (c * a.unsqueeze(-1) + u * e.unsqueeze(-1)) * resid.unsqueeze(-1)
        basis = torch.stack([c, u], dim=-1)  # (B, d, 2)
        coef = torch.stack([torch.stack([bb, -a], -1), torch.stack([-a, -e], -1)], -2)  # (B, 2, 2)
        m = torch.baddbmm(m, torch.bmm(basis, coef), basis.transpose(-1, -2))
        q = torch.baddbmm(q, (c * a.unsqueeze(-1)).unsqueeze(-1), c.unsqueeze(-2), alpha=-1)
        spanning = (
            not bool(new.any()) and i + 1 >= d and bool((torch.diagonal(q, dim1=-2, dim2=-1).sum(-1) < 0.5).all())
        )
    return out


@LEARNERS.register
class LeastSquares(ReferenceLearner):
    """Minimum-norm least squares fitted to the prefix; predicts 0 with no examples.

    ``y_hat_i = x_i . pinv(X_{<i}) y_{<i}``. With fewer examples than dimensions it interpolates the
    prefix with the smallest-norm w (numpy's ``lstsq`` answer).
    """

    name = "least_squares"

    def __init__(self) -> None:
        super().__init__()

    def weights(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:  # (B, N, d)
        return min_norm_prefix_solutions(xs, ys)

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        if xs.shape[1] > xs.shape[2]:
            fast = _full_rank_predictions(xs, ys)
            if fast is not None:
                return fast
        return (self.weights(xs, ys) * xs).sum(-1)


def _full_rank_predictions(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor | None:
    """Every prefix's prediction without the weights, when every prompt's first ``d`` inputs are independent
    (else None). Up to ``d`` examples, Gram–Schmidt as in :func:`_full_rank_solutions`: ``y_hat_i = sum_{j<i}
    (x_i . q_j) z_j``. After them, least squares on the prefix is the posterior mean under the prior
    ``w ~ N(w_d, M)`` (``w_d`` the interpolant of the first ``d``, ``M = (X_d^T X_d)^{-1}``) with unit noise, so the
    predictions are the Gaussian conditional means of the later labels: with ``K = Z M Z^T + I = L L^T`` over the
    later inputs ``Z`` and ``z = L^{-1} (y - Z w_d)``, ``y_hat_i = x_i . w_d + sum_{j<i} L_ij z_j`` (one Cholesky
    factor for all of them, as ridge's predictions)."""
    b, n, d = xs.shape
    factor = _first_inputs_factor(xs, ys)
    if factor is None:
        return None
    chol, q, z = factor
    first = (torch.tril(xs[:, :d] @ q.transpose(1, 2), diagonal=-1) @ z).squeeze(-1)  # (B, d): predictions 0 .. d-1
    w_d = (z * q).sum(1)  # (B, d)
    v = torch.linalg.solve_triangular(chol.transpose(1, 2), q, upper=True)  # M = v^T v
    later = xs[:, d:]  # (B, n - d, d)
    a = later @ v.transpose(1, 2)
    kernel = a @ a.transpose(1, 2) + torch.eye(n - d, dtype=xs.dtype, device=xs.device)
    chol_k = torch.linalg.cholesky(kernel)
    mean = (later @ w_d.unsqueeze(-1)).squeeze(-1)  # (B, n - d)
    z_k = torch.linalg.solve_triangular(chol_k, (ys[:, d:] - mean).unsqueeze(-1), upper=False)
    return torch.cat([first, mean + (torch.tril(chol_k, diagonal=-1) @ z_k).squeeze(-1)], dim=1)


def ridge_prefix_solutions(xs: torch.Tensor, ys: torch.Tensor, lam: float) -> torch.Tensor:
    """``W[:, i] = (X^T X + lam I)^{-1} X^T y`` on the prefix ``:i``, by recursive least squares."""
    b, n, d = xs.shape
    p = torch.eye(d, dtype=xs.dtype, device=xs.device).expand(b, d, d) / lam  # (X^T X + lam I)^{-1}
    p = p.clone()
    w = xs.new_zeros(b, d)
    out = xs.new_zeros(b, n, d)
    for i in range(n):
        out[:, i] = w
        if i == n - 1:
            break
        x, y = xs[:, i], ys[:, i]
        u = torch.bmm(p, x.unsqueeze(-1)).squeeze(-1)  # P x
        e = 1 / (1 + (u * x).sum(-1))
        w = w + u * ((y - (x * w).sum(-1)) * e).unsqueeze(-1)
        p.baddbmm_((u * e.unsqueeze(-1)).unsqueeze(-1), u.unsqueeze(-2), alpha=-1)  # Sherman-Morrison
    return out


@LEARNERS.register
class Ridge(ReferenceLearner):
    """Ridge regression on the prefix: ``w = argmin |X w - y|^2 + lam |w|^2``.

    With a N(0, I) prior on w and label noise of variance ``sigma^2``, ``lam = sigma^2`` is the
    posterior mean, i.e. Bayes-optimal (Akyürek et al. 2022; Raventós et al. 2023).
    """

    name = "ridge"

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        check(isinstance(lam, (int, float)) and lam > 0, f"ridge: lam must be positive, got {lam!r}")
        self._set_params(lam=float(lam))

    def weights(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:  # (B, N, d)
        return ridge_prefix_solutions(xs, ys, self.lam)

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        # All prefixes from one Cholesky factor: with S = X X^T + lam I = L L^T and z = L^{-1} y, the
        # ridge prediction for point i from points j < i is sum_{j<i} L_ij z_j (the Gaussian conditional
        # mean of y_i given y_{<i}, whose covariance is S off the diagonal).
        n = xs.shape[1]
        gram = xs @ xs.transpose(1, 2) + self.lam * torch.eye(n, dtype=xs.dtype, device=xs.device)  # (B, N, N)
        chol = torch.linalg.cholesky(gram)
        z = torch.linalg.solve_triangular(chol, ys.unsqueeze(-1), upper=False)  # (B, N, 1)
        return (torch.tril(chol, diagonal=-1) @ z).squeeze(-1)
