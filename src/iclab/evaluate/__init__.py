"""Evaluation: error-vs-k curves with confidence intervals over held-out prompts, for models and
reference learners alike, written as a tidy table (``eval/curves.csv``)."""

from iclab.evaluate.curves import (
           COLUMNS,
           error_at,
           error_curves,
           rows_to_csv,
           squared_errors,
)
from iclab.evaluate.evaluate import evaluate_run
from iclab.rundir import read_curves

__all__ = ["COLUMNS", "error_at", "error_curves", "evaluate_run", "read_curves", "rows_to_csv",
           "squared_errors"]
