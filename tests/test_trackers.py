"""Trackers (optional extras): TensorBoard event files and Weights & Biases offline runs receive the same scalars
as metrics.jsonl, a resumed run continues them, and a tracker that is not installed is refused before training."""

import json
import struct
import subprocess
import sys
import time

import pytest

from iclab.config import load_config
from iclab.errors import ConfigError
from iclab.rundir import read_metrics
from iclab.training.loop import train
from iclab.training.trackers import scalars

OVERRIDES = [
    "task.n_dims=3",
    "task.n_points=7",
    "model.n_layer=1",
    "model.n_embd=16",
    "model.n_head=2",
    "train.steps=20",
    "train.batch_size=8",
    "train.warmup_steps=2",
    "train.device=cpu",
    "train.threads=1",
    "train.log_every=5",
    "train.eval_every=10",
    "train.eval_prompts=16",
    "train.checkpoint_every=10",
]


def _expected(run_dir) -> dict[tuple[str, int], float]:
    out = {}
    for rec in read_metrics(run_dir):
        for key, value in scalars(rec).items():
            out[(key, rec["step"])] = value
    return out


def test_tensorboard_gets_every_scalar_of_metrics_jsonl(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config(None, OVERRIDES + ["train.trackers=[tensorboard]"])
    train(cfg, tmp_path / "run", stop_after=10, progress_bar=False, stream=open("/dev/null", "w"))
    train(cfg, tmp_path / "run", resume=True, progress_bar=False, stream=open("/dev/null", "w"))
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    got = {(tag, e.step): e.value for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)}
    want = _expected(tmp_path / "run")
    assert {("loss", s) for s in (5, 10, 15, 20)} <= set(want) and ("val_err_by_k/k=6", 20) in want
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
    # the resumed run purged nothing it needed and doubled no step
    assert [e.step for e in acc.Scalars("loss")] == [5, 10, 15, 20]


def _wandb_history(path) -> list[dict]:
    """The history records of a W&B run file (a LevelDB-style log of protobuf records, 32 KiB blocks); None until
    the run's exit record is there (W&B's service process writes the file, and may lag behind ``finish()``)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, chunks, rows, ended = 7, b"", [], False
    while pos + 7 <= len(data):
        room = 32768 - pos % 32768
        if room < 7:
            pos += room
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(chunks)
            chunks = b""
            if rec.WhichOneof("record_type") == "history":
                rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
            ended |= rec.WhichOneof("record_type") == "exit"
    return rows if ended else None


def test_wandb_offline_gets_every_scalar_of_metrics_jsonl(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = load_config(None, OVERRIDES + ["train.trackers=[wandb]"])
    train(cfg, tmp_path / "run", progress_bar=False, stream=open("/dev/null", "w"))
    files = list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    deadline = time.time() + 60
    while (history := _wandb_history(files[0])) is None and time.time() < deadline:
        time.sleep(0.2)
    assert history is not None, "the W&B run file was never completed"
    got = {}
    for row in history:
        step = row.pop("_step")
        for key, value in row.items():
            if not key.startswith("_"):
                got[(key, step)] = value
    want = _expected(tmp_path / "run")
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-6), key
    assert (tmp_path / "run" / "wandb_id").read_text().strip() in files[0].name


@pytest.mark.slow
def test_unknown_or_missing_tracker_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"train.trackers\[0\]: must be tensorboard or wandb"):
        load_config(None, OVERRIDES + ["train.trackers=[mlflow]"])
    (tmp_path / "c.yaml").write_text("train: {trackers: [tensorboard], steps: 5, device: cpu}\n")
    code = (
        "import sys; sys.modules['tensorboard'] = None; import importlib.util as u; f = u.find_spec; "
        "u.find_spec = lambda n, *a: None if n == 'tensorboard' else f(n, *a); from iclab.cli import main; "
        "sys.exit(main(['train', 'c.yaml', '--out', 'run']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (
        "iclab: error: train.trackers[0]: tensorboard is not installed (pip install 'iclab[tensorboard]')"
    )
    assert not (tmp_path / "run").exists()
