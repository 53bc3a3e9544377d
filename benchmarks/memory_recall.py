"""Multi-query associative recall with more keys than a memory head's key width (issue 4).

    python benchmarks/memory_recall.py [--steps 2000] [--keys 24] [--threads 2]

Task ``associative_recall``: d = 8 keys, ``--keys`` associations written per prompt, then as many queries.
Models: one memory block, 4 heads of width 8 (so each head's memory has 8 key columns), with Hebbian
(linear attention) or delta-rule writes, with and without degree-2 polynomial features of queries and
keys (8 -> 44 key columns); a 1-layer softmax transformer of the same width as a reference (its "state"
is the whole context). Reported: mean squared error per value at the queries (zero predictor: 1; exact
look-up, knn(k=1): 0). Then the write rules alone, without training (``iclab.analysis.memory_capacity.recall_error``).
"""

from __future__ import annotations

import argparse
import json

import torch

from _common import SMOKE_OVERRIDES, scratch, small, train_fresh
from iclab.analysis.memory_capacity import recall_error
from iclab.config import load_config
from iclab.rundir import load_model
from iclab.tasks import make_task

VARIANTS = {
    "linear attention (Hebbian)": ["model.name=memory", "model.rule=linear"],
    "delta rule": ["model.name=memory", "model.rule=delta"],
    "linear attention + poly2": ["model.name=memory", "model.rule=linear", "model.feature_map=poly2"],
    "delta rule + poly2": ["model.name=memory", "model.rule=delta", "model.feature_map=poly2"],
    "transformer (softmax; 1 layer)": ["model.name=transformer", "model.encoder=interleaved"],
}


def run(name: str, steps: int, keys: int, threads: int) -> dict:
    out = scratch(f"iclab-recall/{abs(hash(name))}")
    cfg = load_config(
        None,
        [
            "task.name=associative_recall",
            "task.n_dims=8",
            f"task.n_keys={keys}",
            f"task.n_points={2 * keys}",
            *VARIANTS[name],
            "model.n_layer=1",
            "model.n_embd=32",
            "model.n_head=4",
            f"train.steps={steps}",
            "train.lr=3e-3",
            "train.warmup_steps=100",
            "train.batch_size=64",
            "train.device=cpu",
            f"train.threads={threads}",
            "train.eval_every=0",
            "train.checkpoint_every=100000",
            *SMOKE_OVERRIDES,
        ],
    )
    seconds = train_fresh(cfg, out)
    _, model, _ = load_model(out)
    task = make_task(cfg.task)
    prompts = task.eval_prompts(small(1000, 16), seed=5)
    with torch.no_grad():
        pred = model.predict(prompts)
    err = task.error(pred.double(), prompts.ys.double())[:, keys:].mean().item()
    return {
        "model": name,
        "steps": steps,
        "keys": keys,
        "train_seconds": round(seconds, 1),
        "query_error": round(err, 4),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--keys", type=int, default=24)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", default="|".join(VARIANTS), help="variant names separated by |")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.only.split("|"):
        print(json.dumps(run(name, args.steps, args.keys, args.threads)), flush=True)
    for k in (4, 8, 16, 24, 32):
        row = {
            f"{rule}/{fm}": round(recall_error(rule, k, 8, fm, n_trials=small(200, 4)), 3)
            for rule in ("linear", "delta")
            for fm in ("identity", "poly2")
        }
        print(json.dumps({"write rules alone, keys": k, **row}), flush=True)


if __name__ == "__main__":
    main()
