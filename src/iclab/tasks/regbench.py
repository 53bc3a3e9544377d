"""REGBENCH: in-context learning of regular languages (Akyürek, Wang, Kim, Andreas 2024, "In-Context Language
Learning: Architectures and Algorithms"; code berlino/seq_icl).

Each prompt is 10-19 strings from one random probabilistic finite automaton, written ``w1|w2|...|wk``. The
automaton has 4-12 states and an alphabet of 4-18 of the 18 letters ``a``-``r`` (drawn without replacement);
each state has 1-3 outgoing edges with distinct symbols to distinct other states (no self-loops), every state
accepts, and the automaton is minimised and trimmed. A string starts in the initial state; its length is
uniform in 1-49; each next symbol is uniform over the current state's edges. The vocabulary has 20 tokens:
pad ``.``, the letters, separator ``|``. A prompt is cut at ``max_length`` = 512 tokens; inputs are
``tokens[:-1]``, targets ``tokens[1:]``, and a separator is never a target (the end of a string is not
predictable), so every target has a known distribution: uniform over the current state's edges (``info["valid"]``).

Differences from the reference code (checked against seq_icl's data generator), all deliberate:

- **De-duplication works.** The reference keeps its automata in a Python set, but its automaton class defines
  ``__hash__`` without ``__eq__``, so equal automata never compare equal and nothing is de-duplicated. Here an
  automaton's key is the canonical form of its minimal automaton (states numbered in breadth-first order from
  the initial state, edges in symbol order), which two automata share exactly when they generate the same
  language with the same next-symbol distributions; training automata are distinct, and held-out automata
  are never training ones.
- **Sampling draws** use one uniform number per symbol (the same distribution as the reference's
  ``rng.choice`` over edges, a different random stream).
- The state counts (4-12) are before minimisation, as in the reference; minimisation merges states that
  cannot be told apart, so the minimal automaton may have fewer.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from iclab.schema import require, require_positive
from iclab.tasks.base import TASKS
from iclab.tasks.token_task import Example, TokenTask
from iclab.types import Vocabulary


@dataclass
class RegBenchConfig:
    name: str = "regbench"
    n_train: int | None = 1000  # training automata, one prompt each, cycled in epochs; null = a fresh one per prompt
    data_seed: int = 0  # the training set is a function of this seed (held-out automata are never in it)
    n_letters: int = 18  # letters in the vocabulary (a, b, ...); vocabulary = pad + letters + separator
    min_states: int = 4  # states of a random automaton (before minimisation), uniform in min..max
    max_states: int = 12
    min_alphabet: int = 4  # letters an automaton uses, uniform in min_alphabet..n_letters
    max_edges: int = 3  # outgoing edges per state, uniform in 1..max_edges
    min_strings: int = 10  # strings per prompt, uniform in min..max
    max_strings: int = 19
    max_string_length: int = 49  # string lengths uniform in 1..max_string_length
    max_length: int = 512  # tokens per prompt (strings and separators) before the shift; longer prompts are cut

    def validate(self, path: str = "task") -> None:
        require_positive(
            self,
            path,
            "n_letters",
            "min_states",
            "max_states",
            "min_alphabet",
            "max_edges",
            "min_strings",
            "max_strings",
            "max_string_length",
            "max_length",
        )
        if self.n_train is not None:
            require(
                self.n_train >= 1,
                f"{path}.n_train",
                "must be at least 1 (or null for a fresh automaton per prompt)",
                self.n_train,
            )
        require(self.data_seed >= 0, f"{path}.data_seed", "must be non-negative", self.data_seed)
        require(self.n_letters <= 26, f"{path}.n_letters", "must be at most 26 (the letters a-z)", self.n_letters)
        require(
            self.min_states <= self.max_states,
            f"{path}.min_states",
            f"must be at most task.max_states ({self.max_states})",
            self.min_states,
        )
        require(
            self.max_edges < self.min_states,
            f"{path}.max_edges",
            f"must be less than task.min_states ({self.min_states}): edges go to distinct other states",
            self.max_edges,
        )
        require(
            self.max_edges <= self.min_alphabet <= self.n_letters,
            f"{path}.min_alphabet",
            f"must be between task.max_edges ({self.max_edges}) and task.n_letters ({self.n_letters})",
            self.min_alphabet,
        )
        require(
            self.min_strings >= 2,
            f"{path}.min_strings",
            "must be at least 2 (strings to learn from, and one to predict)",
            self.min_strings,
        )
        require(
            self.min_strings <= self.max_strings,
            f"{path}.min_strings",
            f"must be at most task.max_strings ({self.max_strings})",
            self.min_strings,
        )
        require(self.max_length >= 3, f"{path}.max_length", "must be at least 3 tokens", self.max_length)


# ------------------------------------------------------------------ automata
# An automaton is a list of dicts: transitions[state] = {symbol: next_state}; state 0 is initial.


def random_automaton(rng: np.random.Generator, c: RegBenchConfig) -> list[dict[int, int]]:
    """The reference's random automaton (before minimisation); symbols are letter indices 0 .. n_letters - 1."""
    n = int(rng.integers(c.min_states, c.max_states + 1))
    n_alpha = int(rng.integers(c.min_alphabet, c.n_letters + 1))
    alphabet = rng.choice(c.n_letters, size=n_alpha, replace=False)
    transitions = []
    for state in range(n):
        k = int(rng.integers(1, c.max_edges + 1))
        symbols = rng.choice(alphabet, size=k, replace=False)
        others = [s for s in range(n) if s != state]
        targets = rng.choice(others, size=k, replace=False)
        transitions.append({int(a): int(t) for a, t in zip(symbols, targets)})
    return transitions


