"""Multi-query associative recall over tokens (Arora, Eyuboglu, Timalsina, Johnson, Poli, Zou, Rudra, Ré 2023,
"Zoology: Measuring and Improving Recall in Efficient Language Models"; code HazyResearch/zoology, its
``multiquery_ar`` generator).

A prompt of ``seq_len`` tokens: first ``n_pairs`` key-value pairs ``k1 v1 k2 v2 ...``, keys drawn without
replacement from the lower half of the vocabulary (``1 .. V/2 - 1``) and values from the upper half
(``V/2 .. V - 1``); then the query region, ``seq_len - 2 n_pairs`` tokens, where every key appears once more at an
even offset ``2 g`` with the gaps ``g`` drawn without replacement from a power law ``p(g) ∝ a g^(a - 1)``,
``g = 1 .. (seq_len - 2 n_pairs) / 2`` (``power_a`` a = 0.01: mostly short gaps, a long tail). The label at a
query is its key's value; nothing else is scored. The other positions of the query region hold random tokens
from the whole vocabulary (``random_non_queries``, Zoology's default), else token 0.

As in the reference, inputs are the sequence itself and the label of a query sits at the query's own position
(the value is what comes next). The curves are against the query's rank in the prompt (first query, second, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iclab.schema import require, require_positive
from iclab.tasks.base import TASKS
from iclab.tasks.token_task import Example, TokenTask, check_training_set
from iclab.types import Vocabulary


@dataclass
class MqarConfig:
    name: str = "mqar"
    vocab_size: int = 256  # V: keys from 1 .. V/2 - 1, values from V/2 .. V - 1 (Zoology: 8192)
    seq_len: int = 64  # tokens per prompt (Zoology's input_seq_len)
    n_pairs: int = 8  # key-value pairs per prompt (num_kv_pairs)
    power_a: float = 0.01  # exponent of the power law of query gaps (1 = uniform)
    random_non_queries: bool = True  # fill the query region's other positions with random tokens, else 0
    n_train: int | None = 20000  # training prompts, cycled in epochs; null = a fresh prompt per item
    data_seed: int = 0

    def validate(self, path: str = "task") -> None:
        require_positive(self, path, "vocab_size", "seq_len", "n_pairs", "power_a")
        require(
            self.vocab_size >= 4,
            f"{path}.vocab_size",
            "must be at least 4 (keys and values need a half each)",
            self.vocab_size,
        )
        require(self.seq_len % 2 == 0, f"{path}.seq_len", "must be even (queries sit at even offsets)", self.seq_len)
        require(
            self.vocab_size > self.seq_len,
            f"{path}.vocab_size",
            f"must be larger than task.seq_len ({self.seq_len}), as in the reference",
            self.vocab_size,
        )
        require(
            self.n_pairs <= self.vocab_size // 2 - 1,
            f"{path}.n_pairs",
            f"must be at most {self.vocab_size // 2 - 1}: keys are distinct, from 1 .. vocab_size/2 - 1",
            self.n_pairs,
        )
        require(
            4 * self.n_pairs <= self.seq_len,
            f"{path}.n_pairs",
            f"must be at most task.seq_len / 4 ({self.seq_len // 4}): the pairs and as many query slots must fit",
            self.n_pairs,
        )
        check_training_set(self, path)


@TASKS.register
class Mqar(TokenTask):
    """Multi-query associative recall (Zoology): key-value pairs, then each key queried once at a power-law gap."""

    Config = MqarConfig
    curve_axis = "queries already answered"

    def __init__(self, config: MqarConfig) -> None:
        super().__init__(config)
        half = config.vocab_size // 2
        symbols = ["_"] + [f"k{i}" for i in range(1, half)] + [f"v{i}" for i in range(config.vocab_size - half)]
        self.vocab = Vocabulary(symbols=tuple(symbols), pad=0)
        space = (config.seq_len - 2 * config.n_pairs) // 2
        a = config.power_a
        p = a * np.arange(1, space + 1, dtype=np.float64) ** (a - 1)
        self.gap_probs = p / p.sum()

    @property
    def max_tokens(self) -> int:
        return self.config.seq_len

    def describe(self) -> str:
        c = self.config
        return (
            f"{c.n_pairs} key-value pairs in {c.seq_len} tokens, vocabulary of {c.vocab_size}, {self.training_data()}"
        )

    def relevant_learners(self) -> list[str]:
        return ["oracle"]

    def draw(self, rng: np.random.Generator) -> Example:
        c = self.config
        half, n = c.vocab_size // 2, c.n_pairs
        keys = rng.choice(np.arange(1, half), size=n, replace=False)
        values = rng.choice(np.arange(half, c.vocab_size), size=n, replace=False)
        context = 2 * n
        seq = np.zeros(c.seq_len, dtype=np.int64)
        seq[0:context:2], seq[1:context:2] = keys, values
        gaps = rng.choice(len(self.gap_probs), size=n, replace=False, p=self.gap_probs)
        where = context + 2 * gaps
        seq[where] = keys
        targets = np.zeros(c.seq_len, dtype=np.int64)
        targets[where] = values
        scored = np.zeros(c.seq_len, dtype=bool)
        scored[where] = True
        if c.random_non_queries:
            fill = np.ones(c.seq_len, dtype=bool)
            fill[:context] = False
            fill[where] = False
            seq[fill] = rng.integers(c.vocab_size, size=int(fill.sum()))
        rank = np.cumsum(scored) - scored  # queries before each position
        return Example(
            tuple(seq.tolist()), seq, scored, None, rank.astype(np.int64), targets=targets, meta={"gaps": gaps}
        )
