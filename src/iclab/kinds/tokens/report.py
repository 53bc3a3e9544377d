"""The report's body for a token run: the averaged metrics of the network and every learner, exact match where
answers are decoded, the curves against the task's unit, and training."""

from __future__ import annotations

import html
import math
from pathlib import Path

from iclab.errors import RunFolderError
from iclab.kinds.tokens.figures import plot_token_curves
from iclab.kinds.tokens.metrics import CURVE_TYPES, METRICS, SUMMARY_TYPES
from iclab.page import img
from iclab.plotting import display_name, plot_training
from iclab.tables import read_table


def _cell(row: dict | None) -> str:
    if row is None:
        return "<td></td>"
    if not math.isfinite(row["mean"]):
        return "<td>diverged</td>"
    return f"<td>{row['mean']:.3f} <span class='muted'>± {(row['ci_high'] - row['ci_low']) / 2:.3f}</span></td>"


def sections(cfg, run_dir: Path, records: list[dict], network: str) -> list[str]:
    from iclab.tasks import make_task

    task = make_task(cfg.task)
    hint = f"run `iclab eval {run_dir}` first"
    rows = read_table(run_dir / "eval" / "curves.csv", CURVE_TYPES, what="curves file", hint=hint)
    summary = read_table(run_dir / "eval" / "summary.csv", SUMMARY_TYPES, what="summary file", hint=hint)
    if not rows or not summary:
        raise RunFolderError(f"{run_dir / 'eval'}: holds no token metrics; run `iclab eval {run_dir}`")
    learners = list(dict.fromkeys(r["learner"] for r in summary))
    by = {(r["learner"], r["metric"]): r for r in summary}
    parts = []
    last = [r for r in records if "loss" in r]
    if last:
        r = last[-1]
        parts.append(
            f"<p>Task <b>{html.escape(cfg.task.name)}</b> ({html.escape(task.describe())}); model "
            f"<b>{html.escape(network)}</b>; trained {r['step']} steps in {r.get('elapsed_s', 0):.0f} s, final "
            f"training loss (cross-entropy) {r['loss']:.4g}.</p>"
        )
    model = by.get(("model", "accuracy"))
    if model is not None:
        others = ", ".join(
            f"{html.escape(display_name(lab, network))} {by[(lab, 'accuracy')]['mean']:.3f}"
            for lab in learners
            if lab != "model" and (lab, "accuracy") in by
        )
        value = f"<b>{model['mean']:.3f}</b>" if math.isfinite(model["mean"]) else "<b>not finite: diverged</b>"
        tvd = by.get(("model", "tvd"))
        tvd_text = (
            f" and its total variation distance to the true {target_noun(cfg)} distribution {tvd['mean']:.3f}"
            if tvd is not None and math.isfinite(tvd["mean"])
            else ""
        )
        parts.append(
            f'<p class="key">On {model["positions"]} held-out positions the network\'s greedy accuracy is '
            f"{value}{tvd_text}; {others}.</p>"
        )
    parts += _generation_sections(run_dir, network)
    metrics = [m for m in (*METRICS, "exact_match") if any(r["metric"] == m for r in summary)]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    body = "".join(
        f"<tr><td>{html.escape(display_name(lab, network))} <span class='muted'>{html.escape(lab)}"
        f"</span></td>{''.join(_cell(by.get((lab, m))) for m in metrics)}</tr>"
        for lab in learners
    )
    parts.append(f"<h2>Averaged over every scored position</h2><table><tr><th>learner</th>{head}</tr>{body}</table>")
    png = plot_token_curves(rows, run_dir / "plots" / "curves_tokens.png", network=network, xlabel=task.curve_axis)
    parts.append(f"<h2>Against the {html.escape(task.curve_axis)}</h2>{img(png)}")
    png = plot_training(
        records,
        run_dir / "plots" / "training.png",
        loss_label="training loss (cross-entropy)",
        val_label="held-out accuracy",
        val_scalar="val_accuracy",
    )
    if png is not None:
        parts.append(f"<h2>Training</h2>{img(png)}")
    return parts


def _generation_sections(run_dir: Path, network: str) -> list[str]:
    """For tasks evaluated by generation: exact match overall and by group, and a few decoded answers."""
    import json

    from iclab.kinds.tokens.generation import GENERATION_TYPES

    path = run_dir / "eval" / "generation.csv"
    if not path.is_file():
        return []
    rows = read_table(path, GENERATION_TYPES, what="generation file", hint=f"run `iclab eval {run_dir}` again")
    model = [r for r in rows if r["learner"] == "model"]
    overall = next((r for r in model if r["group"] == "all"), None)
    parts = []
    if overall is not None:
        parts.append(
            f'<p class="key">Decoding its own answers to {overall["n"]} held-out prompts, the network is '
            f"exactly right on <b>{overall['exact_match']:.3f}</b> of them (the true continuations, parsed "
            "the same way: "
            f"{next((r['exact_match'] for r in rows if r['learner'] == 'oracle' and r['group'] == 'all'), 0):.3f})."
            "</p>"
        )
    groups = list(dict.fromkeys(r["group"] for r in model if r["group"] != "all"))
    for group in groups:
        sub = [r for r in model if r["group"] == group]
        head = "".join(f"<th>{html.escape(str(r['value']))}</th>" for r in sub)
        n = "".join(f"<td class='muted'>{r['n']}</td>" for r in sub)
        em = "".join(f"<td>{r['exact_match']:.3f}</td>" for r in sub)
        parts.append(
            f"<h2>Exact match by {html.escape(group)}</h2><table><tr><th>{html.escape(group)}</th>{head}"
            f"</tr><tr><td>prompts</td>{n}</tr><tr><td>{html.escape(network)}</td>{em}</tr></table>"
        )
    records_path = run_dir / "eval" / "generations.jsonl"
    if records_path.is_file():
        lines = records_path.read_text().splitlines()[:6]
        shown = []
        for line in lines:
            r = json.loads(line)
            mark = "right" if r["correct"] else "wrong"
            shown.append(
                f"<tr><td><pre>{html.escape(r['prompt'])}</pre></td><td><pre>{html.escape(r['generated'])}"
                f"</pre></td><td>{html.escape(str(r['answer']))} ({mark})</td></tr>"
            )
        parts.append(
            "<h2>Some decoded answers</h2><table><tr><th>prompt</th><th>the network wrote</th>"
            f"<th>answer read</th></tr>{''.join(shown)}</table>"
        )
    return parts


def target_noun(cfg) -> str:
    """What the run's network predicts at each token, in words: ``next-symbol``, or a pretext task's ``position``."""
    from iclab.tasks import TASKS

    return TASKS[cfg.task.name].target_noun


def footer(cfg) -> str:
    what = target_noun(cfg)
    return (
        f"Metrics over {cfg.eval.n_prompts} held-out prompts (none from a process, automaton or input, seen in "
        f"training): greedy accuracy (the argmax is a valid {what.replace('-', ' ')}), total variation distance to "
        f"the true {what} distribution, cross-entropy of the target, KL(true || learner); 95% intervals across "
        "prompts. Source tables: eval/summary.csv, eval/curves.csv (and eval/generation.csv where answers are "
        "decoded); training log: metrics.jsonl."
    )
