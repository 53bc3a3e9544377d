"""Is resume bitwise exact on this device? (issue 23; run by benchmarks/gpu_check.sh)

    python benchmarks/resume_check.py OUT [--device auto] [--precision fp32] [--steps 200] [--set KEY=VALUE ...]

Trains the demo's configuration (``train.steps`` = ``--steps``) three times into ``OUT``: twice straight
through, and once stopped at half way and resumed. The two straight runs say whether the device's kernels are
deterministic at all (the control); the resumed run must then end with the same weights and AdamW state, bit for
bit. Deterministic algorithms are requested (``torch.use_deterministic_algorithms``, with the cuBLAS workspace
setting CUDA needs). Prints one summary line; exit status 1 when resume is not exact.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: deterministic cuBLAS

import torch

from _common import small
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.recipes import demo
from iclab.training.checkpoint import latest_checkpoint
from iclab.training.loop import train
from iclab.utils import resolve_device


def tensors(state) -> dict[str, torch.Tensor]:
    """Every tensor of a (nested) state dict, by its path."""
    out = {}
    if isinstance(state, torch.Tensor):
        return {"": state}
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, list) else []
    for key, value in items:
        for sub, t in tensors(value).items():
            out[f"{key}.{sub}" if sub else str(key)] = t
    return out


def max_difference(a: Path, b: Path) -> tuple[float, int]:
    """The largest absolute difference and the number of differing tensors between two runs' last checkpoints."""
    ca, cb = latest_checkpoint(a), latest_checkpoint(b)
    ta = {**tensors(ca.model), **{f"optimizer.{k}": v for k, v in tensors(ca.optimizer).items()}}
    tb = {**tensors(cb.model), **{f"optimizer.{k}": v for k, v in tensors(cb.optimizer).items()}}
    assert ta.keys() == tb.keys(), "the two runs' checkpoints hold different tensors"
    worst, differing = 0.0, 0
    for k in ta:
        if not torch.equal(ta[k], tb[k]):
            differing += 1
            worst = max(worst, (ta[k].double() - tb[k].double()).abs().max().item())
    return worst, differing


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    steps = small(args.steps, 8)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cfg = run_config_from_dict(
        apply_overrides(
            to_dict(demo()),
            [
                f"train.steps={steps}",
                f"train.device={args.device}",
                f"train.precision={args.precision}",
                f"train.checkpoint_every={max(steps // 4, 1)}",
                "train.eval_every=0",
                *args.set,
            ],
        )
    )
    shutil.rmtree(args.out, ignore_errors=True)
    quiet = open(os.devnull, "w")
    for name in ("straight", "again"):
        train(cfg, args.out / name, progress_bar=False, stream=quiet)
    first = train(cfg, args.out / "resumed", stop_after=steps // 2, progress_bar=False, stream=quiet)
    assert first.status == "interrupted", first
    train(cfg, args.out / "resumed", resume=True, progress_bar=False, stream=quiet)
    control, _ = max_difference(args.out / "straight", args.out / "again")
    worst, differing = max_difference(args.out / "straight", args.out / "resumed")
    device = resolve_device(args.device, "--device")
    exact = differing == 0
    print(
        f"resume on {device} ({args.precision}, {steps} steps, stopped at {steps // 2}): "
        + (
            "exact (every weight and AdamW state bit for bit)"
            if exact
            else f"NOT exact: {differing} tensors differ, by up to {worst:.3g}"
        )
        + f"; control, two straight runs: {'identical' if control == 0 else f'differ by up to {control:.3g}'}",
        flush=True,
    )
    sys.exit(0 if exact else 1)


if __name__ == "__main__":
    main()
