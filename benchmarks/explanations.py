"""Learning from explanations (Hase & Bansal 2021, "When Can Models Learn From Explanations?") at CPU scale: the
``hase2021_explanations`` recipe trained once per condition, side by side: retrieved demonstrations of the query's
task with their explanations ``(x, e, y)``, without them ``(x, y)``, the explanation alone (``e``, the reference's
headline setting) and no demonstrations (the query alone). Every label in a prompt is scored, so each network's
held-out accuracy is read against the number of demonstrations before the label, beside the counting learner (which
reads the explanations in view); the figure also draws the query's held-out accuracy against training steps.

    python benchmarks/explanations.py --out docs/explanations.png

Runs go under /tmp/iclab_explanations (--reuse keeps finished ones; ``--only xey1`` trains one condition, so
two can train at once, one per core, before a last ``--reuse`` run draws the figure). With --smoke the runs are a
few steps long (the figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import SMOKE, SMOKE_OVERRIDES, save_figure, scratch, train_unless_done
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.evaluate import evaluate_run
from iclab.recipes import RECIPES

# (label, short label, context, demonstrations)
CONDITIONS = (
    ("(x, e, y) demonstration", "(x, e, y)", "xey", 1),
    ("(x, y) demonstration", "(x, y)", "xy", 1),
    ("explanation only (e)", "e only", "e", 1),
    ("no demonstrations", "none", "xey", 0),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in /tmp/iclab_explanations")
    parser.add_argument("--out", default="explanations.png", help="the figure (PNG)")
    parser.add_argument("--only", choices=[f"{c}{n}" for _, _, c, n in CONDITIONS], help="train one condition")
    args = parser.parse_args()
    root = Path(scratch("iclab_explanations"))
    results = {}
    for label, _, context, n_demos in CONDITIONS:
        if args.only and args.only != f"{context}{n_demos}":
            continue
        cfg = RECIPES["hase2021_explanations"](context=context, n_demos=n_demos, steps=args.steps)
        cfg = run_config_from_dict(apply_overrides(to_dict(cfg), [*SMOKE_OVERRIDES, "train.threads=1", *args.set]))
        run = root / f"{context}{n_demos}"
        seconds = train_unless_done(cfg, run, args.reuse)
        rows = evaluate_run(run, plot=False)
        by_k = {}  # learner -> {demonstrations in view: accuracy}
        for r in rows:
            if r["metric"] == "accuracy" and r["shift"] == "standard":
                by_k.setdefault(r["learner"], {})[r["k"]] = r["mean"]
        curve = [  # the query's held-out accuracy during training (the last label of each prompt)
            (rec["step"], 1 - rec["val_err_by_k"][-1])
            for rec in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "val_err_by_k" in rec
        ]
        results[label] = (by_k, curve, seconds)
    ks = sorted({k for by_k, _, _ in results.values() for k in by_k["model"]})
    print("| condition | learner | " + " | ".join(f"{k} before" for k in ks) + " | training seconds |")
    print("|---|---|" + "---|" * len(ks) + "---|")
    for label, (by_k, _, seconds) in results.items():
        for name in ("model", "counting"):
            cells = [f"{by_k[name][k]:.3f}" if k in by_k[name] else "" for k in ks]
            took = "" if name != "model" else f"{seconds:.0f}" if seconds is not None else "(reused)"
            print(f"| {label} | {'network' if name == 'model' else name} | " + " | ".join(cells) + f" | {took} |")
    if not args.only:
        plot(results, root / "smoke.png" if SMOKE else Path(args.out))


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (label, (by_k, curve, _)) in enumerate(results.items()):
        query = max(by_k["model"])  # the query's label: every demonstration before it
        left.bar(i, by_k["model"][query], color=f"C{i}")
        left.text(i, by_k["model"][query] + 0.01, f"{by_k['model'][query]:.3f}", ha="center", fontsize=8)
        left.plot([i - 0.4, i + 0.4], [by_k["counting"][query]] * 2, color="black", ls="--", lw=1.2)
        if curve:
            steps, values = zip(*curve)
            right.plot(steps, values, color=f"C{i}", label=label)
    for ax in (left, right):
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0.4, 1.05)
        ax.grid(alpha=0.3, axis="y")
    short = {label: name for label, name, _, _ in CONDITIONS}
    names = [short[label] for label in results]
    left.set_xticks(range(len(results)), names, fontsize=8)
    left.set_ylabel("the query's held-out accuracy (1,000 prompts)")
    left.set_title("network (bars) and counting learner (dashes)", fontsize=9)
    right.grid(alpha=0.3, axis="x")
    right.set_xlabel("training step")
    right.set_ylabel("held-out accuracy during training (256 prompts)")
    right.legend(fontsize=7, loc="upper left")
    save_figure(fig, out)


if __name__ == "__main__":
    main()
