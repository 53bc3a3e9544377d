"""Haar wavelet regression (Panwar, Ahuja, Goyal 2023, "In-Context Learning through the Bayesian Prism"; code
mdrpanwar/icl-bayesian-prism, ``HaarWavelets``).

Scalar inputs ``x ~ U(0, 1)`` and ``f(x) = sum_i w_i phi_i(x) / 2^(L + 1)``, ``w ~ N(0, I)``, over the Haar system on
the unit interval up to level ``L = max_level``: the wavelets ``psi_nk(x) = 2^(n/2) psi(2^n x - k)`` for ``n = 0 ..
L``, ``k = 0 .. 2^n - 1`` (``psi`` is +1 on [0, 1/2), -1 on [1/2, 1)), and one more function, ``2^(L + 1)`` in all.
The Haar system's extra function is the constant 1 (``first: constant``, the default); the reference code appends
the identity ``x`` instead (``first: identity`` reproduces it). The division by ``2^(L + 1)`` is the reference's
output normalisation. ``y`` is linear in the scaled basis, so the posterior mean is ridge on it (``feature_ridge``,
``lam = noise_std^2``; min-norm least squares when noiseless).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from iclab.lazy import torch
from iclab.schema import require
from iclab.tasks.base import TASKS, FeatureTask, ScalarInputsConfig


@dataclass
class HaarWaveletsConfig(ScalarInputsConfig):
    name: str = "haar_wavelets"
    max_level: int = 3  # L: wavelets of levels 0 .. L, 2^(L + 1) functions with the extra one
    first: Literal["constant", "identity"] = "constant"  # the extra function: 1 (the Haar system), or x (the reference)
    noise_std: float = 0.0

    def validate(self, path: str = "task") -> None:
        self.check_scalar(path, "max_level", "noise_std")
        require(self.max_level <= 10, f"{path}.max_level", "must be at most 10 (2^11 basis functions)", self.max_level)


@TASKS.register
class HaarWavelets(FeatureTask):
    """Random combinations of the Haar wavelets on [0, 1] up to level ``max_level`` (Panwar et al. 2023)."""

    Config = HaarWaveletsConfig

    @property
    def n_features(self) -> int:
        return 2 ** (self.config.max_level + 1)

    @property
    def error_scale(self) -> float:
        """``E[f(x)^2]``: every wavelet has ``E[psi_nk(x)^2] = 1`` on U(0, 1), the constant 1, the identity 1/3."""
        extra = 1.0 if self.config.first == "constant" else 1.0 / 3.0
        return (self.n_features - 1 + extra) / self.n_features**2

    def features(self, xs: torch.Tensor) -> torch.Tensor:
        x = xs[..., 0]
        columns = [torch.ones_like(x) if self.config.first == "constant" else x]
        for n in range(self.config.max_level + 1):
            t = (2.0**n) * x.unsqueeze(-1) - torch.arange(2**n, dtype=x.dtype, device=x.device)  # (..., 2^n)
            mother = torch.where((t >= 0) & (t < 0.5), 1.0, torch.where((t >= 0.5) & (t < 1), -1.0, 0.0)).to(x.dtype)
            columns.append(2.0 ** (n / 2) * mother)
        basis = torch.cat([columns[0].unsqueeze(-1), *columns[1:]], dim=-1)  # (..., 2^(L + 1))
        return basis / self.n_features

    def sample_inputs(self, batch_size, generator, n_active_dims, n_points):
        return torch.rand(batch_size, n_points, 1, generator=generator)

    def relevant_learners(self) -> list[str]:
        return [self._bayes_on_features(), "least_squares", "knn(k=3)", "zero"]
