"""Analysis instruments for token runs (Akyürek et al. 2024's evidence, on any iclab language model).

- ``ngram_heads``: for every attention head, the share of its attention that falls on positions following an
  earlier occurrence of the current 1-, 2- and 3-gram (:func:`iclab.models.ngram_heads.ngram_matches`), averaged
  over the query positions that have such an occurrence; beside it, the share a head attending uniformly to
  every earlier position would give (the chance level). A head far above chance on n = 2 or 3 is an n-gram
  head. Inserted n-gram layers are listed too (their share is 1 by construction).
- ``token_alignment``: the total variation distance between the network's next-token distributions and each
  reference learner's, per number of strings seen and averaged over every scored position: which learner the
  network's predictions are closest to (the token analogue of SPD).

    RUN/analysis/ngram_heads.csv      layer, head, n, share, chance, queries
    RUN/analysis/token_alignment.csv  learner, k, tvd  (k = -1: every scored position)
"""

from __future__ import annotations

from pathlib import Path

import torch

from iclab.analysis.instruments import (
    Context,
    Figure,
    Inapplicable,
    Result,
    Table,
    instrument,
    read_csv,
)

ORDERS = (1, 2, 3)


def ngram_head_shares(model, prompts, orders=ORDERS) -> list[dict]:
    """Rows ``{layer, head, n, share, chance, queries}`` for every attention pattern hook of ``model``."""
    from iclab.analysis.cache import run_with_cache
    from iclab.models import hook_points
    from iclab.models.ngram_heads import ngram_matches

    names = [n for n in hook_points(model) if n.endswith("attn.hook_pattern")]
    if not names:
        raise Inapplicable(f"model {model.config.name!r} has no attention patterns")
    _, cache = run_with_cache(model, prompts, names)
    ids = prompts.tokens
    real = ids != prompts.vocab.pad
    t = ids.shape[1]
    earlier = torch.ones(t, t, dtype=torch.bool).tril(-1) & real.unsqueeze(1)  # (B, T, T) causal, no padding
    rows = []
    for n in orders:
        match = ngram_matches(ids, n) & real.unsqueeze(1)  # (B, T, T)
        has = match.any(-1) & real  # queries with an earlier occurrence of their n-gram
        chance = (match.sum(-1).double() / (earlier.sum(-1).double() + 1).clamp_min(1))[has].mean().item()
        for name in names:
            pattern = cache[name].double()
            if pattern.dim() == 3:  # an n-gram layer: one fixed "head"
                pattern = pattern.unsqueeze(1)
            share = (pattern * match.unsqueeze(1)).sum(-1)  # (B, H, T)
            for h in range(pattern.shape[1]):
                rows.append(
                    {
                        "layer": name.removesuffix(".attn.hook_pattern"),
                        "head": h,
                        "n": n,
                        "share": share[:, h][has].mean().item(),
                        "chance": chance,
                        "queries": int(has.sum()),
                    }
                )
    return rows


def _ngram_section(folder: Path, d: int) -> list:
    if not (folder / "ngram_heads.csv").is_file():
        return []
    rows = read_csv(folder / "ngram_heads.csv")
    heads = list(dict.fromkeys((r["layer"], r["head"]) for r in rows))
    by = {(r["layer"], r["head"], r["n"]): float(r["share"]) for r in rows}
    chance = {r["n"]: float(r["chance"]) for r in rows}
    header = ["layer", "head", *[f"n = {n} (chance {chance[str(n)]:.3f})" for n in ORDERS if str(n) in chance]]
    body = [
        [layer, head, *[f"{by[(layer, head, str(n))]:.3f}" for n in ORDERS if (layer, head, str(n)) in by]]
        for layer, head in heads
    ]
    items: list = [
        Table(
            "Share of each head's attention on positions that followed an earlier occurrence of the "
            "current n-gram (an n-gram head scores far above chance):",
            header,
            body,
        )
    ]
    if (folder / "ngram_heads.png").is_file():
        items.append(Figure("n-gram head scores per layer and head", folder / "ngram_heads.png"))
    return items


@instrument("ngram_heads", section=_ngram_section, kinds=("tokens",))
def ngram_heads(ctx: Context) -> Result:
    """Per head, the share of attention on positions following earlier copies of the current 1-, 2-, 3-gram."""
    from iclab.analysis import plots

    ctx.log("n-gram head scores ...")
    rows = ngram_head_shares(ctx.model, ctx.prompts[:32])
    return Result(
        tables={"ngram_heads.csv": rows}, figures={"ngram_heads.png": lambda path: plots.plot_ngram_heads(rows, path)}
    )


def _alignment_section(folder: Path, d: int) -> list:
    if not (folder / "token_alignment.csv").is_file():
        return []
    rows = [r for r in read_csv(folder / "token_alignment.csv") if int(r["k"]) == -1]
    rows.sort(key=lambda r: float(r["tvd"]))
    items: list = [
        Table(
            "Total variation distance between the network's next-token distributions and each reference "
            "learner's, over every scored position (smallest first):",
            ["learner", "TVD"],
            [[r["learner"], f"{float(r['tvd']):.3f}"] for r in rows],
        )
    ]
    if (folder / "token_alignment.png").is_file():
        items.append(Figure("TVD to each reference learner against strings seen", folder / "token_alignment.png"))
    return items


@instrument("token_alignment", section=_alignment_section, kinds=("tokens",))
def token_alignment(ctx: Context) -> Result:
    """TVD between the network's next-token distributions and each reference learner's."""
    from iclab.analysis import plots

    if not ctx.refs:
        raise Inapplicable("no reference learner to compare with (name one with --learner)")
    ctx.log(f"token alignment against {', '.join(r.label for r in ctx.refs)} ...")
    rows = token_alignment_table(ctx.model, ctx.prompts[:300], ctx.refs)
    return Result(
        tables={"token_alignment.csv": rows},
        figures={"token_alignment.png": lambda path: plots.plot_token_alignment(rows, path)},
    )


def token_alignment_table(model, prompts, refs: list) -> list[dict]:
    """Rows ``{learner, k, tvd}``: the mean TVD per number of strings seen ``k``, and over every scored position
    (``k = -1``)."""
    net = model.predict(prompts).double().cpu()
    scored = prompts.scored.cpu()
    index = prompts.info["string_index"].cpu()
    rows = []
    for ref in refs:
        tvd = 0.5 * (net - ref.predict(prompts).double().cpu()).abs().sum(-1)
        rows.append({"learner": ref.label, "k": -1, "tvd": tvd[scored].mean().item()})
        for k in range(int(index.max()) + 1):
            at = scored & (index == k)
            if at.any():
                rows.append({"learner": ref.label, "k": k, "tvd": tvd[at].mean().item()})
    return rows
