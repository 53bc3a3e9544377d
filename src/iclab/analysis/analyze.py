"""``iclab analyze RUN``: every instrument on a trained run, written to ``RUN/analysis/`` and shown in
the run's report.

    RUN/analysis/
      probes.csv      network, hook, depth, target, probe, k, r2_train, r2_test
      alignment.csv   learner, k, spd, ilwd, sensitivity_cosine, sensitivity_l2, model_error, learner_error
      weights.csv     k, error_vs_true, cosine_vs_true, linear_fit_r2, error_vs_reference, cosine_vs_reference
      order.json      order sensitivity of the model and of each reference learner
      attention.json  per-layer LSA products' agreement with the GD construction (LSA models)
      paste.json      pasting curves (transformers on tasks with a feature map)
      *.png           the figures
      summary.json    what ran, with which settings
"""

from __future__ import annotations

import json
from pathlib import Path

from iclab.analysis.instruments import INSTRUMENTS, Context, Inapplicable, write_csv
from iclab.errors import UserError
from iclab.utils import atomic_write_text


def analyze_run(
    run_dir,
    instruments: list[str] | None = None,
    hooks: list[str] | None = None,
    targets: list[str] | None = None,
    learners: list[str] | None = None,
    n_prompts: int = 600,
    probe_kinds=("linear", "mlp"),
    per_position: bool = False,
    paste_steps: int = 300,
    device: str | None = None,
    threads: int | None = None,
    log=print,
) -> dict:
    """Run the chosen instruments (all registered ones that apply when None; :data:`INSTRUMENTS`) on a run's
    newest checkpoint (on the run's ``train.device`` and with its ``train.threads`` unless given); returns the
    summary written to ``analysis/summary.json``. Explicitly requested instruments, hooks and targets that
    do not apply are errors; defaults that do not apply are skipped."""
    import torch

    from iclab.analysis.cache import resolve_hooks
    from iclab.learners import make_learner, parse_learner_spec
    from iclab.rundir import load_model, read_run_config
    from iclab.tasks import make_task
    from iclab.utils import resolve_device

    run_dir = Path(run_dir)
    explicit = instruments is not None
    if n_prompts < 8:
        raise UserError(f"--prompts: must be at least 8, got {n_prompts}")
    run_cfg = read_run_config(run_dir)  # first: it imports the extensions the run's config names
    for name in instruments or []:
        if name not in INSTRUMENTS:
            raise UserError(f"--only: unknown instrument {name!r}; choose from {', '.join(INSTRUMENTS)}")
    for spec in learners or []:
        parse_learner_spec(spec, "--learner")
    if device is None:
        device = resolve_device(run_cfg.train.device)
    threads = threads or run_cfg.train.threads
    if threads is not None:
        torch.set_num_threads(threads)
    from iclab.training.device_memory import check_eval_fits

    check_eval_fits(run_cfg.task, n_prompts, device, "--prompts")
    cfg, model, step = load_model(run_dir, device=device)
    task = make_task(cfg.task)
    if hooks is not None:
        hooks = resolve_hooks(model, hooks)  # unknown hook: one line listing the valid ones
    prompts = task.eval_prompts(n_prompts, seed=4321)
    if targets is not None:
        from iclab.analysis.probes import probe_target

        for t in targets:
            probe_target(task, prompts[:2], t)  # an inapplicable target is an error before any work
    if learners:
        refs = [make_learner(s, task=task) for s in learners]
    else:  # the task's relevant learners, less zero and those too slow to query many times
        refs = [r for r in (make_learner(s, task=task) for s in task.relevant_learners() if s != "zero") if not r.slow]
    from iclab.learners.base import learner_unsupported

    for ref in refs:
        problem = learner_unsupported(type(ref), task)
        if problem:
            raise UserError(f"--learner {ref.label}: {problem}")
    ctx = Context(
        run_dir=run_dir,
        cfg=cfg,
        model=model,
        task=task,
        prompts=prompts,
        refs=refs,
        step=step,
        hooks=hooks,
        targets=targets,
        probe_kinds=tuple(probe_kinds),
        per_position=per_position,
        paste_steps=paste_steps,
        log=log,
    )
    summary = {"step": step, "n_prompts": n_prompts, "ran": [], "skipped": {}}
    results = []
    for name in instruments or list(INSTRUMENTS):  # compute everything first: a refusal leaves no file behind
        try:
            reason = INSTRUMENTS[name].kind_unsupported(task)  # the instruments say the finer reasons themselves
            if reason is not None:
                raise Inapplicable(f"{name} does not apply to task {task.name!r}: {reason}")
            results.append(INSTRUMENTS[name].run(ctx))
        except Inapplicable as e:
            if explicit:
                raise UserError(f"--only {name}: {e}") from None
            summary["skipped"][name] = str(e)
            continue
        summary["ran"].append(name)
    out = run_dir / "analysis"
    out.mkdir(exist_ok=True)
    for result in results:
        for file, rows in result.tables.items():
            atomic_write_text(out / file, write_csv(rows))
        for file, value in result.json.items():
            atomic_write_text(out / file, json.dumps(value, indent=1))
        for file, draw in result.figures.items():
            draw(out / file)
        summary.update(result.summary)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary
