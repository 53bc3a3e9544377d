"""How fast in-context learning emerges with each prompt encoder (d = 5, 11 points, 4 x 64 x 4 transformer).

    python benchmarks/encoder_comparison.py NAME [--set key=value ...]
    e.g. python benchmarks/encoder_comparison.py stacked --set model.encoder=stacked --set train.steps=2000

Trains into /tmp/iclab-encoders/NAME and prints the held-out error / d at k = 2d every eval_every steps,
and the first step below 0.2 and 0.1.
"""

from __future__ import annotations

import argparse
import json

from _common import SMOKE_OVERRIDES, scratch, train_fresh
from iclab.config import load_config


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()
    out = scratch(f"iclab-encoders/{args.name}")
    cfg = load_config(
        None,
        [
            "train.device=cpu",
            "train.log_every=250",
            "train.eval_every=250",
            "train.checkpoint_every=100000",
            *args.set,
            *SMOKE_OVERRIDES,
        ],
    )
    seconds = train_fresh(cfg, out)
    k = 2 * cfg.task.n_dims
    evals = [json.loads(line) for line in open(f"{out}/metrics.jsonl") if "val_err_by_k" in line]
    print(f"{args.name} {args.set}: {seconds:.0f} s")
    print("  step, error at k=2d:", [(r["step"], round(r["val_err_by_k"][k], 3)) for r in evals])
    for th in (0.2, 0.1):
        hit = next((r for r in evals if r["val_err_by_k"][k] < th), None)
        print(f"  below {th}: " + (f"step {hit['step']} ({hit['elapsed_s']:.0f} s)" if hit else "never"))


if __name__ == "__main__":
    main()
