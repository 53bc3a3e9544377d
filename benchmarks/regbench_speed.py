"""Training steps per second of every model family and memory rule on REGBENCH at 256 tokens (issue 23).

    python benchmarks/regbench_speed.py [--threads 2] [--steps 10] [--rounds 3] [--only NAME ...]

The CPU recipe ``akyurek2024_regbench`` (batch 32, prompts cut at 256 tokens) at one width (64) and depth (2),
with each family and each memory rule in every form it has: the same training step as ``iclab train`` (the
task's loss, AdamW with clipping). Timed in interleaved rounds so machine noise hits every contender alike; the
table gives the median over rounds and the ratio to the transformer measured in the same run.
"""

from __future__ import annotations

import argparse

import torch

from _common import SMOKE, interleaved_rates, print_rates, small
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.kinds import build_for_task
from iclab.recipes import akyurek2024_regbench
from iclab.tasks import make_task

SIZE = ["model.n_layer=2", "model.n_embd=64", "task.n_train=2000"] + (["task.max_length=60"] if SMOKE else [])
MEMORY = ["model.name=memory", "model.n_head=4"]
FAMILIES = {
    "transformer": ["model.name=transformer", "model.qkv_conv=0", "model.n_head=4"],
    "transformer, qkv conv 3 (the recipe)": ["model.name=transformer", "model.qkv_conv=3", "model.n_head=4"],
    "LSTM": ["model.name=rnn", "model.cell=lstm"],
    "GRU": ["model.name=rnn", "model.cell=gru"],
    "tanh RNN": ["model.name=rnn", "model.cell=tanh"],
    "mamba": ["model.name=mamba"],
    **{
        f"memory {rule}, {form}": [*MEMORY, f"model.rule={rule}", f"model.form={form}"]
        for rule, forms in {
            "linear": ("parallel", "recurrent"),
            "decay": ("parallel", "recurrent"),
            "delta": ("chunk", "parallel", "recurrent"),
            "gated_delta": ("chunk", "parallel", "recurrent"),
            "momentum": ("chunk", "recurrent"),
            "omega": ("chunk", "recurrent"),
        }.items()
        for form in forms
    },
}


def make_step(overrides: list[str]):
    cfg = run_config_from_dict(apply_overrides(to_dict(akyurek2024_regbench()), [*SIZE, *overrides]))
    task = make_task(cfg.task)
    torch.manual_seed(0)
    model = build_for_task(cfg.model, task)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    batch_size = cfg.train.batch_size

    def step(i: int) -> None:
        loss = task.batch_loss(model, task.train_batch(batch_size, 0, i))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()

    return step, task.train_batch(batch_size, 0, 0).tokens.shape


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", nargs="*", help="names (prefixes) of the contenders to time besides the transformer")
    args = p.parse_args()
    args.steps, args.rounds = small(args.steps, 1), small(args.rounds, 1)
    torch.set_num_threads(args.threads)
    names = [n for n in FAMILIES if n == "transformer" or not args.only or any(n.startswith(o) for o in args.only)]
    steps = {}
    for name in names:
        steps[name], shape = make_step(FAMILIES[name])
    for step in steps.values():  # warm-up
        step(0)
    rates = interleaved_rates(steps, args.steps, args.rounds, start=1)
    print_rates(
        rates,
        args.threads,
        f"REGBENCH batch {tuple(shape)[0]} x {tuple(shape)[1]} tokens, width 64, 2 layers",
        "transformer",
        "model",
    )


if __name__ == "__main__":
    main()