def minimise(transitions: list[dict[int, int]]) -> list[dict[int, int]]:
    """The trimmed minimal automaton, in canonical form: states reachable from the initial state, states that
    cannot be told apart merged (every state accepts, a missing edge rejects), numbered in breadth-first order
    from the initial state (0) with edges taken in symbol order. Two automata have the same canonical form
    exactly when they define the same language."""
    reach, frontier = {0}, [0]
    while frontier:
        nxt = []
        for s in frontier:
            for t in transitions[s].values():
                if t not in reach:
                    reach.add(t)
                    nxt.append(t)
        frontier = nxt
    states = sorted(reach)
    block = {s: tuple(sorted(transitions[s])) for s in states}  # first split: the set of outgoing symbols
    while True:  # Moore's partition refinement
        sig = {s: (block[s], tuple(block[transitions[s][a]] for a in sorted(transitions[s]))) for s in states}
        ids = {v: i for i, v in enumerate(sorted(set(sig.values()), key=repr))}
        new = {s: ids[sig[s]] for s in states}
        if len(set(new.values())) == len(set(block.values())):
            break
        block = new
    block = {s: ids[sig[s]] for s in states}
    rep = {}
    for s in states:
        rep.setdefault(block[s], s)
    order, number = [block[0]], {block[0]: 0}
    i = 0
    while i < len(order):
        s = rep[order[i]]
        for a in sorted(transitions[s]):
            b = block[transitions[s][a]]
            if b not in number:
                number[b] = len(order)
                order.append(b)
        i += 1
    return [{a: number[block[t]] for a, t in sorted(transitions[rep[b]].items())} for b in order]


def automaton_key(canonical: list[dict[int, int]]) -> tuple:
    return tuple(tuple(sorted(edges.items())) for edges in canonical)


@TASKS.register
class RegBench(TokenTask):
    """REGBENCH (Akyürek et al. 2024): strings from a random probabilistic finite automaton per prompt."""

    Config = RegBenchConfig

    def __init__(self, config: RegBenchConfig) -> None:
        super().__init__(config)
        letters = string.ascii_lowercase[: config.n_letters]
        self.vocab = Vocabulary(symbols=(".", *letters, "|"), pad=0, separator=config.n_letters + 1)

    def relevant_learners(self) -> list[str]:
        return ["automaton", "ngram(n=2)", "ngram(n=3)", "ngram(n=4)", "unigram"]

    def draw(self, rng: np.random.Generator) -> Example:
        c = self.config
        auto = minimise(random_automaton(rng, c))
        n_strings = int(rng.integers(c.min_strings, c.max_strings + 1))
        lengths = rng.integers(1, c.max_string_length + 1, size=n_strings)
        edges = [sorted(e.items()) for e in auto]
        masks = [sum(1 << (a + 1) for a in e) for e in auto]  # token id = letter index + 1
        sep = self.vocab.separator
        seq, valid, index = [], [], []
        for j, length in enumerate(lengths):
            if j:
                seq.append(sep)
                valid.append(masks[0])  # after a separator, the next string starts in the initial state
                index.append(j)
            state = 0
            for u in rng.random(int(length)):
                a, state = edges[state][int(u * len(edges[state]))]
                seq.append(a + 1)
                valid.append(masks[state])
                index.append(j)
            if len(seq) >= c.max_length:
                break
        seq = np.asarray(seq[: c.max_length], dtype=np.int64)
        valid = np.asarray(valid[: len(seq) - 1], dtype=np.int64)
        index = np.asarray(index[: len(seq) - 1], dtype=np.int64)
        scored = seq[1:] != sep
        return Example(automaton_key(auto), seq, scored, np.where(scored, valid, 0), index)
