"""Exact learning of permutations by ensembles of two-layer ReLU networks (the seed paper "Exact Learning of
Permutations for Nonzero Binary Inputs with Logarithmic Training Size and Quadratic Ensemble Complexity").

A permutation ``pi`` of ``k`` coordinates maps a binary input ``x`` to ``P x`` (``P e_i = e_pi(i)``). Each network
``f(x) = A relu(W x) / sqrt(width)`` (``W``, ``A`` standard normal, the neural-tangent parametrisation) is trained
by full-batch gradient descent on the ``k`` standard basis vectors only (``e_i -> e_pi(i)``, squared error) and
tested on all ``2^k - 1`` nonzero binary inputs. ``m`` independently initialised networks are averaged and the mean
is rounded to a binary vector. The ensemble is one batched model: every layer is one tensor operation over all
``m`` networks (:class:`Ensemble`).

In the infinite-width limit the ensemble mean is kernel regression with the network's neural tangent kernel
(:func:`ntk`, :func:`ntk_regression`): for the ReLU network above, with ``u`` the cosine between the inputs and
``t = arccos u``, ``Theta(x, x') = x.x' (pi - t) / (2 pi) + |x| |x'| (sin t + (pi - t) u) / (2 pi)``, one independent
copy per output coordinate.

**Rounding.** Because the kernel sees an input only through its overlaps with the basis vectors, the mean output
of coordinate ``pi(i)`` is ``a(n)`` where ``x_i = 1`` and ``b(n)`` where ``x_i = 0``, both functions of the number
of ones ``n`` of the input: a fixed threshold of one half separates them only while ``b(n) < 1/2 < a(n)``, which
fails as ``n`` grows (measured by ``python benchmarks/permutations.py``). A permutation keeps the number of ones,
so iclab's rule (``rounding="top"``) sets the ``n`` largest outputs of an input with ``n`` ones to 1: it is exact
whenever ``a(n) > b(n)``, i.e. whenever the ordering is right, whatever the scale. ``rounding="half"`` is the fixed
threshold.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "Ensemble",
    "all_nonzero_inputs",
    "basis_problem",
    "ensemble_exact_share",
    "exact_match",
    "ntk",
    "ntk_regression",
    "permutation_matrix",
    "round_outputs",
]


def all_nonzero_inputs(k: int, dtype=torch.float64) -> torch.Tensor:
    """Every nonzero binary vector of length ``k``, ``(2^k - 1, k)``, in the order of the integers they encode."""
    codes = torch.arange(1, 2**k).unsqueeze(-1)
    return codes.bitwise_right_shift(torch.arange(k)).bitwise_and(1).to(dtype)


def permutation_matrix(perm: torch.Tensor) -> torch.Tensor:
    """``P`` with ``P e_i = e_perm[i]``: row ``perm[i]``, column ``i`` set."""
    k = perm.numel()
    p = torch.zeros(k, k, dtype=torch.float64)
    p[perm, torch.arange(k)] = 1.0
    return p


def basis_problem(perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The experiment for permutation ``perm``: ``(train inputs, train targets, test inputs, test targets)``, the
    ``k`` basis vectors with their images and every nonzero binary input with its image ``P x``."""
    k = perm.numel()
    p = permutation_matrix(perm)
    basis, inputs = torch.eye(k, dtype=torch.float64), all_nonzero_inputs(k)
    return basis, basis @ p.T, inputs, inputs @ p.T


