"""Prompt kinds: what a batch of prompts is, and everything that differs with it (how a network reads the
prompts, what training logs about held-out prompts, evaluation, the terminal summary, the report, comparisons, the
memory of a step). ``KINDS`` maps a task's ``prompt_kind`` to its :class:`PromptKind`; the shared layers ask
:func:`kind_of` and never test which kind they hold.

- ``real`` (:mod:`iclab.kinds.real`): real-valued ``(x, y)`` prompts, regression and classification;
- ``tokens`` (:mod:`iclab.kinds.tokens`): token sequences.

A kind of your own registers itself the same way, from any module (``docs/extending.md``).
"""

from iclab.kinds.base import (
    KINDS,
    NetworkLearner,
    PromptKind,
    build_for_task,
    build_run_network,
    describe_kind,
    kind_of,
    kind_of_config,
)
from iclab.kinds.real import RealKind
from iclab.kinds.tokens import TokenKind

__all__ = [
    "KINDS",
    "NetworkLearner",
    "PromptKind",
    "RealKind",
    "TokenKind",
    "build_for_task",
    "build_run_network",
    "describe_kind",
    "kind_of",
    "kind_of_config",
]
