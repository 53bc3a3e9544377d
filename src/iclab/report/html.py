"""The run report: one self-contained HTML page (figures embedded as base64 PNG, no external assets).

The page is the same for every run: a title, the prompt kind's sections (:meth:`iclab.kinds.PromptKind.report_sections`:
the headline, curves, tables, training), each analysis instrument's section when the run was analysed, the
config, and the kind's footer."""

from __future__ import annotations

import html
import time
from pathlib import Path

from iclab.errors import RunFolderError
from iclab.page import document, img, table
from iclab.rundir import read_metrics, read_run_config


def write_report(run_dir: str | Path) -> Path:
    """Build ``report.html`` from a run folder's config, metrics and evaluation files."""
    from iclab.config import config_to_yaml
    from iclab.kinds import kind_of
    from iclab.tasks import make_task
    from iclab.utils import atomic_write_text

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    task = make_task(cfg.task)
    kind = kind_of(task)
    parts = [
        f"<h1>iclab run: {html.escape(cfg.name)}</h1>",
        f'<p class="muted">{html.escape(str(run_dir))} &middot; report written '
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}</p>",
    ]
    parts += _origin_section(run_dir, cfg)
    parts += kind.report_sections(cfg, run_dir, read_metrics(run_dir))
    parts += _program_section(run_dir)
    parts += _analysis_section(run_dir, getattr(cfg.task, "n_dims", 0))
    parts.append("<h2>Config</h2><pre>" + html.escape(config_to_yaml(cfg)) + "</pre>")
    footer = kind.report_footer(cfg, task)
    if footer:
        parts.append(f'<p class="muted">{html.escape(footer)}</p>')
    out = run_dir / "report.html"
    atomic_write_text(out, document(f"iclab: {cfg.name}", parts))
    return out


def _origin_section(run_dir: Path, cfg) -> list[str]:
    """Where a changed run came from (``start.json``): the started-from run and step, what the fine-tuning method
    trains (count and formula) and what pruning removed (``prune.json``)."""
    import json

    try:
        start = json.loads((run_dir / "start.json").read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(start, dict):
        return []
    rows = [["started from", f"{start.get('run', '?')} at step {start.get('step', '?')}"]]
    tune = start.get("finetune")
    if isinstance(tune, dict):
        share = 100 * tune.get("trainable", 0) / max(tune.get("total", 1), 1)
        rows.append(["fine-tuning method", str(tune.get("method"))])
        rows.append(
            ["trainable parameters", f"{tune.get('trainable', 0):,} of {tune.get('total', 0):,} ({share:.2f}%)"]
        )
        rows.append(["by formula", str(tune.get("formula", ""))])
    grow = start.get("grow")
    if isinstance(grow, dict):
        rows.append(["grown", f"{grow.get('from_tokens')} -> {grow.get('to_tokens')} parameter tokens per layer"])
    try:
        pruned = json.loads((run_dir / "prune.json").read_text())
    except (OSError, ValueError):
        pruned = None
    if isinstance(pruned, dict):
        rows.append(
            [
                "pruned",
                f"{pruned.get('method')}, no retraining: kept {pruned.get('kept_flops_share', 0):.3f} of the "
                f"heads' and neurons' FLOPs ({pruned.get('heads_kept')} of {pruned.get('heads')} heads, "
                f"{pruned.get('neurons_kept')} of {pruned.get('neurons')} neurons)",
            ]
        )
        rho = pruned.get("score_vs_ablation_spearman")
        if isinstance(rho, dict) and rho:
            shown = ", ".join(f"{kind}s {value}" for kind, value in rho.items())
            rows.append(["score vs single-unit ablation effect (Spearman)", shown])
    return ["<h2>Started from</h2>", table(["", ""], rows)]


def _program_section(run_dir: Path) -> list[str]:
    """A decompiled Transformer Program (``iclab decompile``: ``RUN/program/program.py``), highlighted, in a
    collapsible block (open when it is short)."""
    from iclab.page import highlight_python

    path = run_dir / "program" / "program.py"
    if not path.is_file():
        return []
    source = path.read_text(errors="replace")
    n = source.count("\n")
    state = " open" if n <= 400 else ""
    return [
        "<h2>Program (iclab decompile)</h2>",
        f'<p class="muted">{html.escape(str(path))}: {n} lines; standard-library Python that predicts exactly as the '
        "discretised model does (its read-out weights in readout.csv beside it).</p>",
        f"<details{state}><summary>program.py</summary><pre>{highlight_python(source)}</pre></details>",
    ]


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
    parts = [
        f"<h2>Analysis (iclab analyze, checkpoint step {summary.get('step')}, {summary.get('n_prompts')} prompts)</h2>"
    ]
    for instrument in INSTRUMENTS.values():
        try:
            items = instrument.section(folder, d) if instrument.section else []
        except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError, RunFolderError):
            raise RunFolderError(
                f"{folder}: the {instrument.name} results are damaged; run `iclab analyze "
                f"{run_dir} --only {instrument.name}` again"
            ) from None
        for item in items:
            if isinstance(item, Figure):
                parts.append(f"<h3>{html.escape(item.title)}</h3>{img(item.path)}")
            elif isinstance(item, Table):
                parts.append(table(item.header, item.rows, item.caption))
            elif isinstance(item, Note):
                parts.append(f"<p>{html.escape(item.text)}</p>")
    if summary.get("skipped"):
        parts.append(
            '<p class="muted">Skipped: '
            + "; ".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in summary["skipped"].items())
            + "</p>"
        )
    return parts
