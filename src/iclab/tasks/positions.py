"""Position prediction as a pretext task (Zhai, Jaitly, Ramapuram et al. 2022, "Position Prediction as an Effective
Pretraining Strategy"), for token tasks, and a task whose order can or cannot be read from its content.

``position_prediction`` reads the prompts of another token task (``task.base``, any token task's config) and asks
every token for its own position, a classification over the prompt's positions. The network reads the prompt at
once with no position embeddings (a transformer with ``model.positional: none``; every token a query) and only a
random share of the tokens is visible as keys and values: ``round(visible * length)`` of them (at least one) per
prompt, drawn from the training batch's ``(seed, step)`` (held out: from each prompt's tokens). With nothing to tell
positions apart but content, such a network is equivariant to any reordering of its input (tested), so it can only
predict a position the content gives away; on prompts whose order cannot be read from content its accuracy stays
at chance. Afterwards the network is fine-tuned with positions on the base task (``start.run`` with
``model.positional`` learned or rope: the position head is dropped, the positions start fresh; docs/tokens.md).

``ordered_set``: ``length`` distinct symbols drawn uniformly from ``n_symbols``, in increasing order (``order:
sorted``, where content gives position away) or in random order (``shuffled``, where it cannot); as a language
model, the next symbol (sorted: any larger symbol not yet used may come next; shuffled: any unused one). Under
position prediction the exact best predictor is the learner ``position_bayes``: for sorted prompts, a token ``v``'s
position is the number of symbols below it; the visible ones are counted, and the hidden ones below ``v`` follow a
hypergeometric law (the hidden symbols are a uniform draw from the symbols not seen, ``v`` among them when ``v``
itself is hidden, which a token can tell: no visible key holds its symbol); for shuffled prompts every position is
equally likely (``iclab.learners.token_learners.position_posterior``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from iclab.errors import ConfigError
from iclab.lazy import torch
from iclab.schema import family_config, require, require_positive
from iclab.tasks.base import TASKS
from iclab.tasks.token_task import Example, TokenTask, check_training_set
from iclab.types import IGNORE_INDEX, TokenPrompts, Vocabulary
from iclab.utils import derive_seed

VISIBLE_STREAM = 7  # seed stream of the visible keys of the training batches
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class OrderedSetConfig:
    name: str = "ordered_set"
    n_symbols: int = 26  # V: the symbols a-z (up to 52: A-Z after them)
    length: int = 12  # T: distinct symbols per prompt
    order: Literal["sorted", "shuffled"] = "sorted"
    n_train: int | None = None  # fixed training prompts cycled in epochs; null = a fresh prompt per item
    data_seed: int = 0

    def validate(self, path: str = "task") -> None:
        require_positive(self, path, "n_symbols", "length")
        most = len(_LETTERS)
        require(self.n_symbols <= most, f"{path}.n_symbols", f"must be at most {most}", self.n_symbols)
        require(
            2 <= self.length <= self.n_symbols,
            f"{path}.length",
            f"must be between 2 and task.n_symbols ({self.n_symbols}): the symbols of a prompt are distinct",
            self.length,
        )
        check_training_set(self, path)


@TASKS.register
class OrderedSet(TokenTask):
    """Distinct symbols in increasing (``sorted``) or random (``shuffled``) order: position readable from content,
    or not."""

    Config = OrderedSetConfig
    curve_axis = "position in the prompt"

    def __init__(self, config: OrderedSetConfig) -> None:
        super().__init__(config)
        self.vocab = Vocabulary(symbols=("_", *_LETTERS[: config.n_symbols]), pad=0)

    @property
    def max_tokens(self) -> int:
        return self.config.length

    def describe(self) -> str:
        c = self.config
        return f"{c.length} distinct of {c.n_symbols} symbols, {c.order}, {self.training_data()}"

    def relevant_learners(self) -> list[str]:
        return ["oracle"]

    def draw(self, rng: np.random.Generator) -> Example:
        c = self.config
        values = rng.choice(c.n_symbols, size=c.length, replace=False)
        values = np.sort(values) if c.order == "sorted" else values
        seq = (values + 1).astype(np.int64)  # token ids: the pad is 0
        targets = np.zeros(c.length, dtype=np.int64)
        targets[:-1] = seq[1:]
        scored = np.ones(c.length, dtype=bool)
        scored[-1] = False  # nothing follows the last symbol
        # the symbols that may come next, as bit masks: those not used yet (sorted: and above the last one)
        used = np.cumsum(np.left_shift(1, seq))  # distinct symbols: the sum of their bits is their union
        allowed = (1 << (c.n_symbols + 1)) - 2  # symbols 1 .. V
        if c.order == "sorted":
            allowed = allowed & ~((np.left_shift(1, seq + 1)) - 1)  # above the last symbol
        valid = allowed & ~used
        valid[-1] = 0  # nothing follows the last symbol
        return Example(tuple(seq.tolist()), seq, scored, valid, np.arange(c.length), targets=targets)


@dataclass
class PositionPredictionConfig:
    name: str = "position_prediction"
    base: dict = field(default_factory=lambda: {"name": "ordered_set"})  # the token task whose prompts are read
    visible: float = 0.5  # share of each prompt's tokens visible as keys and values (at least one token)

    def validate(self, path: str = "task") -> None:
        require(0 < self.visible <= 1, f"{path}.visible", "must be in (0, 1]", self.visible)
        base = base_config(self, path)
        if TASKS[base.name].prompt_kind != "tokens" or base.name == self.name:
            raise ConfigError(f"{path}.base.name: must be a token task other than {self.name}, got {base.name!r}")


def base_config(config: PositionPredictionConfig, path: str = "task"):
    """The base task's config (parsed and checked)."""
    return family_config(TASKS, f"{path}.base", config.base, "ordered_set", "task")


