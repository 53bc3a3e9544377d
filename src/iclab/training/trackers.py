"""Experiment trackers: TensorBoard event files and Weights & Biases, optional extras, off by default.

``train.trackers: [tensorboard, wandb]`` sends every scalar that ``metrics.jsonl`` records to each tracker, at
the same step (``val_err_by_k`` as one scalar per k, ``val_err_by_k/k=3``). ``metrics.jsonl`` stays the
source of truth; a tracker is a view of it.

- ``tensorboard`` (``pip install 'iclab[tensorboard]'``) writes ``RUN/tensorboard/``; a resumed run purges the
  events after its checkpoint, so the curves show no doubled steps. ``tensorboard --logdir runs/`` shows
  every run.
- ``wandb`` (``pip install 'iclab[wandb]'``) logs to ``RUN/wandb/`` in offline mode unless ``WANDB_MODE`` says
  otherwise (``wandb sync RUN/wandb/offline-run-*`` uploads later). The project is ``WANDB_PROJECT``, else
  ``iclab``. The run's W&B id is kept in ``RUN/wandb_id``, so a resumed run continues the same W&B run.

Both are imported only when asked for, and checked before training starts.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

from iclab.errors import ConfigError

TRACKERS = {"tensorboard": ("tensorboard", "iclab[tensorboard]"), "wandb": ("wandb", "iclab[wandb]")}

__all__ = ["TRACKERS", "Trackers", "check_trackers", "scalars"]


def check_trackers(names: list[str], field: str = "train.trackers") -> None:
    """Each tracker named is known and its package installed (one-line :class:`ConfigError` otherwise)."""
    for i, name in enumerate(names):
        if name not in TRACKERS:
            raise ConfigError(f"{field}[{i}]: unknown tracker {name!r}; available: {', '.join(TRACKERS)}")
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"{field}[{i}]: {name} is not installed (pip install '{extra}')")


def scalars(record: dict) -> dict[str, float]:
    """A metrics.jsonl record as named scalars (lists become one scalar per k)."""
    out = {}
    for key, value in record.items():
        if key == "step":
            continue
        if isinstance(value, list):
            for k, v in enumerate(value):
                if isinstance(v, (int, float)) and math.isfinite(v):
                    out[f"{key}/k={k}"] = float(v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


class Trackers:
    """The trackers of one run; :meth:`log` takes each metrics.jsonl record."""

    def __init__(self, names: list[str], run_dir: Path, config: dict, name: str, resume_step: int | None) -> None:
        check_trackers(names)
        self.tb = self.wandb_run = None
        run_dir = Path(run_dir)
        if "tensorboard" in names:
            from torch.utils.tensorboard import SummaryWriter

            # events after the checkpoint are about to be logged again: drop them (steps >= purge_step)
            self.tb = SummaryWriter(
                log_dir=str(run_dir / "tensorboard"), purge_step=None if resume_step is None else resume_step + 1
            )
        if "wandb" in names:
            import wandb

            id_file = run_dir / "wandb_id"
            run_id = id_file.read_text().strip() if resume_step is not None and id_file.is_file() else None
            if run_id is None:
                import secrets

                run_id = secrets.token_hex(4)  # W&B ids: letters and digits
                id_file.write_text(run_id + "\n")
            self.wandb_run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "iclab"),
                name=name,
                id=run_id,
                config=config,
                dir=str(run_dir),
                resume="allow",
                mode=os.environ.get("WANDB_MODE", "offline"),
            )

    def log(self, record: dict) -> None:
        values = scalars(record)
        step = record["step"]
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(key, value, step)
        if self.wandb_run is not None:
            self.wandb_run.log(values, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
