"""Token learners: next-token distributions ``(B, T, V)`` at every position of a token prompt, from the prefix
``tokens[:, : t + 1]`` only.

- ``ngram(n=N)``: the in-context n-gram model with backoff of Akyürek et al. 2024 (seq_icl's ``ngram.py``).
  The prompt so far is split into its strings at the separator; each string is left-padded with ``N - 1`` pads ``_``;
  all 1..N-grams of the padded strings are counted (the current, unfinished string included). With ``h`` the last ``N -
  1`` symbols of the current string (padded), a symbol ``c`` with ``count(h c) > 0`` gets ``count(h c) / count(h)``; the
  mass left over, ``1 - sum`` of those, goes to the other symbols seen so far in the prompt in proportion to the same
  model one order lower (context ``h[1:]``); order 1 is the symbols' frequencies. Symbols not yet seen in the prompt,
  the pad and the separator get nothing. (``count(h)`` counts every occurrence of ``h``, including at the end of a
  string, where nothing follows: that is where the left-over mass comes from.) When every symbol seen so far has
  followed ``h``, that mass has nowhere to go and the reference's values sum to less than 1; seq_icl normalises them
  before its distances, and so does this learner (the argmax, hence accuracy, is unchanged). For ``N = 1`` this is the
  frequency of each symbol in the prompt so far (the reference's own ``N = 1`` path slices the context as ``[-0:]``, the
  whole string, and fails; see docs/references.md).
- ``unigram``: ``ngram(n=1)``.
- ``automaton``: the oracle: uniform over the symbols the true process may emit next (``info["valid"]``).

All three are vectorised over prompts and positions: contexts are coded as integers, and the counts behind every
prefix are running sums within groups of equal contexts (one stable sort and one cumulative sum per order), so
the cost is ``O(B T V)`` per order, not ``O(B T^2)``.
"""

from __future__ import annotations

from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner, check
from iclab.types import TokenPrompts


class TokenLearner(ReferenceLearner):
    """Base of the token learners: ``predict(prompts) -> (B, T, V)`` probabilities (float64)."""

    prompt_kind = "tokens"
    predicts_what = "next tokens"

    def predict(self, prompts: TokenPrompts) -> torch.Tensor:
        with torch.no_grad():
            return self._predict_tokens(prompts)

    def _predict_tokens(self, prompts: TokenPrompts) -> torch.Tensor:
        raise NotImplementedError


