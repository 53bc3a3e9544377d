"""Comparing runs: one tidy table, plots of a metric against a swept key, and a report linking each run.

Everything is read from run folders (config.yaml, metrics.jsonl, eval/, analysis/); the processes that made
them are not needed. A sweep folder stands for its points; any run folder can join.

The tidy table (``compare.csv``) has one row per run, learner, shift and metric:

    run, path, status, <one column per swept key>, learner, shift, metric, value

Metrics: ``error@k=K`` (regression: the mean held-out error at K in-context examples, K the last k unless
chosen) and ``error_mean`` (over every k); ``accuracy@k=K`` for classification tasks; ``accuracy``, ``tvd``,
``cross_entropy``, ``kl`` for token runs; ``spd`` (mean over k) and ``sensitivity_cosine`` where
``iclab analyze`` ran alignment; ``tvd_to_model`` where it ran token_alignment; and the training run's
``train_loss`` and ``train_seconds`` (learner ``model``). The trained network is learner ``model`` in every run.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iclab.errors import RunFolderError, UserError
from iclab.utils import flatten

__all__ = ["Comparison", "collect", "plot_metric", "write_comparison"]


@dataclass
class Comparison:
    runs: list[dict]  # {"run", "path", "status", "values": {key: value}}
    keys: list[str]  # swept keys (columns)
    rows: list[dict] = field(default_factory=list)  # the tidy table
    axes: list[list[str]] = field(default_factory=list)  # the sweep's axes, when comparing one sweep

    def metrics(self) -> list[str]:
        return list(dict.fromkeys(r["metric"] for r in self.rows))


def _runs_of(path: Path) -> tuple[list[dict], list[list[str]]]:
    """The runs a path stands for: a sweep folder's points, or one run folder."""
    from iclab.config import read_yaml
    from iclab.sweeps.store import INDEX, point_state, read_index

    if (path / INDEX).is_file():
        index = read_index(path)
        live = _driver_running(path)  # then "running" / "submitted" in the index are true
        runs = []
        for p in index["points"]:
            run_dir = path / p["name"]
            state = point_state(run_dir, p["config"])
            if state != "finished" and (
                p.get("status") == "failed" or live and p.get("status") in ("running", "submitted")
            ):
                state = p["status"]
            runs.append(
                {
                    "run": p["name"],
                    "path": run_dir,
                    "values": p.get("values", {}),
                    "status": state,
                    "config": p["config"],
                }
            )
        return runs, index.get("axes", [])
    if (path / "config.yaml").is_file():
        config = read_yaml(path / "config.yaml")
        if (
            not isinstance(config, dict)
            or not isinstance(config.get("train"), dict)
            or not isinstance(config["train"].get("steps"), int)
            or not isinstance(config.get("eval"), dict)
        ):
            raise RunFolderError(f"{path / 'config.yaml'}: not a run's saved config (made by `iclab train`)")
        return [
            {"run": path.name, "path": path, "values": {}, "status": point_state(path, config), "config": config}
        ], []
    if path.is_dir():
        raise RunFolderError(f"{path}: neither a sweep folder (sweep.json) nor a run folder (config.yaml)")
    raise RunFolderError(f"{path}: no such sweep or run folder")


def _driver_running(folder: Path) -> bool:
    """Whether an `iclab sweep` driver holds this sweep folder now."""
    from iclab.sweeps.store import DriverLock

    lock = DriverLock(folder)
    if not lock.path.is_file():
        return False
    if lock.acquire():
        lock.release()
        return False
    return True


def collect(paths: list[str | Path], k: int | None = None) -> Comparison:
    """Read every run that ``paths`` stand for into a :class:`Comparison`."""
    from iclab.training.loop import RESUMABLE_CHANGES

    if not paths:
        raise UserError("compare needs at least one sweep or run folder")
    runs, axes = [], []
    for p in paths:
        found, ax = _runs_of(Path(p))
        runs += found
        axes += [a for a in ax if a not in axes]
    names = [r["run"] for r in runs]
    if len(set(names)) < len(names):  # runs of two sweeps may share a point name
        for r in runs:
            r["run"] = f"{r['path'].parent.name}/{r['run']}"
    keys = [key for group in axes for key in group]
    # loose runs (and runs of several sweeps): the config keys in which they differ. One sweep's axes say it all
    # (an axis over a recipe argument changes many config keys at once, a model family say)
    flats = [flatten(r["config"]) for r in runs]
    every = sorted(set().union(*flats)) if not (len(paths) == 1 and axes) else []
    for key in every:
        if key in keys or key == "name" or key in RESUMABLE_CHANGES or key.startswith("eval.") or key == "imports":
            continue
        if len({repr(f.get(key)) for f in flats}) > 1:
            keys.append(key)
    for r, f in zip(runs, flats):
        r["values"] = {key: r["values"].get(key, f.get(key)) for key in keys}
    comp = Comparison(runs=runs, keys=keys, axes=axes)
    for r in runs:
        for row in _metrics_of(r, k):
            comp.rows.append({"run": r["run"], "path": str(r["path"]), "status": r["status"], **r["values"], **row})
    return comp


