"""One point of a sweep, run in the current process: train (or resume), evaluate, report.

Every executor ends here: the local pool runs ``python -m iclab.sweeps.point SWEEP_DIR POINT`` per point, a
SLURM array task calls :func:`run_point` through submitit. What to do is read from the point's run folder
(:func:`iclab.sweeps.store.point_state`), so running a point again after any interruption continues it
exactly, and a finished point is left alone.

Exit status of the module: 0 finished, 3 interrupted (SIGTERM: saved, resumes next time), 1 training failed,
2 bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from iclab.sweeps.store import point_lock, point_state, read_index

EXIT_INTERRUPTED = 3

__all__ = ["EXIT_INTERRUPTED", "point_config", "run_point"]


def point_config(folder: Path, name: str):
    """The run config of point ``name`` of the sweep in ``folder``, as the index records it."""
    from iclab.config import run_config_from_dict
    from iclab.errors import RunFolderError

    for entry in read_index(folder)["points"]:
        if entry.get("name") == name:
            return run_config_from_dict(entry["config"]), entry["config"]
    raise RunFolderError(f"{folder}: the sweep has no point {name!r}")


def run_point(folder: str | Path, name: str, threads: int | None = None, stream=None) -> str:
    """Bring point ``name`` to *finished*, or stop at *interrupted* on SIGTERM; returns the status."""
    import torch

    from iclab.evaluate import evaluate_run
    from iclab.report import write_report
    from iclab.training.loop import train

    folder = Path(folder)
    cfg, raw = point_config(folder, name)
    if threads is not None:
        cfg = replace(cfg, train=replace(cfg.train, threads=threads))
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    run_dir = folder / name
    out = stream if stream is not None else sys.stderr
    with point_lock(folder, name):  # waits for an earlier worker of this point to save and exit
        state = point_state(run_dir, raw)
        if state == "finished":
            return "finished"
        t0 = time.perf_counter()
        if state in ("pending", "interrupted"):
            print(f"{name}: {'resuming' if state == 'interrupted' else 'training'}", file=out, flush=True)
            result = train(cfg, run_dir, resume=state == "interrupted", progress_bar=False, stream=out)
            if result.status == "interrupted":
                return "interrupted"
        if cfg.eval.after_train:
            evaluate_run(run_dir)
            write_report(run_dir)
        print(f"{name}: finished ({time.perf_counter() - t0:.0f} s)", file=out, flush=True)
    return "finished"


def main(argv: list[str] | None = None) -> int:
    from iclab.errors import TrainingError, UserError

    p = argparse.ArgumentParser(prog="python -m iclab.sweeps.point", description="run one point of a sweep")
    p.add_argument("folder")
    p.add_argument("name")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    try:
        status = run_point(args.folder, args.name, args.threads)
    except UserError as e:
        print(f"iclab: error: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"iclab: training stopped: {e}", file=sys.stderr)
        return 1
    return EXIT_INTERRUPTED if status == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
