"""Evaluate a trained run: the network and its task's reference learners on held-out prompts."""

from __future__ import annotations

from pathlib import Path

import torch

from iclab.evaluate.curves import error_curves, rows_to_csv
from iclab.learners import make_learner
from iclab.rundir import load_model, shift_slug
from iclab.utils import atomic_write_text, resolve_device


def evaluate_run(run_dir: str | Path, shifts: list[str] | None = None, learners: list | None = None,
                 n_prompts: int | None = None, device: str | None = None, plot: bool = True) -> list[dict]:
    """Write ``eval/curves.csv`` (and ``plots/curves_<shift>.png``) for a run; return the rows.

    ``learners`` defaults to the run config's ``eval.learners``, else the task's relevant learners.
    The network's rows are under learner ``model``.
    """
    from iclab.tasks import apply_shift, make_task
    from iclab.tasks.shifts import check_shift
    from iclab.training.memory import check_eval_fits

    run_dir = Path(run_dir)
    cfg, model, step = load_model(run_dir)
    device = resolve_device(device or cfg.train.device, "--device" if device else "train.device")
    check_eval_fits(cfg.task, n_prompts or cfg.eval.n_prompts, device, "--prompts" if n_prompts else "eval.n_prompts")
    model = model.to(device)
    task = make_task(cfg.task)
    shifts = shifts or cfg.eval.shifts
    for shift in shifts:
        check_shift(shift, task, "--shift")
    specs = learners if learners is not None else (cfg.eval.learners or task.relevant_learners())
    refs = [make_learner(spec, f"learner {spec!r}", task=task) for spec in specs]
    n = n_prompts or cfg.eval.n_prompts
    if task.prompt_kind == "tokens":
        return _evaluate_tokens(run_dir, cfg, model, step, task, refs, n, plot)
    rows = []
    for shift in shifts:
        prompts = apply_shift(shift, task, n, cfg.eval.seed)
        with torch.no_grad():
            rows += error_curves([_Batched(model, cfg.eval.batch_size), *refs], prompts, task.error_scale, shift,
                                 error_fn=task.error)
    atomic_write_text(run_dir / "eval" / "curves.csv", rows_to_csv(rows))
    if plot:
        from iclab.report.plots import plot_curves

        for shift in shifts:
            plot_curves([r for r in rows if r["shift"] == shift], run_dir / "plots" / f"curves_{shift_slug(shift)}.png",
                        n_dims=cfg.task.n_dims, title=f"{cfg.task.name} (d={cfg.task.n_dims}), {shift}, step {step}",
                        ylabel=task.error_label, network=cfg.model.label())
    return rows


def _evaluate_tokens(run_dir: Path, cfg, model, step: int, task, refs: list, n: int, plot: bool) -> list[dict]:
    """Token runs: ``eval/curves.csv`` (metric against strings seen), ``eval/summary.csv`` (each metric averaged over
    every scored position) and ``plots/curves_tokens.png``."""
    from iclab.evaluate.tokens import (
        SUMMARY_COLUMNS,
        TOKEN_CURVE_COLUMNS,
        evaluate_token_learners,
        rows_to_csv,
    )
    from iclab.models import network_label

    examples = task.eval_examples(n, cfg.eval.seed)
    prompts = task.batch(examples)
    rows, summary, _ = evaluate_token_learners([_Batched(model, cfg.eval.batch_size), *refs], prompts)
    if task.generates:
        summary += _evaluate_generation(run_dir, cfg, model, task, examples)
    atomic_write_text(run_dir / "eval" / "curves.csv", rows_to_csv(rows, TOKEN_CURVE_COLUMNS))
    atomic_write_text(run_dir / "eval" / "summary.csv", rows_to_csv(summary, SUMMARY_COLUMNS))
    if plot:
        from iclab.report.plots import plot_token_curves

        plot_token_curves(rows, run_dir / "plots" / "curves_tokens.png", network=network_label(cfg.model, tokens=True),
                          title=f"{cfg.task.name}: {n} held-out prompts, step {step}", xlabel=task.curve_axis)
    return rows


def _evaluate_generation(run_dir: Path, cfg, model, task, examples: list) -> list[dict]:
    """Decode every held-out answer (``eval/generation.csv``: exact match overall and by group;
    ``eval/generations.jsonl``: each prompt, what the network wrote, the answer parsed); summary rows
    ``exact_match`` for the network and for the true continuations (``oracle``)."""
    import json
    import math

    from iclab.evaluate.generation import evaluate_generation
    from iclab.evaluate.generation import rows_to_csv as generation_csv
    from iclab.token_metrics import Z_95

    rows, records = evaluate_generation(model, task, examples, temperature=cfg.eval.temperature,
                                        top_k=cfg.eval.top_k, seed=cfg.eval.seed, batch_size=cfg.eval.batch_size)
    atomic_write_text(run_dir / "eval" / "generation.csv", generation_csv(rows))
    atomic_write_text(run_dir / "eval" / "generations.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    out = []
    for r in rows:
        if r["group"] == "all":
            p, n = r["exact_match"], r["n"]
            half = Z_95 * math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")
            out.append({"learner": r["learner"], "metric": "exact_match", "mean": p, "ci_low": p - half,
                        "ci_high": p + half, "positions": n})
    return out


class _Batched:
    """The network as a learner, predicting in batches of ``batch_size`` prompts."""

    label = "model"

    def __init__(self, model, batch_size: int) -> None:
        self.model, self.batch_size = model, batch_size

    def predict(self, prompts):
        return self.model.predict(prompts, batch_size=self.batch_size)
