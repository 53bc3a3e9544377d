"""Frozen input embeddings (Bochkov 2025, "Emergent Semantics Beyond Token Embeddings: Transformer LMs with Frozen
Visual Unicode Representations") at CPU scale: two token tasks, each trained three times at equal steps with
``model.embedding`` trainable, frozen_random (random orthonormal rows) and frozen_glyph (rendered glyphs, PCA),
everything else equal:

- arithmetic: ``lee2023_arithmetic`` (3-digit addition, reversed output, 2,000 examples, 2,000 steps, 2 x 128
  transformer); exact match of the greedily decoded answer on 500 held-out pairs;
- REGBENCH: ``akyurek2024_regbench`` (10,000 automata, 2,000 steps, 2 x 64 transformer with q/k/v convolution);
  greedy next-token accuracy on 500 held-out automata.

    python benchmarks/frozen_embeddings.py --out docs/frozen_embeddings.png

Runs go under /tmp/iclab_frozen (--reuse keeps finished ones; ``--only regbench:frozen_glyph`` trains one, so two
can train at once, one per core, before a last ``--reuse`` run prints the table and draws the figure). With
--smoke the runs are a few steps long (the figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import SMOKE, SMOKE_OVERRIDES, save_figure, scratch, summary_means, train_unless_done
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.evaluate import evaluate_run
from iclab.recipes import RECIPES

TASKS = {  # task -> (recipe, its metric in eval/summary.csv, label)
    "arithmetic": ("lee2023_arithmetic", "exact_match", "3-digit addition (reversed): exact match"),
    "regbench": ("akyurek2024_regbench", "accuracy", "REGBENCH: next-token accuracy"),
}
OPTIONS = ("trainable", "frozen_random", "frozen_glyph")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in /tmp/iclab_frozen")
    parser.add_argument("--out", default="frozen_embeddings.png", help="the figure (PNG)")
    parser.add_argument("--only", choices=[f"{t}:{o}" for t in TASKS for o in OPTIONS], help="train one run")
    args = parser.parse_args()
    root = Path(scratch("iclab_frozen"))
    results = {}
    for task, (recipe, metric, _) in TASKS.items():
        for option in OPTIONS:
            if args.only and args.only != f"{task}:{option}":
                continue
            cfg = to_dict(RECIPES[recipe](steps=args.steps))
            extra = ["task.max_length=60", "task.n_train=20"] if SMOKE and task == "regbench" else []
            sets = [f"model.embedding={option}", "train.threads=1", *SMOKE_OVERRIDES, *extra]
            cfg = run_config_from_dict(apply_overrides(cfg, sets))
            run = root / f"{task}_{option}"
            seconds = train_unless_done(cfg, run, args.reuse)
            evaluate_run(run, plot=False)
            summary = summary_means(run)
            curve = [
                (rec["step"], rec["val_accuracy"])
                for rec in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                if "val_accuracy" in rec
            ]
            results[(task, option)] = (summary[("model", metric)], curve, seconds)
    print("| task | " + " | ".join(OPTIONS) + " |")
    print("|---|" + "---|" * len(OPTIONS))
    for task in TASKS:
        cells = []
        for option in OPTIONS:
            if (task, option) in results:
                score, _, seconds = results[(task, option)]
                cells.append(f"{score:.3f}" + (f" ({seconds:.0f} s)" if seconds is not None else ""))
            else:
                cells.append("")
        print(f"| {task} | " + " | ".join(cells) + " |")
    if not args.only:
        plot(results, root / "smoke.png" if SMOKE else Path(args.out))


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(10, 3.6))
    for ax, (task, (_, _, title)) in zip(axes, TASKS.items()):
        low = 1.0
        for i, option in enumerate(OPTIONS):
            if (task, option) not in results:
                continue
            score, curve, _ = results[(task, option)]
            if curve:
                steps, values = zip(*curve)
                ax.plot(steps, values, color=f"C{i}", marker="o" if len(curve) == 1 else None, ms=3)
                low = min(low, *values)
            ax.plot([], [], color=f"C{i}", label=f"{option}: {score:.3f} held out")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylabel("held-out next-token accuracy in training")
        ax.set_ylim(max(0.0, low - 0.05), 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right", title="after training (the title's metric)", title_fontsize=7)
    save_figure(fig, out)


if __name__ == "__main__":
    main()
