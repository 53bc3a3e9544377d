"""Akyürek et al. 2022's alignment check at CPU scale (issue 5): which algorithm is the model closest to?

    python benchmarks/akyurek_alignment.py [--steps 4000] [--noise 0,1]

For each noise level, trains the ``akyurek2022_alignment`` recipe (d = 5, 16 points, 4 x 64 transformer,
stacked encoder), then measures SPD and ILWD between the model and every reference learner of the
recipe at each k >= d (``iclab.analysis.alignment_table``, 300 prompts, 2d + 1 probe queries). Prints,
per k, the learner with the lowest SPD and the lowest ILWD, and the means over k >= d.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from _common import SMOKE_OVERRIDES, scratch, small, train_fresh
from iclab.analysis import alignment_table
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.learners import make_learner
from iclab.recipes import akyurek2022_alignment
from iclab.rundir import load_model
from iclab.tasks import make_task


def run(noise: float, steps: int, threads: int, reuse: bool = False) -> None:
    out = scratch(f"iclab-akyurek/noise{noise:g}")
    cfg = run_config_from_dict(
        apply_overrides(
            to_dict(akyurek2022_alignment(noise, steps)),
            ["train.device=cpu", f"train.threads={threads}", *SMOKE_OVERRIDES],
        )
    )
    # --reuse: analyse the run already there (e.g. one continued with `iclab train --resume`)
    seconds = 0.0 if reuse else train_fresh(cfg, out)
    _, model, _ = load_model(out)
    task = make_task(cfg.task)
    prompts = task.eval_prompts(small(300, 16), seed=11)
    d = cfg.task.n_dims
    specs = [s for s in cfg.eval.learners if s != "zero"]
    rows = alignment_table(
        model, task, prompts, [make_learner(s, task=task) for s in specs], ks=list(range(d, cfg.task.n_points))
    )
    print(f"\n## noise_std = {noise:g} (trained {steps} steps in {seconds:.0f} s)\n")
    print("| k | model error | lowest SPD | lowest ILWD |\n|---|---|---|---|")
    for k in range(d, cfg.task.n_points):
        at = [r for r in rows if r["k"] == k]
        s, w = min(at, key=lambda r: r["spd"]), min(at, key=lambda r: r["ilwd"])
        print(
            f"| {k} | {at[0]['model_error']:.4f} | {s['learner']} ({s['spd']:.4f}) | {w['learner']} ({w['ilwd']:.4f}) |"
        )
    print("\n| learner | mean SPD, k >= d | mean ILWD, k >= d | learner's own error |\n|---|---|---|---|")
    for label in dict.fromkeys(r["learner"] for r in rows):
        sel = [r for r in rows if r["learner"] == label]
        print(
            f"| {label} | {statistics.mean(r['spd'] for r in sel):.4f} |"
            f" {statistics.mean(r['ilwd'] for r in sel):.4f} |"
            f" {statistics.mean(r['learner_error'] for r in sel):.4f} |"
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--noise", default="0,1")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reuse", action="store_true", help="analyse the existing runs in /tmp/iclab-akyurek")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for noise in map(float, args.noise.split(",")):
        run(noise, args.steps, args.threads, args.reuse)


if __name__ == "__main__":
    main()
