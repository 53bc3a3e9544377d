"""Training steps per second of every model family at one shared size (issue 4).

    python benchmarks/family_throughput.py [--threads 1] [--steps 40] [--rounds 3] [--points 21]

Linear regression d = 5, ``--points`` points (41 tokens interleaved at 21), batch 64, width 64, 2 layers
(4 heads where a family has heads), AdamW with clipping: the same step as ``iclab train``. Linear
self-attention has no width of its own (its residual stream is the d + 2 token) and is timed at 2 layers.
Families are timed in interleaved rounds so machine noise hits them alike; the table gives the median
over rounds and the ratio to the transformer measured in the same run.
"""

from __future__ import annotations

import argparse

import torch

from _common import interleaved_rates, print_rates, small
from iclab.config import load_config
from iclab.models import build_model
from iclab.tasks import make_task

SIZE = ["model.n_layer=2"]
FAMILIES = {
    "transformer (interleaved)": ["model.name=transformer", "model.n_embd=64", "model.n_head=4"],
    "transformer (stacked)": ["model.name=transformer", "model.encoder=stacked", "model.n_embd=64", "model.n_head=4"],
    "linear self-attention": ["model.name=linear_self_attention", "model.encoder=stacked"],
    "LSTM": ["model.name=rnn", "model.cell=lstm", "model.n_embd=64"],
    "GRU": ["model.name=rnn", "model.cell=gru", "model.n_embd=64"],
    "tanh RNN": ["model.name=rnn", "model.cell=tanh", "model.n_embd=64"],
    "memory linear, parallel": ["model.name=memory", "model.rule=linear", "model.n_embd=64", "model.n_head=4"],
    "memory delta, parallel": ["model.name=memory", "model.rule=delta", "model.n_embd=64", "model.n_head=4"],
    "memory delta, recurrent": [
        "model.name=memory",
        "model.rule=delta",
        "model.form=recurrent",
        "model.n_embd=64",
        "model.n_head=4",
    ],
    "memory gated delta, recurrent": [
        "model.name=memory",
        "model.rule=gated_delta",
        "model.form=recurrent",
        "model.n_embd=64",
        "model.n_head=4",
    ],
    "memory momentum (recurrent)": [
        "model.name=memory",
        "model.rule=momentum",
        "model.form=recurrent",
        "model.n_embd=64",
        "model.n_head=4",
    ],
    "memory omega w=4 (recurrent)": [
        "model.name=memory",
        "model.rule=omega",
        "model.form=recurrent",
        "model.n_embd=64",
        "model.n_head=4",
    ],
    "memory delta + poly2, parallel": [
        "model.name=memory",
        "model.rule=delta",
        "model.feature_map=poly2",
        "model.n_embd=64",
        "model.n_head=4",
    ],
    "mamba, scan": ["model.name=mamba", "model.form=scan", "model.n_embd=64"],
    "mamba, loop": ["model.name=mamba", "model.form=loop", "model.n_embd=64"],
}


def make_step(overrides, points):
    cfg = load_config(None, [*overrides, *SIZE, "task.n_dims=5", f"task.n_points={points}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 5)
    task = make_task(cfg.task)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)

    def step(i: int) -> None:
        batch = task.train_batch(64, 0, i)
        loss = ((model(batch.xs, batch.ys) - batch.ys) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--points", type=int, default=21)
    args = p.parse_args()
    args.steps, args.rounds = small(args.steps, 1), small(args.rounds, 1)
    torch.set_num_threads(args.threads)
    steps = {name: make_step(o, args.points) for name, o in FAMILIES.items()}
    for step in steps.values():  # warm-up
        for i in range(small(3, 1)):
            step(i)
    rates = interleaved_rates(steps, args.steps, args.rounds, start=0)
    print_rates(
        rates,
        args.threads,
        f"d = 5, {args.points} points, batch 64, width 64, 2 layers",
        "transformer (interleaved)",
        "family",
    )


if __name__ == "__main__":
    main()
