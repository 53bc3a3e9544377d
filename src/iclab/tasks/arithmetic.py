"""Addition in the formats of Lee, Sreenivasan, Lee, Lee, Papailiopoulos 2023, "Teaching Arithmetic to Small
Transformers" (code lee-ny/teaching_arithmetic), character by character.

Formats (the strings are the reference's, byte for byte, checked in tests/test_token_tasks.py):

- ``plain``: ``128+367=495`` then a newline.
- ``reverse``: ``$128+367=594$``, the answer written least significant digit first, then a newline.
- ``simple_scratchpad``: ``Input:\\n128+367\\nTarget:\\n``, one ``A->digit , C->carry`` line per digit from the
  right, the last line ending in ``.``, then the answer and a newline. The reference's generator writes wrong
  digits here: it reuses its ``random_A`` / ``random_C`` switches as loop variables, so from the second line on
  ``A`` is a random digit whenever the previous one was not 0 (and ``C`` whenever the previous carry was 1). Here
  every line holds the true digit and carry.
- ``scratchpad`` (detailed): ``Input:\\n128+367\\nTarget:\\n<scratch>\\n``, both operands' digit lists and lengths,
  one line per digit with the digits left, the partial answer, the carry, the digit sum and its results, a
  closing ``END`` line, ``</scratch>``, then the answer's digits separated by spaces and a newline.

Each example is preceded by a newline (in the reference's training stream every example follows the previous
one's newline), which is the first input token. Held-out prompts end where the answer starts (after ``=`` or
``Target:\\n``); evaluation decodes the rest and parses the answer the way the reference does
(:func:`parse_answer`), scoring exact match as an integer (:mod:`iclab.kinds.tokens.generation`).

The balanced sampler (``sampler: balanced``, the reference's ``create_balanced_data``): all 100 pairs of 1-digit
numbers, ``int(900 N / 10000)`` pairs drawn from 0-99, the rest from 0 .. 10^n - 1; a pair is kept only while
its number of carries is under its quota ``ceil(N / (n + 1))``, so carries are balanced. Differences: the
training pairs here are distinct (the reference may draw a pair twice), the draws come from numpy, and for
``n > 3`` the middle lengths get no pairs of their own either (the reference's list has three entries and
stops). ``sampler: uniform`` draws both operands from 0 .. 10^n - 1. Held-out pairs are uniform in
0 .. 10^d - 1 (``eval_digits`` d, default n; n + 1 tests length generalisation), never a training pair, as in the
reference's non-overlapping test files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from iclab.schema import require
from iclab.tasks.base import EVAL_STREAM, TASKS, TRAIN_STREAM
from iclab.tasks.token_task import Example, TokenTask
from iclab.types import Vocabulary
from iclab.utils import derive_seed

FORMATS = ("plain", "reverse", "simple_scratchpad", "scratchpad")
# every character any format writes; the pad "_" is never written
SYMBOLS = (
    "_",
    "\n",
    " ",
    "$",
    "+",
    "=",
    ",",
    ".",
    ":",
    "<",
    ">",
    "/",
    "[",
    "]",
    "-",
    *"0123456789",
    *"ACDEINTacdeghinprstu",
)


def _listed(digits: list[int]) -> str:
    """``[1,2,8]``: a digit list as the reference writes it (Python's list, spaces removed)."""
    return str(digits).replace(" ", "")


def format_example(a: int, b: int, fmt: str) -> tuple[str, str]:
    """``(prompt, answer)`` of ``a + b`` in format ``fmt``; the training string is their concatenation."""
    c = a + b
    if fmt == "plain":
        return f"{a}+{b}=", f"{c}\n"
    if fmt == "reverse":
        return f"${a}+{b}=", f"{str(c)[::-1]}$\n"
    prompt = f"Input:\n{a}+{b}\nTarget:\n"
    xs, ys = [int(d) for d in str(a)], [int(d) for d in str(b)]
    steps, carry, answer = [], 0, []
    for i in range(max(len(xs), len(ys))):
        x = xs[-1 - i] if i < len(xs) else 0
        y = ys[-1 - i] if i < len(ys) else 0
        s = x + y + carry
        steps.append((x, y, carry, s))
        answer.insert(0, s % 10)
        carry = s // 10
    if carry:
        answer.insert(0, 1)
    if fmt == "simple_scratchpad":
        lines = [f"A->{s % 10} , C->{s // 10}" for _, _, _, s in steps]
        return prompt, "\n".join(lines) + ".\n" + "".join(map(str, answer)) + "\n"
    out = ["<scratch>", f"{_listed(xs)} has {len(xs)} digits.", f"{_listed(ys)} has {len(ys)} digits."]
    for i, (x, y, cin, s) in enumerate(steps):  # the digits left of each operand, the answer's digits so far
        out.append(
            f"{_listed(xs[: max(len(xs) - i, 0)])} + {_listed(ys[: max(len(ys) - i, 0)])} , "
            f"A={_listed(answer[len(answer) - i :] if i else [])} , C={cin} , {x}+{y}+{cin}={s} , "
            f"A->{s % 10} , C->{s // 10}"
        )
    out.append(f"[] + [] , A={_listed(answer[len(answer) - len(steps) :])} C={carry} , END")
    out.append("</scratch>")
    return prompt, "\n".join(out) + "\n" + " ".join(map(str, answer)) + "\n"


def parse_answer(generated: str, fmt: str) -> int | None:
    """The integer a generated continuation states, read the way the reference's evaluation reads it; None when it
    does not state one."""
    if fmt == "reverse":
        text = generated.split("$")[0][::-1]
    elif fmt == "plain":
        text = generated.split("\n")[0]
    elif fmt == "simple_scratchpad":
        if ".\n" not in generated:
            return None
        text = generated.split(".\n", 1)[1].split("\n")[0]
    else:
        if "</scratch>\n" not in generated:
            return None
        text = generated.split("</scratch>\n", 1)[1].split("\n")[0].replace(" ", "")
    return int(text) if text and text.isdigit() else None


def carries(a: int, b: int) -> int:
    """Number of carry operations in ``a + b`` (the reference's digit-sum identity)."""

    def ds(n: int) -> int:
        return sum(map(int, str(n)))

    return (ds(a) + ds(b) - ds(a + b)) // 9


@dataclass
class ArithmeticConfig:
    name: str = "arithmetic"
    format: Literal["plain", "reverse", "simple_scratchpad", "scratchpad"] = "reverse"
    n_digits: int = 3  # training operands have at most this many digits
    n_train: int | None = 10000  # training examples N (distinct pairs); null = a fresh uniform pair per item
    data_seed: int = 0
    sampler: Literal["balanced", "uniform"] = "balanced"  # the reference's balanced data, or uniform pairs
    loss_on: Literal["all", "answer"] = "all"  # every token after the leading newline, or the answer only
    eval_digits: int | None = None  # held-out operands have at most this many digits (null: n_digits)
    max_length: int | None = None  # tokens per example; null = just enough for the longest example

    def validate(self, path: str = "task") -> None:
        require(1 <= self.n_digits <= 18, f"{path}.n_digits", "must be between 1 and 18", self.n_digits)
        if self.eval_digits is not None:
            require(1 <= self.eval_digits <= 18, f"{path}.eval_digits", "must be between 1 and 18", self.eval_digits)
        require(self.data_seed >= 0, f"{path}.data_seed", "must be non-negative", self.data_seed)
        if self.n_train is not None:
            require(
                self.n_train >= 1,
                f"{path}.n_train",
                "must be at least 1 (or null for a fresh pair per example)",
                self.n_train,
            )
            room = 100**self.n_digits
            require(
                self.n_train <= room // 2,
                f"{path}.n_train",
                f"must be at most {room // 2}, half of the {room} pairs of {self.n_digits}-digit numbers "
                f"(held-out pairs are never training ones)",
                self.n_train,
            )
            if self.sampler == "balanced" and self.n_digits > 1:
                low = 100 + int(900 * self.n_train / 10000) + 1
                require(
                    self.n_train >= low,
                    f"{path}.n_train",
                    f"must be at least {low} with the balanced sampler "
                    "(all 100 one-digit pairs, 9% two-digit pairs, the rest n-digit); use task.sampler=uniform "
                    "for fewer",
                    self.n_train,
                )
        need = longest_example(self.format, max(self.n_digits, self.eval_digits or 0))
        if self.max_length is not None:
            require(
                self.max_length >= need,
                f"{path}.max_length",
                f"must be at least {need}: the longest {self.format} example with "
                f"{max(self.n_digits, self.eval_digits or 0)}-digit numbers has {need} tokens",
                self.max_length,
            )


def longest_example(fmt: str, digits: int) -> int:
    """Tokens of the longest example (the leading newline included) with operands of at most ``digits`` digits."""
    big = 10**digits - 1
    prompt, answer = format_example(big, big, fmt)
    return 1 + len(prompt) + len(answer)


@TASKS.register
class Arithmetic(TokenTask):
    """n-digit addition in the formats of Lee et al. 2023 (plain, reversed, simplified and detailed scratchpad)."""

    Config = ArithmeticConfig
    curve_axis = "answer characters already written"
    generates = True

    def __init__(self, config: ArithmeticConfig) -> None:
        super().__init__(config)
        self.vocab = Vocabulary(symbols=SYMBOLS, pad=0)
        self._index = {s: i for i, s in enumerate(SYMBOLS)}

    @property
    def max_tokens(self) -> int:
        c = self.config
        return (c.max_length or longest_example(c.format, max(c.n_digits, c.eval_digits or 0))) - 1

    @property
    def eval_digits(self) -> int:
        return self.config.eval_digits or self.config.n_digits

    def describe(self) -> str:
        c = self.config
        sampler = "" if c.n_train is None else f" ({c.sampler})"
        return (
            f"{c.n_digits}-digit addition, {c.format} format, {self.training_data('example')}{sampler}, loss on "
            f"{c.loss_on} tokens; held-out operands up to {self.eval_digits} digits"
        )

    def relevant_learners(self) -> list[str]:
        return ["oracle", "unigram"]

    @property
    def scores_all_in_training(self) -> bool:
        return self.config.loss_on == "all"

    # ------------------------------------------------------------------ evaluation by generation
    def generation_prompt(self, ex: Example) -> list[int]:
        """The held-out example up to where its answer starts."""
        return ex.sequence[: ex.meta["prompt_tokens"]].tolist()

    def answer_done_ids(self, new: list[int]) -> bool:
        """Whether a continuation has reached the point where :func:`parse_answer` reads it."""
        last = self.vocab.symbols[new[-1]]
        fmt = self.config.format
        if fmt == "plain":
            return last == "\n"
        if fmt == "reverse":
            return last == "$"
        if last != "\n":
            return False
        text = self.vocab.decode(new)
        marker = ".\n" if fmt == "simple_scratchpad" else "</scratch>\n"
        return marker in text and not text.endswith(marker)

    def parse(self, text: str) -> int | None:
        return parse_answer(text, self.config.format)

    def expected(self, ex: Example) -> int:
        return ex.meta["a"] + ex.meta["b"]

    def generation_groups(self, ex: Example) -> dict:
        return {"digits": ex.meta["digits"], "carries": ex.meta["carries"]}

    # ------------------------------------------------------------------ examples
    def example(self, a: int, b: int) -> Example:
        prompt, answer = format_example(a, b, self.config.format)
        text = "\n" + prompt + answer
        seq = np.fromiter((self._index[ch] for ch in text), dtype=np.int64, count=len(text))
        n_prompt = 1 + len(prompt)
        scored = np.zeros(len(seq) - 1, dtype=bool)
        scored[n_prompt - 1 :] = True  # target t is token t + 1: the answer's characters
        index = np.clip(np.arange(len(seq) - 1) - (n_prompt - 1), 0, None)
        return Example(
            (a, b),
            seq,
            scored,
            None,
            index,
            meta={
                "a": a,
                "b": b,
                "prompt_tokens": n_prompt,
                "digits": max(len(str(a)), len(str(b))),
                "carries": carries(a, b),
            },
        )

    def draw(self, rng: np.random.Generator) -> Example:
        hi = 10**self.config.n_digits
        return self.example(int(rng.integers(hi)), int(rng.integers(hi)))

    def training_set(self) -> list[Example]:
        c = self.config
        if c.n_train is None:
            return []
        if self._train is None:
            rng = np.random.default_rng(derive_seed(c.data_seed, TRAIN_STREAM))
            pairs = (
                balanced_pairs(rng, c.n_train, c.n_digits)
                if c.sampler == "balanced"
                else uniform_pairs(rng, c.n_train, c.n_digits, set())
            )
            self._train = [self.example(a, b) for a, b in pairs]
            self._train_keys = set(pairs)
        return self._train

    def eval_examples(self, n_prompts: int, seed: int) -> list[Example]:
        self.training_set()
        rng = np.random.default_rng(derive_seed(seed, EVAL_STREAM, 0))
        exclude = self._train_keys or set()
        room = 100**self.eval_digits - len(exclude)
        if n_prompts > room:
            from iclab.errors import ConfigError

            raise ConfigError(
                f"eval.n_prompts: only {room} held-out pairs of {self.eval_digits}-digit numbers exist, "
                f"asked for {n_prompts}"
            )
        return [self.example(a, b) for a, b in uniform_pairs(rng, n_prompts, self.eval_digits, exclude)]


def uniform_pairs(rng: np.random.Generator, n: int, digits: int, exclude: set) -> list[tuple[int, int]]:
    """``n`` distinct pairs uniform in 0 .. 10^digits - 1, none in ``exclude``."""
    hi, out, seen = 10**digits, [], set(exclude)
    while len(out) < n:
        a, b = (int(v) for v in rng.integers(hi, size=2))
        if (a, b) not in seen:
            seen.add((a, b))
            out.append((a, b))
    return out


def balanced_pairs(rng: np.random.Generator, n: int, digits: int) -> list[tuple[int, int]]:
    """The reference's balanced training pairs (module docstring), distinct."""
    if digits == 1:
        every = [(a, b) for a in range(10) for b in range(10)]
        return [every[i] for i in sorted(rng.permutation(100)[:n])]
    quota = math.ceil(n / (digits + 1))
    per_carry = [0] * (digits + 1)
    out, seen = [], set()
    for a in range(10):
        for b in range(10):
            out.append((a, b))
            seen.add((a, b))
            per_carry[carries(a, b)] += 1
    n2 = int(900 * n / 10000)
    phases = [(2, n - 100)] if digits == 2 else [(2, n2), (digits, n - 100 - n2)]
    for width, count in phases:
        got, tries = 0, 0
        while got < count:
            tries += 1
            if tries > 1000 * n + 100000:
                raise RuntimeError(f"arithmetic: could not draw {count} balanced {width}-digit pairs")
            a, b = (int(v) for v in rng.integers(10**width, size=2))
            k = carries(a, b)
            if (a, b) in seen or per_carry[k] >= quota:
                continue
            seen.add((a, b))
            per_carry[k] += 1
            out.append((a, b))
            got += 1
    return out
