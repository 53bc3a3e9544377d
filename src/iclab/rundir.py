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

import json
import os
import shutil
import time
from pathlib import Path

from iclab.config import read_run_config
from iclab.errors import RunFolderError
from iclab.utils import check_run_location

__all__ = [
    "check_run_location",
    "discard_replaced",
    "prepare_new_run",
    "restore_replaced",
    "load_model",
    "read_curves",
    "read_metrics",
    "read_run_config",
    "read_summary",
    "shift_slug",
]


def load_model(run_dir: Path, device=None):
    """Rebuild a run's network from its config and load the newest checkpoint's weights.

    Returns ``(config, model, step)``.
    """
    from iclab.kinds import build_run_network
    from iclab.tasks import make_task
    from iclab.training.checkpoint import latest_checkpoint

    cfg = read_run_config(run_dir)
    ckpt = latest_checkpoint(Path(run_dir))
    task = make_task(cfg.task)
    model = build_run_network(cfg, task)
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
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash; the rest is still good
        if _well_formed(record):
            records.append(record)
    return records


def _well_formed(record) -> bool:
    """A metrics line as training writes it: a step, and numbers (or a list of them) in its fields."""
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        return False
    for key in ("loss", "lr", "grad_norm", "elapsed_s"):
        if key in record and not isinstance(record[key], (int, float)):
            return False
    errs = record.get("val_err_by_k", [])
    return isinstance(errs, list) and all(isinstance(e, (int, float)) for e in errs)


def read_curves(path: Path) -> list[dict]:
    """A run's ``eval/curves.csv``: one row per learner, shift and k (token runs add the ``metric`` column)."""
    from iclab.kinds.real.curves import TYPES
    from iclab.tables import read_table

    return read_table(path, TYPES, what="curves file", hint=f"run `iclab eval {Path(path).parent.parent}` first")


def read_generation(path: Path) -> list[dict]:
    """A generation-evaluated run's ``eval/generation.csv``: exact match per learner, overall and by group."""
    from iclab.kinds.tokens.generation import GENERATION_TYPES
    from iclab.tables import read_table

    return read_table(
        path, GENERATION_TYPES, what="generation file", hint=f"run `iclab eval {Path(path).parent.parent}` again"
    )


def read_summary(path: Path) -> list[dict]:
    """A token run's ``eval/summary.csv``: each learner's metrics averaged over every scored position."""
    from iclab.kinds.tokens.metrics import SUMMARY_TYPES
    from iclab.tables import read_table

    return read_table(
        path, SUMMARY_TYPES, what="summary file", hint=f"run `iclab eval {Path(path).parent.parent}` first"
    )


def shift_slug(shift: str) -> str:
    """The file-name form of a shift spec: ``plots/curves_<slug>.png``."""
    from iclab.kinds.real.figures import shift_slug as slug

    return slug(shift)


# ----------------------------------------------------------------------------------------------
# making a run folder: every check before anything on disk changes


def prepare_new_run(run_dir: Path, overwrite: bool, cfg) -> Path | None:
    """Check that ``run_dir`` can take a new run, then make room for it. With ``overwrite`` an existing run
    is not deleted but moved aside (a hidden sibling folder, returned), so that it can come back if the new
    run fails to start: :func:`discard_replaced` deletes it once the new run has a checkpoint,
    :func:`restore_replaced` puts it back."""
    run_dir = Path(run_dir)
    check_run_location(run_dir)
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return None
    pool_file = getattr(cfg.task, "pool_file", None)
    if overwrite and pool_file is not None and run_dir.resolve() in Path(pool_file).resolve().parents:
        raise RunFolderError(
            f"task.pool_file: {pool_file} lies inside {run_dir}, which --overwrite would delete; "
            f"copy it elsewhere first, or choose another --out"
        )
    if not (run_dir / "config.yaml").is_file():
        raise RunFolderError(f"{run_dir}: exists, is not empty and is not an iclab run folder; choose another --out")
    if not overwrite:
        raise RunFolderError(
            f"{run_dir}: already holds a run; pass --resume to continue it, --overwrite to "
            f"replace it, or --out to choose another folder"
        )
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise RunFolderError(f"{run_dir}: cannot replace it (permission denied)")
    aside = run_dir.parent / f".{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    os.replace(run_dir, aside)
    return aside


def discard_replaced(aside: Path | None) -> None:
    """Delete the run that ``--overwrite`` moved aside (the new run has its first checkpoint)."""
    if aside is not None and aside.exists():
        shutil.rmtree(aside)


def restore_replaced(run_dir: Path, aside: Path | None) -> None:
    """Put back the run that ``--overwrite`` moved aside, removing what the failed new run wrote."""
    if aside is None or not aside.exists():
        return
    if Path(run_dir).exists():
        shutil.rmtree(run_dir)
    os.replace(aside, run_dir)
