"""Sweeps: the sweep file, the local executor (kill -9 and restart: every point bitwise equal to running it
alone), SLURM through submitit against a stand-in for SLURM's commands (an array, a task preempted with
SIGTERM and requeued), the comparison, and bad input."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from iclab.config import read_run_config
from iclab.errors import ConfigError
from iclab.sweeps import LIBRARY, find_sweep_file, sweep_from_dict
from iclab.sweeps.spec import load_sweep, point_name
from iclab.training.checkpoint import latest_checkpoint
from iclab.training.loop import train

TESTS = Path(__file__).parent

BASE = {
    "task": {"name": "task_pool", "n_dims": 3, "n_points": 7, "noise_std": 0.25},
    "model": {"name": "transformer", "n_layer": 1, "n_embd": 16, "n_head": 2},
    "train": {
        "steps": 200,
        "batch_size": 16,
        "warmup_steps": 5,
        "device": "cpu",
        "threads": 1,
        "log_every": 20,
        "eval_every": 0,
        "checkpoint_every": 25,
    },
    "eval": {"n_prompts": 64},
}


def sweep_file(folder: Path, name: str = "grid", **extra) -> Path:
    data = {"name": name, "config": BASE, "grid": {"task.pool_size": [1, 2, 4, 8]}, "seeds": [0, 1], **extra}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def iclab(*args, cwd, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "iclab", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def _clean_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _alone_weights(run_dir: Path, out: Path) -> dict:
    """Train the point's saved config from scratch in this process: what running the point alone gives."""
    cfg = read_run_config(run_dir)
    train(cfg, out, progress_bar=False, stream=open(os.devnull, "w"))
    return latest_checkpoint(out).model


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------------
# the sweep file


def test_points_names_and_values():
    sweep = sweep_from_dict(
        {
            "name": "s",
            "config": BASE,
            "grid": {"task.pool_size": [1, 4]},
            "zip": {"model.n_layer": [1, 2], "model.n_embd": [16, 32]},
            "seeds": [0, 1, 2],
        }
    )
    assert len(sweep.points) == 2 * 2 * 3
    assert sweep.axes == [["task.pool_size"], ["model.n_layer", "model.n_embd"], ["train.seed"]]
    p = sweep.point("pool_size=4_n_layer=2_n_embd=32_seed=1")
    assert p.config["task"]["pool_size"] == 4 and p.config["model"]["n_layer"] == 2
    assert p.config["model"]["n_embd"] == 32 and p.config["train"]["seed"] == 1
    assert p.config["name"] == p.name and p.config["task"]["noise_std"] == 0.25  # the base is kept
    # keys that end alike are written in full; values are made folder-safe
    assert (
        point_name({"task.n_dims": 3, "model.n_dims": 4}, ["task.n_dims", "model.n_dims"])
        == "task.n_dims=3_model.n_dims=4"
    )
    assert (
        point_name({"train.lr": 0.001, "task.n_tasks": None}, ["train.lr", "task.n_tasks"]) == "lr=0.001_n_tasks=null"
    )


def test_recipe_base_and_set():
    sweep = sweep_from_dict(
        {"name": "r", "recipe": "raventos2023_task_pool", "set": {"train.steps": 7}, "grid": {"task.pool_size": [2, 8]}}
    )
    assert [p.config["task"]["pool_size"] for p in sweep.points] == [2, 8]
    assert all(p.config["train"]["steps"] == 7 and p.config["task"]["n_dims"] == 8 for p in sweep.points)


def test_recipe_arguments_are_axes():
    sweep = sweep_from_dict(
        {
            "name": "m",
            "recipe": "arora2023_mqar",
            "set": {"train.steps": 9},
            "grid": {"recipe_args.family": ["attention", "lstm"], "recipe_args.n_embd": [16, 32]},
        }
    )
    assert [p.name for p in sweep.points][:2] == ["family=attention_n_embd=16", "family=attention_n_embd=32"]
    lstm = sweep.point("family=lstm_n_embd=32")
    assert lstm.config["model"]["name"] == "rnn" and lstm.config["model"]["cell"] == "lstm"
    assert lstm.config["model"]["n_embd"] == 32 and lstm.config["train"]["steps"] == 9  # set: applies to each
    assert sweep.point("family=attention_n_embd=16").config["model"]["positional"] == "rope"
    with pytest.raises(ConfigError, match="family: must be one of"):
        sweep_from_dict({"name": "m", "recipe": "arora2023_mqar", "grid": {"recipe_args.family": ["cnn"]}})
    with pytest.raises(ConfigError, match="sweeps a recipe argument, but the sweep has no recipe"):
        sweep_from_dict({"name": "m", "config": BASE, "grid": {"recipe_args.family": ["lstm"]}})


