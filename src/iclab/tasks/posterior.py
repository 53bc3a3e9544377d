"""Exact posterior predictive means, for every prefix at once: the math behind the tasks' Bayes predictors.

A task with a closed-form posterior implements ``Task.posterior(xs, ys) -> (pred, log_evidence)`` with
these functions (see :class:`~iclab.tasks.base.Task`); the ``*_posterior`` / ``dmmse`` / ``bayes_mixture``
learners call it. ``pred[:, i]`` is the posterior predictive mean of ``y_i`` given the first ``i`` examples,
``log_evidence[:, i] = log p(y_1..y_{i-1} | x_1..x_{i-1})``: what a mixture of families needs to weigh its
components (Panwar et al. 2023).

- Gaussian prior ``N(mu, diag(v))`` on w: Kalman-style recursion (rank-one covariance updates).
- Discrete priors (sign vectors, task pools, supports): posteriors over the candidates.
- Mixtures: each component's prediction weighed by its posterior probability.

Noiseless tasks make the likelihood degenerate; the predictors then use a noise floor of
``NOISE_FLOOR`` (standard deviation), which moves predictions by far less than 1e-3.
"""

from __future__ import annotations

import math

from iclab.lazy import torch
from iclab.utils import exclusive_cumsum

NOISE_FLOOR = 1e-3
MAX_CANDIDATES = 1 << 14  # supports / sign vectors enumerated at most


def gaussian_predictive(
    xs: torch.Tensor,
    ys: torch.Tensor,
    noise_var: float,
    prior_mean: torch.Tensor | None = None,
    prior_var: torch.Tensor | float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
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


def discrete_predictive(
    xs: torch.Tensor,
    ys: torch.Tensor,
    candidates: torch.Tensor,
    noise_var: float,
    log_prior: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
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


def combine(
    parts: list[tuple[torch.Tensor, torch.Tensor]], log_weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix predictive means by posterior weight: ``p(c | D) ∝ pi_c p(D | c)``."""
    preds = torch.stack([p for p, _ in parts], dim=-1)  # (B, N, C)
    log_joint = torch.stack([e for _, e in parts], dim=-1) + log_weights.to(preds)
    return (torch.softmax(log_joint, dim=-1) * preds).sum(-1), torch.logsumexp(log_joint, dim=-1)


def likelihood_var(task) -> float:
    """The likelihood's noise variance: the task's ``noise_std^2``, floored for noiseless tasks."""
    return max(task.config.noise_std, NOISE_FLOOR) ** 2


def too_many(count: int, what: str) -> str | None:
    """None when ``count`` candidates can be enumerated, else the reason they cannot."""
    return None if count <= MAX_CANDIDATES else f"{count} {what} to enumerate (at most {MAX_CANDIDATES})"
