"""Configs: YAML mapped onto dataclasses, strictly.

A run config has four sections: ``task`` and ``model`` (each a family's own config dataclass, chosen by
its ``name`` field from :data:`iclab.tasks.TASKS` / :data:`iclab.models.MODELS`), ``train`` and ``eval``.
Every field has a default, so a config file only names what it changes.

Parsing is strict (:mod:`iclab.schema`): an unknown key, a wrong type or an impossible value raises
:class:`~iclab.errors.ConfigError` naming the field (``train.lr``) and what is allowed. This module holds
the run config, ``--set`` overrides and YAML I/O; the generic machinery lives in :mod:`iclab.schema`.

Example::

    cfg = load_config("configs/linear.yaml", overrides=["train.steps=2000", "model.n_layer=2"])
    save_config(cfg, "runs/x/config.yaml")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from iclab.errors import ConfigError, RunFolderError
from iclab.learners import parse_learner_spec
from iclab.models import MODELS
from iclab.schema import (
    convert,
    family_config,
    from_dict,
    one_of,
    require,
    require_finite,
    require_non_negative,
    require_positive,
    to_dict,
)
from iclab.tasks import TASKS, make_task
from iclab.tasks.shifts import check_shift, parse_shift

__all__ = [
    "EvalConfig",
    "FinetuneConfig",
    "PruneConfig",
    "StartConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "config_to_yaml",
    "from_dict",
    "load_config",
    "read_run_config",
    "read_yaml",
    "run_config_from_dict",
    "save_config",
    "set_key",
    "to_dict",
]

# ----------------------------------------------------------------------------------------------
# the train and eval sections


@dataclass
class TrainConfig:
    steps: int = 5000  # optimiser steps in total
    batch_size: int = 64  # prompts per step
    lr: float = 1e-3  # peak learning rate (AdamW)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 200  # linear warm-up from 0 to lr (capped at steps)
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # clip the global gradient norm; 0 turns clipping off
    loss_on: Literal["all", "last"] = "all"  # "all" positions, or only the "last" (the query of von Oswald et al.)
    seed: int = 0  # the training batch at step t is a function of (seed, t)
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:N"
    threads: int | None = None  # torch CPU threads; null leaves torch's default
    # "bf16": the forward pass and loss under bfloat16 autocast (weights, gradients and AdamW stay float32);
    # "fp32": float32 throughout
    precision: Literal["fp32", "bf16"] = "fp32"
    # AdamW's implementation: "fused" (one kernel over every parameter: CPU and CUDA), "foreach", or "auto"
    # (fused where this torch has it for the device). The same update, rounded differently.
    adamw: Literal["auto", "fused", "foreach"] = "auto"
    log_every: int = 50  # steps between metrics.jsonl lines (and plain progress lines)
    eval_every: int = 250  # steps between quick held-out evaluations logged to metrics.jsonl; 0 = never
    eval_prompts: int = 512  # prompts in that quick held-out evaluation
    checkpoint_every: int = 1000  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    # experiment trackers fed the scalars of metrics.jsonl (optional extras): tensorboard, wandb (offline unless
    # WANDB_MODE says otherwise); [] = none
    trackers: list[str] = field(default_factory=list)

    def validate(self, path: str = "train") -> None:
        require_positive(
            self, path, "steps", "batch_size", "lr", "log_every", "checkpoint_every", "keep_checkpoints", "eval_prompts"
        )
        require_finite(self, path, "lr", "weight_decay", "min_lr_ratio", "grad_clip", "beta1", "beta2")
        require_non_negative(self, path, "weight_decay", "warmup_steps", "grad_clip", "eval_every", "seed")
        require(0 <= self.min_lr_ratio <= 1, f"{path}.min_lr_ratio", "must be between 0 and 1", self.min_lr_ratio)
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            require(0 <= value < 1, f"{path}.{name}", "must be in [0, 1)", value)
        if self.threads is not None:
            require_positive(self, path, "threads")
        for i, name in enumerate(self.trackers):
            require(name in ("tensorboard", "wandb"), f"{path}.trackers[{i}]", "must be tensorboard or wandb", name)
        require(
            len(set(self.trackers)) == len(self.trackers), f"{path}.trackers", "names a tracker twice", self.trackers
        )


@dataclass
class EvalConfig:
    n_prompts: int = 1280  # held-out prompts behind every curve
    batch_size: int = 256  # prompts per forward pass of the network
    seed: int = 1234  # the held-out set is a function of this seed alone (disjoint stream from training)
    # reference learners to compare against; null = the task's relevant learners (Bayes-optimal first).
    # Each item is a name ("least_squares"), a call ("ridge(lam=0.25)") or a mapping {name: ridge, lam: 0.25}.
    learners: list[Any] | None = None
    shifts: list[str] = field(default_factory=lambda: ["standard"])  # distribution shifts to evaluate on
    after_train: bool = True  # `iclab train` evaluates and writes the report when it finishes
    # decoding, for tasks evaluated by generating answers (arithmetic): 0 = greedy, else sample at this temperature
    temperature: float = 0.0
    top_k: int | None = None  # sample among the k most likely tokens (with temperature > 0); null = all

    def validate(self, path: str = "eval") -> None:
        require_positive(self, path, "n_prompts", "batch_size")
        require_non_negative(self, path, "seed", "temperature")
        if self.top_k is not None:
            require_positive(self, path, "top_k")
        if self.learners is not None:
            for i, spec in enumerate(self.learners):
                parse_learner_spec(spec, f"{path}.learners[{i}]")
        require(len(self.shifts) >= 1, f"{path}.shifts", "must name at least one shift", self.shifts)
        for i, shift in enumerate(self.shifts):
            parse_shift(shift, f"{path}.shifts[{i}]")


# ----------------------------------------------------------------------------------------------
# changing a trained run: where the weights start, which of them train, which units are pruned

PETL_METHODS = ("full", "readout", "lora", "adapter", "parallel_adapter", "prefix", "mam")
PRUNE_METHODS = ("optin", "magnitude", "random")


@dataclass
class StartConfig:
    """A run that starts from another run's weights instead of a fresh initialisation (``iclab finetune``,
    ``iclab prune``, ``iclab grow`` write it; the run folder's ``start.json`` records what was loaded)."""

    run: str = ""  # the finished run folder whose weights this run starts from
    step: int | None = None  # its checkpoint at this step; null = its last

    def validate(self, path: str = "start") -> None:
        require(bool(self.run), f"{path}.run", "must name the run folder to start from", self.run)
        if self.step is not None:
            require_non_negative(self, path, "step")


