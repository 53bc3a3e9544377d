"""Figures (matplotlib, Agg backend; imported only when a figure is drawn)."""

from __future__ import annotations

import math
from pathlib import Path

from iclab.plotting import pyplot

# display names and colours in the spirit of Garg et al. 2022, Figure 2
_STYLE = {
    "model": ("Trained network", "black", 2.6),  # named by its family and size where the config is known
    "least_squares": ("Least Squares", "tab:blue", 1.6),
    "knn(k=3)": ("3-Nearest Neighbors", "tab:green", 1.6),
    "averaging": ("Averaging", "tab:orange", 1.6),
    "zero": ("Zero", "tab:gray", 1.2),
}


# for learners without a fixed style: none of the colours above
_EXTRA_COLORS = ["tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "navy", "darkgoldenrod",
                 "teal", "tab:gray", "darkorange", "limegreen"]


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


def fmt_error(value: float) -> str:
    """A table cell: the error to 3 decimals, or ``diverged`` when it is NaN or infinite."""
    return f"{value:.3f}" if math.isfinite(value) else "diverged"


def display_name(label: str, network: str | None = None) -> str:
    """A learner's name in tables and legends; the trained network (learner ``model``) is called ``network``
    (its family and size, e.g. ``LSTM 2x64``: :meth:`label` of the model config) when given."""
    if label == "model" and network:
        return network
    return _STYLE.get(label, (label,))[0]


def plot_curves(rows: list[dict], path: Path, n_dims: int | None = None, title: str = "",
                ylabel: str = "squared error / d", network: str | None = None) -> Path:
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


def plot_shift_panels(rows: list[dict], path: Path, n_dims: int | None = None, ylabel: str = "squared error / d",
                      network: str | None = None) -> Path:
    """One panel per distribution shift, side by side (Garg et al. 2022, Figure 3 style)."""
    plt = pyplot()
    shifts = list(dict.fromkeys(r["shift"] for r in rows))
    cols = min(3, len(shifts))
    nrows = (len(shifts) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), dpi=110, squeeze=False)
    for ax, shift in zip(axes.flat, shifts):
        _draw_curves(ax, [r for r in rows if r["shift"] == shift], n_dims, ylabel, network)
        ax.set_title(shift, fontsize=10)
    for ax in list(axes.flat)[len(shifts):]:
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
        name, color, width = _STYLE.get(label, (label, _EXTRA_COLORS[i % len(_EXTRA_COLORS)], 1.6))
        name = display_name(label, network)
        style = "--" if label == "zero" else "-"
        bad = [r["k"] for r in pts if not math.isfinite(r["mean"])]
        if bad:
            name += " (diverged)"
        ax.plot(ks, [r["mean"] if math.isfinite(r["mean"]) else float("nan") for r in pts], style, color=color,
                lw=width, label=name)
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


def plot_training(records: list[dict], path: Path, k_mark: int | None = None, loss_label: str = "training loss (MSE)",
                  val_label: str = "held-out squared error / d", val_mean: bool = False) -> Path | None:
    """Training loss and held-out error (at the last k, and at ``k_mark``; or, with ``val_mean``, averaged over k)
    against the step."""
    loss = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_err_by_k"]) for r in records if "val_err_by_k" in r]
    if not loss and not val:
        return None
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.6), dpi=120)
    if loss:
        axes[0].plot(*zip(*loss), color="tab:blue", lw=1.2)
        axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel(loss_label)
    axes[0].grid(alpha=0.25)
    if val and val_mean:
        axes[1].plot([s for s, _ in val], [sum(v) / len(v) for _, v in val], lw=1.4, label="mean over k")
        axes[1].legend(frameon=False)
    elif val:
        steps = [s for s, _ in val]
        last = len(val[-1][1]) - 1
        marks = sorted({last, *([k_mark] if k_mark is not None and k_mark <= last else [])})
        for k in marks:
            axes[1].plot(steps, [v[k] if k < len(v) else float("nan") for _, v in val], lw=1.4, label=f"k = {k}")
        axes[1].set_yscale("log")
        axes[1].legend(frameon=False)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel(val_label)
    axes[1].grid(alpha=0.25)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


METRIC_LABELS = {"accuracy": "greedy accuracy", "tvd": "total variation distance", "cross_entropy": "cross-entropy (nats)",
                 "kl": "KL(true || learner) (nats)"}


def plot_token_curves(rows: list[dict], path: Path, metrics: tuple[str, ...] = ("accuracy", "tvd", "cross_entropy"),
                      title: str = "", network: str | None = None, xlabel: str = "strings seen in the prompt") -> Path:
    """Token metrics against the number of strings seen in the prompt (or the task's own unit, ``xlabel``), one
    panel per metric, one line (with its 95% band) per learner."""
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), dpi=110, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sub = [r for r in rows if r.get("metric") == metric]
        labels = list(dict.fromkeys(r["learner"] for r in sub))
        labels.sort(key=lambda lab: lab != "model")
        for i, label in enumerate(reversed(labels)):
            pts = sorted((r for r in sub if r["learner"] == label), key=lambda r: r["k"])
            color = "black" if label == "model" else _EXTRA_COLORS[i % len(_EXTRA_COLORS)]
            name = display_name(label, network)
            if any(not math.isfinite(r["mean"]) for r in pts):
                name += " (diverged)"
            ks = [r["k"] for r in pts]
            ax.plot(ks, [r["mean"] for r in pts], "-", color=color, lw=2.6 if label == "model" else 1.5, label=name)
            ax.fill_between(ks, [r["ci_low"] for r in pts], [r["ci_high"] for r in pts], color=color, alpha=0.15, lw=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.25)
        if metric in ("accuracy", "tvd"):
            ax.set_ylim(-0.02, 1.02)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles[::-1], names[::-1], loc="upper center", ncol=min(3, len(names)), frameon=False, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, y=0.005, va="bottom")
    fig.tight_layout(rect=(0, 0.04, 1, 0.86 if len(names) > 3 else 0.9))
    fig.savefig(path)
    plt.close(fig)
    return path
