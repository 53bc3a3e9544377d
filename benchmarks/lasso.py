"""All-prefix Lasso: iclab's batched solver against a loop of scikit-learn Lasso fits (issue 3).

    python benchmarks/lasso.py [--prompts 1280] [--loop-prompts 64] [--alphas 0.1,0.01]

1280 prompts of 41 points, d = 20, w 3-sparse. The scikit-learn loop fits one Lasso per (prompt, prefix),
as the reference codebases do, at its default tolerance; its time is measured on --loop-prompts prompts
and scaled. Agreement is measured against scikit-learn at a tight tolerance (1e-12) on 6 prompts.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.linear_model import Lasso as SkLasso

from iclab.learners.lasso import lasso_prefix_solutions


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--prompts", type=int, default=1280)
    p.add_argument("--loop-prompts", type=int, default=64)
    p.add_argument("--alphas", default="0.1,0.01")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    g = torch.Generator().manual_seed(0)
    b, n, d = args.prompts, 41, 20
    xs = torch.randn(b, n, d, generator=g, dtype=torch.float64)
    w = torch.randn(b, d, generator=g, dtype=torch.float64)
    w[:, 3:] = 0
    ys = torch.einsum("bnd,bd->bn", xs, w)
    print(f"# {b} prompts x {n} points, d = {d}, 3-sparse w, {args.threads} threads")
    print("| alpha | iclab (s) | sklearn loop, default tol (s, scaled) | speed-up | max |w - w_sklearn(tol 1e-12)| |"
          " max |w_sklearn default - w_sklearn tight| |\n|---|---|---|---|---|---|")
    for alpha in map(float, args.alphas.split(",")):
        t0 = time.perf_counter()
        ours = lasso_prefix_solutions(xs, ys, alpha).numpy()
        t_ours = time.perf_counter() - t0
        x, y = xs.numpy(), ys.numpy()
        t0 = time.perf_counter()
        default = np.zeros((args.loop_prompts, n, d))
        for i in range(args.loop_prompts):
            for k in range(1, n):
                default[i, k] = SkLasso(alpha=alpha, fit_intercept=False).fit(x[i, :k], y[i, :k]).coef_
        t_loop = (time.perf_counter() - t0) * b / args.loop_prompts
        diff = diff_default = 0.0
        for i in range(6):
            for k in range(1, n):
                tight = SkLasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=10**6).fit(x[i, :k], y[i, :k]).coef_
                diff = max(diff, np.abs(ours[i, k] - tight).max())
                diff_default = max(diff_default, np.abs(default[i, k] - tight).max())
        print(f"| {alpha:g} | {t_ours:.2f} | {t_loop:.1f} | {t_loop / t_ours:.1f}x | {diff:.1e} | {diff_default:.1e} |")


if __name__ == "__main__":
    main()
