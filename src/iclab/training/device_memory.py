"""How much memory a run needs, from its config alone, and a one-line refusal when the device lacks it.

Checked before anything is written, cheapest first:

1. the data batch, from sizes alone (:meth:`~iclab.kinds.PromptKind.data_bytes`);
2. the parameters, from each family's closed-form lower bound (``ModelConfig.parameters_lower_bound``) times
   four floats each (weights, gradients, AdamW's two moments), so ``model.n_layer=1000000`` is refused before a
   single module is built;
3. the whole step (:meth:`~iclab.kinds.PromptKind.step_memory`): parameters counted exactly and activations from
   a forward pass on PyTorch's ``meta`` device (no memory is used), doubled for what autograd keeps for the
   backward pass, plus the data.

The step estimate is a planning figure, not a bound (its accuracy against measured peaks is in
docs/benchmarks.md, ``python benchmarks/memory_estimate.py``); it is meant to catch configs that cannot run at
all. Evaluation is checked the same way (:func:`check_eval_fits`).
"""

from __future__ import annotations

from iclab.models.size import FLOAT, MemoryEstimate


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.3g} PB"


def estimate_step_memory(cfg) -> MemoryEstimate:
    """The memory one training step of ``cfg`` needs (see the module docstring), as its prompt kind counts it."""
    from iclab.kinds import kind_of
    from iclab.tasks import make_task

    task = make_task(cfg.task)
    return kind_of(task).step_memory(cfg, task)


def available_memory(device) -> int | None:
    """Bytes the device can give a run now: free GPU memory, or the machine's available RAM (None if unknown)."""
    import torch

    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(cfg, device) -> MemoryEstimate:
    """Raise :class:`~iclab.errors.ConfigError` (one line, naming the fields to lower) when a training step of
    ``cfg`` needs more memory than ``device`` has available."""
    from iclab.errors import ConfigError
    from iclab.kinds import kind_of
    from iclab.tasks import make_task

    task = make_task(cfg.task)
    kind = kind_of(task)
    fields = kind.memory_fields
    have = available_memory(device)
    est = kind.data_bytes(cfg, task)
    if have is not None and est > have:  # hopeless before any model is built
        raise ConfigError(
            f"train: a training step needs at least {human(est)} (the data batch alone) but {device} has "
            f"{human(have)} available; lower {fields['data']}"
        )
    # closed forms: no module is built for sizes no machine holds
    weights = 4 * FLOAT * cfg.model.parameters_lower_bound()  # weights, gradients, AdamW's two moments
    activations = 2 * FLOAT * cfg.model.activations_lower_bound() * kind.tokens_per_step(cfg, task)
    if have is not None and est + weights + activations > have:
        part = "parameters" if weights >= activations else "activations"
        raise ConfigError(
            f"train: a training step needs at least {human(est + weights + activations)} (parameters, "
            f"gradients and optimiser at least {human(weights)}, activations at least "
            f"{human(activations)}) but {device} has {human(have)} available; lower {fields[part]}"
        )
    full = _estimate_once(cfg)
    if have is not None and full.total > have:
        raise ConfigError(
            f"train: a training step needs about {human(full.total)} (parameters, gradients and optimiser "
            f"{human(full.parameters + full.gradients + full.optimizer)}, activations {human(full.activations)}, "
            f"data {human(full.data)}) but {device} has {human(have)} available; lower {fields[full.dominant()]}"
        )
    check_eval_fits(cfg.task, cfg.eval.n_prompts, device)  # the evaluation after training
    return full


_ESTIMATES: dict[str, MemoryEstimate] = {}


def _estimate_once(cfg) -> MemoryEstimate:
    """:func:`estimate_step_memory`, computed once per config: the command line checks a run before it makes
    room for it, and :func:`~iclab.training.loop.train` checks again before writing; the second is a look-up."""
    import json
    from dataclasses import asdict

    key = json.dumps(asdict(cfg), sort_keys=True, default=str)
    if key not in _ESTIMATES:
        if len(_ESTIMATES) >= 16:
            _ESTIMATES.clear()
        _ESTIMATES[key] = estimate_step_memory(cfg)
    return _ESTIMATES[key]


def estimate_eval_memory(task_cfg, n_prompts: int) -> int:
    """Bytes to evaluate on ``n_prompts`` held-out prompts, as the task's prompt kind counts them."""
    from iclab.kinds import kind_of
    from iclab.tasks import make_task

    task = make_task(task_cfg)
    return kind_of(task).eval_bytes(task, n_prompts)


def check_eval_fits(task_cfg, n_prompts: int, device, field: str = "eval.n_prompts") -> None:
    """Raise :class:`~iclab.errors.ConfigError` naming ``field`` when evaluating on ``n_prompts`` prompts
    needs more memory than ``device`` has available."""
    from iclab.errors import ConfigError

    need, have = estimate_eval_memory(task_cfg, n_prompts), available_memory(device)
    if have is not None and need > have:
        raise ConfigError(
            f"{field}: evaluating {n_prompts} prompts needs about {human(need)} but {device} has "
            f"{human(have)} available; use fewer prompts"
        )
