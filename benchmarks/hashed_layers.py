"""MemoryFormer's hashed layers against dense ones (Ding et al. 2024), at CPU scale: the q/k/v projections and the
MLP of a transformer as hashed memory layers (``model.linear: hashed``, ``tau`` bits per code), against the dense
transformer at the same width, at equal parameters (a wider dense network) and at equal multiply-adds per token
(a narrower one), on two tasks:

- regression: the ``demo`` recipe (linear regression, d = 5, 11 points, 4 layers, stacked encoder, 3,000 steps);
  squared error / d at k = 2d on 1,280 held-out prompts;
- MQAR: ``arora2023_mqar(family=attention, seq_len=32)`` (4 key-value pairs, 2 layers, 1,000 steps); accuracy at
  the queries of 500 held-out prompts; and the same without the transformer's token shift (``mqar_no_shift``),
  where attention must first grow a previous-token head.

    python benchmarks/hashed_layers.py [--tau 4] [--width 64] [--steps N]

Prints, per network, the blocks' parameters, the multiply-adds per token of their projections (the hashed
layers': ``d_in / tau`` rows of ``d_out`` each; attention's scores are the same for all and left out) and the
result. Runs go under /tmp/iclab_hashed (--reuse keeps finished ones; ``--only mqar:hashed`` trains one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import SMOKE_OVERRIDES, scratch, summary_means, train_unless_done
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.evaluate import error_at, evaluate_run
from iclab.kinds import build_for_task
from iclab.models.hashed import HashedLinear
from iclab.recipes import RECIPES
from iclab.tasks import make_task

NETWORKS = ("dense", "hashed", "dense, equal parameters", "dense, equal multiply-adds")


def block_costs(cfg) -> tuple[int, int]:
    """``(parameters, multiply-adds per token)`` of the network's blocks' linear and hashed maps."""
    import torch

    model = build_for_task(cfg.model, make_task(cfg.task))
    blocks = model.backbone.blocks
    params = sum(p.numel() for p in blocks.parameters())
    macs = 0
    for m in blocks.modules():
        if isinstance(m, HashedLinear):
            macs += m.flops_per_token()
        elif isinstance(m, torch.nn.Linear):
            macs += m.in_features * m.out_features
    return params, macs


def matched_width(base: dict, sets: list[str], target: float, which: int, heads: int) -> int:
    """The dense width (a multiple of ``2 heads``) whose parameters (``which`` 0) or multiply-adds (1) come
    closest to ``target``."""
    best, best_gap = 2 * heads, float("inf")
    for width in range(2 * heads, 1025, 2 * heads):
        cfg = run_config_from_dict(apply_overrides(base, [*sets, f"model.n_embd={width}"]))
        gap = abs(block_costs(cfg)[which] - target)
        if gap < best_gap:
            best, best_gap = width, gap
        else:  # the costs grow with the width: past the closest one
            break
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tau", type=int, default=4)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, help="training steps of every run (default: each recipe's own)")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--only", help="task:network, e.g. mqar:hashed")
    args = parser.parse_args()
    root = Path(scratch("iclab_hashed"))
    tasks = {
        "regression": (to_dict(RECIPES["demo"]()), "model.n_head=4"),
        "mqar": (
            to_dict(RECIPES["arora2023_mqar"](family="attention", n_embd=args.width, seq_len=32)),
            "model.n_head=2",
        ),
        # without the token shift attention must grow a previous-token head first: a harder recall
        "mqar_no_shift": (
            to_dict(RECIPES["arora2023_mqar"](family="attention", n_embd=args.width, seq_len=32)),
            "model.n_head=2",
        ),
    }
    hashed = ["model.linear=hashed", f"model.hash_bits={args.tau}", "model.hashed=[qkv, mlp]"]
    common = [*([f"train.steps={args.steps}"] if args.steps else []), "train.threads=1", *SMOKE_OVERRIDES]
    print(f"tau = {args.tau}, width {args.width}")
    print("| task | network | width | block parameters | projection multiply-adds / token | result |")
    print("|---|---|---|---|---|---|")
    for task, (base, heads) in tasks.items():
        n_heads = int(heads.split("=")[1])
        widths = {"dense": args.width, "hashed": args.width}
        hashed_cfg = run_config_from_dict(
            apply_overrides(base, [*common, heads, *hashed, f"model.n_embd={args.width}"])
        )
        params, macs = block_costs(hashed_cfg)
        dense_sets = [*common, heads]
        widths["dense, equal parameters"] = matched_width(base, dense_sets, params, 0, n_heads)
        widths["dense, equal multiply-adds"] = matched_width(base, dense_sets, macs, 1, n_heads)
        shift = ["model.token_shift=false"] if task == "mqar_no_shift" else []
        for name in NETWORKS:
            sets = [*common, heads, *shift, f"model.n_embd={widths[name]}", *(hashed if name == "hashed" else [])]
            cfg = run_config_from_dict(apply_overrides(base, sets))
            key = f"{task}:{name.replace(', ', '_').replace(' ', '_')}"
            if args.only and args.only != key:
                continue
            run = root / key.replace(":", "_")
            train_unless_done(cfg, run, args.reuse)
            rows = evaluate_run(run, plot=False)
            if task == "regression":  # (the MQAR rows: accuracy at the queries)
                k = 2 * cfg.task.n_dims
                result = f"error / d at k = {k}: {error_at(rows, 'model', k):.3f}"
            else:
                by = summary_means(run)
                result = f"accuracy {by[('model', 'accuracy')]:.3f}"
            p, m = block_costs(cfg)
            print(f"| {task} | {name} | {widths[name]} | {p / 1e3:.0f}k | {m / 1e3:.1f}k | {result} |", flush=True)
            (run / "hashed_row.json").write_text(json.dumps({"params": p, "macs": m, "result": result}))


if __name__ == "__main__":
    main()