@dataclass
class FinetuneConfig:
    """Parameter-efficient fine-tuning (He et al. 2022): the started-from weights frozen, only the method's
    parameters trained. Every method starts as the base network (prefix: see docs/changing.md)."""

    method: str = "full"  # full, readout, lora, adapter, parallel_adapter, prefix, mam
    r: int = 4  # lora: rank of the update B A
    alpha: float = 8.0  # lora: the update is scaled by alpha / r
    # lora: the blocks' linear maps it adapts, by name or dotted suffix (qkv = attention's fused q, k, v map;
    # attn.proj, mlp.fc, mlp.proj; a memory layer's mem.qkv; the SSM's ssm.in_proj)
    targets: list[str] = field(default_factory=lambda: ["qkv"])
    bottleneck: int = 8  # adapter, parallel_adapter, mam: the adapter's hidden width
    scale: float = 4.0  # parallel_adapter, mam: the parallel adapter's output scale s (He et al.: 4)
    prefix_length: int = 4  # prefix, mam: learned key/value vectors prepended in every attention layer

    def validate(self, path: str = "finetune") -> None:
        require(self.method in PETL_METHODS, f"{path}.method", one_of(PETL_METHODS), self.method)
        require_positive(self, path, "r", "bottleneck", "prefix_length")
        require_finite(self, path, "alpha", "scale")
        require(len(self.targets) >= 1, f"{path}.targets", "must name at least one linear map", self.targets)


@dataclass
class PruneConfig:
    """One-shot pruning without retraining: attention heads and MLP neurons ranked on one batch, the least
    important removed (masks beside the weights) until ``keep`` of the prunable FLOPs remain."""

    method: str = "optin"  # optin (Khaki & Plataniotis 2024), magnitude, random
    keep: float = 0.5  # share of the heads' and neurons' FLOPs kept, in (0, 1]
    batch_size: int = 64  # prompts in the batch that ranks the units
    kl_weight: float = 1.0  # optin: weight of the output term against the later layers' Gram-matrix term
    seed: int = 0  # the ranking batch (and the random method's order)

    def validate(self, path: str = "prune") -> None:
        require(self.method in PRUNE_METHODS, f"{path}.method", one_of(PRUNE_METHODS), self.method)
        require(0 < self.keep <= 1, f"{path}.keep", "must be in (0, 1]", self.keep)
        require_positive(self, path, "batch_size")
        require_non_negative(self, path, "kl_weight", "seed")


# ----------------------------------------------------------------------------------------------
# the run config


