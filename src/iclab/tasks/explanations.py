"""Learning from explanations: the synthetic task of Hase and Bansal 2021, "When Can Models Learn From
Explanations? A Formal Framework for Understanding the Roles of Explanation Data" (code
peterbhase/ExplanationRoles, ``write_synthetic_data.py``), as token prompts with retrieved demonstrations.

**A point.** ``x`` is 21 tokens: ``x[0:2]`` the task's index (two digit tokens ``#a #b``, base ``q``, the smallest
with ``q^2`` at least the number of tasks: the reference's index is a number up to 10,000 that RoBERTa reads in word
pieces), ``x[2]`` an indicator ``1`` or ``2``, then 18 integers from ``1 .. max_int``. Each task owns four distinct
integers ``(m, n, r, d)``. With indicator ``1`` the label is ``1[#m > #n]``, with ``2`` it is ``1[#r > #d]`` (counts
over the 18 slots); the other pair is a distractor whose comparison agrees with the label with probability
``correlation`` in training and 1/2 in held-out prompts (the reference's ``weak_feature_correlation``, whose
development and test splits always use 1/2). The slots are filled as the reference does: the first pair takes ``c1``
slots (1 .. 14) and ``c2`` slots (``0 .. min(c1, 15 - c1) - 1``), the second pair likewise from the slots left; with
probability 1/2 the two pairs' slot sets are exchanged (so neither pair is larger on average); the larger set goes
to ``m`` (``r``) when that pair's comparison is to be true, else to ``n`` (``d``), so the counts never tie; the
remaining slots take uniform integers other than ``m, n, r, d``. The explanation ``e`` of a point names its task:
``#a #b m n r d`` (the reference's ``missing_info`` explanation with the identity index map).

**A prompt.** ``n_demos`` demonstrations of the query's own task (the reference's optimal retrieval), then the
query; what each demonstration shows is ``task.context``:

- ``xey``: ``x = y E: #a #b m n r d |`` (the point, its label, its explanation);
- ``xy``: ``x = y |``;
- ``e``: ``E: #a #b m n r d |`` (the reference's ``context_includes E``, its headline setting).

``n_demos = 0`` is the no-retrieval baseline: the query alone, ``x =``, whose task's integers can only be
memorised from the training set. The label (``no`` / ``yes``) after the query's ``=`` is the one scored token
(the reference's training); with ``score: all`` every label in the prompt is, the demonstrations' too, as Garg et
al. score every point: the label of the ``i``-th demonstration then has ``i`` demonstrations before it (with
``xey``, ``i`` explanations), so one network gives accuracy against the demonstrations in view, from none up.

**Data.** ``n_tasks`` tasks (distinct ``(m, n, r, d)``) are drawn once from ``data_seed``. Every prompt picks
one of them uniformly and draws its points fresh; ``n_train`` training prompts are drawn once and cycled (the
reference: 5,000 points over 500 tasks, 10 per task), and held-out queries never repeat a training query. With
``eval_tasks: new`` held-out prompts come from ``n_tasks`` other tasks never trained on (the reference's
``disjoint_test_idx``): only explanations can help there.

Differences from the reference, deliberately: labels, indicators, exchanges and distractor agreement are
independent coin flips rather than exactly balanced arrays; demonstrations are fresh points of the task rather
than other training points (the same distribution); tokens are the integers themselves, not RoBERTa word pieces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from iclab.schema import require
from iclab.tasks.base import TASKS
from iclab.tasks.token_task import Example, TokenTask, check_training_set
from iclab.types import Vocabulary

POINT_LENGTH = 21  # tokens of x: the task index (two digits), the indicator, 18 integer slots
SLOTS = POINT_LENGTH - 3
EXPLANATION_LENGTH = 7  # E: #a #b m n r d
# the fixed symbols, in token order after the pad; then the integers 1 .. max_int, then the index digits
SYMBOLS = ("_", "|", "E:", "=", "no", "yes")
PAD, SEP, EXPLAIN, EQUALS, NO, YES = range(len(SYMBOLS))


@dataclass
class ExplanationsConfig:
    name: str = "explanations"
    context: Literal["xey", "xy", "e"] = "xey"  # what each demonstration shows (see the module docstring)
    n_demos: int = 4  # demonstrations of the query's task before it; 0: the query alone
    n_tasks: int = 500  # tasks (index and integers m, n, r, d), drawn once from data_seed
    max_int: int = 100  # integers 1 .. max_int fill the slots
    correlation: float = 0.5  # P(the distractor pair's comparison agrees with the label), training prompts
    eval_tasks: Literal["seen", "new"] = "seen"  # held-out prompts from the training tasks, or from unseen ones
    score: Literal["query", "all"] = "query"  # the query's label only (the reference), or every label in the prompt
    n_train: int | None = 5000  # training prompts, cycled in epochs; null = a fresh prompt per item
    data_seed: int = 0

    def validate(self, path: str = "task") -> None:
        require(self.n_demos >= 0, f"{path}.n_demos", "must be at least 0 (0: the query alone)", self.n_demos)
        require(
            self.max_int >= 5,
            f"{path}.max_int",
            "must be at least 5 (four distinct task integers and one more for the free slots)",
            self.max_int,
        )
        quadruples = self.max_int * (self.max_int - 1) * (self.max_int - 2) * (self.max_int - 3)
        new = self.eval_tasks == "new"
        require(
            1 <= self.n_tasks <= quadruples // (2 if new else 1),
            f"{path}.n_tasks",
            f"must be between 1 and {quadruples // (2 if new else 1)} (distinct (m, n, r, d) from 1 .. {self.max_int}"
            + (", twice as many with eval_tasks: new)" if new else ")"),
            self.n_tasks,
        )
        require(0.0 <= self.correlation <= 1.0, f"{path}.correlation", "must be between 0 and 1", self.correlation)
        check_training_set(self, path)


def fill_slots(rng: np.random.Generator, label: int, use_first: bool, agree: bool, mnrd, eligible) -> np.ndarray:
    """The 18 integer slots of one point (the reference's ``make_split``): counts for the two pairs, their slot sets
    exchanged with probability 1/2, the causal pair ordered by ``label``, the distractor agreeing iff ``agree``, the
    rest uniform over ``eligible`` (the integers that are not ``mnrd``). Disjoint uniform slot sets are consecutive
    runs of one random permutation of the slots (the reference draws them one after another: the same law)."""
    order = rng.permutation(SLOTS)
    sets, used = [], 0
    for room in (SLOTS - 3, None):  # the first pair leaves 3 slots for the second, as in the reference
        room = SLOTS - used if room is None else room
        big = int(rng.integers(1, room))
        small = int(rng.integers(0, min(big, room - big)))
        sets.append((order[used : used + big], order[used + big : used + big + small]))
        used += big + small
    if rng.random() < 0.5:
        sets.reverse()
    causal_true = bool(label)
    distractor_true = causal_true if agree else not causal_true
    first_true, second_true = (causal_true, distractor_true) if use_first else (distractor_true, causal_true)
    slots = np.zeros(SLOTS, dtype=np.int64)
    for (big_at, small_at), true, (a, b) in zip(sets, (first_true, second_true), (mnrd[:2], mnrd[2:])):
        slots[big_at], slots[small_at] = (a, b) if true else (b, a)
    slots[order[used:]] = eligible[rng.integers(len(eligible), size=SLOTS - used)]
    return slots


@TASKS.register
class Explanations(TokenTask):
    """Hase & Bansal 2021's synthetic task: compare the counts of two of a task's integers, which explanations name."""

    Config = ExplanationsConfig
    curve_axis = "demonstrations before the query"
    # what a learner reading the prompts needs: the layout's lengths, where m and r sit in an explanation, tokens
    point_length, explanation_length, m_at, r_at = POINT_LENGTH, EXPLANATION_LENGTH, 3, 5
    explain, equals, no, yes = EXPLAIN, EQUALS, NO, YES

    def __init__(self, config: ExplanationsConfig) -> None:
        super().__init__(config)
        c = config
        n_index = c.n_tasks * (2 if c.eval_tasks == "new" else 1)
        self.index_base = int(np.ceil(np.sqrt(n_index)))
        digits = (f"#{i}" for i in range(self.index_base))
        symbols = [*SYMBOLS, *(str(i) for i in range(1, c.max_int + 1)), *digits]
        self.vocab = Vocabulary(symbols=tuple(symbols), pad=PAD, separator=SEP)
        self.first_index = len(SYMBOLS) + c.max_int  # token of index digit 0
        # the tasks: rows (m, n, r, d), distinct quadruples; rows n_tasks .. are the held-out tasks of eval_tasks: new
        rng = np.random.default_rng([c.data_seed, 0x0E1A])
        rows, seen = [], set()
        while len(rows) < n_index:
            q = tuple(int(v) for v in rng.choice(np.arange(1, c.max_int + 1), size=4, replace=False))
            if q not in seen:
                seen.add(q)
                rows.append(q)
        self.tasks = np.array(rows, dtype=np.int64)
        self._eligible = {}  # task -> the integers its free slots draw from

    # ------------------------------------------------------------------ what the task is
    def integer_token(self, value):
        """The token of integer ``value`` (1 .. max_int)."""
        return len(SYMBOLS) - 1 + value

    def demo_length(self) -> int:
        context = self.config.context
        point = POINT_LENGTH + 2 if context != "e" else 0  # x = y
        return point + (EXPLANATION_LENGTH if context != "xy" else 0) + 1  # and the separator

    @property
    def max_tokens(self) -> int:
        return self.config.n_demos * self.demo_length() + POINT_LENGTH + 1

    def describe(self) -> str:
        c = self.config
        shown = {"xey": "(x, e, y)", "xy": "(x, y)", "e": "explanation"}[c.context]
        demos = f"{c.n_demos} {shown} demonstration{'s' if c.n_demos > 1 else ''}" if c.n_demos else "no demonstrations"
        return f"{c.n_tasks} tasks, {demos} before the query, integers 1-{c.max_int}, {self.training_data()}"

    def relevant_learners(self) -> list[str]:
        return ["counting", "oracle"]

    def input_symbols(self) -> list[str]:
        return [s for s in self.vocab.symbols[1:] if s not in ("no", "yes")]

    # ------------------------------------------------------------------ drawing
    def point(self, rng: np.random.Generator, task: int, correlation: float) -> tuple[np.ndarray, int, dict]:
        """One point of ``task`` (a row of :attr:`tasks`): its 21 tokens, its label and what made it."""
        c = self.config
        mnrd = self.tasks[task]
        label = int(rng.random() < 0.5)
        indicator = int(rng.integers(1, 3))
        agree = bool(rng.random() < correlation)
        if task not in self._eligible:
            self._eligible[task] = np.setdiff1d(np.arange(1, c.max_int + 1), mnrd)
        slots = fill_slots(rng, label, indicator == 1, agree, mnrd, self._eligible[task])
        x = np.concatenate([self.index_tokens(task), [self.integer_token(indicator)], self.integer_token(slots)])
        return x, label, {"indicator": indicator, "agree": agree}

    def explanation(self, task: int) -> np.ndarray:
        """``E: #a #b m n r d`` as tokens."""
        return np.concatenate([[EXPLAIN], self.index_tokens(task), self.integer_token(self.tasks[task])])

    def index_tokens(self, task: int) -> list[int]:
        """The two digit tokens of ``task``'s index."""
        return [self.first_index + task // self.index_base, self.first_index + task % self.index_base]

    def draw(self, rng: np.random.Generator) -> Example:
        return self._draw(rng, held_out=False)

    def draw_held_out(self, rng: np.random.Generator) -> Example:
        """Distractor agreement 1/2 (the reference's development and test splits), and the unseen tasks with
        ``eval_tasks: new``."""
        return self._draw(rng, held_out=True)

    def _draw(self, rng: np.random.Generator, held_out: bool) -> Example:
        c = self.config
        task = int(rng.integers(c.n_tasks)) + (c.n_tasks if held_out and c.eval_tasks == "new" else 0)
        correlation = 0.5 if held_out else c.correlation
        explanation = self.explanation(task)
        parts = []
        for _ in range(c.n_demos):
            # every layout draws the demonstration's point, shown or not: one seed gives the same points and labels
            # whatever task.context is, so the conditions are compared on the same prompts
            x, y, _ = self.point(rng, task, correlation)
            if c.context != "e":
                parts += [x, [EQUALS, YES if y else NO]]
            if c.context != "xy":
                parts.append(explanation)
            parts.append([SEP])
        x, y, facts = self.point(rng, task, correlation)
        sequence = np.concatenate([*parts, x, [EQUALS, YES if y else NO]]).astype(np.int64)
        if c.score == "all":  # every label: the token after each "="
            scored = sequence[:-1] == EQUALS
        else:
            scored = np.zeros(len(sequence) - 1, dtype=bool)
            scored[-1] = True
        demos_before = np.cumsum(sequence[:-1] == SEP)
        meta = {"task": task, "label": y, "mnrd": tuple(int(v) for v in self.tasks[task]), **facts}
        return Example(tuple(x.tolist()), sequence, scored, None, demos_before.astype(np.int64), meta=meta)
