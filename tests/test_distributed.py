"""Data-parallel training (torchrun, gloo on CPU): two processes give the weights of one process on the same
global batch, up to the order of floating-point reductions, for a regression task and a token task (whose
loss is weighted by scored tokens); an interrupted data-parallel run resumes to the same weights; bad input."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iclab.config import load_config, save_config
from iclab.training.checkpoint import latest_checkpoint
from iclab.training.loop import train

TESTS = Path(__file__).parent
TOLERANCE = 1e-4  # max |w_ddp - w_single| after 24 AdamW steps (measured: a few 1e-6)

COMMON = [
    "train.steps=24",
    "train.batch_size=16",
    "train.warmup_steps=3",
    "train.device=cpu",
    "train.threads=1",
    "train.log_every=4",
    "train.eval_every=0",
    "train.checkpoint_every=8",
]
CONFIGS = {
    "regression": [
        "task.name=linear_regression",
        "task.n_dims=4",
        "task.n_points=9",
        "model.n_layer=2",
        "model.n_embd=32",
        "model.n_head=2",
    ],
    "tokens": [
        "task.name=regbench",
        "task.n_train=64",
        "task.max_length=96",
        "model.n_layer=2",
        "model.n_embd=32",
        "model.n_head=2",
    ],
}


def torchrun(*args, cwd):
    if shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists():
        pytest.skip("torchrun not installed")
    exe = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    return subprocess.run(
        [exe, "--standalone", "--nproc_per_node", "2", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def _config(tmp_path, kind, *extra):
    path = tmp_path / f"{kind}.yaml"
    save_config(load_config(None, COMMON + CONFIGS[kind] + list(extra)), path)
    return path


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["regression", "tokens"])
def test_two_processes_match_one(tmp_path, kind):
    cfg_path = _config(tmp_path, kind)
    out = torchrun("-m", "iclab", "train", cfg_path, "--out", tmp_path / "ddp", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    train(load_config(cfg_path), tmp_path / "one", progress_bar=False, stream=open("/dev/null", "w"))
    ddp, one = latest_checkpoint(tmp_path / "ddp"), latest_checkpoint(tmp_path / "one")
    assert ddp.step == one.step == 24
    assert _max_diff(ddp.model, one.model) < TOLERANCE
    # rank 0 alone wrote the run folder: one metrics line per logged step, the whole batch's loss
    lines = [ln for ln in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines() if '"loss"' in ln]
    ref = [ln for ln in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines() if '"loss"' in ln]
    assert len(lines) == len(ref) == 6
    import json

    for a, b in zip(lines, ref):
        assert json.loads(a)["loss"] == pytest.approx(json.loads(b)["loss"], rel=1e-4)
    assert (tmp_path / "ddp" / "report.html").is_file()


@pytest.mark.slow
def test_interrupted_data_parallel_run_resumes(tmp_path):
    cfg_path = _config(tmp_path, "regression")
    first = torchrun(TESTS / "ddp_train.py", cfg_path, tmp_path / "ddp", 12, cwd=tmp_path)
    assert first.returncode == 0 and "interrupted at step 12" in first.stdout, first.stderr[-3000:]
    assert latest_checkpoint(tmp_path / "ddp").step == 12
    second = torchrun(TESTS / "ddp_train.py", cfg_path, tmp_path / "ddp", cwd=tmp_path)
    assert second.returncode == 0 and "finished at step 24" in second.stdout, second.stderr[-3000:]
    train(load_config(cfg_path), tmp_path / "one", progress_bar=False, stream=open("/dev/null", "w"))
    assert _max_diff(latest_checkpoint(tmp_path / "ddp").model, latest_checkpoint(tmp_path / "one").model) < TOLERANCE


@pytest.mark.slow
def test_batch_must_split_evenly(tmp_path):
    cfg_path = _config(tmp_path, "regression", "train.batch_size=15")
    out = torchrun("-m", "iclab", "train", cfg_path, "--out", tmp_path / "ddp", cwd=tmp_path)
    assert out.returncode != 0
    assert "train.batch_size: 15 must be divisible by the 2 processes" in out.stderr
    assert "Traceback" not in "\n".join(ln for ln in out.stderr.splitlines() if "iclab" in ln)
    assert not (tmp_path / "ddp").exists()
