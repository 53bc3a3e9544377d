"""A sweep folder on disk.

    sweeps/<name>/
      sweep.json           the index: the sweep file as read, and every point's values, config and status
      <point>/             an ordinary run folder per point (config.yaml, metrics.jsonl, checkpoints/, eval/, ...)
      logs/<point>.log     what the point's process printed (appended across attempts)
      slurm/               submitit's job files (SLURM executor only)
      compare.csv, plots/, report.html   the comparison (iclab compare)

The index is written only by the driver (``iclab sweep``), atomically. A point's status is read from its run
folder, so the index can never claim more than the disk holds: *pending* (no checkpoint), *interrupted*
(a checkpoint before the last step: it resumes), *trained* (the last step, not yet evaluated) or
*finished*. *failed* is recorded by the driver from the point's exit status.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from iclab.errors import RunFolderError
from iclab.utils import atomic_write_text, flatten

INDEX = "sweep.json"
FORMAT = 1
_STEP = re.compile(r"^step-(\d+)$")

__all__ = [
    "INDEX",
    "DriverLock",
    "check_same_sweep",
    "last_step",
    "point_lock",
    "point_state",
    "read_index",
    "write_index",
]


def read_index(folder: Path) -> dict:
    """The index of the sweep in ``folder``; :class:`RunFolderError` when it is not a sweep folder."""
    path = Path(folder) / INDEX
    if not path.is_file():
        raise RunFolderError(f"{folder}: not a sweep folder (no {INDEX}); `iclab sweep SWEEP.yaml` makes one")
    try:
        index = json.loads(path.read_text())
        if not isinstance(index, dict) or not isinstance(index.get("points"), list):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise RunFolderError(f"{path}: not a sweep index (expected JSON with a list of points)") from None
    return index


def write_index(folder: Path, index: dict) -> None:
    index["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_text(Path(folder) / INDEX, json.dumps(index, indent=1) + "\n")


def config_difference(old: dict, new: dict) -> str | None:
    """The first field in which two point configs differ in what they compute, or None (threads, device and
    logging fields may change, as on resume)."""
    from iclab.training.loop import RESUMABLE_CHANGES

    a, b = flatten(old), flatten(new)
    for key in sorted(set(a) | set(b)):
        if key in RESUMABLE_CHANGES:
            continue
        if a.get(key) != b.get(key):
            return f"{key} is {a.get(key)!r} there, {b.get(key)!r} now"
    return None


def check_same_sweep(folder: Path, index: dict, points: list) -> None:
    """A sweep folder takes only the sweep that made it: every point it holds must still be a point of the new
    sweep, with the same config (new points may be added: more seeds, more values)."""
    new = {p.name: p for p in points}
    for old in index["points"]:
        name = old.get("name")
        if name not in new:
            raise RunFolderError(
                f"{folder}: holds a different sweep (its point {name!r} is not a point of this one); "
                f"give the sweep another name: or move the folder"
            )
        diff = config_difference(old.get("config", {}), new[name].config)
        if diff:
            raise RunFolderError(
                f"{folder}: holds a different sweep (point {name}: {diff}); give the sweep another "
                f"name: or move the folder"
            )


def last_step(run_dir: Path) -> int:
    """The step of the newest complete checkpoint of a run folder (0 when there is none); reads no tensors."""
    from iclab.training.checkpoint import FILES

    root = Path(run_dir) / "checkpoints"
    best = 0
    if root.is_dir():
        for child in root.iterdir():
            m = _STEP.match(child.name)
            if m and all((child / f).is_file() for f in FILES):
                best = max(best, int(m.group(1)))
    return best


def point_state(run_dir: Path, config: dict) -> str:
    """pending, interrupted, trained or finished, from what the run folder holds."""
    step = last_step(run_dir)
    if step == 0:
        return "pending"
    if step < config["train"]["steps"]:
        return "interrupted"
    if config["eval"].get("after_train", True) and not (Path(run_dir) / "report.html").is_file():
        return "trained"
    return "finished"


class _Flock:
    def __init__(self, path: Path, blocking: bool) -> None:
        self.path, self.blocking, self.fd = Path(path), blocking, None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            return False
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def point_lock(folder: Path, name: str) -> _Flock:
    """Held by the process training a point, so that a point never has two writers (a driver restarted after
    kill -9 waits here for the old worker to save and exit). The kernel drops it when the process dies."""
    return _Flock(Path(folder) / ".locks" / f"{name}.lock", blocking=True)


class DriverLock(_Flock):
    """One driver per sweep folder."""

    def __init__(self, folder: Path) -> None:
        super().__init__(Path(folder) / ".locks" / "driver.lock", blocking=False)

    def __enter__(self):
        if not self.acquire():
            try:
                pid = self.path.read_text().strip()
            except OSError:
                pid = "?"
            raise RunFolderError(
                f"{self.path.parent.parent}: another `iclab sweep` is running on this sweep "
                f"(pid {pid}); wait for it or stop it"
            )
        return self


def new_index(sweep, folder: Path) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "name": sweep.name,
        "sweep": sweep.source,
        "axes": sweep.axes,
        "points": [{"name": p.name, "values": p.values, "config": p.config, "status": "pending"} for p in sweep.points],
    }
