"""The chunked delta rules' one linear system, with its backward written out (:func:`writes_solve`).

Within a chunk the writes ``U`` solve ``(I + A) U = R`` where ``A``'s strictly lower part is
``a_in a_out^T`` with some entries dropped (writes of one step do not see each other) and the rest of ``A`` is
never read. Through autograd the backward of ``A = mask(a_in @ a_out^T)`` followed by ``solve_triangular`` takes
a negation, a ``tril``, the mask's own backward and a copy of each ``(C, C)`` block per chunk on top of the
products; here the gradient of ``A`` comes out of one product with the sign folded in, is masked in place and goes
straight into ``a_in`` and ``a_out``. Equal to the autograd composition to float rounding (tests, gradcheck in
float64); the speed-up is measured in docs/benchmarks.md.
"""

from __future__ import annotations

import torch


class _WritesSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a_in, a_out, drop, masked: bool, *parts):
        a = a_in @ a_out.transpose(-1, -2)
        if masked:  # (the upper part and the diagonal are never read: only dropped entries below it need zeros)
            a.masked_fill_(drop, 0)
        # the right-hand side put together in the result's memory and solved in place, row-major: solve_triangular
        # then solves the transposed equation on A's own memory, where letting it allocate would copy B (and in
        # the backward A^T) into column-major order first
        u = torch.cat(parts, dim=-1)
        torch.linalg.solve_triangular(a, u, upper=False, unitriangular=True, out=u)
        ctx.save_for_backward(a, u, a_in, a_out, drop)
        ctx.widths = [p.shape[-1] for p in parts]
        return u

    @staticmethod
    def backward(ctx, grad_u):
        a, u, a_in, a_out, drop = ctx.saved_tensors
        grad_rhs = torch.linalg.solve_triangular(
            a.transpose(-1, -2),
            grad_u,
            upper=True,
            unitriangular=True,
            out=torch.empty_like(grad_u, memory_format=torch.contiguous_format),
        )
        # dA = -(grad_rhs u^T) on the entries the system reads, zero elsewhere
        flat = grad_rhs.reshape(-1, *grad_rhs.shape[-2:])
        grad_a = torch.baddbmm(
            flat.new_empty(flat.shape[0], flat.shape[1], flat.shape[1]),
            flat,
            u.reshape(-1, *u.shape[-2:]).transpose(-1, -2),
            beta=0,
            alpha=-1,
        ).view(*a.shape)
        grad_a.masked_fill_(drop, 0)
        grad_parts = grad_rhs.split(ctx.widths, dim=-1)
        return grad_a @ a_out, grad_a.transpose(-1, -2) @ a_in, None, None, *grad_parts


def writes_solve(a_in, a_out, rhs, drop, masked: bool = True):
    """``U`` with ``(I + L) U = [rhs...]`` (the parts ``rhs`` side by side), ``L`` the strictly lower part of
    ``a_in @ a_out^T`` with the entries where ``drop`` is true set to zero. ``drop`` (``(C, C)``, bool) must cover
    the diagonal and the upper part (they get no gradient); ``masked=False`` says it covers nothing else, so the
    forward skips the mask."""
    return _WritesSolve.apply(a_in, a_out, drop, masked, *rhs)