def _default_task() -> Any:
    return TASKS["linear_regression"].Config()


def _default_model() -> Any:
    return MODELS["transformer"]()


@dataclass
class RunConfig:
    """Everything that defines a run; ``config.yaml`` in the run folder is this, fully resolved."""

    name: str = "run"  # the run folder is runs/<name> unless --out says otherwise (a plain name, not a path)
    # modules (dotted names) or .py files that register extra tasks, models, learners or analysis instruments;
    # imported before the rest of the config is read, so a run of your own family is one config away
    imports: list[str] = field(default_factory=list)
    task: Any = field(default_factory=_default_task)  # a task family's Config, chosen by task.name
    model: Any = field(default_factory=_default_model)  # a model family's Config, chosen by model.name
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    start: StartConfig | None = None  # null: fresh weights from train.seed; else another run's
    finetune: FinetuneConfig | None = None  # null: every parameter trains
    prune: PruneConfig | None = None  # null: nothing pruned

    def validate(self, path: str = "") -> None:
        require(
            bool(self.name)
            and not set(self.name) & set("/\\")
            and self.name not in (".", "..")
            and not self.name.startswith("-"),
            "name",
            "must be a plain folder name (no '/', not '.' or '..')",
            self.name,
        )
        task = make_task(self.task)  # cheap: tasks build their pools and feature maps on first use
        from iclab.kinds import kind_of

        kind = kind_of(task)
        kind.check_model(self.model, task)
        kind.check_config(self, task)
        for i, shift in enumerate(self.eval.shifts):  # each shift and learner must apply to this task
            check_shift(shift, task, f"eval.shifts[{i}]")
        for i, spec in enumerate(self.eval.learners or []):
            parse_learner_spec(spec, f"eval.learners[{i}]", task=task)
        for section in ("finetune", "prune"):
            require(
                getattr(self, section) is None or self.start is not None,
                section,
                "changes a trained network: set start.run to the run it starts from",
                to_dict(getattr(self, section)) if getattr(self, section) is not None else None,
            )


def run_config_from_dict(data: Any) -> RunConfig:
    """Parse a whole run config (as read from YAML) strictly."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping with sections task, model, train, eval; got {data!r}")
    data = dict(data)
    imports = import_extensions(data.get("imports", []))
    task = family_config(TASKS, "task", data.pop("task", None), "linear_regression")
    model = family_config(MODELS, "model", data.pop("model", None), "transformer")
    known = ["name", "task", "model", "train", "eval", "imports", "start", "finetune", "prune"]
    for key in data:
        if key not in known:
            raise ConfigError(f"{key}: unknown section; allowed: {', '.join(known)}")
    cfg = RunConfig(
        name=convert(str, data.get("name", "run"), "name"),
        imports=imports,
        task=task,
        model=model,
        train=from_dict(TrainConfig, data.get("train"), "train"),
        eval=from_dict(EvalConfig, data.get("eval"), "eval"),
        start=_optional(StartConfig, data.get("start"), "start"),
        finetune=_optional(FinetuneConfig, data.get("finetune"), "finetune"),
        prune=_optional(PruneConfig, data.get("prune"), "prune"),
    )
    cfg.validate()
    return cfg


def _optional(cls: type, data: Any, path: str) -> Any:
    """An optional section: null stays null, a mapping is parsed strictly."""
    return None if data is None else from_dict(cls, data, path)


def import_extensions(entries: Any, field: str = "imports") -> list[str]:
    """Import the modules a config's ``imports`` names (so their ``@TASKS.register`` & co. run) and return
    the entries as they are saved: ``.py`` files with absolute paths, module names as given. A module name
    is looked up on ``sys.path`` and in the working folder."""
    import hashlib
    import importlib
    import importlib.util
    import sys

    entries = convert(list[str], entries, field)
    resolved = []
    for i, entry in enumerate(entries):
        where = f"{field}[{i}]" if field == "imports" else f"{field} {entry}"
        try:
            if entry.endswith(".py"):
                path = Path(entry).expanduser().resolve()
                if not path.is_file():
                    raise ConfigError(f"{where}: {entry}: no such file")
                digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]  # one module name per file, every process
                module = f"iclab_ext_{path.stem}_{digest}"
                if module not in sys.modules:
                    spec = importlib.util.spec_from_file_location(module, path)
                    mod = importlib.util.module_from_spec(spec)
                    sys.modules[module] = mod
                    try:
                        spec.loader.exec_module(mod)
                    except BaseException:
                        del sys.modules[module]
                        raise
                resolved.append(str(path))
            else:
                if "" not in sys.path and str(Path.cwd()) not in sys.path:
                    sys.path.append(str(Path.cwd()))
                importlib.import_module(entry)
                resolved.append(entry)
        except ImportError as e:
            raise ConfigError(f"{where}: cannot import {entry!r}: {e}") from None
    return resolved


def _switch_family(data: dict, section: str, name: Any) -> None:
    """``--set model.name=X`` (or ``task.name=X``) on a config of another family: keep the fields the new
    family also has (sizes, ``n_dims``, ...), drop the rest (and an encoder the new model does not take), so
    one switch moves a recipe to another family. A choice (a flag or a named option, not a number) left at
    the old family's default gives way to the new family's own default: a transformer's ``token_shift:
    false`` is its default, not a wish, and a memory layer keeps its token shift on. Unknown names are left
    for validation to report."""
    from dataclasses import MISSING, fields

    old = data.get(section)
    if not isinstance(old, dict) or old.get("name", name) == name:
        return
    registry = MODELS if section == "model" else TASKS
    family = registry.get(name) if isinstance(name, str) else None
    if family is None:
        return
    config_cls = family if section == "model" else family.Config
    old_family = registry.get(old["name"]) if isinstance(old.get("name"), str) else None
    old_cls = old_family if section == "model" or old_family is None else old_family.Config
    old_defaults = {f.name: f.default for f in fields(old_cls) if f.default is not MISSING} if old_cls else {}

    def choice_at_default(key: str, value: Any) -> bool:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return not is_number and key in old_defaults and value == old_defaults[key]

    allowed = {f.name for f in fields(config_cls)} - {"n_positions"}
    kept = {k: v for k, v in old.items() if k in allowed and not choice_at_default(k, v)}
    if section == "model" and kept.get("encoder") not in config_cls.encoders:
        kept.pop("encoder", None)
    data[section] = kept


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a raw config mapping. Setting
    ``model.name`` or ``task.name`` to another family keeps only the fields that family shares."""
    import yaml

    data = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set: expected key=value (e.g. train.steps=1000), got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        set_key(data, key, value, f"--set {key}")
    return data


