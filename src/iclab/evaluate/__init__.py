"""Evaluation: a trained run and its task's reference learners on held-out prompts (:func:`evaluate_run`), written
as tidy tables under ``eval/``. What is measured belongs to the prompt kind: error-vs-k curves with confidence
intervals for real-valued prompts (:mod:`iclab.kinds.real.curves`, re-exported here), next-token metrics for token
prompts (:mod:`iclab.kinds.tokens.metrics`)."""

from iclab.evaluate.evaluate import evaluate_run
from iclab.kinds.real.curves import COLUMNS, error_at, error_curves, squared_errors
from iclab.rundir import read_curves

__all__ = ["COLUMNS", "error_at", "error_curves", "evaluate_run", "read_curves", "squared_errors"]
