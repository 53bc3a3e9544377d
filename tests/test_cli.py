"""The command line as a user meets it: one-line errors with exit code 2, nothing on disk damaged,
and train -> eval -> report end to end."""

import csv
import shutil
import subprocess
import sys

import pytest

from iclab.config import load_config, save_config


def iclab(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "iclab", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def _assert_clean_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def tiny_config(tmp_path, tiny_overrides):
    path = tmp_path / "tiny.yaml"
    save_config(load_config(None, tiny_overrides), path)
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny run trained, evaluated and reported through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    overrides = [
        "task.n_dims=3",
        "task.n_points=7",
        "model.n_layer=1",
        "model.n_embd=16",
        "model.n_head=2",
        "train.steps=10",
        "train.batch_size=8",
        "train.device=cpu",
        "train.threads=1",
        "train.log_every=5",
        "train.eval_every=5",
        "train.eval_prompts=16",
        "eval.n_prompts=64",
    ]
    save_config(load_config(None, overrides), root / "c.yaml")
    result = iclab("train", root / "c.yaml", "--out", root / "run")
    assert result.returncode == 0, result.stderr
    return root / "run", result


@pytest.mark.slow
def test_help_and_list():
    assert iclab("--help").returncode == 0
    out = iclab("list").stdout
    for name in (
        "linear_regression",
        "transformer",
        "interleaved",
        "stacked",
        "least_squares",
        "ridge(lam=1.0)",
        "knn(k=3)",
        "demo",
    ):
        assert name in out


@pytest.mark.slow
def test_train_eval_report_end_to_end(trained_run):
    run, result = trained_run
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "eval/curves.csv",
        "plots/curves_standard.png",
        "plots/training.png",
        "report.html",
    ):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader(open(run / "eval" / "curves.csv")))
    assert list(rows[0]) == ["learner", "shift", "k", "mean", "ci_low", "ci_high"]
    assert {r["learner"] for r in rows} == {"model", "least_squares", "knn(k=3)", "averaging", "zero"}
    assert {int(r["k"]) for r in rows} == set(range(7))
    assert all(float(r["ci_low"]) <= float(r["mean"]) <= float(r["ci_high"]) for r in rows)
    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html  # opens offline: no external assets
    assert "Least Squares" in result.stdout


@pytest.mark.slow
def test_eval_with_chosen_learners(trained_run, tmp_path):
    run = tmp_path / "run"  # a copy: re-evaluating rewrites eval/, which the other tests read from the shared run
    shutil.copytree(trained_run[0], run)
    result = iclab("eval", run, "--learner", "ridge(lam=0.5)", "--learner", "gd(steps=3, lr=0.2)", "--prompts", 32)
    assert result.returncode == 0, result.stderr
    learners = {r["learner"] for r in csv.DictReader(open(run / "eval" / "curves.csv"))}
    assert learners == {"model", "ridge(lam=0.5)", "gd(steps=3, lr=0.2)"}
    assert iclab("report", run).returncode == 0