@LEARNERS.register
class NGram(TokenLearner):
    """In-context n-gram with backoff (Akyürek et al. 2024), orders 1-4."""

    name = "ngram"

    def __init__(self, n: int = 3, chunk: int = 128) -> None:
        super().__init__()
        check(1 <= n <= 4, f"ngram: n must be between 1 and 4, got {n}")
        check(chunk >= 1, f"ngram: chunk must be at least 1, got {chunk}")
        self._set_params(n=n)
        self.chunk = chunk

    def _predict_tokens(self, prompts: TokenPrompts) -> torch.Tensor:
        out = torch.empty(prompts.batch_size, prompts.length, len(prompts.vocab), dtype=torch.float64)
        scratch = _Scratch()
        for i in range(0, prompts.batch_size, self.chunk):
            self._chunk(prompts.tokens[i : i + self.chunk].cpu(), prompts.vocab, out[i : i + self.chunk], scratch)
        return out

    def _chunk(self, tokens: torch.Tensor, vocab, out: torch.Tensor, scratch: _Scratch) -> None:
        """The distributions of the prompts ``tokens`` (B, T), written into ``out`` (B, T, V). Every ``(B, T, V)``
        temporary lives in ``scratch``, reused from order to order and chunk to chunk."""
        big_n = self.n
        b, t = tokens.shape
        v = len(vocab)
        f64 = torch.float64
        sep = tokens == vocab.separator if vocab.separator is not None else torch.zeros_like(tokens, dtype=torch.bool)
        sym = ~sep & (tokens != vocab.pad)
        symf = sym.to(torch.float32)
        tokens_next = torch.cat([tokens, tokens.new_zeros(b, 1)], 1)  # position T: a virtual query, no symbol
        sym_next = torch.cat([symf, symf.new_zeros(b, 1)], 1)
        sym_prev = torch.cat([symf.new_zeros(b, 1), symf], 1)  # at p = 0 .. T: whether token p - 1 is a symbol
        # symbols of the current string so far, after reading token t
        c = torch.cumsum(sym.long(), 1)
        pos = c - torch.cummax(torch.where(sep, c, torch.zeros_like(c)), 1).values
        n_strings = torch.cumsum(sep.long(), 1) + 1  # strings of the prompt so far (the current one included)

        # order 1: the symbols' frequencies so far
        p = scratch.get("p", (b, t, v), f64).zero_()
        p.scatter_(2, tokens.unsqueeze(-1), sym.unsqueeze(-1).to(f64)).cumsum_(1)
        vocab_seen = torch.gt(p, 0, out=scratch.get("vocab_seen", (b, t, v), torch.bool))
        p.div_(p.sum(-1, keepdim=True).clamp_min_(1))
        seen = scratch.get("seen", (b, t, v), torch.bool)
        pn = scratch.get("pn", (b, t, v), f64)
        ctx = torch.zeros(b, t, dtype=torch.long)  # ctx_m(t): the last m symbols of the current string, padded (0)
        zero = torch.zeros(b, 1, dtype=torch.long)
        for order in range(2, big_n + 1):
            m = order - 1  # context length
            shifted = torch.roll(tokens, m - 1, 1)
            ctx = ctx + torch.where(pos > m - 1, shifted, torch.zeros_like(shifted)) * v ** (m - 1)
            # the context preceding token p is ctx(p - 1), so the context at t is the one preceding t + 1:
            # count(h c) at t = symbols p <= t in the group of keys equal to before(t + 1), i.e. a running count
            before = torch.cat([zero, ctx], 1)  # (B, T + 1): before(p) for p = 0 .. T
            # count(h): m-grams ending at a symbol q <= t equal to h, i.e. positions q + 1 <= t + 1 whose
            # before(q + 1) is h and whose previous token is a symbol (the extra channel), plus (below) the
            # all-pad m-grams of each string's padding
            counts = _group_running_counts(before, sym_next, tokens_next, v, sym_prev, scratch)[:, 1:]
            seen_counts, same = counts[..., :v], counts[..., v].to(f64)
            den = same.add_((ctx == 0).to(f64) * (big_n - m) * n_strings.to(f64))
            torch.gt(seen_counts, 0, out=seen)
            # cast, then divide in place: PyTorch divides float32 by float64 through a slow mixed-type path
            pn.copy_(seen_counts).div_(den.clamp_min_(1).unsqueeze(-1))
            # the symbols seen in the prompt but not after h share the left-over mass 1 - sum(pn) in
            # proportion to the lower order (pn is 0 there, and seen symbols are symbols of the prompt)
            lower = p.masked_fill_(torch.eq(vocab_seen, seen, out=seen), 0)
            rest = lower.sum(-1, keepdim=True)
            left = 1 - pn.sum(-1, keepdim=True)
            scale = torch.where(rest > 0, left / rest.clamp_min(1e-300), torch.zeros_like(rest))
            p = lower.mul_(scale).add_(pn)
        # when every symbol seen so far has followed the context, the left-over mass has nowhere to go and the
        # reference's values sum to less than 1; like seq_icl's distance code, normalise them
        torch.div(p, p.sum(-1, keepdim=True).clamp_min_(1e-300), out=out)


class _Scratch:
    """Scratch tensors by name, reused: a fresh multi-megabyte tensor is fresh memory from the system, and on the
    CPU touching it page by page for the first time cost more than the arithmetic (about 150,000 page faults a
    call to ``ngram(n=4)`` on 1000 REGBENCH prompts, half its time)."""

    def __init__(self) -> None:
        self._tensors: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> torch.Tensor:
        size = 1
        for n in shape:
            size *= n
        have = self._tensors.get(name)
        if have is None or have.numel() < size or have.dtype != dtype:
            have = self._tensors[name] = torch.empty(size, dtype=dtype)
        return have[:size].view(shape)


