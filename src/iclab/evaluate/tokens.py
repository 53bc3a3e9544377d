"""Token runs' evaluation files: every learner's metrics (:mod:`iclab.token_metrics`) as curves against strings
seen (``eval/curves.csv``) and averaged (``eval/summary.csv``)."""

from __future__ import annotations

import csv
import io

import torch

from iclab.token_metrics import token_curves, token_metrics, token_summary
from iclab.types import TokenPrompts

TOKEN_CURVE_COLUMNS = ("learner", "shift", "metric", "k", "mean", "ci_low", "ci_high")
SUMMARY_COLUMNS = ("learner", "metric", "mean", "ci_low", "ci_high", "positions")


def rows_to_csv(rows: list[dict], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{k: f"{row[k]:.6g}" for k in ("mean", "ci_low", "ci_high") if k in row}})
    return buf.getvalue()


def evaluate_token_learners(learners: list, prompts: TokenPrompts, shift: str = "standard"
                            ) -> tuple[list[dict], list[dict], dict[str, torch.Tensor]]:
    """Curves and summary rows for every learner, and each learner's distributions (for alignment)."""
    curves, summary, dists = [], [], {}
    index = prompts.info["string_index"].cpu()
    for learner in learners:
        probs = learner.predict(prompts).to(torch.float64).cpu()
        dists[learner.label] = probs
        m = token_metrics(probs, prompts)
        curves += token_curves(m, index, prompts.scored.cpu(), learner.label, shift)
        summary += token_summary(m, prompts.scored.cpu(), learner.label)
    return curves, summary, dists
