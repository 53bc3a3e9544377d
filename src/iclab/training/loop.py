"""The training loop.

AdamW with linear warm-up and cosine decay, gradient clipping, the task's curriculum, and the task's loss
(``task.batch_loss``: squared error on every y prediction for regression, cross-entropy on every scored
next token for token tasks). Batches are a function of ``(seed, step)``, the schedule a function of
the step, and checkpoints hold weights, optimiser and RNG state, so a resumed run is bitwise equal
to an uninterrupted one on CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from iclab.config import RunConfig, read_run_config, save_config, to_dict
from iclab.errors import ConfigError, RunFolderError, TrainingError
from iclab.kinds import kind_of
from iclab.tasks import make_task
from iclab.tasks.pool import keep_pool_with_run, same_pool
from iclab.training.checkpoint import (
    clean_temporaries,
    latest_checkpoint,
    list_checkpoints,
    save_checkpoint,
    set_rng_state,
)
from iclab.training.device_memory import check_fits
from iclab.training.progress import Progress
from iclab.training.schedule import lr_at
from iclab.utils import (
    atomic_write_text,
    check_run_location,
    derive_seed,
    flatten,
    resolve_device,
)

INIT_STREAM = 2  # seed stream of the initial weights; tasks use 0 (train) and 1 (eval)

# fields that may change between a run and its resumption without breaking exactness of what is done
RESUMABLE_CHANGES = {
    "train.steps",
    "train.device",
    "train.threads",
    "train.log_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.trackers",
}


@dataclass
class TrainResult:
    step: int  # the step reached
    status: str  # "finished" or "interrupted" (SIGTERM / SIGINT: saved, resume with --resume)
    checkpoint: Path | None


def check_resumable(saved: RunConfig, new: RunConfig) -> None:
    a, b = flatten(to_dict(saved)), flatten(to_dict(new))
    for key in sorted(set(a) | set(b)):
        if key.startswith("eval.") or key in RESUMABLE_CHANGES:
            continue
        if key == "task.pool_file" and same_pool(a.get(key), b.get(key)):  # the run's copy, or the original
            continue
        if a.get(key) != b.get(key):
            raise ConfigError(
                f"{key}: differs from the run's saved config.yaml ({a.get(key)!r} there, "
                f"{b.get(key)!r} now); a resumed run keeps its config (only train.steps and "
                f"logging/device fields may change)"
            )


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on the matrices only, in ``train.adamw``'s implementation: the fused kernel (one
    pass over every parameter; what it saves: docs/benchmarks.md) or ``foreach``."""
    t = cfg.train
    trained = [p for p in model.parameters() if p.requires_grad]  # a fine-tuned run's base is frozen
    decay = [p for p in trained if p.dim() >= 2]  # matrices; not biases, norms
    no_decay = [p for p in trained if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    options = {"lr": t.lr, "betas": (t.beta1, t.beta2)}
    if t.adamw != "foreach":
        try:
            return torch.optim.AdamW(groups, **options, fused=True)
        except RuntimeError as e:  # no fused kernel for this device or dtype in this torch
            if t.adamw == "fused":
                why = f"fused AdamW is not available here ({e}); use auto or foreach"
                raise ConfigError(f"train.adamw: {why}") from None
    return torch.optim.AdamW(groups, **options, foreach=True)


def autocast(cfg: RunConfig, device: torch.device):
    """The context the forward pass and loss run in: bfloat16 autocast under ``train.precision: bf16``."""
    if cfg.train.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _StopSignal:
    """Turns SIGTERM / SIGINT / SIGUSR2 into a flag checked at step boundaries (SIGUSR2: the warning SLURM sends
    before a time limit when asked, as submitit does)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old = {}

    def __enter__(self) -> _StopSignal:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR2", signal.SIGTERM)):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _append_jsonl(f, record: dict) -> None:
    f.write(json.dumps(record) + "\n")
    f.flush()


def _reduce_step(loss: torch.Tensor, stop: bool, ctx) -> tuple[float, bool]:
    """Across ranks: the whole batch's loss (the sum of the weighted slice losses over the ranks' count) and
    whether any rank was asked to stop, in one all-reduce, so that every rank takes the same decisions."""
    import torch.distributed as dist

    both = torch.stack([loss.detach().float(), torch.tensor(float(stop), device=loss.device)]).to(ctx.comm_device)
    dist.all_reduce(both)
    return both[0].item() / ctx.world, bool(both[1].item() > 0)


@dataclass
class _Setup:
    """What a run trains with: the device, the data-parallel context, the task and its prompt kind, the model (and
    ``net``, the model as the step calls it: wrapped by DistributedDataParallel under torchrun), the optimiser."""

    device: torch.device
    ctx: object  # iclab.training.distributed.Context, or None in a single process
    task: object
    kind: object
    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    start: dict | None = None  # what start.json records (a new run that starts from another run's weights)

    @property
    def main(self) -> bool:  # rank 0 writes the run folder
        return self.ctx is None or self.ctx.main


def _setup(cfg: RunConfig, run_dir: Path, resume: bool = False) -> _Setup:
    """Everything that can be checked (threads, device, trackers, memory, the folder) before the first file is
    written; then the task, the initial weights (a function of ``train.seed``, or ``start.run``'s weights in a new
    run that starts from another) and the optimiser."""
    from iclab.kinds import build_run_network
    from iclab.training.distributed import context

    t = cfg.train
    if t.threads is not None:
        torch.set_num_threads(t.threads)
    device = resolve_device(t.device)
    ctx = context(t.device)  # torchrun: data-parallel over ctx.world processes (iclab.training.distributed)
    if ctx is not None:
        if t.batch_size % ctx.world:
            raise ConfigError(
                f"train.batch_size: {t.batch_size} must be divisible by the {ctx.world} processes "
                f"torchrun started (each trains on an equal slice of the batch)"
            )
        if device.type == "cuda":
            device = torch.device("cuda", ctx.local_rank)
    if t.trackers and (ctx is None or ctx.main):
        from iclab.training.trackers import check_trackers

        check_trackers(t.trackers)  # installed, before anything is written
    check_fits(cfg, device)
    check_run_location(run_dir)
    task = make_task(cfg.task)
    kind = kind_of(task)
    torch.manual_seed(derive_seed(t.seed, INIT_STREAM))  # initial weights (and dropout) follow train.seed
    model = build_run_network(cfg, task)
    start = None
    if cfg.start is not None and not resume:
        from iclab.training.start import load_start

        start = load_start(cfg, model)
        if cfg.finetune is not None:
            from iclab.models.petl import petl_formula, trainable_parameters

            count, formula = petl_formula(model, cfg.finetune)
            total = sum(p.numel() for p in model.parameters())
            start["finetune"] = {"method": cfg.finetune.method, "trainable": count, "total": total, "formula": formula}
            if count != trainable_parameters(model):  # the formula is the documented count: it must be the real one
                raise TrainingError(f"{cfg.finetune.method}: formula {formula} but {trainable_parameters(model)} train")
    model = model.to(device)
    net = model
    if ctx is not None:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return _Setup(device, ctx, task, kind, model, net, make_optimizer(model, cfg), start)


def _restore(cfg: RunConfig, run_dir: Path, s: _Setup) -> tuple[RunConfig, int, float, Path]:
    """Load the newest complete checkpoint into ``s``: ``(config, step, elapsed seconds, checkpoint)``; the metrics
    logged after it are dropped, since they are about to be recomputed."""
    saved = read_run_config(run_dir)
    check_resumable(saved, cfg)
    cfg = replace(cfg, task=saved.task)  # the same task; a pool file is the run's own copy
    if s.main:
        clean_temporaries(run_dir)
    ckpt = latest_checkpoint(run_dir, map_location=s.device)
    try:
        s.model.load_state_dict(ckpt.model)
        s.optimizer.load_state_dict(ckpt.optimizer)
    except (RuntimeError, ValueError, KeyError):
        raise RunFolderError(f"{ckpt.path}: checkpoint does not match the run's model") from None
    set_rng_state(ckpt.rng)
    if s.main:
        _keep_metrics_until(run_dir / "metrics.jsonl", ckpt.step)
    return cfg, ckpt.step, float(ckpt.state.get("elapsed_s", 0.0)), ckpt.path


def _keep_metrics_until(path: Path, step: int) -> None:
    kept = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            pass  # a line cut by a crash
    atomic_write_text(path, "".join(k + "\n" for k in kept))


def _begin(cfg: RunConfig, run_dir: Path, s: _Setup) -> RunConfig:
    """A new run: refuse a folder that holds one; make the folder and an empty training log."""
    if list_checkpoints(run_dir):
        raise RunFolderError(
            f"{run_dir}: already holds a trained run; pass --resume to continue it, "
            f"--out to choose another folder, or --overwrite to start again"
        )
    if s.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "metrics.jsonl", "")
        if s.start is not None:
            atomic_write_text(run_dir / "start.json", json.dumps(s.start, indent=1) + "\n")
        cfg = replace(cfg, task=keep_pool_with_run(cfg.task, run_dir))
    return cfg


class _Log:
    """The training log (``metrics.jsonl``, rank 0 only) and the trackers that mirror it."""

    def __init__(self, cfg: RunConfig, run_dir: Path, s: _Setup, resumed_at: int | None) -> None:
        self.file = open(run_dir / "metrics.jsonl", "a") if s.main else None
        self.trackers = None
        if cfg.train.trackers and s.main:
            from iclab.training.trackers import Trackers

            self.trackers = Trackers(cfg.train.trackers, run_dir, to_dict(cfg), cfg.name, resumed_at)

    def record(self, line: dict) -> None:
        if self.file is not None:
            _append_jsonl(self.file, line)
        if self.trackers is not None:
            self.trackers.log(line)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.trackers is not None:
            self.trackers.close()


def _step_loss(cfg: RunConfig, s: _Setup, batch, stop_requested: bool) -> tuple[torch.Tensor, float, bool]:
    """The step's loss ``(tensor, value, stop agreed by every rank)``. Under torchrun each rank takes its slice of the
    batch, its loss weighted by its share of the batch's loss terms, so the averaged gradient is the whole batch's."""
    t = cfg.train
    if s.ctx is None:
        with autocast(cfg, s.device):
            loss = s.task.batch_loss(s.net, batch.to(s.device), t.loss_on).float()
        return loss, loss.item(), False
    size = t.batch_size // s.ctx.world
    part = batch[s.ctx.rank * size : (s.ctx.rank + 1) * size]
    weight = s.ctx.world * s.task.loss_terms(part, t.loss_on) / max(s.task.loss_terms(batch, t.loss_on), 1)
    with autocast(cfg, s.device):
        loss = s.task.batch_loss(s.net, part.to(s.device), t.loss_on).float() * weight
    value, agreed = _reduce_step(loss, stop_requested, s.ctx)
    return loss, value, agreed


def train(
    cfg: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress_bar: bool | None = None,
    stream=None,
    on_checkpoint=None,
) -> TrainResult:
    """Train ``cfg``'s model on ``cfg``'s task, writing everything into ``run_dir``.

    ``resume`` continues from the newest complete checkpoint. ``stop_after`` stops (with a checkpoint)
    once that step is reached, as if interrupted; used to test exact resumption. ``on_checkpoint(path)`` is
    called after each checkpoint is written. Everything that can be checked (device, memory, the folder) is
    checked before the first file is written.
    """
    run_dir = Path(run_dir)
    t = cfg.train
    s = _setup(cfg, run_dir, resume)
    step, elapsed, last_ckpt = 0, 0.0, None
    if resume:
        cfg, step, elapsed, last_ckpt = _restore(cfg, run_dir, s)
    else:
        cfg = _begin(cfg, run_dir, s)
    if s.main:
        save_config(cfg, run_dir / "config.yaml")
    else:  # the other ranks train quietly
        stream, progress_bar = open(os.devnull, "w"), False
    val_prompts = s.task.eval_prompts(t.eval_prompts, cfg.eval.seed).to(s.device) if t.eval_every and s.main else None
    progress = Progress(t.steps, start=step, stream=stream, bar=progress_bar, every=t.log_every)
    log = _Log(cfg, run_dir, s, step if resume else None)
    clock = time.perf_counter()

    def seconds() -> float:
        return round(elapsed + time.perf_counter() - clock, 3)

    status = "finished"
    s.model.train()
    annealed = [m for m in s.model.modules() if hasattr(m, "at_step")]
    trained = [p for p in s.model.parameters() if p.requires_grad]  # e.g. a Gumbel-softmax temperature
    try:
        with _StopSignal() as stop:
            while step < t.steps:
                lr = lr_at(step, lr=t.lr, steps=t.steps, warmup_steps=t.warmup_steps, min_lr_ratio=t.min_lr_ratio)
                for group in s.optimizer.param_groups:
                    group["lr"] = lr
                for module in annealed:  # a pure function of the step, as the learning rate
                    module.at_step(step, t.steps)
                batch = s.task.train_batch(t.batch_size, t.seed, step)
                loss, loss_value, stop_agreed = _step_loss(cfg, s, batch, stop.received is not None)
                if not math.isfinite(loss_value):
                    where = f"the last checkpoint is {last_ckpt}" if last_ckpt else "no checkpoint was written yet"
                    raise TrainingError(
                        f"non-finite loss ({loss_value}) at step {step}; stopped before the "
                        f"optimiser step ({where}). Lower train.lr or check the task's scale"
                    )
                s.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    trained, t.grad_clip if t.grad_clip > 0 else float("inf"), foreach=True
                )
                s.optimizer.step()
                step += 1

                shown = {}
                if s.main and (step % t.log_every == 0 or step == t.steps):
                    shown = {"loss": loss_value, "lr": lr}
                    log.record(
                        {
                            "step": step,
                            "loss": loss_value,
                            "lr": lr,
                            "grad_norm": float(grad_norm),
                            **s.task.log_fields(step - 1, t.batch_size),
                            "elapsed_s": seconds(),
                        }
                    )
                if val_prompts is not None and (step % t.eval_every == 0 or step == t.steps):
                    logged, validation = s.kind.validate(s.task, s.model, val_prompts)  # the prompt kind's measure
                    s.model.train()
                    log.record({"step": step, **logged, "elapsed_s": seconds()})
                    shown.update(validation)
                progress.update(step, **shown)

                received = stop.received is not None if s.ctx is None else stop_agreed
                stopping = received or (stop_after is not None and step >= stop_after)
                if step % t.checkpoint_every == 0 or step == t.steps or stopping:
                    if s.main:
                        state = {"elapsed_s": seconds(), "config": to_dict(cfg)}
                        last_ckpt = save_checkpoint(run_dir, step, s.model, s.optimizer, state, t.keep_checkpoints)
                        if on_checkpoint is not None:
                            on_checkpoint(last_ckpt)
                    else:
                        last_ckpt = run_dir / "checkpoints" / f"step-{step:08d}"
                if stopping and step < t.steps:
                    status = "interrupted"
                    why = (stop.received or "a stop signal on another rank") if received else f"stop_after={stop_after}"
                    progress.write(f"{why}: saved {last_ckpt}; continue with --resume")
                    break
    finally:
        progress.close()
        log.close()
    return TrainResult(step=step, status=status, checkpoint=last_ckpt)
