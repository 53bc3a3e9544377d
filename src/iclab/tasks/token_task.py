"""Token tasks: distributions over token sequences (formal languages, and the token tasks that follow).

A token task draws :class:`~iclab.types.TokenPrompts`. What differs from the real-valued tasks:

- **A fixed training set is first-class.** With ``task.n_train = N`` the task draws ``N`` training prompts
  once from ``task.data_seed`` (each from a process no other training prompt shares, e.g. a distinct
  automaton) and cycles through them in epochs; the batch of step ``s`` takes items ``s*B .. (s+1)*B - 1`` of
  the concatenated epoch orders, each epoch's order a permutation drawn from ``(train.seed, epoch)``. So a
  batch is still a pure function of ``(seed, step)`` and resumption stays exact. ``n_train: null`` draws a
  fresh prompt for every item instead.
- **Held-out prompts never share a process with the training set**: :meth:`TokenTask.eval_prompts` draws
  from its own stream and rejects any process (by a canonical key, :meth:`TokenTask.draw`) that is in the
  training set or already drawn.
- Prompts are padded to the longest prompt of the batch (``vocab.pad``; targets ``IGNORE_INDEX``).

A family implements :meth:`TokenTask.draw` (one example from a numpy generator) and names its vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iclab.lazy import torch
from iclab.schema import require
from iclab.tasks.base import EVAL_STREAM, TRAIN_STREAM, Task
from iclab.types import IGNORE_INDEX, TokenPrompts, Vocabulary
from iclab.utils import derive_seed

EPOCH_STREAM = 4  # seed stream of the epoch orders over a fixed training set


def check_training_set(config, path: str) -> None:
    """The ``n_train`` (at least 1, or null for a fresh prompt per item) and ``data_seed`` fields of a token task."""
    if config.n_train is not None:
        why = "must be at least 1 (or null for a fresh prompt per item)"
        require(config.n_train >= 1, f"{path}.n_train", why, config.n_train)
    require(config.data_seed >= 0, f"{path}.data_seed", "must be non-negative", config.data_seed)


@dataclass
class Example:
    """One prompt before batching: the whole sequence and its per-position ground truth.

    Two layouts. A language-modelling example (``targets`` None) predicts its own next token: the inputs are
    ``sequence[:-1]``, the targets ``sequence[1:]``, and the per-position arrays have ``L - 1`` entries. An example
    with explicit ``targets`` (a label per input position, as in associative recall or per-token classification)
    feeds the whole ``sequence`` and scores ``targets`` (``L`` entries each).
    """

    key: object  # identifies the generating process (for de-duplication across train and held-out sets)
    sequence: np.ndarray  # (L,) token ids
    scored: np.ndarray  # (L - 1,) or (L,) bool: whether target t is predicted
    valid: np.ndarray | None  # int64 bit masks, bit v set when symbol v may come next; None: the target alone
    string_index: np.ndarray  # complete strings (or the task's curve unit) before target t
    targets: np.ndarray | None = None  # (L,) explicit targets (see above); None: the next token
    meta: dict | None = None  # per-example facts a task's own evaluation reads (digits, carries, ...)

    @property
    def inputs(self) -> np.ndarray:
        return self.sequence if self.targets is not None else self.sequence[:-1]

    @property
    def next_tokens(self) -> np.ndarray:
        return self.targets if self.targets is not None else self.sequence[1:]


class TokenTask(Task):
    """Base class of the token tasks. Subclasses set ``Config`` (with ``n_train`` and ``data_seed``), ``vocab`` and
    :meth:`draw`, and :attr:`max_tokens` unless their config's ``max_length`` is the prompt length."""

    prompt_kind = "tokens"
    predicts_what = "next tokens"
    any_length = False
    vocab: Vocabulary
    curve_axis = "strings seen in the prompt"  # what the x-axis of the task's curves counts (string_index)
    generates = False  # whether evaluation also decodes answers (see iclab.kinds.tokens.generation)
    scores_all_in_training = False  # True: training scores every next token, not only the example's scored ones
    bidirectional = False  # True: labels depend on the whole input, so the model reads every non-pad token at once
    target_noun = "next-symbol"  # what a network predicts at each token, in words (metrics and reports)

    def __init__(self, config) -> None:
        super().__init__(config)
        self._train: list[Example] | None = None
        self._train_keys: set | None = None

    # ------------------------------------------------------------------ what a token task is
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def input_ids(self) -> list[int]:
        """The token ids of :meth:`input_symbols`, in their order."""
        index = {symbol: i for i, symbol in enumerate(self.vocab.symbols)}
        return [index[s] for s in self.input_symbols()]

    @property
    def input_vocab_size(self) -> int:
        """The token ids a prompt can hold run from 0 to this less one (the pad and :meth:`input_ids`): a task whose
        labels have symbols of their own lists them last, so a family that reads tokens as one-hot variables (the
        Transformer Program) needs only this many values."""
        return 1 + max([self.vocab.pad, *self.input_ids()])

    @property
    def n_outputs(self) -> int:
        """The classes a network predicts at each token: the vocabulary (a pretext task predicts other things)."""
        return self.vocab_size

    @property
    def max_tokens(self) -> int:
        """The longest input a prompt can have (positions a model needs)."""
        return self.config.max_length - 1

    @property
    def n_dims(self) -> int:  # the real-valued interface does not apply
        raise AttributeError(f"{self.name} is a token task: it has no input dimension")

    @property
    def n_points(self) -> int:
        raise AttributeError(f"{self.name} is a token task: its prompts are token sequences, not points")

    @property
    def error_label(self) -> str:
        return "1 - accuracy"

    def input_symbols(self) -> list[str]:
        """The symbols a prompt can hold (the vocabulary less the pad; a task whose labels have symbols of their own
        names only its inputs), for programs that enumerate them."""
        return [s for i, s in enumerate(self.vocab.symbols) if i != self.vocab.pad]

    def training_data(self, item: str = "prompt") -> str:
        """``"a fresh prompt every item"`` or ``"1000 training prompts cycled in epochs"`` (for :meth:`describe`)."""
        n = self.config.n_train
        return f"a fresh {item} every item" if n is None else f"{n} training {item}s cycled in epochs"

    def describe(self) -> str:
        return f"vocabulary of {self.vocab_size}, up to {self.max_tokens} input tokens, {self.training_data()}"

    def shift_unsupported(self, name: str) -> str | None:
        if name == "standard":
            return None
        return "it is a token task; distribution shifts are defined for real-valued prompts"

    def probe_target_unsupported(self, name: str) -> str | None:
        return "it is a token task; probe targets are properties of real-valued prompts"

    def relevant_learners(self) -> list[str]:
        raise NotImplementedError

    # ------------------------------------------------------------------ training
    def batch_loss(self, model, batch: TokenPrompts, loss_on: str = "all") -> torch.Tensor:
        """Cross-entropy of the next token at every scored position."""
        logits = model(batch.tokens)  # (B, T, V)
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), batch.targets.reshape(-1), ignore_index=IGNORE_INDEX
        )

    def loss_terms(self, batch: TokenPrompts, loss_on: str = "all") -> int:
        """The scored tokens (what the cross-entropy averages over)."""
        return int((batch.targets != IGNORE_INDEX).sum())

    def log_fields(self, step: int, batch_size: int) -> dict:
        n = self.config.n_train
        return {} if n is None else {"epoch": round(step * batch_size / n, 4)}

    # ------------------------------------------------------------------ drawing
    def draw(self, rng: np.random.Generator) -> Example:
        """One example from ``rng``."""
        raise NotImplementedError

    def draw_held_out(self, rng: np.random.Generator) -> Example:
        """One held-out example from ``rng``: :meth:`draw`, unless the task's held-out prompts come from another
        distribution (a family overrides this)."""
        return self.draw(rng)

    def _draw_unique(self, rng: np.random.Generator, n: int, exclude: set, draw=None) -> list[Example]:
        draw = draw or self.draw
        out, seen = [], set(exclude)
        tries = 0
        while len(out) < n:
            ex = draw(rng)
            tries += 1
            if ex.key in seen:
                if tries > 100 * n + 1000:
                    raise RuntimeError(
                        f"{self.name}: could not draw {n} distinct prompts; the settings allow too few "
                        f"distinct processes"
                    )
                continue
            seen.add(ex.key)
            out.append(ex)
        return out

    def training_set(self) -> list[Example]:
        """The fixed training examples (``task.n_train`` of them, drawn from ``task.data_seed``), built once."""
        if self.config.n_train is None:
            return []
        if self._train is None:
            rng = np.random.default_rng(derive_seed(self.config.data_seed, TRAIN_STREAM))
            self._train = self._draw_unique(rng, self.config.n_train, set())
            self._train_keys = {ex.key for ex in self._train}
        return self._train

    def batch(self, examples: list[Example], score_all: bool = False) -> TokenPrompts:
        """Pad examples to the longest and stack them; ``score_all`` scores every position of every example."""
        b = len(examples)
        t = max(len(ex.inputs) for ex in examples)
        v = self.vocab_size
        tokens = np.full((b, t), self.vocab.pad, dtype=np.int64)
        targets = np.full((b, t), IGNORE_INDEX, dtype=np.int64)
        string_index = np.zeros((b, t), dtype=np.int64)
        masks = all(ex.valid is not None for ex in examples)
        valid = np.zeros((b, t), dtype=np.int64) if masks else None
        for i, ex in enumerate(examples):
            n = len(ex.inputs)
            tokens[i, :n] = ex.inputs
            every = score_all and ex.targets is None  # (labels exist only where an example gives them)
            targets[i, :n] = ex.next_tokens if every else np.where(ex.scored, ex.next_tokens, IGNORE_INDEX)
            if masks:
                valid[i, :n] = ex.valid
            string_index[i, :n] = ex.string_index
        targets_t = torch.from_numpy(targets)
        if masks:  # sets of valid next symbols (REGBENCH), as bit masks
            bits = torch.from_numpy(valid).unsqueeze(-1) >> torch.arange(v)
            valid_t = (bits & 1).bool()
        else:  # one right answer per scored position
            valid_t = torch.zeros(b, t, v, dtype=torch.bool)
            scored = targets_t != IGNORE_INDEX
            valid_t[scored, targets_t[scored]] = True
        info = {"valid": valid_t, "string_index": torch.from_numpy(string_index)}
        return TokenPrompts(torch.from_numpy(tokens), targets_t, self.vocab, info)

    def sample(self, batch_size, generator, n_active_dims=None, n_points=None) -> TokenPrompts:
        """Fresh prompts from a torch generator (their processes may coincide with training ones)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        return self.batch([self.draw(rng) for _ in range(batch_size)])

    def train_batch(self, batch_size: int, seed: int, step: int) -> TokenPrompts:
        if self.config.n_train is None:
            rng = np.random.default_rng(derive_seed(seed, TRAIN_STREAM, step))
            return self.batch([self.draw(rng) for _ in range(batch_size)], self.scores_all_in_training)
        data = self.training_set()
        n = len(data)
        start = step * batch_size
        picked = []
        for item in range(start, start + batch_size):
            epoch, pos = divmod(item, n)
            picked.append(data[self._epoch_order(seed, epoch)[pos]])
        return self.batch(picked, self.scores_all_in_training)

    def _epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        cache = getattr(self, "_orders", None)
        if cache is None or cache[0] != (seed, epoch):
            order = np.random.default_rng(derive_seed(seed, EPOCH_STREAM, epoch)).permutation(self.config.n_train)
            self._orders = cache = ((seed, epoch), order)
        return cache[1]

    def eval_examples(self, n_prompts: int, seed: int) -> list[Example]:
        """``n_prompts`` held-out examples, each from a process that is not in the training set (nor repeated)."""
        self.training_set()
        rng = np.random.default_rng(derive_seed(seed, EVAL_STREAM, 0))
        return self._draw_unique(rng, n_prompts, self._train_keys or set(), self.draw_held_out)

    def eval_prompts(self, n_prompts: int, seed: int) -> TokenPrompts:
        """The held-out examples (:meth:`eval_examples`) as a batch."""
        return self.batch(self.eval_examples(n_prompts, seed))

    def train_keys(self) -> set:
        self.training_set()
        return set(self._train_keys or ())
