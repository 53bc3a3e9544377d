"""The model families' configs and the ``MODELS`` registry. Importing this module does not import torch, so
a run config can be read and checked without it; the networks themselves are built by
:class:`iclab.models.shell.Network` when a model is needed.

Every network is one shell around a family's block (:mod:`iclab.models.shell`)::

    tokens --read-in--> (+ learned positions) --block x n_layer--> (final norm) --read-out--> predictions

A family is its config (a dataclass here, registered with ``@MODELS.register``) and its block (a module
in its own file: ``transformer.py``, ``memory.py``, ``ssm.py``, ``rnn.py``, ``lsa.py``). The config's class
attributes tell the shell what to put around the blocks:

- ``block``: the block class, or ``"module:Class"`` (imported when the network is built);
- ``encoders``: the prompt encoders the family takes (the first is the default);
- ``read_in``: a linear read-in to ``n_embd`` (else the tokens are the residual stream);
- ``final_norm``: a LayerNorm after the last block;
- ``readout``: ``"linear"`` (a linear map per token) or ``"y_slot"`` (minus the y-slot of each token,
  von Oswald et al.'s convention for linear self-attention);
- ``quick``: field overrides for a seconds-long CPU run in which the family learns in context (d = 3,
  400 steps); the test suite checks every registered family with them.

A family with an ``n_positions`` field gets learned position embeddings; one with ``dropout``, dropout on
the embeddings. :meth:`ModelConfig.label` names the network in tables and plots ("LSTM 2x64").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from iclab.models.encoders import ENCODERS
from iclab.registry import Registry
from iclab.schema import one_of, require, require_positive

MODELS = Registry("model")  # name -> the family's config class


@dataclass
class ModelConfig:
    """What every family shares. Subclasses add their own fields and set the class attributes below."""

    name: str = ""
    encoder: str = (
        "interleaved"  # how a prompt becomes tokens: one of the family's ``encoders`` (unused on token tasks)
    )
    n_layer: int = 2  # blocks in the stack
    # n-gram layers (Akyürek et al. 2024) inserted after block ngram_after, one per order listed: e.g. [1, 2, 4].
    # They read token ids, so they need a token task.
    ngram_heads: list[int] = field(default_factory=list)
    ngram_after: int = 1

    block: ClassVar[Any] = None  # the block class, or "module:Class"
    encoders: ClassVar[tuple[str, ...]] = ("interleaved",)
    read_in: ClassVar[bool] = True
    final_norm: ClassVar[bool] = True
    readout: ClassVar[str] = "linear"
    quick: ClassVar[dict] = {}

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
        for i, n in enumerate(self.ngram_heads):
            require(1 <= n <= 8, f"{path}.ngram_heads[{i}]", "must be an n-gram order between 1 and 8", n)
        require(
            0 <= self.ngram_after <= self.n_layer,
            f"{path}.ngram_after",
            f"must be between 0 and model.n_layer ({self.n_layer})",
            self.ngram_after,
        )

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


def _heads_divide_width(cfg, path: str) -> None:
    require_positive(cfg, path, "n_embd", "n_head")
    require(
        cfg.n_embd % cfg.n_head == 0, f"{path}.n_embd", f"must be divisible by model.n_head ({cfg.n_head})", cfg.n_embd
    )


@MODELS.register
@dataclass
class TransformerConfig(ModelConfig):
    """GPT-2-style transformer (Radford et al. 2019; Garg et al. 2022): pre-LN softmax attention + GELU MLP."""

    name: str = "transformer"
    encoder: str = (
        "interleaved"  # "interleaved" (Garg et al.), "stacked" (von Oswald et al.) or "set" (order-invariant)
    )
    n_layer: int = 4
    n_embd: int = 64  # residual stream width D
    n_head: int = 4
    n_positions: int | None = None  # learned positions; null = just enough for the task's prompts
    positional: Literal["learned", "rope"] = "learned"  # learned absolute positions, or rotary q/k (RoPE)
    # keys from the previous token (values from the token itself), as the memory layers' token shift: one
    # head can then look up "what followed this token before" (an induction head in one layer)
    token_shift: bool = False
    # Primer's multi-dconv-head attention (So et al. 2021): a causal depthwise convolution over this many
    # tokens on q, k and v after their projection (0 = none; Primer uses 3), so one head can match the last
    # few tokens at once (an n-gram head in one layer)
    qkv_conv: int = 0
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * n_embd
    dropout: float = 0.0

    block: ClassVar[Any] = "iclab.models.transformer:TransformerBlock"
    encoders: ClassVar[tuple[str, ...]] = ("interleaved", "stacked", "set")
    quick: ClassVar[dict] = {"encoder": "stacked", "n_layer": 2, "n_embd": 32, "n_head": 2}

    def validate(self, path: str = "model") -> None:
        super().validate(path)
        _heads_divide_width(self, path)
        require_positive(self, path, "mlp_ratio")
        if self.n_positions is not None:
            require_positive(self, path, "n_positions")
        require(0 <= self.dropout < 1, f"{path}.dropout", "must be in [0, 1)", self.dropout)
        if self.token_shift:
            require(
                self.encoder != "set",
                f"{path}.token_shift",
                "does not go with the set encoder (its demonstrations have no order to shift along)",
                self.token_shift,
            )
        require(self.qkv_conv >= 0, f"{path}.qkv_conv", "must be 0 (none) or a convolution width", self.qkv_conv)
        if self.qkv_conv:
            require(
                self.encoder != "set",
                f"{path}.qkv_conv",
                "does not go with the set encoder (its demonstrations have no order to convolve along)",
                self.qkv_conv,
            )
        if self.positional == "rope":
            require(
                (self.n_embd // self.n_head) % 2 == 0,
                f"{path}.n_embd",
                f"rope needs an even head width (n_embd / n_head = {self.n_embd // self.n_head})",
                self.n_embd,
            )

    def parameters_lower_bound(self) -> int:
        return self.n_layer * (4 + 2 * self.mlp_ratio) * self.n_embd**2  # q, k, v, out; the MLP's two matrices

    def activations_lower_bound(self) -> int:
        return self.n_layer * (8 + self.mlp_ratio) * self.n_embd  # q, k, v, attention, residuals, MLP hidden

    def label(self, tokens: bool = False) -> str:
        parts = (
            ([] if tokens else [self.encoder])
            + (["rope"] if self.positional == "rope" else [])
            + (["token shift"] if self.token_shift else [])
            + ([f"qkv conv {self.qkv_conv}"] if self.qkv_conv else [])
        )
        return f"Transformer {self.n_layer}x{self.n_embd}" + (f" ({', '.join(parts)})" if parts else "")


@MODELS.register
@dataclass
class LinearSelfAttentionConfig(ModelConfig):
    """Linear self-attention on stacked tokens (von Oswald et al. 2022): no read-in, no softmax, no final norm;
    the prediction is minus the query token's y-slot."""

    name: str = "linear_self_attention"
    encoder: str = "stacked"  # the only encoder it takes: one token per (x, y) pair
    n_layer: int = 1
    share_weights: bool = False  # one set of weights applied n_layer times (a recurrent GD-like iteration)
    normalize: bool = True  # divide each token's sum by the number of context tokens it sees
    layernorm: bool = False  # LayerNorm on each sub-layer's input (pre-LN); the GD construction has none
    mlp: bool = False  # a GELU MLP sub-layer (4x the token width) after each attention sub-layer
    init_std: float = 0.02

    block: ClassVar[Any] = "iclab.models.lsa:LSABlock"
    encoders: ClassVar[tuple[str, ...]] = ("stacked",)
    read_in: ClassVar[bool] = False
    final_norm: ClassVar[bool] = False
    readout: ClassVar[str] = "y_slot"
    quick: ClassVar[dict] = {"init_std": 0.1}

    def validate(self, path: str = "model") -> None:
        super().validate(path)
        require_positive(self, path, "init_std")

    def parameters_lower_bound(self) -> int:
        return (1 if self.share_weights else self.n_layer) * 4 * 3**2  # four matrices over tokens at least 3 wide

    def activations_lower_bound(self) -> int:
        return self.n_layer * 3 * 3  # scores, attention output and residual, at least 3 wide

    def label(self, tokens: bool = False) -> str:
        shared = " (shared)" if self.share_weights else ""
        return f"LSA {self.n_layer} layer{'s' if self.n_layer != 1 else ''}{shared}"


