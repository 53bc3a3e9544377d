"""Figures of real-valued runs: error against the number of in-context examples, per shift, and the k columns
of their tables."""

from __future__ import annotations

import math
from pathlib import Path

from iclab.plotting import EXTRA_COLORS, STYLE, display_name, pyplot


def summary_ks(rows: list[dict], n_dims: int) -> list[int]:
    """The k columns of summary tables: 1, d, 2d and the last k, among those the curves have (a task may
    score only some positions, e.g. associative recall's queries)."""
    have = sorted({r["k"] for r in rows})
    if not have:
        return []
    picked = {k for k in (1, n_dims, 2 * n_dims, have[-1]) if k in have}
    return sorted(picked | ({have[0]} if have[0] > 1 else set()))


def diverged(rows: list[dict]) -> dict[str, list[int]]:
    """``{learner: [k, ...]}`` for every learner with a non-finite mean error (per shift, in ``rows``)."""
    out: dict[str, list[int]] = {}
    for r in rows:
        if not math.isfinite(r["mean"]):
            out.setdefault(r["learner"], []).append(r["k"])
    return out


def plot_curves(
    rows: list[dict],
    path: Path,
    n_dims: int | None = None,
    title: str = "",
    ylabel: str = "squared error / d",
    network: str | None = None,
) -> Path:
    """Error vs number of in-context examples, one line (with its 95% band) per learner."""
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    _draw_curves(ax, rows, n_dims, ylabel, network)
    if title:
        ax.set_title(title, fontsize=10, pad=22)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_shift_panels(
    rows: list[dict],
    path: Path,
    n_dims: int | None = None,
    ylabel: str = "squared error / d",
    network: str | None = None,
) -> Path:
    """One panel per distribution shift, side by side (Garg et al. 2022, Figure 3 style)."""
    plt = pyplot()
    shifts = list(dict.fromkeys(r["shift"] for r in rows))
    cols = min(3, len(shifts))
    nrows = (len(shifts) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), dpi=110, squeeze=False)
    for ax, shift in zip(axes.flat, shifts):
        _draw_curves(ax, [r for r in rows if r["shift"] == shift], n_dims, ylabel, network)
        ax.set_title(shift, fontsize=10)
    for ax in list(axes.flat)[len(shifts) :]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _draw_curves(ax, rows: list[dict], n_dims: int | None, ylabel: str, network: str | None = None) -> None:
    labels = list(dict.fromkeys(r["learner"] for r in rows))
    labels.sort(key=lambda lab: lab != "model")  # the network first, drawn on top
    diverged = []
    for i, label in enumerate(reversed(labels)):
        pts = sorted((r for r in rows if r["learner"] == label), key=lambda r: r["k"])
        ks = [r["k"] for r in pts]
        name, color, width = STYLE.get(label, (label, EXTRA_COLORS[i % len(EXTRA_COLORS)], 1.6))
        name = display_name(label, network)
        style = "--" if label == "zero" else "-"
        bad = [r["k"] for r in pts if not math.isfinite(r["mean"])]
        if bad:
            name += " (diverged)"
        ax.plot(
            ks,
            [r["mean"] if math.isfinite(r["mean"]) else float("nan") for r in pts],
            style,
            color=color,
            lw=width,
            label=name,
        )
        ax.fill_between(ks, [r["ci_low"] for r in pts], [r["ci_high"] for r in pts], color=color, alpha=0.15, lw=0)
        diverged.append((bad, color))
    if n_dims:
        ax.axvline(n_dims, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("in-context examples")
    ax.set_ylabel(ylabel)
    finite = [r["mean"] for r in rows if math.isfinite(r["mean"])]
    top = max(finite, default=1.0)
    upper = min(top * 1.1, 1.5 * max(1.0, _value(rows, "zero", top)))  # baselines may leave the frame
    ax.set_ylim(bottom=-0.02 * upper, top=upper)
    for bad, color in diverged:  # a non-finite error: a cross just above the frame, where no curve is
        ax.plot(bad, [upper * 1.05] * len(bad), "x", color=color, ms=7, mew=2, clip_on=False)
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], names[::-1], frameon=False, fontsize=8)
    ax.grid(alpha=0.25)


def _value(rows: list[dict], learner: str, default: float) -> float:
    vals = [r["mean"] for r in rows if r["learner"] == learner and math.isfinite(r["mean"])]
    return max(vals) if vals else default


def shift_slug(shift: str) -> str:
    """The file-name form of a shift spec: ``plots/curves_<slug>.png``."""
    import re

    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", shift).strip("_")
