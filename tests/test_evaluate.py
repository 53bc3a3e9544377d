"""Evaluation: curves and intervals against numpy, and closed forms for the baselines."""

import numpy as np
import pytest

from iclab.config import load_config
from iclab.evaluate import COLUMNS, error_curves
from iclab.learners import make_learner
from iclab.tasks import make_task


@pytest.fixture(scope="module")
def prompts():
    return make_task(load_config(None, ["task.n_dims=5", "task.n_points=11"]).task).eval_prompts(4000, seed=7)


def _curve(rows, learner):
    return {r["k"]: r for r in rows if r["learner"] == learner}


def test_curve_mean_and_interval_match_numpy(prompts):
    rows = error_curves([make_learner("averaging")], prompts, n_dims=5)
    pred = make_learner("averaging").predict(prompts).numpy()
    err = (pred.astype(np.float64) - prompts.ys.numpy().astype(np.float64)) ** 2 / 5
    mean, sd = err.mean(0), err.std(0, ddof=1)
    cur = _curve(rows, "averaging")
    for k in range(11):
        assert cur[k]["mean"] == pytest.approx(mean[k], rel=1e-6)
        assert cur[k]["ci_high"] - cur[k]["mean"] == pytest.approx(1.959964 * sd[k] / np.sqrt(4000), rel=1e-5)


def test_baselines_match_closed_forms(prompts):
    d = 5
    rows = error_curves([make_learner(s) for s in ("zero", "averaging", "least_squares")], prompts, n_dims=d)
    zero, avg, ls = (_curve(rows, s) for s in ("zero", "averaging", "least_squares"))
    for k in range(1, 11):
        # E[y^2]/d = 1;  averaging: E|w_hat - w|^2 / d = (d + 1) / k;  least squares: (d - k)/d below d, 0 after
        for cur, expected in ((zero, 1.0), (avg, (d + 1) / k), (ls, max(d - k, 0) / d)):
            lo, hi = cur[k]["ci_low"], cur[k]["ci_high"]
            slack = 0.5 * (hi - lo) + 1e-9
            assert lo - slack <= expected <= hi + slack, (k, cur[k], expected)


def test_csv_columns(prompts, tmp_path):
    from iclab.rundir import read_curves
    from iclab.tables import write_table

    rows = error_curves([make_learner("zero")], prompts[:10], n_dims=5)
    text = write_table(tmp_path / "curves.csv", rows, COLUMNS).read_text()
    assert text.splitlines()[0] == "learner,shift,k,mean,ci_low,ci_high"
    assert text.splitlines()[1].startswith("zero,standard,0,")
    back = read_curves(tmp_path / "curves.csv")  # the one reader gives back what the one writer wrote
    assert [(r["learner"], r["k"]) for r in back] == [(r["learner"], r["k"]) for r in rows]
    assert all(abs(a["mean"] - b["mean"]) <= 1e-5 * max(1.0, abs(b["mean"])) for a, b in zip(back, rows))


def test_a_run_logged_once_still_draws_its_training_curves(tmp_path, monkeypatch):
    """A run that logged a single step (train.steps = log_every) draws that step as a point, not an empty panel."""
    import matplotlib.figure

    from iclab.plotting import plot_training

    drawn = []
    real = matplotlib.figure.Figure.savefig

    def keep(fig, *args, **kwargs):
        drawn.extend(line for ax in fig.axes for line in ax.get_lines())
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    plot_training([{"step": 50, "loss": 2.9, "val_err_by_k": [1.0, 0.5, 0.3]}], tmp_path / "t.png")
    assert len(drawn) == 2 and all(line.get_marker() == "o" for line in drawn)