RNN_CELLS = {"tanh": "RNN", "lstm": "LSTM", "gru": "GRU"}  # cell -> its torch.nn class


@MODELS.register
@dataclass
class RNNConfig(ModelConfig):
    """Recurrent networks (Lipton et al. 2015's review): tanh RNN, LSTM, GRU from ``torch.nn``."""

    name: str = "rnn"
    encoder: str = "interleaved"  # recurrent models read the interleaved stream in order
    n_layer: int = 1
    cell: str = "lstm"  # "tanh", "lstm" or "gru"
    n_embd: int = 64  # hidden state width

    block: ClassVar[Any] = "iclab.models.rnn:RecurrentLayer"
    final_norm: ClassVar[bool] = False

    def validate(self, path: str = "model") -> None:
        super().validate(path)
        require(self.cell in RNN_CELLS, f"{path}.cell", one_of(RNN_CELLS), self.cell)
        require_positive(self, path, "n_embd")

    def parameters_lower_bound(self) -> int:
        gates = {"tanh": 1, "lstm": 4, "gru": 3}.get(self.cell, 1)
        return self.n_layer * gates * 2 * self.n_embd**2

    def label(self, tokens: bool = False) -> str:
        name = "tanh RNN" if self.cell == "tanh" else RNN_CELLS.get(self.cell, self.cell)
        return f"{name} {self.n_layer}x{self.n_embd}"


