"""The report's body for a token run: the averaged metrics of the network and every learner, the curves
against strings seen, training, and the analysis sections."""

from __future__ import annotations

import html
import math
from pathlib import Path

from iclab.errors import RunFolderError
from iclab.report.plots import display_name, plot_token_curves, plot_training
from iclab.rundir import read_curves, read_summary
from iclab.token_metrics import METRICS


def _cell(row: dict | None) -> str:
    if row is None:
        return "<td></td>"
    if not math.isfinite(row["mean"]):
        return "<td>diverged</td>"
    return f"<td>{row['mean']:.3f} <span class='muted'>± {(row['ci_high'] - row['ci_low']) / 2:.3f}</span></td>"


def token_sections(cfg, run_dir: Path, records: list[dict], network: str, img) -> list[str]:
    from iclab.tasks import make_task

    task = make_task(cfg.task)
    rows = read_curves(run_dir / "eval" / "curves.csv")
    summary = read_summary(run_dir / "eval" / "summary.csv")
    if not rows or not summary:
        raise RunFolderError(f"{run_dir / 'eval'}: holds no token metrics; run `iclab eval {run_dir}`")
    learners = list(dict.fromkeys(r["learner"] for r in summary))
    by = {(r["learner"], r["metric"]): r for r in summary}
    parts = []
    last = [r for r in records if "loss" in r]
    if last:
        r = last[-1]
        parts.append(f"<p>Task <b>{html.escape(cfg.task.name)}</b> ({html.escape(task.describe())}); model "
                     f"<b>{html.escape(network)}</b>; trained {r['step']} steps in {r.get('elapsed_s', 0):.0f} s, final "
                     f"training loss (cross-entropy) {r['loss']:.4g}.</p>")
    model = by.get(("model", "accuracy"))
    if model is not None:
        others = ", ".join(f"{html.escape(display_name(lab, network))} {by[(lab, 'accuracy')]['mean']:.3f}"
                           for lab in learners if lab != "model" and (lab, "accuracy") in by)
        value = f"<b>{model['mean']:.3f}</b>" if math.isfinite(model["mean"]) else "<b>not finite: diverged</b>"
        tvd = by.get(("model", "tvd"))
        tvd_text = f" and its total variation distance to the true next-symbol distribution {tvd['mean']:.3f}" \
            if tvd is not None and math.isfinite(tvd["mean"]) else ""
        parts.append(f'<p class="key">On {model["positions"]} held-out positions the network\'s greedy accuracy is '
                     f"{value}{tvd_text}; {others}.</p>")
    metrics = [m for m in METRICS if any(r["metric"] == m for r in summary)]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    body = "".join(f"<tr><td>{html.escape(display_name(lab, network))} <span class='muted'>{html.escape(lab)}"
                   f"</span></td>{''.join(_cell(by.get((lab, m))) for m in metrics)}</tr>" for lab in learners)
    parts.append(f"<h2>Averaged over every scored position</h2><table><tr><th>learner</th>{head}</tr>{body}</table>")
    png = plot_token_curves(rows, run_dir / "plots" / "curves_tokens.png", network=network)
    parts.append(f"<h2>Against the number of strings seen in the prompt</h2>{img(png)}")
    png = plot_training(records, run_dir / "plots" / "training.png", loss_label="training loss (cross-entropy)",
                        val_label="held-out 1 - accuracy", val_mean=True)
    if png is not None:
        parts.append(f"<h2>Training</h2>{img(png)}")
    return parts