def _metrics_of(run: dict, k: int | None) -> list[dict]:
    """The tidy metric rows of one run folder (whatever it holds; nothing for a run not yet evaluated): training
    figures, what the run's prompt kind evaluates (:meth:`iclab.kinds.PromptKind.comparison_metrics`) and the
    alignment of an analysed run."""
    from iclab.rundir import read_metrics

    path: Path = run["path"]
    out = []

    def add(learner, shift, metric, value):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return
        out.append({"learner": learner, "shift": shift, "metric": metric, "value": value})

    records = read_metrics(path)
    losses = [r for r in records if "loss" in r]
    if losses:
        add("model", "", "train_loss", losses[-1]["loss"])
        add("model", "", "train_seconds", losses[-1].get("elapsed_s"))
    cfg = _parsed(run["config"])
    if cfg is not None:
        from iclab.kinds import kind_of_config

        for r in kind_of_config(cfg.task).comparison_metrics(path, cfg, k):
            add(r["learner"], r["shift"], r["metric"], r["value"])
    for r in _aggregate(_read(path / "analysis" / "alignment.csv"), ("spd", "sensitivity_cosine")):
        add(r["learner"], "standard", r["metric"], r["value"])
    for r in _read(path / "analysis" / "token_alignment.csv"):
        if r.get("k") == "-1":
            add(r.get("learner"), "standard", "tvd_to_model", r.get("tvd"))
    return out


def _read(path: Path) -> list[dict]:
    """A table of an analysed run, or nothing when it is missing or damaged (a comparison shows what it can)."""
    from iclab.tables import read_table

    try:
        return read_table(path, missing_ok=True)
    except RunFolderError:
        return []


def _aggregate(rows: list[dict], columns: tuple[str, ...]) -> list[dict]:
    """Per learner, the mean over k of each column."""
    sums: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        for c in columns:
            try:
                v = float(r[c])
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(v):
                sums.setdefault((r.get("learner", ""), c), []).append(v)
    return [{"learner": lrn, "metric": c, "value": sum(v) / len(v)} for (lrn, c), v in sums.items()]


def _parsed(config: dict):
    """A run's saved config, parsed; None when it no longer parses (a comparison still shows its training)."""
    from iclab.config import run_config_from_dict
    from iclab.errors import ConfigError

    try:
        return run_config_from_dict(config)
    except (ConfigError, AttributeError, TypeError, KeyError):
        return None


# ----------------------------------------------------------------------------------------------
# writing: the table, the plots, the report


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "null" if v is None else str(v)


def table_csv(comp: Comparison) -> str:
    """``compare.csv``: one row per run, learner, shift and metric, with the swept keys' values."""
    from iclab.tables import table_text

    return table_text(comp.rows, ["run", "path", "status", *comp.keys, "learner", "shift", "metric", "value"])


def default_metric(comp: Comparison) -> str:
    ms = comp.metrics()
    for prefer in ("accuracy@k=", "accuracy", "error@k="):
        for m in ms:
            if m == prefer or (prefer.endswith("=") and m.startswith(prefer)):
                return m
    return ms[0] if ms else "train_loss"


