"""All-prefix reference learners: iclab's batched solvers against loops in the reference codebase's style.

    python benchmarks/learners.py [--threads 2]

1280 prompts of 41 points, d = 20 (issue 2). The loops solve one prefix length at a time, as
dtsip/in-context-learning does (least squares with torch.linalg.lstsq per prefix; 3-NN with a sort per
prefix and a Python loop over prompts); ridge's loop solves the normal equations per prefix.
Checks that the answers agree before reporting times.
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import small
from iclab.learners import make_learner
from iclab.types import Prompts


def loop_least_squares(xs, ys):
    preds = [torch.zeros_like(ys[:, 0])]
    for i in range(1, ys.shape[1]):
        w = torch.linalg.lstsq(xs[:, :i], ys[:, :i].unsqueeze(2)).solution
        preds.append((xs[:, i : i + 1] @ w)[:, 0, 0])
    return torch.stack(preds, dim=1)


def loop_ridge(xs, ys, lam):
    preds = [torch.zeros_like(ys[:, 0])]
    eye = torch.eye(xs.shape[2], dtype=xs.dtype)
    for i in range(1, ys.shape[1]):
        x, y = xs[:, :i], ys[:, :i]
        w = torch.linalg.solve(x.transpose(1, 2) @ x + lam * eye, x.transpose(1, 2) @ y.unsqueeze(2))
        preds.append((xs[:, i : i + 1] @ w)[:, 0, 0])
    return torch.stack(preds, dim=1)


def loop_knn(xs, ys, k=3):
    preds = [torch.zeros_like(ys[:, 0])]
    for i in range(1, ys.shape[1]):
        dist = (xs[:, :i] - xs[:, i : i + 1]).square().sum(2).sqrt()
        ranks = dist.argsort()[:, : min(i, k)]
        preds.append(torch.stack([y[r].mean() for y, r in zip(ys[:, :i], ranks)]))
    return torch.stack(preds, dim=1)


def best_of(fn, reps=small(3, 1)):
    times = []
    out = None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    b = small(1280, 8)
    xs = torch.randn(b, 41, 20, generator=g)
    ys = torch.einsum("bnd,bd->bn", xs, torch.randn(b, 20, generator=g))
    prompts = Prompts(xs, ys)
    cases = [
        ("least squares", lambda: make_learner("least_squares").predict(prompts), lambda: loop_least_squares(xs, ys)),
        ("ridge(lam=0.25)", lambda: make_learner("ridge(lam=0.25)").predict(prompts), lambda: loop_ridge(xs, ys, 0.25)),
        ("3-NN", lambda: make_learner("knn(k=3)").predict(prompts), lambda: loop_knn(xs, ys)),
    ]
    print(f"# 1280 prompts x 41 points, d = 20, {args.threads} threads")
    print("| learner | iclab (s) | loop (s) | speed-up | max abs difference |\n|---|---|---|---|---|")
    for name, ours, loop in cases:
        t_ours, a = best_of(ours)
        t_loop, b = best_of(loop)
        diff = (a.double() - b.double()).abs().max().item()
        print(f"| {name} | {t_ours:.3f} | {t_loop:.3f} | {t_loop / t_ours:.1f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
