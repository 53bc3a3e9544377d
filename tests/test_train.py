"""Training: exact resume, atomic checkpoints, non-finite loss, signals, and that it learns."""

import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch

from iclab.config import load_config
from iclab.errors import RunFolderError, TrainingError
from iclab.training import checkpoint as ckpt_mod
from iclab.training.checkpoint import latest_checkpoint, list_checkpoints
from iclab.training.loop import train
from iclab.training.schedule import lr_at


def _params(run_dir):
    return latest_checkpoint(run_dir).model


def _assert_same_params(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_schedule():
    kw = dict(lr=1.0, steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(10, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.55)
    assert lr_at(110, **kw) == pytest.approx(0.1)


def test_resume_is_bitwise_exact(tmp_path, tiny_overrides):
    cfg = load_config(None, tiny_overrides + ["train.steps=24", "train.checkpoint_every=5"])
    straight = tmp_path / "straight"
    train(cfg, straight, progress_bar=False)
    split = tmp_path / "split"
    first = train(cfg, split, stop_after=12, progress_bar=False)
    assert first.status == "interrupted" and first.step == 12
    second = train(cfg, split, resume=True, progress_bar=False)
    assert second.step == 24 and second.status == "finished"
    _assert_same_params(_params(straight), _params(split))
    # the metrics log is continuous: each step logged once
    steps = [json.loads(line)["step"] for line in (split / "metrics.jsonl").read_text().splitlines() if "loss" in line]
    assert steps == sorted(set(steps)) == [5, 10, 15, 20, 24]


def test_fused_adamw_is_the_default_and_trains_like_foreach(tmp_path, tiny_overrides):
    """train.adamw: auto takes the fused kernel on the CPU; it rounds differently from foreach, nothing more."""
    from iclab.models import build_model
    from iclab.training.loop import make_optimizer

    runs = {}
    for impl in ("auto", "fused", "foreach"):
        cfg = load_config(None, tiny_overrides + [f"train.adamw={impl}"])
        fused = make_optimizer(build_model(cfg.model, 3), cfg).defaults.get("fused")
        assert bool(fused) == (impl != "foreach")
        train(cfg, tmp_path / impl, progress_bar=False)
        runs[impl] = _params(tmp_path / impl)
    _assert_same_params(runs["auto"], runs["fused"])
    moved = max((runs["fused"][k] - runs["foreach"][k]).abs().max().item() for k in runs["fused"])
    assert 0 <= moved < 1e-5, moved  # 20 steps of lr 1e-3: float rounding apart, not a different update


def test_fused_adamw_where_there_is_none(monkeypatch, tiny_overrides):
    """adamw: fused is refused in one line naming the field where torch has no fused kernel; auto falls back."""
    from iclab.errors import ConfigError
    from iclab.models import build_model
    from iclab.training.loop import make_optimizer

    real = torch.optim.AdamW

    def no_fused(params, fused=None, **kw):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real(params, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", no_fused)
    auto = load_config(None, tiny_overrides)
    assert make_optimizer(build_model(auto.model, 3), auto).defaults["foreach"]
    fused = load_config(None, tiny_overrides + ["train.adamw=fused"])
    with pytest.raises(ConfigError, match="^train.adamw: fused AdamW is not available here"):
        make_optimizer(build_model(fused.model, 3), fused)


def test_bf16_autocast_trains_and_resumes_bitwise(tmp_path, tiny_overrides):
    """train.precision: bf16 runs the forward pass in bfloat16 (the weights move differently from float32's) and
    keeps float32 weights and AdamW state, and resume stays exact."""
    cfg = load_config(None, tiny_overrides + ["train.precision=bf16", "train.checkpoint_every=5"])
    train(cfg, tmp_path / "straight", progress_bar=False)
    train(cfg, tmp_path / "split", stop_after=12, progress_bar=False)
    train(cfg, tmp_path / "split", resume=True, progress_bar=False)
    bf16 = _params(tmp_path / "straight")
    _assert_same_params(bf16, _params(tmp_path / "split"))
    assert all(t.dtype == torch.float32 for t in bf16.values())
    train(load_config(None, tiny_overrides), tmp_path / "fp32", progress_bar=False)
    fp32 = _params(tmp_path / "fp32")
    gap = max((bf16[k] - fp32[k]).abs().max().item() for k in bf16)
    assert 1e-6 < gap < 0.05, gap  # bfloat16's rounding (8 bits of mantissa) shows, and stays small
    losses = [
        json.loads(line)["loss"]
        for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
        if "loss" in line
    ]
    assert all(map(math.isfinite, losses))


def test_resume_can_extend_steps_but_not_change_the_model(tmp_path, tiny_overrides):
    cfg = load_config(None, tiny_overrides)
    train(cfg, tmp_path / "r", progress_bar=False)
    longer = load_config(None, tiny_overrides + ["train.steps=25"])
    assert train(longer, tmp_path / "r", resume=True, progress_bar=False).step == 25
    other = load_config(None, tiny_overrides + ["model.n_layer=3"])
    with pytest.raises(Exception, match="model.n_layer: differs from the run's saved config.yaml"):
        train(other, tmp_path / "r", resume=True, progress_bar=False)


def test_a_pool_file_run_keeps_its_own_copy(tmp_path, tiny_overrides):
    """A task pool read from a file is copied into the run: config.yaml names the copy, evaluation works
    after the original is gone, and resuming with the original config (same pool) is allowed."""
    import numpy as np

    from iclab.evaluate import evaluate_run
    from iclab.rundir import read_run_config

    original = tmp_path / "mine.npy"
    np.save(original, np.random.default_rng(0).standard_normal((5, 3)))
    overrides = tiny_overrides + ["task.name=task_pool", "task.pool_size=5", f"task.pool_file={original}"]
    run = tmp_path / "r"
    train(load_config(None, overrides), run, progress_bar=False)
    saved = read_run_config(run).task.pool_file
    assert saved == str((run / "pool.npy").resolve()) and (run / "pool.npy").read_bytes() == original.read_bytes()
    assert train(load_config(None, [*overrides, "train.steps=25"]), run, resume=True, progress_bar=False).step == 25
    assert read_run_config(run).task.pool_file == saved
    np.save(original, np.zeros((5, 3)))  # a different pool under the original name: not this run's
    with pytest.raises(Exception, match="task.pool_file: differs from the run's saved config.yaml"):
        train(load_config(None, [*overrides, "train.steps=30"]), run, resume=True, progress_bar=False)
    original.unlink()
    rows = evaluate_run(run)
    assert rows and all(np.isfinite(r["mean"]) for r in rows)


def test_fresh_training_refuses_an_existing_run(tmp_path, tiny_overrides):
    cfg = load_config(None, tiny_overrides)
    train(cfg, tmp_path / "r", progress_bar=False)
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    with pytest.raises(RunFolderError, match="already holds a trained run"):
        train(cfg, tmp_path / "r", progress_bar=False)
    assert {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()} == before


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, tiny_overrides, monkeypatch):
    cfg = load_config(None, tiny_overrides + ["train.steps=20", "train.checkpoint_every=10"])
    run = tmp_path / "r"
    real_save = ckpt_mod._save_file
    calls = {"n": 0}

    def dying_save(obj, path):
        calls["n"] += 1
        if calls["n"] == 5:  # step 10 wrote 3 files; die in the middle of step 20's second file
            path.write_bytes(b"half")
            raise OSError("disk full")
        real_save(obj, path)

    monkeypatch.setattr(ckpt_mod, "_save_file", dying_save)
    with pytest.raises(OSError, match="disk full"):
        train(cfg, run, progress_bar=False)
    monkeypatch.setattr(ckpt_mod, "_save_file", real_save)
    assert [p.name for p in list_checkpoints(run)] == ["step-00000010"]
    assert latest_checkpoint(run).step == 10
    assert not any(p.name.startswith(".tmp") for p in (run / "checkpoints").iterdir())
    # and the run resumes from it to the same weights as an uninterrupted run
    train(cfg, run, resume=True, progress_bar=False)
    train(cfg, tmp_path / "straight", progress_bar=False)
    _assert_same_params(_params(run), _params(tmp_path / "straight"))


def test_leftover_temporary_folder_is_ignored(tmp_path, tiny_overrides):
    cfg = load_config(None, tiny_overrides)
    train(cfg, tmp_path / "r", progress_bar=False)
    junk = tmp_path / "r" / "checkpoints" / ".tmp-step-00000099-1"
    junk.mkdir()
    (junk / "model.pt").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path / "r").step == 20


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, tiny_overrides):
    cfg = load_config(None, tiny_overrides)
    train(cfg, tmp_path / "r", progress_bar=False)
    newest = list_checkpoints(tmp_path / "r")[-1]
    (newest / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunFolderError, match="model.pt: corrupt checkpoint file"):
        latest_checkpoint(tmp_path / "r")


