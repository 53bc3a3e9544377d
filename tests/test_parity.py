"""Sparse parity (in-context-learning-2024/in-context): the sampler's statistics and the elimination learner
against a brute-force enumeration."""

from collections import Counter
from itertools import combinations

import numpy as np
import pytest
import torch

from conftest import assert_train_refuses
from iclab.config import load_config
from iclab.errors import ConfigError
from iclab.learners import make_learner
from iclab.tasks import make_task


def _task(*overrides):
    return make_task(load_config(None, ["task.name=sparse_parity", *overrides]).task)


def test_samples_are_parities_of_a_uniform_subset():
    task = _task("task.n_dims=5", "task.k=2", "task.n_points=9")
    p = task.eval_prompts(4000, seed=3)
    xs, ys, support = p.xs.numpy(), p.ys.numpy(), p.info["support"].numpy()
    assert set(np.unique(xs)) == {-1.0, 1.0} and set(np.unique(ys)) == {-1.0, 1.0}
    assert abs(xs.mean()) < 0.01 and abs(ys.mean()) < 0.02  # each bit and each label is a fair coin
    np.testing.assert_array_equal(ys, np.stack([x[:, s].prod(-1) for x, s in zip(xs, support)]))
    counts = Counter(map(tuple, support.tolist()))
    assert set(counts) == set(combinations(range(5), 2))  # all 10 subsets, sorted, about 400 each
    assert max(counts.values()) < 400 * 1.25 and min(counts.values()) > 400 * 0.75


def test_the_curriculum_draws_the_subset_among_active_inputs():
    task = _task("task.n_dims=8", "task.k=3", "task.curriculum.dims_start=4")
    batch = task.train_batch(500, seed=0, step=0)
    assert int(batch.info["support"].max()) <= 3 and bool((batch.xs[:, :, 4:] == 0).all())
    assert bool((batch.ys.abs() == 1).all())


def _brute_force(xs, ys, k):
    """For each prompt and prefix: the mean parity of the query over the subsets consistent with the prefix."""
    b, n, d = xs.shape
    out = np.zeros((b, n))
    for i in range(b):
        for q in range(n):
            alive = [
                s for s in combinations(range(d), k) if all(np.prod(xs[i, j, list(s)]) == ys[i, j] for j in range(q))
            ]
            out[i, q] = np.mean([np.prod(xs[i, q, list(s)]) for s in alive]) if alive else 0.0
    return out


@pytest.mark.parametrize("d, k", [(5, 1), (6, 2), (6, 3)])
def test_elimination_equals_brute_force_enumeration(d, k):
    task = _task(f"task.n_dims={d}", f"task.k={k}", "task.n_points=10")
    p = task.eval_prompts(12, seed=1)
    ours = make_learner("parity_elimination", task=task).predict(p).numpy()
    np.testing.assert_allclose(ours, _brute_force(p.xs.numpy(), p.ys.numpy(), k), atol=1e-12)
    assert make_learner("posterior_mean", task=task).predict(p).numpy() == pytest.approx(ours)


def test_with_label_noise_the_posterior_weighs_subsets_by_likelihood():
    task = _task("task.n_dims=5", "task.k=2", "task.n_points=8", "task.noise_std=0.5")
    p = task.eval_prompts(6, seed=4)
    ours = make_learner("parity_elimination", task=task).predict(p).double().numpy()
    xs, ys = p.xs.double().numpy(), p.ys.double().numpy()
    subsets = [list(s) for s in combinations(range(5), 2)]
    for i in range(6):
        for q in range(8):
            par = np.array([[np.prod(xs[i, j, s]) for s in subsets] for j in range(q + 1)])  # (q + 1, S)
            w = np.exp(-0.5 * (((par[:q] - ys[i, :q, None]) / 0.5) ** 2).sum(0))
            assert ours[i, q] == pytest.approx((w * par[q]).sum() / w.sum(), abs=1e-6)


def test_elimination_is_exact_once_the_subset_is_pinned_and_beats_least_squares():
    task = _task("task.n_dims=6", "task.k=2", "task.n_points=25")
    p = task.eval_prompts(500, seed=2)
    exact = make_learner("parity_elimination", task=task).predict(p)
    err = task.error(exact, p.ys).mean(0)
    assert float(err[0]) == pytest.approx(1.0, abs=0.1) and float(err[-1]) < 1e-3  # 24 examples pin 1 of 15 subsets
    ls = task.error(make_learner("least_squares").predict(p), p.ys).mean(0)
    assert float(ls[-1]) > 0.5  # a parity is not linear: least squares stays near chance


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task.n_dims=4", "task.k=5"], "task.k: must be at most task.n_dims (4), got 5"),
        (["task.k=0"], "task.k: must be positive"),
        (["task.k=3", "task.curriculum.dims_start=2"], "task.curriculum.dims_start: must be between task.k (3)"),
    ],
)
def test_bad_parity_settings_are_refused(overrides, message, capsys, tmp_path):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _task(*overrides)
    assert_train_refuses(["task.name=sparse_parity", *overrides], message, capsys, tmp_path / "r")


def test_too_many_subsets_turns_the_learner_off_with_a_reason():
    task = _task("task.n_dims=60", "task.k=6")
    assert "parity subsets to enumerate" in task.posterior_unsupported()
    assert task.relevant_learners()[0] == "least_squares"
    with pytest.raises(ConfigError, match="parity_elimination"):
        make_learner("parity_elimination", task=task)


def test_labels_follow_moved_inputs():
    task = _task("task.n_dims=5", "task.k=2")
    p = task.eval_prompts(3, seed=0)
    flipped = -p.xs
    torch.testing.assert_close(task.label(flipped, p.info), p.ys)  # an even parity is unchanged by flipping all bits
