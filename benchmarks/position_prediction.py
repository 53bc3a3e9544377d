"""Position prediction as a pretext task (Zhai et al. 2022) at CPU scale: the ``zhai2022_positions`` recipe trained
at several visible shares on sorted prompts (where content gives positions away), beside the exact best accuracy
(``position_bayes``), and on shuffled prompts (where it cannot: the leak check, accuracy must stay at chance).

    python benchmarks/position_prediction.py --out docs/position_prediction.png

Runs go under /tmp/iclab_positions (--reuse keeps finished ones; ``--only sorted:0.5`` trains one, so two can train
at once before a last ``--reuse`` run prints the table and draws the figure). With --smoke the runs are a few steps
long (the figures mean nothing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import SMOKE, SMOKE_OVERRIDES, save_figure, scratch, summary_means, train_unless_done
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.evaluate import evaluate_run
from iclab.recipes import RECIPES

SHARES = (0.1, 0.25, 0.5, 0.75, 1.0)
RUNS = [("sorted", v) for v in SHARES] + [("shuffled", v) for v in (0.25, 1.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in /tmp/iclab_positions")
    parser.add_argument("--out", default="position_prediction.png", help="the figure (PNG)")
    parser.add_argument("--only", choices=[f"{o}:{v:g}" for o, v in RUNS], help="train one run")
    args = parser.parse_args()
    root = Path(scratch("iclab_positions"))
    results = {}
    for order, visible in RUNS:
        if args.only and args.only != f"{order}:{visible:g}":
            continue
        cfg = RECIPES["zhai2022_positions"](order=order, visible=visible, steps=args.steps)
        cfg = run_config_from_dict(apply_overrides(to_dict(cfg), ["train.threads=1", *SMOKE_OVERRIDES]))
        run = root / f"{order}_{visible:g}"
        seconds = train_unless_done(cfg, run, args.reuse)
        evaluate_run(run, plot=False)
        by = summary_means(run)
        results[(order, visible)] = (by[("model", "accuracy")], by[("position_bayes", "accuracy")], seconds)
    print("| prompts | visible share | network | exact best (position_bayes) | chance | training seconds |")
    print("|---|---|---|---|---|---|")
    for (order, visible), (net, best, seconds) in results.items():
        took = f"{seconds:.0f}" if seconds is not None else "(reused)"
        print(f"| {order} | {visible:g} | {net:.3f} | {best:.3f} | {1 / 12:.3f} | {took} |")
    if not args.only:
        plot(results, root / "smoke.png" if SMOKE else Path(args.out))


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for order, color in (("sorted", "C0"), ("shuffled", "C3")):
        points = sorted((v, net, best) for (o, v), (net, best, _) in results.items() if o == order)
        if not points:
            continue
        shares, nets, bests = zip(*points)
        ax.plot(shares, nets, "o-", color=color, label=f"network, {order} prompts")
        ax.plot(shares, bests, "--", color=color, alpha=0.7, label=f"exact best (position_bayes), {order}")
    ax.axhline(1 / 12, color="grey", lw=0.8, ls=":", label="chance (1/12)")
    ax.set_xlabel("share of tokens visible as keys and values")
    ax.set_ylabel("held-out position accuracy (1,000 prompts)")
    ax.set_title("Position prediction without position embeddings: 12 distinct symbols of 26", fontsize=9)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, out)


if __name__ == "__main__":
    main()
