"""Haar wavelet regression (Panwar et al. 2023): the basis against a direct transcription of its definition and its
orthonormality, the sampler, and the posterior mean."""

import numpy as np
import pytest
import torch

from conftest import assert_train_refuses
from iclab.config import load_config
from iclab.errors import ConfigError
from iclab.learners import make_learner
from iclab.tasks import make_task


def _task(*overrides):
    return make_task(load_config(None, ["task.name=haar_wavelets", *overrides]).task)


def _psi(t):
    return 1.0 if 0 <= t < 0.5 else -1.0 if 0.5 <= t < 1 else 0.0


@pytest.mark.parametrize("first", ["constant", "identity"])
def test_the_basis_is_the_haar_system_scaled(first):
    task = _task("task.max_level=2", f"task.first={first}")
    x = torch.rand(200, dtype=torch.float64)
    ours = task.features(x[:, None]).numpy() * 8  # undo the 1 / 2^(L + 1) normalisation
    for i, t in enumerate(x.tolist()):
        direct = [1.0 if first == "constant" else t]
        direct += [2 ** (n / 2) * _psi(2**n * t - k) for n in range(3) for k in range(2**n)]
        np.testing.assert_allclose(ours[i], direct, atol=1e-12)


def test_the_wavelets_are_orthonormal_on_the_unit_interval():
    task = _task("task.max_level=3")
    grid = (torch.arange(4096, dtype=torch.float64) + 0.5) / 4096  # midpoints: exact for these step functions
    phi = task.features(grid[:, None]).numpy() * 16
    np.testing.assert_allclose(phi.T @ phi / 4096, np.eye(16), atol=1e-12)


def test_samples_and_error_scale():
    task = _task("task.n_points=9")
    p = task.eval_prompts(20000, seed=0)
    assert bool((p.xs >= 0).all() and (p.xs < 1).all())
    assert float((p.ys**2).mean()) == pytest.approx(task.error_scale, rel=0.03)
    assert _task("task.first=identity").error_scale == pytest.approx((15 + 1 / 3) / 256)


def test_the_posterior_mean_is_ridge_on_the_basis_and_beats_least_squares_on_x():
    task = _task("task.noise_std=0.02", "task.n_points=24")
    p = task.eval_prompts(1000, seed=1)
    assert task.relevant_learners()[0] == "feature_ridge(lam=0.0004)"
    bayes = task.error(make_learner("feature_ridge(lam=0.0004)", task=task).predict(p), p.ys).mean(0)
    ls = task.error(make_learner("least_squares").predict(p), p.ys).mean(0)
    assert float(bayes[-1]) < 0.3 and float(bayes[-1]) < 0.5 * float(ls[-1])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task.max_level=-1"], "task.max_level: must be zero or positive"),
        (["task.max_level=11"], "task.max_level: must be at most 10"),
        (["task.first=linear"], "task.first:"),
    ],
)
def test_bad_haar_settings_are_refused(overrides, message, capsys, tmp_path):
    with pytest.raises(ConfigError):
        _task(*overrides)
    assert_train_refuses(["task.name=haar_wavelets", "task.n_dims=1", *overrides], message, capsys, tmp_path / "r")
