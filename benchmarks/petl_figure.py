"""He et al. 2022 at CPU scale from a sweep of the he2022_petl recipe: held-out error at k = 10 against the number
of trainable parameters, one line per fine-tuning method, one panel per task family, with the base network before
fine-tuning and the best reference learner beside them; and the table behind it.

    iclab train --recipe he2022_base                 # the network every point starts from (runs/he2022_base)
    iclab sweep he2022_petl                           # the fine-tuning runs (sweeps/he2022_petl)
    python benchmarks/petl_figure.py sweeps/he2022_petl --out docs/he2022_petl.png

With --smoke it trains a toy base and three toy fine-tuning runs of its own (the figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from _common import SMOKE, SMOKE_OVERRIDES, scratch, train_fresh
from iclab.change import finetune_config
from iclab.config import apply_overrides, read_run_config, run_config_from_dict, to_dict
from iclab.kinds import NetworkLearner
from iclab.kinds.real.curves import error_at, error_curves
from iclab.recipes import RECIPES
from iclab.rundir import load_model, read_curves
from iclab.sweeps.store import last_step
from iclab.tasks import make_task

K = 10
ORDER = ["full", "readout", "lora", "adapter", "parallel_adapter", "prefix", "mam"]
FAMILY = {"sparse_linear_regression": "sparse", "monomial_regression": "nonlinear", "linear_regression": "noisy"}


def base_error(start: Path, cfg) -> float:
    """The started-from network, not fine-tuned, on the fine-tuning task's held-out prompts (the same prompts)."""
    _, model, _ = load_model(start, device="cpu")
    task = make_task(cfg.task)
    prompts = task.eval_prompts(cfg.eval.n_prompts, cfg.eval.seed)
    with torch.no_grad():
        rows = error_curves(
            [NetworkLearner(model, cfg.eval.batch_size)], prompts, task.error_scale, error_fn=task.error
        )
    return error_at(rows, "model", min(K, cfg.task.n_points - 1))


def describe(run: Path) -> dict:
    cfg = read_run_config(run)
    start = json.loads((run / "start.json").read_text())
    rows = read_curves(run / "eval" / "curves.csv")
    k = min(K, cfg.task.n_points - 1)
    learners = sorted({r["learner"] for r in rows} - {"model", "zero"})
    best = min(learners, key=lambda name: error_at(rows, name, k))
    return {
        "family": FAMILY.get(cfg.task.name, cfg.task.name),
        "method": cfg.finetune.method,
        "trainable": start["finetune"]["trainable"],
        "error": error_at(rows, "model", k),
        "best_learner": best,
        "best_error": error_at(rows, best, k),
        "base_error": base_error(Path(start["run"]), cfg),
        "seconds": max((json.loads(line).get("elapsed_s", 0.0) for line in (run / "metrics.jsonl").open()), default=0),
    }


def smoke_runs() -> Path:
    root = Path(scratch("iclab_petl_figure"))
    base = run_config_from_dict(apply_overrides(to_dict(RECIPES["he2022_base"]()), SMOKE_OVERRIDES))
    train_fresh(base, root / "base")
    for method in ("readout", "lora(r=1)", "mam(prefix_length=1, bottleneck=1)"):
        cfg = finetune_config(root / "base", method, [*SMOKE_OVERRIDES, "task.name=sparse_linear_regression"])
        train_fresh(cfg, root / "sweep" / cfg.finetune.method)
        from iclab.evaluate import evaluate_run

        evaluate_run(root / "sweep" / cfg.finetune.method)
    return root / "sweep"


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [f for f in ("sparse", "nonlinear", "noisy") if any(r["family"] == f for r in rows)]
    fig, axes = plt.subplots(1, len(families), figsize=(4.6 * len(families), 3.8), squeeze=False)
    for ax, family in zip(axes[0], families):
        mine = [r for r in rows if r["family"] == family]
        for i, method in enumerate(ORDER):
            pts = sorted((r["trainable"], r["error"]) for r in mine if r["method"] == method)
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="os^v<>D"[i % 7], label=method, color=f"C{i}")
        ax.axhline(mine[0]["base_error"], color="grey", ls="--", lw=1, label="base, not fine-tuned")
        shown = [r["error"] for r in mine] + [mine[0]["base_error"]]
        low, high = min(shown) / 1.3, max(shown) * 1.3
        best = f"{mine[0]['best_learner']} ({mine[0]['best_error']:.2g})"
        if mine[0]["best_error"] >= low:
            ax.axhline(mine[0]["best_error"], color="black", ls=":", lw=1, label=best)
            low = min(low, mine[0]["best_error"] / 1.3)
        else:  # an exact learner (error ~ 0) would flatten every method's line against the axis: name it instead
            ax.text(0.02, 0.02, f"best learner: {best}", transform=ax.transAxes, fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(low, high)
        ax.set_xlabel("trainable parameters")
        ax.set_title(f"linear regression -> {family}")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel(f"squared error / d at k = {K}")
    for ax in axes[0]:
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", nargs="?", help="the sweep folder (sweeps/he2022_petl)")
    parser.add_argument("--out", default="he2022_petl.png", help="the figure (PNG)")
    args = parser.parse_args()
    root = smoke_runs() if SMOKE else Path(args.sweep)
    runs = sorted(p.parent for p in root.glob("*/start.json"))
    rows = []
    for run in runs:
        if last_step(run) < read_run_config(run).train.steps or not (run / "eval" / "curves.csv").is_file():
            print(f"skipped {run.name}: unfinished")
            continue
        rows.append(describe(run))
    print(f"| family | method | trainable | error@k={K} | base, not fine-tuned | best learner | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["family"], ORDER.index(r["method"]), r["trainable"])):
        print(
            f"| {r['family']} | {r['method']} | {r['trainable']:,} | {r['error']:.4f} | {r['base_error']:.4f} "
            f"| {r['best_learner']} {r['best_error']:.4f} | {r['seconds']:.0f} |"
        )
    plot(rows, Path(scratch("iclab_petl_figure")) / "smoke.png" if SMOKE else Path(args.out))
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
