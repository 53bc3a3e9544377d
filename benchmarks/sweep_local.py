"""The local sweep executor: 8 small runs (train, evaluate, report) on this machine's cores, three ways (issue 13).

    python benchmarks/sweep_local.py [--steps 600]

- ``2 jobs x 1 thread``: the executor's default on 2 cores (the cores divided by one thread per run);
- ``1 job x 2 threads``: one run after another, each with both cores;
- ``2 jobs x 2 threads``: both runs at once, each asking for both cores (oversubscribed).

Each is a fresh sweep through :func:`iclab.sweeps.run_sweep`, so the wall time includes everything a point
costs: a process start, training, evaluation against the reference learners and the report. Prints the wall
time of each and the speed-up of the default over running one after another.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from _common import SMOKE, scratch, small
from iclab.sweeps import run_sweep, sweep_from_dict


def sweep(steps: int) -> dict:
    return {
        "name": "bench",
        "config": {
            "task": {"name": "linear_regression", "n_dims": 5, "n_points": 11},
            "model": {"name": "transformer", "n_layer": 2, "n_embd": 64, "n_head": 4},
            "train": {
                "steps": steps,
                "batch_size": 64,
                "warmup_steps": 20,
                "device": "cpu",
                "log_every": 50,
                "eval_every": 0,
                "checkpoint_every": 1000,
            },
            "eval": {"n_prompts": small(640, 32)},
        },
        "grid": {"train.lr": [1e-3, 3e-3]},
        "seeds": [0, 1] if SMOKE else [0, 1, 2, 3],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600)
    args = p.parse_args()
    steps = small(args.steps, 3)
    root = Path(scratch("iclab_sweep_bench"))
    n = len(sweep_from_dict(sweep(steps)).points)
    print(f"{n} runs of {steps} steps (2-layer width-64 transformer, batch 64), on {os.cpu_count()} cores")
    times = {}
    for label, jobs, threads in [
        ("2 jobs x 1 thread", 2, 1),
        ("1 job x 2 threads", 1, 2),
        ("2 jobs x 2 threads", 2, 2),
    ]:
        if SMOKE and label != "2 jobs x 1 thread":
            continue
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            code = run_sweep(
                sweep_from_dict(sweep(steps)), root=root, jobs=jobs, threads=threads, compare=False, stream=quiet
            )
        times[label] = time.perf_counter() - t0
        assert code == 0, f"{label}: the sweep failed (see {root}/bench/logs)"
        print(f"{label:<20} {times[label]:7.1f} s")
    if len(times) == 3:
        base = times["1 job x 2 threads"]
        print(
            f"speed-up of 2 jobs x 1 thread over one after another: {base / times['2 jobs x 1 thread']:.2f}x; "
            f"2 jobs x 2 threads: {base / times['2 jobs x 2 threads']:.2f}x"
        )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
