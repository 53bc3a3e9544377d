"""Configs: YAML mapped onto dataclasses, strictly.

A run config has four sections: ``task`` and ``model`` (each a family's own config dataclass, chosen by
its ``name`` field from :data:`iclab.tasks.TASKS` / :data:`iclab.models.MODELS`), ``train`` and ``eval``.
Every field has a default, so a config file only names what it changes.

Parsing is strict: an unknown key, a wrong type or an impossible value raises
:class:`~iclab.errors.ConfigError` naming the field (``train.lr``) and what is allowed.

Example::

    cfg = load_config("configs/linear.yaml", overrides=["train.steps=2000", "model.n_layer=2"])
    save_config(cfg, "runs/x/config.yaml")
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iclab.errors import ConfigError
from iclab.evaluate.config import EvalConfig
from iclab.train.config import TrainConfig

# ----------------------------------------------------------------------------------------------
# generic dataclass <-> dict machinery


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        return f"a list of {_type_name(arg)}"
    if tp is type(None):
        return "null"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true/false"
    if tp is str:
        return "a string"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where it is lossless."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ConfigError:
                pass
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path}: must be one of {', '.join(map(repr, allowed))}; got {value!r}")
        return value
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        return [_convert(arg, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    raise TypeError(f"unsupported config annotation {tp!r} at {path}")  # a bug in iclab, not user input


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping of fields, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in data:
        if key not in known:
            raise ConfigError(f"{_join(path, str(key))}: unknown field; allowed fields: {', '.join(known)}")
    kwargs = {key: _convert(hints[key], value, _join(path, key)) for key, value in data.items()}
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(path)
    return obj


def to_dict(obj: Any) -> dict:
    """Plain-dict form of a config dataclass (what YAML and JSON store)."""
    return dataclasses.asdict(obj)


# ----------------------------------------------------------------------------------------------
# value checks used by every config's ``validate``


def require(ok: bool, path: str, allowed: str, value: Any) -> None:
    """Raise ``ConfigError("<path>: <allowed>, got <value>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{path}: {allowed}, got {value!r}")


def require_positive(obj: Any, path: str, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        require(value is not None and value > 0, _join(path, name), "must be positive", value)


def require_non_negative(obj: Any, path: str, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        ok = value is not None and value >= 0 and not (isinstance(value, float) and math.isnan(value))
        require(ok, _join(path, name), "must be zero or positive", value)


def require_finite(obj: Any, path: str, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        require(math.isfinite(value), _join(path, name), "must be a finite number", value)


# ----------------------------------------------------------------------------------------------
# the run config


def _default_task() -> Any:
    from iclab.tasks import TASKS

    return TASKS["linear_regression"].Config()


def _default_model() -> Any:
    from iclab.models import MODELS

    return MODELS["transformer"].Config()


@dataclass
class RunConfig:
    """Everything that defines a run; ``config.yaml`` in the run folder is this, fully resolved."""

    name: str = "run"  # the run folder is runs/<name> unless --out says otherwise
    task: Any = field(default_factory=_default_task)  # a task family's Config, chosen by task.name
    model: Any = field(default_factory=_default_model)  # a model family's Config, chosen by model.name
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self, path: str = "") -> None:
        require(bool(self.name) and "/" not in self.name, "name", "must be a non-empty name without '/'", self.name)
        from iclab.models import check_model_fits_task

        check_model_fits_task(self.model, self.task)
        if self.eval.learners is not None:  # each chosen learner must apply to this task
            from iclab.learners import parse_learner_spec
            from iclab.tasks import make_task

            task = make_task(self.task)
            for i, spec in enumerate(self.eval.learners):
                parse_learner_spec(spec, f"eval.learners[{i}]", task=task)


def _family_config(registry: dict, kind: str, data: Any, default: str, word: str | None = None) -> Any:
    """Parse a config section whose ``name`` picks the dataclass from ``registry``; ``kind`` is its path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{kind}: expected a mapping of fields, got {data!r}")
    name = data.get("name", default)
    if not isinstance(name, str) or name not in registry:
        raise ConfigError(f"{kind}.name: unknown {word or kind} {name!r}; registered: {', '.join(sorted(registry))}")
    return from_dict(registry[name].Config, data, kind)


def run_config_from_dict(data: Any) -> RunConfig:
    """Parse a whole run config (as read from YAML) strictly."""
    from iclab.models import MODELS
    from iclab.tasks import TASKS

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping with sections task, model, train, eval; got {data!r}")
    data = dict(data)
    task = _family_config(TASKS, "task", data.pop("task", None), "linear_regression")
    model = _family_config(MODELS, "model", data.pop("model", None), "transformer")
    known = ["name", "task", "model", "train", "eval"]
    for key in data:
        if key not in known:
            raise ConfigError(f"{key}: unknown section; allowed: {', '.join(known)}")
    cfg = RunConfig(
        name=_convert(str, data.get("name", "run"), "name"),
        task=task,
        model=model,
        train=from_dict(TrainConfig, data.get("train"), "train"),
        eval=from_dict(EvalConfig, data.get("eval"), "eval"),
    )
    cfg.validate()
    return cfg


def _switch_family(data: dict, section: str, name: Any) -> None:
    """``--set model.name=X`` (or ``task.name=X``) on a config of another family: keep the fields the new
    family also has (sizes, ``n_dims``, ...), drop the rest (and an encoder the new model does not take), so
    one switch moves a recipe to another family. Unknown names are left for validation to report."""
    from dataclasses import fields

    old = data.get(section)
    if not isinstance(old, dict) or old.get("name", name) == name:
        return
    if section == "model":
        from iclab.models import MODELS as registry
    else:
        from iclab.tasks import TASKS as registry
    family = registry.get(name) if isinstance(name, str) else None
    if family is None:
        return
    allowed = {f.name for f in fields(family.Config)} - {"n_positions"}
    kept = {k: v for k, v in old.items() if k in allowed}
    if section == "model" and kept.get("encoder") not in getattr(family, "encoders", ()):
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
        parts = key.split(".")
        if len(parts) == 2 and parts[0] in ("model", "task") and parts[1] == "name":
            _switch_family(data, parts[0], value)
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return data


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