def test_non_finite_loss_stops_before_the_optimiser_step(tmp_path, tiny_overrides, monkeypatch):
    cfg = load_config(None, tiny_overrides + ["task.x_scale=1e30"])
    steps = {"n": 0}
    real_step = torch.optim.AdamW.step

    def counting_step(self, *a, **k):
        steps["n"] += 1
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", counting_step)
    with pytest.raises(TrainingError, match=r"non-finite loss \((inf|nan)\) at step 0; stopped before the optimiser"):
        train(cfg, tmp_path / "r", progress_bar=False)
    assert steps["n"] == 0


def _spawn_train(run_dir, overrides):
    from iclab.config import save_config

    config = run_dir.parent / f"{run_dir.name}.yaml"
    save_config(load_config(None, overrides), config)
    cmd = [sys.executable, "-m", "iclab", "train", str(config), "--out", str(run_dir)]
    return subprocess.Popen(
        cmd + ["--set", "eval.after_train=false"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_checkpoint(run_dir, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and not list_checkpoints(run_dir):
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        time.sleep(0.05)
    assert list_checkpoints(run_dir), "no checkpoint appeared"


LONG = ["train.steps=400", "train.checkpoint_every=7"]


def _cli_overrides(tiny_overrides):
    return [o for o in tiny_overrides if not o.startswith("train.steps")] + LONG


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(tmp_path, tiny_overrides):
    overrides = _cli_overrides(tiny_overrides)
    run = tmp_path / "killed"
    proc = _spawn_train(run, overrides)
    _wait_for_checkpoint(run, proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(run).step
    assert killed_at < 400
    cfg = load_config(None, overrides)
    train(cfg, run, resume=True, progress_bar=False)
    train(cfg, tmp_path / "straight", progress_bar=False)
    _assert_same_params(_params(run), _params(tmp_path / "straight"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_saves_and_exits_zero(sig, tmp_path, tiny_overrides):
    overrides = _cli_overrides(tiny_overrides) + ["train.checkpoint_every=1000"]
    run = tmp_path / "stopped"
    proc = _spawn_train(run, overrides)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "metrics.jsonl").is_file():
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"{sig.name}: saved" in err and "Traceback" not in err
    step = latest_checkpoint(run).step
    assert 0 < step < 400


@pytest.mark.slow
def test_short_training_beats_the_zero_predictor(tmp_path):
    """A ~20 s run on d = 3 learns in context: at k = 2d its error is far below predicting zero (1.0)."""
    from iclab.evaluate import error_at, evaluate_run

    cfg = load_config(
        None,
        [
            "task.n_dims=3",
            "task.n_points=7",
            "model.encoder=stacked",
            "model.n_layer=2",
            "model.n_embd=32",
            "model.n_head=2",
            "train.steps=400",
            "train.lr=3e-3",
            "train.warmup_steps=50",
            "train.batch_size=64",
            "train.device=cpu",
            "train.eval_every=0",
            "train.checkpoint_every=1000",
            "eval.n_prompts=512",
        ],
    )
    train(cfg, tmp_path / "r", progress_bar=False)
    rows = evaluate_run(tmp_path / "r", plot=False)
    model_err = error_at(rows, "model", 6)
    zero_err = error_at(rows, "zero", 6)
    assert zero_err > 0.8
    assert model_err < 0.35 * zero_err, model_err
    # and the network improves with more examples, as a learner should
    assert model_err < error_at(rows, "model", 1)


@pytest.mark.parametrize("bar", [True, False])
def test_progress_bar_and_plain_lines(bar):
    import io

    from iclab.training.progress import Progress

    out = io.StringIO()
    progress = Progress(total=10, stream=out, bar=bar, every=5)
    for step in range(1, 11):
        progress.update(step, loss=1.0 / step)
    progress.write("done")
    progress.close()
    text = out.getvalue()
    assert "done" in text
    if bar:
        assert "10/10" in text
    else:
        assert text.splitlines()[:2] == [line for line in text.splitlines() if line.startswith("step ")][:2]
        assert "step 5/10 loss 0.2" in text and "step 10/10 loss 0.1" in text


# ----------------------------------------------------------------------------------------------
# the training promises, harder: many kills, a late non-finite loss, dropout, Ctrl-C, RNG on any device


@pytest.mark.slow
def test_kill_9_at_random_moments_across_many_saves(tmp_path, tiny_overrides):
    """Three processes killed at random moments while they checkpoint every step (so some kills land inside
    a save); each resumed run ends bitwise equal to the uninterrupted one."""
    import random

    overrides = [o for o in _cli_overrides(tiny_overrides) if not o.startswith("train.checkpoint_every")] + [
        "train.checkpoint_every=1",
        "train.keep_checkpoints=2",
    ]
    cfg = load_config(None, overrides)
    train(cfg, tmp_path / "straight", progress_bar=False)
    straight = _params(tmp_path / "straight")
    rng = random.Random(20261130)
    for trial in range(3):
        run = tmp_path / f"killed{trial}"
        proc = _spawn_train(run, overrides)
        _wait_for_checkpoint(run, proc)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert latest_checkpoint(run).step < 400  # killed before the end, and a complete checkpoint survived
        train(cfg, run, resume=True, progress_bar=False)
        _assert_same_params(_params(run), straight)


def test_a_late_non_finite_loss_keeps_the_checkpoints_and_resumes_exactly(tmp_path, tiny_overrides, monkeypatch):
    """The loss turns NaN at step 13, after checkpoints at steps 5 and 10: training stops before the optimiser
    step, names the last checkpoint, and resuming from it (the fault gone) ends where an uninterrupted run ends."""
    from iclab.tasks import TASKS

    overrides = [o for o in tiny_overrides if not o.startswith(("train.steps", "train.checkpoint_every"))] + [
        "train.steps=20",
        "train.checkpoint_every=5",
        "train.keep_checkpoints=5",
    ]
    cfg = load_config(None, overrides)
    train(cfg, tmp_path / "straight", progress_bar=False)
    cls = TASKS[cfg.task.name]
    real_loss, calls = cls.loss, {"n": 0}

    def faulty(self, pred, ys):
        calls["n"] += 1
        loss = real_loss(self, pred, ys)
        return loss * float("nan") if calls["n"] == 14 else loss  # the 14th batch is step 13

    monkeypatch.setattr(cls, "loss", faulty)
    run = tmp_path / "r"
    with pytest.raises(
        TrainingError, match=r"non-finite loss \(nan\) at step 13; .*the last checkpoint is .*step-00000010"
    ):
        train(cfg, run, progress_bar=False)
    assert [p.name for p in list_checkpoints(run)] == ["step-00000005", "step-00000010"]
    monkeypatch.setattr(cls, "loss", real_loss)
    train(cfg, run, resume=True, progress_bar=False)
    _assert_same_params(_params(run), _params(tmp_path / "straight"))


def test_resume_with_dropout_restores_the_generator(tmp_path, tiny_overrides, monkeypatch):
    """With dropout the masks come from torch's generator, so an exact resume needs its saved state: resumed
    == uninterrupted, and the same resume without restoring the generator differs (the test can fail)."""
    cfg = load_config(None, tiny_overrides + ["model.dropout=0.2"])
    train(cfg, tmp_path / "straight", progress_bar=False)
    train(cfg, tmp_path / "split", stop_after=10, progress_bar=False)
    train(cfg, tmp_path / "split", resume=True, progress_bar=False)
    _assert_same_params(_params(tmp_path / "split"), _params(tmp_path / "straight"))
    import iclab.training.loop as loop

    train(cfg, tmp_path / "norestore", stop_after=10, progress_bar=False)
    torch.manual_seed(999)  # what the generator holds when its state is not restored
    monkeypatch.setattr(loop, "set_rng_state", lambda state: None)
    train(cfg, tmp_path / "norestore", resume=True, progress_bar=False)
    a, b = _params(tmp_path / "norestore"), _params(tmp_path / "straight")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_generator_states_load_on_the_cpu_wherever_the_weights_go(tmp_path, tiny_overrides):
    """A GPU resume loads the checkpoint with map_location=cuda; torch.set_rng_state takes a CPU byte tensor.
    Loading onto another device (meta here, so no GPU is needed) must leave the generator states on the CPU
    and restorable."""
    cfg = load_config(None, tiny_overrides)
    train(cfg, tmp_path / "r", progress_bar=False)
    ckpt = latest_checkpoint(tmp_path / "r", map_location="meta")
    assert next(iter(ckpt.model.values())).device.type == "meta"
    assert ckpt.rng["cpu"].device.type == "cpu" and ckpt.rng["cpu"].dtype == torch.uint8
    before = torch.get_rng_state()
    ckpt_mod.set_rng_state(ckpt.rng)
    assert torch.equal(torch.get_rng_state(), ckpt.rng["cpu"])
    torch.set_rng_state(before)
    with pytest.raises((RuntimeError, NotImplementedError, TypeError)):  # the bug this guards against
        torch.set_rng_state(ckpt.rng["cpu"].to("meta"))
