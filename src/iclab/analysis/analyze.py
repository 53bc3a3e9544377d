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

import csv
import io
import json
from pathlib import Path

import torch

from iclab.errors import UserError
from iclab.utils import atomic_write_text

INSTRUMENTS = ("probes", "alignment", "weights", "attention", "order", "paste")


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _default_targets(task, prompts) -> list[str]:
    from iclab.analysis.probes import probe_target

    out = []
    for t in ("w", "w_ols", "xty", "phi"):
        try:
            probe_target(task, prompts[:2], t)
            out.append(t)
        except UserError:
            pass
    return out


def analyze_run(run_dir, instruments: list[str] | None = None, hooks: list[str] | None = None,
                targets: list[str] | None = None, learners: list[str] | None = None, n_prompts: int = 600,
                probe_kinds=("linear", "mlp"), per_position: bool = False, paste_steps: int = 300,
                device: str | None = None, threads: int | None = None, log=print) -> dict:
    """Run the chosen instruments (all that apply when None) on a run's newest checkpoint (on the run's
    ``train.device`` and with its ``train.threads`` unless given); returns the summary written to
    ``analysis/summary.json``. Explicitly requested instruments, hooks and targets that
    do not apply are errors; defaults that do not apply are skipped."""
    from iclab.analysis import alignment, attention, order_sensitivity, plots
    from iclab.analysis.cache import resolve_hooks
    from iclab.analysis.pasting import paste
    from iclab.analysis.probes import probe_model
    from iclab.learners import make_learner, parse_learner_spec
    from iclab.rundir import load_model
    from iclab.tasks import make_task
    from iclab.types import Prompts

    run_dir = Path(run_dir)
    explicit = instruments is not None
    for name in instruments or []:
        if name not in INSTRUMENTS:
            raise UserError(f"--only: unknown instrument {name!r}; choose from {', '.join(INSTRUMENTS)}")
    if n_prompts < 8:
        raise UserError(f"--prompts: must be at least 8, got {n_prompts}")
    for spec in learners or []:
        parse_learner_spec(spec, "--learner")
    from iclab.rundir import read_run_config

    run_cfg = read_run_config(run_dir)
    if device is None:
        from iclab.utils import resolve_device

        device = resolve_device(run_cfg.train.device)
    threads = threads or run_cfg.train.threads
    if threads is not None:
        torch.set_num_threads(threads)
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
    for ref in refs:
        problem = type(ref).applies_to(task)
        if problem:
            raise UserError(f"--learner {ref.label}: {problem}")
    out = run_dir / "analysis"
    out.mkdir(exist_ok=True)
    todo = instruments or list(INSTRUMENTS)
    summary = {"step": step, "n_prompts": n_prompts, "ran": [], "skipped": {}}
    linear_w = prompts.info.get("w") is not None and prompts.info["w"].dim() == 2 and \
        prompts.info["w"].shape[1] == cfg.task.n_dims and task.n_classes is None

    def skip(name, why):
        if explicit:
            raise UserError(f"--only {name}: {why}")
        summary["skipped"][name] = why

    if "probes" in todo:
        chosen = targets or _default_targets(task, prompts)
        if not chosen:
            skip("probes", f"no probe target applies to task {task.name!r}")
        else:
            log(f"probes: targets {', '.join(chosen)} ...")
            rows = probe_model(model, task, prompts, targets=chosen, hooks=hooks, kinds=probe_kinds,
                               per_position=per_position)
            atomic_write_text(out / "probes.csv", _csv(rows))
            plots.plot_probes(rows, out / "probes.png")
            summary["ran"].append("probes")
    if "alignment" in todo:
        if task.n_classes is not None:
            skip("alignment", "alignment metrics are defined for real-valued predictions")
        elif not refs:
            skip("alignment", "no reference learner to compare with (name one with --learner)")
        else:
            log(f"alignment against {', '.join(r.label for r in refs)} ...")
            sub = prompts[: min(n_prompts, 300)]
            rows = alignment.alignment_table(model, task, sub, refs)
            atomic_write_text(out / "alignment.csv", _csv(rows))
            plots.plot_alignment(rows, out / "alignment_spd.png", "spd", "SPD / scale")
            plots.plot_alignment(rows, out / "alignment_ilwd.png", "ilwd", "ILWD / scale")
            plots.plot_alignment(rows, out / "alignment_sensitivity.png", "sensitivity_cosine", "sensitivity cosine")
            summary["ran"].append("alignment")
    if "weights" in todo:
        if not linear_w:
            skip("weights", f"weight recovery needs a task linear in x with a weight vector; {task.name!r} is not")
        else:
            log("weight recovery ...")
            sub = prompts[: min(n_prompts, 300)]
            d = cfg.task.n_dims
            queries = alignment.query_inputs(task, sub.batch_size, 2 * d + 1)
            rows = [alignment.weight_recovery(model, sub, k, queries, task.error_scale, reference=refs[0] if refs else None)
                    for k in range(1, sub.n_points)]
            atomic_write_text(out / "weights.csv", _csv(rows))
            plots.plot_weight_recovery(rows, out / "weights.png")
            summary["ran"].append("weights")
            summary["weights_reference"] = refs[0].label if refs else None
    if "attention" in todo:
        try:
            pats = attention.attention_patterns(model, prompts[:64])
        except UserError as e:
            skip("attention", str(e))
        else:
            log("attention patterns ...")
            plots.plot_attention(pats, out / "attention.png", title=f"{cfg.name}: mean attention")
            if cfg.model.name == "linear_self_attention":
                prods = attention.lsa_products(model)
                plots.plot_lsa_products(prods, out / "lsa_products.png")
                atomic_write_text(out / "attention.json", json.dumps(
                    [{"layer": r["layer"], "kq_vs_gd": r["kq_vs_gd"], "pv_vs_gd": r["pv_vs_gd"]} for r in prods], indent=1))
            summary["ran"].append("attention")
    if "order" in todo:
        if task.n_classes is not None:
            skip("order", "order sensitivity is defined for real-valued predictions")
        else:
            log("order sensitivity ...")
            sub = prompts[: min(n_prompts, 256)]
            result = {"model": order_sensitivity(model, sub)}
            result.update({r.label: order_sensitivity(r, Prompts(sub.xs.double(), sub.ys.double(), sub.info))
                           for r in refs})
            atomic_write_text(out / "order.json", json.dumps(result, indent=1))
            summary["ran"].append("order")
    if "paste" in todo:
        try:
            result = paste(model, task, steps=paste_steps, log=log)
        except UserError as e:
            skip("paste", str(e))
        else:
            atomic_write_text(out / "paste.json", json.dumps(result, indent=1))
            plots.plot_paste(result, out / "paste.png")
            summary["ran"].append("paste")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary
