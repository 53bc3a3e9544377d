"""A sweep file: a base config plus axes, read strictly and expanded into named points.

    name: raventos2023                # the sweep folder: sweeps/<name>/ (default: the file's stem)
    recipe: raventos2023_task_pool    # the base: a recipe (with optional recipe_args: {...}) ...
    # config: base.yaml               # ... or a config file (relative to the sweep file), or an inline mapping
    set:                              # overrides applied to every point
      train.steps: 1500
    grid:                             # every combination
      task.pool_size: [1, 4, 16, 64]  # (recipe_args.NAME: [...] sweeps an argument of the recipe)
    zip:                              # lists of equal length, varied together (a mapping, or a list of them)
      model.n_layer: [2, 4]
      model.n_embd: [32, 64]
    seeds: [0, 1, 2]                  # shorthand for a grid axis over train.seed
    executor: {name: local, jobs: null, threads: 1}
    slurm: {partition: gpu, time_min: 120, cpus_per_task: 4, gpus_per_node: 1, mem_gb: 32}
    compare: {x: task.pool_size, by: null, panel: null, metric: null, k: null, log_x: true}

Every point is an ordinary run config; a bad axis (an unknown key, a value of the wrong type, an empty
list, zipped lists of different lengths) fails here, naming the axis, before anything is written.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from iclab.errors import ConfigError
from iclab.schema import from_dict, require, require_positive

__all__ = [
    "ComparePlan",
    "ExecutorConfig",
    "Point",
    "SlurmConfig",
    "Sweep",
    "available_cores",
    "load_sweep",
    "point_name",
    "sweep_from_dict",
]

SWEEP_KEYS = ("name", "recipe", "recipe_args", "config", "set", "grid", "zip", "seeds", "executor", "slurm", "compare")


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, so a cgroup or taskset limit counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class ExecutorConfig:
    name: Literal["local", "slurm"] = "local"  # local: a process pool on this machine; slurm: job arrays (submitit)
    jobs: int | None = None  # local: runs at once; null = the cores divided by `threads`
    threads: int | None = None  # torch threads per run; null = 1 locally, slurm.cpus_per_task on SLURM

    def validate(self, path: str = "executor") -> None:
        if self.jobs is not None:
            require_positive(self, path, "jobs")
        if self.threads is not None:
            require_positive(self, path, "threads")


@dataclass
class SlurmConfig:
    """Resources of each array task (submitit's SlurmExecutor parameters)."""

    partition: str | None = None
    time_min: int = 60  # wall-clock limit of one array task; a run that reaches it is checkpointed and requeued
    cpus_per_task: int = 2
    gpus_per_node: int = 0
    mem_gb: float | None = None
    array_parallelism: int = 256  # array tasks running at once
    max_requeues: int = 3  # timeouts after which a task is no longer requeued (preemptions do not count)
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: list[str] = field(default_factory=list)  # shell lines run before the job (module load ..., source venv)
    additional: dict[str, Any] = field(default_factory=dict)  # any other sbatch option, e.g. {mail-type: END}
    use_srun: bool = True  # run the task through srun, as submitit does by default

    def validate(self, path: str = "slurm") -> None:
        require_positive(self, path, "time_min", "cpus_per_task", "array_parallelism")
        require(self.gpus_per_node >= 0, f"{path}.gpus_per_node", "must be >= 0", self.gpus_per_node)
        require(self.max_requeues >= 0, f"{path}.max_requeues", "must be >= 0", self.max_requeues)
        if self.mem_gb is not None:
            require(self.mem_gb > 0, f"{path}.mem_gb", "must be positive", self.mem_gb)


@dataclass
class ComparePlan:
    """What ``iclab compare`` plots for this sweep by default."""

    x: str | None = None  # the swept key on the x-axis (default: the first axis)
    by: str | None = None  # one line per value of this key (default: the second axis, seeds excluded)
    panel: str | None = None  # one panel per value of this key (beside one per shift)
    metric: str | None = None  # e.g. "error@k=15", "accuracy", "tvd" (default: the task's main metric)
    k: int | None = None  # the k of error@k for regression (default: the last k)
    log_x: bool | None = None  # null: log scale when every x is positive and they span a factor of 10
    shifts: list[str] | None = None  # evaluate every point on these shifts too (e.g. [standard, fresh_tasks])


@dataclass
class Point:
    name: str  # the run folder's name inside the sweep folder
    values: dict[str, Any]  # swept key -> value
    config: dict[str, Any]  # the run config as a plain mapping (fully resolved)


@dataclass
class Sweep:
    name: str
    base: dict[str, Any]  # the base run config (resolved mapping)
    axes: list[list[str]]  # groups of keys varied together (a grid axis is a group of one)
    points: list[Point]
    executor: ExecutorConfig
    slurm: SlurmConfig
    compare: ComparePlan
    source: dict[str, Any]  # the sweep file as read (for the record)

    @property
    def keys(self) -> list[str]:
        return [k for group in self.axes for k in group]

    def point(self, name: str) -> Point:
        for p in self.points:
            if p.name == name:
                return p
        raise ConfigError(f"sweep {self.name!r} has no point {name!r}")


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep file (YAML) strictly; relative config paths are relative to the file."""
    from iclab.config import read_yaml

    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a base (recipe: or config:) and axes (grid:, zip:, seeds:)")
    try:
        return sweep_from_dict(data, default_name=path.stem, base_dir=path.parent)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _as_mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of config keys to values, got {value!r}")
    return value


def _base_config(data: dict, base_dir: Path, swept_args: dict | None = None) -> dict:
    """The base config: the recipe called with ``recipe_args`` (updated by the point's ``recipe_args.*`` axes,
    ``swept_args``), or the config file or mapping."""
    from iclab.config import read_yaml, to_dict

    if "recipe" in data and "config" in data:
        raise ConfigError("give recipe: or config: as the base, not both")
    if "recipe" in data:
        from iclab.recipes import RECIPES

        name = data["recipe"]
        if not isinstance(name, str) or name not in RECIPES:
            raise ConfigError(f"recipe: unknown recipe {name!r}; available: {', '.join(RECIPES)}")
        args = {**_as_mapping(data.get("recipe_args"), "recipe_args"), **(swept_args or {})}
        try:
            return to_dict(RECIPES[name](**args))
        except TypeError as e:
            raise ConfigError(f"recipe_args: {e}") from None
    if "recipe_args" in data:
        raise ConfigError("recipe_args: given without recipe:")
    config = data.get("config")
    if config is None:
        return {}
    if isinstance(config, str):
        file = Path(config).expanduser()
        base = read_yaml(file if file.is_absolute() else base_dir / file)
        if not isinstance(base, dict):
            raise ConfigError(f"config: {config}: expected a mapping with sections task, model, train, eval")
        return base
    if isinstance(config, dict):
        return config
    raise ConfigError(f"config: expected a config file name or an inline mapping, got {config!r}")


def _axis_values(key: str, values: Any, where: str) -> list:
    if not isinstance(key, str) or not key or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
        raise ConfigError(f"{where}: {key!r} is not a config key (write it dotted, e.g. task.pool_size)")
    if not isinstance(values, list):
        raise ConfigError(f"{where}.{key}: expected a list of values, got {values!r}")
    if not values:
        raise ConfigError(f"{where}.{key}: is empty; an axis needs at least one value")
    return values


def sweep_from_dict(data: dict, default_name: str = "sweep", base_dir: Path | None = None) -> Sweep:
    from iclab.config import (
        release_fitted_positions,
        run_config_from_dict,
        set_key,
        to_dict,
    )

    for key in data:
        if key not in SWEEP_KEYS:
            raise ConfigError(f"{key}: unknown sweep field; allowed: {', '.join(SWEEP_KEYS)}")
    name = data.get("name", default_name)
    require(
        isinstance(name, str)
        and bool(name)
        and not set(name) & set("/\\")
        and name not in (".", "..")
        and not name.startswith("-"),
        "name",
        "must be a plain folder name (no '/', not '.' or '..')",
        name,
    )
    base_dir = base_dir or Path.cwd()
    overrides = _as_mapping(data.get("set"), "set")

    def make_base(swept_args: dict | None = None) -> dict:
        config = _base_config(data, base_dir, swept_args)
        if "recipe" in data:  # positions the recipe fitted to its own task are fitted again to the changed one
            config = release_fitted_positions(config, [str(k) for k in overrides] + keys)
        for key, value in overrides.items():
            set_key(config, str(key), value, f"set.{key}")
        return config

    axes: list[tuple[list[str], list[tuple]]] = []  # (keys, list of value tuples)
    seen: dict[str, str] = {}

    def claim(key: str, where: str) -> None:
        if key in seen:
            raise ConfigError(f"{where}: {key} is swept twice (also in {seen[key]})")
        seen[key] = where

    for key, values in _as_mapping(data.get("grid"), "grid").items():
        values = _axis_values(key, values, "grid")
        claim(key, "grid")
        axes.append(([key], [(v,) for v in values]))
    zips = data.get("zip")
    groups = [] if zips is None else zips if isinstance(zips, list) else [zips]
    for i, group in enumerate(groups):
        where = "zip" if not isinstance(zips, list) else f"zip[{i}]"
        group = _as_mapping(group, where)
        if not group:
            raise ConfigError(f"{where}: is empty; name the keys to vary together")
        lists = [_axis_values(k, v, where) for k, v in group.items()]
        lengths = {len(v) for v in lists}
        if len(lengths) > 1:
            raise ConfigError(
                f"{where}: lists of different lengths ({', '.join(f'{k}: {len(v)}' for k, v in group.items())}); "
                f"zipped keys vary together, so they need one value each per point"
            )
        for key in group:
            claim(key, where)
        axes.append((list(group), list(zip(*lists))))
    if "seeds" in data:
        seeds = _axis_values("train.seed", data["seeds"], "seeds")
        claim("train.seed", "seeds")
        axes.append((["train.seed"], [(s,) for s in seeds]))
    if not axes:
        raise ConfigError("no axes: give grid:, zip: or seeds: (a sweep of one point is `iclab train`)")

    keys = [k for group, _ in axes for k in group]
    base = make_base()
    if any(k.startswith("recipe_args.") for k in keys) and "recipe" not in data:
        raise ConfigError(
            f"{_where(next(k for k in keys if k.startswith('recipe_args.')), seen)}: sweeps a recipe "
            "argument, but the sweep has no recipe:"
        )
    bases: dict[str, dict] = {}
    combos = list(itertools.product(*[vals for _, vals in axes]))
    points, names = [], set()
    for combo in combos:
        values = {k: v for (group, _), vals in zip(axes, combo) for k, v in zip(group, vals)}
        name_ = point_name(values, keys)
        if name_ in names:
            raise ConfigError(f"two points would share the folder name {name_!r}; make the values distinct")
        names.add(name_)
        swept_args = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("recipe_args.")}
        if swept_args:  # the recipe builds each point's base from its arguments (sizes, families, ...)
            cache_key = repr(sorted(swept_args.items()))
            if cache_key not in bases:
                try:
                    bases[cache_key] = make_base(swept_args)
                except ConfigError as e:
                    raise ConfigError(f"point {name_}: {e}") from None
            config = copy.deepcopy(bases[cache_key])
        else:
            config = copy.deepcopy(base)
        for k, v in values.items():
            if not k.startswith("recipe_args."):
                set_key(config, k, v, _where(k, seen))
        config["name"] = name_
        try:
            cfg = run_config_from_dict(config)
        except ConfigError as e:
            message = str(e)
            for k, v in values.items():  # an axis at fault is named as the sweep file names it
                if message.startswith(f"{k}:"):
                    rest = message[len(k) + 1 :].strip()
                    value = "" if rest.startswith("unknown") else f"{v!r}: "
                    raise ConfigError(f"{_where(k, seen)}: {value}{rest}") from None
            raise ConfigError(f"point {name_}: {message}") from None
        points.append(Point(name_, values, to_dict(cfg)))

    return Sweep(
        name=name,
        base=copy.deepcopy(base),
        axes=[group for group, _ in axes],
        points=points,
        executor=from_dict(ExecutorConfig, data.get("executor"), "executor"),
        slurm=from_dict(SlurmConfig, data.get("slurm"), "slurm"),
        compare=from_dict(ComparePlan, data.get("compare"), "compare"),
        source=copy.deepcopy(data),
    )


def _where(key: str, seen: dict[str, str]) -> str:
    return f"{seen[key]}.{key}" if seen.get(key) != "seeds" else "seeds"


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "inf" if math.isinf(value) else format(value, "g")
    if isinstance(value, (list, tuple)):
        return "-".join(_fmt(v) for v in value) or "none"
    if isinstance(value, dict):
        return "-".join(f"{k}{_fmt(v)}" for k, v in value.items()) or "none"
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(value)).strip("-") or "x"


def point_name(values: dict[str, Any], keys: list[str]) -> str:
    """``{"task.pool_size": 16, "train.seed": 1}`` -> ``pool_size=16_seed=1``: each key by its last part,
    or in full where two keys end alike."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    label = {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}
    return "_".join(f"{label[k]}={_fmt(values[k])}" for k in keys)
