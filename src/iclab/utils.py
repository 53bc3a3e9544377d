"""Small helpers shared across packages: atomic file writes, devices, seeds, prefix sums."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves either the old file or the new one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_run_location(run_dir: Path) -> None:
    """A run folder is a folder of its own: never the working folder or one of its ancestors, the home
    folder or the root, never an existing file, and somewhere this user can write. Raises
    :class:`RunFolderError` (one line) otherwise; touches nothing."""
    from iclab.errors import RunFolderError

    run_dir = Path(run_dir)
    where = run_dir.expanduser().resolve()
    cwd = Path.cwd().resolve()
    if where == cwd or where in cwd.parents:
        raise RunFolderError(
            f"{run_dir}: is the working folder or one of its ancestors; a run needs a folder of "
            f"its own (e.g. --out runs/NAME)"
        )
    if where == Path.home().resolve() or where == Path(where.anchor):
        raise RunFolderError(f"{run_dir}: is the home folder or the root; a run needs a folder of its own")
    if where.exists() and not where.is_dir():
        raise RunFolderError(f"{run_dir}: exists and is not a folder")
    probe = where
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise RunFolderError(f"{run_dir}: {probe} is a file, so the run folder cannot be made")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunFolderError(f"{run_dir}: cannot write in {probe} (permission denied)")


def resolve_device(name: str, field: str = "train.device"):
    """``"auto"`` means CUDA when available, else CPU; otherwise ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, each
    only when this machine has it. Anything else (``meta``, a missing GPU index) is a :class:`ConfigError`
    naming ``field``."""
    import torch

    from iclab.errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    allowed = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{field}: must be {allowed}, got {name!r}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{field}: {name!r} asked for, but no CUDA device is available here")
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"{field}: {name!r} asked for, but this machine has {count} CUDA device(s) (cuda:0 .. cuda:{count - 1})"
            )
        return device
    if device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"{field}: 'mps' asked for, but this machine has no Apple GPU (MPS)")
        return device
    raise ConfigError(
        f"{field}: must be {allowed}, got {name!r} (a {device.type!r} device cannot train or evaluate here)"
    )


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (e.g. ``(seed, stream, step)``)."""
    import numpy as np

    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def exclusive_cumsum(t: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``out[:, i] = sum_{j < i} t[:, j]``: the statistic of the prefix that precedes position i."""
    import torch

    c = torch.cumsum(t, dim=dim)
    return torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c.narrow(dim, 0, c.shape[dim] - 1)], dim=dim)


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested mapping as dotted keys: ``{"train": {"lr": 1}} -> {"train.lr": 1}``."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
