"""Registries: one dict per kind of thing, filled by a decorator where the thing is defined.

A registered name is written once, on the thing itself: a task, a model family and a learner take it from
their config's ``name`` field or their ``name`` attribute; a recipe, a shift or an analysis instrument from
its function name (or the name given to the decorator). ``iclab list``, the tests' parametrisations and the
docs' tables all read these dicts, so a new entry shows up everywhere at once.

    from iclab.tasks import TASKS

    @TASKS.register
    class MyTask(Task):
        Config = MyTaskConfig      # MyTaskConfig.name = "my_task" is the registered name
        ...

    TASKS["my_task"]               # the class; TASKS behaves as a plain read-only dict

Registering a second thing under a taken name is an error (a typo would otherwise replace a family silently),
unless it is the same object again (a module imported twice, or reloaded).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any


class Registry(Mapping):
    """A name -> object mapping of one kind (``"task"``, ``"model"``, ...), filled by :meth:`register`."""

    def __init__(
        self,
        kind: str,
        name_of: Callable[[Any], str] | None = None,
        on_register: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.kind = kind
        self._name_of = name_of or _name_attribute
        self._on_register = on_register
        self._items: dict[str, Any] = {}

    def register(self, obj: Any = None, *, name: str | None = None):
        """Decorator: ``@REG.register`` (name from the object) or ``@REG.register(name="x")``."""
        if obj is None:
            return lambda o: self.register(o, name=name)
        key = name or self._name_of(obj)
        if not isinstance(key, str) or not key:
            raise TypeError(f"cannot register {obj!r} as a {self.kind}: it has no name")
        old = self._items.get(key)
        if old is not None and old is not obj and _qualname(old) != _qualname(obj):
            raise ValueError(
                f"{self.kind} {key!r} is already registered ({_qualname(old)}); "
                f"choose another name for {_qualname(obj)}"
            )
        self._items[key] = obj
        if self._on_register is not None:
            self._on_register(key, obj)
        return obj

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register a toy family clean up with this)."""
        self._items.pop(name, None)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._items)})"


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _name_attribute(obj: Any) -> str:
    """The ``name`` of a class: its ``Config``'s ``name`` field default if it has a config dataclass, else its
    ``name`` attribute, else (functions) ``__name__``."""
    config = getattr(obj, "Config", None)
    if config is not None and dataclasses.is_dataclass(config):
        field = {f.name: f for f in dataclasses.fields(config)}.get("name")
        if field is not None and isinstance(field.default, str):
            return field.default
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(obj, "__name__", "")
