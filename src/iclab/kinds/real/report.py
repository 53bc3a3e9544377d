"""The report's body for a real-valued run: the headline error at k = 2d, one figure and table per shift, and
the training figure."""

from __future__ import annotations

import html
import math
from pathlib import Path

from iclab.errors import RunFolderError
from iclab.kinds.real.figures import diverged, plot_curves, plot_shift_panels, shift_slug
from iclab.page import img
from iclab.plotting import display_name, fmt_error, plot_training


def sections(kind, cfg, run_dir: Path, records: list[dict]) -> list[str]:
    from iclab.kinds.real.curves import TYPES
    from iclab.tables import read_table
    from iclab.tasks import make_task

    rows = read_table(
        run_dir / "eval" / "curves.csv", TYPES, what="curves file", hint=f"run `iclab eval {run_dir}` first"
    )
    task = make_task(cfg.task)
    d = task.n_dims
    ylabel = task.error_label
    network = kind.network_label(cfg.model)
    shifts = list(dict.fromkeys(r["shift"] for r in rows))
    learners = list(dict.fromkeys(r["learner"] for r in rows))
    if not rows:
        raise RunFolderError(f"{run_dir / 'eval' / 'curves.csv'}: holds no curves; run `iclab eval {run_dir}`")
    have = sorted({r["k"] for r in rows})
    ks = sorted({k for k in (0, d // 2, d, 2 * d, have[-1]) if k in have}) or [have[0], have[-1]]

    parts = []
    last = [r for r in records if "loss" in r]
    if last:
        r = last[-1]
        parts.append(
            f"<p>Task <b>{html.escape(cfg.task.name)}</b>, d = {d}, {task.n_points} points per prompt; "
            f"model <b>{html.escape(network)}</b> ({html.escape(_model_summary(cfg.model))}); "
            f"trained {r['step']} steps in {r.get('elapsed_s', 0):.0f} s, final training loss "
            f"{r['loss']:.4g}.</p>"
        )
    std = {(r["learner"], r["k"]): r for r in rows if r["shift"] == "standard"}
    model_ks = sorted(k for lab, k in std if lab == "model")
    if model_ks:  # the headline: at k = 2d, or the nearest k the task scores
        k = min(model_ks, key=lambda k: (abs(k - 2 * d), k))
        at = f"k = 2d = {k}" if k == 2 * d else f"k = {k}"
        others = ", ".join(
            f"{html.escape(display_name(lab, network))} {fmt_error(std[(lab, k)]['mean'])}"
            for lab in learners
            if lab != "model" and (lab, k) in std
        )
        m = std[("model", k)]
        value = (
            f"<b>{m['mean']:.3f}</b> (95% CI {m['ci_low']:.3f} to {m['ci_high']:.3f})"
            if math.isfinite(m["mean"])
            else "<b>not finite: the network diverged</b>"
        )
        parts.append(
            f'<p class="key">At {at} in-context examples the trained model\'s {ylabel} is {value}; {others}.</p>'
        )
    for lab, bad in diverged(rows).items():
        parts.append(
            f'<p class="key">Warning: {html.escape(display_name(lab, network))} has non-finite errors at '
            f"k = {', '.join(map(str, sorted(set(bad))))} (marked x in the plots): it diverged.</p>"
        )

    if len(shifts) > 1:
        png = plot_shift_panels(
            rows, run_dir / "plots" / "curves_all_shifts.png", n_dims=d, ylabel=ylabel, network=network
        )
        parts.append(f"<h2>Error vs in-context examples, one panel per shift</h2>{img(png)}")
    for shift in shifts:
        sub = [r for r in rows if r["shift"] == shift]
        png = plot_curves(
            sub,
            run_dir / "plots" / f"curves_{shift_slug(shift)}.png",
            n_dims=d,
            title=f"{cfg.task.name} (d={d}), {shift}",
            ylabel=ylabel,
            network=network,
        )
        parts.append(f"<h2>Error vs in-context examples: {html.escape(shift)}</h2>{img(png)}")
        parts.append(_table(sub, learners, ks, network))
    png = plot_training(records, run_dir / "plots" / "training.png", k_mark=2 * d)
    if png is not None:
        parts.append(f"<h2>Training</h2>{img(png)}")
    return parts


def footer(cfg, task) -> str:
    return (
        f"Errors are {task.error_label} (squared error divided by the task's error scale), averaged over "
        f"{cfg.eval.n_prompts} held-out prompts, with 95% normal-approximation intervals. "
        "Source table: eval/curves.csv; training log: metrics.jsonl."
    )


def _model_summary(model_cfg) -> str:
    fields = [
        f"{k}={getattr(model_cfg, k)}" for k in ("encoder", "n_layer", "n_embd", "n_head") if hasattr(model_cfg, k)
    ]
    return ", ".join(fields)


def _table(rows: list[dict], learners: list[str], ks: list[int], network: str | None = None) -> str:
    by = {(r["learner"], r["k"]): r["mean"] for r in rows}
    head = "".join(f"<th>k = {k}</th>" for k in ks)
    body = []
    for lab in learners:
        cells = "".join(f"<td>{fmt_error(by[(lab, k)])}</td>" if (lab, k) in by else "<td></td>" for k in ks)
        body.append(
            f"<tr><td>{html.escape(display_name(lab, network))} <span class='muted'>{html.escape(lab)}</span></td>"
            f"{cells}</tr>"
        )
    return f"<table><tr><th>learner</th>{head}</tr>{''.join(body)}</table>"
