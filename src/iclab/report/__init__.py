"""Reports: a self-contained HTML page per run (:func:`write_report`); the figures on it are drawn by the run's
prompt kind (:mod:`iclab.kinds`) and :mod:`iclab.plotting`."""

from iclab.report.html import write_report

__all__ = ["write_report"]
