"""Exact learning of permutations (the seed paper "Exact Learning of Permutations for Nonzero Binary Inputs with
Logarithmic Training Size and Quadratic Ensemble Complexity") at CPU scale: two-layer ReLU networks trained on the
k basis vectors only, averaged as an ensemble and rounded, tested on all 2^k - 1 nonzero binary inputs.

1. The rounding rule, on the infinite-width ensemble mean (NTK regression): the share of inputs mapped exactly
   with a fixed threshold of one half and with iclab's rule (the |x| largest outputs set to 1).
2. The ensemble complexity: for each k, the smallest ensemble (a power of two) whose rounded mean is exact on one
   random input, and on all inputs, per seed; one ensemble of ``--max-ensemble`` networks is trained per (k, seed)
   and its first m networks averaged for every m. Drawn against k on log-log axes beside k log k and k^2.

    python benchmarks/permutations.py --out docs/permutations.png

With --smoke the sizes are tiny (the figures mean nothing).
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import torch

from _common import SMOKE, save_figure, scratch, small
from iclab.permutations import Ensemble, basis_problem, exact_match, ntk_regression, round_outputs


def rounding_table(ks: list[int]) -> None:
    print("| k | inputs | exact, threshold 1/2 | exact, top-|x| | a(k): mean output of a 1 at the all-ones input |")
    print("|---|---|---|---|---|")
    for k in ks:
        basis, images, inputs, target = basis_problem(torch.randperm(k, generator=torch.Generator().manual_seed(k)))
        mean = ntk_regression(basis, images, inputs)
        half = exact_match(round_outputs(mean, inputs, "half"), target).double().mean()
        top = exact_match(round_outputs(mean, inputs, "top"), target).double().mean()
        print(f"| {k} | {len(inputs)} | {float(half):.4f} | {float(top):.4f} | {float(mean[-1].mean()):.3f} |")


def needed_sizes(k: int, seed: int, max_m: int, width: int, chunk: int = 64) -> tuple[int | None, int | None]:
    """(smallest power-of-two ensemble exact on one random input, on all inputs), None beyond ``max_m``."""
    g = torch.Generator().manual_seed(10_000 + seed)
    basis, images, inputs, target = basis_problem(torch.randperm(k, generator=g))
    one = int(torch.randint(0, len(inputs), (1,), generator=g))
    lr = 1.0 / (1 + (k - 1) / (2 * math.pi))  # 1 / the largest eigenvalue of the kernel on the basis vectors
    sizes = [2**i for i in range(int(math.log2(max_m)) + 1)]
    first_one = first_all = None
    total = torch.zeros(len(inputs), k, dtype=torch.float64)
    done = 0
    for start in range(0, max_m, chunk):
        ens = Ensemble(k, chunk, width, seed=seed * 100_003 + start)
        ens.train(basis, images, steps=200, lr=lr)
        with torch.no_grad():
            outs = ens(inputs)  # (chunk, n, k)
        running = total + torch.cumsum(outs, 0)  # sums of the first done + 1 .. done + chunk networks
        for m in sizes:
            if done < m <= done + chunk:
                pred = round_outputs(running[m - done - 1] / m, inputs, "top")
                right = exact_match(pred, target)
                if first_one is None and bool(right[one]):
                    first_one = m
                if first_all is None and bool(right.all()):
                    first_all = m
        total = running[-1]
        done += chunk
        if first_one is not None and first_all is not None:
            break
    return first_one, first_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--max-ensemble", type=int, default=4096)
    parser.add_argument("--out", default="permutations.png", help="the figure (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounding_table(small([4, 6, 8, 10, 12, 14, 16], [4, 6]))
    ks = small([2, 3, 4, 6, 8, 10, 12, 14, 16], [2, 3])
    seeds, max_m, width = small(args.seeds, 2), small(args.max_ensemble, 8), small(args.width, 8)
    rows = []
    print("\n| k | ensemble for one input (median over seeds) | for all inputs (median) | per seed (one; all) |")
    print("|---|---|---|---|")
    for k in ks:
        chunk = max(1, min(64, max_m, 2**27 // (2**k * width)))  # networks evaluated at once: ~1 GB of activations
        found = [needed_sizes(k, s, max_m, width, chunk=chunk) for s in range(seeds)]
        one = [f[0] if f[0] is not None else 2 * max_m for f in found]
        every = [f[1] if f[1] is not None else 2 * max_m for f in found]
        rows.append((k, statistics.median(one), statistics.median(every)))
        shown = ", ".join(f"{a};{b}" for a, b in found)
        print(f"| {k} | {rows[-1][1]:g} | {rows[-1][2]:g} | {shown} |", flush=True)
    plot(rows, max_m, Path(scratch("iclab_permutations")) / "smoke.png" if SMOKE else Path(args.out))


def plot(rows: list[tuple], max_m: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ks = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.plot(ks, [r[1] for r in rows], marker="o", label="exact on one input")
    ax.plot(ks, [r[2] for r in rows], marker="s", label="exact on all 2^k - 1 inputs")
    top = max(rows, key=lambda r: r[0])
    ref = [(k, k * math.log(k) if k > 1 else 1) for k in ks]
    scale_one = top[1] / (top[0] * math.log(top[0]))
    scale_all = top[2] / top[0] ** 2
    ax.plot(ks, [scale_one * v for _, v in ref], ls=":", color="C0", label="~ k log k")
    ax.plot(ks, [scale_all * k**2 for k in ks], ls=":", color="C1", label="~ k^2")
    ax.axhline(max_m, color="grey", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("k (permutation length)")
    ax.set_ylabel("ensemble size needed (median over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    save_figure(fig, out)


if __name__ == "__main__":
    main()
