"""Prompt kinds are a seam: a third kind registered from outside the package (docs/examples/
sequence_classification.py: one label per prompt) is trained, evaluated, reported, compared and swept by iclab's
own commands with no change inside iclab; and no shared layer tests which kind it holds."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import iclab

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "sequence_classification.py"
SRC = Path(iclab.__file__).parent

CONFIG = {
    "name": "seqcls",
    "imports": [str(EXAMPLE)],
    "task": {"name": "sequence_sign", "n_dims": 4, "length": 8},
    "model": {"name": "transformer", "n_layer": 1, "n_embd": 32, "n_head": 2},
    "train": {
        "steps": 150,
        "batch_size": 64,
        "lr": 3e-3,
        "warmup_steps": 10,
        "device": "cpu",
        "threads": 1,
        "eval_every": 50,
        "eval_prompts": 256,
        "checkpoint_every": 50,
        "log_every": 25,
    },
    "eval": {"n_prompts": 512},
}


def iclab_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "iclab", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("kind")
    (work / "seqcls.yaml").write_text(yaml.safe_dump(CONFIG))
    result = iclab_cli("train", "seqcls.yaml", "--out", "run", cwd=work)
    assert result.returncode == 0, result.stderr
    return work, result


@pytest.mark.slow
def test_a_kind_from_outside_trains_evaluates_and_reports(trained):
    work, result = trained
    run = work / "run"
    assert "held-out accuracy" in result.stdout
    rows = {r.split(",")[0]: r.split(",") for r in (run / "eval" / "accuracy.csv").read_text().splitlines()[1:]}
    assert float(rows["sum_sign"][1]) == 1.0  # the exact learner
    assert float(rows["model"][1]) > 0.85  # the network learned the task (chance: 0.5)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_accuracy"] for r in records if "val_accuracy" in r][-1] > 0.85  # the kind's own log field
    page = (run / "report.html").read_text()
    assert "Held-out accuracy" in page and "data:image/png;base64" in page and "eval/accuracy.csv" in page
    assert (run / "plots" / "accuracy.png").is_file() and (run / "plots" / "training.png").is_file()
    # every command that works on a run works on it
    again = iclab_cli("eval", "run", "--prompts", "256", cwd=work)
    assert again.returncode == 0 and "held-out accuracy" in again.stdout, again.stderr
    assert iclab_cli("report", "run", cwd=work).returncode == 0
    compared = iclab_cli("compare", "run", str(run) + "_copy_missing", cwd=work)
    assert compared.returncode == 2 and "no such sweep or run folder" in compared.stderr


@pytest.mark.slow
def test_a_kind_from_outside_sweeps(tmp_path):
    sweep = {
        "name": "seqsweep",
        "config": {**CONFIG, "train": {**CONFIG["train"], "steps": 20, "eval_every": 0}},
        "grid": {"model.n_embd": [16, 32]},
    }
    (tmp_path / "seqsweep.yaml").write_text(yaml.safe_dump(sweep))
    result = iclab_cli("sweep", "seqsweep.yaml", "--jobs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "sweeps" / "seqsweep" / "compare.csv").read_text().splitlines()
    accuracy = [line for line in table if ",accuracy," in line]
    assert len(accuracy) == 4  # two points, the network and the exact learner each
    assert all(line.endswith(",1") for line in accuracy if ",sum_sign," in line)


def test_a_bad_field_of_the_outside_kind_is_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**CONFIG, "task": {**CONFIG["task"], "length": 0}}))
    result = iclab_cli("train", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "task.length" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


# the kinds are the only place that knows the kinds
SHARED = [
    "training",
    "evaluate",
    "report",
    "sweeps",
    "cli.py",
    "config.py",
    "rundir.py",
    "analysis",
    "models",
    "learners",
    "tasks/base.py",
    "tasks/shifts.py",
]


def _kind_tests(path: Path) -> list[str]:
    """``isinstance(..., TokenPrompts / TokenTask / Prompts)`` and comparisons with a kind's name in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
            names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            if names & {"TokenPrompts", "TokenTask", "Prompts"}:
                found.append(f"{path.name}:{node.lineno} isinstance of a prompt kind's type")
        if isinstance(node, ast.Compare):
            consts = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant)}
            if consts & {"tokens", "real"}:
                found.append(f"{path.name}:{node.lineno} compares with a kind's name")
    return found


def test_no_shared_layer_tests_the_prompt_kind():
    files = []
    for entry in SHARED:
        p = SRC / entry
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    found = [hit for f in files for hit in _kind_tests(f)]
    assert not found, found


def test_the_kind_checker_finds_kind_tests(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("if task.prompt_kind == 'tokens':\n    pass\nok = isinstance(p, TokenPrompts)\n")
    assert len(_kind_tests(p)) == 2
