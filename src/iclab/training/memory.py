"""How much memory a run's training step needs, from its config alone, and a refusal when the device lacks it.

The estimate (bytes, float32 training):

- parameters: counted exactly by building the network on PyTorch's ``meta`` device (no memory is used);
- gradients: one float per parameter; optimiser: AdamW keeps two more;
- activations: the same ``meta`` forward pass of one training batch at the full prompt length, summing the
  output of every module (every hook point included) and doubling it for what autograd keeps for the
  backward pass;
- data: the batch (inputs, labels and the encoded tokens) and the held-out prompts of ``train.eval_every``.

It is a planning figure, not a bound: it is within a factor of about 3 of what training uses (measured as
the growth of the process's peak memory over two training steps, 1 thread, ``python
benchmarks/memory_estimate.py``: the demo's config is estimated at 77 MB and used 121 MB; Garg et al.'s
full-scale transformer, 12 x 256, 41 points, batch 64, is estimated at 3.6 GB and used 1.4 GB; numbers in
docs/benchmarks.md), and it is meant to catch configs that cannot run at all
(``task.n_dims=1000000000``) before anything is written. The memory of
the reference learners at evaluation is not part of it (least squares keeps a ``d x d`` matrix per prompt and
prefix, so ``eval.n_prompts`` x ``task.n_points`` x ``task.n_dims``^2 doubles).
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT = 4  # bytes per float32


@dataclass
class MemoryEstimate:
    parameters: int  # bytes
    gradients: int
    optimizer: int
    activations: int
    data: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations + self.data

    def dominant(self) -> str:
        parts = {"parameters": self.parameters + self.gradients + self.optimizer, "activations": self.activations,
                 "data": self.data}
        return max(parts, key=parts.get)


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.3g} PB"


def estimate_step_memory(cfg) -> MemoryEstimate:
    """The memory one training step of ``cfg`` needs (see the module docstring)."""
    import torch

    from iclab.models import build_model
    from iclab.models.encoders import ENCODERS
    from iclab.tasks import make_task

    t, task_cfg = cfg.train, cfg.task
    task = make_task(task_cfg)
    if task.prompt_kind == "tokens":
        return _estimate_token_step(cfg, task)
    b, n, d = t.batch_size, task_cfg.n_points, task_cfg.n_dims
    classes = task.n_classes
    label_width = classes or 1
    encoder = ENCODERS[cfg.model.encoder]
    token_floats = b * (2 * n - 1) * encoder.width(d, label_width)  # every encoder makes 2N - 1 tokens
    data = FLOAT * (b * n * (d + label_width) + token_floats)
    if t.eval_every:
        data += FLOAT * t.eval_prompts * n * (d + 2 * label_width)
    with torch.device("meta"):
        model = build_model(cfg.model, d, classes)
        n_params, outputs = _meta_forward(model, torch.empty(b, n, d), torch.empty(b, n))
    return MemoryEstimate(parameters=FLOAT * n_params, gradients=FLOAT * n_params, optimizer=2 * FLOAT * n_params,
                          activations=2 * FLOAT * outputs, data=data)


def _meta_forward(model, *inputs) -> tuple[int, int]:
    """Parameters, and the elements of every module's output in one forward pass (on the meta device)."""
    import torch

    n_params = sum(p.numel() for p in model.parameters())
    outputs = [0]

    def count(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            outputs[0] += output.numel()
        elif isinstance(output, tuple):
            outputs[0] += sum(o.numel() for o in output if isinstance(o, torch.Tensor))

    handles = [m.register_forward_hook(count) for m in model.modules()]
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return n_params, outputs[0]


def _estimate_token_step(cfg, task) -> MemoryEstimate:
    """A language model's step: token ids, logits and the n-gram layers' (B, T, T) patterns among the activations."""
    import torch

    from iclab.models import build_for_task

    b, n, v = cfg.train.batch_size, task.max_tokens, task.vocab_size
    data = 8 * b * n * (3 + v)  # tokens, targets, string index, valid-symbol masks
    if cfg.train.eval_every:
        data += 8 * cfg.train.eval_prompts * n * (3 + v)
    with torch.device("meta"):
        model = build_for_task(cfg.model, task)
        n_params, outputs = _meta_forward(model.backbone, torch.empty(b, n, dtype=torch.long), _token_layout(n))
    return MemoryEstimate(parameters=FLOAT * n_params, gradients=FLOAT * n_params, optimizer=2 * FLOAT * n_params,
                          activations=2 * FLOAT * outputs, data=data)


def _token_layout(n: int):
    import torch

    from iclab.models.encoders import Layout

    positions = torch.arange(n)
    return Layout(positions=positions, readout=positions, attn_mask=None, token_ids=torch.empty(1, n, dtype=torch.long))


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


_FIELDS = {
    "parameters": "model.n_embd, model.n_layer and task.n_dims (the read-in)",
    "activations": "train.batch_size, task.n_points and model.n_embd",
    "data": "train.batch_size, task.n_points, task.n_dims and train.eval_prompts",
}
_TOKEN_FIELDS = {
    "parameters": "model.n_embd and model.n_layer",
    "activations": "train.batch_size, task.max_length and model.n_embd",
    "data": "train.batch_size, task.max_length and train.eval_prompts",
}


def check_fits(cfg, device) -> MemoryEstimate:
    """Raise :class:`~iclab.errors.ConfigError` (one line, naming the fields to lower) when a training step of
    ``cfg`` needs more memory than ``device`` has available."""
    from iclab.errors import ConfigError

    fields = _TOKEN_FIELDS if _is_tokens(cfg.task) else _FIELDS
    est = _cheap_bound(cfg)
    have = available_memory(device)
    if have is not None and est > have:  # hopeless before any model is built
        raise ConfigError(f"train: a training step needs at least {human(est)} (the data batch alone) but {device} has "
                          f"{human(have)} available; lower {fields['data']}")
    full = _estimate_once(cfg)
    if have is not None and full.total > have:
        raise ConfigError(
            f"train: a training step needs about {human(full.total)} (parameters, gradients and optimiser "
            f"{human(full.parameters + full.gradients + full.optimizer)}, activations {human(full.activations)}, "
            f"data {human(full.data)}) but {device} has {human(have)} available; lower {fields[full.dominant()]}")
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
    """Bytes to evaluate on ``n_prompts`` held-out prompts: the prompts (float32, and the float64 copies the
    reference learners work on) and a few ``d x d`` matrices per prompt (least squares, ridge, GD keep one per
    prompt while they sweep the prefixes)."""
    if _is_tokens(task_cfg):  # token prompts: a few learners' (T, V) distributions in float64, and
        from iclab.tasks import make_task  # the n-gram learner's (64, T, T) masks

        task = make_task(task_cfg)
        n, v = task.max_tokens + 1, task.vocab_size
        return n_prompts * n * v * 8 * 8 + 64 * n * n * 4 * 4
    n, d = task_cfg.n_points, task_cfg.n_dims
    return n_prompts * (3 * n * (d + 2) * (FLOAT + 8) + 4 * d * d * 8)


def check_eval_fits(task_cfg, n_prompts: int, device, field: str = "eval.n_prompts") -> None:
    """Raise :class:`~iclab.errors.ConfigError` naming ``field`` when evaluating on ``n_prompts`` prompts
    needs more memory than ``device`` has available."""
    from iclab.errors import ConfigError

    need, have = estimate_eval_memory(task_cfg, n_prompts), available_memory(device)
    if have is not None and need > have:
        raise ConfigError(f"{field}: evaluating {n_prompts} prompts needs about {human(need)} but {device} has "
                          f"{human(have)} available; use fewer prompts")


def _cheap_bound(cfg) -> int:
    """The data batch's size, computed without building anything (guards the meta model against sizes so large
    that even counting them is slow)."""
    t, task = cfg.train, cfg.task
    if _is_tokens(task):
        from iclab.tasks import make_task

        return 8 * t.batch_size * (make_task(task).max_tokens + 1)
    return FLOAT * t.batch_size * task.n_points * (task.n_dims + 1)


def _is_tokens(task_cfg) -> bool:
    from iclab.tasks import is_token_task

    return is_token_task(task_cfg)