def check_choice(
    comp: Comparison, x: str | None, by: str | None, metric: str | None, panel: str | None = None
) -> tuple[str, str | None, str]:
    """The x key, the line key and the metric (and the panel key), checked against what the runs hold (one-line
    errors)."""
    if not comp.keys:
        raise UserError("the runs do not differ in any config key, so there is nothing to plot against")
    x = x or comp.keys[0]
    if x not in comp.keys:
        raise UserError(f"--x: {x!r} is not a swept key; choose one of {', '.join(comp.keys)}")
    if by is not None and by not in comp.keys:
        raise UserError(f"--by: {by!r} is not a swept key; choose one of {', '.join(comp.keys)}")
    if by == x:
        raise UserError("--by: must differ from --x")
    if panel is not None and panel not in comp.keys:
        raise UserError(f"--panel: {panel!r} is not a swept key; choose one of {', '.join(comp.keys)}")
    if panel is not None and panel in (x, by):
        raise UserError("--panel: must differ from --x and --by")
    metric = metric or default_metric(comp)
    if metric not in comp.metrics():
        raise UserError(
            f"--metric: {metric!r} is not in these runs; they have {', '.join(comp.metrics()) or 'none yet'}"
        )
    return x, by, metric


def _sort_key(v: Any):
    if v is None:
        return (1, math.inf, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (0, math.inf, str(v))


def _xy_points(comp: Comparison, rows: list[dict], x: str) -> tuple[list, list, list, list]:
    """x values in order, and the mean / min / max of the metric over runs that share x (seeds and every other key)."""
    groups: dict[Any, list[float]] = {}
    for r in rows:
        groups.setdefault(_hashable(r.get(x)), []).append(r["value"])
    xs = sorted(groups, key=_sort_key)
    means = [sum(groups[v]) / len(groups[v]) for v in xs]
    return xs, means, [min(groups[v]) for v in xs], [max(groups[v]) for v in xs]


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def plot_metric(
    comp: Comparison,
    path: Path,
    x: str,
    by: str | None,
    metric: str,
    log_x: bool | None = None,
    title: str = "",
    panel: str | None = None,
) -> Path:
    """The metric against ``x``, one panel per shift (and per value of ``panel``). Without ``by``: the network and
    every reference learner; with ``by``: the network, one line per value of ``by``. Runs that share the plotted
    values (seeds) are averaged; the band is their range."""
    from iclab.plotting import display_name, pyplot

    plt = pyplot()
    rows = [r for r in comp.rows if r["metric"] == metric and math.isfinite(r["value"])]
    shift_names = list(dict.fromkeys(r["shift"] for r in rows)) or [""]
    panel_values = sorted({_hashable(r.get(panel)) for r in rows}, key=_sort_key) if panel else [None]
    shifts = [(sh, pv) for pv in panel_values for sh in shift_names]
    fig, axes = plt.subplots(1, len(shifts), figsize=(5.2 * len(shifts), 3.8), squeeze=False, sharey=True)
    xs_all = sorted({_hashable(r.get(x)) for r in rows}, key=_sort_key)
    numeric = [v for v in xs_all if isinstance(v, (int, float)) and not isinstance(v, bool)]
    categorical = len(numeric) < len([v for v in xs_all if v is not None])
    if log_x is None:
        log_x = not categorical and numeric and min(numeric) > 0 and max(numeric) >= 10 * min(numeric)
    inf_at = (
        max(numeric) * (4 if log_x else 1) + (0 if log_x else (max(numeric) - min(numeric) or 1) * 0.25)
        if numeric
        else 1
    )

    def pos(v):
        if categorical:
            return xs_all.index(v)
        return inf_at if v is None else v

    for ax, (shift, pv) in zip(axes[0], shifts):
        mine = [r for r in rows if r["shift"] == shift and (panel is None or _hashable(r.get(panel)) == pv)]
        if by is None:
            series = [
                (lrn, [r for r in mine if r["learner"] == lrn]) for lrn in dict.fromkeys(r["learner"] for r in mine)
            ]
            styles = {
                lrn: dict(color="black", lw=2.4, marker="o") if lrn == "model" else dict(ls="--", lw=1.4, marker=".")
                for lrn, _ in series
            }
            labels = {lrn: display_name(lrn, "trained network") for lrn, _ in series}
        else:
            values = sorted({_hashable(r.get(by)) for r in mine}, key=_sort_key)
            series = [(v, [r for r in mine if r["learner"] == "model" and _hashable(r.get(by)) == v]) for v in values]
            styles = {v: dict(marker="o", lw=2) for v in values}
            labels = {v: f"{by.rsplit('.', 1)[-1]} = {_cell(v)}" for v in values}
        for key, rs in series:
            if not rs:
                continue
            xs, mean, lo, hi = _xy_points(comp, rs, x)
            px = [pos(v) for v in xs]
            ax.plot(px, mean, label=labels[key], **styles[key])
            if any(a != b for a, b in zip(lo, hi)):
                ax.fill_between(px, lo, hi, alpha=0.15, color=ax.lines[-1].get_color())
        if log_x and not categorical:
            ax.set_xscale(
                "log", base=2 if all(float(v).is_integer() and int(v) & (int(v) - 1) == 0 for v in numeric) else 10
            )
        ticks = [pos(v) for v in xs_all]
        if categorical or None in xs_all or (log_x and len(xs_all) <= 12):
            ax.set_xticks(ticks)
            ax.set_xticklabels(
                ["∞" if v is None and not categorical else _cell(v) for v in xs_all], rotation=30 if categorical else 0
            )
            ax.minorticks_off()
        ax.set_xlabel(x)
        where = f"{panel.rsplit('.', 1)[-1]} = {_cell(pv)}" if panel else ""
        if shift and (len(shift_names) > 1 or not panel):
            where = f"{shift} prompts" + (f", {where}" if where else "")
        ax.set_title(where or metric, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric)
    axes[0][-1].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _wide(comp: Comparison, metric: str, shift: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Rows of runs, columns of learners, for one metric (the terminal table and the report's)."""
    rows = [r for r in comp.rows if r["metric"] == metric and (shift is None or r["shift"] == shift)]
    learners = list(dict.fromkeys(r["learner"] for r in rows))
    by = {(r["run"], r["learner"]): r["value"] for r in rows}
    header = [*(k.rsplit(".", 1)[-1] for k in comp.keys), "status", *learners]
    body = []
    for run in comp.runs:
        body.append(
            [
                *(_cell(run["values"].get(k)) for k in comp.keys),
                run["status"],
                *(_cell(by[(run["run"], lrn)]) if (run["run"], lrn) in by else "" for lrn in learners),
            ]
        )
    return header, body


def format_table(comp: Comparison, metric: str) -> str:
    shifts = list(dict.fromkeys(r["shift"] for r in comp.rows if r["metric"] == metric)) or [None]
    out = []
    for shift in shifts:
        header, body = _wide(comp, metric, shift)
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
        out.append(f"{metric}" + (f" ({shift} prompts)" if shift else ""))
        out.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        out += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(out)


def write_comparison(
    paths: list[str | Path],
    out: Path,
    x: str | None = None,
    by: str | None = None,
    metric: str | None = None,
    k: int | None = None,
    log_x: bool | None = None,
    title: str | None = None,
    panel: str | None = None,
) -> tuple[Comparison, Path]:
    """``compare.csv``, ``plots/compare_<metric>.png`` and ``report.html`` in ``out``; returns the comparison and
    the report's path."""
    from iclab.page import document, img
    from iclab.utils import atomic_write_text

    comp = collect(paths, k)
    x, by, metric = check_choice(comp, x, by, metric, panel)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.csv", table_csv(comp))
    figures = []
    slug = metric.replace("@", "_at_").replace("=", "")
    figures.append(plot_metric(comp, out / "plots" / f"compare_{slug}.png", x, by, metric, log_x, title or "", panel))
    if "error_mean" in comp.metrics() and metric != "error_mean" and metric.startswith("error@"):
        figures.append(
            plot_metric(comp, out / "plots" / "compare_error_mean.png", x, by, "error_mean", log_x, panel=panel)
        )
    title = title or f"Comparison of {len(comp.runs)} runs"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='muted'>{len(comp.runs)} runs; swept: {html.escape(', '.join(comp.keys))}. "
        f"The tidy table is <code>compare.csv</code> (every metric, learner and shift).</p>",
        f"<h2>{html.escape(metric)} against {html.escape(x)}</h2>",
    ]
    parts += [img(f) for f in figures]
    shifts = list(dict.fromkeys(r["shift"] for r in comp.rows if r["metric"] == metric)) or [None]
    for shift in shifts:
        header, body = _wide(comp, metric, shift)
        parts.append(
            f"<h2>{html.escape(metric)}{f' ({html.escape(shift)} prompts)' if shift else ''}</h2><table><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in ["run", *header])
            + "</tr>"
        )
        for run, cells in zip(comp.runs, body):
            report = Path(run["path"]) / "report.html"
            link = (
                f"<a href='{html.escape(_relative(report, out))}'>{html.escape(run['run'])}</a>"
                if report.is_file()
                else html.escape(run["run"])
            )
            parts.append("<tr>" + f"<td>{link}</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    report = out / "report.html"
    atomic_write_text(report, document(title, parts))
    return comp, report


def _relative(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(target).resolve(), Path(start).resolve())