@MODELS.register
@dataclass
class MemoryConfig(ModelConfig):
    """Matrix-memory layers as test-time learners (linear attention, DeltaNet, gated DeltaNet, Titans, ATLAS);
    the write rules are in :mod:`iclab.models.memory_rules`."""

    name: str = "memory"
    encoder: str = "interleaved"  # memory layers read the token stream in order
    n_layer: int = 2
    rule: str = "delta"  # the write rule: linear, decay, delta, gated_delta, momentum or omega
    form: Literal["parallel", "recurrent"] = "parallel"  # the same function, two computations
    n_embd: int = 64
    n_head: int = 4
    decay: float = 0.95  # gamma of the "decay" rule
    window: int = 4  # tokens in the "omega" rule's sliding window
    feature_map: str = "identity"  # "identity" or "poly2": degree-2 polynomial features of q and k
    token_shift: bool = True  # keys from the previous token, so a y-token writes (key: its x, value: its y)
    n_positions: int | None = None  # learned position embeddings; null = fitted to the task

    block: ClassVar[Any] = "iclab.models.memory:MemoryBlock"
    quick: ClassVar[dict] = {"n_layer": 1, "n_embd": 32, "n_head": 2}

    def validate(self, path: str = "model") -> None:
        from iclab.models.memory_rules import FEATURE_MAPS, RULES

        super().validate(path)
        require(self.rule in RULES, f"{path}.rule", one_of(RULES), self.rule)
        require(
            self.feature_map in FEATURE_MAPS,
            f"{path}.feature_map",
            f"must be one of {', '.join(FEATURE_MAPS)}",
            self.feature_map,
        )
        require(
            not (self.form == "parallel" and RULES[self.rule].parallel is None),
            f"{path}.form",
            f"{self.rule} has only the recurrent form here",
            self.form,
        )
        _heads_divide_width(self, path)
        require_positive(self, path, "window")
        require(0 < self.decay <= 1, f"{path}.decay", "must be in (0, 1]", self.decay)

    def parameters_lower_bound(self) -> int:
        return self.n_layer * 12 * self.n_embd**2  # q, k, v, out; the MLP's two 4x matrices

    def activations_lower_bound(self) -> int:
        return self.n_layer * 12 * self.n_embd  # q, k, v, memory output, residuals, MLP hidden

    def label(self, tokens: bool = False) -> str:
        rule = self.rule if self.feature_map == "identity" else f"{self.rule}, {self.feature_map}"
        return f"Memory ({rule}) {self.n_layer}x{self.n_embd}"


@MODELS.register
@dataclass
class MambaConfig(ModelConfig):
    """A selective state-space model (Mamba, Gu & Dao 2023), in plain PyTorch."""

    name: str = "mamba"
    encoder: str = "interleaved"  # reads the token stream in order
    form: Literal["auto", "scan", "loop"] = "auto"  # parallel prefix scan or token by token, the same function;
    # auto: the scan on CUDA, the loop elsewhere
    n_layer: int = 2
    n_embd: int = 64
    d_state: int = 16  # N: state size per channel
    expand: int = 2  # E = expand * n_embd channels inside a block
    d_conv: int = 4  # causal depthwise convolution width
    dt_rank: int | None = None  # rank of the step's projection; null = ceil(n_embd / 16)

    block: ClassVar[Any] = "iclab.models.ssm:MambaBlock"
    quick: ClassVar[dict] = {"n_layer": 1, "n_embd": 32, "d_state": 8}

    def validate(self, path: str = "model") -> None:
        super().validate(path)
        require_positive(self, path, "n_embd", "d_state", "expand", "d_conv")
        if self.dt_rank is not None:
            require_positive(self, path, "dt_rank")

    def parameters_lower_bound(self) -> int:
        return self.n_layer * 3 * self.expand * self.n_embd**2  # input (u and z) and output projections

    def activations_lower_bound(self) -> int:
        return self.n_layer * self.expand * self.n_embd * (4 + self.d_state)  # u, z, gate, y and the states

    def label(self, tokens: bool = False) -> str:
        return f"Mamba {self.n_layer}x{self.n_embd}"
