"""Transformer Programs (Friedman, Wettig, Chen 2023, "Learning Transformer Programs", NeurIPS 2023; code
princeton-nlp/TransformerPrograms): a transformer constrained so that, once trained, it is a discrete program.

This file is the whole family, top to bottom: its config (:class:`TransformerProgramConfig`), its modules (reads,
categorical and numerical attention, categorical and numerical MLPs) and its network (:class:`ProgramNetwork`).
:mod:`iclab.decompile` turns a trained network into Python.

**A disentangled residual stream.** Nothing is ever added to the stream: every module writes a new variable.
Categorical variables are one-hot blocks of width ``k = model.d_var`` (at least the input vocabulary and the
longest input); numerical variables are scalars. The inputs are three variables: ``tokens``, ``positions`` and the
numerical constant ``ones``. Layer ``l`` appends, in order, the outputs of its categorical heads
(``attn_{l}_{h}``, categorical), its numerical heads (``num_attn_{l}_{h}``, numerical), its categorical MLPs
(``mlp_{l}_{m}``, categorical) and its numerical MLPs (``num_mlp_{l}_{m}``, categorical: a numerical MLP maps
numbers to a category).

**Reads.** Each module chooses the variable(s) it reads with a learned distribution over the variables written
before it, relaxed by Gumbel-softmax at temperature ``tau`` during training and argmax in eval mode.

**Categorical attention** reads a query, a key and a value variable. A learned predicate maps every query value to
exactly one key value (row-wise Gumbel-softmax over a ``k x k`` matrix, argmax in eval mode); query ``i`` selects
the keys ``j`` whose value the predicate names. Hard attention goes to one selected key: the closest to ``i``, the
earlier one on a tie, ``i`` itself last; when no key is selected, to position 0 (the beginning-of-sequence token).
During training the attention is a Gumbel-softmax over ``log(selected) + rank bias`` (the bias orders keys as the
rule does), and the head writes the value variable at the attended position.

**Numerical attention** uses the same kind of predicate and writes the *sum* of a numerical value variable over every
selected key (no default): with ``ones`` it counts the selected keys, as RASP's ``selector_width`` does. The
reference code sums; a mean of ``ones`` would be 1 wherever anything is selected, so the one-layer histogram of
the paper's Table 1 needs the sum (a count).

**MLPs** read two variables (categorical, or numerical for the numerical MLPs) and are small ReLU MLPs whose output
is a categorical variable: a Gumbel-softmax over ``k`` values in training, the argmax in eval mode, where they are
evaluated as lookup tables (:meth:`CategoricalMLP.table`), in float64 and in one fixed order of operations, so that
the decompiled program reproduces them exactly.

**Read-out**: a linear map from every variable (each categorical one one-hot) to the vocabulary. In eval mode the
logits are summed in float64, variable by variable in stream order, as the decompiled program sums them.

Causal tasks attend to ``j <= i``; a task that reads its whole input (``task.bidirectional``) attends to every
non-pad position. Eval mode *is* the discretised model: every evaluation, validation and the decompiled program
see the same argmax choices.

Hooks: ``hook_logits`` (B, T, V) only; the program's structure is read from :meth:`ProgramNetwork.structure`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from iclab.errors import UserError
from iclab.models.family import MODELS, ModelConfig
from iclab.models.hooks import HookPoint
from iclab.schema import require, require_positive


@MODELS.register
@dataclass
class TransformerProgramConfig(ModelConfig):
    """A Transformer Program (Friedman et al. 2023): categorical and numerical heads and MLPs over a disentangled
    residual stream of discrete variables; decompiles into Python (``iclab decompile RUN``)."""

    name: str = "transformer_program"
    n_layer: int = 3
    n_heads_cat: int = 4  # categorical attention heads per layer
    n_heads_num: int = 4  # numerical attention heads per layer
    n_cat_mlps: int = 1  # categorical MLPs per layer
    n_num_mlps: int = 1  # numerical MLPs per layer
    d_var: int | None = None  # k, the width of every categorical variable; null = max(input vocabulary, positions)
    d_mlp: int = 64  # hidden width of every MLP
    n_positions: int | None = None  # the longest input; null = the task's
    tau_start: float = 3.0  # Gumbel-softmax temperature at the first step ...
    tau_end: float = 0.01  # ... annealed geometrically to this at the last (train.steps)

    quick: ClassVar[dict] = {"n_layer": 1, "n_heads_cat": 1, "n_heads_num": 1, "d_mlp": 8}
    real_valued: ClassVar[bool] = False  # reads token ids only
    bidirectional: ClassVar[bool] = True  # can read a whole input (task.bidirectional)
    ngram_layers: ClassVar[bool] = False
    embedding_table: ClassVar[bool] = False  # tokens are a one-hot variable of the residual stream

    def build(self, d_in: int, n_outputs: int = 1, vocab_size: int | None = None) -> ProgramNetwork:
        if vocab_size is None:
            raise ValueError("a Transformer Program reads token ids: build it for a token task")
        return ProgramNetwork(self, vocab_size, n_outputs)

    def validate(self, path: str = "model") -> None:
        super().validate(path)
        require(
            not self.ngram_heads,
            f"{path}.ngram_heads",
            "must be empty for transformer_program (its stream holds discrete variables only)",
            self.ngram_heads,
        )
        require_positive(self, path, "d_mlp")
        for name in ("n_heads_cat", "n_heads_num", "n_cat_mlps", "n_num_mlps"):
            require(getattr(self, name) >= 0, f"{path}.{name}", "must be at least 0", getattr(self, name))
        if self.d_var is not None:
            require(self.d_var >= 2, f"{path}.d_var", "must be at least 2 (or null: the task's size)", self.d_var)
        for name in ("tau_start", "tau_end"):
            value = getattr(self, name)
            require(math.isfinite(value) and value > 0, f"{path}.{name}", "must be a positive number", value)

    def check_token_task(self, task) -> None:
        """``d_var`` must hold every token a prompt can hold and every position of ``task``; null takes the larger.

        The tokens a prompt can hold (``task.input_vocab_size``): a task whose labels have symbols of their own (the
        counts of hist and double_hist) never feeds them in, so, as in the paper's code (its labels have a vocabulary
        of their own), they take no value of a variable; the read-out still predicts every symbol."""
        inputs = task.input_vocab_size
        needed = max(inputs, self.n_positions or task.max_tokens)
        if self.d_var is None:
            self.d_var = needed
            return
        require(
            self.d_var >= inputs,
            "model.d_var",
            f"must be at least the input vocabulary ({inputs} symbols a prompt of task {task.name} can hold): a "
            "categorical variable holds one token",
            self.d_var,
        )
        require(
            self.d_var >= (self.n_positions or task.max_tokens),
            "model.d_var",
            f"must be at least the longest input ({self.n_positions or task.max_tokens} tokens): a categorical "
            "variable holds one position",
            self.d_var,
        )

    def parameters_lower_bound(self) -> int:
        k = self.d_var or 2
        per_layer = (self.n_heads_cat + self.n_heads_num) * k * k + (self.n_cat_mlps + self.n_num_mlps) * (
            self.d_mlp * k
        )
        return self.n_layer * per_layer

    def activations_lower_bound(self) -> int:
        k = self.d_var or 2
        return self.n_layer * (self.n_heads_cat + self.n_cat_mlps + self.n_num_mlps) * k

    def label(self, tokens: bool = False) -> str:
        return (
            f"transformer program {self.n_layer}L {self.n_heads_cat}+{self.n_heads_num} heads "
            f"{self.n_cat_mlps}+{self.n_num_mlps} MLPs"
        )

    # ------------------------------------------------------------------ the variables, by name
    def variables(self) -> tuple[list[str], list[str]]:
        """``(categorical, numerical)`` variable names in stream order."""
        cat, num = ["tokens", "positions"], ["ones"]
        for layer in range(self.n_layer):
            cat += [f"attn_{layer}_{h}" for h in range(self.n_heads_cat)]
            num += [f"num_attn_{layer}_{h}" for h in range(self.n_heads_num)]
            cat += [f"mlp_{layer}_{m}" for m in range(self.n_cat_mlps)]
            cat += [f"num_mlp_{layer}_{m}" for m in range(self.n_num_mlps)]
        return cat, num


# ---------------------------------------------------------------------------------------------- sampling


def relaxed(logits: torch.Tensor, tau: float, hard: bool) -> torch.Tensor:
    """A one-hot argmax (``hard``), else a Gumbel-softmax sample at temperature ``tau`` over the last dimension."""
    if hard:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return F.gumbel_softmax(logits, tau=tau, hard=False, dim=-1)


def closeness_rank(t: int, device=None) -> torch.Tensor:
    """``(T, T)`` int64: the order in which query ``i`` prefers key ``j`` among its matches; 1 is best. The closest
    key first, the earlier of two at equal distance first, the query's own position last (``2 T``)."""
    i = torch.arange(t, device=device).unsqueeze(1)
    j = torch.arange(t, device=device).unsqueeze(0)
    d = (i - j).abs()
    rank = 2 * d - (j < i).long()
    return torch.where(i == j, torch.full_like(rank, 2 * t), rank)


