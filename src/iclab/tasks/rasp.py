"""The RASP task suite of Friedman, Wettig, Chen 2023, "Learning Transformer Programs" (after Weiss, Goldberg,
Yahav 2021, "Thinking Like Transformers"): small algorithmic tasks with a label per position, scored by token
accuracy over the positions that have a label.

``task.program`` picks the task; the published settings are the defaults (their repository has no licence:
this follows the paper):

- ``reverse``: the input reversed. 5 symbols ``a``-``e``, lengths 1-6.
- ``sort``: the input sorted. 5 symbols, lengths 1-6.
- ``hist``: for every input token, how often it occurs in the input (``1``-``7``). 6 symbols, lengths 1-7.
- ``double_hist``: for every input token, how many distinct symbols occur as often as it does. 6 symbols, 1-7.
- ``most_freq``: the distinct input symbols, most frequent first, ties broken by first occurrence; positions past
  the number of distinct symbols have no label. 6 symbols, lengths 1-7.
- ``dyck1`` / ``dyck2``: for every prefix of a bracket string (``()``; ``()`` and ``{}``), ``T`` when it is
  balanced, ``P`` when it is not but could still be completed, ``F`` when it can no longer be. Length 16.
- ``induction``: letters and digits alternate (``<s> a 1 b 2 a``: 9 tokens after ``<s>``, 5 letters ``a``-``e``, 5
  digits ``0``-``4``, each letter followed by the same digit throughout a prompt); at every letter seen before,
  the label is the digit that followed it (the induction-head pattern). First occurrences have no label.

Layout for a causal model. The paper's Transformer Programs read the whole input at every position (an encoder):
position i holds x_i and attends to every position. iclab's models are causal, so the five tasks whose labels depend on
the whole input repeat it after a separator, ``<s> x1 .. xn | x1 .. xn``, and score the label of position i at the
second copy of x_i: there, as in the encoder, the network has its own token and the whole input in view, and it never
sees a label (no teacher forcing). Dyck and induction labels depend on the prefix only, so they are scored at the input
positions themselves. Training and held-out sets follow the paper's de-duplication: ``n_train`` distinct inputs (drawn
from ``data_seed``), held-out inputs never among them.

Dyck strings are drawn half from a random walk that stays a valid prefix (open with probability 1/2, or always
when nothing is open; a close matches the innermost open bracket) and half uniformly over the bracket symbols,
so every label occurs (the paper does not state its sampler).

**The paper's data** (``task.data: paper``, the default of the ``friedman2023_program`` recipes): Table 1 is only
comparable on the data of the paper's code, which differs from the above:

- The five whole-input tasks are read by an encoder: ``<s> x1 .. xn`` (``<s> x1 .. xn </s>`` for reverse and sort),
  the label of ``x_i`` at ``x_i`` itself, every non-pad token in view (``bidirectional``: the transformer and the
  Transformer Program take it; the recurrent families cannot).
- ``most_freq`` labels every position past the distinct symbols with ``<s>``, and scores it.
- Dyck: 15 brackets after ``<s>``; half are a balanced string (1 to 8 pairs, each step adding a random pair kind
  either after the string or around it, with probability 1/2 each) cut or padded with uniformly random brackets to
  15, half uniformly random brackets.
- Induction: 4 letters ``a``-``d`` and 4 digits ``0``-``3``, a digit fixed per letter per prompt; 4 letter-digit
  pairs, then with probability 1/2 a random digit before them, else one more letter after them (9 tokens after
  ``<s>``). Every letter is scored: the digit that followed it before, or ``?`` at a first occurrence.
- Sizes: the reference draws 20,000 inputs, removes duplicates and splits them about 16.2k / 1.8k / 2k; here
  ``n_train`` distinct training inputs (the recipes: 16,200, or 15,800 for sort and reverse, whose 19,530 distinct
  inputs are fewer) and held-out inputs never among them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np

from iclab.schema import require
from iclab.tasks.base import TASKS
from iclab.tasks.token_task import Example, TokenTask
from iclab.types import Vocabulary

PROGRAMS = ("reverse", "sort", "hist", "double_hist", "most_freq", "dyck1", "dyck2", "induction")
ANSWER_SECTION = ("reverse", "sort", "hist", "double_hist", "most_freq")
# the paper's settings: (input symbols, shortest, longest)
DEFAULTS = {
    "reverse": (5, 1, 6),
    "sort": (5, 1, 6),
    "hist": (6, 1, 7),
    "double_hist": (6, 1, 7),
    "most_freq": (6, 1, 7),
    "dyck1": (2, 16, 16),
    "dyck2": (4, 16, 16),
    "induction": (5, 9, 9),
}
BRACKETS = {"dyck1": ("(", ")"), "dyck2": ("(", ")", "{", "}")}


@dataclass
class RaspConfig:
    name: str = "rasp"
    program: Literal["reverse", "sort", "hist", "double_hist", "most_freq", "dyck1", "dyck2", "induction"] = "sort"
    n_symbols: int | None = None  # input symbols (letters); null = the paper's (5 or 6); fixed for Dyck
    min_length: int | None = None  # input length, uniform in min..max; null = the paper's
    max_length: int | None = None
    n_train: int | None = 8000  # distinct training inputs; null = a fresh input per item
    data_seed: int = 0
    data: Literal["iclab", "paper"] = "iclab"  # paper: the paper code's layouts, samplers and scoring (see above)

    def validate(self, path: str = "task") -> None:
        symbols, lo, hi = self.resolved()
        dyck = self.program.startswith("dyck")
        if dyck:
            require(
                self.n_symbols is None,
                f"{path}.n_symbols",
                f"must be null for {self.program} (its symbols are the brackets)",
                self.n_symbols,
            )
        require(
            1 <= symbols <= 26 and (self.program != "induction" or symbols <= 10),
            f"{path}.n_symbols",
            "must be between 1 and 26 (10 for induction)",
            symbols,
        )
        require(self.data in ("iclab", "paper"), f"{path}.data", "must be 'iclab' or 'paper'", self.data)
        if self.data == "paper" and self.program == "induction":
            require(symbols <= 9, f"{path}.n_symbols", "must be at most 9 for the paper's induction data", symbols)
            require(
                self.min_length is None and self.max_length is None,
                f"{path}.max_length",
                "must be null for the paper's induction data (4 pairs and one more token)",
                self.max_length,
            )
        require(lo >= 1, f"{path}.min_length", "must be at least 1", lo)
        require(lo <= hi, f"{path}.min_length", f"must be at most task.max_length ({hi})", lo)
        require(hi <= 512, f"{path}.max_length", "must be at most 512", hi)
        if self.program == "induction":
            require(hi >= 3, f"{path}.max_length", "must be at least 3 for induction (a letter must come back)", hi)
        if self.n_train is not None:
            require(
                self.n_train >= 1,
                f"{path}.n_train",
                "must be at least 1 (or null for a fresh input per example)",
                self.n_train,
            )
            room = _distinct_inputs(self.program, symbols, lo, hi)
            share = 0.9 if self.data == "paper" else 0.5  # the paper trains on about 81% of the distinct inputs
            require(
                self.n_train <= int(room * share),
                f"{path}.n_train",
                f"must be at most {int(room * share)}: only {room} distinct inputs exist and held-out inputs are "
                "never training ones",
                self.n_train,
            )
        require(self.data_seed >= 0, f"{path}.data_seed", "must be non-negative", self.data_seed)

    def resolved(self) -> tuple[int, int, int]:
        symbols, lo, hi = DEFAULTS[self.program]
        if self.data == "paper" and self.program in BRACKETS:
            lo = hi = 15  # the reference's length 16 counts <s>
        if self.data == "paper" and self.program == "induction":
            symbols = 4
        pick = lambda value, default: default if value is None else value  # noqa: E731
        return pick(self.n_symbols, symbols), pick(self.min_length, lo), pick(self.max_length, hi)


def _distinct_inputs(program: str, symbols: int, lo: int, hi: int) -> int:
    if program == "induction":
        return 10**9  # letters and digits: far more than any training set
    return sum(min(symbols**n, 10**12) for n in range(lo, hi + 1))


# ------------------------------------------------------------------ the programs, written plainly


def program_labels(program: str, xs: list[str], paper: bool = False) -> list[str | None]:
    """The label of every position (None: no label) for input symbols ``xs``, by the definitions above
    (``paper``: the paper code's scoring of most_freq and induction)."""
    n = len(xs)
    if program == "reverse":
        return xs[::-1]
    if program == "sort":
        return sorted(xs)
    if program == "hist":
        c = Counter(xs)
        return [str(c[x]) for x in xs]
    if program == "double_hist":
        c = Counter(xs)
        same = Counter(c.values())
        return [str(same[c[x]]) for x in xs]
    if program == "most_freq":
        c = Counter(xs)
        first = {x: xs.index(x) for x in c}
        order = sorted(c, key=lambda x: (-c[x], first[x]))
        return order + [("<s>" if paper else None)] * (n - len(order))
    if program in BRACKETS:
        pairs = {")": "(", "}": "{"}
        stack, broken, out = [], False, []
        for x in xs:
            if not broken:
                if x in pairs:
                    if stack and stack[-1] == pairs[x]:
                        stack.pop()
                    else:
                        broken = True
                else:
                    stack.append(x)
            out.append("F" if broken else ("T" if not stack else "P"))
        return out
    if program == "induction" and paper:  # letters scored, "?" at a first occurrence; digits unscored
        out, seen = [], {}
        for i, x in enumerate(xs):
            if x.isdigit():
                out.append(None)
            else:
                out.append(seen.get(x, "?"))
                if i + 1 < n:
                    seen[x] = xs[i + 1]
        return out
    if program == "induction":
        out, seen = [], {}
        for i, x in enumerate(xs):
            if i % 2 == 0:  # a letter
                out.append(seen.get(x))
                if i + 1 < n:
                    seen[x] = xs[i + 1]
            else:
                out.append(None)
        return out
    raise ValueError(program)


@TASKS.register
class Rasp(TokenTask):
    """The RASP tasks of Friedman et al. 2023 (reverse, sort, hist, double_hist, most_freq, dyck1, dyck2,
    induction): a label per position, token accuracy."""

    Config = RaspConfig

    def __init__(self, config: RaspConfig) -> None:
        super().__init__(config)
        program = config.program
        symbols, self.lo, self.hi = config.resolved()
        self.paper = config.data == "paper"
        if program in BRACKETS:
            self.inputs = BRACKETS[program]
            outputs: tuple[str, ...] = ("P", "T", "F")
        elif program == "induction":
            self.inputs = tuple("abcdefghij"[:symbols]) + tuple("0123456789"[:symbols])
            outputs = ("?",) if self.paper else ()
        else:
            self.inputs = tuple(chr(ord("a") + i) for i in range(symbols))
            outputs = tuple(str(i) for i in range(1, self.hi + 1)) if "hist" in program else ()
        whole_input = program in ANSWER_SECTION
        self.answer_section = whole_input and not self.paper  # causal: the input again after a separator
        self.bidirectional = whole_input and self.paper  # the paper's encoder
        self.end_token = self.paper and program in ("reverse", "sort")
        specials = (
            (".", "<s>", "|") if self.answer_section else (".", "<s>", "</s>") if self.end_token else (".", "<s>")
        )
        self.vocab = Vocabulary(symbols=(*specials, *self.inputs, *outputs), pad=0)
        self._id = {s: i for i, s in enumerate(self.vocab.symbols)}
        self.curve_axis = "position in the input"

    @property
    def max_tokens(self) -> int:
        if self.config.program == "induction" and self.paper:
            return 10  # <s>, 4 pairs and one more token
        return 2 + 2 * self.hi if self.answer_section else 1 + self.hi + int(self.end_token)

    def input_symbols(self) -> list[str]:
        specials = ["<s>", "|"] if self.answer_section else ["<s>", "</s>"] if self.end_token else ["<s>"]
        return [*specials, *self.inputs]

    def describe(self) -> str:
        return (
            f"{self.config.program}, inputs of {self.lo}-{self.hi} tokens over {len(self.inputs)} symbols, "
            f"{self.training_data('input')}"
        )

    def relevant_learners(self) -> list[str]:
        return ["oracle"]

    def sample_input(self, rng: np.random.Generator) -> list[str]:
        program = self.config.program
        if self.paper and program in BRACKETS:
            return self._paper_dyck(rng)
        if self.paper and program == "induction":
            return self._paper_induction(rng)
        n = int(rng.integers(self.lo, self.hi + 1))
        if program == "induction":
            k = len(self.inputs) // 2
            letters, digits = self.inputs[:k], self.inputs[k:]
            digit_of = {a: digits[int(rng.integers(k))] for a in letters}
            xs = []
            for i in range(n):
                if i % 2 == 0:
                    xs.append(letters[int(rng.integers(k))])
                else:
                    xs.append(digit_of[xs[-1]])
            return xs
        if program in BRACKETS and rng.random() < 0.5:
            kinds = len(self.inputs) // 2
            xs, stack = [], []
            for _ in range(n):
                if not stack or rng.random() < 0.5:
                    kind = int(rng.integers(kinds))
                    stack.append(kind)
                    xs.append(self.inputs[2 * kind])
                else:
                    xs.append(self.inputs[2 * stack.pop() + 1])
            return xs
        return [self.inputs[int(i)] for i in rng.integers(len(self.inputs), size=n)]

    def _paper_dyck(self, rng: np.random.Generator) -> list[str]:
        """The paper code's Dyck sampler (module docstring): a balanced string of 1-8 pairs cut or padded with random
        brackets, or random brackets."""
        n, kinds = self.hi, len(self.inputs) // 2
        if rng.integers(2):
            xs: list[str] = []
            for _ in range(int(rng.integers(1, n // 2 + 2))):
                kind = int(rng.integers(kinds))
                left, right = self.inputs[2 * kind], self.inputs[2 * kind + 1]
                xs = [*xs, left, right] if rng.integers(2) == 0 else [left, *xs, right]
            pad = [self.inputs[int(i)] for i in rng.integers(len(self.inputs), size=max(n - len(xs), 0))]
            return (xs + pad)[:n]
        return [self.inputs[int(i)] for i in rng.integers(len(self.inputs), size=n)]

    def _paper_induction(self, rng: np.random.Generator) -> list[str]:
        """The paper code's induction prompts (module docstring)."""
        k = len(self.inputs) // 2
        letters, digits = self.inputs[:k], self.inputs[k:]
        digit_of = [digits[int(i)] for i in rng.integers(k, size=k)]
        xs = []
        for c in rng.integers(k, size=4):
            xs += [letters[int(c)], digit_of[int(c)]]
        if rng.integers(2):
            return [digits[int(rng.integers(k))], *xs]
        return [*xs, letters[int(rng.integers(k))]]

    def example(self, xs: list[str]) -> Example:
        labels = program_labels(self.config.program, xs, self.paper)
        n = len(xs)
        if self.answer_section:
            ids = [self._id[x] for x in xs]
            seq = [self._id["<s>"], *ids, self._id["|"], *ids]
            targets = [self.vocab.pad] * (n + 2) + [self._id[y] if y is not None else self.vocab.pad for y in labels]
            scored = [False] * (n + 2) + [y is not None for y in labels]
            index = [0] * (n + 2) + list(range(n))
        else:
            end = ["</s>"] if self.end_token else []
            seq = [self._id["<s>"], *(self._id[x] for x in [*xs, *end])]
            targets = [self.vocab.pad] + [self._id[y] if y is not None else self.vocab.pad for y in labels]
            targets += [self.vocab.pad] * len(end)
            scored = [False] + [y is not None for y in labels] + [False] * len(end)
            index = [0] + list(range(n)) + [n] * len(end)
        arr = np.asarray
        return Example(
            tuple(xs),
            arr(seq, dtype=np.int64),
            arr(scored, dtype=bool),
            None,
            arr(index, dtype=np.int64),
            targets=arr(targets, dtype=np.int64),
        )

    def draw(self, rng: np.random.Generator) -> Example:
        return self.example(self.sample_input(rng))
