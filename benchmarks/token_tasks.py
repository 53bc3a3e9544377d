"""The token tasks of issue 14 at CPU scale.

    python benchmarks/token_tasks.py rasp [--steps 3000] [--programs sort,reverse,...]
    python benchmarks/token_tasks.py length [--steps 2000]

``rasp``: the recipe ``friedman2023_rasp`` for every program of the RASP suite (or ``--programs``), each trained
``--steps`` steps on 1 thread; prints token accuracy on 1,000 held-out inputs (the oracle scores 1.0 on each).

``length``: length generalisation in arithmetic: the recipe ``lee2023_arithmetic`` (reversed output, 4,000
balanced training examples of up to 3 digits) evaluated on held-out pairs of up to 3 digits and of up to 4
digits; prints exact match by number of digits.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

from _common import SMOKE, SMOKE_OVERRIDES, scratch, small, train_fresh
from iclab.config import (
    apply_overrides,
    read_run_config,
    run_config_from_dict,
    save_config,
    to_dict,
)
from iclab.recipes import RECIPES
from iclab.tasks.rasp import PROGRAMS


def _summary(run: Path) -> dict:
    with open(run / "eval" / "summary.csv") as f:
        return {(r["learner"], r["metric"]): float(r["mean"]) for r in csv.DictReader(f)}


def rasp(args) -> None:
    from iclab.evaluate import evaluate_run

    programs = args.programs.split(",") if args.programs else list(PROGRAMS)
    rows = []
    for program in programs:
        base = to_dict(RECIPES["friedman2023_rasp"](program=program, steps=small(args.steps, 3)))
        cfg = run_config_from_dict(
            apply_overrides(base, ["train.threads=1", "eval.after_train=false", *SMOKE_OVERRIDES])
        )
        out = Path(scratch("iclab_rasp")) / program
        seconds = train_fresh(cfg, out)
        evaluate_run(out, plot=False)
        s = _summary(out)
        rows.append(
            {
                "program": program,
                "accuracy": s[("model", "accuracy")],
                "oracle": s[("oracle", "accuracy")],
                "seconds": seconds,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print("\n| program | token accuracy | oracle | training time |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['program']} | {r['accuracy']:.3f} | {r['oracle']:.3f} | {r['seconds']:.0f} s |")


def length(args) -> None:
    from iclab.evaluate import evaluate_run
    from iclab.rundir import read_generation

    base = to_dict(RECIPES["lee2023_arithmetic"](format="reverse", n_train=4000, steps=small(args.steps, 3)))
    cfg = run_config_from_dict(apply_overrides(base, ["train.threads=1", "eval.after_train=false", *SMOKE_OVERRIDES]))
    out = Path(scratch("iclab_length"))
    seconds = train_fresh(cfg, out)
    print(f"trained in {seconds:.0f} s")
    for digits in (3, 4):
        t0 = time.time()
        run = out.with_name(f"{out.name}_{digits}digits")  # the trained run, evaluated on longer numbers
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(out, run)
        saved = read_run_config(run)
        saved.task.eval_digits = digits
        save_config(saved, run / "config.yaml")
        evaluate_run(run, plot=False)
        rows = [r for r in read_generation(run / "eval" / "generation.csv") if r["learner"] == "model"]
        by = {r["value"]: r for r in rows if r["group"] == "digits"}
        overall = next(r for r in rows if r["group"] == "all")
        print(
            f"held-out operands of up to {digits} digits ({time.time() - t0:.0f} s): exact match "
            f"{overall['exact_match']:.3f}; by digits: "
            + ", ".join(f"{d}: {r['exact_match']:.3f} (n={r['n']})" for d, r in sorted(by.items()))
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rasp")
    r.add_argument("--steps", type=int, default=3000)
    r.add_argument("--programs", default=None)
    g = sub.add_parser("length")
    g.add_argument("--steps", type=int, default=2000)
    args = p.parse_args()
    if SMOKE and args.cmd == "rasp" and not args.programs:
        args.programs = "sort,dyck1"
    {"rasp": rasp, "length": length}[args.cmd](args)


if __name__ == "__main__":
    main()
