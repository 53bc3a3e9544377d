"""Analysis instruments: ``INSTRUMENTS`` maps a name to what ``iclab analyze --only NAME`` runs.

An instrument is a function ``run(ctx: Context) -> Result`` (the tables, JSON and figures it made; it
writes nothing itself) and, optionally, ``section(folder, d) -> list`` (its part of the report, built from
the files it wrote, as :class:`Figure`, :class:`Table` and :class:`Note` items). An instrument that does
not apply to a run raises :class:`Inapplicable`; ``iclab analyze`` then skips it (or fails, when it was
asked for by name). Registering one is a decorator in any module::

    from iclab.analysis.instruments import Context, Figure, Result, instrument

    def _section(folder, d):
        return [Figure("Norm of the residual stream", folder / "norms.png")]

    @instrument("norms", section=_section)
    def norms(ctx: Context) -> Result:
        with capture(ctx.model) as cache:
            ctx.model.predict(ctx.prompts[:64])
        rows = [{"hook": name, "norm": float(t.norm(dim=-1).mean())} for name, t in cache.items()]
        return Result(tables={"norms.csv": rows}, figures={"norms.png": lambda path: draw(rows, path)})

The built-in instruments (probes, alignment, weights, attention, order, paste) are defined at the end of
this file, in the order ``iclab analyze`` runs them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iclab.errors import UserError
from iclab.registry import Registry

INSTRUMENTS = Registry("analysis instrument")  # name -> Instrument


class Inapplicable(UserError):
    """This instrument does not apply to this run (the message says why)."""


@dataclass
class Context:
    """Everything an instrument may use: the run, its network and task, held-out prompts, reference learners
    and the options of ``iclab analyze``."""

    run_dir: Path
    cfg: Any  # the run's RunConfig
    model: Any  # the trained network (an ICLModel), on the analysis device
    task: Any
    prompts: Any  # held-out Prompts
    refs: list  # reference learners to compare with
    step: int  # the checkpoint's step
    hooks: list[str] | None = None  # hook names to probe (None: one per layer)
    targets: list[str] | None = None  # probe targets (None: every one that applies)
    probe_kinds: tuple[str, ...] = ("linear", "mlp")
    per_position: bool = False
    paste_steps: int = 300
    log: Callable[[str], Any] = print


@dataclass
class Result:
    tables: dict[str, list[dict]] = field(default_factory=dict)  # "file.csv" -> rows
    json: dict[str, Any] = field(default_factory=dict)  # "file.json" -> a JSON-serialisable value
    figures: dict[str, Callable[[Path], Any]] = field(default_factory=dict)  # "file.png" -> draw(path)
    summary: dict[str, Any] = field(default_factory=dict)  # extra keys for analysis/summary.json


@dataclass
class Figure:
    title: str
    path: Path


@dataclass
class Table:
    caption: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class Note:
    text: str


@dataclass(frozen=True)
class Instrument:
    name: str
    run: Callable[[Context], Result]
    section: Callable[[Path, int], list] | None = None
    task_unsupported: Callable[[Any], str | None] | None = None  # why it cannot apply to a task (None: it may)
    kinds: tuple[str, ...] = ("real",)  # the prompt kinds it reads: "real" and/or "tokens"

    def kind_unsupported(self, task) -> str | None:
        """Why this instrument cannot read ``task``'s prompts (a token task for a real-valued instrument), or None."""
        from iclab.kinds import describe_kind

        if task.prompt_kind in self.kinds:
            return None
        return f"it is defined for {' and '.join(describe_kind(k) for k in self.kinds)}"


def instrument(
    name: str,
    section: Callable[[Path, int], list] | None = None,
    task_unsupported: Callable[[Any], str | None] | None = None,
    kinds: tuple[str, ...] = ("real",),
):
    """Register ``run`` as the analysis instrument ``name`` (with its report ``section``, the prompt ``kinds`` it
    reads: ``"real"`` (x, y) prompts and/or ``"tokens"``, and ``task_unsupported(task)``: why it cannot apply to
    a task whatever the network; ``iclab list`` and ``iclab analyze`` ask it)."""

    def unsupported(task) -> str | None:
        return INSTRUMENTS[name].kind_unsupported(task) or (task_unsupported(task) if task_unsupported else None)

    def register(run):
        INSTRUMENTS.register(Instrument(name, run, section, unsupported, kinds), name=name)
        return run

    return register


def _real_valued(task) -> str | None:
    return None if task.n_classes is None else "it is defined for real-valued predictions"


def write_csv(rows: list[dict]) -> str:
    """An instrument's table as CSV text (:func:`iclab.tables.table_text`: every column the rows have)."""
    from iclab.tables import table_text

    return table_text(rows)


def read_csv(path: Path) -> list[dict]:
    """An instrument's table, cells as strings (:func:`iclab.tables.read_table`)."""
    from iclab.tables import read_table

    return read_table(path, what="table of iclab analyze")