FITTED_TO_TASK = ("n_positions", "d_var")  # model fields a null resolves from the task


def release_fitted_positions(data: dict, keys: list[str]) -> dict:
    """A recipe's config with the model fields fitted to its task (``model.n_positions``, a Transformer Program's
    ``model.d_var``) back to null when each is exactly what the recipe's own task needs (resolved, not chosen) and
    ``keys`` (the overrides about to apply) change the task: they are then fitted to the changed task
    (``--set task.program=hist`` on a recipe built for ``sort``)."""
    model = data.get("model")
    if not any(k.startswith("task.") for k in keys) or not isinstance(model, dict):
        return data
    if data.get("start"):  # the started-from weights fix the model's sizes
        return data
    for name in FITTED_TO_TASK:
        if model.get(name) is None or f"model.{name}" in keys:
            continue
        probe = _deep_copy(data)
        probe["model"][name] = None
        try:
            fitted = getattr(run_config_from_dict(probe).model, name)
        except ConfigError:
            continue
        if fitted == model[name]:
            data = _deep_copy(data)
            data["model"][name] = None
            model = data["model"]
    return data


def set_key(data: dict, key: str, value: Any, where: str | None = None) -> None:
    """Set the dotted ``key`` (``train.steps``) of a raw config mapping to ``value`` in place, making
    sections as needed; ``model.name`` / ``task.name`` switch the family as :func:`apply_overrides` does.
    Whether the key and value are allowed is for parsing to say."""
    parts = key.split(".")
    if len(parts) == 2 and parts[0] in ("model", "task") and parts[1] == "name":
        _switch_family(data, parts[0], value)
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{where or key}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = _deep_copy(value)


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def read_yaml(path: str | Path) -> Any:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or start from defaults), apply ``--set`` overrides, parse strictly."""
    data = read_yaml(path) if path is not None else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with sections task, model, train, eval")
    return run_config_from_dict(apply_overrides(data, overrides or []))


def config_to_yaml(cfg: RunConfig) -> str:
    import yaml

    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write the resolved config atomically (temp file, then rename)."""
    from iclab.utils import atomic_write_text

    atomic_write_text(Path(path), config_to_yaml(cfg))


def read_run_config(run_dir: Path):
    """The resolved config saved in a run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder")
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RunFolderError(f"{path}: missing; is {run_dir} a run folder made by `iclab train`?")
    try:
        return run_config_from_dict(read_yaml(path))
    except ConfigError as e:
        raise RunFolderError(f"{path}: {e}") from None
