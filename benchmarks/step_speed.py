"""One training step of the transformer against its own matrix-multiply floor, on any device (issue 23).

    python benchmarks/step_speed.py [--size demo|paper] [--device auto] [--precision fp32|bf16]
                                    [--adamw auto|fused|foreach] [--threads 2] [--steps 50] [--rounds 3]

``demo``: linear regression d = 5, 11 points, transformer 4 x 64 x 4, interleaved (21 tokens), batch 64.
``paper``: Garg et al. 2022's size, d = 20, 41 points (81 tokens), transformer 12 x 256 x 8, batch 64.
The step is ``iclab train``'s: the task's loss under ``train.precision``'s autocast, AdamW from
``iclab.training.loop.make_optimizer`` (``train.adamw``), gradient clipping.

The floor is measured in the same run: every matrix product the step makes (each linear layer's forward
``X W^T`` and its two backward products, and attention's batched ``Q K^T``, ``P V`` and their four backward
products, at the shapes and dtype the step uses), timed bare, back to back. The step's FLOP rate is divided by
the floor's (``of the floor's rate``) and by a square 1024 (CPU) or 4096 (GPU) matmul's (``of a square
matmul's``). Prints one summary line; ``--json`` adds the figures as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from _common import small
from iclab.config import load_config
from iclab.models import build_model
from iclab.models.transformer import Attention
from iclab.tasks import make_task
from iclab.training.loop import autocast, make_optimizer
from iclab.utils import resolve_device

SIZES = {
    "demo": ["task.n_dims=5", "task.n_points=11", "model.n_layer=4", "model.n_embd=64", "model.n_head=4"],
    "paper": ["task.n_dims=20", "task.n_points=41", "model.n_layer=12", "model.n_embd=256", "model.n_head=8"],
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, n: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    sync(device)
    return (time.perf_counter() - t0) / n


def products(model: nn.Module, run_forward) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The shapes ``(a, b)`` of every matrix product one forward and backward pass makes."""
    shapes, hooks = [], []

    def linear(module, inputs, _out):
        x = inputs[0].reshape(-1, module.in_features)
        n, i, o = x.shape[0], module.in_features, module.out_features
        shapes.extend([((n, i), (i, o)), ((n, o), (o, i)), ((o, n), (n, i))])  # X W^T; dX = dY W; dW = dY^T X

    def attention(module, inputs, _out):
        b, t, d = inputs[0].shape
        bh, dh = b * module.n_head, d // module.n_head
        qk, pv = ((bh, t, dh), (bh, dh, t)), ((bh, t, t), (bh, t, dh))
        shapes.extend([qk, pv, ((bh, t, dh), (bh, dh, t)), ((bh, t, t), (bh, t, dh))])  # forward; dP; dV
        shapes.extend([((bh, t, t), (bh, t, dh)), ((bh, t, t), (bh, t, dh))])  # dQ = dS K; dK = dS^T Q

    for m in model.modules():
        if isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear))
        elif isinstance(m, Attention):
            hooks.append(m.register_forward_hook(attention))
    run_forward()
    for h in hooks:
        h.remove()
    return shapes


def flops(shapes) -> float:
    return sum(2 * torch.Size(a).numel() * b[-1] for a, b in shapes)


def floor_seconds(shapes, device, dtype, reps: int) -> float:
    def rand(shape):
        return torch.randn(shape, device=device, dtype=dtype)

    pairs = [(rand(a), rand(b)) for a, b in shapes]

    def run(_i):
        for a, b in pairs:
            a @ b

    run(0)
    return min(timed(run, reps, device) for _ in range(3))


def square_rate(device, dtype, n: int, reps: int) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    return 2 * n**3 / min(timed(lambda _i: a @ b, reps, device) for _ in range(3))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", choices=sorted(SIZES), default="demo")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--adamw", choices=["auto", "fused", "foreach"], default="auto")
    p.add_argument("--encoder", default="interleaved")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    steps, rounds = small(args.steps, 2), small(args.rounds, 1)
    torch.set_num_threads(args.threads)
    name = "demo" if small(0, 1) else args.size  # --smoke: the demo's size whatever was asked
    size = SIZES[name]
    cfg = load_config(
        None,
        [
            *size,
            f"model.encoder={args.encoder}",
            "train.batch_size=64",
            f"train.precision={args.precision}",
            f"train.adamw={args.adamw}",
        ],
    )
    device = resolve_device(args.device, "--device")
    task = make_task(cfg.task)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.task.n_dims).to(device)
    opt = make_optimizer(model, cfg)
    batches = [task.train_batch(64, 0, i).to(device) for i in range(8)]

    def loss_of(batch):
        with autocast(cfg, device):
            return task.batch_loss(model, batch).float()

    def step(i: int) -> None:
        loss = loss_of(batches[i % len(batches)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()

    with autocast(cfg, device):
        shapes = products(model, lambda: task.batch_loss(model, batches[0]))
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    for i in range(small(10, 1)):
        step(i)
    seconds = statistics.median(timed(step, steps, device) for _ in range(rounds))
    floor = floor_seconds(shapes, device, dtype, small(20, 1))
    square = square_rate(device, dtype, 4096 if device.type == "cuda" else 1024, small(20, 1))
    work = flops(shapes)
    fused = bool(opt.defaults.get("fused"))
    figures = {
        "size": name,
        "device": str(device),
        "precision": args.precision,
        "adamw": "fused" if fused else "foreach",
        "steps_per_s": 1 / seconds,
        "step_ms": seconds * 1e3,
        "floor_ms": floor * 1e3,
        "gflop_per_step": work / 1e9,
        "step_gflops": work / seconds / 1e9,
        "of_floor_rate": floor / seconds,
        "square_gflops": square / 1e9,
        "of_square_rate": work / seconds / square,
    }
    print(
        f"step {name} on {device} ({args.precision}, {figures['adamw']} AdamW): "
        f"{figures['steps_per_s']:.1f} steps/s, {figures['step_ms']:.1f} ms against a {figures['floor_ms']:.1f} ms "
        f"matmul floor ({figures['step_ms'] / figures['floor_ms']:.2f}x the floor); "
        f"{figures['step_gflops']:.0f} GFLOP/s = {figures['of_floor_rate']:.2f} of the floor's rate, "
        f"{figures['of_square_rate']:.2f} of a square matmul's ({figures['square_gflops']:.0f} GFLOP/s)",
        flush=True,
    )
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
