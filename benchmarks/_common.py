"""Shared by the benchmark scripts (run from the repository root: ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import os
import shutil
import time


def train_fresh(cfg, out) -> float:
    """Train ``cfg`` into an emptied folder ``out`` without progress output; return the seconds it took."""
    from iclab.training.loop import train

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    with open(os.devnull, "w") as quiet:
        train(cfg, out, progress_bar=False, stream=quiet)
    return time.time() - t0
