"""One-shot pruning without retraining at CPU scale: held-out error (a regression run) and token accuracy (a token
run) against the kept share of the heads' and neurons' FLOPs, for OPTIN (Khaki & Plataniotis 2024), weight
magnitude and a random order (mean of three orders); and, per method, the rank correlation between a unit's score
and its measured single-unit ablation effect.

    python benchmarks/prune_curve.py --out docs/prune_curve.png

Without --regression / --tokens it trains its own: the he2022_base recipe (linear regression, d = 5, a 4 x 64
transformer, 3000 steps) and friedman2023_rasp's sort (a 2 x 64 transformer, 3000 steps), into /tmp/iclab_prune
(--reuse keeps finished ones). Every keep share ranks the units once per method, as ``iclab prune`` does (one batch
of the training distribution, ``prune.batch_size`` prompts), and evaluates on ``--prompts`` held-out prompts.

With --smoke the runs are a few steps long (the figures mean nothing).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from _common import SMOKE, SMOKE_OVERRIDES, save_figure, scratch, small, train_fresh
from iclab.change.prune import apply_choice, choose, prune_config, rank_correlation, rank_units
from iclab.config import apply_overrides, read_run_config, run_config_from_dict, to_dict
from iclab.kinds import build_run_network, kind_of
from iclab.recipes import RECIPES
from iclab.sweeps.store import last_step
from iclab.tasks import make_task
from iclab.training.start import load_start

METHODS = {"optin": [0], "magnitude": [0], "random": [0, 1, 2]}  # the seeds each method ranks with
K = 10  # regression: the error after K in-context examples
SMOKE_PRUNE = ["prune.batch_size=4"] if SMOKE else []
SMOKE_MODEL = ["model.n_layer=1", "model.n_embd=16", "model.n_head=2"] if SMOKE else []


def trained(name: str, recipe: str, kwargs: dict, reuse: bool) -> Path:
    run = Path(scratch("iclab_prune")) / name
    cfg = run_config_from_dict(apply_overrides(to_dict(RECIPES[recipe](**kwargs)), SMOKE_OVERRIDES + SMOKE_MODEL))
    if not (reuse and run.is_dir() and last_step(run) >= cfg.train.steps):
        print(f"training {name} ({recipe}, {cfg.train.steps} steps) ...", flush=True)
        print(f"  {train_fresh(cfg, run):.0f} s", flush=True)
    return run


def measure(model, task, prompts) -> float:
    """Held-out error / d at k = K (regression) or token accuracy (tokens)."""
    with torch.no_grad():
        logged, _ = kind_of(task).validate(task, model, prompts)
    if "val_accuracy" in logged:
        return logged["val_accuracy"]
    errs = logged["val_err_by_k"]
    return errs[min(K, len(errs) - 1)]


def curve(run: Path, method: str, seed: int, keeps: list[float], n_prompts: int, effects: dict) -> tuple:
    """The kept FLOPs shares, the metric at each, and the score-vs-ablation correlation, for one ranking.
    ``effects`` caches the single-unit ablation effects of ``run`` (the same for every method)."""
    cfg = prune_config(run, f"{method}(seed={seed})", 1.0, SMOKE_PRUNE)
    task = make_task(cfg.task)
    model = build_run_network(cfg, task)
    load_start(cfg, model)
    model.eval()
    units, scores, effects[run] = rank_units(model, task, cfg, effects.get(run))
    prompts = task.eval_prompts(n_prompts, cfg.eval.seed)
    total = sum(u.flops for u in units)
    shares, values = [], []
    for keep in keeps:
        kept = choose(units, scores, keep)
        apply_choice(model, units, kept)
        shares.append(sum(u.flops for u, k in zip(units, kept) if k) / total)
        values.append(measure(model, task, prompts))
    return shares, values, rank_correlation(units, scores, effects[run])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regression", help="a finished regression run (default: train he2022_base)")
    parser.add_argument("--tokens", help="a finished token run (default: train friedman2023_rasp's sort)")
    parser.add_argument("--prompts", type=int, default=1000, help="held-out prompts per point")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in /tmp/iclab_prune")
    parser.add_argument("--out", default="prune_curve.png", help="the figure (PNG)")
    args = parser.parse_args()
    steps = small(3000, 3)
    runs = {
        "regression": Path(args.regression)
        if args.regression
        else trained("regression", "he2022_base", {}, args.reuse),
        "tokens": Path(args.tokens)
        if args.tokens
        else trained("tokens", "friedman2023_rasp", {"program": "sort", "steps": steps}, args.reuse),
    }
    keeps = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    n_prompts = small(args.prompts, 16)
    results, effects = {}, {}
    for what, run in runs.items():
        cfg = read_run_config(run)
        print(f"\n{what}: {run} ({cfg.task.name}, {cfg.model.n_layer} x {cfg.model.n_embd}, {cfg.model.n_head} heads)")
        print("| method | " + " | ".join(f"keep {k:g}" for k in keeps) + " | Spearman heads | Spearman neurons |")
        print("|---" * (len(keeps) + 3) + "|")
        for method, seeds in METHODS.items():
            per_seed = [curve(run, method, seed, keeps, n_prompts, effects) for seed in seeds]
            shares = [statistics.mean(s) for s in zip(*(p[0] for p in per_seed))]
            values = [statistics.mean(v) for v in zip(*(p[1] for p in per_seed))]
            rho = {
                kind: statistics.mean(r for p in per_seed if (r := p[2].get(kind)) is not None)
                if any(p[2].get(kind) is not None for p in per_seed)
                else float("nan")
                for kind in ("head", "neuron")
            }
            results[(what, method)] = (shares, values, rho)
            print(
                f"| {method} | "
                + " | ".join(f"{v:.4f}" for v in values)
                + f" | {rho['head']:.2f} | {rho['neuron']:.2f} |",
                flush=True,
            )
    plot(results, runs, Path(scratch("iclab_prune")) / "smoke.png" if SMOKE else Path(args.out))


def plot(results: dict, runs: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 3.9), squeeze=False)
    for ax, what in zip(axes[0], runs):
        cfg = read_run_config(runs[what])
        for i, method in enumerate(METHODS):
            shares, values, rho = results[(what, method)]
            label = f"{method} (Spearman heads {rho['head']:.2f}, neurons {rho['neuron']:.2f})"
            ax.plot(shares, values, marker="os^"[i], color=f"C{i}", label=label)
        ax.set_xlabel("kept share of the heads' and neurons' FLOPs")
        if what == "tokens":
            ax.set_ylabel("token accuracy (held out)")
            ax.set_title(
                f"{cfg.task.name} {getattr(cfg.task, 'program', '')}: {cfg.model.n_layer} x {cfg.model.n_embd}"
            )
        else:
            ax.set_ylabel(f"squared error / d at k = {K} (held out)")
            ax.set_yscale("log")
            ax.set_title(f"{cfg.task.name}: {cfg.model.n_layer} x {cfg.model.n_embd}")
        ax.invert_xaxis()
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("one-shot pruning, no retraining", fontsize=10)
    save_figure(fig, out)


if __name__ == "__main__":
    main()