def _group_running_counts(
    keys: torch.Tensor, weights: torch.Tensor, tokens: torch.Tensor, v: int, extra: torch.Tensor, scratch: _Scratch
) -> torch.Tensor:
    """Running counts within groups of equal keys, per symbol and for one extra weight. For ``c < v``:
    ``out[b, i, c] = sum of weights[b, j]`` over ``j < i`` with ``keys[b, j] == keys[b, i]`` and
    ``tokens[b, j] == c``; ``out[b, i, v]`` is the same sum of ``extra[b, j]`` over ``j <= i`` (inclusive),
    whatever the token. ``(B, T, V + 1)``, float32 (exact: counts stay far below 2^24), in ``scratch``.

    A stable sort by key puts each group's positions together in their original order; a cumulative sum minus
    its value at the group's start is then the running count within the group.
    """
    b, t = keys.shape
    shape = (b, t, v + 1)
    order = torch.sort(keys, dim=1, stable=True).indices
    sorted_keys = keys.gather(1, order)
    dtype = weights.dtype
    values = scratch.get("values", shape, dtype).zero_()
    values.scatter_(2, tokens.gather(1, order).unsqueeze(-1), weights.gather(1, order).unsqueeze(-1))
    values[..., v] = extra.gather(1, order)
    running = torch.cumsum(values, 1, out=scratch.get("running", shape, dtype)).sub_(values)  # exclusive
    idx = torch.arange(t, device=keys.device).expand(b, t)
    starts = torch.ones_like(sorted_keys, dtype=torch.bool)
    starts[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    first = torch.cummax(torch.where(starts, idx, torch.zeros_like(idx)), 1).values  # each element's group start
    # rows of V + 1 moved whole through flat row indices: index_select and index_copy_ copy rows, where gather and
    # scatter along the time axis with an expanded index address every element (about 2x slower)
    rows = torch.arange(0, b * t, t, device=keys.device).unsqueeze(1)
    flat = running.view(b * t, v + 1)
    at_start = torch.index_select(flat, 0, (first + rows).view(-1), out=scratch.get("at_start", (b * t, v + 1), dtype))
    flat.sub_(at_start)
    running[..., v] += values[..., v]
    out = scratch.get("counts", (b * t, v + 1), dtype)
    return out.index_copy_(0, (order + rows).view(-1), flat).view(shape)


@LEARNERS.register
class Unigram(NGram):
    """The symbols' frequencies in the prompt so far: ``ngram(n=1)``."""

    name = "unigram"

    def __init__(self) -> None:
        super().__init__(n=1)
        self._set_params()
        self.n = 1


@LEARNERS.register
class Automaton(TokenLearner):
    """The oracle: uniform over the symbols the prompt's process may emit next (``info["valid"]``); uniform over
    the vocabulary where nothing is predicted."""

    name = "automaton"

    @classmethod
    def applies_to(cls, task) -> str | None:
        return None if getattr(task, "knows_next_symbols", True) else "the task does not know its next-symbol sets"

    def _predict_tokens(self, prompts: TokenPrompts) -> torch.Tensor:
        valid = prompts.info["valid"].to(torch.float64).cpu()
        none = valid.sum(-1, keepdim=True) == 0
        valid = torch.where(none, torch.ones_like(valid), valid)
        return valid / valid.sum(-1, keepdim=True)


@LEARNERS.register
class Oracle(Automaton):
    """The oracle of any token task: uniform over the answers the task allows at each position (``info["valid"]``);
    on a task with one right answer per position (arithmetic, the RASP programs, associative recall) it puts all
    its mass on it. On REGBENCH it is ``automaton``."""

    name = "oracle"


@LEARNERS.register
class Counting(TokenLearner):
    """The exact learner of the ``explanations`` task (Hase & Bansal 2021): at each label position (``=`` after a
    point ``x``) it looks for an explanation of ``x``'s task earlier in the prompt (``E: #a #b m n r d`` with the
    same index), takes ``(m, n)`` or ``(r, d)`` as ``x``'s indicator says and predicts ``yes`` iff the first occurs
    more often than the second in ``x``'s 18 slots, with certainty. Where the prompt holds no explanation of the
    task it cannot know the integers: 1/2 on ``no`` and ``yes``. Uniform over the vocabulary elsewhere.

    The reference's optimal model (``modeling_optimal_synthetic_model.py``) counts over the whole input, index and
    indicator included, which can miscount when either equals ``m, n, r`` or ``d``; this counts the slots only, as
    the labels are made."""

    name = "counting"
    requires_task = True

    def __init__(self, task=None, chunk: int = 256) -> None:
        super().__init__()
        check(chunk >= 1, f"counting: chunk must be at least 1, got {chunk}")
        self._set_params()
        self.task, self.chunk = task, chunk

    @classmethod
    def applies_to(cls, task) -> str | None:
        return None if task.name == "explanations" else "it reads the explanations of the explanations task"

    def _predict_tokens(self, prompts: TokenPrompts) -> torch.Tensor:
        out = torch.empty(prompts.batch_size, prompts.length, len(prompts.vocab), dtype=torch.float64)
        for i in range(0, prompts.batch_size, self.chunk):
            out[i : i + self.chunk] = self._count(prompts.tokens[i : i + self.chunk].cpu())
        return out

    def _count(self, tokens: torch.Tensor) -> torch.Tensor:
        task = self.task
        width, span = task.point_length, task.explanation_length
        b, t = tokens.shape
        v = len(task.vocab)
        padded = torch.nn.functional.pad(tokens, (width, span), value=task.vocab.pad)
        x = padded[:, :-span].unfold(1, width, 1)[:, :t]  # (B, T, 21): the point before each position
        is_label = (tokens == task.equals) & (x[..., 0] >= task.first_index)
        # the latest explanation E: #a #b m n r d of the same task, wholly before the position
        after = padded[:, width:]  # after[:, j + s] = tokens[:, j + s]
        marker = (tokens == task.explain).unsqueeze(1)  # (B, 1, T_j)
        same = (after[:, 1 : t + 1].unsqueeze(1) == x[..., 0].unsqueeze(2)) & (
            after[:, 2 : t + 2].unsqueeze(1) == x[..., 1].unsqueeze(2)
        )  # (B, T_p, T_j)
        before = torch.arange(t).unsqueeze(1) > torch.arange(t).unsqueeze(0) + span - 1
        match = marker & same & before
        found = match.any(-1)
        j = (match * torch.arange(1, t + 1)).argmax(-1)  # (B, T_p)
        first_pair = x[..., 2] == task.integer_token(1)
        offset = torch.where(first_pair, task.m_at, task.r_at)
        a = torch.gather(after, 1, j + offset)
        z = torch.gather(after, 1, j + offset + 1)
        slots = x[..., 3:]
        yes = (slots == a.unsqueeze(-1)).sum(-1) > (slots == z.unsqueeze(-1)).sum(-1)
        probs = torch.full((b, t, v), 1.0 / v, dtype=torch.float64)
        probs[is_label] = 0.0
        unknown = is_label & ~found
        probs[..., task.no][unknown] = 0.5
        probs[..., task.yes][unknown] = 0.5
        known = is_label & found
        probs[..., task.yes][known] = yes[known].double()
        probs[..., task.no][known] = 1.0 - yes[known].double()
        return probs


@LEARNERS.register
class PositionBayes(TokenLearner):
    """The exact posterior over each token's position under ``position_prediction`` on ``ordered_set`` prompts,
    given the visible tokens and the token's own symbol (``iclab.tasks.positions.position_posterior``): the best
    accuracy any network reading the same tokens can reach."""

    name = "position_bayes"
    requires_task = True
    predicts_what = "positions"

    def __init__(self, task=None) -> None:
        super().__init__()
        self._set_params()
        self.task = task

    @classmethod
    def applies_to(cls, task) -> str | None:
        if task.base.name == "ordered_set":  # (a task whose learners predict positions: position_prediction)
            return None
        return "it is the exact position posterior of position_prediction on ordered_set prompts"

    def _predict_tokens(self, prompts: TokenPrompts) -> torch.Tensor:
        return position_posterior(self.task, prompts)


@LEARNERS.register
class UniformPosition(TokenLearner):
    """Chance under ``position_prediction``: every position of the prompt equally likely."""

    name = "uniform_position"
    predicts_what = "positions"  # (so it applies to the tasks whose learners predict positions)

    def _predict_tokens(self, prompts: TokenPrompts) -> torch.Tensor:
        real = (prompts.tokens != prompts.vocab.pad).cpu()
        b, t = real.shape
        probs = real.unsqueeze(1).expand(b, t, t).to(torch.float64)
        return probs / probs.sum(-1, keepdim=True).clamp_min(1)


def position_posterior(task, prompts: TokenPrompts) -> torch.Tensor:
    """``(B, T, T)`` float64: the exact posterior over each token's position given the visible tokens and its own
    symbol, on ``ordered_set`` prompts (``iclab.tasks.positions``): a token's position is the count of the symbols
    below it, the visible ones counted, the hidden ones hypergeometric; uniform over the prompt's positions when
    shuffled."""
    import numpy as np
    from scipy.stats import hypergeom

    base = task.base
    c = base.config
    tokens = prompts.tokens.cpu().numpy()
    b, t = tokens.shape
    real = tokens != base.vocab.pad
    n = real.sum(1, keepdims=True)  # (B, 1) symbols per prompt
    if c.order == "shuffled":  # every position of the prompt equally likely
        out = np.where(real[:, None, :] & real[:, :, None], 1.0 / np.maximum(n, 1)[:, :, None], 0.0)
        return torch.from_numpy(out)
    seen = np.zeros((b, c.n_symbols + 1), dtype=bool)  # the visible symbols of each prompt (token ids 1 .. V)
    rows = np.nonzero(prompts.info["key_mask"].cpu().numpy() & real)
    seen[rows[0], tokens[rows]] = True
    seen[:, 0] = False
    m = seen.sum(1, keepdims=True)  # (B, 1) visible symbols
    seen_below = np.cumsum(seen, 1) - seen  # (B, V + 1): visible symbols below each symbol
    unseen_below = np.arange(c.n_symbols + 1) - 1 - seen_below  # symbols 1 .. s - 1 not visible, at s >= 1
    own_seen = np.take_along_axis(seen, tokens, 1)  # (B, T): whether each token's symbol is visible
    below_seen = np.take_along_axis(seen_below, tokens, 1)
    below_unseen = np.take_along_axis(unseen_below, tokens, 1)
    # the hidden symbols: the n - m others a uniform draw from the V - m not visible; a hidden token is one of them
    pop = np.where(own_seen, c.n_symbols - m, c.n_symbols - m - 1)
    draws = np.where(own_seen, n - m, n - m - 1)
    x = np.arange(t)  # hidden symbols below the token
    pmf = hypergeom.pmf(x, pop[..., None], below_unseen[..., None], draws[..., None])  # (B, T, T over x)
    pmf = np.where(real[..., None] & (x <= draws[..., None]), np.nan_to_num(pmf), 0.0)
    out = np.zeros((b, t, t))
    where = below_seen[..., None] + x  # the position: the visible symbols below plus the hidden ones
    inside = where < t
    ib, it, ix = np.nonzero(inside)
    np.add.at(out, (ib, it, where[ib, it, ix]), pmf[ib, it, ix])
    return torch.from_numpy(out)
