"""The run report: one self-contained HTML page (figures embedded as base64 PNG, no external assets)."""

from __future__ import annotations

import base64
import csv
import html
import math
import time
from pathlib import Path

from iclab.errors import RunFolderError
from iclab.report.plots import (
    display_name,
    diverged,
    fmt_error,
    plot_curves,
    plot_shift_panels,
    plot_training,
)
from iclab.rundir import read_curves, read_metrics, read_run_config, shift_slug
from iclab.utils import atomic_write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.92em} td,th{padding:.25em .8em;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left} .muted{color:#777;font-size:.9em}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em} img{max-width:100%}
.key{background:#f3f8ff;border-left:4px solid #4a7fd0;padding:.6em 1em}
"""


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def write_report(run_dir: str | Path) -> Path:
    """Build ``report.html`` from a run folder's config, metrics and ``eval/curves.csv``."""
    from iclab.config import config_to_yaml

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    from iclab.tasks import is_token_task

    if is_token_task(cfg.task):
        return _write_token_report(run_dir, cfg)
    rows = read_curves(run_dir / "eval" / "curves.csv")
    records = read_metrics(run_dir)
    from iclab.tasks import make_task

    d = cfg.task.n_dims
    ylabel = make_task(cfg.task).error_label
    network = cfg.model.label()
    shifts = list(dict.fromkeys(r["shift"] for r in rows))
    learners = list(dict.fromkeys(r["learner"] for r in rows))
    if not rows:
        raise RunFolderError(f"{run_dir / 'eval' / 'curves.csv'}: holds no curves; run `iclab eval {run_dir}`")
    have = sorted({r["k"] for r in rows})
    ks = sorted({k for k in (0, d // 2, d, 2 * d, have[-1]) if k in have}) or [have[0], have[-1]]

    parts = [f"<h1>iclab run: {html.escape(cfg.name)}</h1>",
             f'<p class="muted">{html.escape(str(run_dir))} &middot; report written '
             f'{time.strftime("%Y-%m-%d %H:%M:%S")}</p>']
    last = [r for r in records if "loss" in r]
    if last:
        r = last[-1]
        parts.append(f"<p>Task <b>{html.escape(cfg.task.name)}</b>, d = {d}, {cfg.task.n_points} points per prompt; "
                     f"model <b>{html.escape(network)}</b> ({html.escape(_model_summary(cfg.model))}); "
                     f"trained {r['step']} steps in {r.get('elapsed_s', 0):.0f} s, final training loss "
                     f"{r['loss']:.4g}.</p>")
    std = {(r["learner"], r["k"]): r for r in rows if r["shift"] == "standard"}
    model_ks = sorted(k for lab, k in std if lab == "model")
    if model_ks:  # the headline: at k = 2d, or the nearest k the task scores
        k = min(model_ks, key=lambda k: (abs(k - 2 * d), k))
        at = f"k = 2d = {k}" if k == 2 * d else f"k = {k}"
        others = ", ".join(f"{html.escape(display_name(lab, network))} {fmt_error(std[(lab, k)]['mean'])}"
                           for lab in learners if lab != "model" and (lab, k) in std)
        m = std[("model", k)]
        value = (f"<b>{m['mean']:.3f}</b> (95% CI {m['ci_low']:.3f} to {m['ci_high']:.3f})"
                 if math.isfinite(m["mean"]) else "<b>not finite: the network diverged</b>")
        parts.append(f'<p class="key">At {at} in-context examples the trained model\'s {ylabel} is {value}; '
                     f"{others}.</p>")
    for lab, bad in diverged(rows).items():
        parts.append(f'<p class="key">Warning: {html.escape(display_name(lab, network))} has non-finite errors at '
                     f"k = {', '.join(map(str, sorted(set(bad))))} (marked x in the plots): it diverged.</p>")

    if len(shifts) > 1:
        png = plot_shift_panels(rows, run_dir / "plots" / "curves_all_shifts.png", n_dims=d, ylabel=ylabel,
                                network=network)
        parts.append(f"<h2>Error vs in-context examples, one panel per shift</h2>{_img(png)}")
    for shift in shifts:
        sub = [r for r in rows if r["shift"] == shift]
        png = plot_curves(sub, run_dir / "plots" / f"curves_{shift_slug(shift)}.png", n_dims=d,
                          title=f"{cfg.task.name} (d={d}), {shift}", ylabel=ylabel, network=network)
        parts.append(f"<h2>Error vs in-context examples: {html.escape(shift)}</h2>{_img(png)}")
        parts.append(_table(sub, learners, ks, network))
    png = plot_training(records, run_dir / "plots" / "training.png", k_mark=2 * d)
    if png is not None:
        parts.append(f"<h2>Training</h2>{_img(png)}")
    parts.extend(_analysis_section(run_dir, d))
    parts.append("<h2>Config</h2><pre>" + html.escape(config_to_yaml(cfg)) + "</pre>")
    parts.append(f'<p class="muted">Errors are {ylabel} (squared error divided by the task\'s error scale), averaged over '
                 f"{cfg.eval.n_prompts} held-out prompts, with 95% normal-approximation intervals. "
                 "Source table: eval/curves.csv; training log: metrics.jsonl.</p>")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>iclab: {html.escape(cfg.name)}"
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    out = run_dir / "report.html"
    atomic_write_text(out, page)
    return out


def _write_token_report(run_dir: Path, cfg) -> Path:
    from iclab.config import config_to_yaml
    from iclab.models import network_label
    from iclab.report.tokens import token_sections

    parts = [f"<h1>iclab run: {html.escape(cfg.name)}</h1>",
             f'<p class="muted">{html.escape(str(run_dir))} &middot; report written '
             f'{time.strftime("%Y-%m-%d %H:%M:%S")}</p>']
    parts += token_sections(cfg, run_dir, read_metrics(run_dir), network_label(cfg.model, tokens=True), _img)
    parts.extend(_analysis_section(run_dir, 0))
    parts.append("<h2>Config</h2><pre>" + html.escape(config_to_yaml(cfg)) + "</pre>")
    parts.append(f'<p class="muted">Metrics over {cfg.eval.n_prompts} held-out prompts (none from a process, '
                 "automaton or input, seen in training): greedy accuracy (the argmax is a valid next symbol), total "
                 "variation distance to the true next-symbol distribution, cross-entropy of the target, "
                 "KL(true || learner); 95% intervals across prompts. Source tables: eval/summary.csv, "
                 "eval/curves.csv (and eval/generation.csv where answers are decoded); training log: "
                 "metrics.jsonl.</p>")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>iclab: {html.escape(cfg.name)}"
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    out = run_dir / "report.html"
    atomic_write_text(out, page)
    return out


def _model_summary(model_cfg) -> str:
    fields = [f"{k}={getattr(model_cfg, k)}" for k in ("encoder", "n_layer", "n_embd", "n_head")
              if hasattr(model_cfg, k)]
    return ", ".join(fields)


def _table(rows: list[dict], learners: list[str], ks: list[int], network: str | None = None) -> str:
    by = {(r["learner"], r["k"]): r["mean"] for r in rows}
    head = "".join(f"<th>k = {k}</th>" for k in ks)
    body = []
    for lab in learners:
        cells = "".join(f"<td>{fmt_error(by[(lab, k)])}</td>" if (lab, k) in by else "<td></td>" for k in ks)
        body.append(f"<tr><td>{html.escape(display_name(lab, network))} <span class='muted'>{html.escape(lab)}</span></td>"
                    f"{cells}</tr>")
    return f"<table><tr><th>learner</th>{head}</tr>{''.join(body)}</table>"


def _analysis_section(run_dir: Path, d: int) -> list[str]:
    """Each analysis instrument's part of the report (:data:`iclab.analysis.INSTRUMENTS`), when the run was
    analysed: built from the files ``iclab analyze`` wrote."""
    import json

    from iclab.analysis.instruments import INSTRUMENTS, Figure, Note, Table

    folder = run_dir / "analysis"
    if not (folder / "summary.json").is_file():
        return []
    try:
        summary = json.loads((folder / "summary.json").read_text())
        if not isinstance(summary, dict):
            raise ValueError
        if not isinstance(summary.get("skipped", {}), dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise RunFolderError(f"{folder / 'summary.json'}: damaged; run `iclab analyze {run_dir}` again") from None
    parts = [f"<h2>Analysis (iclab analyze, checkpoint step {summary.get('step')}, "
             f"{summary.get('n_prompts')} prompts)</h2>"]
    for instrument in INSTRUMENTS.values():
        try:
            items = instrument.section(folder, d) if instrument.section else []
        except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError, csv.Error):
            raise RunFolderError(f"{folder}: the {instrument.name} results are damaged; run `iclab analyze "
                                 f"{run_dir} --only {instrument.name}` again") from None
        for item in items:
            if isinstance(item, Figure):
                parts.append(f"<h3>{html.escape(item.title)}</h3>{_img(item.path)}")
            elif isinstance(item, Table):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in item.header)
                body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in item.rows)
                parts.append(f"<p>{html.escape(item.caption)}</p><table><tr>{head}</tr>{body}</table>")
            elif isinstance(item, Note):
                parts.append(f"<p>{html.escape(item.text)}</p>")
    if summary.get("skipped"):
        parts.append('<p class="muted">Skipped: ' + "; ".join(f"{html.escape(k)}: {html.escape(v)}"
                                                              for k, v in summary["skipped"].items()) + "</p>")
    return parts
