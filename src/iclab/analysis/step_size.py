"""Step sizes for gradient descent in context (von Oswald et al. 2022): the "GD at the best step size"
baseline a trained linear self-attention layer is compared with, and per-step sizes learned through the
unrolled steps (the GD counterpart of training a K-layer LSA model).

    from iclab.analysis.step_size import gd_lr_scan, learn_gd_lrs
    eta, mse = min(gd_lr_scan(prompts.xs, prompts.ys, [x / 4 for x in range(1, 81)]), key=lambda t: t[1])
    etas = learn_gd_lrs(prompts.xs, prompts.ys, steps=3)
"""

from __future__ import annotations

import torch


def gd_query_error(xs, ys, lrs, position: int) -> torch.Tensor:
    """Mean squared error at ``position`` of GD with per-step sizes ``lrs`` (a 1-D tensor), differentiable."""
    x, y = xs[:, :position], ys[:, :position]
    i = max(position, 1)
    w = xs.new_zeros(xs.shape[0], xs.shape[2])
    for lr in lrs:
        resid = torch.einsum("bnd,bd->bn", x, w) - y
        w = w - lr * torch.einsum("bn,bnd->bd", resid, x) / i
    return ((torch.einsum("bd,bd->b", w, xs[:, position]) - ys[:, position]) ** 2).mean()


def gd_lr_scan(
    xs: torch.Tensor, ys: torch.Tensor, lrs, steps: int = 1, position: int = -1
) -> list[tuple[float, float]]:
    """``[(lr, mean squared error at the query)]`` of ``steps`` GD steps with each step size in ``lrs``;
    the query is ``position`` (default: the last point, after all the others as context). The best entry
    is the "GD at the best step size" baseline of von Oswald et al."""
    pos = position % xs.shape[1]
    xs, ys = xs.double(), ys.double()
    with torch.no_grad():
        return [(float(lr), gd_query_error(xs, ys, [float(lr)] * steps, pos).item()) for lr in lrs]


def learn_gd_lrs(
    xs: torch.Tensor, ys: torch.Tensor, steps: int, iters: int = 500, lr0: float = 0.5, position: int = -1
) -> list[float]:
    """Per-step GD step sizes ``eta_1 .. eta_steps`` that minimise the mean squared error at the query
    (``position``, default the last point) on the given prompts, learned by Adam through the unrolled
    steps: the GD counterpart of training a ``steps``-layer linear self-attention model."""
    pos = position % xs.shape[1]
    xs, ys = xs.double(), ys.double()
    log_lrs = torch.full((steps,), float(torch.log(torch.tensor(lr0))), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([log_lrs], lr=0.05)
    for _ in range(iters):
        opt.zero_grad()
        loss = gd_query_error(xs, ys, log_lrs.exp(), pos)
        loss.backward()
        opt.step()
    return [float(v) for v in log_lrs.detach().exp()]
