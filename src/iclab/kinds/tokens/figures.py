"""Figures of token runs: each metric against the task's own unit (strings seen, answer characters written, ...)."""

from __future__ import annotations

import math
from pathlib import Path

from iclab.plotting import EXTRA_COLORS, display_name, pyplot

METRIC_LABELS = {
    "accuracy": "greedy accuracy",
    "tvd": "total variation distance",
    "cross_entropy": "cross-entropy (nats)",
    "kl": "KL(true || learner) (nats)",
}


def plot_token_curves(
    rows: list[dict],
    path: Path,
    metrics: tuple[str, ...] = ("accuracy", "tvd", "cross_entropy"),
    title: str = "",
    network: str | None = None,
    xlabel: str = "strings seen in the prompt",
) -> Path:
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
            color = "black" if label == "model" else EXTRA_COLORS[i % len(EXTRA_COLORS)]
            name = display_name(label, network)
            if any(not math.isfinite(r["mean"]) for r in pts):
                name += " (diverged)"
            ks = [r["k"] for r in pts]
            style = "o-" if len(ks) == 1 else "-"  # a task scored at one count (its query only): a point, not a line
            ax.plot(ks, [r["mean"] for r in pts], style, color=color, lw=2.6 if label == "model" else 1.5, label=name)
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
