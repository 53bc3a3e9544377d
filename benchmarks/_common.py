"""Shared by the benchmark scripts (run from the repository root: ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import os
import shutil
import sys
import time


def train_unless_done(cfg, out, reuse: bool) -> float | None:
    """With ``reuse`` and a run in ``out`` that reached ``cfg.train.steps``, nothing (None); else train ``cfg``
    into an emptied ``out`` (:func:`train_fresh`) and return the seconds it took."""
    from pathlib import Path

    from iclab.sweeps.store import last_step

    if reuse and Path(out).is_dir() and last_step(out) >= cfg.train.steps:
        return None
    return train_fresh(cfg, out)


def summary_means(run) -> dict:
    """``{(learner, metric): mean}`` from a token run's ``eval/summary.csv``."""
    from pathlib import Path

    from iclab.rundir import read_summary

    return {(r["learner"], r["metric"]): r["mean"] for r in read_summary(Path(run) / "eval" / "summary.csv")}


def train_fresh(cfg, out) -> float:
    """Train ``cfg`` into an emptied folder ``out`` without progress output; return the seconds it took."""
    from iclab.training.loop import train

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    with open(os.devnull, "w") as quiet:
        train(cfg, out, progress_bar=False, stream=quiet)
    return time.time() - t0


# --smoke: every benchmark accepts it and runs at toy sizes in seconds, so the test suite can run each
# command the docs show (tests/test_docs.py); the figures it prints mean nothing.
SMOKE = "--smoke" in sys.argv
if SMOKE:
    sys.argv.remove("--smoke")
SMOKE_OVERRIDES = (
    [
        "train.steps=3",
        "train.batch_size=8",
        "train.warmup_steps=1",
        "train.eval_every=0",
        "train.eval_prompts=16",
        "train.checkpoint_every=100000",
        "eval.n_prompts=32",
    ]
    if SMOKE
    else []
)


def save_figure(fig, out) -> None:
    """Lay out ``fig`` and write it to ``out`` (a PNG; its folder made), saying where."""
    from pathlib import Path

    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"figure: {out}")


def small(n: int, smoke: int) -> int:
    """``n``, or ``smoke`` with --smoke."""
    return smoke if SMOKE else n


def scratch(name: str) -> str:
    """Where a benchmark keeps its runs: /tmp/<name>, or under $ICLAB_BENCH_DIR; with --smoke, <name>-smoke, so
    a smoke run (the test suite makes them) never replaces a real run kept for --reuse."""
    return os.path.join(os.environ.get("ICLAB_BENCH_DIR", "/tmp"), name + ("-smoke" if SMOKE else ""))


def interleaved_rates(steps: dict, n_steps: int, rounds: int, start: int = 0) -> dict[str, float]:
    """Steps per second of each ``steps[name](i)``, timed in interleaved rounds of ``n_steps`` so machine noise hits
    every contender alike: the median over rounds, by name."""
    import statistics

    rates = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for i in range(start, start + n_steps):
                step(i)
            rates[name].append(n_steps / (time.perf_counter() - t0))
    return {name: statistics.median(r) for name, r in rates.items()}


def print_rates(rates: dict[str, float], threads: int, setting: str, base: str, first_column: str = "model") -> None:
    """The machine line and a markdown table of steps per second with each contender's ratio to ``base``."""
    import platform

    import torch

    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {threads} thread(s), {setting}")
    print(f"| {first_column} | steps/s | vs {base} |\n|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.2f} | {rate / rates[base]:.2f}x |", flush=True)