def _figures(folder: Path, items: list[tuple[str, str]]) -> list:
    return [Figure(title, folder / name) for name, title in items if (folder / name).is_file()]


# ----------------------------------------------------------------------------------------------
# the built-in instruments


def _subset(ctx: Context, at_most: int):
    return ctx.prompts[: min(ctx.prompts.batch_size, at_most)]


def default_targets(task, prompts) -> list[str]:
    """The probe targets that apply to ``task``."""
    from iclab.analysis.probes import probe_target

    out = []
    for t in ("w", "w_ols", "xty", "phi"):
        try:
            probe_target(task, prompts[:2], t)
            out.append(t)
        except UserError:
            pass
    return out


def _probes_section(folder: Path, d: int) -> list:
    return _figures(
        folder, [("probes.png", "Probes per layer (solid: trained network; dashed: random-initialisation control)")]
    )


@instrument(
    "probes",
    section=_probes_section,
    task_unsupported=lambda t: (
        None
        if any(t.probe_target_unsupported(x) is None for x in ("w", "xty", "w_ols", "phi"))
        else "no probe target applies"
    ),
)
def probes(ctx: Context) -> Result:
    """Linear and MLP probes of the task's quantities per layer, with a random-initialisation control."""
    from iclab.analysis import plots
    from iclab.analysis.probes import probe_model

    chosen = ctx.targets or default_targets(ctx.task, ctx.prompts)
    if not chosen:
        raise Inapplicable(f"no probe target applies to task {ctx.task.name!r}")
    ctx.log(f"probes: targets {', '.join(chosen)} ...")
    rows = probe_model(
        ctx.model,
        ctx.task,
        ctx.prompts,
        targets=chosen,
        hooks=ctx.hooks,
        kinds=ctx.probe_kinds,
        per_position=ctx.per_position,
    )
    return Result(tables={"probes.csv": rows}, figures={"probes.png": lambda path: plots.plot_probes(rows, path)})