def _snapshot(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "args, needles",
    [
        (["train", "missing.yaml"], ["missing.yaml: no such config file"]),
        (["train", "{cfg}", "--set", "train.stepz=3"], ["train.stepz: unknown field"]),
        (["train", "{cfg}", "--set", "train.steps=-1"], ["train.steps: must be positive, got -1"]),
        (["train", "{cfg}", "--set", "model.n_embd=abc"], ["model.n_embd: expected an integer, got 'abc'"]),
        (["train", "{cfg}", "--set", "task.name=sinusoids"], ["task.name: unknown task 'sinusoids'"]),
        (["train", "{cfg}", "--set", "model.name=mamba9"], ["model.name: unknown model 'mamba9'"]),
        (["train", "{cfg}", "--set", "model.n_positions=4"], ["model.n_positions: must be at least 13"]),
        (["train", "{cfg}", "--set", "eval.learners=[sage]"], ["eval.learners[0]: unknown learner 'sage'"]),
        (["train", "{cfg}", "--set", "train.device=tpu"], ["train.device"]),
        (["train", "{cfg}", "--set", "nonsense"], ["--set: expected key=value"]),
        (["train"], ["train needs a CONFIG file"]),
        (["train", "--recipe", "nope"], ["--recipe: unknown recipe 'nope'"]),
        (["eval", "{tmp}/nowhere"], ["nowhere: no such run folder"]),
        (["eval", "{tmp}"], ["config.yaml: missing"]),
        (["report", "{tmp}/nowhere"], ["nowhere: no such run folder"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needles, tmp_path, tiny_config):
    args = [a.format(cfg=tiny_config, tmp=tmp_path) for a in args]
    _assert_clean_error(iclab(*args, cwd=tmp_path), *needles)
    assert not (tmp_path / "runs").exists()  # nothing was written


def test_bad_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: [1,\n")
    _assert_clean_error(iclab("train", bad, cwd=tmp_path), "bad.yaml: not valid YAML")


@pytest.mark.slow
def test_existing_run_is_not_damaged(trained_run, tmp_path):
    run, _ = trained_run
    before = _snapshot(run)
    # a fresh run into the same folder, and a resume with a changed model, are both refused
    _assert_clean_error(iclab("train", run / "config.yaml", "--out", run), "already holds a run", "--resume")
    _assert_clean_error(
        iclab("train", run / "config.yaml", "--out", run, "--resume", "--set", "model.n_layer=3"),
        "model.n_layer: differs from the run's saved config.yaml",
    )
    _assert_clean_error(iclab("eval", run, "--shift", "sideways"), "--shift: unknown shift 'sideways'")
    _assert_clean_error(iclab("eval", run, "--learner", "ridge(lam=0)"), "lam must be positive")
    _assert_clean_error(iclab("eval", run, "--prompts", "0"), "--prompts: must be a positive integer")
    assert _snapshot(run) == before


@pytest.mark.slow
def test_run_folder_problems(trained_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(trained_run[0], run)
    (run / "eval" / "curves.csv").unlink()
    _assert_clean_error(iclab("report", run), "curves.csv: missing; run `iclab eval")
    newest = sorted((run / "checkpoints").iterdir())[-1]
    (newest / "optimizer.pt").write_bytes(b"\x00garbage")
    _assert_clean_error(iclab("eval", run), "optimizer.pt: corrupt checkpoint file")
    _assert_clean_error(iclab("train", "--resume", "--out", run), "optimizer.pt: corrupt checkpoint file")
    shutil.rmtree(run / "checkpoints")
    _assert_clean_error(iclab("eval", run), "no checkpoint found")
    (run / "config.yaml").write_text("model: {n_layer: zero}\n")
    _assert_clean_error(iclab("eval", run), "config.yaml: model.n_layer: expected an integer")


@pytest.mark.slow
def test_resume_through_the_cli(trained_run, tmp_path):
    run = tmp_path / "more"
    shutil.copytree(trained_run[0], run)
    result = iclab("train", "--resume", "--out", run, "--set", "train.steps=14")
    assert result.returncode == 0, result.stderr
    assert "trained 14 steps" in result.stderr
    assert (run / "checkpoints" / "step-00000014").is_dir()


@pytest.mark.slow
def test_overwrite_refuses_to_delete_the_pool_file_it_reads(tmp_path, tiny_overrides):
    """Re-running a task-pool run's config.yaml into its own folder would delete the pool copy it names."""
    import numpy as np

    np.save(tmp_path / "mine.npy", np.ones((4, 3)))
    overrides = [
        *tiny_overrides,
        "task.name=task_pool",
        "task.pool_size=4",
        f"task.pool_file={tmp_path / 'mine.npy'}",
        "train.steps=5",
        "eval.after_train=false",
    ]
    run = tmp_path / "r"
    result = iclab("train", "--recipe", "demo", *[a for o in overrides for a in ("--set", o)], "--out", run)
    assert result.returncode == 0, result.stderr
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    _assert_clean_error(
        iclab("train", run / "config.yaml", "--out", run, "--overwrite"), "task.pool_file:", "--overwrite would delete"
    )
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_overwrite_refuses_a_foreign_folder(tmp_path, tiny_config):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"meow")
    _assert_clean_error(iclab("train", tiny_config, "--out", foreign, "--overwrite"), "not an iclab run folder")
    assert (foreign / "cat.jpg").read_bytes() == b"meow"


@pytest.mark.slow
def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path, tiny_config):
    result = iclab("train", tiny_config, "--out", tmp_path / "r", "--set", "task.noise_std=1e30", cwd=tmp_path)
    assert result.returncode == 1 and "non-finite loss" in result.stderr
    assert not (tmp_path / "r").exists()
    again = iclab("train", tiny_config, "--out", tmp_path / "r", cwd=tmp_path)  # no --overwrite needed
    assert again.returncode == 0, again.stderr


@pytest.mark.slow
def test_a_reader_that_stops_early_is_no_error():
    """``iclab list | head -1``: the reader is gone before iclab writes (``true`` reads nothing); no traceback,
    exit 0."""
    proc = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {sys.executable} -m iclab list | true"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
