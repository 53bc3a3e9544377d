"""Atomic checkpoints: ``checkpoints/step-00001000/{model.pt, optimizer.pt, rng.pt, state.json}``.

A checkpoint is written into a hidden temporary folder, flushed to disk, then renamed into place, so
a crash while saving leaves the previous checkpoints untouched and never a half-written one under a
``step-*`` name. Tensors are loaded back with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from iclab.errors import RunFolderError

FILES = ("model.pt", "optimizer.pt", "rng.pt", "state.json")
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class Checkpoint:
    path: Path
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    state: dict[str, Any]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _save_file(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators: the CPU one from ``state["cpu"]``, each CUDA device's from its own entry of
    ``state["cuda"]``. Both take CPU byte tensors, wherever the checkpoint was loaded to."""
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(
    run_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], keep: int
) -> Path:
    """Write the checkpoint of ``step`` atomically and prune all but the newest ``keep``."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    if final.exists():
        return final
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _save_file(model.state_dict(), tmp / "model.pt")
        _save_file(optimizer.state_dict(), tmp / "optimizer.pt")
        _save_file(rng_state(), tmp / "rng.pt")
        with open(tmp / "state.json", "w") as f:
            json.dump({"step": step, **state}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first (temporary folders are ignored)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and child.is_dir() and all((child / name).is_file() for name in FILES):
            found.append((int(m.group(1)), child))
    return [path for _, path in sorted(found)]


def clean_temporaries(run_dir: Path) -> None:
    """Remove folders left by a save that crashed half-way."""
    root = run_dir / "checkpoints"
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith(".tmp-"):
                shutil.rmtree(child, ignore_errors=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load one checkpoint folder; a missing or unreadable file raises :class:`RunFolderError`."""
    for name in FILES:
        if not (path / name).is_file():
            raise RunFolderError(f"{path}: incomplete checkpoint, {name} is missing")
    try:
        state = json.loads((path / "state.json").read_text())
        step = int(state["step"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise RunFolderError(f"{path / 'state.json'}: corrupt checkpoint state (expected JSON with a 'step')") from None
    loaded = {}
    for name in ("model.pt", "optimizer.pt", "rng.pt"):
        # generator states stay on the CPU: torch.set_rng_state (and the CUDA one) take CPU byte tensors
        where = "cpu" if name == "rng.pt" else map_location
        try:
            loaded[name] = torch.load(path / name, map_location=where, weights_only=True)
        except Exception as e:  # torch raises several types for truncated or foreign files
            reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
            raise RunFolderError(f"{path / name}: corrupt checkpoint file ({reason})") from None
        problem = _shape_problem(name, loaded[name])
        if problem:
            raise RunFolderError(f"{path / name}: not an iclab checkpoint file ({problem})")
    return Checkpoint(path, step, loaded["model.pt"], loaded["optimizer.pt"], loaded["rng.pt"], state)


def _shape_problem(name: str, obj: Any) -> str | None:
    """Why a readable checkpoint file does not hold what iclab writes there, or None."""
    if name == "model.pt":
        if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
        ):
            return "expected a state dict of named tensors"
    elif name == "optimizer.pt":
        if not isinstance(obj, dict) or not {"state", "param_groups"} <= set(obj):
            return "expected an optimiser state dict with 'state' and 'param_groups'"
    elif name == "rng.pt":
        if not isinstance(obj, dict) or not isinstance(obj.get("cpu"), torch.Tensor) or obj["cpu"].dtype != torch.uint8:
            return "expected generator states with a 'cpu' byte tensor"
    return None


def latest_checkpoint(run_dir: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """The newest complete checkpoint of a run; :class:`RunFolderError` when there is none."""
    found = list_checkpoints(run_dir)
    if not found:
        raise RunFolderError(f"{run_dir}: no checkpoint found (expected {run_dir}/checkpoints/step-*/)")
    return load_checkpoint(found[-1], map_location)
