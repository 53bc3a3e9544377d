"""Lasso on every prefix, solved for all prompts and prefix lengths at once (Garg et al. 2022's reference
for sparse regression).

Objective, as scikit-learn's ``Lasso(fit_intercept=False)`` on the ``i`` examples of the prefix:
``(1 / (2 i)) |y - X w|^2 + alpha |w|_1``. Every (prompt, prefix) problem is written in its sufficient
statistics ``X^T X / i`` and ``X^T y / i`` (prefix sums over the prompt) and follows its exact Lasso path
(homotopy / LARS-Lasso) in one vectorised loop; the end point's support and signs are re-solved and the
optimality conditions checked, so the answers are certified optima, not a descent iterate.
"""

from __future__ import annotations

import torch

from iclab.learners.base import ReferenceLearner, check


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


SLOTS = 8  # active-set slots of the fast path: supports of the benchmark's problems rarely exceed it


def _matvec(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (m @ v.unsqueeze(-1)).squeeze(-1)


def _homotopy(g: torch.Tensor, c: torch.Tensor, alpha: float, max_steps: int, slots: int):
    """The Lasso path (LARS with the Lasso modification), followed for every problem at once.

    Each problem is ``min_w 0.5 w^T G w - c^T w + alpha |w|_1``. Starting at ``lam = max |c|`` with
    ``w = 0``, ``lam`` decreases and ``w`` moves linearly, ``dw_A = G_AA^{-1} s_A`` per unit of ``lam``,
    until a variable joins the active set (its correlation reaches ``lam``) or leaves it (its weight
    crosses zero), then on from there until ``lam = alpha``.

    The active set lives in ``slots`` slots: the inverse of ``G_AA`` is ``slots x slots`` (identity on the
    free slots), kept up to date by one rank-one update per step (a join adds a row and column through
    its Schur complement, a leave removes one), and only the active columns of ``G`` (``d x slots``) are
    read, so with small supports a step touches a fraction of the problem. A problem whose active set
    would outgrow the slots stops there, unfinished (``slots = d`` never does). Finished problems leave
    the batch. Returns (w, finished).
    """
    n_prob, d = c.shape
    dev, dt = c.device, c.dtype
    rows = torch.arange(n_prob, device=dev)
    w_out = torch.zeros_like(c)
    finished_out = torch.zeros(n_prob, dtype=torch.bool, device=dev)
    diag = torch.diagonal(g, dim1=-2, dim2=-1)  # G_jj, for the Schur complements
    lam, first = c.abs().max(-1)
    r = c.clone()  # correlations c - G w: lam * sign on the active set, at most lam elsewhere
    active = torch.zeros(n_prob, d, dtype=torch.bool, device=dev)
    active[rows, first] = True
    slot_var = torch.zeros(n_prob, slots, dtype=torch.long, device=dev)  # which variable each slot holds
    slot_var[:, 0] = first
    occ = torch.zeros(n_prob, slots, dtype=torch.bool, device=dev)
    occ[:, 0] = True
    s = torch.zeros(n_prob, slots, dtype=dt, device=dev)  # signs, per slot
    s[:, 0] = torch.sign(c[rows, first])
    w = torch.zeros(n_prob, slots, dtype=dt, device=dev)  # weights, per slot
    inv = torch.eye(slots, dtype=dt, device=dev).repeat(n_prob, 1, 1)
    inv[:, 0, 0] = 1 / diag[rows, first]
    ga = torch.zeros(n_prob, d, slots, dtype=dt, device=dev)  # G[:, active], per slot
    ga[:, :, 0] = g[rows, :, first]
    barred = torch.zeros_like(active)  # a variable that just left may not rejoin at once
    idx = rows
    inf = float("inf")
    for _ in range(max_steps):
        if len(idx) == 0:
            break
        here = torch.arange(len(idx), device=dev)
        v = _matvec(inv, s)  # dw per unit step, per slot (0 on free slots)
        a = _matvec(ga, v)  # how fast each correlation falls per unit step, (n, d)
        l = lam.unsqueeze(-1)
        tiny = 1e-12 * (1 + l)
        # |r_j - t a_j| = lam - t, for t > 0, for inactive j
        up = torch.where(1 - a > 1e-12, (l - r) / (1 - a), inf)
        down = torch.where(1 + a > 1e-12, (l + r) / (1 + a), inf)
        t_join = torch.minimum(torch.where(up > tiny, up, inf), torch.where(down > tiny, down, inf))
        t_join, joiner = torch.where(active | barred, inf, t_join).min(-1)
        t_leave, leaver = torch.where(occ & (w * v < 0), -w / v, inf).min(-1)
        t_end = lam - alpha
        t = torch.minimum(torch.minimum(t_join, t_leave), t_end)
        w = w + t.unsqueeze(-1) * v
        r = r - t.unsqueeze(-1) * a
        lam = lam - t
        done = t_end <= t
        join = ~done & (t_join <= t_leave)
        leave = ~done & ~join
        overflow = join & occ.all(-1)
        join = join & ~overflow
        # the slot each problem changes: a free one for a join, the leaver's for a leave
        f = torch.where(join, (~occ).to(torch.int8).argmax(-1), leaver)
        j = joiner
        u = ga[here, j, :] * occ.to(dt)  # G[j, active], in slot coordinates
        b = _matvec(inv, u)
        schur = diag[idx, j] - (u * b).sum(-1)
        row_f = inv[here, f]
        p = torch.where(join.unsqueeze(-1), b, row_f)
        coef = torch.where(join, 1 / schur, torch.where(leave, -1 / row_f[here, f], 0.0))
        inv += coef.view(-1, 1, 1) * p.unsqueeze(-1) * p.unsqueeze(-2)
        jr, jf = here[join], f[join]
        if len(jr):
            col = -b[join] / schur[join].unsqueeze(-1)
            inv[jr, jf, :] = col
            inv[jr, :, jf] = col
            inv[jr, jf, jf] = 1 / schur[join]
            jv = j[join]
            ga[jr, :, jf] = g[idx[jr], :, jv]
            slot_var[jr, jf] = jv
            occ[jr, jf] = True
            s[jr, jf] = torch.sign(r[jr, jv])
            w[jr, jf] = 0
            active[jr, jv] = True
        lr_, lf = here[leave], f[leave]
        barred.zero_()
        if len(lr_):
            lv = slot_var[lr_, lf]
            inv[lr_, lf, :] = 0
            inv[lr_, :, lf] = 0
            inv[lr_, lf, lf] = 1
            ga[lr_, :, lf] = 0
            occ[lr_, lf] = False
            s[lr_, lf] = 0
            w[lr_, lf] = 0
            active[lr_, lv] = False
            barred[lr_, lv] = True
        if bool(done.any()):
            dr = here[done]
            dense = torch.zeros(len(dr), d, dtype=dt, device=dev)
            dense.scatter_add_(1, slot_var[dr], w[dr] * occ[dr].to(dt))  # free slots add 0
            w_out[idx[dr]] = dense
            finished_out[idx[dr]] = True
        stop = done | overflow
        if bool(stop.any()):
            lam = torch.where(stop, alpha, lam)  # a stopped problem takes zero steps from now on
        retired = lam <= alpha
        if 4 * int(retired.sum()) >= len(idx):  # compact only when it pays for the copy
            keep = ~retired
            idx, r, lam, active, slot_var, occ, s, w, inv, ga, barred = (
                idx[keep], r[keep], lam[keep], active[keep], slot_var[keep], occ[keep], s[keep], w[keep],
                inv[keep], ga[keep], barred[keep])
    return w_out, finished_out


def _kkt_holds(g: torch.Tensor, c: torch.Tensor, w: torch.Tensor, alpha: float) -> torch.Tensor:
    """Whether ``w`` satisfies the Lasso optimality conditions (to round-off): the gradient
    ``c - G w`` equals ``alpha sign(w_j)`` on the support and is at most ``alpha`` in size elsewhere."""
    grad = c - torch.bmm(g, w.unsqueeze(-1)).squeeze(-1)
    tol = 1e-9 * (alpha + c.abs().amax(-1, keepdim=True))
    on = w != 0
    return torch.where(on, (grad - alpha * torch.sign(w)).abs() <= tol, grad.abs() <= alpha + tol).all(-1)


def lasso_prefix_solutions(xs: torch.Tensor, ys: torch.Tensor, alpha: float, max_steps: int | None = None,
                           chunk: int = 200) -> torch.Tensor:
    """``W[:, i]`` = Lasso solution on the first ``i`` examples; ``W[:, 0] = 0``. Shape (B, N, d).

    Every (prompt, prefix) problem follows its Lasso path down to ``alpha`` (:func:`_homotopy` with 8 slots,
    then with ``d`` slots for the few whose support grows larger), ``chunk`` prompts at a time (so the
    working set stays in cache), and the end point is checked against the optimality conditions. Where the check fails (round-off drift along a long path), the end point's
    support and signs are re-solved exactly and checked again; the few problems that still fail (ties
    or near-singular supports, which general-position inputs almost never produce) are finished one by
    one by scikit-learn at a tight tolerance.
    """
    dtype = xs.dtype
    xs, ys = xs.to(torch.float64), ys.to(torch.float64)  # the path's event times need double precision
    b, n, d = xs.shape
    max_steps = max_steps or 4 * d + 20
    counts = torch.arange(n, dtype=xs.dtype, device=xs.device).clamp_min(1).view(1, n, 1)
    out = torch.zeros(b * n, d, dtype=xs.dtype, device=xs.device)
    failed = []
    for start in range(0, b, chunk):
        x, y = xs[start:start + chunk], ys[start:start + chunk]
        m = x.shape[0]
        # prefix i's statistics: the sums over positions < i (the first "prefix" is empty)
        stats = torch.zeros(m, n, d, d + 1, dtype=xs.dtype, device=xs.device)
        torch.mul(x[:, :-1].unsqueeze(-1), torch.cat([x, y.unsqueeze(-1)], -1)[:, :-1].unsqueeze(-2), out=stats[:, 1:])
        torch.cumsum(stats, 1, out=stats)  # in place: these are the largest tensors of the solver
        stats = stats.div_(counts.unsqueeze(-1)).view(m * n, d, d + 1)
        gram, corr = stats[..., :d], stats[..., d]
        # w = 0 is optimal when |X^T y / i| <= alpha everywhere (always so for the empty prefix)
        todo = torch.arange(m * n, device=xs.device)[corr.abs().amax(-1) > alpha]
        g, c = gram[todo], corr[todo]
        w, finished = _homotopy(g, c, alpha, max_steps, slots=min(d, SLOTS))
        if not bool(finished.all()):  # supports larger than the slots: again with room for every variable
            rest = ~finished
            w[rest], finished[rest] = _homotopy(g[rest], c[rest], alpha, max_steps, slots=d)
        ok = finished & _kkt_holds(g, c, w, alpha)
        if not bool(ok.all()):
            redo = ~ok
            sol, good = _polish(g[redo], c[redo], w[redo], alpha)
            w[redo] = sol
            ok[redo] = good
        out[start * n + todo[ok]] = w[ok]
        failed.append(start * n + todo[~ok])
    failed = torch.cat(failed)
    if len(failed):
        out[failed] = _finish_with_sklearn(xs, ys, failed, alpha)
    return out.view(b, n, d).to(dtype)


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
