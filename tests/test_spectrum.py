"""The spectrum instrument (Panwar et al. 2023's simplicity-bias figure): amplitudes against a closed form, and the
instrument on a tiny Fourier-series run against the truth it must reproduce for the Bayes predictor."""

import math

import pytest
import torch

from iclab.analysis.spectrum import GRID, amplitudes
from iclab.cli import main
from iclab.config import load_config
from iclab.tables import read_table
from iclab.tasks import make_task
from iclab.training.loop import train


def test_amplitudes_of_a_trigonometric_polynomial():
    x = torch.arange(GRID, dtype=torch.float64) / GRID  # one period
    f = (
        0.7
        + 1.5 * torch.cos(2 * math.pi * 3 * x)
        - 2.0 * torch.sin(2 * math.pi * 3 * x)
        + 0.4 * torch.sin(2 * math.pi * 9 * x)
    )
    amp = amplitudes(f.unsqueeze(0))[0]
    expected = torch.zeros(GRID // 2 + 1, dtype=torch.float64)
    expected[0], expected[3], expected[9] = 0.7, 2.5, 0.4
    torch.testing.assert_close(amp, expected, atol=1e-12, rtol=0)


def test_a_mixture_of_fourier_series_on_one_period_has_that_period():
    same = make_task(
        load_config(
            None,
            [
                "task.name=mixture",
                "task.n_dims=1",
                "task.components=[{name: fourier_series, max_frequency: 2}, {name: fourier_series, max_frequency: 5}]",
            ],
        ).task
    )
    assert same.periodic_domain == (-5.0, 5.0) and same.max_frequency == 5
    assert make_task(load_config(None, []).task).periodic_domain is None


@pytest.fixture(scope="module")
def fourier_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spectrum") / "run"
    cfg = load_config(
        None,
        ["task.name=fourier_series", "task.n_dims=1", "task.n_points=13", "task.max_frequency=3"]
        + ["model.n_layer=1", "model.n_embd=16", "model.n_head=2", "model.encoder=stacked", "train.steps=5"]
        + ["train.batch_size=8", "train.eval_every=0", "train.device=cpu", "eval.n_prompts=32"],
    )
    train(cfg, folder, progress_bar=False)
    return folder


def test_the_spectrum_instrument_reproduces_the_truth_for_the_bayes_predictor(fourier_run, capsys):
    assert main(["analyze", str(fourier_run), "--only", "spectrum"]) == 0
    rows = read_table(fourier_run / "analysis" / "spectrum.csv")
    bayes = [c for c in rows[0] if c not in ("k", "frequency", "model", "truth")][0]
    assert bayes == "feature_least_squares"
    for r in rows:
        if int(r["frequency"]) > 3:  # the task has no energy above its highest frequency
            assert float(r["truth"]) < 1e-6 and float(r[bayes]) < 1e-6
        assert math.isfinite(float(r["model"]))
    last = max(int(r["k"]) for r in rows)  # 12 examples >= 2 K + 1 = 7 coefficients: the Bayes predictor is exact
    for r in (r for r in rows if int(r["k"]) == last):
        assert float(r[bayes]) == pytest.approx(float(r["truth"]), abs=1e-4)
    assert (fourier_run / "analysis" / "spectrum.png").is_file()
    assert main(["eval", str(fourier_run)]) == 0 and main(["report", str(fourier_run)]) == 0
    assert "Spectrum of the predicted function" in (fourier_run / "report.html").read_text()
    capsys.readouterr()


def test_the_spectrum_is_refused_where_there_is_no_period(tmp_path, capsys):
    folder = tmp_path / "lr"
    cfg = load_config(
        None,
        ["task.n_dims=2", "task.n_points=5", "model.n_layer=1", "model.n_embd=16", "model.n_head=2"]
        + ["train.steps=2", "train.batch_size=4", "train.eval_every=0", "train.device=cpu", "eval.n_prompts=16"],
    )
    train(cfg, folder, progress_bar=False)
    capsys.readouterr()
    assert main(["analyze", str(folder), "--only", "spectrum"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "periodic one-dimensional domain" in err, err
