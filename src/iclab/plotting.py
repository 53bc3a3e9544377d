"""The pyplot every figure of iclab draws with: matplotlib on its file-only Agg backend, imported on first
use (so ``iclab --help`` and config loading never import matplotlib)."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend (PNG files; no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