@pytest.mark.parametrize("name", sorted(p.stem for p in LIBRARY.glob("*.yaml")))
def test_every_shipped_sweep_expands(name):
    sweep = load_sweep(find_sweep_file(name))
    assert len(sweep.points) >= 8 and sweep.compare.metric


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"grid": {"task.pool_sizee": [1, 2]}}, "grid.task.pool_sizee: unknown field"),
        ({"grid": {"task.pool_size": ["many", 2]}}, "grid.task.pool_size: 'many': expected an integer"),
        ({"zip": {"model.n_layer": [1, 0], "model.n_embd": [16, 32]}}, "zip.model.n_layer: 0: must be positive"),
        ({"seeds": [-1]}, "seeds: -1: must be"),
        ({"grid": {"task.pool_size": []}}, "grid.task.pool_size: is empty"),
        ({"grid": {"task.pool_size": 4}}, "grid.task.pool_size: expected a list"),
        ({"zip": {"model.n_layer": [1, 2], "model.n_embd": [16]}}, "lists of different lengths"),
        ({"grid": {"train.seed": [0]}, "seeds": [1]}, "train.seed is swept twice"),
        ({"grid": {"task.pool_size": [1]}, "sed": [0]}, "sed: unknown sweep field"),
        ({}, "no axes"),
        ({"seeds": [0], "recipe": "nope"}, "recipe: unknown recipe 'nope'"),
        ({"seeds": [0], "executor": {"name": "cloud"}}, "executor.name"),
        ({"seeds": [0], "slurm": {"time_min": 0}}, "slurm.time_min"),
    ],
)
def test_bad_axes_are_config_errors(data, needle):
    data = {"name": "bad", **({"config": BASE} if "recipe" not in data else {}), **data}
    with pytest.raises(ConfigError) as e:
        sweep_from_dict(data)
    assert needle in str(e.value), str(e.value)


# ----------------------------------------------------------------------------------------------
# the local executor: killed with kill -9 and restarted


