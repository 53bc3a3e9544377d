"""Metrics of next-token distributions on token prompts, per position, and their curves against the number of
strings seen so far in the prompt (the language analogue of error against k).

At every scored position ``t`` (a target that is not a separator or padding), with ``p`` a learner's
distribution and ``q`` the true next-symbol distribution (uniform over ``info["valid"]``):

- ``accuracy``: 1 when the argmax of ``p`` is a valid next symbol (Akyürek et al. 2024's greedy accuracy);
- ``tvd``: total variation distance ``1/2 sum |p - q|`` (seq_icl logs the L1 distance, twice this);
- ``cross_entropy``: ``-log p(target)`` in nats, ``p`` floored at 1e-7 (as seq_icl does), what training
  minimises; its floor is the entropy of ``q``;
- ``kl``: ``KL(q || p) = sum q log(q / p)``, ``p`` floored at 1e-7 (seq_icl's "cross-entropy" against the
  automaton).

Curves average each metric over the prompts at each ``k`` = the number of complete strings before the target
(per-prompt means first, then the mean and 95% interval across prompts); the summary pools every scored
position (correct / total, as the reference does) with a ratio-estimator interval across prompts.
"""

from __future__ import annotations

import math

import torch

from iclab.types import TokenPrompts

METRICS = ("accuracy", "tvd", "cross_entropy", "kl")  # in the order tables show them
FLOOR = 1e-7
Z_95 = 1.959964


def true_distribution(prompts: TokenPrompts) -> torch.Tensor:
    valid = prompts.info["valid"].to(torch.float64).cpu()
    return valid / valid.sum(-1, keepdim=True).clamp_min(1)


def token_metrics(probs: torch.Tensor, prompts: TokenPrompts) -> dict[str, torch.Tensor]:
    """Each metric at every position, ``(B, T)`` float64, NaN where nothing is scored."""
    probs = probs.to(torch.float64).cpu()
    scored = prompts.scored.cpu()
    valid = prompts.info["valid"].cpu()
    q = true_distribution(prompts)
    targets = prompts.targets.cpu().clamp_min(0)
    logp = probs.clamp_min(FLOOR).log()
    out = {
        "accuracy": valid.gather(-1, probs.argmax(-1, keepdim=True)).squeeze(-1).to(torch.float64),
        "tvd": 0.5 * (probs - q).abs().sum(-1),
        "cross_entropy": -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1),
        "kl": (q * (q.clamp_min(FLOOR).log() - logp)).sum(-1),
    }
    finite = torch.isfinite(probs).all(-1)  # a diverged learner scores NaN where it is not finite
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    return {k: torch.where(scored & finite, v, nan) for k, v in out.items()}


def _mean_ci(values: torch.Tensor) -> tuple[float, float, float]:
    n = values.numel()
    m = values.mean().item()
    half = Z_95 * (values.std(unbiased=True).item() if n > 1 else 0.0) / math.sqrt(n)
    return m, m - half, m + half


def token_curves(
    metrics: dict[str, torch.Tensor],
    string_index: torch.Tensor,
    scored: torch.Tensor,
    label: str,
    shift: str = "standard",
) -> list[dict]:
    """Rows ``{learner, shift, metric, k, mean, ci_low, ci_high}`` for every metric and every number of strings
    seen ``k`` (a NaN at a scored position, from a diverged learner, makes that mean NaN)."""
    rows = []
    k_max = int(string_index.max()) if string_index.numel() else -1
    for name, values in metrics.items():
        for k in range(k_max + 1):
            mask = (string_index == k) & scored
            per_prompt_n = mask.sum(1)
            have = per_prompt_n > 0
            if not have.any():
                continue
            sums = torch.where(mask, values, torch.zeros_like(values)).sum(1)
            per_prompt = sums[have] / per_prompt_n[have]
            m, lo, hi = _mean_ci(per_prompt)
            rows.append(
                {"learner": label, "shift": shift, "metric": name, "k": k, "mean": m, "ci_low": lo, "ci_high": hi}
            )
    return rows


def token_summary(metrics: dict[str, torch.Tensor], scored: torch.Tensor, label: str) -> list[dict]:
    """One row per metric: the mean over every scored position and a 95% interval across prompts (ratio
    estimator). A learner whose distribution is not finite somewhere scores NaN."""
    rows = []
    counts = scored.sum(1).to(torch.float64)
    keep = counts > 0
    for name, values in metrics.items():
        if torch.isnan(values[scored]).any():
            rows.append(
                {
                    "learner": label,
                    "metric": name,
                    "mean": float("nan"),
                    "ci_low": float("nan"),
                    "ci_high": float("nan"),
                    "positions": int(scored.sum()),
                }
            )
            continue
        sums = torch.where(scored, values, torch.zeros_like(values)).sum(1)
        s, n = sums[keep], counts[keep]
        m = (s.sum() / n.sum()).item()
        resid = s - m * n
        prompts = len(s)
        se = (resid.var(unbiased=True).sqrt() / (n.mean() * math.sqrt(prompts))).item() if prompts > 1 else 0.0
        rows.append(
            {
                "learner": label,
                "metric": name,
                "mean": m,
                "ci_low": m - Z_95 * se,
                "ci_high": m + Z_95 * se,
                "positions": int(n.sum()),
            }
        )
    return rows


CURVE_COLUMNS = ("learner", "shift", "metric", "k", "mean", "ci_low", "ci_high")  # eval/curves.csv
CURVE_TYPES = {"learner": str, "shift": str, "metric": str, "k": int, "mean": float, "ci_low": float, "ci_high": float}
SUMMARY_COLUMNS = ("learner", "metric", "mean", "ci_low", "ci_high", "positions")  # eval/summary.csv
SUMMARY_TYPES = {"learner": str, "metric": str, "mean": float, "ci_low": float, "ci_high": float, "positions": int}


def evaluate_token_learners(
    learners: list, prompts: TokenPrompts, shift: str = "standard"
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
