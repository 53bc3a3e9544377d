"""Evaluation: error-vs-k curves with confidence intervals over held-out prompts, for models and
reference learners alike, written as a tidy table (``eval/curves.csv``)."""

from iclab.evaluate.config import EvalConfig
from iclab.evaluate.curves import COLUMNS, error_at, error_curves, read_curves, rows_to_csv, squared_errors
from iclab.evaluate.run import evaluate_run

__all__ = ["COLUMNS", "EvalConfig", "error_at", "error_curves", "evaluate_run", "read_curves", "rows_to_csv",
           "squared_errors"]
