"""The 2024 successor codebase's function classes at CPU scale (in-context-learning-2024/in-context): the
``icl2024_task`` recipe on sparse parity, Chebyshev kernel regression, Chebyshev shared roots and vector retrieval,
each trained once, with the held-out error at every number of in-context examples against the task's learners; one
panel per task.

    python benchmarks/icl2024_tasks.py --out docs/icl2024_tasks.png

Runs go under /tmp/iclab_icl2024 (--reuse keeps finished ones). With --smoke the runs are a few steps long (the
figures mean nothing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import SMOKE, SMOKE_OVERRIDES, save_figure, scratch, train_unless_done
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.evaluate import evaluate_run
from iclab.kinds.real.curves import error_at
from iclab.recipes import ICL2024_TASKS, RECIPES

SHOWN_K = (1, 2, 4, 6, 10, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in /tmp/iclab_icl2024")
    parser.add_argument("--out", default="icl2024_tasks.png", help="the figure (PNG)")
    args = parser.parse_args()
    root = Path(scratch("iclab_icl2024"))
    results = {}
    for task in ICL2024_TASKS:
        cfg = RECIPES["icl2024_task"](task=task, steps=args.steps)
        cfg = run_config_from_dict(apply_overrides(to_dict(cfg), [*SMOKE_OVERRIDES, "train.threads=1"]))
        run = root / task
        seconds = train_unless_done(cfg, run, args.reuse)
        rows = evaluate_run(run)
        results[task] = (rows, seconds)
    print("| task | learner | " + " | ".join(f"k={k}" for k in SHOWN_K) + " |")
    print("|---|---|" + "---|" * len(SHOWN_K))
    for task, (rows, seconds) in results.items():
        learners = list(dict.fromkeys(r["learner"] for r in rows if r["shift"] == "standard"))
        for name in learners:
            scored = {
                r["k"] for r in rows if r["learner"] == name and r["shift"] == "standard" and r["mean"] == r["mean"]
            }
            cells = [f"{error_at(rows, name, k):.3f}" if k in scored else "" for k in SHOWN_K]
            label = f"model ({seconds:.0f} s)" if name == "model" and seconds is not None else name
            print(f"| {task} | {label} | " + " | ".join(cells) + " |")
    plot(results, Path(scratch("iclab_icl2024")) / "smoke.png" if SMOKE else Path(args.out))


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, (task, (rows, _)) in zip(axes[0], results.items()):
        learners = list(dict.fromkeys(r["learner"] for r in rows if r["shift"] == "standard"))
        scored = sorted({r["k"] for r in rows if r["shift"] == "standard" and r["mean"] == r["mean"]})
        if len(scored) == 1:  # a task scored at its query only (retrieval): one bar per learner
            at = {r["learner"]: r["mean"] for r in rows if r["shift"] == "standard" and r["k"] == scored[0]}
            ax.bar(range(len(at)), list(at.values()), color=["black" if n == "model" else "C0" for n in at])
            ax.set_xticks(range(len(at)), list(at), rotation=30, ha="right", fontsize=7)
            ax.set_ylim(0, 1.6)
            ax.set_title(f"{task.replace('_', ' ')} (k = {scored[0]})")
            ax.grid(alpha=0.3, axis="y")
            continue
        for i, name in enumerate(learners):
            pts = [(r["k"], r["mean"]) for r in rows if r["learner"] == name and r["shift"] == "standard"]
            pts = [(k, m) for k, m in pts if m == m]  # positions a task does not score are NaN
            if not pts:
                continue
            ks, ms = zip(*sorted(pts))
            style = {"color": "black", "lw": 2.2} if name == "model" else {"color": f"C{i}", "lw": 1.2}
            ax.plot(ks, ms, marker="o" if len(ks) == 1 else None, label=name, **style)
        ax.set_ylim(0, 1.6)
        ax.set_xlabel("in-context examples")
        ax.set_title(task.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("squared error / E[y^2]")
    save_figure(fig, out)


if __name__ == "__main__":
    main()