def _alignment_section(folder: Path, d: int) -> list:
    items: list = []
    if (folder / "alignment.csv").is_file():
        rows = read_csv(folder / "alignment.csv")
        ks = sorted({int(r["k"]) for r in rows})
        body = []
        for k in dict.fromkeys(k for k in (d // 2, d, 2 * d, ks[-1]) if k in ks):
            at = [r for r in rows if int(r["k"]) == k]
            spd = min(at, key=lambda r: float(r["spd"]))
            ilwd = min(at, key=lambda r: float(r["ilwd"]))
            body.append(
                [
                    str(k),
                    f"{spd['learner']} ({float(spd['spd']):.3g})",
                    f"{ilwd['learner']} ({float(ilwd['ilwd']):.3g})",
                ]
            )
        items.append(
            Table(
                "Closest reference learner to the model (smallest squared prediction difference and "
                "implicit linear weight difference, both divided by the task's error scale):",
                ["k", "lowest SPD", "lowest ILWD"],
                body,
            )
        )
    return items + _figures(
        folder,
        [
            ("alignment_spd.png", "SPD between the model and each reference learner"),
            ("alignment_ilwd.png", "ILWD between the model and each reference learner"),
            ("alignment_sensitivity.png", "Cosine similarity of query sensitivities"),
        ],
    )


@instrument("alignment", section=_alignment_section, task_unsupported=_real_valued)
def alignment(ctx: Context) -> Result:
    """SPD, ILWD and query-sensitivity agreement with every reference learner, per k."""
    from iclab.analysis import plots
    from iclab.analysis.alignment import alignment_table

    if ctx.task.n_classes is not None:
        raise Inapplicable("alignment metrics are defined for real-valued predictions")
    if not ctx.refs:
        raise Inapplicable("no reference learner to compare with (name one with --learner)")
    ctx.log(f"alignment against {', '.join(r.label for r in ctx.refs)} ...")
    rows = alignment_table(ctx.model, ctx.task, _subset(ctx, 300), ctx.refs)
    return Result(
        tables={"alignment.csv": rows},
        figures={
            "alignment_spd.png": lambda path: plots.plot_alignment(rows, path, "spd", "SPD / scale"),
            "alignment_ilwd.png": lambda path: plots.plot_alignment(rows, path, "ilwd", "ILWD / scale"),
            "alignment_sensitivity.png": lambda path: plots.plot_alignment(
                rows, path, "sensitivity_cosine", "sensitivity cosine"
            ),
        },
    )


def _weights_section(folder: Path, d: int) -> list:
    return _figures(folder, [("weights.png", "Weight recovery (Panwar et al.): the model's implied w")])


@instrument(
    "weights",
    section=_weights_section,
    task_unsupported=lambda t: (
        _real_valued(t)
        or (None if t.weight_vector and not t.has_features else "it needs a task linear in x with a weight vector")
    ),
)
def weights(ctx: Context) -> Result:
    """Weight recovery (Panwar et al. 2023): the w implied by the model's answers to 2d + 1 probe queries."""
    from iclab.analysis import plots
    from iclab.analysis.alignment import query_inputs, weight_recovery

    w = ctx.prompts.info.get("w")
    d = ctx.cfg.task.n_dims
    if w is None or w.dim() != 2 or w.shape[1] != d or ctx.task.n_classes is not None:
        raise Inapplicable(f"weight recovery needs a task linear in x with a weight vector; {ctx.task.name!r} is not")
    ctx.log("weight recovery ...")
    sub = _subset(ctx, 300)
    queries = query_inputs(ctx.task, sub.batch_size, 2 * d + 1)
    reference = ctx.refs[0] if ctx.refs else None
    rows = [
        weight_recovery(ctx.model, sub, k, queries, ctx.task.error_scale, reference=reference)
        for k in range(1, sub.n_points)
    ]
    return Result(
        tables={"weights.csv": rows},
        figures={"weights.png": lambda path: plots.plot_weight_recovery(rows, path)},
        summary={"weights_reference": reference.label if reference else None},
    )


def _attention_section(folder: Path, d: int) -> list:
    return _figures(
        folder,
        [
            ("attention.png", "Mean attention per layer and head (token runs: the first 48 tokens)"),
            ("lsa_products.png", "Linear self-attention weight products"),
        ],
    )


@instrument("attention", section=_attention_section, kinds=("real", "tokens"))
def attention(ctx: Context) -> Result:
    """Mean attention pattern per layer and head; for linear self-attention, the weight products against the
    gradient-descent construction."""
    from iclab.analysis import plots
    from iclab.analysis.attention import attention_patterns, lsa_products
    from iclab.kinds import kind_of

    n_prompts, n_tokens = kind_of(ctx.task).attention_view  # a token prompt's hundreds of tokens: the first few
    try:
        pats = attention_patterns(ctx.model, ctx.prompts[:n_prompts])
    except UserError as e:
        raise Inapplicable(str(e)) from None
    if n_tokens is not None:
        pats = {name: p[:, :n_tokens, :n_tokens] for name, p in pats.items()}
    ctx.log("attention patterns ...")
    result = Result(
        figures={
            "attention.png": lambda path: plots.plot_attention(pats, path, title=f"{ctx.cfg.name}: mean attention")
        }
    )
    if ctx.cfg.model.name == "linear_self_attention":
        prods = lsa_products(ctx.model)
        result.figures["lsa_products.png"] = lambda path: plots.plot_lsa_products(prods, path)
        result.json["attention.json"] = [
            {"layer": r["layer"], "kq_vs_gd": r["kq_vs_gd"], "pv_vs_gd": r["pv_vs_gd"]} for r in prods
        ]
    return result


def _order_section(folder: Path, d: int) -> list:
    if not (folder / "order.json").is_file():
        return []
    order = json.loads((folder / "order.json").read_text())
    return [
        Table(
            "Order sensitivity (variance of the last prediction under permutations of the demonstrations)",
            ["learner", "order sensitivity"],
            [[k, f"{v:.3g}"] for k, v in order.items()],
        )
    ]


@instrument("order", section=_order_section, task_unsupported=_real_valued)
def order(ctx: Context) -> Result:
    """Order sensitivity of the model and of each reference learner."""
    from iclab.analysis.sensitivity import order_sensitivity
    from iclab.types import Prompts

    if ctx.task.n_classes is not None:
        raise Inapplicable("order sensitivity is defined for real-valued predictions")
    ctx.log("order sensitivity ...")
    sub = _subset(ctx, 256)
    result = {"model": order_sensitivity(ctx.model, sub)}
    result.update(
        {r.label: order_sensitivity(r, Prompts(sub.xs.double(), sub.ys.double(), sub.info)) for r in ctx.refs}
    )
    return Result(json={"order.json": result})


def _paste_section(folder: Path, d: int) -> list:
    return _figures(folder, [("paste.png", "Pasting (Guo et al.): upper layers on a fresh (Phi(x), y) embedding")])


@instrument(
    "paste",
    section=_paste_section,
    task_unsupported=lambda t: None if t.has_features else "it needs a task with a fixed feature map Phi",
)
def paste(ctx: Context) -> Result:
    """Pasting (Guo et al. 2023): the upper layers behind a freshly trained (Phi(x), y) embedding."""
    from iclab.analysis import plots
    from iclab.analysis.pasting import paste as paste_layers

    try:
        result = paste_layers(ctx.model, ctx.task, steps=ctx.paste_steps, log=ctx.log)
    except UserError as e:
        raise Inapplicable(str(e)) from None
    return Result(json={"paste.json": result}, figures={"paste.png": lambda path: plots.plot_paste(result, path)})
