"""What a double_hist program can reach from what it computes: the Bayes rate of rules that see only some features
of a token, on the paper's double_hist data (Friedman et al. 2023; ``task.data: paper``).

    python benchmarks/double_hist_bayes.py

The label of token x is the number of distinct symbols that occur as often as x. A rule that knows x's count and
the input's length, and nothing finer, reaches at best the rate printed for ``count, length``: the ceiling of the
2 + 2-head programs of docs/programs.md, whose decompiled programs compute exactly those two. Knowing also how
many positions share x's count determines the label (rate 1).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

import numpy as np

from _common import small
from iclab.tasks import make_task
from iclab.tasks.rasp import RaspConfig, program_labels


def features(xs: list[str]) -> list[dict]:
    """Per token of ``xs``: its count, the input's length and distinct symbols, the positions sharing its count."""
    c = Counter(xs)
    share = Counter(c[x] for x in xs)
    return [{"count": c[x], "length": len(xs), "distinct": len(c), "sharing": share[c[x]]} for x in xs]


def bayes_rate(rows: list[tuple[dict, str]], keys: tuple[str, ...]) -> float:
    """The accuracy of the best rule that sees only ``keys`` of each token (the majority label per key)."""
    table: dict[tuple, Counter] = defaultdict(Counter)
    for f, label in rows:
        table[tuple(f[k] for k in keys)][label] += 1
    return sum(max(c.values()) for c in table.values()) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=20000, help="inputs drawn (default 20000)")
    args = parser.parse_args()
    task = make_task(RaspConfig(program="double_hist", data="paper"))
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(small(args.inputs, 200)):
        xs = task.sample_input(rng)
        rows += list(zip(features(xs), program_labels("double_hist", xs, paper=True)))
    print(f"double_hist, paper's data: {len(rows)} tokens of {small(args.inputs, 200)} inputs")
    for keys in (("count",), ("length",), ("count", "length"), ("count", "distinct"), ("count", "sharing")):
        print(f"  knows {', '.join(keys):<18} best accuracy {bayes_rate(rows, keys):.3f}")


if __name__ == "__main__":
    main()
