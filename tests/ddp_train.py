"""Run by torchrun in test_distributed.py: ``torchrun --nproc_per_node 2 tests/ddp_train.py CONFIG OUT [STOP_AFTER]``
trains CONFIG data-parallel into OUT, stopping (with a checkpoint) after STOP_AFTER steps when given, and
resuming when OUT already holds a checkpoint."""

import sys
from pathlib import Path

from iclab.config import load_config
from iclab.training.checkpoint import list_checkpoints
from iclab.training.distributed import context, finish
from iclab.training.loop import train

config, out = sys.argv[1], Path(sys.argv[2])
stop_after = int(sys.argv[3]) if len(sys.argv) > 3 else None
cfg = load_config(config)
ctx = context(cfg.train.device)
result = train(cfg, out, resume=bool(list_checkpoints(out)), stop_after=stop_after, progress_bar=False)
finish(ctx)
print(f"rank {ctx.rank}: {result.status} at step {result.step}")
