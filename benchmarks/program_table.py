"""Table 1 of Friedman et al. 2023 ("Learning Transformer Programs") from a sweep of the friedman2023_program
recipe: for every RASP task, the Transformer Program of the seed best on validation and its held-out accuracy,
every seed's, the standard transformer on the same data, the training time, and whether the decompiled program
predicts exactly as the model on the whole held-out split.

    iclab sweep friedman2023                          # the runs (sweeps/friedman2023)
    python benchmarks/program_table.py sweeps/friedman2023

Validation: 1,800 held-out inputs drawn from ``eval.seed + 1`` (never training inputs; they may overlap the test
split, as the inputs of sort and reverse are few). Test: the run's evaluation split (2,000 inputs, ``eval.seed``).
With --smoke it trains two toy runs of its own and tabulates them (the figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from _common import SMOKE, SMOKE_OVERRIDES, scratch, train_fresh
from iclab.config import apply_overrides, read_run_config, run_config_from_dict, to_dict
from iclab.decompile import check_program, decompile_run
from iclab.recipes import RECIPES
from iclab.rundir import load_model
from iclab.sweeps.store import last_step
from iclab.tasks import make_task

# Friedman et al. 2023, Table 1: Transformer Program accuracy, best of 5 seeds
PAPER = {
    "reverse": 99.79,
    "hist": 100.0,
    "double_hist": 98.40,
    "sort": 99.83,
    "most_freq": 75.69,
    "dyck1": 99.30,
    "dyck2": 99.09,
    "induction": 100.0,
}


def accuracy(run: Path, n: int, seed_offset: int) -> float:
    cfg, model, _ = load_model(run, device="cpu")
    task = make_task(cfg.task)
    prompts = task.eval_prompts(n, seed=cfg.eval.seed + seed_offset)
    right = scored = 0
    with torch.no_grad():
        for start in range(0, n, 500):
            part = prompts[start : start + 500]
            ok = part.targets != -100
            right += int((model(part.tokens).argmax(-1)[ok] == part.targets[ok]).sum())
            scored += int(ok.sum())
    return right / scored


def describe(run: Path, n_val: int) -> dict:
    cfg = read_run_config(run)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    row = {
        "program": cfg.task.program,
        "family": cfg.model.name,
        "seed": cfg.train.seed,
        "steps": cfg.train.steps,
        "seconds": max(m.get("elapsed_s", 0.0) for m in metrics),
        "val": accuracy(run, n_val, 1),
        "test": accuracy(run, cfg.eval.n_prompts, 0),
    }
    if cfg.model.name == "transformer_program":
        decompile_run(run)
        check = check_program(run)
        row["agree"] = f"{check['agree']}/{check['positions']}"
        row["program_test"] = check["accuracy"]
    return row


def smoke_runs() -> Path:
    root = Path(scratch("iclab_program_table"))
    for family in ("transformer_program", "transformer"):
        base = to_dict(RECIPES["friedman2023_program"](program="hist", epochs=1, family=family))
        cfg = run_config_from_dict(
            apply_overrides(base, [*SMOKE_OVERRIDES, "task.n_train=300", "eval.after_train=false"])
        )
        train_fresh(cfg, root / family)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", nargs="?", help="the sweep folder (sweeps/friedman2023)")
    parser.add_argument("--val", type=int, default=1800, help="validation inputs (default 1800)")
    args = parser.parse_args()
    root = smoke_runs() if SMOKE else Path(args.sweep)
    runs = sorted(p.parent for p in root.glob("*/checkpoints") if (p.parent / "config.yaml").is_file())
    rows = []
    for run in runs:
        if last_step(run) < read_run_config(run).train.steps:
            print(f"skipped {run.name}: unfinished")
            continue
        rows.append(describe(run, 32 if SMOKE else args.val))
    print(
        "| task | paper | program, best on val | every seed | transformer, best on val | epochs | program time "
        "| program = model |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for program in PAPER:
        mine = sorted((r for r in rows if r["program"] == program), key=lambda r: r["seed"])
        tp = [r for r in mine if r["family"] == "transformer_program"]
        tf = [r for r in mine if r["family"] == "transformer"]
        if not tp:
            continue
        best = max(tp, key=lambda r: r["val"])
        every = ", ".join(f"{100 * r['test']:.2f}" for r in tp)
        std = f"{100 * max(tf, key=lambda r: r['val'])['test']:.2f}" if tf else "-"
        n_train = 15800 if program in ("sort", "reverse") else 16200
        epochs = round(best["steps"] / -(-n_train // 512))
        agree = "yes" if all(r["agree"].split("/")[0] == r["agree"].split("/")[1] for r in tp) else "NO"
        print(
            f"| {program} | {PAPER[program]:.2f} | {100 * best['test']:.2f} (seed {best['seed']}) | {every} | {std} "
            f"| {epochs} | {best['seconds'] / 60:.1f} min | {agree} ({best['agree']}) |"
        )


if __name__ == "__main__":
    main()
