"""Grids of runs: ``iclab sweep SWEEP.yaml`` and ``iclab compare``.

A sweep is a base config plus axes (:mod:`iclab.sweeps.spec`); each point is an ordinary run folder under
``sweeps/<name>/`` (:mod:`iclab.sweeps.store`), so resume, eval, analyze and report work on every point.
Executors are existing engines: a local process pool that divides the cores between runs
(:mod:`iclab.sweeps.local`) and SLURM job arrays through submitit (:mod:`iclab.sweeps.slurm`). Running the
same sweep again skips finished points and resumes interrupted ones exactly. When the points are done, the
comparison (:mod:`iclab.sweeps.compare`) is written into the sweep folder.

Example::

    from iclab.sweeps import load_sweep, run_sweep
    run_sweep(load_sweep("sweeps/pool.yaml"))      # sweeps/<name>/<point>/..., sweeps/<name>/report.html
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from iclab.sweeps.spec import Sweep, load_sweep, sweep_from_dict

__all__ = ["LIBRARY", "Sweep", "find_sweep_file", "load_sweep", "make_executor", "run_sweep", "sweep_from_dict"]

LIBRARY = Path(__file__).parent / "library"  # sweeps shipped with iclab: `iclab sweep raventos2023`


def find_sweep_file(arg: str) -> Path:
    """A sweep file path, or the name of a sweep shipped with iclab (``iclab list`` shows them)."""
    from iclab.errors import ConfigError

    path = Path(arg)
    if path.is_file():
        return path
    shipped = LIBRARY / f"{arg}.yaml"
    if "/" not in arg and shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in LIBRARY.glob("*.yaml")))
    raise ConfigError(f"{arg}: no such sweep file, and not a sweep shipped with iclab ({names})")


def make_executor(name: str, sweep: Sweep, jobs: int | None = None, threads: int | None = None):
    """The executor ``name`` (local or slurm) with the sweep's settings, CLI values taking precedence. Checks
    everything it needs (submitit installed) before anything is written."""
    from iclab.errors import ConfigError

    threads = threads or sweep.executor.threads
    if name == "local":
        from iclab.sweeps.local import LocalExecutor

        return LocalExecutor(jobs or sweep.executor.jobs, threads)
    if name == "slurm":
        from iclab.sweeps.slurm import SlurmExecutor

        return SlurmExecutor(sweep.slurm, threads or sweep.slurm.cpus_per_task)
    raise ConfigError(f"--executor: must be local or slurm, got {name!r}")


def _status_line(index: dict) -> str:
    counts: dict[str, int] = {}
    for p in index["points"]:
        counts[p["status"]] = counts.get(p["status"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def run_sweep(
    sweep: Sweep,
    root: str | Path = "sweeps",
    executor: str | None = None,
    jobs: int | None = None,
    threads: int | None = None,
    dry_run: bool = False,
    compare: bool = True,
    stream=None,
) -> int:
    """Run every point of ``sweep`` that is not finished; returns 0 when all are, 1 when some failed, 130 when
    interrupted (run it again to continue). Everything is checked before anything is written."""
    from iclab.sweeps.store import (
        DriverLock,
        check_same_sweep,
        new_index,
        point_state,
        read_index,
        write_index,
    )
    from iclab.utils import check_run_location

    out = stream if stream is not None else sys.stderr  # progress
    result = stream if stream is not None else sys.stdout  # the point list (--dry-run), the comparison
    folder = Path(root) / sweep.name
    check_run_location(folder)
    old = None
    if folder.exists() and any(folder.iterdir()):
        old = read_index(folder)
        check_same_sweep(folder, old, sweep.points)
    ex = make_executor(executor or sweep.executor.name, sweep, jobs, threads)
    states = {p.name: point_state(folder / p.name, p.config) for p in sweep.points}
    if dry_run:
        width = max(len(p.name) for p in sweep.points)
        print(f"sweep {sweep.name}: {len(sweep.points)} points in {folder} ({ex.describe()})", file=result)
        for p in sweep.points:
            print(f"  {p.name:<{width}}  {states[p.name]}", file=result)
        return 0

    with DriverLock(folder):
        index = new_index(sweep, folder)
        previous = {p["name"]: p for p in (old or {}).get("points", [])}
        for entry in index["points"]:
            before = previous.get(entry["name"], {})
            entry.update({k: before[k] for k in ("seconds", "job", "message") if k in before})
            entry["status"] = states[entry["name"]]
            if before.get("status") == "failed" and entry["status"] != "finished":
                entry["status"] = "failed"
        write_index(folder, index)
        todo = [p.name for p in sweep.points if states[p.name] != "finished"]
        entries = {e["name"]: e for e in index["points"]}
        print(
            f"sweep {sweep.name}: {len(sweep.points)} points, {len(sweep.points) - len(todo)} finished; "
            f"running {len(todo)} ({ex.describe()}) in {folder}",
            file=out,
            flush=True,
        )
        done = [0]

        def report(name: str, status: str, message: str | None = None, seconds: float | None = None, **extra) -> None:
            entry = entries[name]
            entry["status"] = status
            entry.pop("message", None)
            if message:
                entry["message"] = message
            if seconds is not None:
                entry["seconds"] = seconds
            entry.update(extra)
            write_index(folder, index)
            if status in ("finished", "failed", "interrupted"):
                done[0] += status != "interrupted"
                took = f" ({seconds:.0f} s)" if seconds is not None else ""
                why = f": {message}" if message else ""
                print(f"[{done[0]}/{len(todo)}] {name}: {status}{took}{why}", file=out, flush=True)

        t0 = time.perf_counter()
        try:
            if todo:
                ex.run(folder, todo, report)
        except KeyboardInterrupt:
            for e in index["points"]:
                if e["status"] == "running":
                    e["status"] = point_state(folder / e["name"], e["config"])
            write_index(folder, index)
            print(
                f"sweep {sweep.name}: interrupted ({_status_line(index)}); run the same command to continue", file=out
            )
            return 130
        for e in index["points"]:  # what the disk says, after the executor is done
            if e["status"] != "failed":
                e["status"] = point_state(folder / e["name"], e["config"])
        write_index(folder, index)
    print(f"sweep {sweep.name}: {_status_line(index)} ({time.perf_counter() - t0:.0f} s)", file=out)
    failed = [e for e in index["points"] if e["status"] == "failed"]
    if compare and any(e["status"] == "finished" for e in index["points"]):
        from iclab.errors import UserError
        from iclab.sweeps.compare import format_table, write_comparison

        plan = sweep.compare
        try:
            comp, report_path = write_comparison(
                [folder],
                folder,
                x=plan.x,
                by=plan.by,
                metric=plan.metric,
                k=plan.k,
                log_x=plan.log_x,
                title=f"Sweep {sweep.name}",
                panel=plan.panel,
            )
            from iclab.sweeps.compare import check_choice

            print(format_table(comp, check_choice(comp, plan.x, plan.by, plan.metric)[2]), file=result)
            print(f"comparison: {folder / 'compare.csv'}; report: {report_path}", file=result)
        except UserError as e:
            print(f"iclab: warning: no comparison written: {e}", file=out)
    return 1 if failed else 0
