"""Run folders: where a run keeps its config, metrics, checkpoints, curves, plots and report.

    runs/<name>/
      config.yaml          the fully resolved config
      metrics.jsonl        one JSON object per logged step
      checkpoints/step-00001000/
      eval/curves.csv      learner, shift, k, mean, ci_low, ci_high
      plots/*.png
      report.html
      pool.npy             the run's copy of task.pool_file, when its task pool comes from a file
"""

from __future__ import annotations

import json
from pathlib import Path

from iclab.errors import RunFolderError


def read_run_config(run_dir: Path):
    """The resolved config saved in a run folder."""
    from iclab.config import ConfigError, read_yaml, run_config_from_dict

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder")
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RunFolderError(f"{path}: missing; is {run_dir} a run folder made by `iclab train`?")
    try:
        return run_config_from_dict(read_yaml(path))
    except ConfigError as e:
        raise RunFolderError(f"{path}: {e}") from None


def load_model(run_dir: Path, device=None):
    """Rebuild a run's network from its config and load the newest checkpoint's weights.

    Returns ``(config, model, step)``.
    """
    import torch

    from iclab.models import build_model
    from iclab.train.checkpoint import latest_checkpoint

    from iclab.tasks import make_task

    cfg = read_run_config(run_dir)
    ckpt = latest_checkpoint(Path(run_dir))
    model = build_model(cfg.model, cfg.task.n_dims, make_task(cfg.task).n_classes)
    try:
        model.load_state_dict(ckpt.model)
    except RuntimeError:
        raise RunFolderError(f"{ckpt.path / 'model.pt'}: weights do not match the model in config.yaml") from None
    if device is not None:
        model = model.to(device)
    model.eval()
    return cfg, model, ckpt.step


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash; the rest is still good
    return records
