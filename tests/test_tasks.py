"""Tasks: batches are a pure function of (seed, step); curriculum; the sampling distribution."""

import pytest
import torch

from conftest import real_valued
from iclab.config import load_config
from iclab.tasks import TASKS, Curriculum, make_task


def _task(*overrides):
    return make_task(load_config(None, list(overrides)).task)


@pytest.mark.parametrize("name", real_valued(TASKS))
def test_batch_is_a_function_of_seed_and_step(name):
    task = _task(f"task.name={name}")
    a = task.train_batch(8, seed=3, step=17)
    b = task.train_batch(8, seed=3, step=17)
    torch.testing.assert_close(a.xs, b.xs, rtol=0, atol=0)
    torch.testing.assert_close(a.ys, b.ys, rtol=0, atol=0)
    assert not torch.equal(a.xs, task.train_batch(8, seed=3, step=18).xs)
    assert not torch.equal(a.xs, task.train_batch(8, seed=4, step=17).xs)
    # drawing other batches in between changes nothing (no hidden global RNG)
    torch.manual_seed(123)
    task.train_batch(8, seed=3, step=5)
    torch.testing.assert_close(task.train_batch(8, seed=3, step=17).ys, a.ys, rtol=0, atol=0)


@pytest.mark.parametrize("name", real_valued(TASKS))
def test_eval_prompts_are_fixed_and_differ_from_training(name):
    task = _task(f"task.name={name}")
    e1, e2 = task.eval_prompts(16, seed=0), task.eval_prompts(16, seed=0)
    assert torch.equal(e1.xs, e2.xs)
    assert not torch.equal(e1.xs[:8], task.train_batch(8, seed=0, step=0).xs)


def test_curriculum_schedule():
    cur = Curriculum(dims_start=5, dims_inc=1, dims_every=2000, points_start=11, points_inc=2, points_every=2000)
    assert [cur.dims_at(s, 20) for s in (0, 1999, 2000, 30000, 10**6)] == [5, 5, 6, 20, 20]
    assert [cur.points_at(s, 41) for s in (0, 2000, 4000, 10**6)] == [11, 13, 15, 41]
    assert Curriculum().dims_at(0, 7) == 7


def test_curriculum_zeroes_inactive_dimensions_and_shortens_prompts():
    task = _task(
        "task.n_dims=6",
        "task.n_points=9",
        "task.curriculum.dims_start=2",
        "task.curriculum.dims_every=10",
        "task.curriculum.points_start=5",
        "task.curriculum.points_every=10",
    )
    p = task.train_batch(4, seed=0, step=0)
    assert p.xs.shape == (4, 5, 6)
    assert torch.all(p.xs[:, :, 2:] == 0) and torch.all(p.xs[:, :, :2] != 0)
    assert task.train_batch(4, seed=0, step=10).xs.shape == (4, 7, 6)
    assert task.eval_prompts(4, seed=0).xs.shape == (4, 9, 6)


def test_linear_regression_distribution():
    task = _task("task.n_dims=4", "task.n_points=50", "task.noise_std=0.5", "task.x_scale=2.0")
    p = task.eval_prompts(2000, seed=0)
    assert abs(p.xs.std().item() - 2.0) < 0.02
    assert abs(p.info["w"].std().item() - 1.0) < 0.03
    resid = p.ys - torch.einsum("bnd,bd->bn", p.xs, p.info["w"])
    assert abs(resid.std().item() - 0.5) < 0.01
    assert abs(resid.mean().item()) < 0.01


def test_relevant_learners_put_bayes_first():
    assert _task().relevant_learners()[0] == "least_squares"
    assert _task("task.noise_std=0.5").relevant_learners()[0] == "ridge(lam=0.25)"
