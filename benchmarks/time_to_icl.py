"""Time to in-context learning from a run's metrics.jsonl.

    iclab demo --out runs/demo && python benchmarks/time_to_icl.py runs/demo

Prints the first logged step (and wall-clock seconds of training) at which the held-out error at
k = 2d drops below 0.2 and below 0.1. Resolution is the run's train.eval_every.
"""

from __future__ import annotations

import sys
from pathlib import Path

import _common  # noqa: F401  (takes --smoke off the command line: nothing here is slow)
from iclab.rundir import read_metrics, read_run_config


def main() -> None:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
    cfg = read_run_config(run)
    k = 2 * cfg.task.n_dims
    evals = [r for r in read_metrics(run) if "val_err_by_k" in r and len(r["val_err_by_k"]) > k]
    print(f"# {run}: {cfg.task.name}, d = {cfg.task.n_dims}, eval every {cfg.train.eval_every} steps")
    for threshold in (0.2, 0.1):
        hit = next((r for r in evals if r["val_err_by_k"][k] < threshold), None)
        if hit is None:
            print(f"error at k={k} never below {threshold}")
        else:
            print(
                f"error at k={k} below {threshold}: step {hit['step']}, {hit['elapsed_s']:.1f} s of training "
                f"(error {hit['val_err_by_k'][k]:.3f})"
            )
    if evals:
        print(f"final: step {evals[-1]['step']}, error {evals[-1]['val_err_by_k'][k]:.3f}")


if __name__ == "__main__":
    main()