@TASKS.register
class PositionPrediction(TokenTask):
    """Every token predicts its own position from the visible share of its prompt, with no position embeddings
    (Zhai et al. 2022)."""

    Config = PositionPredictionConfig
    curve_axis = "position in the prompt"
    predicts_what = "positions"
    target_noun = "position"
    pretext = True
    bidirectional = True  # the network reads the visible tokens of the whole prompt
    no_positions = True  # the network must not be told positions (model.positional: none)

    def __init__(self, config: PositionPredictionConfig) -> None:
        super().__init__(config)
        self.base = TASKS[base_config(config).name](base_config(config))
        self.vocab = self.base.vocab

    # the base task's prompts, sizes and data
    @property
    def max_tokens(self) -> int:
        return self.base.max_tokens

    @property
    def n_outputs(self) -> int:
        """One class per position."""
        return self.max_tokens

    def describe(self) -> str:
        return (
            f"the position of every token of {self.base.name} prompts ({self.base.describe()}), "
            f"{self.config.visible:g} of the tokens visible"
        )

    def relevant_learners(self) -> list[str]:
        return ["position_bayes"] if self.base.name == "ordered_set" else ["uniform_position"]

    def training_data(self, item: str = "prompt") -> str:
        return self.base.training_data(item)

    def training_set(self):
        return self.base.training_set()

    def train_keys(self) -> set:
        return self.base.train_keys()

    def log_fields(self, step: int, batch_size: int) -> dict:
        return self.base.log_fields(step, batch_size)

    def draw(self, rng: np.random.Generator) -> Example:
        return self.base.draw(rng)

    def draw_held_out(self, rng: np.random.Generator) -> Example:
        return self.base.draw_held_out(rng)

    def eval_examples(self, n_prompts: int, seed: int) -> list[Example]:
        return self.base.eval_examples(n_prompts, seed)

    # the prompts, with positions as targets and the visible keys
    def n_visible(self, length: int) -> int:
        return max(1, int(round(self.config.visible * length)))

    def with_positions(self, prompts: TokenPrompts, rng: np.random.Generator) -> TokenPrompts:
        """``prompts`` with every non-pad token's target its position, and ``info["key_mask"]`` (B, T): the
        visible tokens, ``n_visible`` of each prompt's, uniformly at random."""
        tokens = prompts.tokens
        b, t = tokens.shape
        real = tokens != self.vocab.pad
        lengths = real.sum(1).tolist()
        visible = np.zeros((b, t), dtype=bool)
        for i, n in enumerate(lengths):
            visible[i, rng.choice(n, size=min(self.n_visible(n), n), replace=False)] = True
        positions = torch.arange(t).expand(b, t)
        targets = torch.where(real, positions, torch.full_like(positions, IGNORE_INDEX))
        valid = torch.zeros(b, t, self.n_outputs, dtype=torch.bool)
        valid[real] = torch.nn.functional.one_hot(positions[real], self.n_outputs).bool()
        info = {
            "valid": valid,
            "string_index": positions.clone(),
            "key_mask": torch.from_numpy(visible),
        }
        return TokenPrompts(tokens, targets, self.vocab, info)

    def train_batch(self, batch_size: int, seed: int, step: int) -> TokenPrompts:
        prompts = self.base.train_batch(batch_size, seed, step)
        return self.with_positions(prompts, np.random.default_rng(derive_seed(seed, VISIBLE_STREAM, step)))

    def batch(self, examples: list[Example], score_all: bool = False) -> TokenPrompts:
        """The examples' prompts; the visible keys drawn from the prompts' own tokens (so held-out prompts see the
        same keys in every evaluation)."""
        prompts = self.base.batch(examples)
        digest = hashlib.sha256(prompts.tokens.numpy().tobytes()).digest()
        return self.with_positions(prompts, np.random.default_rng(int.from_bytes(digest[:8], "little")))

    def sample(self, batch_size, generator, n_active_dims=None, n_points=None) -> TokenPrompts:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        return self.with_positions(self.base.batch([self.base.draw(rng) for _ in range(batch_size)]), rng)

    def batch_loss(self, model, batch: TokenPrompts, loss_on: str = "all") -> torch.Tensor:
        """Cross-entropy of every token's position, the network reading only the visible keys."""
        logits = model(batch.tokens, key_mask=batch.info["key_mask"].to(batch.tokens.device))
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), batch.targets.reshape(-1), ignore_index=IGNORE_INDEX
        )


__all__ = ["OrderedSet", "PositionPrediction"]