@pytest.fixture(scope="module")
def killed_and_finished(tmp_path_factory):
    """An 8-point sweep whose driver is killed with kill -9 mid-way, then run again to the end."""
    lab = tmp_path_factory.mktemp("sweep")
    path = sweep_file(lab)
    folder = lab / "sweeps" / "grid"
    driver = subprocess.Popen(
        [sys.executable, "-m", "iclab", "sweep", path.name],
        cwd=lab,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once two points are done and another has a checkpoint but is not done
        try:
            points = json.loads((folder / "sweep.json").read_text())["points"]
        except (OSError, ValueError):
            points = []
        done = [p for p in points if p["status"] == "finished"]
        started = [p for p in points if p["status"] == "running" and (folder / p["name"] / "checkpoints").is_dir()]
        if len(done) >= 2 and started:
            break
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    time.sleep(1.0)  # the orphaned workers receive SIGTERM (parent-death signal), save and exit
    from iclab.sweeps.store import point_state

    index = json.loads((folder / "sweep.json").read_text())
    states = {p["name"]: point_state(folder / p["name"], p["config"]) for p in index["points"]}
    second = iclab("sweep", path.name, cwd=lab)
    return lab, folder, states, second


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_weights_of_each_point_alone(killed_and_finished, tmp_path):
    lab, folder, states, second = killed_and_finished
    assert second.returncode == 0, second.stderr
    assert "finished" in states.values() and set(states.values()) != {"finished"}, states
    assert "interrupted" in states.values() or "pending" in states.values(), states
    index = json.loads((folder / "sweep.json").read_text())
    assert [p["status"] for p in index["points"]] == ["finished"] * 8
    # the second driver skipped what was finished and ran the rest
    assert f"{sum(s == 'finished' for s in states.values())} finished; running" in second.stderr
    for p in index["points"]:
        run = folder / p["name"]
        assert (run / "report.html").is_file() and (run / "eval" / "curves.csv").is_file()
        assert _same(latest_checkpoint(run).model, _alone_weights(run, tmp_path / p["name"])), p["name"]
    # rerunning a finished sweep does nothing but the comparison
    third = iclab("sweep", "grid.yaml", cwd=lab)
    assert third.returncode == 0 and "8 finished; running 0" in third.stderr


@pytest.mark.slow
def test_comparison_table_and_report(killed_and_finished):
    lab, folder, _, _ = killed_and_finished
    rows = list(csv.DictReader(open(folder / "compare.csv")))
    assert {"run", "status", "task.pool_size", "train.seed", "learner", "shift", "metric", "value"} <= set(rows[0])
    assert {r["run"] for r in rows} == {p.name for p in folder.iterdir() if (p / "config.yaml").is_file()}
    # each value is the run's own curves at the last k
    run = "pool_size=4_seed=1"
    curves = [r for r in csv.DictReader(open(folder / run / "eval" / "curves.csv")) if r["learner"] == "dmmse"]
    last = max(curves, key=lambda r: int(r["k"]))
    got = [r for r in rows if r["run"] == run and r["learner"] == "dmmse" and r["metric"] == f"error@k={last['k']}"]
    assert len(got) == 1 and float(got[0]["value"]) == pytest.approx(float(last["mean"]), rel=1e-9)
    report = (folder / "report.html").read_text()
    assert f"href='{run}/report.html'" in report and "data:image/png;base64" in report
    assert (folder / "plots" / f"compare_error_at_k{last['k']}.png").stat().st_size > 10_000
    # iclab compare on the sweep and a loose run, grouped by seed
    out = iclab(
        "compare",
        folder,
        "--x",
        "task.pool_size",
        "--by",
        "train.seed",
        "--metric",
        "error_mean",
        "--out",
        lab / "cmp",
        cwd=lab,
    )
    assert out.returncode == 0, out.stderr
    assert "error_mean" in out.stdout and (lab / "cmp" / "plots" / "compare_error_mean.png").is_file()
    # one panel per seed
    out = iclab(
        "compare",
        folder,
        "--x",
        "task.pool_size",
        "--panel",
        "train.seed",
        "--metric",
        "error_mean",
        "--out",
        lab / "cmp2",
        cwd=lab,
    )
    assert out.returncode == 0, out.stderr
    from matplotlib.image import imread

    one, panels = (imread(lab / d / "plots" / "compare_error_mean.png").shape[1] for d in ("cmp", "cmp2"))
    assert panels > 1.8 * one  # the seeds of this sweep side by side


@pytest.mark.slow
def test_dry_run_writes_nothing(killed_and_finished, tmp_path):
    lab, folder, _, _ = killed_and_finished
    before = _snapshot(folder)
    out = iclab("sweep", "grid.yaml", "--dry-run", cwd=lab)
    assert out.returncode == 0 and out.stdout.count("finished") == 8, out.stdout
    assert _snapshot(folder) == before
    path = sweep_file(tmp_path, "fresh")
    out = iclab("sweep", path, "--dry-run", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.count("pending") == 8 and not (tmp_path / "sweeps").exists()


# ----------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing changed


@pytest.mark.slow
def test_a_sweep_folder_takes_only_its_own_sweep(killed_and_finished):
    lab, folder, _, _ = killed_and_finished
    before = _snapshot(folder)
    other = dict(BASE, task=dict(BASE["task"], noise_std=0.5))
    (lab / "other.yaml").write_text(
        yaml.safe_dump({"name": "grid", "config": other, "grid": {"task.pool_size": [1, 2, 4, 8]}, "seeds": [0, 1]})
    )
    _clean_error(iclab("sweep", "other.yaml", cwd=lab), "holds a different sweep", "task.noise_std")
    (lab / "fewer.yaml").write_text(
        yaml.safe_dump({"name": "grid", "config": BASE, "grid": {"task.pool_size": [1, 2]}, "seeds": [0, 1]})
    )
    _clean_error(iclab("sweep", "fewer.yaml", cwd=lab), "holds a different sweep", "pool_size=4_seed=0")
    assert _snapshot(folder) == before


@pytest.mark.parametrize(
    "axes, needle",
    [
        ({"grid": {"task.nope": [1]}}, "task.nope"),
        ({"grid": {"train.lr": ["fast"]}}, "train.lr"),
        ({"grid": {"task.pool_size": []}}, "is empty"),
    ],
)
def test_bad_axes_from_the_cli(tmp_path, axes, needle):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"name": "bad", "config": BASE, **axes}))
    _clean_error(iclab("sweep", "bad.yaml", cwd=tmp_path), "bad.yaml", needle)
    assert not (tmp_path / "sweeps").exists()


