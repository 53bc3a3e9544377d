import dataclasses
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
        "task.n_dims=3",
        "task.n_points=7",
        "model.n_layer=2",
        "model.n_embd=32",
        "model.n_head=2",
        "train.steps=20",
        "train.batch_size=16",
        "train.warmup_steps=2",
        "train.device=cpu",
        "train.threads=1",
        "train.log_every=5",
        "train.eval_every=10",
        "train.eval_prompts=32",
        "train.checkpoint_every=10",
        "eval.n_prompts=64",
    ]


def real_valued(registry) -> list[str]:
    """The names in a task or learner registry whose prompts are real-valued (x, y) prompts (token tasks and token
    learners have their own tests in test_tokens.py)."""
    return sorted(n for n, cls in registry.items() if getattr(cls, "prompt_kind", "real") == "real")


def real_families() -> list[str]:
    """The registered model families that read real-valued prompts (the Transformer Program reads token ids only: its
    tests are in test_programs.py)."""
    from iclab.models import MODELS

    return sorted(n for n, cls in MODELS.items() if cls.real_valued)


def tiny_model(name: str, width: int = 16) -> list[str]:
    """``--set`` overrides for a small network of the registered family ``name``, derived from its config's
    fields (so every registered family, built-in or not, gets one)."""
    from iclab.models import MODELS

    fields = {f.name for f in dataclasses.fields(MODELS[name])}
    out = [f"model.name={name}"]
    out += [f"model.n_embd={width}"] if "n_embd" in fields else []
    out += ["model.n_head=2"] if "n_head" in fields else []
    out += ["model.d_state=4"] if "d_state" in fields else []
    return out


def quick_model(name: str) -> list[str]:
    """``--set`` overrides of family ``name``'s ``quick`` settings (a short CPU run that learns in context)."""
    from iclab.models import MODELS

    return [f"model.name={name}", *(f"model.{k}={v}" for k, v in MODELS[name].quick.items())]


@pytest.fixture
def quick_lm():
    """``quick_lm(family, task, **changes)``: a small causal language model of any family for a token task (the
    family's quick size, its positions fitted to the task), seeded."""
    from iclab.kinds import build_for_task
    from iclab.models import MODELS

    def make(family: str, task, **changes):
        cfg = MODELS[family](**{**MODELS[family].quick, **changes})
        if "encoder" in cfg.quick:
            cfg.encoder = cfg.encoders[0]
        if hasattr(cfg, "n_positions"):
            cfg.n_positions = task.max_tokens
        cfg.validate()
        torch.manual_seed(0)
        return build_for_task(cfg, task)

    return make


def assert_train_refuses(overrides: list[str], message: str, capsys, out) -> None:
    """``iclab train configs/linear_regression.yaml --set ...`` exits with code 2, prints one line containing
    ``message`` and writes no run folder at ``out``."""
    from iclab.cli import main

    capsys.readouterr()
    sets = [x for o in overrides for x in ("--set", o)]
    assert main(["train", "configs/linear_regression.yaml", *sets, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()
