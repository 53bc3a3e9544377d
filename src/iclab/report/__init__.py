"""Reports: matplotlib figures and a self-contained HTML page per run."""

from iclab.report.html import write_report
from iclab.report.plots import plot_curves, plot_training

__all__ = ["plot_curves", "plot_training", "write_report"]
