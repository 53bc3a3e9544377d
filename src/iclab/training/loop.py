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
from iclab.models import build_for_task
from iclab.tasks import make_task
from iclab.tasks.pool import keep_pool_with_run, same_pool
from iclab.training.checkpoint import (
    clean_temporaries,
    latest_checkpoint,
    list_checkpoints,
    save_checkpoint,
    set_rng_state,
)
from iclab.training.memory import check_fits
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
RESUMABLE_CHANGES = {"train.steps", "train.device", "train.threads", "train.log_every", "train.eval_every",
                     "train.checkpoint_every", "train.keep_checkpoints", "train.trackers"}


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
            raise ConfigError(f"{key}: differs from the run's saved config.yaml ({a.get(key)!r} there, "
                              f"{b.get(key)!r} now); a resumed run keeps its config (only train.steps and "
                              f"logging/device fields may change)")


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    t = cfg.train
    decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices; not biases, norms
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), foreach=True)


class _StopSignal:
    """Turns SIGTERM / SIGINT / SIGUSR2 into a flag checked at step boundaries (SIGUSR2: the warning SLURM sends
    before a time limit when asked, as submitit does)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old = {}

    def __enter__(self) -> "_StopSignal":
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


def train(cfg: RunConfig, run_dir: Path, *, resume: bool = False, stop_after: int | None = None,
          progress_bar: bool | None = None, stream=None, on_checkpoint=None) -> TrainResult:
    """Train ``cfg``'s model on ``cfg``'s task, writing everything into ``run_dir``.

    ``resume`` continues from the newest complete checkpoint. ``stop_after`` stops (with a checkpoint)
    once that step is reached, as if interrupted; used to test exact resumption. ``on_checkpoint(path)`` is
    called after each checkpoint is written. Everything that can be checked (device, memory, the folder) is
    checked before the first file is written.
    """
    from iclab.training.distributed import context

    run_dir = Path(run_dir)
    t = cfg.train
    if t.threads is not None:
        torch.set_num_threads(t.threads)
    device = resolve_device(t.device)
    ctx = context(t.device)  # torchrun: data-parallel over ctx.world processes (iclab.training.distributed)
    if ctx is not None:
        if t.batch_size % ctx.world:
            raise ConfigError(f"train.batch_size: {t.batch_size} must be divisible by the {ctx.world} processes "
                              f"torchrun started (each trains on an equal slice of the batch)")
        if device.type == "cuda":
            device = torch.device("cuda", ctx.local_rank)
    main = ctx is None or ctx.main  # rank 0 writes the run folder
    if t.trackers and main:
        from iclab.training.trackers import check_trackers

        check_trackers(t.trackers)  # installed, before anything is written
    check_fits(cfg, device)
    check_run_location(run_dir)
    task = make_task(cfg.task)
    torch.manual_seed(derive_seed(t.seed, INIT_STREAM))  # initial weights (and dropout) follow train.seed
    model = build_for_task(cfg.model, task).to(device)
    optimizer = make_optimizer(model, cfg)
    net = model
    if ctx is not None:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    metrics_path = run_dir / "metrics.jsonl"

    step, elapsed = 0, 0.0
    last_ckpt: Path | None = None
    if resume:
        saved = read_run_config(run_dir)
        check_resumable(saved, cfg)
        cfg = replace(cfg, task=saved.task)  # the same task; a pool file is the run's own copy
        if main:
            clean_temporaries(run_dir)
        ckpt = latest_checkpoint(run_dir, map_location=device)
        try:
            model.load_state_dict(ckpt.model)
            optimizer.load_state_dict(ckpt.optimizer)
        except (RuntimeError, ValueError, KeyError):
            raise RunFolderError(f"{ckpt.path}: checkpoint does not match the run's model") from None
        set_rng_state(ckpt.rng)
        step, elapsed, last_ckpt = ckpt.step, float(ckpt.state.get("elapsed_s", 0.0)), ckpt.path
        if main:  # drop metrics logged after the checkpoint: they are about to be recomputed
            kept = []
            for line in metrics_path.read_text().splitlines() if metrics_path.is_file() else []:
                try:
                    if json.loads(line).get("step", 0) <= step:
                        kept.append(line)
                except json.JSONDecodeError:
                    pass
            atomic_write_text(metrics_path, "".join(k + "\n" for k in kept))
    else:
        if list_checkpoints(run_dir):
            raise RunFolderError(f"{run_dir}: already holds a trained run; pass --resume to continue it, "
                                 f"--out to choose another folder, or --overwrite to start again")
        if main:
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(metrics_path, "")
            cfg = replace(cfg, task=keep_pool_with_run(cfg.task, run_dir))
    if main:
        save_config(cfg, run_dir / "config.yaml")
    else:  # the other ranks train quietly
        stream, progress_bar = open(os.devnull, "w"), False

    val_prompts = task.eval_prompts(t.eval_prompts, cfg.eval.seed).to(device) if t.eval_every and main else None
    progress = Progress(t.steps, start=step, stream=stream, bar=progress_bar, every=t.log_every)
    trackers = None
    if t.trackers and main:
        from iclab.training.trackers import Trackers

        trackers = Trackers(t.trackers, run_dir, to_dict(cfg), cfg.name, step if resume else None)

    def record(log, line: dict) -> None:
        _append_jsonl(log, line)
        if trackers is not None:
            trackers.log(line)

    status = "finished"
    clock = time.perf_counter()

    def state() -> dict:
        return {"elapsed_s": elapsed + time.perf_counter() - clock, "config": to_dict(cfg)}

    model.train()
    with _StopSignal() as stop, (open(metrics_path, "a") if main else contextlib.nullcontext()) as log:
        while step < t.steps:
            lr = lr_at(step, lr=t.lr, steps=t.steps, warmup_steps=t.warmup_steps, min_lr_ratio=t.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = task.train_batch(t.batch_size, t.seed, step)
            stop_agreed = False
            if ctx is None:
                loss = task.batch_loss(net, batch.to(device), t.loss_on)
                loss_value = loss.item()
            else:  # this rank's slice, its loss weighted by its share of the batch's loss terms
                size = t.batch_size // ctx.world
                part = batch[ctx.rank * size:(ctx.rank + 1) * size]
                weight = ctx.world * task.loss_terms(part, t.loss_on) / max(task.loss_terms(batch, t.loss_on), 1)
                loss = task.batch_loss(net, part.to(device), t.loss_on) * weight
                loss_value, stop_agreed = _reduce_step(loss, stop.received is not None, ctx)
            if not math.isfinite(loss_value):
                where = f"the last checkpoint is {last_ckpt}" if last_ckpt else "no checkpoint was written yet"
                progress.close()
                if trackers is not None:
                    trackers.close()
                raise TrainingError(f"non-finite loss ({loss_value}) at step {step}; stopped before the optimiser "
                                    f"step ({where}). Lower train.lr or check the task's scale")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip if t.grad_clip > 0 else
                                                       float("inf"), foreach=True)
            optimizer.step()
            step += 1

            fields = {}
            if main and (step % t.log_every == 0 or step == t.steps):
                fields = {"loss": loss_value, "lr": lr}
                record(log, {
                    "step": step, "loss": loss_value, "lr": lr, "grad_norm": float(grad_norm),
                    **task.log_fields(step - 1, t.batch_size),
                    "elapsed_s": round(elapsed + time.perf_counter() - clock, 3),
                })
            if val_prompts is not None and (step % t.eval_every == 0 or step == t.steps):
                errs = task.validation_errors(model, val_prompts)
                model.train()
                record(log, {"step": step, "val_err_by_k": [round(e, 6) for e in errs],
                                    "elapsed_s": round(elapsed + time.perf_counter() - clock, 3)})
                fields["val_err_last"] = errs[-1]
            progress.update(step, **fields)

            received = stop.received is not None if ctx is None else stop_agreed
            stopping = received or (stop_after is not None and step >= stop_after)
            if step % t.checkpoint_every == 0 or step == t.steps or stopping:
                if main:
                    last_ckpt = save_checkpoint(run_dir, step, model, optimizer, state(), t.keep_checkpoints)
                    if on_checkpoint is not None:
                        on_checkpoint(last_ckpt)
                else:
                    last_ckpt = run_dir / "checkpoints" / f"step-{step:08d}"
            if stopping and step < t.steps:
                status = "interrupted"
                why = (stop.received or "a stop signal on another rank") if received else f"stop_after={stop_after}"
                progress.write(f"{why}: saved {last_ckpt}; continue with --resume")
                break
    progress.close()
    if trackers is not None:
        trackers.close()
    return TrainResult(step=step, status=status, checkpoint=last_ckpt)
