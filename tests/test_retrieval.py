"""Vector retrieval (in-context-learning-2024/in-context) and the retrieval learner, against a numpy loop."""

import numpy as np
import pytest
import torch

from conftest import assert_train_refuses
from iclab.config import load_config
from iclab.errors import ConfigError
from iclab.learners import make_learner
from iclab.tasks import make_task
from iclab.types import Prompts


def _task(*overrides):
    return make_task(load_config(None, ["task.name=vector_retrieval", *overrides]).task)


def test_the_query_repeats_a_uniform_earlier_point():
    task = _task("task.n_dims=3", "task.n_points=6")
    p = task.eval_prompts(5000, seed=0)
    pick = p.info["query_index"]
    rows = torch.arange(5000)
    assert torch.equal(p.xs[:, -1], p.xs[rows, pick]) and torch.equal(p.ys[:, -1], p.ys[rows, pick])
    counts = torch.bincount(pick, minlength=5).double() / 5000
    assert float((counts - 0.2).abs().max()) < 0.03  # each of the 5 stored points equally likely
    stored = p.ys[:, :-1]
    assert abs(float(stored.mean())) < 0.03 and abs(float(stored.var()) - 1) < 0.05
    assert abs(float(torch.corrcoef(torch.stack([p.xs[:, 0, 0], p.ys[:, 0]]))[0, 1])) < 0.05  # y independent of x
    torch.testing.assert_close(task.label(p.xs, p.info), p.ys)


def _numpy_retrieval(xs, ys, tol=1e-8):
    b, n, _ = xs.shape
    out = np.zeros((b, n))
    for i in range(b):
        for q in range(n):
            for j in reversed(range(q)):
                if np.sum((xs[i, j] - xs[i, q]) ** 2) <= tol * (np.sum(xs[i, q] ** 2) + 1):
                    out[i, q] = ys[i, j]
                    break
    return out


def test_retrieval_equals_a_numpy_loop_and_takes_the_latest_match():
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(20, 9, 3, generator=g, dtype=torch.float64)
    ys = torch.randn(20, 9, generator=g, dtype=torch.float64)
    xs[:, 4] = xs[:, 1]  # repeats, so the latest match must win
    xs[:, 7] = xs[:, 1]
    xs[:, 8] = xs[:, 4]
    ours = make_learner("retrieval").predict(Prompts(xs, ys)).numpy()
    np.testing.assert_allclose(ours, _numpy_retrieval(xs.numpy(), ys.numpy()), atol=0)
    assert np.array_equal(ours[:, 8], ys[:, 7].numpy()) and np.all(ours[:, [0, 1, 2, 3]] == 0)


def test_retrieval_is_exact_on_the_task_and_nothing_else_is():
    task = _task()
    p = task.eval_prompts(500, seed=1)
    err = {
        name: float(task.error(make_learner(name).predict(p), p.ys)[:, -1].mean()) for name in task.relevant_learners()
    }
    assert err["retrieval"] == 0 and err["knn(k=1)"] < 1e-12
    assert err["least_squares"] > 0.3 and err["zero"] > 0.7
    assert bool(task.error(p.ys, p.ys)[:, :-1].isnan().all())  # only the query is scored
    loss = task.loss(torch.zeros_like(p.ys), p.ys)
    assert float(loss) == pytest.approx(float((p.ys[:, -1] ** 2).mean()))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task.n_points=1"], "task.n_points: must be at least 2"),
        (["task.curriculum.points_start=3"], "task.curriculum.points_start: vector_retrieval has no curriculum"),
    ],
)
def test_bad_retrieval_settings_are_refused(overrides, message, capsys, tmp_path):
    with pytest.raises(ConfigError, match=message.split(":")[0]):
        _task(*overrides)
    assert_train_refuses(["task.name=vector_retrieval", *overrides], message, capsys, tmp_path / "r")


def test_bad_retrieval_tolerance_is_refused():
    with pytest.raises(ConfigError, match="retrieval: tol must be a non-negative number"):
        make_learner("retrieval(tol=-1)")