def ntk(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The neural tangent kernel of ``f(x) = A relu(W x) / sqrt(width)`` at infinite width, ``(n, d) x (m, d) ->
    (n, m)``, both layers trained."""
    nx, ny = x.norm(dim=-1, keepdim=True), y.norm(dim=-1, keepdim=True)
    dot = x @ y.T
    cos = (dot / (nx * ny.T).clamp_min(1e-300)).clamp(-1.0, 1.0)
    t = torch.arccos(cos)
    return dot * (math.pi - t) / (2 * math.pi) + nx * ny.T * (torch.sin(t) + (math.pi - t) * cos) / (2 * math.pi)


def ntk_regression(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor) -> torch.Tensor:
    """Kernel regression with :func:`ntk` (no ridge): the infinite-width ensemble mean, ``(n_test, outputs)``."""
    gram = ntk(train_x, train_x)
    return ntk(test_x, train_x) @ torch.linalg.solve(gram, train_y)


def round_outputs(mean: torch.Tensor, x: torch.Tensor, rounding: str = "top") -> torch.Tensor:
    """Binary predictions from the ensemble mean for inputs ``x``: ``"top"`` sets the ``|x|`` largest outputs of each
    input to 1 (a permutation keeps the number of ones; ties go to the lower coordinate); ``"half"`` thresholds at
    one half."""
    if rounding == "half":
        return (mean > 0.5).to(mean.dtype)
    if rounding != "top":
        raise ValueError(f"rounding: must be 'top' or 'half', got {rounding!r}")
    ones = x.sum(-1).round().long()  # (n,)
    order = torch.argsort(-mean, dim=-1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(mean.shape[-1]).expand_as(order))
    return (rank < ones.unsqueeze(-1)).to(mean.dtype)


def exact_match(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per input, whether every coordinate is right, ``(n,)`` bool."""
    return (pred == target).all(-1)


class Ensemble:
    """``m`` two-layer ReLU networks ``k -> width -> k``, trained together: ``W (m, width, k)``, ``A (m, k, width)``,
    each layer one batched tensor operation over the ensemble. ``seed`` fixes the initialisation."""

    def __init__(self, k: int, m: int, width: int, seed: int = 0, dtype=torch.float64) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(m, width, k, generator=g, dtype=dtype)
        self.a = torch.randn(m, k, width, generator=g, dtype=dtype)
        self.width = width

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Every network's outputs, ``(n, k) -> (m, n, k)``."""
        h = torch.relu(torch.einsum("mwk,nk->mnw", self.w, x.to(self.w)))
        return torch.einsum("mjw,mnw->mnj", self.a, h) / math.sqrt(self.width)

    def train(self, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> list[float]:
        """Full-batch gradient descent on ``1/2 sum |f(x) - y|^2`` (per network, summed over the training inputs);
        returns the mean loss over the ensemble at every 10th step."""
        x, y = x.to(self.w), y.to(self.w)
        losses = []
        for step in range(steps):
            pre = torch.einsum("mwk,nk->mnw", self.w, x)  # (m, n, width)
            h = torch.relu(pre)
            out = torch.einsum("mjw,mnw->mnj", self.a, h) / math.sqrt(self.width)
            err = out - y  # (m, n, k)
            if step % 10 == 0:
                losses.append(float(0.5 * (err**2).sum((1, 2)).mean()))
            grad_a = torch.einsum("mnj,mnw->mjw", err, h) / math.sqrt(self.width)
            back = torch.einsum("mnj,mjw->mnw", err, self.a) / math.sqrt(self.width) * (pre > 0)
            grad_w = torch.einsum("mnw,nk->mwk", back, x)
            self.a -= lr * grad_a
            self.w -= lr * grad_w
        return losses


def ensemble_exact_share(
    k: int, m: int, width: int, steps: int, lr: float, seed: int = 0, rounding: str = "top", perm=None
) -> tuple[float, bool]:
    """Train an ensemble of ``m`` networks on the basis vectors of a random permutation of ``k`` and return (the share
    of the ``2^k - 1`` nonzero inputs it maps exactly, whether it maps all of them)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    basis, images, inputs, target = basis_problem(torch.randperm(k, generator=g) if perm is None else perm)
    ens = Ensemble(k, m, width, seed=seed)
    ens.train(basis, images, steps, lr)
    with torch.no_grad():
        mean = ens(inputs).mean(0)
    right = exact_match(round_outputs(mean, inputs, rounding), target)
    return float(right.double().mean()), bool(right.all())
