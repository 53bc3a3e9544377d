"""Parallel vs recurrent forms of the memory layers at prompt length 128 tokens (issue 4).

    python benchmarks/memory_forms.py [--threads 2]

A 2-layer memory network (width 64, 4 heads) on the interleaved stream of 64-point prompts (127 tokens),
batch 64, forward + backward, for each rule with a parallel form; the two forms compute the same function
(tests/test_models.py), so only time differs.
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import small
from iclab.config import load_config
from iclab.models import build_model
from iclab.tasks import make_task


def step_time(model, prompts, reps: int = 5) -> float:
    def once():
        model.zero_grad()
        ((model(prompts.xs, prompts.ys) - prompts.ys) ** 2).mean().backward()

    once()
    t0 = time.perf_counter()
    for _ in range(reps):
        once()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# 127 tokens (64 points, interleaved), batch 64, 2 layers x 64 wide x 4 heads, {args.threads} threads")
    print("| rule | parallel (ms/step) | recurrent (ms/step) | parallel speed-up |\n|---|---|---|---|")
    for rule in ("linear", "decay", "delta"):
        cfg = load_config(
            None,
            [
                "model.name=memory",
                f"model.rule={rule}",
                "model.n_layer=2",
                "model.n_embd=64",
                "model.n_head=4",
                "task.n_dims=5",
                f"task.n_points={small(64, 8)}",
            ],
        )
        prompts = make_task(cfg.task).eval_prompts(small(64, 4), seed=0)
        torch.manual_seed(0)
        model = build_model(cfg.model, 5)
        parallel = step_time(model, prompts)
        model.config.form = "recurrent"
        recurrent = step_time(model, prompts)
        print(f"| {rule} | {parallel * 1e3:.1f} | {recurrent * 1e3:.1f} | {recurrent / parallel:.1f}x |")


if __name__ == "__main__":
    main()
