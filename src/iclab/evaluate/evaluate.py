"""Evaluate a trained run: the network and its task's reference learners on held-out prompts. What is measured
and written is the prompt kind's (:meth:`iclab.kinds.PromptKind.evaluate`)."""

from __future__ import annotations

from pathlib import Path

from iclab.learners import make_learner
from iclab.rundir import load_model
from iclab.utils import resolve_device


def evaluate_run(
    run_dir: str | Path,
    shifts: list[str] | None = None,
    learners: list | None = None,
    n_prompts: int | None = None,
    device: str | None = None,
    plot: bool = True,
) -> list[dict]:
    """Write ``eval/`` for a run (``eval/curves.csv`` and whatever else its prompt kind writes, and figures under
    ``plots/`` when ``plot``); return the rows of ``eval/curves.csv``.

    ``learners`` defaults to the run config's ``eval.learners``, else the task's relevant learners. The network's
    rows are under learner ``model``.
    """
    from iclab.kinds import kind_of
    from iclab.tasks import make_task
    from iclab.tasks.shifts import check_shift
    from iclab.training.device_memory import check_eval_fits

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
    return kind_of(task).evaluate(run_dir, cfg, model, step, task, refs, n, shifts, plot)
