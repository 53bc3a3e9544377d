"""The Chebyshev families of in-context-learning-2024/in-context: the basis against numpy's Chebyshev module, the
sampler's statistics, the cut-mixture posterior against a closed form, and the shared-roots polynomials."""

import math

import numpy as np
import pytest
import torch
from numpy.polynomial import chebyshev as npcheb
from scipy.stats import multivariate_normal

from conftest import assert_train_refuses
from iclab.cli import main
from iclab.config import load_config
from iclab.errors import ConfigError
from iclab.learners import make_learner
from iclab.tasks import make_task
from iclab.tasks.chebyshev import chebyshev_basis
from iclab.types import Prompts


def _task(name, *overrides):
    return make_task(load_config(None, [f"task.name={name}", *overrides]).task)


def test_the_basis_is_numpys_chebyshev_polynomials():
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)
    ours = chebyshev_basis(x, 3, 11).numpy()
    for j, k in enumerate(range(3, 12)):
        np.testing.assert_allclose(ours[:, j], npcheb.chebval(x.numpy(), [0] * k + [1]), atol=1e-12)


def test_kernel_samples_cut_the_coefficients_at_a_uniform_degree():
    task = _task("chebyshev_kernel_regression", "task.n_points=7")
    p = task.eval_prompts(20000, seed=0)
    w, cut = p.info["w"], p.info["cut"]
    assert bool((p.xs.abs() <= 1).all()) and abs(float(p.xs.mean())) < 0.01
    assert bool((w[torch.arange(9) > cut.unsqueeze(1)] == 0).all()) and bool((w[:, 0] != 0).all())
    assert float((torch.bincount(cut, minlength=9) / 20000 - 1 / 9).abs().max()) < 0.01
    assert float((p.ys**2).mean()) == pytest.approx(task.error_scale, rel=0.05)  # the closed form of E[f^2]


def test_kernel_posterior_is_the_cut_mixture_in_closed_form():
    task = _task("chebyshev_kernel_regression", "task.n_points=6", "task.noise_std=0.3", "task.highest_degree=6")
    p = task.eval_prompts(5, seed=1)
    ours = make_learner("posterior_mean", task=task).predict(p).double().numpy()
    phi = task.features(p.xs.double()).numpy()  # (B, N, 4)
    ys = p.ys.double().numpy()
    for b in range(5):
        for q in range(1, 6):
            preds, logs = [], []
            for c in range(4):
                f, fq = phi[b, :q, : c + 1], phi[b, q, : c + 1]
                gram = f @ f.T + 0.09 * np.eye(q)
                logs.append(multivariate_normal(np.zeros(q), gram).logpdf(ys[b, :q]))
                preds.append(fq @ f.T @ np.linalg.solve(gram, ys[b, :q]))
            weights = np.exp(np.array(logs) - max(logs))
            assert ours[b, q] == pytest.approx((weights * preds).sum() / weights.sum(), abs=1e-6)


def test_kernel_posterior_beats_feature_least_squares_on_its_prior():
    task = _task("chebyshev_kernel_regression", "task.n_points=13", "task.noise_std=0.1")
    p = task.eval_prompts(2000, seed=2)
    bayes = task.error(make_learner("posterior_mean", task=task).predict(p), p.ys).mean(0)
    fls = task.error(make_learner("feature_least_squares", task=task).predict(p), p.ys).mean(0)
    assert bool((bayes[1:] <= fls[1:] + 0.01).all()) and float(bayes[5]) < 0.8 * float(fls[5])


def test_shared_roots_are_scaled_polynomials_near_the_chebyshev_nodes():
    task = _task("chebyshev_shared_roots", "task.n_points=15")
    p = task.eval_prompts(500, seed=3)
    nodes = np.cos((2 * np.arange(1, 6) - 1) * math.pi / 10)
    roots = p.info["roots"].numpy()
    assert np.all(np.abs(roots - nodes) <= 0.2 + 1e-6)
    np.testing.assert_allclose(p.ys.abs().amax(1).numpy(), 1.0, rtol=1e-5)  # largest |y| of each prompt is 1
    at_roots = task.label(p.info["roots"][:, :, None].float(), p.info)
    assert float(at_roots.abs().max()) < 1e-5
    xs = p.xs.double()  # labels recomputed in float64: interpolating 6 points amplifies float32 rounding
    exact = Prompts(xs, task.label(xs, {k: v.double() for k, v in p.info.items()}), p.info)
    err = task.error(make_learner("feature_least_squares", task=task).predict(exact), exact.ys).mean(0)
    # a degree-5 polynomial: determined by 6 points; the error falls to round-off once the points are spread enough
    # for least squares' test of a new direction (close points on [-1, 1] make nearly dependent features)
    assert float(err[3]) > 0.01 and float(err[6]) < 0.05 and float(err[9:].max()) < 1e-8


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task.name=chebyshev_kernel_regression", "task.highest_degree=2"], "task.highest_degree: must be at least"),
        (["task.name=chebyshev_kernel_regression", "task.n_dims=2"], "task.n_dims: must be 1"),
        (["task.name=chebyshev_shared_roots", "task.perturbation=-0.1"], "task.perturbation: must be zero or positive"),
        (["task.name=chebyshev_shared_roots", "task.degree=0"], "task.degree: must be positive"),
    ],
)
def test_bad_chebyshev_settings_are_refused(overrides, message, capsys, tmp_path):
    with pytest.raises(ConfigError):
        load_config(None, overrides)
    assert_train_refuses(["task.n_dims=1", *overrides], message, capsys, tmp_path / "r")  # (the file's d is 5)


def test_the_icl2024_recipe_takes_its_task_on_the_command_line(tmp_path, capsys):
    """``--recipe`` accepts a call with the recipe's arguments; a bad one is one line, exit 2."""
    out = tmp_path / "run"
    sets = ["--set", "train.steps=3", "--set", "train.eval_every=0", "--set", "eval.n_prompts=16"]
    assert main(["train", "--recipe", "icl2024_task(task=chebyshev_kernel)", *sets, "--out", str(out)]) == 0
    assert "chebyshev_kernel_regression" in (out / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["train", "--recipe", "icl2024_task(task=nope)", "--out", str(tmp_path / "b")]) == 2
    assert "icl2024_task(task=...): must be one of sparse_parity" in capsys.readouterr().err
    assert main(["train", "--recipe", "icl2024_task(tsk=1)", "--out", str(tmp_path / "c")]) == 2
    assert "--recipe: icl2024_task has no argument 'tsk'; its arguments: task" in capsys.readouterr().err
