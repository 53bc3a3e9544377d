"""Every model family on the same prompts: error-vs-k curves in one plot (issue 4).

    python benchmarks/family_comparison.py [--steps 1000] [--out docs/family_comparison.png]

Linear regression d = 5, 11 points; each family trained for --steps steps (AdamW 3e-3, batch 64, 2 threads)
into /tmp/iclab-families/<name>, evaluated on the same 1280 held-out prompts, with least squares and the
zero predictor for reference. Prints each family's error at k = 2d and its training time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from _common import SMOKE_OVERRIDES, scratch, train_fresh
from iclab.config import load_config
from iclab.evaluate import error_at, evaluate_run
from iclab.rundir import read_curves

FAMILIES = {
    "transformer (stacked)": ["model.name=transformer", "model.encoder=stacked", "model.n_layer=4", "model.n_embd=64"],
    "transformer (interleaved)": [
        "model.name=transformer",
        "model.encoder=interleaved",
        "model.n_layer=4",
        "model.n_embd=64",
    ],
    "LSTM": ["model.name=rnn", "model.cell=lstm", "model.n_embd=64"],
    "GRU": ["model.name=rnn", "model.cell=gru", "model.n_embd=64"],
    "tanh RNN": ["model.name=rnn", "model.cell=tanh", "model.n_embd=64"],
    "memory (delta rule)": ["model.name=memory", "model.rule=delta", "model.n_layer=2"],
    "memory (linear attention)": ["model.name=memory", "model.rule=linear", "model.n_layer=2"],
    "linear self-attention": ["model.name=linear_self_attention", "model.encoder=stacked", "model.init_std=0.1"],
    "memory (momentum rule)": ["model.name=memory", "model.rule=momentum", "model.form=recurrent", "model.n_layer=2"],
    "memory (delta rule + poly2)": [
        "model.name=memory",
        "model.rule=delta",
        "model.feature_map=poly2",
        "model.n_layer=2",
    ],
    "mamba (selective SSM)": ["model.name=mamba", "model.n_layer=2", "model.n_embd=64", "model.d_state=8"],
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--out", default="docs/family_comparison.png")
    p.add_argument(
        "--plot-only", action="store_true", help="redraw the plot from the runs already in /tmp/iclab-families"
    )
    args = p.parse_args()
    torch.set_num_threads(2)
    curves = {}
    for name, overrides in FAMILIES.items():
        run = Path(scratch("iclab-families")) / name.replace(" ", "_").replace("(", "").replace(")", "")
        if args.plot_only:
            rows = read_curves(run / "eval" / "curves.csv")
            curves[name] = [r for r in rows if r["learner"] == "model"]
            baselines = [r for r in rows if r["learner"] != "model"]
            continue
        cfg = load_config(
            None,
            [
                *overrides,
                "task.n_dims=5",
                "task.n_points=11",
                f"train.steps={args.steps}",
                "train.lr=3e-3",
                "train.warmup_steps=100",
                "train.threads=2",
                "train.device=cpu",
                "train.eval_every=0",
                "train.checkpoint_every=100000",
                "eval.learners=[least_squares, zero]",
                *SMOKE_OVERRIDES,
            ],
        )
        seconds = train_fresh(cfg, run)
        rows = evaluate_run(run, plot=False)
        curves[name] = [r for r in rows if r["learner"] == "model"]
        baselines = [r for r in rows if r["learner"] != "model"]
        print(f"{name}: error at k=10 {error_at(rows, 'model', 10):.3f} ({seconds:.0f} s)", flush=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.6), dpi=120)
    colors = plt.get_cmap("tab20").colors
    for i, (name, rows) in enumerate(curves.items()):
        ax.plot(
            [r["k"] for r in rows],
            [r["mean"] for r in rows],
            lw=1.8,
            color=colors[(2 * i) % 20 + (2 * i) // 20],
            ls="-" if i < 10 else "-.",
            label=name,
        )
    for learner, style in (("least_squares", ("black", ":")), ("zero", ("black", "--"))):
        pts = sorted((r for r in baselines if r["learner"] == learner), key=lambda r: r["k"])
        ax.plot([r["k"] for r in pts], [r["mean"] for r in pts], style[1], color=style[0], lw=1.2, label=learner)
    ax.set_xlabel("in-context examples")
    ax.set_ylabel("squared error / d")
    ax.set_ylim(-0.02, 1.3)
    ax.set_title(f"linear regression d = 5, every model family after {args.steps} CPU steps", fontsize=10)
    ax.legend(frameon=False, fontsize=7.5)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