def test_slurm_without_submitit_is_refused(tmp_path):
    sweep_file(tmp_path, "s")
    code = (
        "import sys; sys.modules['submitit'] = None; from iclab.cli import main; "
        "sys.exit(main(['sweep', 's.yaml', '--executor', 'slurm']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    _clean_error(out, "--executor slurm", "pip install 'iclab[slurm]'")
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_compare_bad_input(killed_and_finished, tmp_path):
    lab, folder, _, _ = killed_and_finished
    _clean_error(
        iclab("compare", folder, "--x", "model.n_layer", "--out", tmp_path / "c", cwd=lab), "--x", "task.pool_size"
    )
    _clean_error(
        iclab("compare", folder, "--metric", "bleu", "--out", tmp_path / "c", cwd=lab), "--metric", "error_mean"
    )
    _clean_error(
        iclab("compare", folder, "--panel", "model.depth", "--out", tmp_path / "c", cwd=lab),
        "--panel",
        "task.pool_size",
    )
    _clean_error(iclab("compare", tmp_path / "nowhere", cwd=lab), "no such sweep or run folder")
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "config.yaml").write_text("task: {name: linear_regression}\n")
    _clean_error(iclab("compare", tmp_path / "loose", cwd=lab), "not a run's saved config")
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------------------------
# SLURM through submitit, against fake SLURM commands


@pytest.mark.slow
def test_slurm_array_with_a_preempted_task_requeued(tmp_path):
    pytest.importorskip("submitit")
    sys.path.insert(0, str(TESTS))
    import fake_slurm

    env = dict(os.environ, **fake_slurm.install(tmp_path / "bin", tmp_path / "slurm-state"))
    base = dict(BASE, train=dict(BASE["train"], steps=600, checkpoint_every=50))
    (tmp_path / "s.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "array",
                "config": base,
                "grid": {"task.pool_size": [1, 2, 4]},
                "executor": {"name": "slurm"},
                "slurm": {"cpus_per_task": 1, "array_parallelism": 2, "time_min": 30},
            }
        )
    )
    driver = subprocess.Popen(
        [sys.executable, "-m", "iclab", "sweep", "s.yaml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    folder = tmp_path / "sweeps" / "array"
    victim, job = "pool_size=2", None
    deadline = time.time() + 300
    while time.time() < deadline and job is None:  # preempt the task once it has a checkpoint
        try:
            entry = {p["name"]: p for p in json.loads((folder / "sweep.json").read_text())["points"]}[victim]
        except (OSError, ValueError, KeyError):
            entry = {}
        ckpts = folder / victim / "checkpoints"
        if entry.get("job") and ckpts.is_dir() and any(ckpts.iterdir()):
            job = entry["job"]
        time.sleep(0.05)
    assert job, "the task never started"
    subprocess.run(["scancel", job, "--signal", "SIGTERM"], env=env, check=True)
    out, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, out
    index = json.loads((folder / "sweep.json").read_text())
    assert [p["status"] for p in index["points"]] == ["finished"] * 3, out
    starts = {p["name"]: int((tmp_path / "slurm-state" / f"{p['job']}.starts").read_text()) for p in index["points"]}
    assert starts == {"pool_size=1": 1, "pool_size=2": 2, "pool_size=4": 1}, starts  # requeued once
    log = "".join(p.read_text() for p in (folder / "slurm").glob(f"{job}_*log.*"))
    assert "SIGTERM: saved" in log and "resuming" in log, log[-2000:]
    for p in index["points"]:
        run = folder / p["name"]
        assert (run / "report.html").is_file()
        assert _same(latest_checkpoint(run).model, _alone_weights(run, tmp_path / "alone" / p["name"])), p["name"]
