"""Minimum nuclear-norm interpolation (Panwar et al. 2023's reference for low-rank regression, where
``x`` and ``w`` are ``m x m`` matrices flattened and ``y = <w, x>``).

On a prefix of ``i`` examples: ``min |W|_* subject to <X_j, W> = y_j`` while the examples do not determine
``W``, least squares once they do. Solved for every (prompt, prefix) problem at once by ADMM: singular
value thresholding of ``W`` alternates with projection onto the affine set of interpolants (through a
per-problem pseudo-inverse computed once), until each problem's primal and dual residuals are below
``tol`` (relative); converged problems leave the working set.
"""

from __future__ import annotations

import math

from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner, check
from iclab.learners.least_squares import min_norm_prefix_solutions


def nuclear_min_solutions(
    xs: torch.Tensor, ys: torch.Tensor, rho: float = 1.0, tol: float = 1e-7, max_iter: int = 20_000
) -> torch.Tensor:
    """``W[:, i]`` (flattened) for every prefix ``i``; least squares where the prefix determines W."""
    b, n, d = xs.shape
    m = math.isqrt(d)
    out = min_norm_prefix_solutions(xs, ys)  # (B, N, d): exact where W is determined
    todo = [(p, i) for i in range(1, min(n, d)) for p in range(b)]  # fewer examples than entries
    if not todo:
        return out
    rows = torch.arange(n, device=xs.device)
    prompt = torch.tensor([p for p, _ in todo], device=xs.device)
    count = torch.tensor([i for _, i in todo], device=xs.device)
    keep = (rows.unsqueeze(0) < count.unsqueeze(1)).to(xs.dtype)  # (P, N) the prefix's rows
    a = xs[prompt] * keep.unsqueeze(-1)  # (P, N, d), later rows zeroed: the same affine set
    y = ys[prompt] * keep
    a_pinv = torch.linalg.pinv(a)  # (P, d, N)

    def project(v, a, a_pinv, y):  # onto {z : a z = y}
        resid = torch.einsum("pnd,pd->pn", a, v) - y
        return v - torch.einsum("pdn,pn->pd", a_pinv, resid)

    z = project(torch.zeros(len(todo), d, dtype=xs.dtype, device=xs.device), a, a_pinv, y)
    u = torch.zeros_like(z)  # scaled dual variable
    r = torch.full((len(todo),), rho, dtype=xs.dtype, device=xs.device)  # per-problem penalty
    result = z.clone()
    active = torch.arange(len(todo), device=xs.device)
    for step in range(max_iter):
        mat = (z - u).view(-1, m, m)
        uu, s, vh = torch.linalg.svd(mat)
        shrunk = torch.clamp(s - (1.0 / r).unsqueeze(-1), min=0)
        w = (uu * shrunk.unsqueeze(-2) @ vh).reshape(-1, d)  # prox of |.|_* / r
        z_new = project(w + u, a, a_pinv, y)
        u = u + w - z_new
        primal = (w - z_new).norm(dim=-1)
        dual = r * (z_new - z).norm(dim=-1)
        z = z_new
        scale = 1 + z.norm(dim=-1)
        done = (primal < tol * scale) & (dual < tol * scale)
        if step % 10 == 9:  # residual balancing (Boyd et al. 2011, 3.4.1); the scaled dual rescales with r
            up, down = primal > 10 * dual, dual > 10 * primal
            factor = torch.where(up, 2.0, torch.where(down, 0.5, 1.0)).to(r)
            r, u = r * factor, u / factor.unsqueeze(-1)
        if bool(done.any()):  # converged problems leave the working set
            result[active[done]] = z[done]
            keep = ~done
            active, z, u, r = active[keep], z[keep], u[keep], r[keep]
            a, a_pinv, y = a[keep], a_pinv[keep], y[keep]
            if len(active) == 0:
                break
    result[active] = z
    z = result
    out[prompt, count] = z
    return out


@LEARNERS.register
class NuclearMin(ReferenceLearner):
    """Minimum nuclear-norm interpolation of the prefix (inputs and weights are square matrices)."""

    name = "nuclear_min"

    def __init__(self, rho: float = 1.0) -> None:
        super().__init__()
        check(isinstance(rho, (int, float)) and rho > 0, f"nuclear_min: rho must be positive, got {rho!r}")
        self._set_params(rho=float(rho))

    @classmethod
    def applies_to(cls, task) -> str | None:
        m = math.isqrt(task.n_dims)
        return None if m * m == task.n_dims else "inputs are not square matrices (n_dims must be a square)"

    def weights(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:  # (B, N, d)
        return nuclear_min_solutions(xs, ys, rho=self.rho)

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return (self.weights(xs, ys) * xs).sum(-1)
