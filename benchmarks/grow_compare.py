"""TokenFormer's growth at CPU scale (Wang et al. 2024): a Pattention transformer of ``--small`` parameter tokens per
layer trained for ``--at`` steps, grown to ``--large`` tokens (tokens with zero keys appended, the function kept
exactly) and trained on to ``--total`` steps, against the ``--large`` network trained from scratch for ``--total``
steps. Prints each network's held-out error at k = 2d and the training seconds, and plots the validation curves.

    python benchmarks/grow_compare.py --out docs/tokenformer_grow.png

With --smoke the runs are a few steps long (the figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import SMOKE, SMOKE_OVERRIDES, scratch, small, train_fresh
from iclab.change import grow_config
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.evaluate import evaluate_run
from iclab.kinds.real.curves import error_at
from iclab.recipes import RECIPES
from iclab.rundir import read_curves


def recipe(tokens: int, steps: int):
    data = to_dict(RECIPES["wang2024_tokenformer"](param_tokens=tokens, steps=steps))
    return run_config_from_dict(apply_overrides(data, [*SMOKE_OVERRIDES, f"train.steps={steps}"]))


def curve(run: Path, offset: int = 0) -> tuple[list[int], list[float]]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    pts = [(m["step"] + offset, m["val_err_by_k"][-1]) for m in lines if "val_err_by_k" in m]
    return [s for s, _ in pts], [e for _, e in pts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=16, help="parameter tokens per layer before growth")
    parser.add_argument("--large", type=int, default=64, help="parameter tokens per layer after growth")
    parser.add_argument("--at", type=int, default=1500, help="the step at which the small network grows")
    parser.add_argument("--total", type=int, default=3000, help="steps in all")
    parser.add_argument("--out", default="tokenformer_grow.png", help="the figure (PNG)")
    args = parser.parse_args()
    at, total = small(args.at, 3), small(args.total, 6)
    root = Path(scratch("iclab_grow_compare"))
    seconds = {"small": train_fresh(recipe(args.small, at), root / "small")}
    grown = grow_config(root / "small", args.large - args.small, [*SMOKE_OVERRIDES, f"train.steps={total - at}"])
    seconds["grown"] = train_fresh(grown, root / "grown")
    seconds["scratch"] = train_fresh(recipe(args.large, total), root / "scratch")
    k = 10
    print(f"| network | parameter tokens | steps | error@k={k} | training seconds |\n|---|---|---|---|---|")
    rows = {}
    for name, tokens, steps in [
        ("small", args.small, at),
        ("grown", args.large, total),
        ("scratch", args.large, total),
    ]:
        rows[name] = evaluate_run(root / name) or read_curves(root / name / "eval" / "curves.csv")
        spent = seconds[name] + (seconds["small"] if name == "grown" else 0)
        print(f"| {name} | {tokens} | {steps} | {error_at(rows[name], 'model', k):.4f} | {spent:.0f} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(*curve(root / "small"), label=f"{args.small} tokens", color="C0")
    ax.plot(*curve(root / "grown", offset=at), label=f"grown to {args.large} at step {at}", color="C1")
    ax.plot(*curve(root / "scratch"), label=f"{args.large} tokens from scratch", color="C2", ls="--")
    ax.axvline(at, color="grey", lw=0.8)
    if curve(root / "scratch")[0]:  # (no validation curves in --smoke)
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"validation error / d at k = {k}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    out = root / "smoke.png" if SMOKE else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
