"""Training throughput: iclab's transformer against Hugging Face GPT-2 (the reference codebase's model).

    python benchmarks/train_throughput.py [--threads 2] [--steps 300]

Configuration (issue 2): linear regression d = 5, 11 points, batch 64, 4 layers, width 64, 4 heads,
interleaved encoding. The reference model is built the way dtsip/in-context-learning builds it
(GPT2Model with a linear read-in and read-out, x and y tokens interleaved, predictions at the x tokens),
needs `pip install transformers`, and is skipped without it. Both run the same optimiser step (AdamW,
gradient clipping), alternated in rounds so machine noise hits both alike.
Also reports the fraction of the measured matmul throughput reached by a width-256, 8-layer step.
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import torch
from torch import nn

from _common import small
from iclab.config import load_config
from iclab.models import build_model
from iclab.tasks import make_task


def iclab_model(cfg):
    return build_model(cfg.model, cfg.task.n_dims)


class ReferenceGPT2(nn.Module):
    """GPT2Model between a linear read-in and read-out, in the reference codebase's arrangement."""

    def __init__(self, n_dims: int, n_points: int, n_embd: int, n_layer: int, n_head: int, attn: str) -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        conf = GPT2Config(
            n_positions=2 * n_points,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            use_cache=False,
            attn_implementation=attn,
        )
        self.read_in = nn.Linear(n_dims, n_embd)
        self.backbone = GPT2Model(conf)
        self.read_out = nn.Linear(n_embd, 1)

    def forward(self, xs, ys):
        b, n, d = xs.shape
        y_wide = torch.cat([ys.view(b, n, 1), xs.new_zeros(b, n, d - 1)], dim=2)
        zs = torch.stack([xs, y_wide], dim=2).view(b, 2 * n, d)
        out = self.backbone(inputs_embeds=self.read_in(zs)).last_hidden_state
        return self.read_out(out)[:, ::2, 0]


def step_fn(model, task, batch_size, fused=False):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **({"fused": True} if fused else {"foreach": True}))

    def step(i: int) -> None:
        batch = task.train_batch(batch_size, 0, i)
        loss = ((model(batch.xs, batch.ys) - batch.ys) ** 2).mean()
        loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()

    return step


def timed(step, n: int, start: int = 0) -> float:
    t0 = time.perf_counter()
    for i in range(start, start + n):
        step(i)
    return time.perf_counter() - t0


def matmul_gflops(n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def step_flops(model, n_tokens: int, cfg) -> float:
    """Forward + backward FLOPs of one step: 6 * (matrix parameters) * tokens, plus attention."""
    matrix_params = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and "pos_embed" not in name)
    t = n_tokens // cfg.train.batch_size
    attention = 6 * 2 * cfg.model.n_layer * cfg.train.batch_size * t * t * cfg.model.n_embd
    return 6 * matrix_params * n_tokens + attention


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    args.steps, args.rounds = small(args.steps, 2), small(args.rounds, 1)
    torch.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads")

    cfg = load_config(
        None,
        [
            "model.encoder=interleaved",
            "model.n_layer=4",
            "model.n_embd=64",
            "model.n_head=4",
            "task.n_dims=5",
            "task.n_points=11",
            "train.batch_size=64",
        ],
    )
    task = make_task(cfg.task)
    torch.manual_seed(0)
    ours = iclab_model(cfg)
    contenders = {"iclab, fused AdamW (the default)": (ours, True)}
    contenders["iclab, foreach AdamW (before issue 23)"] = (copy.deepcopy(ours), False)
    try:
        # "eager" is the attention the reference codebase ran with (transformers 4.x); "sdpa" is today's default
        contenders["HF GPT-2, eager attention"] = (ReferenceGPT2(5, 11, 64, 4, 4, "eager"), False)
        contenders["HF GPT-2, sdpa attention"] = (ReferenceGPT2(5, 11, 64, 4, 4, "sdpa"), False)
        contenders["HF GPT-2, eager attention, fused AdamW"] = (ReferenceGPT2(5, 11, 64, 4, 4, "eager"), True)
    except ImportError:
        print("transformers not installed: reference model skipped")
    steps = {name: step_fn(m, task, 64, fused) for name, (m, fused) in contenders.items()}
    for s in steps.values():
        timed(s, small(20, 1))
    totals = dict.fromkeys(steps, 0.0)
    for _ in range(args.rounds):
        for name, s in steps.items():
            totals[name] += timed(s, args.steps)
    n = args.steps * args.rounds
    print("\n## linear regression d=5, 11 points, batch 64, 4 layers x 64 wide x 4 heads, interleaved")
    print("| model | steps/s | prompts/s |\n|---|---|---|")
    for name, total in totals.items():
        print(f"| {name} | {n / total:.1f} | {64 * n / total:.0f} |")
    ours = totals["iclab, fused AdamW (the default)"]
    for name, total in totals.items():
        print(f"iclab (default) against {name}: {total / ours:.2f}x")

    big = load_config(
        None,
        [
            "model.encoder=interleaved",
            "model.n_layer=8",
            "model.n_embd=256",
            "model.n_head=8",
            "task.n_dims=20",
            "task.n_points=41",
            "train.batch_size=64",
        ],
    )
    model = iclab_model(big)
    s = step_fn(model, make_task(big.task), 64, fused=True)
    timed(s, small(5, 1))
    peak = matmul_gflops(reps=small(20, 1))
    dt = timed(s, small(30, 1)) / small(30, 1)
    flops = step_flops(model, 64 * (2 * 41 - 1), big)
    peak = max(peak, matmul_gflops(reps=small(20, 1)))
    print("\n## width 256, 8 layers, 8 heads, d=20, 41 points, batch 64")
    print(
        f"step {dt * 1e3:.1f} ms, {flops / 1e9:.2f} GFLOP/step -> {flops / dt / 1e9:.1f} GFLOP/s; "
        f"measured 1024x1024 matmul {peak:.1f} GFLOP/s; fraction {flops / dt / 1e9 / peak:.2f}"
    )


if __name__ == "__main__":
    main()
