"""What every model family shares: the ``MODELS`` registry and the :class:`ModelConfig` base of the families'
configs.

A family is one file that reads top to bottom, as nanoGPT's ``model.py`` does: its config (a dataclass
subclassing :class:`ModelConfig`, registered with ``@MODELS.register``, whose :meth:`ModelConfig.build` makes the
network), its blocks, and its network (read-in, positions, blocks, read-out, and the forward pass through them),
built from the shared parts of :mod:`iclab.models.parts` imported by name. ``transformer.py``, ``memory.py``,
``ssm.py``, ``rnn.py`` and ``lsa.py`` are the families; :meth:`ModelConfig.label` names a network in tables and
plots ("LSTM 2x64").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from iclab.models.embeddings import EMBEDDINGS
from iclab.models.encoders import ENCODERS
from iclab.models.hooks import HookPoint
from iclab.models.ngram_heads import with_ngram_layers
from iclab.models.parts import linear_read_out, read_in
from iclab.registry import Registry
from iclab.schema import one_of, require, require_positive

MODELS = Registry("model")  # name -> the family's config class


@dataclass
class ModelConfig:
    """What every family's config shares. A subclass adds its fields, sets the class attributes below and
    implements :meth:`build`."""

    name: str = ""
    # how a prompt becomes tokens: one of the family's ``encoders`` (unused on token tasks)
    encoder: str = "interleaved"
    n_layer: int = 2  # blocks in the stack
    # n-gram layers (Akyürek et al. 2024) inserted after block ngram_after, one per order listed: e.g. [1, 2, 4].
    # They read token ids, so they need a token task.
    ngram_heads: list[int] = field(default_factory=list)
    ngram_after: int = 1
    # the token embedding table on token tasks (iclab.models.embeddings): trained, or fixed before training to random
    # orthonormal rows or to rendered glyphs of each token (Bochkov 2025)
    embedding: str = "trainable"

    encoders: ClassVar[tuple[str, ...]] = ("interleaved",)  # the prompt encoders it takes (the first: default)
    read_in: ClassVar[bool] = True  # reads tokens through a read-in (so it can be a language model)
    quick: ClassVar[dict] = {}  # field overrides for a seconds-long CPU run that learns in context (the tests')
    block: ClassVar[Any] = None  # for the default build(): the block class, Block(config, width)
    real_valued: ClassVar[bool] = True  # reads real-valued prompts (False: token ids only)
    bidirectional: ClassVar[bool] = False  # can read a whole input at once (tasks with ``bidirectional``)
    ngram_layers: ClassVar[bool] = True  # takes n-gram layers (model.ngram_heads)
    embedding_table: ClassVar[bool] = True  # reads token ids through an embedding table (model.embedding applies)

    def build(self, d_in: int, n_outputs: int = 1, vocab_size: int | None = None):
        """The network: ``forward(tokens, layout)`` maps ``(B, T, d_in)`` real-valued tokens (or ``(B, T)`` token
        ids when ``vocab_size`` is given) to ``(B, T)`` predictions or ``(B, T, n_outputs)`` logits.

        The default, for a new family that only writes a block: read-in, ``n_layer`` blocks (``self.block``),
        LayerNorm, linear read-out (:class:`BlockStack`). A family that wants anything else
        around its blocks writes its own network class, as every built-in family does."""
        if self.block is None:
            raise NotImplementedError(f"{type(self).__name__} sets no block and does not implement build()")
        return BlockStack(self, d_in, n_outputs, vocab_size)

    def validate(self, path: str = "model") -> None:
        if self.encoder not in self.encoders:
            if self.encoder not in ENCODERS:
                require(False, f"{path}.encoder", one_of(self.encoders), self.encoder)
            takes = (
                f"the {self.encoders[0]} encoder"
                if len(self.encoders) == 1
                else f"the encoders {', '.join(self.encoders)}"
            )
            require(False, f"{path}.encoder", f"{self.name} takes {takes}", self.encoder)
        require_positive(self, path, "n_layer")
        require(self.embedding in EMBEDDINGS, f"{path}.embedding", one_of(EMBEDDINGS), self.embedding)
        for i, n in enumerate(self.ngram_heads):
            require(1 <= n <= 8, f"{path}.ngram_heads[{i}]", "must be an n-gram order between 1 and 8", n)
        require(
            0 <= self.ngram_after <= self.n_layer,
            f"{path}.ngram_after",
            f"must be between 0 and model.n_layer ({self.n_layer})",
            self.ngram_after,
        )

    def check_token_task(self, task) -> None:
        """Anything the family needs to know of a token task before it is built (resolved in place), or refuses."""

    def parameters_lower_bound(self) -> int:
        """A closed-form lower bound on the blocks' parameters (read-in, read-out and biases left out), so that a
        size no machine can hold is refused before any module is built."""
        return 0

    def activations_lower_bound(self) -> int:
        """A closed-form lower bound on the floats the blocks output per token (each layer writes at least its
        width once)."""
        return self.n_layer * getattr(self, "n_embd", 1)

    def label(self, tokens: bool = False) -> str:
        """The network's name in tables and plots: family and size (``tokens``: as a language model, where the
        prompt encoder plays no part)."""
        width = getattr(self, "n_embd", None)
        return f"{self.name} {self.n_layer}x{width}" if width else f"{self.name} {self.n_layer} layers"

    def ngram_label(self) -> str:
        """`` + n-gram heads 1,2,4`` when the network has n-gram layers, else ``""``."""
        if not self.ngram_heads:
            return ""
        return f" + n-gram heads {','.join(str(n) for n in self.ngram_heads)}"


def heads_divide_width(cfg, path: str) -> None:
    """``n_embd`` and ``n_head`` positive, and the heads divide the width."""
    require_positive(cfg, path, "n_embd", "n_head")
    require(
        cfg.n_embd % cfg.n_head == 0, f"{path}.n_embd", f"must be divisible by model.n_head ({cfg.n_head})", cfg.n_embd
    )


class BlockStack(nn.Module):
    """The default network of a family that only writes a block (:meth:`ModelConfig.build`): read-in, the blocks
    (and any n-gram layers), LayerNorm, linear read-out. Hooks: ``hook_embed``, the blocks' own, ``hook_final``."""

    def __init__(self, config, d_in: int, n_outputs: int = 1, vocab_size: int | None = None) -> None:
        super().__init__()
        self.config = config
        width = config.n_embd
        self.read_in = read_in(d_in, width, vocab_size)
        self.hook_embed = HookPoint()
        self.pos_embed = None
        layers = [config.block(config, width) for _ in range(config.n_layer)]
        self.blocks = nn.ModuleList(with_ngram_layers(layers, config, width))
        self.ln_f = nn.LayerNorm(width)
        self.hook_final = HookPoint()
        self.read_out = nn.Linear(width, n_outputs)

    def forward(self, tokens: torch.Tensor, layout) -> torch.Tensor:
        x = self.hook_embed(self.read_in(tokens))  # (B, T, D)
        for block in self.blocks:
            x = block(x, layout)
        return linear_read_out(self.read_out(self.hook_final(self.ln_f(x))))
