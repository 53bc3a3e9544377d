"""Config schemas: dataclasses read from and written to plain dicts (YAML, JSON), strictly.

This module imports nothing of iclab but its errors, so every config dataclass (a task's, a model's, a
learner's parameters, the run config) can use it without pulling in torch or any registry.

- :func:`from_dict` builds a dataclass from a mapping, rejecting unknown keys and wrong types, converting
  only where it is lossless (``1`` to ``1.0``, ``"1e-3"`` to ``0.001``), and calls the dataclass's
  ``validate(path)`` if it has one.
- ``Literal[...]``-typed fields are enumerations: a value outside them fails with the allowed values listed.
- :func:`require` and friends are the value checks ``validate`` methods use; each failure is one
  :class:`~iclab.errors.ConfigError` line naming the field (``model.n_embd``) and what is allowed.
- :func:`family_config` parses a section whose ``name`` picks the dataclass from a registry.

Example::

    @dataclass
    class MyConfig:
        width: int = 64
        norm: Literal["layer", "rms"] = "layer"

        def validate(self, path="model"):
            require_positive(self, path, "width")

    from_dict(MyConfig, {"width": 0}, "model")  # ConfigError: model.width: must be positive, got 0
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any

from iclab.errors import ConfigError

# ----------------------------------------------------------------------------------------------
# generic dataclass <-> dict machinery


def join(path: str, name: str) -> str:
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


def convert(tp: Any, value: Any, path: str) -> Any:
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
                return convert(arg, value, path)
            except ConfigError:
                pass
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path}: {one_of(allowed)}, got {value!r}")
        return value
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        return [convert(arg, v, f"{path}[{i}]") for i, v in enumerate(value)]
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


def one_of(allowed) -> str:
    """``must be 'a' or 'b'`` / ``must be one of a, b, c``: how every enumeration states what it allows."""
    allowed = list(allowed)
    if len(allowed) == 2:
        return f"must be {allowed[0]!r} or {allowed[1]!r}"
    return f"must be one of {', '.join(map(str, allowed))}"


def literal_values(cls: type, field: str) -> tuple:
    """The values a ``Literal[...]``-typed field of dataclass ``cls`` allows."""
    tp = typing.get_type_hints(cls)[field]
    return typing.get_args(tp) if typing.get_origin(tp) is typing.Literal else ()


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
            raise ConfigError(f"{join(path, str(key))}: unknown field; allowed fields: {', '.join(known)}")
    kwargs = {key: convert(hints[key], value, join(path, key)) for key, value in data.items()}
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
        require(value is not None and value > 0, join(path, name), "must be positive", value)


def require_non_negative(obj: Any, path: str, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        ok = value is not None and value >= 0 and not (isinstance(value, float) and math.isnan(value))
        require(ok, join(path, name), "must be zero or positive", value)


def require_finite(obj: Any, path: str, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        require(math.isfinite(value), join(path, name), "must be a finite number", value)


def family_config(registry: dict, kind: str, data: Any, default: str, word: str | None = None) -> Any:
    """Parse a config section whose ``name`` picks the dataclass from ``registry``; ``kind`` is its path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{kind}: expected a mapping of fields, got {data!r}")
    name = data.get("name", default)
    if not isinstance(name, str) or name not in registry:
        import difflib

        close = difflib.get_close_matches(name, list(registry), n=1) if isinstance(name, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{kind}.name: unknown {word or kind} {name!r}{hint}; registered: {', '.join(sorted(registry))}"
        )
    target = registry[name]  # a config dataclass, or a class whose ``Config`` is one
    return from_dict(target if dataclasses.is_dataclass(target) else target.Config, data, kind)


_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.S)


def parse_call(spec: str, what: str) -> tuple[str, dict[str, Any]]:
    """``"lora(r=4, targets=[qkv, mlp.fc])"`` -> ``("lora", {"r": 4, "targets": ["qkv", "mlp.fc"]})``; values are
    read as YAML. ``what`` names the option in messages (``--method``)."""
    import yaml

    m = _CALL.match(spec)
    if not m:
        raise ConfigError(f"{what}: expected a name or a call like 'lora(r=4, alpha=8)', got {spec!r}")
    name, args = m.group(1), (m.group(2) or "").strip()
    if not args:
        return name, {}
    try:
        kwargs = yaml.safe_load("{" + re.sub(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*", r"\1: ", args) + "}")
    except yaml.YAMLError:
        kwargs = None
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{what}: cannot read the arguments of {spec!r}; write them as key=value, key=[a, b]")
    return name, kwargs
