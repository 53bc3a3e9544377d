"""Lasso on every prefix, solved for all prompts and prefix lengths at once (Garg et al. 2022's reference
for sparse regression).

Objective, as scikit-learn's ``Lasso(fit_intercept=False)`` on the ``i`` examples of the prefix:
``(1 / (2 i)) |y - X w|^2 + alpha |w|_1``. Every (prompt, prefix) problem is written in its sufficient
statistics ``X^T X / i`` and ``X^T y / i`` (prefix sums over the prompt) and follows its exact Lasso path
(homotopy / LARS-Lasso) in one vectorised loop; the end point's support and signs are re-solved and the
optimality conditions checked, so the answers are certified optima, not a descent iterate.
"""

from __future__ import annotations

from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner, check


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


SLOTS = (4, 8)  # active-set slots of the first passes, then d: supports of typical problems stay small
STRAGGLERS = 16  # a chunk's last problems (fewer than 1 / STRAGGLERS of it) go on with all chunks' stragglers


def _matvec(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (m @ v.unsqueeze(-1)).squeeze(-1)


def _g_rows(g: torch.Tensor, problems: torch.Tensor, variables: torch.Tensor) -> torch.Tensor:
    """``g[problems, variables]`` (rows of each problem's G), by index_select: faster than advanced indexing."""
    return g.flatten(0, 1).index_select(0, problems * g.shape[1] + variables)


class _Paths:
    """Problems partway along their Lasso paths: one row per problem in every tensor.

    ``rows``: the problem's row in the (G, c) batch; ``lam``: the current regularisation; ``r``: the
    correlations ``c - G w`` (``lam * sign`` on the active set, at most ``lam`` in size elsewhere);
    ``active`` and ``barred`` (the sign a variable that just left had: it may not rejoin at once with that
    sign, a zero-length step, but may with the other) per variable; the active set
    in ``slots`` slots: ``slot_var`` (which variable), ``occ`` (occupied), ``s`` (signs), ``w`` (weights),
    ``inv`` (the inverse of ``G_AA``, identity on free slots), ``ga`` (``G``'s active rows; ``G`` is symmetric).
    """

    FIELDS = ("rows", "lam", "r", "active", "barred", "slot_var", "occ", "s", "w", "inv", "ga")

    def __init__(self, **fields: torch.Tensor) -> None:
        self.__dict__.update(fields)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def slots(self) -> int:
        return self.s.shape[1]

    def take(self, keep: torch.Tensor) -> _Paths:
        return _Paths(**{f: getattr(self, f)[keep] for f in self.FIELDS})

    def widen(self, slots: int) -> _Paths:
        """The same problems with room for ``slots`` active variables."""
        k = self.slots
        if slots <= k:
            return self
        n, d = self.r.shape
        wide = {f: getattr(self, f) for f in ("rows", "lam", "r", "active", "barred")}
        for f in ("slot_var", "occ", "s", "w"):
            t = getattr(self, f)
            wide[f] = torch.cat([t, t.new_zeros(n, slots - k)], 1)
        wide["inv"] = torch.eye(slots, dtype=self.inv.dtype, device=self.inv.device).repeat(n, 1, 1)
        wide["inv"][:, :k, :k] = self.inv
        wide["ga"] = torch.cat([self.ga, self.ga.new_zeros(n, slots - k, d)], 1)
        return _Paths(**wide)

    @staticmethod
    def cat(paths: list[_Paths]) -> _Paths:
        return _Paths(**{f: torch.cat([getattr(p, f) for p in paths]) for f in _Paths.FIELDS})


def _start(g: torch.Tensor, c: torch.Tensor, alpha: float, slots: int):
    """Every problem ``min_w 0.5 w^T G w - c^T w + alpha |w|_1`` at the start of its path: ``lam = max |c|``,
    ``w = 0``, the largest correlation active. Returns (paths, w, finished, optimal): where
    ``max |c| <= alpha``, ``w = 0`` is optimal and the problem is finished before the first step; ``G`` is
    never copied."""
    d = c.shape[-1]
    dev, dt = c.device, c.dtype
    lam, first = c.abs().max(-1)
    finished = lam <= alpha
    rows = torch.nonzero(~finished).squeeze(-1)
    lam, first = lam[rows], first[rows]
    n = len(rows)
    here = torch.arange(n, device=dev)
    r = c[rows]
    active = torch.zeros(n, d, dtype=torch.bool, device=dev)
    active[here, first] = True
    slot_var = torch.zeros(n, slots, dtype=torch.long, device=dev)
    slot_var[:, 0] = first
    occ = torch.zeros(n, slots, dtype=torch.bool, device=dev)
    occ[:, 0] = True
    s = torch.zeros(n, slots, dtype=dt, device=dev)
    s[:, 0] = torch.sign(r[here, first])
    inv = torch.eye(slots, dtype=dt, device=dev).repeat(n, 1, 1)
    ga = torch.zeros(n, slots, d, dtype=dt, device=dev)
    ga[:, 0] = _g_rows(g, rows, first)
    inv[:, 0, 0] = 1 / ga[here, 0, first]
    barred = torch.zeros(n, d, dtype=torch.int8, device=dev)
    paths = _Paths(
        rows=rows,
        lam=lam,
        r=r,
        active=active,
        barred=barred,
        slot_var=slot_var,
        occ=occ,
        s=s,
        w=torch.zeros(n, slots, dtype=dt, device=dev),
        inv=inv,
        ga=ga,
    )
    return paths, torch.zeros_like(c), finished, finished.clone()


def _advance(
    p: _Paths,
    g: torch.Tensor,
    c: torch.Tensor,
    alpha: float,
    max_steps: int,
    w_out: torch.Tensor,
    finished_out: torch.Tensor,
    optimal_out: torch.Tensor,
    min_batch: int = 0,
) -> tuple[_Paths, list[_Paths]]:
    """Follow the paths (LARS with the Lasso modification) down to ``lam = alpha``, all problems at once.

    ``lam`` decreases and ``w`` moves linearly, ``dw_A = G_AA^{-1} s_A`` per unit of ``lam``, until a
    variable joins the active set (its correlation reaches ``lam``) or leaves it (its weight crosses zero),
    then on from there. The inverse of ``G_AA`` is kept up to date by one rank-one update per step (a join
    adds a row and column through its Schur complement, a leave removes one), and only the active rows of
    ``G`` (``slots x d``) are read, so with small supports a step touches a fraction of the problem.

    Finished problems write ``w_out``, ``finished_out`` and ``optimal_out`` (indexed by ``rows``; whether
    the end point satisfies the optimality conditions, checked with ``c - G w`` recomputed from ``G``'s
    rows on the support) and leave the batch. A
    problem whose next event is a join with every slot taken is set aside, before that step, in the
    returned list (to go on with more slots). Stops early, returning the problems still on their way,
    when fewer than ``min_batch`` remain (so that the stragglers of several batches can go on together).
    """
    d = g.shape[-1]
    dev, dt = p.r.device, p.r.dtype
    diag = torch.diagonal(g, dim1=-2, dim2=-1)
    spilled = []
    inf = float("inf")
    for _ in range(max_steps):
        if len(p) < max(min_batch, 1):
            break
        idx, lam, r, active, slot_var, occ, s, w, inv, ga = (
            p.rows,
            p.lam,
            p.r,
            p.active,
            p.slot_var,
            p.occ,
            p.s,
            p.w,
            p.inv,
            p.ga,
        )
        here = torch.arange(len(idx), device=dev)
        v = _matvec(inv, s)  # dw per unit step, per slot (0 on free slots)
        a = (v.unsqueeze(1) @ ga).squeeze(1)  # how fast each correlation falls per unit step, (n, d)
        lam_j = lam.unsqueeze(-1)
        tiny = 1e-12 * (1 + lam)
        # A free variable's correlation reaches the boundary, |r_j - t a_j| = lam - t, at
        # t = (lam - r_j) / (1 - a_j) or (lam + r_j) / (1 + a_j); the next join is the smallest such t > tiny.
        # Found without `where` over (problems x d) (slow on CPU: branchy): the smallest positive t - tiny is
        # the largest positive 1 / (t - tiny); blocked variables score 0 and undefined ratios (0 / 0) -1. A
        # direction whose denominator is <= 0 gives t <= 0 (r_j is within lam), or a t beyond lam, where the
        # end wins. The first joins with sign +1, the second with -1.
        inactive, tiny_j = ~active, tiny.unsqueeze(-1)
        up = (inactive & (p.barred <= 0)).to(dt) / ((lam_j - r) / (1 - a) - tiny_j)
        down = (inactive & (p.barred >= 0)).to(dt) / ((lam_j + r) / (1 + a) - tiny_j)
        score, joiner = torch.nan_to_num(torch.fmax(up, down), nan=-1.0).max(-1)
        t_join = torch.where(score > 0, tiny + 1 / score, inf)
        # a weight crosses zero at t = -w / v > 0: the largest positive -v w / w^2 (free slots and weights
        # that just joined: 0 / 0, score -1)
        score, leaver = torch.nan_to_num(-(v * w) / (w * w), nan=-1.0).max(-1)
        t_leave = torch.where(score > 0, 1 / score, inf)
        t_end = lam - alpha
        t = torch.minimum(torch.minimum(t_join, t_leave), t_end)
        done = t_end <= t
        join = ~done & (t_join <= t_leave)
        overflow = join & occ.all(-1)  # set aside before this step: it is taken again with more slots
        t = torch.where(overflow, 0.0, t)
        join = join & ~overflow
        leave = ~done & ~join & ~overflow
        w = w + t.unsqueeze(-1) * v
        r = r - t.unsqueeze(-1) * a
        lam = lam - t
        if bool(overflow.any()):
            spilled.append(
                _Paths(
                    rows=idx,
                    lam=lam,
                    r=r,
                    active=active,
                    barred=p.barred,
                    slot_var=slot_var,
                    occ=occ,
                    s=s,
                    w=w,
                    inv=inv,
                    ga=ga,
                ).take(overflow)
            )
        # the slot each problem changes: a free one for a join, the leaver's for a leave
        f = torch.where(join, (~occ).to(torch.int8).argmax(-1), leaver)
        j = joiner
        u = ga[here, :, j] * occ.to(dt)  # G[j, active], in slot coordinates
        b = _matvec(inv, u)
        schur = diag[idx, j] - (u * b).sum(-1)
        row_f = inv[here, f]
        q = torch.where(join.unsqueeze(-1), b, row_f)
        coef = torch.where(join, 1 / schur, torch.where(leave, -1 / row_f[here, f], 0.0))
        inv.addcmul_((coef.unsqueeze(-1) * q).unsqueeze(-1), q.unsqueeze(-2))
        jr, jf = here[join], f[join]
        if len(jr):
            col = -b[join] / schur[join].unsqueeze(-1)
            inv[jr, jf, :] = col
            inv[jr, :, jf] = col
            inv[jr, jf, jf] = 1 / schur[join]
            jv = j[join]
            ga[jr, jf] = _g_rows(g, idx[jr], jv)
            slot_var[jr, jf] = jv
            occ[jr, jf] = True
            s[jr, jf] = torch.sign(r[jr, jv])
            w[jr, jf] = 0
            active[jr, jv] = True
        lr_, lf = here[leave], f[leave]
        barred = torch.zeros_like(p.barred)
        if len(lr_):
            lv = slot_var[lr_, lf]
            old_sign = s[lr_, lf].to(torch.int8)
            inv[lr_, lf, :] = 0
            inv[lr_, :, lf] = 0
            inv[lr_, lf, lf] = 1
            ga[lr_, lf] = 0
            occ[lr_, lf] = False
            s[lr_, lf] = 0
            w[lr_, lf] = 0
            active[lr_, lv] = False
            barred[lr_, lv] = old_sign
        if bool(done.any()):
            dr = here[done]
            dense = torch.zeros(len(dr), d, dtype=dt, device=dev)
            dense.scatter_add_(1, slot_var[dr], w[dr] * occ[dr].to(dt))  # free slots add 0
            rows = idx[dr]
            w_out[rows] = dense
            finished_out[rows] = True
            grad = c[rows] - (w[dr].unsqueeze(1) @ ga[dr]).squeeze(1)  # c - G w: G's rows on the support
            optimal_out[rows] = _kkt_holds(grad, c[rows], dense, alpha)
        stop = done | overflow
        if bool(stop.any()):
            lam = torch.where(stop, alpha, lam)  # a stopped problem takes zero steps from now on
        p = _Paths(
            rows=idx, lam=lam, r=r, active=active, barred=barred, slot_var=slot_var, occ=occ, s=s, w=w, inv=inv, ga=ga
        )
        retired = lam <= alpha
        if 4 * int(retired.sum()) >= len(idx):  # compact only when it pays for the copy
            p = p.take(~retired)
    return p.take(p.lam > alpha), spilled


def _homotopy(g: torch.Tensor, c: torch.Tensor, alpha: float, max_steps: int, slots: int):
    """Every problem's exact Lasso solution with at most ``slots`` active variables along its path.
    Returns (w, finished); a problem whose support would outgrow the slots is left unfinished
    (``slots = d`` never is)."""
    paths, w, finished, optimal = _start(g, c, alpha, slots)
    _advance(paths, g, c, alpha, max_steps, w, finished, optimal)
    return w, finished


def _kkt_holds(grad: torch.Tensor, c: torch.Tensor, w: torch.Tensor, alpha: float) -> torch.Tensor:
    """Whether ``w`` satisfies the Lasso optimality conditions (to round-off): the gradient
    ``grad = c - G w`` equals ``alpha sign(w_j)`` on the support and is at most ``alpha`` in size elsewhere."""
    tol = 1e-9 * (alpha + c.abs().amax(-1, keepdim=True))
    on = w != 0
    return torch.where(on, (grad - alpha * torch.sign(w)).abs() <= tol, grad.abs() <= alpha + tol).all(-1)


def _certify(
    g: torch.Tensor, c: torch.Tensor, w: torch.Tensor, finished: torch.Tensor, optimal: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Which problems' ``w`` are optimal: where a finished path's end point is not, the KKT system is re-solved
    on its support and signs (``w`` updated in place) and checked again."""
    ok = optimal.clone()
    redo = torch.nonzero(finished & ~ok).squeeze(-1)
    if len(redo):
        w[redo], ok[redo] = _polish(g[redo], c[redo], w[redo], alpha)
    return ok


def lasso_prefix_solutions(
    xs: torch.Tensor, ys: torch.Tensor, alpha: float, max_steps: int | None = None, chunk: int = 400
) -> torch.Tensor:
    """``W[:, i]`` = Lasso solution on the first ``i`` examples; ``W[:, 0] = 0``. Shape (B, N, d).

    Every (prompt, prefix) problem follows its exact Lasso path down to ``alpha`` (:func:`_advance`),
    ``chunk`` prompts at a time (so the working set stays in cache) with 4 active-set slots. When few
    problems of a chunk are left (long paths, or supports outgrowing the slots), they are set aside with
    their statistics, and all chunks' stragglers go on together at the end with 8 slots, then ``d`` (so
    the many short steps at the end of each chunk are taken once, not once per chunk). Every end point
    is checked against the optimality conditions; where the check fails (round-off drift along a long
    path), the end point's support and signs are re-solved exactly and checked again; the few problems
    that still fail (ties or near-singular supports, which general-position inputs almost never produce)
    are finished one by one by scikit-learn at a tight tolerance.
    """
    dtype = xs.dtype
    xs, ys = xs.to(torch.float64), ys.to(torch.float64)  # the path's event times need double precision
    b, n, d = xs.shape
    max_steps = max_steps or 4 * d + 20
    counts = torch.arange(n, dtype=xs.dtype, device=xs.device).clamp_min(1).view(1, n, 1, 1)
    out = torch.zeros(b * n, d, dtype=xs.dtype, device=xs.device)
    failed, later = [], []  # later: (statistics, positions in out, paths) of each chunk's stragglers
    # prefix i's statistics, the sums over positions < i (the first "prefix" is empty): one buffer for
    # every chunk, as these are the solver's largest tensors
    buffer = torch.empty(min(chunk, b), n, d, d + 1, dtype=xs.dtype, device=xs.device)
    buffer[:, 0] = 0
    widths = [k for k in SLOTS if k < d] + [d]  # the first in the chunks, the others (or the same) at the end
    for start in range(0, b, chunk):
        x, y = xs[start : start + chunk], ys[start : start + chunk]
        m = x.shape[0]
        stats = buffer[:m]
        torch.mul(x[:, :-1].unsqueeze(-1), torch.cat([x, y.unsqueeze(-1)], -1)[:, :-1].unsqueeze(-2), out=stats[:, 1:])
        torch.cumsum(stats, 1, out=stats)
        stats = stats.div_(counts).view(m * n, d, d + 1)
        g, c = stats[..., :d], stats[..., d].contiguous()
        paths, w, finished, optimal = _start(g, c, alpha, widths[0])
        rest, spilled = _advance(
            paths, g, c, alpha, max_steps, w, finished, optimal, min_batch=len(paths) // STRAGGLERS
        )
        left = [q for q in [rest, *spilled] if len(q)]
        if left:
            rows = torch.cat([q.rows for q in left])
            offset = sum(len(entry[2]) for entry in later)
            paths = _Paths.cat(left)
            paths.rows = torch.arange(offset, offset + len(rows), device=xs.device)
            later.append((stats[rows], start * n + rows, paths))
        ok = _certify(g, c, w, finished, optimal, alpha)
        out[start * n : start * n + m * n] = w
        failed.append(start * n + torch.nonzero(finished & ~ok).squeeze(-1))
    if later:
        stats = torch.cat([entry[0] for entry in later])
        positions = torch.cat([entry[1] for entry in later])
        g, c = stats[..., :d], stats[..., d].contiguous()
        w, finished = torch.zeros_like(c), torch.zeros(len(c), dtype=torch.bool, device=xs.device)
        optimal = torch.zeros_like(finished)
        pending = [entry[2] for entry in later]
        for slots in widths[1:] or widths:
            pending = [q for q in pending if len(q)]
            if not pending:
                break
            rest, spilled = _advance(
                _Paths.cat([q.widen(slots) for q in pending]), g, c, alpha, max_steps, w, finished, optimal
            )
            pending = [rest, *spilled]  # unfinished after max_steps: one more try with the next width
        ok = _certify(g, c, w, finished, optimal, alpha)
        out[positions] = w
        failed.append(positions[~ok])
    failed = torch.cat(failed)
    if len(failed):
        out[failed] = _finish_with_sklearn(xs, ys, failed, alpha)
    return out.view(b, n, d).to(dtype)


@LEARNERS.register
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
