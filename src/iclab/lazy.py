"""``torch`` imported on first use, so that modules which only *define* tasks, learners and configs can be
imported (and a config file read and checked) without loading torch.

    from iclab.lazy import torch   # instead of `import torch`, in modules that config loading imports

The first attribute read (``torch.randn``) imports torch; every later read of that name is a plain
attribute lookup. Modules that subclass ``torch.nn.Module`` import torch as usual: they are only imported
when a network is built.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for the module ``name`` until an attribute is first read."""

    def __init__(self, name: str) -> None:
        self.__dict__["_name"] = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self._name), attr)
        self.__dict__[attr] = value  # cache: the next read does not come here
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def exports(table: dict[str, str], namespace: dict, module: str):
    """A module ``__getattr__`` (PEP 562) that imports ``name`` from ``table[name]`` on first use and keeps it
    in ``namespace``: ``__getattr__ = exports({"train": "iclab.training.loop"}, globals(), __name__)``."""

    def __getattr__(name: str):
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
