import os

import pytest
import torch

# one thread: the suite runs on shared 2-core machines, where two threads under load can be much slower
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def tiny_overrides():
    """Config overrides for a tiny, fast run on CPU."""
    return [
        "task.n_dims=3", "task.n_points=7",
        "model.n_layer=2", "model.n_embd=32", "model.n_head=2",
        "train.steps=20", "train.batch_size=16", "train.warmup_steps=2", "train.device=cpu", "train.threads=1",
        "train.log_every=5", "train.eval_every=10", "train.eval_prompts=32", "train.checkpoint_every=10",
        "eval.n_prompts=64",
    ]
