"""What every figure of iclab shares: the pyplot it draws with (matplotlib on its file-only Agg backend, imported on
first use, so ``iclab --help`` and config loading never import matplotlib), the learners' display names and
colours, table cells, and the training figure every kind's report shows."""

from __future__ import annotations

import math
from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend (PNG files; no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# display names and colours in the spirit of Garg et al. 2022, Figure 2
STYLE = {
    "model": ("Trained network", "black", 2.6),  # named by its family and size where the config is known
    "least_squares": ("Least Squares", "tab:blue", 1.6),
    "knn(k=3)": ("3-Nearest Neighbors", "tab:green", 1.6),
    "averaging": ("Averaging", "tab:orange", 1.6),
    "zero": ("Zero", "tab:gray", 1.2),
}


# for learners without a fixed style: none of the colours above
EXTRA_COLORS = [
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
    "navy",
    "darkgoldenrod",
    "teal",
    "tab:gray",
    "darkorange",
    "limegreen",
]


def fmt_error(value: float) -> str:
    """A table cell: the error to 3 decimals, or ``diverged`` when it is NaN or infinite."""
    return f"{value:.3f}" if math.isfinite(value) else "diverged"


def display_name(label: str, network: str | None = None) -> str:
    """A learner's name in tables and legends; the trained network (learner ``model``) is called ``network``
    (its family and size, e.g. ``LSTM 2x64``: :meth:`label` of the model config) when given."""
    if label == "model" and network:
        return network
    return STYLE.get(label, (label,))[0]


def plot_training(
    records: list[dict],
    path: Path,
    k_mark: int | None = None,
    loss_label: str = "training loss (MSE)",
    val_label: str = "held-out squared error / d",
    val_scalar: str | None = None,
) -> Path | None:
    """Training loss and the held-out evaluation against the step: the error at the last k and at ``k_mark``
    (``val_err_by_k``), or, with ``val_scalar``, that one logged number (a token run's ``val_accuracy``; runs logged
    before it existed show 1 - the mean of ``val_err_by_k``)."""
    loss = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_err_by_k"]) for r in records if "val_err_by_k" in r]
    scalar = []
    if val_scalar is not None:
        scalar = [(r["step"], r[val_scalar]) for r in records if isinstance(r.get(val_scalar), (int, float))]
        if not scalar:  # logged before the scalar existed
            scalar = [(s, 1 - sum(v) / len(v)) for s, v in val if v]
    if not loss and not val and not scalar:
        return None
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.6), dpi=120)
    if loss:
        axes[0].plot(*zip(*loss), color="tab:blue", lw=1.2, marker="o" if len(loss) == 1 else None)
        axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel(loss_label)
    axes[0].grid(alpha=0.25)
    if val_scalar is not None:
        if scalar:
            axes[1].plot(*zip(*scalar), lw=1.4, marker="o" if len(scalar) == 1 else None)
    elif val:
        steps = [s for s, _ in val]
        last = len(val[-1][1]) - 1
        marks = sorted({last, *([k_mark] if k_mark is not None and k_mark <= last else [])})
        for k in marks:
            ys = [v[k] if k < len(v) else float("nan") for _, v in val]
            axes[1].plot(steps, ys, lw=1.4, label=f"k = {k}", marker="o" if len(val) == 1 else None)
        axes[1].set_yscale("log")
        axes[1].legend(frameon=False)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel(val_label)
    axes[1].grid(alpha=0.25)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
