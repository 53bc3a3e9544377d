"""The memory estimate of a training step (``iclab.training.device_memory``) against what two training steps use.

    python benchmarks/memory_estimate.py [--recipes demo,garg2022_linear_regression]

Each recipe runs in its own process (1 thread): the growth of the process's peak resident memory over
building the network and AdamW and taking two steps at the full prompt length, next to the estimate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _common import SMOKE

CHILD = """
import json, resource, sys, torch
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.models import build_model
from iclab.recipes import RECIPES
from iclab.tasks import make_task
from iclab.training.device_memory import estimate_step_memory
torch.set_num_threads(1)
cfg = run_config_from_dict(apply_overrides(to_dict(RECIPES[sys.argv[1]]()), sys.argv[2:]))
task = make_task(cfg.task)
batch = task.sample(cfg.train.batch_size, torch.Generator().manual_seed(0), cfg.task.n_dims, cfg.task.n_points)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
model = build_model(cfg.model, cfg.task.n_dims, task.n_classes)
opt = torch.optim.AdamW(model.parameters())
for _ in range(2):
    task.loss(model(batch.xs, batch.ys), batch.ys).backward()
    opt.step()
    opt.zero_grad()
used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
print(json.dumps({"estimate": estimate_step_memory(cfg).total, "used": used}))
"""


def main() -> None:
    from iclab.training.device_memory import human

    p = argparse.ArgumentParser()
    p.add_argument("--recipes", default="demo,garg2022_linear_regression")
    args = p.parse_args()
    extra = ["train.batch_size=4", "model.n_layer=1"] if SMOKE else []
    print("| recipe | estimate | peak memory growth, 2 steps | ratio |\n|---|---|---|---|")
    for name in args.recipes.split(","):
        out = subprocess.run([sys.executable, "-c", CHILD, name, *extra], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        print(f"| {name} | {human(r['estimate'])} | {human(r['used'])} | {r['estimate'] / max(r['used'], 1):.2f} |")


if __name__ == "__main__":
    main()