class Read(nn.Module):
    """``n`` learned choices among ``n_vars`` variables: ``forward(tau, hard) -> (n, n_vars)`` weights."""

    def __init__(self, n: int, n_vars: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.randn(n, n_vars) / math.sqrt(n_vars))

    def forward(self, tau: float, hard: bool) -> torch.Tensor:
        return relaxed(self.logits, tau, hard)

    def choice(self) -> list[int]:
        """The variable each of the ``n`` reads takes once discretised."""
        return self.logits.argmax(-1).tolist()


class Predicate(nn.Module):
    """``n_heads`` learned maps from query values to key values: ``(H, k, k)`` logits, one key value per row."""

    def __init__(self, n_heads: int, k: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.randn(n_heads, k, k) / math.sqrt(k))

    def forward(self, tau: float, hard: bool) -> torch.Tensor:
        return relaxed(self.logits, tau, hard)

    def table(self) -> torch.Tensor:
        """``(H, k)`` int64: the key value each query value selects."""
        return self.logits.argmax(-1)


def _selected(pred_q: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Soft selection ``(B, H, T, T)``: ``sum_r pred_q[b, i, h, r] keys[b, j, h, r]`` where allowed."""
    s = torch.einsum("bihr,bjhr->bhij", pred_q, keys)
    return s * allowed.unsqueeze(1)


def _matches(pmap: torch.Tensor, q: torch.Tensor, k: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Hard selection ``(B, H, T, T)``: the predicate's key value for query ``q[b, i, h]`` equals ``k[b, j, h]``."""
    wanted = torch.stack([pmap[h][q[..., h]] for h in range(pmap.shape[0])], -1)  # (B, T, H)
    return (wanted.permute(0, 2, 1).unsqueeze(-1) == k.permute(0, 2, 1).unsqueeze(-2)) & allowed.unsqueeze(1)


class CategoricalAttention(nn.Module):
    """``n_heads`` categorical heads: each reads a query, key and value variable among the ``n_vars`` categorical
    variables and writes the value at the closest selected key (position 0 when none is selected)."""

    def __init__(self, n_heads: int, n_vars: int, k: int) -> None:
        super().__init__()
        self.n_heads, self.k = n_heads, k
        self.read_q, self.read_k, self.read_v = Read(n_heads, n_vars), Read(n_heads, n_vars), Read(n_heads, n_vars)
        self.predicate = Predicate(n_heads, k)

    def forward(self, cat: torch.Tensor, allowed: torch.Tensor, tau: float) -> torch.Tensor:
        """``cat (B, T, V, k)`` soft variables -> ``(B, T, H, k)``."""
        q = torch.einsum("btvk,hv->bthk", cat, self.read_q(tau, False))
        keys = torch.einsum("btvk,hv->bthk", cat, self.read_k(tau, False))
        v = torch.einsum("btvk,hv->bthk", cat, self.read_v(tau, False))
        pred_q = torch.einsum("bthr,hrs->bths", q, self.predicate(tau, False))
        s = _selected(pred_q, keys, allowed)  # (B, H, T, T)
        t = cat.shape[1]
        default = F.relu(1.0 - s.sum(-1))  # nothing selected: position 0
        s = torch.cat([s[..., :1] + default.unsqueeze(-1), s[..., 1:]], -1)
        bias = -closeness_rank(t, cat.device).to(cat.dtype) / (2 * t)
        logits = (torch.log(s + 1e-20) + bias) / math.sqrt(self.k)
        logits = logits.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        attn = F.gumbel_softmax(logits, tau=tau, hard=False, dim=-1)
        return torch.einsum("bhij,bjhk->bihk", attn, v)

    def discrete(self, cat: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``cat (B, T, V)`` int64 values -> ``(B, T, H)`` int64: the value at each head's attended position."""
        q, keys, v = (cat[:, :, r.choice()] for r in (self.read_q, self.read_k, self.read_v))
        match = _matches(self.predicate.table(), q, keys, allowed)  # (B, H, T, T)
        t = cat.shape[1]
        rank = closeness_rank(t, cat.device).expand_as(match)
        best = torch.where(match, rank, torch.full_like(rank, 4 * t)).argmin(-1)  # (B, H, T)
        best = torch.where(match.any(-1), best, torch.zeros_like(best))  # nothing selected: position 0
        return torch.gather(v.permute(0, 2, 1), 2, best).permute(0, 2, 1)


class NumericalAttention(nn.Module):
    """``n_heads`` numerical heads: a categorical query and key (as above) and a numerical value variable; each
    writes the sum of the value over every selected key."""

    def __init__(self, n_heads: int, n_cat: int, n_num: int, k: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.read_q, self.read_k = Read(n_heads, n_cat), Read(n_heads, n_cat)
        self.read_v = Read(n_heads, n_num)
        self.predicate = Predicate(n_heads, k)

    def forward(self, cat: torch.Tensor, num: torch.Tensor, allowed: torch.Tensor, tau: float) -> torch.Tensor:
        """``cat (B, T, V, k)``, ``num (B, T, N)`` -> ``(B, T, H)``."""
        q = torch.einsum("btvk,hv->bthk", cat, self.read_q(tau, False))
        keys = torch.einsum("btvk,hv->bthk", cat, self.read_k(tau, False))
        v = torch.einsum("btn,hn->bth", num, self.read_v(tau, False))
        pred_q = torch.einsum("bthr,hrs->bths", q, self.predicate(tau, False))
        s = _selected(pred_q, keys, allowed)
        return torch.einsum("bhij,bjh->bih", s, v)

    def discrete(self, cat: torch.Tensor, num: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``cat (B, T, V)`` int64, ``num (B, T, N)`` float64 -> ``(B, T, H)`` float64 sums."""
        q, keys = cat[:, :, self.read_q.choice()], cat[:, :, self.read_k.choice()]
        v = num[:, :, self.read_v.choice()]  # (B, T, H)
        match = _matches(self.predicate.table(), q, keys, allowed).to(num.dtype)
        return torch.einsum("bhij,bjh->bih", match, v)


class CategoricalMLP(nn.Module):
    """An MLP that reads two variables and writes a categorical one: ``numerical`` False reads two categorical
    variables (one-hot, ``2 k`` inputs), True two numerical ones (2 inputs)."""

    def __init__(self, n_vars: int, k: int, d_mlp: int, numerical: bool) -> None:
        super().__init__()
        self.numerical, self.k = numerical, k
        self.read = Read(2, n_vars)
        self.fc = nn.Linear(2 if numerical else 2 * k, d_mlp)
        self.out = nn.Linear(d_mlp, k)

    def forward(self, stream: torch.Tensor, tau: float) -> torch.Tensor:
        """``stream``: ``(B, T, V, k)`` categorical or ``(B, T, N)`` numerical -> ``(B, T, k)``."""
        w = self.read(tau, False)
        if self.numerical:
            x = torch.einsum("btn,rn->btr", stream, w)
        else:
            x = torch.einsum("btvk,rv->btrk", stream, w).flatten(2)
        logits = self.out(F.relu(self.fc(x))).log_softmax(-1)
        return F.gumbel_softmax(logits, tau=tau, hard=False, dim=-1)

    @torch.no_grad()
    def table(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The discretised MLP on input pairs ``(a[n], b[n])`` (category indices, or numbers): ``(n,)`` int64.

        Float64, one fixed order of operations per pair whatever the number of pairs, so that the lookup table the
        decompiler writes equals what the model computes on every input."""
        w1 = self.fc.weight.double()  # (M, 2) or (M, 2k)
        if self.numerical:
            pre = w1[:, 0] * a.double().unsqueeze(1) + w1[:, 1] * b.double().unsqueeze(1)
        else:
            pre = w1[:, a].T + w1[:, self.k + b].T
        h = torch.relu(pre + self.fc.bias.double())  # (n, M)
        w2 = self.out.weight.double()  # (k, M)
        logits = self.out.bias.double().expand(len(a), -1).clone()
        for m in range(w2.shape[1]):  # sequential sum over the hidden units
            logits = logits + h[:, m : m + 1] * w2[:, m]
        return logits.argmax(-1)

    def discrete(self, stream: torch.Tensor) -> torch.Tensor:
        """``stream (B, T, V)`` int64 categories or float64 numbers -> ``(B, T)`` int64, through :meth:`table` on
        the distinct input pairs."""
        r = self.read.choice()
        a, b = stream[:, :, r[0]].reshape(-1), stream[:, :, r[1]].reshape(-1)
        pairs, inverse = torch.unique(torch.stack([a, b], -1), dim=0, return_inverse=True)
        return self.table(pairs[:, 0], pairs[:, 1])[inverse].reshape(stream.shape[:2])


class ProgramLayer(nn.Module):
    """One layer: categorical heads, numerical heads, then categorical and numerical MLPs, each appending its
    outputs to the stream."""

    def __init__(self, c: TransformerProgramConfig, n_cat: int, n_num: int) -> None:
        super().__init__()
        k = c.d_var
        self.cat_attn = CategoricalAttention(c.n_heads_cat, n_cat, k) if c.n_heads_cat else None
        self.num_attn = NumericalAttention(c.n_heads_num, n_cat, n_num, k) if c.n_heads_num else None
        n_cat_mid, n_num_mid = n_cat + c.n_heads_cat, n_num + c.n_heads_num
        self.cat_mlps = nn.ModuleList([CategoricalMLP(n_cat_mid, k, c.d_mlp, False) for _ in range(c.n_cat_mlps)])
        self.num_mlps = nn.ModuleList([CategoricalMLP(n_num_mid, k, c.d_mlp, True) for _ in range(c.n_num_mlps)])

    def forward(self, cat, num, allowed, tau):
        new_num = [self.num_attn(cat, num, allowed, tau)] if self.num_attn is not None else []
        if self.cat_attn is not None:
            cat = torch.cat([cat, self.cat_attn(cat, allowed, tau)], 2)
        num = torch.cat([num, *new_num], 2)
        outs = [m(cat, tau) for m in self.cat_mlps] + [m(num, tau) for m in self.num_mlps]
        if outs:
            cat = torch.cat([cat, torch.stack(outs, 2)], 2)
        return cat, num

    def discrete(self, cat, num, allowed):
        new_num = [self.num_attn.discrete(cat, num, allowed)] if self.num_attn is not None else []
        if self.cat_attn is not None:
            cat = torch.cat([cat, self.cat_attn.discrete(cat, allowed)], 2)
        num = torch.cat([num, *new_num], 2)
        outs = [m.discrete(cat) for m in self.cat_mlps] + [m.discrete(num) for m in self.num_mlps]
        if outs:
            cat = torch.cat([cat, torch.stack(outs, 2)], 2)
        return cat, num


class ProgramNetwork(nn.Module):
    """The network: token and position variables, ``ones``, the layers, a linear read-out over every variable.

    ``forward(tokens, layout)`` gives ``(B, T, V)`` logits: relaxed in training mode, discrete (argmax everywhere,
    float64 read-out) in eval mode."""

    def __init__(self, config: TransformerProgramConfig, vocab_size: int, n_outputs: int) -> None:
        super().__init__()
        if config.d_var is None or config.n_positions is None:
            raise ValueError("TransformerProgramConfig.d_var and n_positions must be resolved from the task first")
        self.config, self.k, self.vocab_size = config, config.d_var, vocab_size
        self.pos_embed = None  # positions are a variable, not an embedding (LanguageModel checks lengths itself)
        self.tau = config.tau_start
        self.cat_names, self.num_names = config.variables()
        n_cat, n_num = 2, 1
        layers = []
        for _ in range(config.n_layer):
            layers.append(ProgramLayer(config, n_cat, n_num))
            n_cat += config.n_heads_cat + config.n_cat_mlps + config.n_num_mlps
            n_num += config.n_heads_num
        self.blocks = nn.ModuleList(layers)
        self.read_out = nn.Linear(n_cat * self.k + n_num, n_outputs)
        self.hook_logits = HookPoint()

    def at_step(self, step: int, steps: int) -> None:
        """The temperature of training step ``step`` of ``steps``: geometric from ``tau_start`` to ``tau_end``."""
        c = self.config
        frac = step / max(steps - 1, 1)
        self.tau = c.tau_start * (c.tau_end / c.tau_start) ** min(frac, 1.0)

    def allowed(self, tokens: torch.Tensor, layout) -> torch.Tensor:
        """``(B, T, T)`` bool: which keys each query may attend to (causal, or every non-pad key)."""
        b, t = tokens.shape
        if layout.attn_mask is None:
            return torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril().expand(b, t, t)
        return layout.attn_mask.reshape(b, 1, t).expand(b, t, t)

    def forward(self, tokens: torch.Tensor, layout) -> torch.Tensor:
        b, t = tokens.shape
        if t > self.config.n_positions:
            raise UserError(
                f"prompts of {t} tokens need {t} positions, but model.n_positions is {self.config.n_positions}"
            )
        allowed = self.allowed(tokens, layout)
        if not self.training:
            return self.hook_logits(self.discrete(tokens, allowed))
        positions = torch.arange(t, device=tokens.device).expand(b, t)
        self._check_tokens(tokens)
        dtype = self.read_out.weight.dtype
        cat = torch.stack([F.one_hot(tokens, self.k), F.one_hot(positions, self.k)], 2).to(dtype)  # (B, T, 2, k)
        num = torch.ones(b, t, 1, dtype=dtype, device=tokens.device)
        for block in self.blocks:
            cat, num = block(cat, num, allowed, self.tau)
        return self.hook_logits(self.read_out(torch.cat([cat.flatten(2), num], 2)))

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.numel() and not tokens.is_meta and int(tokens.max()) >= self.k:
            raise UserError(
                f"a prompt holds token id {int(tokens.max())}, but model.d_var is {self.k}: a categorical variable "
                "holds the ids a prompt can hold (the task's input vocabulary)"
            )

    def variables(self, tokens: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The discrete stream: ``(B, T, n_cat)`` int64 category values and ``(B, T, n_num)`` float64 numbers."""
        b, t = tokens.shape
        self._check_tokens(tokens)
        positions = torch.arange(t, device=tokens.device).expand(b, t)
        cat = torch.stack([tokens, positions], 2)
        num = torch.ones(b, t, 1, dtype=torch.float64, device=tokens.device)
        for block in self.blocks:
            cat, num = block.discrete(cat, num, allowed)
        return cat, num

    @torch.no_grad()
    def discrete(self, tokens: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Eval mode: every choice its argmax, MLPs as tables, the read-out summed in float64 in stream order
        (categorical variables, then numerical ones, then the bias), as the decompiled program sums it."""
        cat, num = self.variables(tokens, allowed)
        w = self.read_out.weight.double().T  # (n_cat * k + n_num, V)
        n_cat = cat.shape[2]
        logits = torch.zeros(*tokens.shape, w.shape[1], dtype=torch.float64, device=tokens.device)
        for v in range(n_cat):
            logits = logits + w[v * self.k + cat[:, :, v]]
        for n in range(num.shape[2]):
            logits = logits + num[:, :, n : n + 1] * w[n_cat * self.k + n]
        return logits + self.read_out.bias.double()  # float64: a float32 cast could tie what the program separates

    def structure(self) -> dict:
        """The discretised program: for every module, what it reads and its predicate (see :mod:`iclab.decompile`)."""
        cat_names, num_names = self.cat_names, self.num_names
        out = []
        for layer, block in enumerate(self.blocks):
            for kind, a, values in (("attn", block.cat_attn, cat_names), ("num_attn", block.num_attn, num_names)):
                if a is None:
                    continue
                q, k_, v = a.read_q.choice(), a.read_k.choice(), a.read_v.choice()
                pmap = a.predicate.table().tolist()
                out += [
                    {
                        "kind": kind,
                        "name": f"{kind}_{layer}_{h}",
                        "query": cat_names[q[h]],
                        "key": cat_names[k_[h]],
                        "value": values[v[h]],
                        "predicate": pmap[h],
                    }
                    for h in range(a.n_heads)
                ]
            for m, mlp in enumerate(block.cat_mlps):
                r = mlp.read.choice()
                out.append({"kind": "mlp", "name": f"mlp_{layer}_{m}", "inputs": [cat_names[i] for i in r]})
            for m, mlp in enumerate(block.num_mlps):
                r = mlp.read.choice()
                out.append({"kind": "num_mlp", "name": f"num_mlp_{layer}_{m}", "inputs": [num_names[i] for i in r]})
        return {"modules": out, "categorical": cat_names, "numerical": num_names}
