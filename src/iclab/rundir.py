"""Run-folder I/O: where a run keeps its config, metrics, checkpoints, curves, plots and report, and the
functions that read them back (the entry points that *write* them are :func:`iclab.train` (:mod:`iclab.training`),
:func:`iclab.evaluate.evaluate_run`, :func:`iclab.analysis.analyze_run` and :func:`iclab.report.write_report`).

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

import csv
import json
from pathlib import Path

from iclab.config import read_run_config
from iclab.errors import RunFolderError

CURVE_COLUMNS = ("learner", "shift", "k", "mean", "ci_low", "ci_high")  # eval/curves.csv, one row per (learner, shift, k)

__all__ = ["CURVE_COLUMNS", "load_model", "read_curves", "read_metrics", "read_run_config", "shift_slug"]


def load_model(run_dir: Path, device=None):
    """Rebuild a run's network from its config and load the newest checkpoint's weights.

    Returns ``(config, model, step)``.
    """
    from iclab.models import build_model
    from iclab.tasks import make_task
    from iclab.training.checkpoint import latest_checkpoint

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


def read_curves(path: Path) -> list[dict]:
    if not path.is_file():
        raise RunFolderError(f"{path}: missing; run `iclab eval {path.parent.parent}` first")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return [{"learner": r["learner"], "shift": r["shift"], "k": int(r["k"]), "mean": float(r["mean"]),
                 "ci_low": float(r["ci_low"]), "ci_high": float(r["ci_high"])} for r in rows]
    except (KeyError, ValueError, TypeError, csv.Error):
        raise RunFolderError(f"{path}: not a curves file (columns {', '.join(CURVE_COLUMNS)})") from None


def shift_slug(shift: str) -> str:
    """The file-name form of a shift spec: ``plots/curves_<slug>.png``."""
    import re

    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", shift).strip("_")
