"""Exact posterior means (Bayes-optimal predictors under squared error), for every prefix at once.

Each predictor here computes, for a family with a closed-form posterior, the predictive mean of
``y_i`` given the prefix and the log evidence ``log p(y_1..y_{i-1} | x_1..x_{i-1})``. The evidence is
what a mixture of families needs: its posterior mean weighs each component's prediction by the
component's posterior probability (Panwar et al. 2023).

- Gaussian prior ``N(mu, diag(v))`` on w: Kalman-style recursion (rank-one covariance updates).
- Sparse regression: the Gaussian recursion on every support of size k, weighed by evidence.
- Sign vectors, task pools: discrete posteriors over the candidate weight vectors.
- Gaussian-mixture prior on w: the Gaussian recursion per component, weighed by evidence.

Noiseless tasks make the likelihood degenerate; the predictors then use a noise floor of
``NOISE_FLOOR`` (standard deviation), which moves predictions by far less than 1e-3.
"""

from __future__ import annotations

import math
from itertools import combinations

import torch

from iclab.learners.base import ReferenceLearner, check, exclusive_cumsum

NOISE_FLOOR = 1e-3
MAX_CANDIDATES = 1 << 14  # supports / sign vectors enumerated at most


def gaussian_predictive(xs: torch.Tensor, ys: torch.Tensor, noise_var: float, prior_mean: torch.Tensor | None = None,
                        prior_var: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Bayesian linear regression ``y = w . x + N(0, noise_var)``, ``w ~ N(prior_mean, diag(prior_var))``.

    Returns ``(pred, log_evidence)``, both ``(B, N)``: the posterior predictive mean of ``y_i`` from the
    first ``i`` examples, and ``log p(y_{<i} | x_{<i})``.
    """
    b, n, d = xs.shape
    var = torch.as_tensor(prior_var, dtype=xs.dtype, device=xs.device).expand(d)
    cov = torch.diag_embed(var).expand(b, d, d).clone()
    mean = xs.new_zeros(b, d) if prior_mean is None else prior_mean.to(xs).expand(b, d).clone()
    pred = xs.new_zeros(b, n)
    log_ev = xs.new_zeros(b, n)
    total = xs.new_zeros(b)
    for i in range(n):
        x, y = xs[:, i], ys[:, i]
        p = (x * mean).sum(-1)
        cx = torch.bmm(cov, x.unsqueeze(-1)).squeeze(-1)  # Sigma x
        v = noise_var + (x * cx).sum(-1)  # predictive variance
        pred[:, i], log_ev[:, i] = p, total
        if i == n - 1:
            break
        r = y - p
        total = total - 0.5 * (torch.log(2 * math.pi * v) + r * r / v)
        gain = cx / v.unsqueeze(-1)
        mean = mean + gain * r.unsqueeze(-1)
        cov.baddbmm_(gain.unsqueeze(-1), cx.unsqueeze(-2), alpha=-1)
    return pred, log_ev


def discrete_predictive(xs: torch.Tensor, ys: torch.Tensor, candidates: torch.Tensor, noise_var: float,
                        log_prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior over a finite set of weight vectors ``candidates (M, d)`` (uniform prior by default)."""
    m = candidates.shape[0]
    outs = torch.einsum("bnd,md->bnm", xs, candidates.to(xs))  # (B, N, M) each candidate's prediction
    sq = exclusive_cumsum((ys.unsqueeze(-1) - outs) ** 2, dim=1)  # (B, N, M) prefix residuals
    prior = torch.full((m,), -math.log(m), dtype=xs.dtype, device=xs.device) if log_prior is None else log_prior
    counts = torch.arange(xs.shape[1], dtype=xs.dtype, device=xs.device).view(1, -1, 1)
    log_joint = prior - sq / (2 * noise_var) - 0.5 * counts * math.log(2 * math.pi * noise_var)
    log_ev = torch.logsumexp(log_joint, dim=-1)  # (B, N)
    post = torch.softmax(log_joint, dim=-1)
    return (post * outs).sum(-1), log_ev


def combine(parts: list[tuple[torch.Tensor, torch.Tensor]], log_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix predictive means by posterior weight: ``p(c | D) ∝ pi_c p(D | c)``."""
    preds = torch.stack([p for p, _ in parts], dim=-1)  # (B, N, C)
    log_joint = torch.stack([e for _, e in parts], dim=-1) + log_weights.to(preds)
    return (torch.softmax(log_joint, dim=-1) * preds).sum(-1), torch.logsumexp(log_joint, dim=-1)


def _noise_var(task) -> float:
    return max(task.config.noise_std, NOISE_FLOOR) ** 2


def _sign_vectors(d: int) -> torch.Tensor:
    codes = torch.arange(2**d).unsqueeze(-1).bitwise_right_shift(torch.arange(d)).bitwise_and(1)
    return codes.double() * 2 - 1  # (2^d, d)


def _supports(d: int, k: int) -> list[tuple[int, ...]]:
    return list(combinations(range(d), k))


def _sparse_predictive(task, xs, ys):
    k = task.config.sparsity
    supports = _supports(task.n_dims, k)
    index = torch.tensor(supports, device=xs.device)  # (S, k)
    b, n, _ = xs.shape
    sub = xs[:, :, index].permute(0, 2, 1, 3).reshape(b * len(supports), n, k)  # (B*S, N, k)
    pred, log_ev = gaussian_predictive(sub, ys.repeat_interleave(len(supports), 0), _noise_var(task))
    pred, log_ev = pred.view(b, -1, n), log_ev.view(b, -1, n)
    log_joint = log_ev - math.log(len(supports))
    return (torch.softmax(log_joint, 1) * pred).sum(1), torch.logsumexp(log_joint, 1)


def _gmm_predictive(task, xs, ys):
    weights = torch.tensor(task.config.weights, dtype=xs.dtype).log()
    parts = [gaussian_predictive(xs, ys, _noise_var(task), prior_mean=mu) for mu in task.means()]
    return combine(parts, weights)


def _why_not_enumerable(count: int, what: str) -> str | None:
    return None if count <= MAX_CANDIDATES else f"{count} {what} to enumerate (at most {MAX_CANDIDATES})"


def posterior_predictive(task, xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pred, log_evidence)`` of ``task``'s exact posterior mean; see :func:`bayes_unsupported`."""
    from iclab.tasks import GaussianMixtureRegression, LinearRegression, Mixture, SignVectorRegression, \
        SparseLinearRegression, TaskPool

    if isinstance(task, TaskPool):
        return discrete_predictive(xs, ys, task.pool, _noise_var(task))
    if isinstance(task, SignVectorRegression):
        return discrete_predictive(xs, ys, _sign_vectors(task.n_dims), _noise_var(task))
    if isinstance(task, SparseLinearRegression):
        return _sparse_predictive(task, xs, ys)
    if isinstance(task, GaussianMixtureRegression):
        return _gmm_predictive(task, xs, ys)
    if isinstance(task, LinearRegression):
        return gaussian_predictive(xs, ys, _noise_var(task))
    if isinstance(task, Mixture):
        parts = [posterior_predictive(c, xs, ys) for c in task.components]
        return combine(parts, task.weights.log())
    raise TypeError(f"no closed-form posterior for {task.name}")


def bayes_unsupported(task) -> str | None:
    """None when :func:`posterior_predictive` has a closed form for ``task``, else why not."""
    from iclab.tasks import GaussianMixtureRegression, LinearRegression, Mixture, SignVectorRegression, \
        SparseLinearRegression, TaskPool

    if isinstance(task, Mixture):
        return mixture_supported(task)
    if isinstance(task, SparseLinearRegression):
        return _why_not_enumerable(math.comb(task.n_dims, task.config.sparsity), "supports")
    if isinstance(task, SignVectorRegression):
        return _why_not_enumerable(2**task.n_dims, "sign vectors")
    if isinstance(task, (TaskPool, GaussianMixtureRegression, LinearRegression)):
        return None
    return "it has no closed-form posterior mean here"


def mixture_supported(task) -> str | None:
    for comp in task.components:
        reason = bayes_unsupported(comp)
        if reason is not None:
            return f"component {comp.name}: {reason}"
    return None


class _Posterior(ReferenceLearner):
    """Posterior mean of the task's own prior, from :func:`posterior_predictive`."""

    requires_task = True
    task_types: tuple[str, ...] = ()

    def __init__(self, task=None) -> None:
        super().__init__()
        self.task = task

    @classmethod
    def applies_to(cls, task) -> str | None:
        if cls.task_types and task.name not in cls.task_types:
            return f"it is the posterior mean for {' / '.join(cls.task_types)} tasks"
        return bayes_unsupported(task)

    def _predict(self, xs, ys):
        # chunks of prompts bound the (B, N, candidates) tensors of the discrete posteriors
        step = 64
        return torch.cat([posterior_predictive(self.task, xs[i : i + step], ys[i : i + step])[0]
                          for i in range(0, xs.shape[0], step)])


class DMMSE(_Posterior):
    """Discrete MMSE (Raventós et al. 2023): the posterior mean over a finite task pool, uniform prior."""

    name = "dmmse"
    task_types = ("task_pool",)


class GMMPosterior(_Posterior):
    """Posterior mean under a Gaussian-mixture prior on w: each component's ridge-like posterior mean,
    weighed by the component's posterior probability."""

    name = "gmm_posterior"
    task_types = ("gaussian_mixture_regression",)


class SparsePosterior(_Posterior):
    """Posterior mean for k-sparse regression: a Gaussian posterior per support, weighed by evidence."""

    name = "sparse_posterior"
    task_types = ("sparse_linear_regression",)


class SignPosterior(_Posterior):
    """Posterior mean for sign-vector regression: the posterior over all 2^d corners of the cube."""

    name = "sign_posterior"
    task_types = ("sign_vector_regression",)


class BayesMixture(_Posterior):
    """Posterior mean for a mixture of families: the components' posterior means weighed by
    ``p(component | prefix)`` (Panwar et al. 2023)."""

    name = "bayes_mixture"
    task_types = ("mixture",)


class _FeatureLearner(ReferenceLearner):
    requires_task = True

    @classmethod
    def applies_to(cls, task) -> str | None:
        if task.features(torch.zeros(1, 1, task.n_dims)) is None:
            return "the task has no fixed feature map"
        return None

    def _features(self, xs):
        return self.task.features(xs)


class FeatureRidge(_FeatureLearner):
    """Ridge regression on the task's feature map ``Phi(x)`` (representation, Fourier and monomial tasks);
    with ``lam = noise_std^2`` it is the posterior mean for a N(0, I) prior on the feature weights."""

    name = "feature_ridge"

    def __init__(self, lam: float = 1.0, task=None) -> None:
        super().__init__()
        check(isinstance(lam, (int, float)) and lam > 0, f"feature_ridge: lam must be positive, got {lam!r}")
        self._set_params(lam=float(lam))
        self.task = task

    def _predict(self, xs, ys):
        from iclab.learners.least_squares import Ridge

        return Ridge(self.lam)._predict(self._features(xs), ys)


class FeatureLeastSquares(_FeatureLearner):
    """Minimum-norm least squares on the task's feature map (the noiseless posterior mean)."""

    name = "feature_least_squares"

    def __init__(self, task=None) -> None:
        super().__init__()
        self.task = task

    def _predict(self, xs, ys):
        from iclab.learners.least_squares import LeastSquares

        return LeastSquares()._predict(self._features(xs), ys)
