"""Posterior means (Bayes-optimal predictors under squared error) and ridge / least squares on a task's
feature map.

The posterior-mean learners ask the task for its Bayes predictor (:meth:`iclab.tasks.Task.posterior`): a
task with a closed-form posterior carries it in its own file, so adding one touches no learner. Each
learner here names the task family it is the posterior mean of (``task_types``).
"""

from __future__ import annotations

from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner, check


class _Posterior(ReferenceLearner):
    """Posterior mean of the task's own prior, from :meth:`~iclab.tasks.Task.posterior`."""

    requires_task = True
    task_types: tuple[str, ...] = ()

    def __init__(self, task=None) -> None:
        super().__init__()
        self.task = task

    @classmethod
    def applies_to(cls, task) -> str | None:
        if cls.task_types and task.name not in cls.task_types:
            return f"it is the posterior mean for {' / '.join(cls.task_types)} tasks"
        return task.posterior_unsupported()

    def _predict(self, xs, ys):
        # chunks of prompts bound the (B, N, candidates) tensors of the discrete posteriors
        step = 64
        return torch.cat(
            [self.task.posterior(xs[i : i + step], ys[i : i + step])[0] for i in range(0, xs.shape[0], step)]
        )


@LEARNERS.register
class PosteriorMean(_Posterior):
    """The posterior mean of the task's own prior, for any task with a closed form (``Task.posterior``)."""

    name = "posterior_mean"


@LEARNERS.register
class DMMSE(_Posterior):
    """Discrete MMSE (Raventós et al. 2023): the posterior mean over a finite task pool, uniform prior."""

    name = "dmmse"
    task_types = ("task_pool",)


@LEARNERS.register
class GMMPosterior(_Posterior):
    """Posterior mean under a Gaussian-mixture prior on w: each component's ridge-like posterior mean,
    weighed by the component's posterior probability."""

    name = "gmm_posterior"
    task_types = ("gaussian_mixture_regression",)


@LEARNERS.register
class SparsePosterior(_Posterior):
    """Posterior mean for k-sparse regression: a Gaussian posterior per support, weighed by evidence."""

    name = "sparse_posterior"
    task_types = ("sparse_linear_regression",)


@LEARNERS.register
class SignPosterior(_Posterior):
    """Posterior mean for sign-vector regression: the posterior over all 2^d corners of the cube."""

    name = "sign_posterior"
    task_types = ("sign_vector_regression",)


@LEARNERS.register
class ParityElimination(_Posterior):
    """Sparse parity's exact learner: keep the k-subsets consistent with every example so far and average their
    parities of the query (the posterior mean under the uniform prior over subsets)."""

    name = "parity_elimination"
    task_types = ("sparse_parity",)


@LEARNERS.register
class BayesMixture(_Posterior):
    """Posterior mean for a mixture of families: the components' posterior means weighed by
    ``p(component | prefix)`` (Panwar et al. 2023)."""

    name = "bayes_mixture"
    task_types = ("mixture",)


class _FeatureLearner(ReferenceLearner):
    requires_task = True

    @classmethod
    def applies_to(cls, task) -> str | None:
        if not task.has_features:
            return "the task has no fixed feature map"
        return None

    def _features(self, xs):
        return self.task.features(xs)


@LEARNERS.register
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


@LEARNERS.register
class FeatureLeastSquares(_FeatureLearner):
    """Minimum-norm least squares on the task's feature map (the noiseless posterior mean)."""

    name = "feature_least_squares"

    def __init__(self, task=None) -> None:
        super().__init__()
        self.task = task

    def _predict(self, xs, ys):
        from iclab.learners.least_squares import LeastSquares

        return LeastSquares()._predict(self._features(xs), ys)
